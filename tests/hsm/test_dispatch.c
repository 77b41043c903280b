/*
 * test_dispatch.c — the dispatcher driven directly with request bytes, on a
 * real SoftHSM2 token and a real store: no nng in between.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/b64.h"
#include "common/blob.h"
#include "common/err.h"
#include "common/secmem.h"
#include "kmsd/daemon/daemon.h"
#include "kmsd/dispatch/dispatch.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"
#include "tests/testutil.h"

static struct tu_env env;
static struct kmsd d;
static struct worker w;
static struct principal alice;

static json_t *
call(const char *req)
{
	size_t n;
	char *out = dispatch_bytes(&w, &alice, req, strlen(req), &n);
	json_t *j;

	assert_non_null(out);
	j = json_loadb(out, n, 0, NULL);
	free(out);
	assert_non_null(j);
	return j;
}

static const char *
err_type(json_t *j)
{
	json_t *t = json_object_get(j, "__type");

	return json_is_string(t) ? json_string_value(t) : "";
}

static void
expect_error(const char *req, const char *type)
{
	json_t *j = call(req);

	if (strcmp(err_type(j), type) != 0) {
		char *s = json_dumps(j, 0);
		fail_msg("%s → %s, wanted %s", req, s, type);
	}
	assert_true(json_is_string(json_object_get(j, "message")));
	json_decref(j);
}

static char key_id[64];

static int
setup(void **state)
{
	char err[512];
	json_t *j;

	if (tu_env_init(&env, NULL) != 0) {
		return -1;
	}
	secure_json_allocator();
	config_defaults(&d.cfg, env.dir);
	if (config_load(&d.cfg, env.conf, err, sizeof(err)) != 0 ||
	    config_finish(&d.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	/* A small handle cache, so that eviction is exercised. */
	d.cfg.key_cache_handles = 16;
	if (kmsd_open(&d, err, sizeof(err)) != 0 ||
	    worker_init(&d, 0, &w, err, sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	principal_from_uid(&alice, getuid(), getgid(), getpid());
	j = call("{\"Action\":\"CreateKey\",\"Description\":\"t\"}");
	snprintf(key_id, sizeof(key_id), "%s", json_string_value(
	    json_object_get(json_object_get(j, "KeyMetadata"), "KeyId")));
	json_decref(j);
	return key_id[0] != '\0' ? 0 : -1;
}

static int
teardown(void **state)
{
	worker_fini(&w);
	kmsd_close(&d);
	tu_env_destroy(&env);
	return 0;
}

static void
test_dispatch_create_key_returns_full_metadata(void **state)
{
	json_t *j = call("{\"Action\":\"CreateKey\",\"Description\":\"hello\","
	    "\"Tags\":[{\"TagKey\":\"team\",\"TagValue\":\"blue\"}]}");
	json_t *m = json_object_get(j, "KeyMetadata");
	const char *fields[] = { "AWSAccountId", "KeyId", "Arn",
		"CreationDate", "Enabled", "Description", "KeyUsage",
		"KeyState", "Origin", "KeyManager", "KeySpec",
		"CustomerMasterKeySpec", "EncryptionAlgorithms",
		"MultiRegion" };
	size_t i;

	assert_non_null(m);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (json_object_get(m, fields[i]) == NULL) {
			fail_msg("KeyMetadata lacks %s", fields[i]);
		}
	}
	assert_string_equal(json_string_value(json_object_get(m, "KeyState")),
	    "Enabled");
	assert_string_equal(json_string_value(json_object_get(m,
	    "Description")), "hello");
	assert_true(strncmp(json_string_value(json_object_get(m, "Arn")),
	    "arn:aws:kms:local:000000000000:key/", 35) == 0);
	json_decref(j);
}

static const char *
str_of(json_t *j, const char *name)
{
	json_t *v = json_object_get(j, name);

	return json_is_string(v) ? json_string_value(v) : "";
}

/*
 * Six-field ARNs (arn:aws:kms:local:<account>:key/<id>) that SDKs can
 * parse; a key named by its ARN or an alias ARN works wherever a KeyId
 * does, and every answer names the key by the one identical ARN.
 */
