/*
 * test_envelope_kms.c — envelope messages with data keys from a real
 * kmsd on a throwaway SoftHSM2 token, through libkmsclient and kmsctl as
 * users call them: round trips (one-shot, descriptors, incremental, a
 * 100 MiB stream), the EDK kmsd writes (provider id, the ARN kmsd
 * returned), required context pairs, a data key re-wrapped under another
 * kms key, the data-key cache's limits counted in requests sent to kmsd,
 * a cache shared by 16 threads, and kmsctl encrypt-file / decrypt-file
 * (stdin/stdout, a directory, no partial output on failure).
 */
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "kms.h"
#include "tests/testutil.h"

static struct tu_env env;
static struct tu_env env2;	/* the HTTPS interop test's, while it runs */
static kms_client *cl;
static char key[KMS_KEY_ID_LEN + 1], key2[KMS_KEY_ID_LEN + 1];
static char arn[KMS_ARN_MAX];

static void
must(int r, const kms_error_info *ei, const char *what)
{
	if (r != 0) {
		fail_msg("%s: %d %s: %s", what, r, ei->name, ei->message);
	}
}

static void
new_key(char *out, char *arn_out)
{
	kms_create_key_req req = { 0 };
	kms_key_metadata m;
	kms_error_info ei;

	req.description = "envelope";
	must(kms_create_key(cl, &req, &m, &ei), &ei, "CreateKey");
	snprintf(out, KMS_KEY_ID_LEN + 1, "%s", m.key_id);
	if (arn_out != NULL) {
		snprintf(arn_out, KMS_ARN_MAX, "%s", m.arn);
	}
	kms_key_metadata_free(&m);
}

static int
setup(void **state)
{
	if (tu_env_init(&env, NULL) != 0 || tu_kmsd_start(&env) != 0 ||
	    kms_client_open(&cl, env.endpoint) != 0) {
		return -1;
	}
	kms_client_set_timeout(cl, 20000);
	new_key(key, arn);
	new_key(key2, NULL);
	return 0;
}

static int
teardown(void **state)
{
	kms_client_close(cl);
	cl = NULL;
	if (env2.dir[0] != '\0') {
		tu_env_destroy(&env2);	/* a failed interop test's */
	}
	if (tu_kmsd_stop(&env) != 0) {
		tu_env_destroy(&env);
		return -1;
	}
	tu_env_destroy(&env);
	return 0;
}

static const kms_context_pair ctx_pairs[] = { { "tenant", "acme" },
	{ "purpose", "backup" } };
static const kms_context ctx2 = { ctx_pairs, 2 };

static uint8_t *
pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len + 1);
	size_t i;

	for (i = 0; i < len; i++) {
		p[i] = (uint8_t)(i * 131 + seed + (i >> 10));
	}
	return p;
}

static void
encrypt_buf(uint16_t suite, uint32_t frame, const uint8_t *pt, size_t len,
    kms_dk_cache *cache, kms_buf *out)
{
	kms_envelope_encrypt_opts o;
	kms_error_info ei;

	memset(&o, 0, sizeof(o));
	o.algorithm = suite;
	o.frame_length = frame;
	o.context = ctx2;
	o.cache = cache;
	must(kms_envelope_encrypt(cl, key, &o, pt, len, out, &ei), &ei,
	    "kms_envelope_encrypt");
}

/* ---------------------------------------------------------- round trips */

static void
test_envelope_kms_round_trips_both_suites_and_sizes(void **state)
{
	const uint16_t suites[] = { 0x0478, 0x0578 };
	const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 70000 };
	size_t s, k, i;

	for (s = 0; s < 2; s++) {
		for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			uint8_t *pt = pattern(sizes[k], (unsigned)k);
			kms_envelope_info info;
			kms_error_info ei;
			kms_secret out;
			kms_buf ct;
			int seen = 0;

			encrypt_buf(suites[s], 0, pt, sizes[k], NULL, &ct);
			must(kms_envelope_decrypt(cl, NULL, ct.data, ct.len,
			    &out, &info, &ei), &ei, "kms_envelope_decrypt");
			assert_int_equal(out.len, sizes[k]);
			if (sizes[k] > 0) {
				assert_memory_equal(out.data, pt, sizes[k]);
			}
			assert_int_equal(info.algorithm, suites[s]);
			assert_int_equal(info.frame_length, 4096);
			/* The ARN is the one kmsd gave, never built here. */
			assert_string_equal(info.key_arn, arn);
			for (i = 0; i < info.npairs; i++) {
				if (strcmp(info.pairs[i].key, "tenant") == 0) {
					assert_string_equal(
					    info.pairs[i].value, "acme");
					seen++;
				}
			}
			assert_int_equal(seen, 1);
			assert_int_equal(info.npairs, 2 + (s == 1));
			kms_envelope_info_free(&info);
			kms_secret_free(&out);
			kms_buf_free(&ct);
			free(pt);
		}
	}
}

