/*
 * fuzz_json.c — libFuzzer harness for the bounded JSON reader.
 *
 * Whatever the bytes, kjson_read_bounded returns an object or NULL with
 * KMS_ESERIALIZATION and a printable message; kjson_depth agrees with the
 * reader about the depth limit; and the reader (ours) accepts what
 * jansson's json_loadb(JSON_REJECT_DUPLICATES) accepts with an object on
 * top, building equal values (a raw NUL byte, which jansson sometimes
 * skips, we always refuse).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[256];
	json_t *o;
	size_t i;
	int err = -1, depth;

	depth = kjson_depth(data, size, JSON_MAX_DEPTH);
	if (depth < 0 || depth > JSON_MAX_DEPTH + 1) {
		abort();
	}
	msg[0] = '\0';
	o = kjson_read_bounded(data, size, JSON_MAX_REQUEST, &err, msg,
	    sizeof(msg));
	if (size <= JSON_MAX_REQUEST && depth <= JSON_MAX_DEPTH) {
		json_t *ref = json_loadb(size > 0 ? (const char *)data : "",
		    size, JSON_REJECT_DUPLICATES, NULL);
		if (ref != NULL && !json_is_object(ref)) {
			json_decref(ref);
			ref = NULL;
		}
		if ((o == NULL) != (ref == NULL) &&
		    !(o == NULL && memchr(data, 0, size) != NULL)) {
			abort();
		}
		if (o != NULL && ref != NULL && !json_equal(o, ref)) {
			abort();
		}
		json_decref(ref);
	}
	if (o != NULL) {
		if (err != 0 || !json_is_object(o) || depth > JSON_MAX_DEPTH) {
			abort();
		}
		json_decref(o);
		return 0;
	}
	if (err != KMS_ESERIALIZATION || msg[0] == '\0') {
		abort();
	}
	/* The message goes into a JSON reply: printable ASCII only. */
	for (i = 0; msg[i] != '\0'; i++) {
		if ((unsigned char)msg[i] < 0x20 ||
		    (unsigned char)msg[i] > 0x7e) {
			abort();
		}
	}
	return 0;
}