static void
test_dispatch_arns_are_well_formed_and_accepted_everywhere(void **state)
{
	char req[2048], arn[160], alias_arn_s[200], ct[1024], ct2[1024];
	char *dump;
	json_t *j;

	snprintf(arn, sizeof(arn), "arn:aws:kms:local:000000000000:key/%s",
	    key_id);
	snprintf(req, sizeof(req), "{\"Action\":\"DescribeKey\",\"KeyId\":"
	    "\"%s\"}", arn);
	j = call(req);
	assert_string_equal(str_of(json_object_get(j, "KeyMetadata"), "Arn"),
	    arn);
	json_decref(j);

	snprintf(req, sizeof(req), "{\"Action\":\"CreateAlias\",\"AliasName\":"
	    "\"alias/arn-test\",\"TargetKeyId\":\"%s\"}", arn);
	json_decref(call(req));
	j = call("{\"Action\":\"ListAliases\"}");
	snprintf(alias_arn_s, sizeof(alias_arn_s),
	    "arn:aws:kms:local:000000000000:alias/arn-test");
	dump = json_dumps(j, 0);
	assert_non_null(strstr(dump, alias_arn_s));
	free(dump);
	json_decref(j);

	/* Encrypt by alias ARN, Decrypt, ReEncrypt, GenerateDataKey: one
	 * KeyId everywhere, the key's ARN. */
	snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", alias_arn_s);
	j = call(req);
	assert_string_equal(str_of(j, "KeyId"), arn);
	snprintf(ct, sizeof(ct), "%s", str_of(j, "CiphertextBlob"));
	json_decref(j);
	snprintf(req, sizeof(req), "{\"Action\":\"Decrypt\",\"KeyId\":\"%s\","
	    "\"CiphertextBlob\":\"%s\"}", arn, ct);
	j = call(req);
	assert_string_equal(str_of(j, "KeyId"), arn);
	assert_string_equal(str_of(j, "Plaintext"), "aGk=");
	json_decref(j);
	snprintf(req, sizeof(req), "{\"Action\":\"ReEncrypt\","
	    "\"CiphertextBlob\":\"%s\",\"DestinationKeyId\":\"%s\"}", ct,
	    alias_arn_s);
	j = call(req);
	assert_string_equal(str_of(j, "KeyId"), arn);
	assert_string_equal(str_of(j, "SourceKeyId"), arn);
	snprintf(ct2, sizeof(ct2), "%s", str_of(j, "CiphertextBlob"));
	assert_true(ct2[0] != '\0');
	json_decref(j);
	snprintf(req, sizeof(req), "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"%s\",\"NumberOfBytes\":32}", arn);
	j = call(req);
	assert_string_equal(str_of(j, "KeyId"), arn);
	json_decref(j);

	/* Another partition, region or account is not this key; the old
	 * five-field form is not an ARN at all. */
	snprintf(req, sizeof(req), "{\"Action\":\"DescribeKey\",\"KeyId\":"
	    "\"arn:aws:kms:us-east-1:000000000000:key/%s\"}", key_id);
	expect_error(req, "NotFoundException");
	/* (Built in two pieces, so that no search and replace of the old
	 * form into the new one can turn this into a valid ARN.) */
	snprintf(req, sizeof(req), "{\"Action\":\"DescribeKey\",\"KeyId\":"
	    "\"arn:%s:000000000000:key/%s\"}", "kms:local", key_id);
	expect_error(req, "NotFoundException");
	expect_error("{\"Action\":\"DescribeKey\",\"KeyId\":\"arn:aws:kms:"
	    "local:000000000000:alias/nope\"}", "NotFoundException");
	snprintf(req, sizeof(req), "{\"Action\":\"DeleteAlias\",\"AliasName\":"
	    "\"alias/arn-test\"}");
	json_decref(call(req));
}

static void
test_dispatch_data_key_round_trip_with_context(void **state)
{
	char req[4096];
	json_t *g, *dj;

	snprintf(req, sizeof(req), "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"%s\",\"KeySpec\":\"AES_256\","
	    "\"EncryptionContext\":{\"purpose\":\"test\"}}", key_id);
	g = call(req);
	assert_non_null(json_object_get(g, "Plaintext"));
	snprintf(req, sizeof(req), "{\"Action\":\"Decrypt\","
	    "\"CiphertextBlob\":\"%s\",\"EncryptionContext\":"
	    "{\"purpose\":\"test\"}}", json_string_value(json_object_get(g,
	    "CiphertextBlob")));
	dj = call(req);
	assert_string_equal(json_string_value(json_object_get(dj,
	    "Plaintext")), json_string_value(json_object_get(g, "Plaintext")));
	json_decref(dj);
	snprintf(req, sizeof(req), "{\"Action\":\"Decrypt\","
	    "\"CiphertextBlob\":\"%s\",\"EncryptionContext\":"
	    "{\"purpose\":\"other\"}}", json_string_value(json_object_get(g,
	    "CiphertextBlob")));
	expect_error(req, "InvalidCiphertextException");
	json_decref(g);
}

