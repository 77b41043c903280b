/*
 * fuzz_sigv4.c — libFuzzer harness for SigV4 as kmsd checks it.
 *
 * The input is split at its first two NUL bytes into an Authorization
 * header, an X-Amz-Date header and a body; the request is parsed and, when
 * it parses, verified against a fixed secret.  It must never verify (the
 * fuzzer cannot forge HMAC-SHA256), and every refusal must be one of
 * AWS's exceptions with a terminated message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kmsd/frontend/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *authz, *date, *body;
	struct sigv4_kv h[4];
	struct sigv4_msg m;
	struct sigv4_auth a;
	char msg[512];
	int r;

	if ((buf = malloc(size + 3)) == NULL) {
		return 0;
	}
	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = buf[size + 2] = '\0';
	authz = buf;
	date = authz + strlen(authz) + 1;
	body = date + strlen(date) + 1;
	if (body > buf + size + 2) {
		body = buf + size + 2;
	}
	h[0] = (struct sigv4_kv){ "Host", "127.0.0.1:8443" };
	h[1] = (struct sigv4_kv){ "X-Amz-Date", date };
	h[2] = (struct sigv4_kv){ "Authorization", authz };
	h[3] = (struct sigv4_kv){ "X-Amz-Target", "TrentService.Encrypt" };
	memset(&m, 0, sizeof(m));
	m.method = "POST";
	m.path = "/";
	m.headers = h;
	m.nheaders = 4;
	m.body = (const uint8_t *)body;
	m.bodylen = strlen(body);
	msg[0] = '\0';
	r = sigv4_parse(&m, &a, msg, sizeof(msg));
	if (r == SIGV4_OK) {
		msg[0] = '\0';
		r = sigv4_verify(&m, &a, (const uint8_t *)"secret", 6, "local",
		    "kms", a.when, msg, sizeof(msg));
		if (r == SIGV4_OK) {
			abort();	/* a forged signature verified */
		}
	}
	if (r != SIGV4_MISSING && r != SIGV4_INCOMPLETE &&
	    r != SIGV4_INVALID) {
		abort();
	}
	if (strnlen(msg, sizeof(msg)) == sizeof(msg)) {
		abort();	/* unterminated message */
	}
	free(buf);
	return 0;
}
