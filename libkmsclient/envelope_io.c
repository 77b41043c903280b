/*
 * envelope_io.c — the one-shot and file-descriptor forms of envelope
 * encryption, both thin loops over the incremental encryptor and
 * decryptor (envelope.c), so every form writes and reads the same bytes.
 *
 * One-shot decryption collects the plaintext in locked memory and returns
 * it only when the whole message (signature included) has verified.  The
 * descriptor forms move IO_CHUNK bytes at a time: memory stays bounded
 * whatever the stream's size.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "common/secmem.h"
#include "libkmsclient/client.h"
#include "libkmsclient/envelope.h"

#define IO_CHUNK (256 * 1024)

/* A growing output buffer: malloc'd, or locked for plaintext. */
struct membuf {
	uint8_t *p;
	size_t len, cap;
	int locked;
};

static int
mem_sink(void *arg, const uint8_t *p, size_t n)
{
	struct membuf *b = arg;
	uint8_t *q;
	size_t cap;

	if (n > b->cap - b->len) {
		cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
		if (b->locked) {
			/* Locked memory cannot grow in place. */
			if ((q = secure_alloc(cap)) == NULL) {
				return -1;
			}
			if (b->len > 0) {
				memcpy(q, b->p, b->len);
			}
			secure_free(b->p, b->cap);
		} else if ((q = realloc(b->p, cap)) == NULL) {
			return -1;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void
mem_free(struct membuf *b)
{
	if (b->locked) {
		secure_free(b->p, b->cap);
	} else {
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

KMS_API int
kms_envelope_encrypt(kms_client *c, const char *key_id,
    const kms_envelope_encrypt_opts *opts, const uint8_t *pt, size_t len,
    kms_buf *out, kms_error_info *ei)
{
	kms_envelope_encrypt_opts o;
	kms_encryptor *e = NULL;
	struct membuf b = { NULL, 0, 0, 0 };
	int r;

	client_ok(ei);
	if (out == NULL || (pt == NULL && len > 0)) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	memset(&o, 0, sizeof(o));
	if (opts != NULL) {
		o = *opts;
	}
	/* The size is known: the cache may count it. */
	o.plaintext_length = len;
	if ((r = kms_encryptor_new(c, key_id, &o, mem_sink, &b, &e,
	    ei)) != 0 ||
	    (r = kms_encryptor_update(e, pt, len, ei)) != 0 ||
	    (r = kms_encryptor_final(e, ei)) != 0) {
		goto out;
	}
	out->data = b.p;
	out->len = b.len;
	b.p = NULL;
	r = 0;
 out:
	kms_encryptor_free(e);
	free(b.p);
	return r;
}

KMS_API int
kms_envelope_decrypt(kms_client *c, const kms_envelope_decrypt_opts *opts,
    const uint8_t *msg, size_t len, kms_secret *out, kms_envelope_info *info,
    kms_error_info *ei)
{
	kms_decryptor *d = NULL;
	struct membuf b = { NULL, 0, 0, 1 };
	uint8_t *p = NULL;
	int r;

	client_ok(ei);
	if (out == NULL || (msg == NULL && len > 0)) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	if ((r = kms_decryptor_new(c, opts, mem_sink, &b, &d, ei)) != 0 ||
	    (r = kms_decryptor_update(d, msg, len, ei)) != 0 ||
	    (r = kms_decryptor_final(d, info, ei)) != 0) {
		goto out;
	}
	/* Exactly sized, so kms_secret_free wipes what it frees. */
	if ((p = secure_alloc(b.len > 0 ? b.len : 1)) == NULL) {
		kms_envelope_info_free(info);
		r = client_fail(ei, KMS_ENOMEM, "Out of memory");
		goto out;
	}
	if (b.len > 0) {
		memcpy(p, b.p, b.len);
	}
	out->data = p;
	out->len = b.len;
	r = 0;
 out:
	kms_decryptor_free(d);
	mem_free(&b);
	return r;
}

static int
fd_sink(void *arg, const uint8_t *p, size_t n)
{
	return io_write_all(*(int *)arg, p, n);
}

/* Read in_fd to its end through step(); 0 or the first error. */
static int
pump(int in_fd, int (*step)(void *, const uint8_t *, size_t,
    kms_error_info *), void *ctx, kms_error_info *ei)
{
	uint8_t *buf;
	ssize_t n;
	int r = 0;

	if ((buf = malloc(IO_CHUNK)) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	for (;;) {
		if ((n = read(in_fd, buf, IO_CHUNK)) < 0) {
			if (errno == EINTR) {
				continue;
			}
			r = client_fail(ei, KMS_EIO, "Reading the input failed: "
			    "%s", strerror(errno));
			break;
		}
		if (n == 0 || (r = step(ctx, buf, (size_t)n, ei)) != 0) {
			break;
		}
	}
	free(buf);
	return r;
}

static int
enc_step(void *ctx, const uint8_t *p, size_t n, kms_error_info *ei)
{
	return kms_encryptor_update(ctx, p, n, ei);
}

static int
dec_step(void *ctx, const uint8_t *p, size_t n, kms_error_info *ei)
{
	return kms_decryptor_update(ctx, p, n, ei);
}

KMS_API int
kms_envelope_encrypt_fd(kms_client *c, const char *key_id,
    const kms_envelope_encrypt_opts *opts, int in_fd, int out_fd,
    kms_error_info *ei)
{
	kms_envelope_encrypt_opts o;
	kms_encryptor *e = NULL;
	struct stat st;
	int r;

	client_ok(ei);
	memset(&o, 0, sizeof(o));
	if (opts != NULL) {
		o = *opts;
	}
	/* A regular file read from its start has a known size. */
	if (o.plaintext_length == 0 && fstat(in_fd, &st) == 0 &&
	    S_ISREG(st.st_mode) && lseek(in_fd, 0, SEEK_CUR) == 0 &&
	    st.st_size > 0) {
		o.plaintext_length = (uint64_t)st.st_size;
	}
	if ((r = kms_encryptor_new(c, key_id, &o, fd_sink, &out_fd, &e,
	    ei)) == 0 && (r = pump(in_fd, enc_step, e, ei)) == 0) {
		r = kms_encryptor_final(e, ei);
	}
	kms_encryptor_free(e);
	return r;
}

KMS_API int
kms_envelope_decrypt_fd(kms_client *c, const kms_envelope_decrypt_opts *opts,
    int in_fd, int out_fd, kms_envelope_info *info, kms_error_info *ei)
{
	kms_decryptor *d = NULL;
	int r;

	client_ok(ei);
	if ((r = kms_decryptor_new(c, opts, fd_sink, &out_fd, &d, ei)) == 0 &&
	    (r = pump(in_fd, dec_step, d, ei)) == 0) {
		r = kms_decryptor_final(d, info, ei);
	}
	kms_decryptor_free(d);
	return r;
}