static void
test_dispatch_malformed_requests_get_typed_errors(void **state)
{
	char deep[200];
	int i;

	expect_error("", "SerializationException");
	expect_error("{", "SerializationException");
	expect_error("[]", "SerializationException");
	expect_error("\"Encrypt\"", "SerializationException");
	expect_error("{\"Action\":1}", "SerializationException");
	expect_error("{}", "SerializationException");
	expect_error("{\"Action\":\"Encrypt\"} trailing", "SerializationException");
	expect_error("{\"Action\":\"Encrypt\",\"Action\":\"Decrypt\"}",
	    "SerializationException");
	expect_error("{\"Action\":\"StealKeys\"}", "UnknownOperationException");
	expect_error("{\"Action\":\"Encrypt\",\"KeyId\":5,\"Plaintext\":\"AA==\"}",
	    "SerializationException");
	expect_error("{\"Action\":\"Encrypt\",\"KeyId\":\"x\",\"Plaintext\":\"***\"}",
	    "NotFoundException");
	expect_error("{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":\"4\"}",
	    "SerializationException");
	/* Nesting deeper than 32 never reaches the parser. */
	snprintf(deep, sizeof(deep), "{\"Action\":\"Encrypt\",\"x\":");
	for (i = 0; i < 40; i++) {
		strcat(deep, "[");
	}
	expect_error(deep, "SerializationException");
}

static void
test_dispatch_every_prefix_of_a_request_fails_cleanly(void **state)
{
	char req[512];
	size_t i, n;

	n = (size_t)snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\","
	    "\"KeyId\":\"%s\",\"Plaintext\":\"aGVsbG8=\","
	    "\"EncryptionContext\":{\"a\":\"b\"}}", key_id);
	for (i = 0; i < n; i++) {
		size_t outlen;
		char *out = dispatch_bytes(&w, &alice, req, i, &outlen);
		assert_non_null(out);
		assert_non_null(strstr(out, "SerializationException"));
		free(out);
	}
}

static void
test_dispatch_oversized_single_request_is_refused(void **state)
{
	size_t n = 70 * 1024;
	char *req = malloc(n + 100);
	json_t *j;

	assert_non_null(req);
	strcpy(req, "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":4,"
	    "\"Pad\":\"");
	memset(req + strlen(req), 'a', n);
	strcpy(req + strlen(req) - 0, "\"}");
	req[strlen(req)] = '\0';
	j = call(req);
	assert_string_equal(err_type(j), "ValidationException");
	json_decref(j);
	free(req);
}

static void
test_dispatch_batch_answers_each_item_in_order(void **state)
{
	char req[2048];
	json_t *j, *rs;

	snprintf(req, sizeof(req), "{\"Action\":\"Batch\",\"Requests\":["
	    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":8},"
	    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":0},"
	    "{\"Action\":\"GenerateDataKey\",\"KeyId\":\"%s\","
	    "\"NumberOfBytes\":16},"
	    "{\"Action\":\"Nope\"},"
	    "{\"Action\":\"Batch\",\"Requests\":[]},"
	    "{\"Action\":\"CreateKey\"},"
	    "7]}", key_id);
	j = call(req);
	rs = json_object_get(j, "Responses");
	assert_int_equal(json_array_size(rs), 7);
	assert_non_null(json_object_get(json_array_get(rs, 0), "Plaintext"));
	assert_string_equal(err_type(json_array_get(rs, 1)),
	    "ValidationException");
	assert_non_null(json_object_get(json_array_get(rs, 2),
	    "CiphertextBlob"));
	assert_string_equal(err_type(json_array_get(rs, 3)),
	    "UnknownOperationException");
	assert_string_equal(err_type(json_array_get(rs, 4)),
	    "ValidationException");
	assert_string_equal(err_type(json_array_get(rs, 5)),
	    "ValidationException");
	assert_string_equal(err_type(json_array_get(rs, 6)),
	    "SerializationException");
	json_decref(j);
	expect_error("{\"Action\":\"Batch\",\"Requests\":[]}",
	    "ValidationException");
	expect_error("{\"Action\":\"Batch\",\"Requests\":{}}",
	    "SerializationException");
}

