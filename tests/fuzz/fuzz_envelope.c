/*
 * fuzz_envelope.c — libFuzzer harness for the envelope message header
 * (libkmsclient/envelope_header.c) and the decryptor's framing.
 *
 * env_header_parse either asks for more, rejects with
 * KMS_EINVALIDCIPHERTEXT, or returns a header whose body is the input's
 * prefix; the same bytes fed to a decryptor in two pieces never crash,
 * and are refused (the unwrap below knows no key).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "libkmsclient/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
no_key(void *arg, const struct env_header *h, uint8_t *dk, char *arn,
    size_t arnsz, kms_error_info *ei)
{
	return KMS_EINVALIDCIPHERTEXT;
}

static int
sink(void *arg, const uint8_t *p, size_t n)
{
	abort();	/* nothing may be released without a key */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env_materials m = { NULL, no_key, NULL };
	struct env_header h;
	kms_decryptor *d = NULL;
	kms_error_info ei;
	size_t used = 0;
	int r;

	r = env_header_parse(data, size, &h, &used, &ei);
	if (r == 0) {
		if (used > size || h.body_len + ENV_TAG_LEN != used ||
		    memcmp(h.body, data, h.body_len) != 0 || h.nedks == 0 ||
		    !env_suite_known(h.suite)) {
			abort();
		}
		env_header_clear(&h);
	} else if (r != ENV_NEED_MORE && r != KMS_EINVALIDCIPHERTEXT &&
	    r != KMS_ENOMEM) {
		abort();
	}
	if (env_decryptor_new(&m, NULL, sink, NULL, &d, &ei) != 0) {
		return 0;
	}
	r = kms_decryptor_update(d, data, size / 2, &ei);
	if (r == 0) {
		r = kms_decryptor_update(d, data + size / 2, size - size / 2,
		    &ei);
	}
	if (r == 0) {
		r = kms_decryptor_final(d, NULL, &ei);
	}
	if (r == 0) {
		abort();
	}
	kms_decryptor_free(d);
	return 0;
}