static void
test_envelope_kms_writes_one_aws_kms_edk_with_the_key_arn(void **state)
{
	uint8_t pt[10] = { 1 };
	kms_buf ct;
	size_t off, l, alen = strlen(arn);

	encrypt_buf(0, 0, pt, sizeof(pt), NULL, &ct);
	/* version, suite, message id, AAD (length + context). */
	off = 1 + 2 + 32;
	l = ((size_t)ct.data[off] << 8) | ct.data[off + 1];
	off += 2 + l;
	assert_int_equal(ct.data[off], 0);
	assert_int_equal(ct.data[off + 1], 1);		/* one EDK */
	off += 2;
	assert_int_equal(ct.data[off + 1], 7);
	assert_memory_equal(ct.data + off + 2, "aws-kms", 7);
	off += 2 + 7;
	assert_int_equal(((size_t)ct.data[off] << 8) | ct.data[off + 1],
	    alen);
	assert_memory_equal(ct.data + off + 2, arn, alen);
	off += 2 + alen;
	/* The EDK is kmsd's ciphertext blob, format 1. */
	assert_int_equal(ct.data[off + 2], 0x01);
	kms_buf_free(&ct);
}

/* A sink that feeds a decryptor, and a sink that hashes. */
struct chain {
	kms_decryptor *d;
	EVP_MD_CTX *md;
	uint64_t n;
};

static int
hash_sink(void *arg, const uint8_t *p, size_t n)
{
	struct chain *c = arg;

	c->n += n;
	return EVP_DigestUpdate(c->md, p, n) == 1 ? 0 : -1;
}

static int
chain_sink(void *arg, const uint8_t *p, size_t n)
{
	struct chain *c = arg;
	kms_error_info ei;

	return kms_decryptor_update(c->d, p, n, &ei);
}

static void
test_envelope_kms_streams_100_mib_incrementally(void **state)
{
	const size_t total = 100u << 20, chunk = 1u << 20;
	uint8_t *buf = pattern(chunk, 9), want[64], got[64];
	EVP_MD_CTX *mdw = EVP_MD_CTX_new();
	struct chain in = { 0 }, out = { 0 };
	kms_envelope_encrypt_opts o;
	kms_encryptor *e = NULL;
	kms_envelope_info info;
	kms_error_info ei;
	size_t done;
	unsigned int wl, gl;

	memset(&o, 0, sizeof(o));
	o.context = ctx2;
	o.frame_length = 65536;
	out.md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(mdw, EVP_sha512(), NULL);
	EVP_DigestInit_ex(out.md, EVP_sha512(), NULL);
	must(kms_decryptor_new(cl, NULL, hash_sink, &out, &in.d, &ei), &ei,
	    "kms_decryptor_new");
	must(kms_encryptor_new(cl, key, &o, chain_sink, &in, &e, &ei), &ei,
	    "kms_encryptor_new");
	for (done = 0; done < total; done += chunk) {
		buf[0] = (uint8_t)(done >> 20);
		EVP_DigestUpdate(mdw, buf, chunk);
		must(kms_encryptor_update(e, buf, chunk, &ei), &ei, "update");
	}
	must(kms_encryptor_final(e, &ei), &ei, "final");
	must(kms_decryptor_final(in.d, &info, &ei), &ei, "decryptor final");
	EVP_DigestFinal_ex(mdw, want, &wl);
	EVP_DigestFinal_ex(out.md, got, &gl);
	assert_int_equal(out.n, total);
	assert_memory_equal(want, got, 64);
	assert_int_equal(info.frame_length, 65536);
	kms_envelope_info_free(&info);
	kms_encryptor_free(e);
	kms_decryptor_free(in.d);
	EVP_MD_CTX_free(mdw);
	EVP_MD_CTX_free(out.md);
	free(buf);
}