/*
 * A Batch draws the randomness of its items together: every data key and
 * every IV must still be its own, across several draws (large keys use up
 * a draw early), and each data key must open again with Decrypt.
 */
#define BATCH_RND_ITEMS 240

static void
test_dispatch_batch_data_keys_and_ivs_are_all_distinct(void **state)
{
	static char pts[BATCH_RND_ITEMS][1400], ivs[BATCH_RND_ITEMS][12];
	size_t cap = BATCH_RND_ITEMS * 1600 + 64, i, k, n;
	char *req = malloc(cap), *p;
	uint8_t blob[1200];
	json_t *j, *rs, *item;

	assert_non_null(req);
	p = req + sprintf(req, "{\"Action\":\"Batch\",\"Requests\":[");
	for (i = 0; i < BATCH_RND_ITEMS; i++) {
		if (i % 3 == 2) {
			/* Encrypt: an IV only. */
			p += sprintf(p, "%s{\"Action\":\"Encrypt\",\"KeyId\":"
			    "\"%s\",\"Plaintext\":\"aGk=\"}", i ? "," : "",
			    key_id);
		} else {
			p += sprintf(p, "%s{\"Action\":\"GenerateDataKey\","
			    "\"KeyId\":\"%s\",\"NumberOfBytes\":%d}",
			    i ? "," : "", key_id, i % 7 == 0 ? 1024 : 32);
		}
	}
	strcpy(p, "]}");
	j = call(req);
	rs = json_object_get(j, "Responses");
	assert_int_equal(json_array_size(rs), BATCH_RND_ITEMS);
	memset(pts, 0, sizeof(pts));
	for (i = 0; i < BATCH_RND_ITEMS; i++) {
		const char *b;
		item = json_array_get(rs, i);
		b = json_string_value(json_object_get(item, "CiphertextBlob"));
		assert_non_null(b);
		assert_int_equal(b64_decode(b, strlen(b), blob, sizeof(blob),
		    &n), 0);
		assert_true(n > 33);
		memcpy(ivs[i], blob + 21, 12);
		if (i % 3 != 2) {
			b = json_string_value(json_object_get(item,
			    "Plaintext"));
			assert_non_null(b);
			assert_true(strlen(b) < sizeof(pts[i]));
			strcpy(pts[i], b);
		}
	}
	for (i = 0; i < BATCH_RND_ITEMS; i++) {
		for (k = i + 1; k < BATCH_RND_ITEMS; k++) {
			assert_memory_not_equal(ivs[i], ivs[k], 12);
			if (pts[i][0] != '\0' && pts[k][0] != '\0') {
				assert_string_not_equal(pts[i], pts[k]);
			}
		}
	}
	/* Each data key opens again. */
	p = req + sprintf(req, "{\"Action\":\"Batch\",\"Requests\":[");
	for (i = 0, k = 0; i < BATCH_RND_ITEMS; i++) {
		if (i % 3 == 2) {
			continue;
		}
		p += sprintf(p, "%s{\"Action\":\"Decrypt\",\"CiphertextBlob\":"
		    "\"%s\"}", k++ ? "," : "", json_string_value(
		    json_object_get(json_array_get(rs, i), "CiphertextBlob")));
	}
	strcpy(p, "]}");
	json_decref(j);
	j = call(req);
	rs = json_object_get(j, "Responses");
	assert_int_equal(json_array_size(rs), k);
	for (i = 0, k = 0; i < BATCH_RND_ITEMS; i++) {
		if (i % 3 == 2) {
			continue;
		}
		assert_string_equal(json_string_value(json_object_get(
		    json_array_get(rs, k++), "Plaintext")), pts[i]);
	}
	json_decref(j);
	free(req);
}

static void
test_dispatch_batch_item_over_64k_fails_alone(void **state)
{
	size_t pad = 70 * 1024;
	char *req = malloc(pad + 256);
	json_t *j, *rs;
	int n;

	assert_non_null(req);
	n = sprintf(req, "{\"Action\":\"Batch\",\"Requests\":["
	    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":4},"
	    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":4,"
	    "\"Pad\":\"");
	memset(req + n, 'p', pad);
	strcpy(req + n + pad, "\"}]}");
	j = call(req);
	rs = json_object_get(j, "Responses");
	assert_int_equal(json_array_size(rs), 2);
	assert_non_null(json_object_get(json_array_get(rs, 0), "Plaintext"));
	assert_string_equal(err_type(json_array_get(rs, 1)),
	    "ValidationException");
	json_decref(j);
	free(req);
}

