/*
 * bench_envelope.c — kms-bench --op envelope: how close envelope
 * encryption in the AWS Encryption SDK's format comes to the cipher
 * underneath it.
 *
 * A stream of --stream-mib MiB (generated in memory, 1 MiB at a time, so
 * no disk and no buffer of the stream's size) goes (1) through an
 * encryptor whose output is discarded, and (2) through an encryptor
 * feeding a decryptor, so every byte is encrypted and then decrypted and
 * verified.  The baseline, measured in the same run and alternated with
 * it round by round, is OpenSSL's raw AES-256-GCM over the same frames:
 * (1) seal each frame, (2) seal and open each frame.  What the envelope
 * adds is the key fetch from kmsd, the body AAD, the header, the copy
 * into and out of the frame buffers and the sinks.  Peak RSS (VmHWM) of
 * this process shows that memory stays flat whatever the stream's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/proc.h"
#include "tools/bench.h"

#define CHUNK (1u << 20)
#define MAX_ROUNDS 15

struct counter {
	uint64_t n;
};

static int
discard(void *arg, const uint8_t *p, size_t n)
{
	((struct counter *)arg)->n += n;
	return 0;
}

struct chain {
	kms_decryptor *d;
	struct counter out;
};

static int
to_decryptor(void *arg, const uint8_t *p, size_t n)
{
	struct chain *c = arg;
	kms_error_info ei;

	return kms_decryptor_update(c->d, p, n, &ei);
}

static int
fail(const char *what, const kms_error_info *ei)
{
	fprintf(stderr, "kms-bench: envelope: %s: %s: %s\n", what, ei->name,
	    ei->message);
	return -1;
}

/* Seconds to push total bytes through the envelope; dec: and back. */
static int
envelope_pass(kms_client *c, const char *key, uint32_t frame, int dec,
    const uint8_t *buf, uint64_t total, double *secs)
{
	kms_envelope_encrypt_opts o;
	kms_encryptor *e = NULL;
	struct counter cnt = { 0 };
	struct chain ch;
	kms_error_info ei;
	uint64_t done;
	double t0;
	int r = -1;

	memset(&o, 0, sizeof(o));
	memset(&ch, 0, sizeof(ch));
	o.frame_length = frame;
	o.context = bench_ctx;
	t0 = bench_now();
	if (dec && kms_decryptor_new(c, NULL, discard, &ch.out, &ch.d,
	    &ei) != 0) {
		return fail("kms_decryptor_new", &ei);
	}
	if (kms_encryptor_new(c, key, &o, dec ? to_decryptor : discard,
	    dec ? (void *)&ch : (void *)&cnt, &e, &ei) != 0) {
		fail("kms_encryptor_new", &ei);
		goto out;
	}
	for (done = 0; done < total; done += CHUNK) {
		if (kms_encryptor_update(e, buf, CHUNK, &ei) != 0) {
			fail("update", &ei);
			goto out;
		}
	}
	if (kms_encryptor_final(e, &ei) != 0) {
		fail("final", &ei);
		goto out;
	}
	if (dec && (kms_decryptor_final(ch.d, NULL, &ei) != 0 ||
	    ch.out.n != total)) {
		fail("decryptor final", &ei);
		goto out;
	}
	*secs = bench_now() - t0;
	r = 0;
 out:
	kms_encryptor_free(e);
	kms_decryptor_free(ch.d);
	return r;
}

/* The same frames through raw AES-256-GCM, key set once. */
static int
raw_pass(uint32_t frame, int dec, const uint8_t *buf, uint64_t total,
    double *secs)
{
	EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new(), *dx = EVP_CIPHER_CTX_new();
	uint8_t key[32], iv[12] = { 0 }, tag[16], *ct = malloc(frame + 16);
	uint8_t *pt = malloc(frame + 16);
	uint64_t done, seq = 0;
	double t0;
	size_t off, n;
	int outl, r = -1;

	/* One context per direction, as the encryptor and decryptor. */
	if (cx == NULL || dx == NULL || ct == NULL || pt == NULL ||
	    RAND_bytes(key, sizeof(key)) != 1 ||
	    EVP_CipherInit_ex(cx, EVP_aes_256_gcm(), NULL, key, NULL, 1) != 1 ||
	    EVP_CipherInit_ex(dx, EVP_aes_256_gcm(), NULL, key, NULL, 0) != 1) {
		goto out;
	}
	t0 = bench_now();
	for (done = 0; done < total; done += CHUNK) {
		for (off = 0; off < CHUNK; off += n) {
			n = CHUNK - off < frame ? CHUNK - off : frame;
			seq++;
			memcpy(iv + 4, &seq, 8);
			if (EVP_CipherInit_ex(cx, NULL, NULL, NULL, iv, 1) != 1 ||
			    EVP_CipherUpdate(cx, ct, &outl, buf + off,
			    (int)n) != 1 ||
			    EVP_CipherFinal_ex(cx, ct + n, &outl) != 1 ||
			    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_GET_TAG, 16,
			    tag) != 1) {
				goto out;
			}
			if (!dec) {
				continue;
			}
			if (EVP_CipherInit_ex(dx, NULL, NULL, NULL, iv, 0) != 1 ||
			    EVP_CipherUpdate(dx, pt, &outl, ct, (int)n) != 1 ||
			    EVP_CIPHER_CTX_ctrl(dx, EVP_CTRL_GCM_SET_TAG, 16,
			    tag) != 1 ||
			    EVP_CipherFinal_ex(dx, pt + n, &outl) != 1) {
				goto out;
			}
		}
	}
	*secs = bench_now() - t0;
	r = 0;
 out:
	EVP_CIPHER_CTX_free(cx);
	EVP_CIPHER_CTX_free(dx);
	free(ct);
	free(pt);
	return r;
}