static int
tmpfile_with(const void *p, size_t n, char *path)
{
	int fd;

	snprintf(path, 300, "%s/envXXXXXX", env.dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void
test_envelope_kms_round_trips_over_descriptors(void **state)
{
	size_t n = 3u << 20;
	uint8_t *pt = pattern(n, 3), *back = malloc(n + 1);
	char p1[300], p2[300], p3[300];
	int in = tmpfile_with(pt, n, p1), mid = tmpfile_with("", 0, p2);
	int out = tmpfile_with("", 0, p3);
	kms_envelope_encrypt_opts o;
	kms_envelope_info info;
	kms_error_info ei;

	memset(&o, 0, sizeof(o));
	o.algorithm = KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384;
	o.context = ctx2;
	must(kms_envelope_encrypt_fd(cl, key, &o, in, mid, &ei), &ei,
	    "encrypt_fd");
	assert_int_equal(lseek(mid, 0, SEEK_SET), 0);
	must(kms_envelope_decrypt_fd(cl, NULL, mid, out, &info, &ei), &ei,
	    "decrypt_fd");
	assert_int_equal(pread(out, back, n + 1, 0), (ssize_t)n);
	assert_memory_equal(back, pt, n);
	assert_int_equal(info.algorithm, 0x0578);
	kms_envelope_info_free(&info);
	close(in);
	close(mid);
	close(out);
	unlink(p1);
	unlink(p2);
	unlink(p3);
	free(pt);
	free(back);
}

/* ----------------------------------------------------------- refusals */

static void
test_envelope_kms_required_context_pairs(void **state)
{
	const kms_context_pair wrong[] = { { "tenant", "evil" } };
	const kms_context_pair absent[] = { { "owner", "x" } };
	const kms_context_pair right[] = { { "tenant", "acme" } };
	kms_envelope_decrypt_opts d;
	kms_error_info ei;
	kms_secret out;
	kms_buf ct;
	uint64_t before;

	encrypt_buf(0, 0, (const uint8_t *)"hello", 5, NULL, &ct);
	memset(&d, 0, sizeof(d));
	d.required.pairs = wrong;
	d.required.npairs = 1;
	before = kms_client_requests(cl);
	assert_int_equal(kms_envelope_decrypt(cl, &d, ct.data, ct.len, &out,
	    NULL, &ei), KMS_EINVALIDCIPHERTEXT);
	d.required.pairs = absent;
	assert_int_equal(kms_envelope_decrypt(cl, &d, ct.data, ct.len, &out,
	    NULL, &ei), KMS_EINVALIDCIPHERTEXT);
	assert_non_null(strstr(ei.message, "\"owner\""));
	/* Refused before kmsd was asked for the data key. */
	assert_int_equal(kms_client_requests(cl), before);
	d.required.pairs = right;
	must(kms_envelope_decrypt(cl, &d, ct.data, ct.len, &out, NULL, &ei),
	    &ei, "decrypt with the right pair");
	assert_int_equal(out.len, 5);
	kms_secret_free(&out);
	kms_buf_free(&ct);
}

/* Offset and length of the one EDK's blob and provider info. */
static void
edk_fields(const kms_buf *ct, size_t *info_off, size_t *info_len,
    size_t *blob_off, size_t *blob_len)
{
	size_t off = 1 + 2 + 32, l;

	l = ((size_t)ct->data[off] << 8) | ct->data[off + 1];
	off += 2 + l + 2;
	l = ((size_t)ct->data[off] << 8) | ct->data[off + 1];
	off += 2 + l;
	*info_len = ((size_t)ct->data[off] << 8) | ct->data[off + 1];
	*info_off = off + 2;
	off += 2 + *info_len;
	*blob_len = ((size_t)ct->data[off] << 8) | ct->data[off + 1];
	*blob_off = off + 2;
}

static void
test_envelope_kms_data_key_rewrapped_under_another_key_fails(void **state)
{
	kms_re_encrypt_req rq = { 0 };
	kms_re_encrypt_resp rr;
	kms_key_metadata m2;
	kms_error_info ei;
	kms_secret out;
	kms_buf ct;
	size_t io, il, bo, bl;

	encrypt_buf(0, 0, (const uint8_t *)"secret data", 11, NULL, &ct);
	edk_fields(&ct, &io, &il, &bo, &bl);
	rq.ciphertext_blob = ct.data + bo;
	rq.ciphertext_len = bl;
	rq.source_context = ctx2;
	rq.destination_key_id = key2;
	rq.destination_context = ctx2;
	must(kms_re_encrypt(cl, &rq, &rr, &ei), &ei, "ReEncrypt");
	assert_int_equal(rr.ciphertext_blob.len, bl);
	memcpy(ct.data + bo, rr.ciphertext_blob.data, bl);
	/* The provider info still names the first key: kmsd refuses. */
	assert_int_not_equal(kms_envelope_decrypt(cl, NULL, ct.data, ct.len,
	    &out, NULL, &ei), 0);
	assert_string_equal(ei.name, "IncorrectKeyException");
	/* Naming the second key too: the data key unwraps (it is the same
	 * key), but the header no longer authenticates. */
	must(kms_describe_key(cl, key2, NULL, &m2, &ei), &ei, "DescribeKey");
	assert_int_equal(strlen(m2.arn), il);
	memcpy(ct.data + io, m2.arn, il);
	assert_int_equal(kms_envelope_decrypt(cl, NULL, ct.data, ct.len, &out,
	    NULL, &ei), KMS_EINVALIDCIPHERTEXT);
	assert_string_equal(ei.message, "Message header failed "
	    "authentication");
	kms_key_metadata_free(&m2);
	kms_re_encrypt_resp_free(&rr);
	kms_buf_free(&ct);
}

static void
test_envelope_kms_tampered_frame_fails_and_names_it(void **state)
{
	uint8_t *pt = pattern(20000, 1);
	kms_error_info ei;
	kms_secret out = { NULL, 0 };
	kms_buf ct;

	encrypt_buf(0, 0, pt, 20000, NULL, &ct);
	ct.data[ct.len - 5000] ^= 0x40;
	assert_int_equal(kms_envelope_decrypt(cl, NULL, ct.data, ct.len, &out,
	    NULL, &ei), KMS_EINVALIDCIPHERTEXT);
	assert_non_null(strstr(ei.message, "Frame 4"));
	assert_null(out.data);
	kms_buf_free(&ct);
	free(pt);
}

/* -------------------------------------------------------------- cache */

static void
test_envelope_kms_cache_honours_max_messages_exactly(void **state)
{
	kms_dk_cache_opts co = { 0 };
	kms_dk_cache *cache;
	kms_dk_cache_stats st;
	uint64_t before;
	kms_buf ct;
	int i;

	co.max_age_ms = 600000;
	co.max_messages = 3;
	assert_int_equal(kms_dk_cache_new(&co, &cache), 0);
	before = kms_client_requests(cl);
	for (i = 0; i < 10; i++) {
		encrypt_buf(0, 0, (const uint8_t *)"x", 1, cache, &ct);
		kms_buf_free(&ct);
	}
	/* 10 messages, 3 per data key: 4 GenerateDataKey calls. */
	assert_int_equal(kms_client_requests(cl) - before, 4);
	kms_dk_cache_stats_get(cache, &st);
	assert_int_equal(st.hits, 6);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.evictions, 3);
	assert_int_equal(st.entries, 1);
	/* Another context is another entry. */
	{
		kms_envelope_encrypt_opts o = { 0 };
		kms_error_info ei;
		o.cache = cache;
		must(kms_envelope_encrypt(cl, key, &o, (const uint8_t *)"y", 1,
		    &ct, &ei), &ei, "encrypt");
		kms_buf_free(&ct);
	}
	assert_int_equal(kms_client_requests(cl) - before, 5);
	kms_dk_cache_free(cache);
}

static void
test_envelope_kms_cache_honours_max_bytes_and_age(void **state)
{
	kms_dk_cache_opts co = { 0 };
	kms_dk_cache *cache;
	uint8_t *pt = pattern(400, 2);
	uint64_t before;
	kms_buf ct;
	int i;

	co.max_age_ms = 600000;
	co.max_bytes = 1000;
	assert_int_equal(kms_dk_cache_new(&co, &cache), 0);
	before = kms_client_requests(cl);
	/* 400 + 400 fit in 1000, a third does not: 2 per data key. */
	for (i = 0; i < 6; i++) {
		encrypt_buf(0, 0, pt, 400, cache, &ct);
		kms_buf_free(&ct);
	}
	assert_int_equal(kms_client_requests(cl) - before, 3);
	/* A message larger than max_bytes never uses the cache. */
	{
		uint8_t *big = pattern(1001, 1);
		encrypt_buf(0, 0, big, 1001, cache, &ct);
		kms_buf_free(&ct);
		encrypt_buf(0, 0, big, 1001, cache, &ct);
		kms_buf_free(&ct);
		free(big);
	}
	assert_int_equal(kms_client_requests(cl) - before, 5);
	kms_dk_cache_free(cache);

	/* Age: reused within max_age, fetched again after it. */
	co.max_bytes = 0;
	co.max_age_ms = 400;
	assert_int_equal(kms_dk_cache_new(&co, &cache), 0);
	before = kms_client_requests(cl);
	encrypt_buf(0, 0, pt, 10, cache, &ct);
	kms_buf_free(&ct);
	encrypt_buf(0, 0, pt, 10, cache, &ct);
	kms_buf_free(&ct);
	assert_int_equal(kms_client_requests(cl) - before, 1);
	usleep(600 * 1000);
	encrypt_buf(0, 0, pt, 10, cache, &ct);
	kms_buf_free(&ct);
	assert_int_equal(kms_client_requests(cl) - before, 2);
	kms_dk_cache_free(cache);
	free(pt);
}

static void
test_envelope_kms_decrypt_cache_has_a_ttl(void **state)
{
	kms_dk_cache_opts co = { 0 };
	kms_envelope_decrypt_opts d;
	kms_dk_cache *cache;
	kms_dk_cache_stats st;
	kms_error_info ei;
	kms_secret out;
	uint64_t before;
	kms_buf ct;
	int i;

	co.max_age_ms = 600000;
	co.decrypt_ttl_ms = 400;
	assert_int_equal(kms_dk_cache_new(&co, &cache), 0);
	encrypt_buf(0, 0, (const uint8_t *)"abc", 3, NULL, &ct);
	memset(&d, 0, sizeof(d));
	d.cache = cache;
	before = kms_client_requests(cl);
	for (i = 0; i < 5; i++) {
		must(kms_envelope_decrypt(cl, &d, ct.data, ct.len, &out, NULL,
		    &ei), &ei, "decrypt");
		kms_secret_free(&out);
	}
	assert_int_equal(kms_client_requests(cl) - before, 1);
	usleep(600 * 1000);
	must(kms_envelope_decrypt(cl, &d, ct.data, ct.len, &out, NULL, &ei),
	    &ei, "decrypt");
	kms_secret_free(&out);
	assert_int_equal(kms_client_requests(cl) - before, 2);
	kms_dk_cache_stats_get(cache, &st);
	assert_int_equal(st.hits, 4);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.evictions, 1);
	kms_dk_cache_free(cache);
	kms_buf_free(&ct);
}