static void
test_dispatch_batch_limit_is_1000(void **state)
{
	size_t cap = 1001 * 48 + 64, i;
	char *req = malloc(cap);
	json_t *j;

	assert_non_null(req);
	strcpy(req, "{\"Action\":\"Batch\",\"Requests\":[");
	for (i = 0; i < 1001; i++) {
		strcat(req, i ? ",{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":1}" :
		    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":1}");
	}
	strcat(req, "]}");
	j = call(req);
	assert_string_equal(err_type(j), "ValidationException");
	json_decref(j);
	free(req);
}

/* Decrypt blob (base64) with context ctx (JSON text or NULL): the
 * plaintext's base64, or NULL with the error type in why. */
static char *
decrypt_b64(const char *blob, const char *ctx, char *why, size_t whylen)
{
	char req[4096];
	json_t *j;
	char *pt = NULL;

	snprintf(req, sizeof(req), "{\"Action\":\"Decrypt\","
	    "\"CiphertextBlob\":\"%s\"%s%s}", blob,
	    ctx != NULL ? ",\"EncryptionContext\":" : "", ctx != NULL ? ctx : "");
	j = call(req);
	snprintf(why, whylen, "%s", err_type(j));
	if (json_is_string(json_object_get(j, "Plaintext"))) {
		pt = strdup(json_string_value(json_object_get(j, "Plaintext")));
	}
	json_decref(j);
	return pt;
}

/*
 * With batch_hsm_exclusive (the default) a Batch records its items'
 * encryptions and does them together afterwards; without it, each item
 * encrypts as it runs.  Both must give the same answers: errors in the
 * right places (a disabled key fails only when its version is pinned, in
 * the later pass), every blob decrypting under its own context only, a
 * key rotating in the middle of a Batch, and ReEncrypt.
 */
