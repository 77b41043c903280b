/*
 * fuzz_json.c — libFuzzer harness for the bounded JSON reader.
 *
 * Whatever the bytes, kjson_read_bounded returns an object or NULL with
 * KMS_ESERIALIZATION and a printable message; kjson_depth agrees with the
 * reader about the depth limit; and the reader (ours) accepts what
 * jansson's json_loadb(JSON_REJECT_DUPLICATES) accepts with an object on
 * top, building equal values (a raw NUL byte, which jansson sometimes
 * skips, we always refuse).  The spans it notes of the elements of a
 * root member "Requests" are each that element's text: read again
 * alone, it is an equal value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SPANS 8

/* Each noted span, read alone (as {"v": span}), equals its element. */
static void
check_spans(const uint8_t *data, size_t size, json_t *o,
    const struct kjson_spans *sp)
{
	json_t *arr = json_object_get(o, "Requests"), *w;
	size_t i, want;
	char *buf;

	want = json_is_array(arr) ? json_array_size(arr) : 0;
	if (sp->n != (want < FUZZ_SPANS ? want : FUZZ_SPANS)) {
		abort();
	}
	for (i = 0; i < sp->n; i++) {
		if (sp->at[i].off > size || sp->at[i].len > size -
		    sp->at[i].off || (buf = malloc(sp->at[i].len + 6)) ==
		    NULL) {
			abort();
		}
		memcpy(buf, "{\"v\":", 5);
		memcpy(buf + 5, data + sp->at[i].off, sp->at[i].len);
		buf[5 + sp->at[i].len] = '}';
		w = kjson_read_bounded(buf, sp->at[i].len + 6, JSON_MAX_MESSAGE,
		    NULL, NULL, 0);
		if (w == NULL || !json_equal(json_object_get(w, "v"),
		    json_array_get(arr, i))) {
			abort();
		}
		json_decref(w);
		free(buf);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[256];
	struct kjson_span at[FUZZ_SPANS];
	struct kjson_spans sp = { at, 0, FUZZ_SPANS };
	json_t *o;
	size_t i;
	int err = -1, depth;

	depth = kjson_depth(data, size, JSON_MAX_DEPTH);
	if (depth < 0 || depth > JSON_MAX_DEPTH + 1) {
		abort();
	}
	msg[0] = '\0';
	o = kjson_read_spans(data, size, JSON_MAX_REQUEST, &err, msg,
	    sizeof(msg), "Requests", &sp);
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
		check_spans(data, size, o, &sp);
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