struct worker {
	kms_dk_cache *cache;
	int id, ok;
};

static void *
cache_worker(void *arg)
{
	struct worker *w = arg;
	kms_envelope_decrypt_opts d;
	kms_envelope_encrypt_opts o;
	kms_error_info ei;
	kms_secret out;
	kms_buf ct;
	char msg[32];
	int i;

	memset(&o, 0, sizeof(o));
	memset(&d, 0, sizeof(d));
	o.context = ctx2;
	o.cache = w->cache;
	d.cache = w->cache;
	for (i = 0; i < 40; i++) {
		snprintf(msg, sizeof(msg), "thread %d message %d", w->id, i);
		if (kms_envelope_encrypt(cl, key, &o, (const uint8_t *)msg,
		    strlen(msg), &ct, &ei) != 0) {
			return NULL;
		}
		if (kms_envelope_decrypt(cl, &d, ct.data, ct.len, &out, NULL,
		    &ei) != 0 || out.len != strlen(msg) ||
		    memcmp(out.data, msg, out.len) != 0) {
			kms_buf_free(&ct);
			return NULL;
		}
		kms_secret_free(&out);
		kms_buf_free(&ct);
	}
	w->ok = 1;
	return NULL;
}

static void
test_envelope_kms_cache_shared_by_16_threads(void **state)
{
	kms_dk_cache_opts co = { 0 };
	kms_dk_cache *cache;
	kms_dk_cache_stats st;
	pthread_t t[16];
	struct worker w[16];
	uint64_t before;
	int i;

	co.max_age_ms = 600000;
	co.max_messages = 50;
	co.capacity = 8;
	assert_int_equal(kms_dk_cache_new(&co, &cache), 0);
	before = kms_client_requests(cl);
	for (i = 0; i < 16; i++) {
		w[i].cache = cache;
		w[i].id = i;
		w[i].ok = 0;
		assert_int_equal(pthread_create(&t[i], NULL, cache_worker,
		    &w[i]), 0);
	}
	for (i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		assert_true(w[i].ok);
	}
	kms_dk_cache_stats_get(cache, &st);
	/* 640 encryptions and 640 decryptions, every one a hit or a miss;
	 * each miss is one request to kmsd. */
	assert_int_equal(st.hits + st.misses, 1280);
	assert_int_equal(kms_client_requests(cl) - before, st.misses);
	/* 640 encryptions at 50 per key need at least 13 data keys. */
	assert_true(st.misses >= 13 + 13);
	assert_true(st.entries <= 8);
	kms_dk_cache_free(cache);
}