static void
test_dispatch_batch_encryptions_together_or_not_same_answers(void **state)
{
	char req[8192], k2[64], why[64], *blob0, *blob2, *pt;
	char bad[512];
	uint8_t raw[384];
	size_t rawlen;
	json_t *j, *rs;
	int excl, i;

	j = call("{\"Action\":\"CreateKey\",\"Description\":\"off\"}");
	snprintf(k2, sizeof(k2), "%s", json_string_value(json_object_get(
	    json_object_get(j, "KeyMetadata"), "KeyId")));
	json_decref(j);
	/* A blob of the key about to be disabled. */
	snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"b2Zm\"}", k2);
	j = call(req);
	blob2 = strdup(json_string_value(json_object_get(j,
	    "CiphertextBlob")));
	json_decref(j);
	snprintf(req, sizeof(req), "{\"Action\":\"DisableKey\","
	    "\"KeyId\":\"%s\"}", k2);
	json_decref(call(req));
	/* A blob to re-encrypt. */
	snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"cmU=\",\"EncryptionContext\":{\"r\":\"1\"}}",
	    key_id);
	j = call(req);
	blob0 = strdup(json_string_value(json_object_get(j,
	    "CiphertextBlob")));
	json_decref(j);
	for (excl = 1; excl >= 0; excl--) {
		d.cfg.batch_hsm_exclusive = excl;
		/* A tiny budget: the key rotates inside the Batch. */
		d.cfg.max_encryptions = 2;
		snprintf(req, sizeof(req), "{\"Action\":\"Batch\",\"Requests\":["
		    "{\"Action\":\"GenerateDataKey\",\"KeyId\":\"%s\","
		    "\"KeySpec\":\"AES_256\",\"EncryptionContext\":{\"a\":\"1\"}},"
		    "{\"Action\":\"GenerateDataKey\",\"KeyId\":\"%s\","
		    "\"KeySpec\":\"AES_256\"},"
		    "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
		    "\"Plaintext\":\"aGk=\",\"EncryptionContext\":{\"b\":\"2\"}},"
		    "{\"Action\":\"GenerateDataKey\",\"KeyId\":\"%s\","
		    "\"NumberOfBytes\":0},"
		    "{\"Action\":\"ReEncrypt\",\"CiphertextBlob\":\"%s\","
		    "\"SourceEncryptionContext\":{\"r\":\"1\"},"
		    "\"DestinationKeyId\":\"%s\","
		    "\"DestinationEncryptionContext\":{\"c\":\"3\"}},"
		    "{\"Action\":\"GenerateDataKeyWithoutPlaintext\","
		    "\"KeyId\":\"%s\",\"NumberOfBytes\":64},"
		    "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
		    "\"Plaintext\":\"aGk=\"}]}",
		    key_id, k2, key_id, key_id, blob0, key_id, key_id, key_id);
		j = call(req);
		rs = json_object_get(j, "Responses");
		assert_int_equal(json_array_size(rs), 7);
		assert_string_equal(err_type(json_array_get(rs, 1)),
		    "DisabledException");
		assert_non_null(strstr(json_string_value(json_object_get(
		    json_array_get(rs, 1), "message")), k2));
		assert_string_equal(err_type(json_array_get(rs, 3)),
		    "ValidationException");
		for (i = 0; i < 7; i++) {
			static const char *ctx[7] = { "{\"a\":\"1\"}", NULL,
			    "{\"b\":\"2\"}", NULL, "{\"c\":\"3\"}", NULL, NULL };
			json_t *it = json_array_get(rs, i);
			const char *b;
			if (i == 1 || i == 3) {
				continue;
			}
			assert_string_equal(err_type(it), "");
			b = json_string_value(json_object_get(it,
			    "CiphertextBlob"));
			assert_non_null(b);
			pt = decrypt_b64(b, ctx[i], why, sizeof(why));
			if (pt == NULL) {
				fail_msg("item %d (excl %d): %s", i, excl, why);
			}
			if (i == 0) {
				assert_string_equal(pt, json_string_value(
				    json_object_get(it, "Plaintext")));
			} else if (i == 2 || i == 6) {
				assert_string_equal(pt, "aGk=");
			} else if (i == 4) {
				assert_string_equal(pt, "cmU=");
			}
			free(pt);
			if (ctx[i] != NULL) {
				assert_null(decrypt_b64(b, "{\"x\":\"y\"}", why,
				    sizeof(why)));
				assert_string_equal(why,
				    "InvalidCiphertextException");
			}
		}
		json_decref(j);
		/* Decryptions: recorded too, their failures in place. */
		assert_int_equal(b64_decode(blob0, strlen(blob0), raw,
		    sizeof(raw), &rawlen), 0);
		raw[rawlen - 1] ^= 1;		/* the tag */
		assert_int_equal(b64_encode(raw, rawlen, bad, sizeof(bad)), 0);
		snprintf(req, sizeof(req), "{\"Action\":\"Batch\",\"Requests\":["
		    "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
		    "\"EncryptionContext\":{\"r\":\"1\"}},"
		    "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
		    "\"EncryptionContext\":{\"r\":\"2\"}},"
		    "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\"},"
		    "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
		    "\"EncryptionContext\":{\"r\":\"1\"}},"
		    "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
		    "\"KeyId\":\"%s\",\"EncryptionContext\":{\"r\":\"1\"}},"
		    "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
		    "\"EncryptionContext\":{\"r\":\"1\"}}]}",
		    blob0, blob0, blob2, bad, blob0, k2, blob0);
		j = call(req);
		rs = json_object_get(j, "Responses");
		assert_int_equal(json_array_size(rs), 6);
		assert_string_equal(json_string_value(json_object_get(
		    json_array_get(rs, 0), "Plaintext")), "cmU=");
		assert_string_equal(err_type(json_array_get(rs, 1)),
		    "InvalidCiphertextException");
		assert_string_equal(err_type(json_array_get(rs, 2)),
		    "DisabledException");
		assert_string_equal(err_type(json_array_get(rs, 3)),
		    "InvalidCiphertextException");
		assert_string_equal(err_type(json_array_get(rs, 4)),
		    "IncorrectKeyException");
		assert_string_equal(json_string_value(json_object_get(
		    json_array_get(rs, 5), "Plaintext")), "cmU=");
		assert_non_null(strstr(json_string_value(json_object_get(
		    json_array_get(rs, 0), "KeyId")), key_id));
		json_decref(j);
	}
	d.cfg.batch_hsm_exclusive = 1;
	d.cfg.max_encryptions = 4294967295ULL;
	free(blob0);
	free(blob2);
	{
		struct key_info ki;
		char msg[128];
		assert_int_equal(keycache_lookup(&w, key_id, &ki, msg,
		    sizeof(msg)), 0);
		assert_true(ki.current_version >= 3);
	}
}