static double
median(double *v, int n)
{
	int i, j;

	for (i = 1; i < n; i++) {
		for (j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	}
	return v[(n - 1) / 2];
}

int
run_envelope(const struct bench_opts *o)
{
	uint64_t total = o->stream_mib * CHUNK;
	uint32_t frame = o->frame_length ? o->frame_length :
	    KMS_FRAME_LENGTH_DEFAULT;
	double ee[MAX_ROUNDS], ed[MAX_ROUNDS], re[MAX_ROUNDS], rd[MAX_ROUNDS];
	double renc[MAX_ROUNDS], rrt[MAX_ROUNDS], mib = (double)o->stream_mib;
	kms_create_key_req cr;
	kms_key_metadata md;
	kms_client *c = NULL;
	kms_error_info ei;
	char key[KMS_ARN_MAX];
	uint8_t *buf = NULL;
	long rss0, rss;
	int k, rounds = o->rounds < MAX_ROUNDS ? o->rounds : MAX_ROUNDS, rc = 1;
	size_t i;

	if (kms_client_open(&c, o->endpoint) != 0) {
		fprintf(stderr, "kms-bench: cannot open the client\n");
		return 1;
	}
	if (o->key_id != NULL) {
		snprintf(key, sizeof(key), "%s", o->key_id);
	} else {
		memset(&cr, 0, sizeof(cr));
		cr.description = "kms-bench envelope";
		if (kms_create_key(c, &cr, &md, &ei) != 0) {
			fail("CreateKey", &ei);
			goto out;
		}
		snprintf(key, sizeof(key), "%s", md.key_id);
		kms_key_metadata_free(&md);
	}
	if ((buf = malloc(CHUNK)) == NULL) {
		goto out;
	}
	for (i = 0; i < CHUNK; i++) {
		buf[i] = (uint8_t)(i * 131 + 7);
	}
	rss0 = proc_status_kib(getpid(), "VmHWM");
	for (k = 0; k < rounds; k++) {
		if (envelope_pass(c, key, frame, 0, buf, total, &ee[k]) != 0 ||
		    raw_pass(frame, 0, buf, total, &re[k]) != 0 ||
		    envelope_pass(c, key, frame, 1, buf, total, &ed[k]) != 0 ||
		    raw_pass(frame, 1, buf, total, &rd[k]) != 0) {
			fprintf(stderr, "kms-bench: envelope: a pass failed\n");
			goto out;
		}
		renc[k] = re[k] / ee[k];
		rrt[k] = rd[k] / ed[k];
	}
	rss = proc_status_kib(getpid(), "VmHWM");
	if (o->json) {
		printf("{\"op\":\"envelope\",\"stream_mib\":%llu,"
		    "\"frame_length\":%u,\"rounds\":%d,"
		    "\"encrypt_mib_s\":%.1f,\"raw_encrypt_mib_s\":%.1f,"
		    "\"encrypt_ratio\":%.3f,\"round_trip_mib_s\":%.1f,"
		    "\"raw_round_trip_mib_s\":%.1f,\"round_trip_ratio\":%.3f,"
		    "\"peak_rss_kib\":%ld,\"rss_before_kib\":%ld}\n",
		    (unsigned long long)o->stream_mib, frame, rounds,
		    mib / median(ee, rounds), mib / median(re, rounds),
		    median(renc, rounds), mib / median(ed, rounds),
		    mib / median(rd, rounds), median(rrt, rounds), rss, rss0);
	} else {
		printf("envelope, %llu MiB stream, frame %u, %d round%s "
		    "(medians):\n", (unsigned long long)o->stream_mib, frame,
		    rounds, rounds == 1 ? "" : "s");
		printf("  encrypt            %8.1f MiB/s   raw AES-256-GCM "
		    "%8.1f MiB/s   ratio %.3f\n", mib / median(ee, rounds),
		    mib / median(re, rounds), median(renc, rounds));
		printf("  encrypt + decrypt  %8.1f MiB/s   raw AES-256-GCM "
		    "%8.1f MiB/s   ratio %.3f\n", mib / median(ed, rounds),
		    mib / median(rd, rounds), median(rrt, rounds));
		printf("  peak RSS %ld KiB (%ld KiB before the streams)\n", rss,
		    rss0);
	}
	rc = 0;
 out:
	free(buf);
	kms_client_close(c);
	return rc;
}