/* ------------------------------------------------------------ kmsctl */

static int
kmsctl(const char *args, char **out, char **err)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "%s --endpoint %s %s", tu_bin("kmsctl"),
	    env.endpoint, args);
	return tu_run(cmd, out, err);
}

static void
test_envelope_kms_kmsctl_files_stdin_and_directories(void **state)
{
	char args[2048], path[600], *out = NULL, *err = NULL;
	uint8_t *pt = pattern(50000, 5);
	int fd;

	snprintf(path, sizeof(path), "%s/plain", env.dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, pt, 50000), 50000);
	close(fd);
	snprintf(args, sizeof(args), "encrypt-file --key-id %s --input %s "
	    "--output %s/msg --encryption-context tenant=acme purpose=x "
	    "--frame-length 1000 --algorithm "
	    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384", key, path,
	    env.dir);
	assert_int_equal(kmsctl(args, &out, &err), 0);
	free(out);
	free(err);
	/* From stdin to stdout, with the required pair. */
	snprintf(args, sizeof(args), "decrypt-file --input - --output - "
	    "--encryption-context tenant=acme < %s/msg | cmp - %s", env.dir,
	    path);
	assert_int_equal(kmsctl(args, &out, &err), 0);
	free(out);
	free(err);
	/* A wrong pair: 254, and no output file. */
	snprintf(args, sizeof(args), "decrypt-file --input %s/msg --output "
	    "%s/back --encryption-context tenant=other", env.dir, env.dir);
	assert_int_equal(kmsctl(args, &out, &err), 254);
	assert_non_null(strstr(err, "InvalidCiphertextException"));
	free(out);
	free(err);
	snprintf(path, sizeof(path), "%s/back", env.dir);
	assert_int_equal(access(path, F_OK), -1);
	free(pt);
}