static void
test_dispatch_disabled_key_refuses_crypto(void **state)
{
	char req[512];
	json_t *j;

	snprintf(req, sizeof(req), "{\"Action\":\"DisableKey\",\"KeyId\":\"%s\"}",
	    key_id);
	json_decref(call(req));
	snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", key_id);
	expect_error(req, "DisabledException");
	snprintf(req, sizeof(req), "{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}",
	    key_id);
	j = call(req);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j,
	    "KeyMetadata"), "KeyState")), "Disabled");
	json_decref(j);
	snprintf(req, sizeof(req), "{\"Action\":\"EnableKey\",\"KeyId\":\"%s\"}",
	    key_id);
	json_decref(call(req));
	snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", key_id);
	j = call(req);
	assert_non_null(json_object_get(j, "CiphertextBlob"));
	json_decref(j);
}

static void
test_dispatch_data_key_spec_rules(void **state)
{
	char req[512];

	snprintf(req, sizeof(req), "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"%s\"}", key_id);
	expect_error(req, "ValidationException");
	snprintf(req, sizeof(req), "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"%s\",\"KeySpec\":\"AES_256\",\"NumberOfBytes\":32}",
	    key_id);
	expect_error(req, "ValidationException");
	snprintf(req, sizeof(req), "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"%s\",\"KeySpec\":\"AES_512\"}", key_id);
	expect_error(req, "ValidationException");
	snprintf(req, sizeof(req), "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"%s\",\"NumberOfBytes\":1025}", key_id);
	expect_error(req, "ValidationException");
	expect_error("{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":1025}",
	    "ValidationException");
	expect_error("{\"Action\":\"CreateKey\",\"KeySpec\":\"RSA_2048\"}",
	    "UnsupportedOperationException");
	expect_error("{\"Action\":\"CreateKey\",\"KeySpec\":\"BOGUS\"}",
	    "ValidationException");
	expect_error("{\"Action\":\"ListKeys\",\"Marker\":\"zz\"}",
	    "InvalidMarkerException");
	expect_error("{\"Action\":\"ListKeys\",\"Limit\":0}",
	    "ValidationException");
}

/* The version a ciphertext (base64) names. */
static uint32_t
blob_version(const char *b64)
{
	uint8_t raw[512];
	struct blob_view b;
	size_t n;

	assert_int_equal(b64_decode(b64, strlen(b64), raw, sizeof(raw), &n), 0);
	assert_int_equal(blob_parse(raw, n, &b), 0);
	return b.version;
}

static void
test_dispatch_automatic_rotation_when_a_version_is_spent(void **state)
{
	char req[512], *blobs[5];
	struct key_info ki;
	char msg[128];
	json_t *j;
	int i;

	assert_int_equal(keycache_lookup(&w, key_id, &ki, msg, sizeof(msg)), 0);
	/* A tiny budget stands in for 2^32 encryptions. */
	d.cfg.max_encryptions = 3;
	for (i = 0; i < 5; i++) {
		snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\","
		    "\"KeyId\":\"%s\",\"Plaintext\":\"aGk=\"}", key_id);
		j = call(req);
		assert_non_null(json_object_get(j, "CiphertextBlob"));
		blobs[i] = strdup(json_string_value(json_object_get(j,
		    "CiphertextBlob")));
		json_decref(j);
	}
	d.cfg.max_encryptions = 4294967295ULL;
	/* Five encryptions spent at least one version of three: a newer
	 * version took over, and the last ciphertext is under it. */
	{
		uint32_t first = ki.current_version;
		assert_int_equal(keycache_lookup(&w, key_id, &ki, msg,
		    sizeof(msg)), 0);
		assert_true(ki.current_version > first);
		assert_int_equal(blob_version(blobs[4]), ki.current_version);
		assert_true(blob_version(blobs[0]) < ki.current_version);
	}
	/* Every ciphertext, of the spent versions too, still decrypts. */
	for (i = 0; i < 5; i++) {
		snprintf(req, sizeof(req), "{\"Action\":\"Decrypt\","
		    "\"CiphertextBlob\":\"%s\"}", blobs[i]);
		j = call(req);
		assert_string_equal(json_string_value(json_object_get(j,
		    "Plaintext")), "aGk=");
		json_decref(j);
		free(blobs[i]);
	}
}

