/*
 * fuzz_blob.c — libFuzzer harness for blob format 1 and UUID text.
 *
 * blob_parse either rejects or returns a view whose pointers lie inside the
 * input and whose header round-trips through blob_write_header; blob_uuid_parse
 * either rejects or round-trips through blob_uuid_format (modulo case).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/blob.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[BLOB_HEADER_LEN], id[16];
	char text[UUID_STR_LEN + 1];
	struct blob_view b;
	int r;

	r = blob_parse(data, size, &b);
	if (r == 0) {
		if (size < BLOB_OVERHEAD + 1 || b.header != data ||
		    b.iv != data + BLOB_HEADER_LEN ||
		    b.ct != b.iv + BLOB_IV_LEN ||
		    b.ct + b.ct_len != b.tag ||
		    b.tag + BLOB_TAG_LEN != data + size || b.version == 0) {
			abort();
		}
		blob_write_header(hdr, b.key_id, b.version);
		if (memcmp(hdr, data, BLOB_HEADER_LEN) != 0) {
			abort();
		}
	} else if (r != KMS_EINVALIDCIPHERTEXT) {
		abort();
	}

	r = blob_uuid_parse((const char *)data, size, id);
	if (r == 0) {
		blob_uuid_format(id, text);
		if (size != UUID_STR_LEN ||
		    strncasecmp(text, (const char *)data, UUID_STR_LEN) != 0) {
			abort();
		}
	} else if (r != KMS_EVALIDATION) {
		abort();
	}
	return 0;
}