static void
test_envelope_kms_kmsctl_never_leaves_partial_plaintext(void **state)
{
	char args[2048], path[600], *out = NULL, *err = NULL;
	struct dirent *de;
	DIR *d;
	int n = 0;

	/* A message cut short: the frames before the cut verify, but
	 * nothing may appear under the target name. */
	snprintf(args, sizeof(args), "sh -c 'head -c 300000 /dev/urandom > "
	    "%s/p2'", env.dir);
	assert_int_equal(tu_run(args, NULL, NULL), 0);
	snprintf(args, sizeof(args), "encrypt-file --key-id %s --input %s/p2 "
	    "--output %s/m2", key, env.dir, env.dir);
	assert_int_equal(kmsctl(args, &out, &err), 0);
	free(out);
	free(err);
	snprintf(args, sizeof(args), "truncate -s 200000 %s/m2", env.dir);
	assert_int_equal(tu_run(args, NULL, NULL), 0);
	snprintf(args, sizeof(args), "decrypt-file --input %s/m2 --output "
	    "%s/b2", env.dir, env.dir);
	assert_int_equal(kmsctl(args, &out, &err), 254);
	assert_non_null(strstr(err, "truncated"));
	free(out);
	free(err);
	snprintf(path, sizeof(path), "%s/b2", env.dir);
	assert_int_equal(access(path, F_OK), -1);
	/* Nor a temporary file. */
	d = opendir(env.dir);
	while ((de = readdir(d)) != NULL) {
		n += strstr(de->d_name, ".kmsctl-") != NULL;
	}
	closedir(d);
	assert_int_equal(n, 0);
}

