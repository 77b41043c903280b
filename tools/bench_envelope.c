/*
 * bench_envelope.c — kms-bench --op envelope: how close envelope
 * encryption in the AWS Encryption SDK's format comes to the cipher
 * underneath it.
 *
 * A stream of --stream-mib MiB (generated in memory, 1 MiB at a time, so
 * no disk and no buffer of the stream's size) goes (1) through an
 * encryptor whose output is discarded, and (2) through an encryptor
 * feeding a decryptor, so every byte is encrypted and then decrypted and
 * verified.  The baseline is OpenSSL's raw AES-256-GCM over the same
 * frames, (1) seal each frame, (2) seal and open each frame, taking turns
 * with the envelope 1 MiB by 1 MiB in the same pass, so that on a shared,
 * noisy machine both meet the same load.  What the envelope
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

#include "tools/proc.h"
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

/* Raw AES-256-GCM over one chunk's frames, as the envelope cuts them. */
struct raw {
	EVP_CIPHER_CTX *cx, *dx;
	uint8_t *ct, *pt;
	uint64_t seq;
};

static int
raw_chunk(struct raw *w, uint32_t frame, int dec, const uint8_t *buf)
{
	uint8_t iv[12] = { 0 }, tag[16];
	size_t off, n;
	int outl;

	for (off = 0; off < CHUNK; off += n) {
		n = CHUNK - off < frame ? CHUNK - off : frame;
		w->seq++;
		memcpy(iv + 4, &w->seq, 8);
		if (EVP_CipherInit_ex(w->cx, NULL, NULL, NULL, iv, 1) != 1 ||
		    EVP_CipherUpdate(w->cx, w->ct, &outl, buf + off,
		    (int)n) != 1 ||
		    EVP_CipherFinal_ex(w->cx, w->ct + n, &outl) != 1 ||
		    EVP_CIPHER_CTX_ctrl(w->cx, EVP_CTRL_GCM_GET_TAG, 16,
		    tag) != 1) {
			return -1;
		}
		if (dec && (EVP_CipherInit_ex(w->dx, NULL, NULL, NULL, iv,
		    0) != 1 ||
		    EVP_CipherUpdate(w->dx, w->pt, &outl, w->ct, (int)n) != 1 ||
		    EVP_CIPHER_CTX_ctrl(w->dx, EVP_CTRL_GCM_SET_TAG, 16,
		    tag) != 1 ||
		    EVP_CipherFinal_ex(w->dx, w->pt + n, &outl) != 1)) {
			return -1;
		}
	}
	return 0;
}

/*
 * One pass over total bytes: the envelope (encryptor, or encryptor into
 * decryptor when dec) and raw AES-256-GCM over the same frames, taking
 * turns chunk by chunk (1 MiB, about a millisecond each), so that both
 * meet the same load on a shared machine.  Seconds spent in each.
 */
static int
pass(kms_client *c, const char *key, uint32_t frame, int dec,
    const uint8_t *buf, uint64_t total, double *env_s, double *raw_s)
{
	kms_envelope_encrypt_opts o;
	kms_encryptor *e = NULL;
	struct counter cnt = { 0 };
	struct chain ch;
	struct raw w;
	kms_error_info ei;
	uint8_t rk[32];
	uint64_t done;
	double t0, t1, te = 0, tr = 0;
	int r = -1;

	memset(&o, 0, sizeof(o));
	memset(&ch, 0, sizeof(ch));
	memset(&w, 0, sizeof(w));
	o.frame_length = frame;
	o.context = bench_ctx;
	if ((w.cx = EVP_CIPHER_CTX_new()) == NULL ||
	    (w.dx = EVP_CIPHER_CTX_new()) == NULL ||
	    (w.ct = malloc(frame + 16)) == NULL ||
	    (w.pt = malloc(frame + 16)) == NULL ||
	    RAND_bytes(rk, sizeof(rk)) != 1 ||
	    EVP_CipherInit_ex(w.cx, EVP_aes_256_gcm(), NULL, rk, NULL, 1) != 1 ||
	    EVP_CipherInit_ex(w.dx, EVP_aes_256_gcm(), NULL, rk, NULL, 0) != 1) {
		goto out;
	}
	/* The data key fetch and the header count for the envelope. */
	t0 = bench_now();
	if (dec && kms_decryptor_new(c, NULL, discard, &ch.out, &ch.d,
	    &ei) != 0) {
		fail("kms_decryptor_new", &ei);
		goto out;
	}
	if (kms_encryptor_new(c, key, &o, dec ? to_decryptor : discard,
	    dec ? (void *)&ch : (void *)&cnt, &e, &ei) != 0) {
		fail("kms_encryptor_new", &ei);
		goto out;
	}
	te += bench_now() - t0;
	for (done = 0; done < total; done += CHUNK) {
		t0 = bench_now();
		if (kms_encryptor_update(e, buf, CHUNK, &ei) != 0) {
			fail("update", &ei);
			goto out;
		}
		t1 = bench_now();
		if (raw_chunk(&w, frame, dec, buf) != 0) {
			fprintf(stderr, "kms-bench: envelope: raw AES-GCM "
			    "failed\n");
			goto out;
		}
		te += t1 - t0;
		tr += bench_now() - t1;
	}
	t0 = bench_now();
	if (kms_encryptor_final(e, &ei) != 0) {
		fail("final", &ei);
		goto out;
	}
	if (dec && (kms_decryptor_final(ch.d, NULL, &ei) != 0 ||
	    ch.out.n != total)) {
		fail("decryptor final", &ei);
		goto out;
	}
	te += bench_now() - t0;
	*env_s = te;
	*raw_s = tr;
	r = 0;
 out:
	kms_encryptor_free(e);
	kms_decryptor_free(ch.d);
	EVP_CIPHER_CTX_free(w.cx);
	EVP_CIPHER_CTX_free(w.dx);
	free(w.ct);
	free(w.pt);
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
		if (pass(c, key, frame, 0, buf, total, &ee[k], &re[k]) != 0 ||
		    pass(c, key, frame, 1, buf, total, &ed[k], &rd[k]) != 0) {
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