static void
test_dispatch_more_keys_than_cached_handles_all_work(void **state)
{
	enum { N = 40 };
	char ids[N][40], req[1024], *blobs[N];
	uint64_t made;
	json_t *j;
	int i, round;

	for (i = 0; i < N; i++) {
		j = call("{\"Action\":\"CreateKey\"}");
		snprintf(ids[i], sizeof(ids[i]), "%s", json_string_value(
		    json_object_get(json_object_get(j, "KeyMetadata"),
		    "KeyId")));
		json_decref(j);
		snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\","
		    "\"KeyId\":\"%s\",\"Plaintext\":\"a2V5\"}", ids[i]);
		j = call(req);
		blobs[i] = strdup(json_string_value(json_object_get(j,
		    "CiphertextBlob")));
		json_decref(j);
	}
	/* Twice round: every handle is evicted and unwrapped again.  The
	 * cache holds 16, so at least N - 16 of each round's versions are
	 * unwrapped again (a cyclic scan of 40 over 16 misses every time),
	 * and none more than once. */
	for (round = 0; round < 2; round++) {
		made = hsm_objects_made(d.hsm);
		for (i = 0; i < N; i++) {
			snprintf(req, sizeof(req), "{\"Action\":\"Decrypt\","
			    "\"CiphertextBlob\":\"%s\"}", blobs[i]);
			j = call(req);
			assert_string_equal(json_string_value(json_object_get(j,
			    "Plaintext")), "a2V5");
			json_decref(j);
		}
		made = hsm_objects_made(d.hsm) - made;
		assert_in_range(made, N - 16, N);
	}
	/* A version just used is in the cache: no second unwrap. */
	made = hsm_objects_made(d.hsm);
	for (i = 0; i < 3; i++) {
		snprintf(req, sizeof(req), "{\"Action\":\"Decrypt\","
		    "\"CiphertextBlob\":\"%s\"}", blobs[N - 1]);
		json_decref(call(req));
	}
	assert_int_equal(hsm_objects_made(d.hsm) - made, 0);
	for (i = 0; i < N; i++) {
		free(blobs[i]);
	}
}

/*
 * More creators than kmsd shares default policies for (256): each of 300
 * callers, distinct uids, creates a key with the default policy and
 * encrypts under it.  The 257th and later once got KMSInternalException
 * on every use of their keys.
 */
static void
test_dispatch_keys_of_many_creators_all_work(void **state)
{
	struct principal p;
	char req[160], *out;
	size_t n;
	json_t *j;
	int i;

	for (i = 0; i < 300; i++) {
		principal_from_uid(&p, (uid_t)(2000000 + i), (gid_t)(2000000 + i),
		    getpid());
		out = dispatch_bytes(&w, &p, "{\"Action\":\"CreateKey\"}", 22,
		    &n);
		assert_non_null(out);
		assert_non_null(j = json_loadb(out, n, 0, NULL));
		free(out);
		snprintf(req, sizeof(req), "{\"Action\":\"Encrypt\",\"KeyId\":"
		    "\"%s\",\"Plaintext\":\"aGk=\"}", json_string_value(
		    json_object_get(json_object_get(j, "KeyMetadata"),
		    "KeyId")));
		json_decref(j);
		out = dispatch_bytes(&w, &p, req, strlen(req), &n);
		assert_non_null(out);
		assert_non_null(j = json_loadb(out, n, 0, NULL));
		free(out);
		if (!json_is_string(json_object_get(j, "CiphertextBlob"))) {
			char *t = json_dumps(j, 0);
			fail_msg("creator %d: %s", i, t);
		}
		json_decref(j);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_more_keys_than_cached_handles_all_work),
		cmocka_unit_test(test_dispatch_create_key_returns_full_metadata),
		cmocka_unit_test(test_dispatch_arns_are_well_formed_and_accepted_everywhere),
		cmocka_unit_test(test_dispatch_data_key_round_trip_with_context),
		cmocka_unit_test(test_dispatch_malformed_requests_get_typed_errors),
		cmocka_unit_test(test_dispatch_every_prefix_of_a_request_fails_cleanly),
		cmocka_unit_test(test_dispatch_oversized_single_request_is_refused),
		cmocka_unit_test(test_dispatch_batch_answers_each_item_in_order),
		cmocka_unit_test(test_dispatch_batch_data_keys_and_ivs_are_all_distinct),
		cmocka_unit_test(test_dispatch_batch_limit_is_1000),
		cmocka_unit_test(test_dispatch_batch_item_over_64k_fails_alone),
		cmocka_unit_test(test_dispatch_batch_encryptions_together_or_not_same_answers),
		cmocka_unit_test(test_dispatch_disabled_key_refuses_crypto),
		cmocka_unit_test(test_dispatch_data_key_spec_rules),
		cmocka_unit_test(test_dispatch_automatic_rotation_when_a_version_is_spent),
		cmocka_unit_test(test_dispatch_keys_of_many_creators_all_work),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