static void
test_envelope_kms_kmsctl_recursive_directory(void **state)
{
	char args[2048], *out = NULL, *err = NULL;

	snprintf(args, sizeof(args), "sh -c 'mkdir -p %s/tree/sub && "
	    "echo one > %s/tree/a && echo two > %s/tree/sub/b'", env.dir,
	    env.dir, env.dir);
	assert_int_equal(tu_run(args, NULL, NULL), 0);
	snprintf(args, sizeof(args), "encrypt-file --key-id %s --input "
	    "%s/tree --output %s/enc --recursive", key, env.dir, env.dir);
	assert_int_equal(kmsctl(args, &out, &err), 0);
	free(out);
	free(err);
	/* Without --recursive a directory is a usage error. */
	snprintf(args, sizeof(args), "decrypt-file --input %s/enc --output "
	    "%s/dec", env.dir, env.dir);
	assert_int_equal(kmsctl(args, &out, &err), 252);
	free(out);
	free(err);
	snprintf(args, sizeof(args), "decrypt-file --input %s/enc --output "
	    "%s/dec --recursive", env.dir, env.dir);
	assert_int_equal(kmsctl(args, &out, &err), 0);
	free(out);
	free(err);
	snprintf(args, sizeof(args), "sh -c 'test \"$(cat "
	    "%s/dec/sub/b.encrypted.decrypted)\" = two && test \"$(cat "
	    "%s/dec/a.encrypted.decrypted)\" = one'", env.dir, env.dir);
	assert_int_equal(tu_run(args, NULL, NULL), 0);
}

/* ------------------------------------- the SDK for JavaScript, KMS */

/* A free loopback port (bound, read, released). */
static int
free_port(void)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/*
 * kmsctl and the AWS Encryption SDK for JavaScript (KMS keyring, its KMS
 * client on kmsd's HTTPS endpoint) read each other's messages, both
 * suites, with a context.  Skipped until kmsd has the endpoint
 * (http_listen) and the SDK is installed (KMS_ESDK_NODE_MODULES, else
 * tests/sdk/node_modules), and tests/sdk/make-certs.sh makes certificates.
 */
static void
test_envelope_kms_interoperates_with_the_sdk_over_https(void **state)
{
	const char *mods = getenv("KMS_ESDK_NODE_MODULES");
	char certs[] = "/tmp/kms-esdk-https-XXXXXX", probe[1024];
	char extra[2048], cmd[8192], cwd[512], *out = NULL, *err = NULL;
	char akid[128] = "", karn[KMS_ARN_MAX], kid[KMS_KEY_ID_LEN + 1];
	const char *secret = "esdk-interop-secret-1";
	struct tu_env *e2 = &env2;
	kms_client *c2 = NULL;
	kms_create_key_req cr = { 0 };
	kms_key_metadata md;
	kms_error_info ei;
	struct stat st;
	char *p;
	int s, port, r;

	if (mods == NULL) {
		mods = "tests/sdk/node_modules";
	}
	snprintf(probe, sizeof(probe), "%s/@aws-crypto/client-node", mods);
	if (stat(probe, &st) != 0 ||
	    stat("tests/sdk/make-certs.sh", &st) != 0) {
		skip();
	}
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_non_null(mkdtemp(certs));
	snprintf(cmd, sizeof(cmd), "sh tests/sdk/make-certs.sh %s && "
	    "ln -s '%s%s%s' %s/node_modules && cp tests/sdk/esdk_kms.mjs %s/",
	    certs, mods[0] == '/' ? "" : cwd, mods[0] == '/' ? "" : "/", mods,
	    certs, certs);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	port = free_port();
	/* Two connection threads (test_http has the default one). */
	snprintf(extra, sizeof(extra), "http_listen = 127.0.0.1:%d\n"
	    "http_threads = 2\n"
	    "http_tls_cert = %s/server.crt\nhttp_tls_key = %s/server.key\n"
	    "http_credentials = %s/credentials", port, certs, certs, certs);
	assert_int_equal(tu_env_init(e2, extra), 0);
	snprintf(cmd, sizeof(cmd), "%s -c %s --check-config", tu_bin("kmsd"),
	    e2->conf);
	if (tu_run(cmd, NULL, NULL) != 0) {
		/* This kmsd has no HTTPS endpoint yet. */
		tu_env_destroy(e2);
		memset(e2, 0, sizeof(*e2));
		snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
		tu_run(cmd, NULL, NULL);
		skip();
	}
	/* The access key speaks for this user, as IPC does, so the key
	 * made over IPC is the caller's over HTTPS too. */
	assert_non_null(getpwuid(getuid()));
	snprintf(cmd, sizeof(cmd), "echo %s | %s -c %s credentials add "
	    "--principal user:%s --secret-stdin", secret, tu_bin("kmsd"),
	    e2->conf, getpwuid(getuid())->pw_name);
	assert_int_equal(tu_run(cmd, &out, NULL), 0);
	assert_non_null(p = strstr(out, "aws_access_key_id = "));
	sscanf(p + strlen("aws_access_key_id = "), "%127s", akid);
	free(out);
	assert_int_equal(tu_kmsd_start(e2), 0);
	assert_int_equal(kms_client_open(&c2, e2->endpoint), 0);
	cr.description = "esdk interop";
	must(kms_create_key(c2, &cr, &md, &ei), &ei, "CreateKey");
	/* The ARN as kmsd gives it, never built here. */
	snprintf(karn, sizeof(karn), "%s", md.arn);
	snprintf(kid, sizeof(kid), "%s", md.key_id);
	kms_key_metadata_free(&md);
	snprintf(cmd, sizeof(cmd), "head -c 100000 /dev/urandom > %s/plain",
	    certs);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	for (s = 0; s < 2; s++) {
		const char *alg = s == 0 ? "AES_256_GCM_HKDF_SHA512_COMMIT_KEY" :
		    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384";
		/* kmsctl writes, the SDK reads. */
		snprintf(cmd, sizeof(cmd), "%s --endpoint %s encrypt-file "
		    "--key-id %s --input %s/plain --output %s/k%d "
		    "--encryption-context app=interop stage=test --algorithm "
		    "%s && KMSD_ENDPOINT=https://127.0.0.1:%d ADMIN_AKID=%s "
		    "ADMIN_SECRET=%s NODE_EXTRA_CA_CERTS=%s/server.crt node "
		    "%s/esdk_kms.mjs decrypt %s app=interop,stage=test "
		    "%s/k%d:%s/k%d.back && cmp %s/plain %s/k%d.back",
		    tu_bin("kmsctl"), e2->endpoint, kid, certs, certs, s, alg,
		    port, akid, secret, certs, certs, karn, certs, s, certs, s,
		    certs, certs, s);
		if (tu_run(cmd, NULL, &err) != 0) {
			fail_msg("kmsctl -> SDK, %s: %s", alg, err);
		}
		free(err);
		err = NULL;
		/* The SDK writes, kmsctl reads. */
		snprintf(cmd, sizeof(cmd), "KMSD_ENDPOINT=https://127.0.0.1:%d "
		    "ADMIN_AKID=%s ADMIN_SECRET=%s NODE_EXTRA_CA_CERTS="
		    "%s/server.crt node %s/esdk_kms.mjs encrypt %s %s "
		    "app=interop,stage=test %s/plain:%s/n%d && %s --endpoint %s "
		    "decrypt-file --input %s/n%d --output %s/n%d.back "
		    "--encryption-context app=interop stage=test && cmp "
		    "%s/plain %s/n%d.back", port, akid, secret, certs, certs,
		    karn, s == 0 ? "0478" : "0578", certs, certs, s,
		    tu_bin("kmsctl"), e2->endpoint, certs, s, certs, s, certs,
		    certs, s);
		if (tu_run(cmd, NULL, &err) != 0) {
			fail_msg("SDK -> kmsctl, %s: %s", alg, err);
		}
		free(err);
		err = NULL;
	}
	kms_client_close(c2);
	r = tu_env_destroy(e2);
	memset(e2, 0, sizeof(*e2));
	assert_int_equal(r, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_envelope_kms_round_trips_both_suites_and_sizes),
		cmocka_unit_test(
		    test_envelope_kms_writes_one_aws_kms_edk_with_the_key_arn),
		cmocka_unit_test(
		    test_envelope_kms_streams_100_mib_incrementally),
		cmocka_unit_test(
		    test_envelope_kms_round_trips_over_descriptors),
		cmocka_unit_test(test_envelope_kms_required_context_pairs),
		cmocka_unit_test(
		    test_envelope_kms_data_key_rewrapped_under_another_key_fails),
		cmocka_unit_test(
		    test_envelope_kms_tampered_frame_fails_and_names_it),
		cmocka_unit_test(
		    test_envelope_kms_cache_honours_max_messages_exactly),
		cmocka_unit_test(
		    test_envelope_kms_cache_honours_max_bytes_and_age),
		cmocka_unit_test(test_envelope_kms_decrypt_cache_has_a_ttl),
		cmocka_unit_test(test_envelope_kms_cache_shared_by_16_threads),
		cmocka_unit_test(
		    test_envelope_kms_kmsctl_files_stdin_and_directories),
		cmocka_unit_test(
		    test_envelope_kms_kmsctl_never_leaves_partial_plaintext),
		cmocka_unit_test(test_envelope_kms_kmsctl_recursive_directory),
		cmocka_unit_test(
		    test_envelope_kms_interoperates_with_the_sdk_over_https),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
