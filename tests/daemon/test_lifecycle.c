/*
 * test_lifecycle.c — a key's life on a real kmsd and a real SoftHSM2
 * token, driven through libkmsclient and kmsctl: the test clock, rotation
 * (on demand, automatic, by budget) with every older version still
 * decrypting, deletion with its pending window, cancellation, AWS's error
 * for each operation in each key state, and the shred (the material gone
 * from the token and from the database files).  Automatic rotation and
 * deletion are driven by moving kmsd's clock (test_clock = yes), never by
 * sleeping for days.  The key group runs twice: wrapped, then resident.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "common/b64.h"
#include "common/be.h"
#include "hsm/hsm.h"
#include "kms.h"
#include "tests/testutil.h"

static struct tu_env env;
static kms_client *cl;
static const char *storage;

static void
must(int r, const kms_error_info *ei, const char *what)
{
	if (r != 0) {
		fail_msg("%s: %d %s: %s", what, r, ei->name, ei->message);
	}
}

static json_t *last;		/* the last reply of call() */
static kms_error_info last_ei;

/* Send a raw JSON request; returns the error code; the parsed reply is
 * kept in `last` until the next call. */
static int
call(const char *fmt, ...)
{
	char req[4096], *reply = NULL;
	size_t n = 0;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	json_decref(last);
	last = NULL;
	r = kms_call_json(cl, req, strlen(req), &reply, &n, &last_ei);
	if (reply != NULL) {
		last = json_loads(reply, 0, NULL);
	}
	kms_free(reply);
	return r;
}

/* call() that must succeed. */
#define OK(...) do { \
	int r_ = call(__VA_ARGS__); \
	if (r_ != 0) { \
		fail_msg("line %d: %s: %s", __LINE__, last_ei.name, \
		    last_ei.message); \
	} \
} while (0)
/* call() that must fail with err. */
#define FAILS(err, ...) do { \
	int r_ = call(__VA_ARGS__); \
	if (r_ != (err)) { \
		fail_msg("line %d: wanted %s, got %d %s: %s", __LINE__, \
		    kms_error_name(err), r_, last_ei.name, last_ei.message); \
	} \
} while (0)

static char *kmsctl_err;	/* stderr of the last kmsctl() */

/* kmsctl against env; returns its exit status, *out its stdout. */
static int
kmsctl(char **out, const char *fmt, ...)
{
	char args[1024], cmd[2048];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s --endpoint %s %s", tu_bin("kmsctl"),
	    env.endpoint, args);
	free(kmsctl_err);
	kmsctl_err = NULL;
	r = tu_run(cmd, out, &kmsctl_err);
	return r;
}

static void
new_key(char *out)
{
	kms_create_key_req req = { 0 };
	kms_key_metadata m;
	kms_error_info ei;

	req.description = "lifecycle";
	must(kms_create_key(cl, &req, &m, &ei), &ei, "CreateKey");
	snprintf(out, KMS_KEY_ID_LEN + 1, "%s", m.key_id);
	kms_key_metadata_free(&m);
}

/* Encrypt text under id; the blob in *out; returns the version it names. */
static uint32_t
seal(const char *id, const char *text, kms_buf *out)
{
	kms_encrypt_req req = { 0 };
	kms_encrypt_resp resp;
	kms_error_info ei;

	req.key_id = id;
	req.plaintext = (const uint8_t *)text;
	req.plaintext_len = strlen(text);
	must(kms_encrypt(cl, &req, &resp, &ei), &ei, "Encrypt");
	assert_true(resp.ciphertext_blob.len > 21);
	*out = resp.ciphertext_blob;
	return get_u32_be(out->data + 17);
}

static void
opens_to(const kms_buf *b, const char *text)
{
	kms_decrypt_req req = { 0 };
	kms_decrypt_resp resp;
	kms_error_info ei;

	req.ciphertext_blob = b->data;
	req.ciphertext_len = b->len;
	must(kms_decrypt(cl, &req, &resp, &ei), &ei, "Decrypt");
	assert_int_equal(resp.plaintext.len, strlen(text));
	assert_memory_equal(resp.plaintext.data, text, strlen(text));
	kms_decrypt_resp_free(&resp);
}

/* A blob as base64 for a raw request (static buffer). */
static const char *
b64(const kms_buf *b)
{
	static char out[8192];
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/";
	size_t i, o = 0;

	for (i = 0; i < b->len; i += 3) {
		uint32_t v = (uint32_t)b->data[i] << 16;
		if (i + 1 < b->len) {
			v |= (uint32_t)b->data[i + 1] << 8;
		}
		if (i + 2 < b->len) {
			v |= b->data[i + 2];
		}
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < b->len ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < b->len ? tab[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

/* Number of entries in last's array field. */
static size_t
count_of(const char *field)
{
	return json_array_size(json_object_get(last, field));
}

/* Wait (up to 10 s) until the audit log holds n records with both
 * strings; their count. */
static int
wait_audit(const char *a, const char *b, int n)
{
	int i, got = 0;

	for (i = 0; i < 100 && (got = tu_audit_count(&env, a, b)) < n; i++) {
		usleep(100000);
	}
	return got;
}

#define SERVICE_EVENT "\"eventType\":\"AwsServiceEvent\""

/* Wait (up to 20 s) until the key has n rotations. */
static int
wait_rotations(const char *id, size_t n)
{
	int i;

	for (i = 0; i < 200; i++) {
		if (call("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\"}",
		    id) == 0 && count_of("Rotations") >= n) {
			return 1;
		}
		usleep(100000);
	}
	return 0;
}

static const char *
str_of(const char *field)
{
	const char *v = json_string_value(json_object_get(last, field));

	return v != NULL ? v : "";
}

static double
num_of(const char *field)
{
	return json_number_value(json_object_get(last, field));
}

static double
creation_date(const char *id)
{
	kms_key_metadata m;
	kms_error_info ei;
	double d;

	must(kms_describe_key(cl, id, NULL, &m, &ei), &ei, "DescribeKey");
	d = m.creation_date;
	kms_key_metadata_free(&m);
	return d;
}

static int
setup(void **state)
{
	char extra[128];

	snprintf(extra, sizeof(extra), "key_storage = %s\ntest_clock = yes\n"
	    "max_encryptions_per_version = 50", storage);
	if (tu_env_init(&env, extra) != 0 || tu_kmsd_start(&env) != 0 ||
	    kms_client_open(&cl, env.endpoint) != 0) {
		return -1;
	}
	kms_client_set_timeout(cl, 20000);
	return 0;
}

static int
teardown(void **state)
{
	kms_client_close(cl);
	cl = NULL;
	json_decref(last);
	last = NULL;
	free(kmsctl_err);
	kmsctl_err = NULL;
	return tu_env_destroy(&env) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- clock */

static void
test_test_clock_moves_kmsd_forward(void **state)
{
	char id[KMS_KEY_ID_LEN + 1], *out = NULL;
	double before = (double)time(NULL);

	assert_int_equal(call("{\"Action\":\"AdvanceTestClock\","
	    "\"Days\":10}"), 0);
	new_key(id);
	/* Ten days ahead of this machine's clock, give or take a minute. */
	assert_true(creation_date(id) > before + 10 * 86400 - 60);
	assert_true(creation_date(id) < before + 10 * 86400 + 600);
	/* kmsctl's spelling; and nothing moves backwards or by nothing. */
	assert_int_equal(kmsctl(&out, "admin advance-clock --seconds 60"), 0);
	assert_non_null(strstr(out, "OffsetSeconds"));
	free(out);
	assert_int_equal(call("{\"Action\":\"AdvanceTestClock\","
	    "\"Seconds\":-5}"), KMS_EVALIDATION);
	assert_int_equal(call("{\"Action\":\"AdvanceTestClock\"}"),
	    KMS_EVALIDATION);
	assert_true(tu_log_says(&env, "test_clock = yes: TEST-ONLY"));
}

/* Its own kmsd: without test_clock the clock cannot be moved by anyone,
 * and with it only by an administrator. */
static void
test_test_clock_refused_without_setting_or_to_non_admins(void **state)
{
	struct tu_env e2;
	kms_client *c2 = NULL;
	kms_error_info ei;
	char *reply = NULL;
	const char *req = "{\"Action\":\"AdvanceTestClock\",\"Days\":1}";
	size_t n;
	FILE *f;

	assert_int_equal(tu_env_init(&e2, "test_clock = yes\n"
	    "administrators = user:kmsd-test-nobody"), 0);
	assert_int_equal(tu_kmsd_start(&e2), 0);
	assert_int_equal(kms_client_open(&c2, e2.endpoint), 0);
	assert_int_equal(kms_call_json(c2, req, strlen(req), &reply, &n, &ei),
	    KMS_EACCESSDENIED);
	kms_free(reply);
	kms_client_close(c2);
	assert_int_equal(tu_kmsd_stop(&e2), 0);

	/* The same token, the setting gone: refused to the administrator. */
	assert_non_null(f = fopen(e2.conf, "w"));
	fprintf(f, "state_dir = %s\npkcs11_module = %s\nworkers = 2\n",
	    e2.dir, e2.module);
	fclose(f);
	assert_int_equal(tu_kmsd_start(&e2), 0);
	assert_int_equal(kms_client_open(&c2, e2.endpoint), 0);
	reply = NULL;
	assert_int_equal(kms_call_json(c2, req, strlen(req), &reply, &n, &ei),
	    KMS_EUNSUPPORTED);
	assert_non_null(strstr(ei.message, "test_clock"));
	kms_free(reply);
	kms_client_close(c2);
	assert_int_equal(tu_env_destroy(&e2), 0);
}

/* ------------------------------------------------------------- rotation */

static void
test_on_demand_rotation_keeps_every_version_decrypting(void **state)
{
	char id[KMS_KEY_ID_LEN + 1], text[32];
	kms_buf blobs[4];
	json_t *rot;
	uint32_t i;

	new_key(id);
	for (i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "secret %u", i);
		/* Encryption moves to the new version at once. */
		assert_int_equal(seal(id, text, &blobs[i]), i + 1);
		if (i < 3) {
			OK("{\"Action\":\"RotateKeyOnDemand\",\"KeyId\":\"%s\"}",
			    id);
			assert_non_null(strstr(str_of("KeyId"), id));
		}
	}
	for (i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "secret %u", i);
		opens_to(&blobs[i], text);
	}
	/* ReEncrypt to the same key moves a blob to the newest version. */
	{
		kms_re_encrypt_req rr = { 0 };
		kms_re_encrypt_resp rp;
		kms_error_info ei;
		rr.ciphertext_blob = blobs[0].data;
		rr.ciphertext_len = blobs[0].len;
		rr.destination_key_id = id;
		must(kms_re_encrypt(cl, &rr, &rp, &ei), &ei, "ReEncrypt");
		assert_int_equal(get_u32_be(rp.ciphertext_blob.data + 17), 4);
		opens_to(&rp.ciphertext_blob, "secret 0");
		kms_re_encrypt_resp_free(&rp);
	}
	/* The history: three on-demand rotations, paged two at a time. */
	OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\",\"Limit\":2}",
	    id);
	assert_int_equal(count_of("Rotations"), 2);
	assert_true(json_is_true(json_object_get(last, "Truncated")));
	rot = json_array_get(json_object_get(last, "Rotations"), 0);
	assert_string_equal(json_string_value(json_object_get(rot,
	    "RotationType")), "ON_DEMAND");
	assert_true(json_number_value(json_object_get(rot, "RotationDate")) >
	    1.7e9);
	{
		char marker[32];
		snprintf(marker, sizeof(marker), "%s", str_of("NextMarker"));
		OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\","
		    "\"Marker\":\"%s\"}", id, marker);
		assert_int_equal(count_of("Rotations"), 1);
		assert_false(json_is_true(json_object_get(last, "Truncated")));
	}
	FAILS(KMS_EINVALIDMARKER, "{\"Action\":\"ListKeyRotations\","
	    "\"KeyId\":\"%s\",\"Marker\":\"x\"}", id);
	for (i = 0; i < 4; i++) {
		kms_buf_free(&blobs[i]);
	}
	/* A new encryption names version 4. */
	assert_int_equal(seal(id, "after", &blobs[0]), 4);
	kms_buf_free(&blobs[0]);
}

static void
test_on_demand_rotation_limit_conflict_and_states(void **state)
{
	char id[KMS_KEY_ID_LEN + 1], sql[512], dbpath[300];
	sqlite3 *db = NULL;
	int i;

	new_key(id);
	for (i = 0; i < 25; i++) {
		OK("{\"Action\":\"RotateKeyOnDemand\",\"KeyId\":\"%s\"}", id);
	}
	FAILS(KMS_ELIMITEXCEEDED, "{\"Action\":\"RotateKeyOnDemand\","
	    "\"KeyId\":\"%s\"}", id);

	/* Another node holds the key's lease (its row in the shared
	 * store): a rotation is in progress. */
	new_key(id);
	snprintf(dbpath, sizeof(dbpath), "%s/kmsd.db", env.dir);
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	snprintf(sql, sizeof(sql), "INSERT INTO leases (name, holder, "
	    "since_ms, expires_ms) VALUES ('key:%s', "
	    "'othernode:1:on-demand:w0', %lld, %lld)", id,
	    (long long)time(NULL) * 1000, (long long)time(NULL) * 1000 +
	    (3650LL * 86400000));
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	FAILS(KMS_ECONFLICT, "{\"Action\":\"RotateKeyOnDemand\","
	    "\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"GetKeyRotationStatus\",\"KeyId\":\"%s\"}", id);
	assert_true(num_of("OnDemandRotationStartDate") > 1.7e9);
	snprintf(sql, sizeof(sql), "DELETE FROM leases WHERE name = "
	    "'key:%s'", id);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	OK("{\"Action\":\"RotateKeyOnDemand\",\"KeyId\":\"%s\"}", id);

	/* A disabled key: DisabledException for rotation; its status is
	 * still readable. */
	OK("{\"Action\":\"DisableKey\",\"KeyId\":\"%s\"}", id);
	FAILS(KMS_EDISABLED, "{\"Action\":\"RotateKeyOnDemand\","
	    "\"KeyId\":\"%s\"}", id);
	FAILS(KMS_EDISABLED, "{\"Action\":\"EnableKeyRotation\","
	    "\"KeyId\":\"%s\"}", id);
	FAILS(KMS_EDISABLED, "{\"Action\":\"DisableKeyRotation\","
	    "\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"GetKeyRotationStatus\",\"KeyId\":\"%s\"}", id);
	assert_false(json_is_true(json_object_get(last,
	    "KeyRotationEnabled")));
	OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\"}", id);
	assert_int_equal(count_of("Rotations"), 1);
	/* Unknown keys, and an alias where AWS takes only a key. */
	FAILS(KMS_ENOTFOUND, "{\"Action\":\"RotateKeyOnDemand\","
	    "\"KeyId\":\"00000000-0000-4000-8000-000000000000\"}");
	FAILS(KMS_EINVALIDARN, "{\"Action\":\"EnableKeyRotation\","
	    "\"KeyId\":\"alias/nope\"}");
}

static void
test_automatic_rotation_follows_the_test_clock(void **state)
{
	char id[KMS_KEY_ID_LEN + 1];
	double now = (double)time(NULL);
	kms_buf b1, b2;

	new_key(id);
	FAILS(KMS_EVALIDATION, "{\"Action\":\"EnableKeyRotation\","
	    "\"KeyId\":\"%s\",\"RotationPeriodInDays\":89}", id);
	FAILS(KMS_EVALIDATION, "{\"Action\":\"EnableKeyRotation\","
	    "\"KeyId\":\"%s\",\"RotationPeriodInDays\":2561}", id);
	OK("{\"Action\":\"GetKeyRotationStatus\",\"KeyId\":\"%s\"}", id);
	assert_false(json_is_true(json_object_get(last,
	    "KeyRotationEnabled")));
	OK("{\"Action\":\"EnableKeyRotation\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"GetKeyRotationStatus\",\"KeyId\":\"%s\"}", id);
	assert_true(json_is_true(json_object_get(last,
	    "KeyRotationEnabled")));
	assert_int_equal((int)num_of("RotationPeriodInDays"), 365);
	OK("{\"Action\":\"EnableKeyRotation\",\"KeyId\":\"%s\","
	    "\"RotationPeriodInDays\":90}", id);
	OK("{\"Action\":\"GetKeyRotationStatus\",\"KeyId\":\"%s\"}", id);
	assert_int_equal((int)num_of("RotationPeriodInDays"), 90);
	/* 90 days from now on kmsd's clock (which tests may have moved). */
	assert_true(num_of("NextRotationDate") >= now + 90 * 86400 - 60);
	assert_int_equal(seal(id, "v1", &b1), 1);

	OK("{\"Action\":\"AdvanceTestClock\",\"Days\":91}");
	assert_true(wait_rotations(id, 1));
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(json_object_get(last, "Rotations"), 0),
	    "RotationType")), "AUTOMATIC");
	assert_int_equal(seal(id, "v2", &b2), 2);
	opens_to(&b1, "v1");
	kms_buf_free(&b2);
	OK("{\"Action\":\"GetKeyRotationStatus\",\"KeyId\":\"%s\"}", id);
	assert_true(num_of("NextRotationDate") > now + 180 * 86400 - 60);

	/* Disabled: skipped when due; caught up (once) when enabled. */
	OK("{\"Action\":\"DisableKey\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"AdvanceTestClock\",\"Days\":200}");
	sleep(2);
	OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\"}", id);
	assert_int_equal(count_of("Rotations"), 1);
	OK("{\"Action\":\"EnableKey\",\"KeyId\":\"%s\"}", id);
	assert_true(wait_rotations(id, 2));
	sleep(1);
	OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\"}", id);
	assert_int_equal(count_of("Rotations"), 2);
	assert_int_equal(seal(id, "v3", &b2), 3);
	opens_to(&b1, "v1");
	kms_buf_free(&b1);
	kms_buf_free(&b2);

	/* Off: nothing more happens. */
	OK("{\"Action\":\"DisableKeyRotation\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"AdvanceTestClock\",\"Days\":400}");
	sleep(2);
	OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\"}", id);
	assert_int_equal(count_of("Rotations"), 2);
	/* Each automatic rotation is a service event in the audit log, as
	 * CloudTrail records KMS's own (its key, the version it made). */
	assert_int_equal(wait_audit("\"eventName\":\"RotateKey\"", id, 2), 2);
	assert_int_equal(tu_audit_count(&env, id, SERVICE_EVENT), 2);
	assert_int_equal(tu_audit_count(&env, "\"rotationType\":\"AUTOMATIC\","
	    "\"keyVersion\":3", id), 1);
}

/* max_encryptions_per_version = 50 in this group: the 51st encryption
 * rotates, and the history says why. */
static void
test_budget_rotation_joins_the_history(void **state)
{
	char id[KMS_KEY_ID_LEN + 1];
	kms_buf first, b;
	json_t *rot;
	int i;

	new_key(id);
	assert_int_equal(seal(id, "first", &first), 1);
	for (i = 1; i < 50; i++) {
		assert_int_equal(seal(id, "x", &b), 1);
		kms_buf_free(&b);
	}
	assert_int_equal(seal(id, "x", &b), 2);
	kms_buf_free(&b);
	opens_to(&first, "first");
	kms_buf_free(&first);
	OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\"}", id);
	assert_int_equal(count_of("Rotations"), 1);
	rot = json_array_get(json_object_get(last, "Rotations"), 0);
	assert_string_equal(json_string_value(json_object_get(rot,
	    "RotationType")), "AUTOMATIC");
	assert_string_equal(json_string_value(json_object_get(rot,
	    "RotationReason")), "ENCRYPTION_LIMIT");
	/* A service event in the audit log, as for a rotation on
	 * schedule, saying why. */
	assert_int_equal(wait_audit("\"eventName\":\"RotateKey\"", id, 1), 1);
	assert_int_equal(tu_audit_count(&env, "\"rotationType\":\"AUTOMATIC\","
	    "\"rotationReason\":\"ENCRYPTION_LIMIT\",\"keyVersion\":2", id),
	    1);
}

/* ------------------------------------------------------------- deletion */

static void
test_schedule_and_cancel_deletion_as_aws_does(void **state)
{
	char id[KMS_KEY_ID_LEN + 1];
	kms_key_metadata m;
	kms_error_info ei;
	double now;

	new_key(id);
	FAILS(KMS_EVALIDATION, "{\"Action\":\"ScheduleKeyDeletion\","
	    "\"KeyId\":\"%s\",\"PendingWindowInDays\":6}", id);
	FAILS(KMS_EVALIDATION, "{\"Action\":\"ScheduleKeyDeletion\","
	    "\"KeyId\":\"%s\",\"PendingWindowInDays\":31}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"CancelKeyDeletion\","
	    "\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"AdvanceTestClock\",\"Seconds\":1}");
	now = num_of("Now");
	OK("{\"Action\":\"ScheduleKeyDeletion\",\"KeyId\":\"%s\"}", id);
	assert_non_null(strstr(str_of("KeyId"), id));
	assert_string_equal(str_of("KeyState"), "PendingDeletion");
	assert_int_equal((int)num_of("PendingWindowInDays"), 30);
	assert_true(fabs(num_of("DeletionDate") - (now + 30 * 86400)) < 60);
	must(kms_describe_key(cl, id, NULL, &m, &ei), &ei, "DescribeKey");
	assert_string_equal(m.key_state, "PendingDeletion");
	assert_false(m.enabled);
	assert_true(fabs(m.deletion_date - (now + 30 * 86400)) < 60);
	kms_key_metadata_free(&m);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"ScheduleKeyDeletion\","
	    "\"KeyId\":\"%s\"}", id);

	/* Cancelled: back, Disabled (AWS), with no deletion date. */
	OK("{\"Action\":\"CancelKeyDeletion\",\"KeyId\":\"%s\"}", id);
	assert_non_null(strstr(str_of("KeyId"), id));
	must(kms_describe_key(cl, id, NULL, &m, &ei), &ei, "DescribeKey");
	assert_string_equal(m.key_state, "Disabled");
	assert_true(m.deletion_date == 0);
	kms_key_metadata_free(&m);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"CancelKeyDeletion\","
	    "\"KeyId\":\"%s\"}", id);
	must(kms_enable_key(cl, id, &ei), &ei, "EnableKey");

	/* A short window; the date passes and the key is shredded, not
	 * before. */
	OK("{\"Action\":\"ScheduleKeyDeletion\",\"KeyId\":\"%s\","
	    "\"PendingWindowInDays\":7}", id);
	assert_int_equal((int)num_of("PendingWindowInDays"), 7);
	OK("{\"Action\":\"AdvanceTestClock\",\"Days\":6}");
	sleep(2);
	OK("{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"AdvanceTestClock\",\"Days\":2}");
	for (now = tu_now_s(); tu_now_s() - now < 20; usleep(100000)) {
		if (call("{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}",
		    id) == KMS_ENOTFOUND) {
			break;
		}
	}
	FAILS(KMS_ENOTFOUND, "{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}",
	    id);
}

/* AWS's key-state table, row by row, for a key PendingDeletion (and the
 * crypto rows for a Disabled key). */
static void
test_every_operation_answers_as_aws_while_pending_deletion(void **state)
{
	char id[KMS_KEY_ID_LEN + 1], other[KMS_KEY_ID_LEN + 1], grant[128];
	char alias[64];
	kms_buf blob;
	const char *b;

	new_key(id);
	new_key(other);
	snprintf(alias, sizeof(alias), "alias/pd-%.8s", id);
	(void)seal(id, "before", &blob);
	b = b64(&blob);
	OK("{\"Action\":\"CreateAlias\",\"AliasName\":\"%s\","
	    "\"TargetKeyId\":\"%s\"}", alias, id);
	OK("{\"Action\":\"TagResource\",\"KeyId\":\"%s\",\"Tags\":"
	    "[{\"TagKey\":\"t\",\"TagValue\":\"v\"}]}", id);
	OK("{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\",\"GranteePrincipal\":"
	    "\"user:nobody\",\"Operations\":[\"Decrypt\"]}", id);
	snprintf(grant, sizeof(grant), "%s", str_of("GrantId"));

	/* Disabled first: crypto says DisabledException. */
	OK("{\"Action\":\"DisableKey\",\"KeyId\":\"%s\"}", id);
	FAILS(KMS_EDISABLED, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", id);
	FAILS(KMS_EDISABLED, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":"
	    "\"%s\"}", b);
	FAILS(KMS_EDISABLED, "{\"Action\":\"GenerateDataKey\",\"KeyId\":"
	    "\"%s\",\"KeySpec\":\"AES_256\"}", id);

	OK("{\"Action\":\"ScheduleKeyDeletion\",\"KeyId\":\"%s\","
	    "\"PendingWindowInDays\":30}", id);
	/* X: KMSInvalidStateException. */
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":"
	    "\"%s\"}", b);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"ReEncrypt\",\"CiphertextBlob\":"
	    "\"%s\",\"DestinationKeyId\":\"%s\"}", b, other);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"GenerateDataKey\",\"KeyId\":"
	    "\"%s\",\"KeySpec\":\"AES_256\"}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":"
	    "\"GenerateDataKeyWithoutPlaintext\",\"KeyId\":\"%s\","
	    "\"KeySpec\":\"AES_256\"}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"EnableKey\",\"KeyId\":\"%s\"}",
	    id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"DisableKey\",\"KeyId\":"
	    "\"%s\"}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"UpdateKeyDescription\","
	    "\"KeyId\":\"%s\",\"Description\":\"x\"}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"TagResource\",\"KeyId\":"
	    "\"%s\",\"Tags\":[{\"TagKey\":\"u\",\"TagValue\":\"v\"}]}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"UntagResource\",\"KeyId\":"
	    "\"%s\",\"TagKeys\":[\"t\"]}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"CreateAlias\",\"AliasName\":"
	    "\"%s-2\",\"TargetKeyId\":\"%s\"}", alias, id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\","
	    "\"GranteePrincipal\":\"user:nobody\",\"Operations\":"
	    "[\"Decrypt\"]}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"EnableKeyRotation\","
	    "\"KeyId\":\"%s\"}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"DisableKeyRotation\","
	    "\"KeyId\":\"%s\"}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"RotateKeyOnDemand\","
	    "\"KeyId\":\"%s\"}", id);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"ScheduleKeyDeletion\","
	    "\"KeyId\":\"%s\"}", id);
	/* Through its alias, the same. */
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", alias);
	/* ✓: what reads or removes. */
	OK("{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}", id);
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(last, "KeyMetadata"), "KeyState")),
	    "PendingDeletion");
	assert_true(json_number_value(json_object_get(json_object_get(last,
	    "KeyMetadata"), "DeletionDate")) > 1.7e9);
	OK("{\"Action\":\"GetKeyPolicy\",\"KeyId\":\"%s\",\"PolicyName\":"
	    "\"default\"}", id);
	OK("{\"Action\":\"ListKeyPolicies\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"ListResourceTags\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"ListGrants\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"ListAliases\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"GetKeyRotationStatus\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"RevokeGrant\",\"KeyId\":\"%s\",\"GrantId\":\"%s\"}",
	    id, grant);
	OK("{\"Action\":\"DeleteAlias\",\"AliasName\":\"%s\"}", alias);
	OK("{\"Action\":\"CancelKeyDeletion\",\"KeyId\":\"%s\"}", id);
	kms_buf_free(&blob);
}

/* Does the file at path hold the bytes? */
static int
file_holds(const char *path, const uint8_t *what, size_t len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0, got;
	int found;

	if (f == NULL) {
		return 0;
	}
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			assert_non_null(buf = realloc(buf, cap));
		}
		if ((got = fread(buf + n, 1, cap - n, f)) == 0) {
			break;
		}
		n += got;
	}
	fclose(f);
	found = n >= len && memmem(buf, n, what, len) != NULL;
	free(buf);
	return found;
}

static int
db_holds(const uint8_t *what, size_t len)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char path[400];
	size_t i;

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/kmsd.db%s", env.dir, sfx[i]);
		if (file_holds(path, what, len)) {
			return 1;
		}
	}
	return 0;
}

#define MAX_VERSIONS 8
struct material {
	uint8_t m[64];
	int len;
};

/* The stored material of id's versions, read from kmsd's database. */
static int
read_material(const char *id, struct material *out)
{
	char path[400], sql[256];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = 0;

	snprintf(path, sizeof(path), "%s/kmsd.db", env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_busy_timeout(db, 5000);
	snprintf(sql, sizeof(sql), "SELECT material FROM versions v JOIN "
	    "keys k ON k.id = v.key_id WHERE lower(hex(k.id)) = "
	    "replace('%s', '-', '') ORDER BY version", id);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
	    SQLITE_OK);
	while (n < MAX_VERSIONS && sqlite3_step(st) == SQLITE_ROW) {
		out[n].len = sqlite3_column_bytes(st, 0);
		assert_true(out[n].len > 0 && out[n].len <= 64);
		memcpy(out[n].m, sqlite3_column_blob(st, 0),
		    (size_t)out[n].len);
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* 1 when the token holds a resident object with CKA_ID id (read with
 * PKCS#11 by this process, beside kmsd). */
static int
token_holds(const uint8_t *cka_id, size_t len)
{
	struct hsm_config hc;
	char conf[400], pin[400], err[256];
	hsm *h = NULL;
	hsm_session *s = NULL;
	hsm_key k = 0;
	int r;

	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", env.dir);
	snprintf(pin, sizeof(pin), "%s/user.pin", env.dir);
	setenv("SOFTHSM2_CONF", conf, 1);
	memset(&hc, 0, sizeof(hc));
	hc.module = env.module;
	hc.token_label = "kmsd";
	hc.pin_file = pin;
	if (hsm_open(&hc, &h, err, sizeof(err)) != 0) {
		fail_msg("hsm_open: %s", err);
	}
	assert_int_equal(hsm_session_open(h, &s), 0);
	r = hsm_load_resident(s, cka_id, len, NULL, &k);
	if (r == 0) {
		hsm_key_release(s, k);
	} else {
		assert_int_equal(r, KMS_ENOTFOUND);
	}
	hsm_session_close(s);
	hsm_close(h);
	return r == 0;
}

static void
test_deletion_shreds_the_material_in_the_token_and_the_files(void **state)
{
	char id[KMS_KEY_ID_LEN + 1], alias[64];
	struct material mat[MAX_VERSIONS];
	kms_buf blob;
	double t0;
	int n, i, resident = strcmp(storage, "resident") == 0;

	new_key(id);
	OK("{\"Action\":\"RotateKeyOnDemand\",\"KeyId\":\"%s\"}", id);
	snprintf(alias, sizeof(alias), "alias/shred-%.8s", id);
	OK("{\"Action\":\"CreateAlias\",\"AliasName\":\"%s\","
	    "\"TargetKeyId\":\"%s\"}", alias, id);
	OK("{\"Action\":\"TagResource\",\"KeyId\":\"%s\",\"Tags\":"
	    "[{\"TagKey\":\"t\",\"TagValue\":\"v\"}]}", id);
	OK("{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\",\"GranteePrincipal\":"
	    "\"user:nobody\",\"Operations\":[\"Decrypt\"]}", id);
	(void)seal(id, "doomed", &blob);

	/* What there is to shred, seen first (so the search below works). */
	assert_int_equal(n = read_material(id, mat), 2);
	for (i = 0; i < n; i++) {
		assert_true(db_holds(mat[i].m, (size_t)mat[i].len));
		if (resident) {
			assert_true(token_holds(mat[i].m,
			    (size_t)mat[i].len));
		}
	}

	OK("{\"Action\":\"ScheduleKeyDeletion\",\"KeyId\":\"%s\","
	    "\"PendingWindowInDays\":7}", id);
	OK("{\"Action\":\"AdvanceTestClock\",\"Days\":8}");
	for (t0 = tu_now_s(); tu_now_s() - t0 < 20; usleep(100000)) {
		if (call("{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}",
		    id) == KMS_ENOTFOUND) {
			break;
		}
	}
	FAILS(KMS_ENOTFOUND, "{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}",
	    id);
	/* NotFound from the moment the shred begins; it is done when kmsd
	 * says so. */
	for (t0 = tu_now_s(); tu_now_s() - t0 < 20 &&
	    !tu_log_says(&env, "deleted: 2 versions shredded");
	    usleep(100000)) {
	}
	assert_true(tu_log_says(&env, "deleted: 2 versions shredded"));
	/* The shred is a service event of its own in the audit log. */
	assert_int_equal(wait_audit("\"eventName\":\"DeleteKey\"", id, 1), 1);
	assert_int_equal(tu_audit_count(&env, id, "\"versionsShredded\":2"),
	    1);
	assert_int_equal(tu_audit_count(&env, id, SERVICE_EVENT), 1);
	FAILS(KMS_ENOTFOUND, "{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}",
	    alias);
	FAILS(KMS_EINVALIDCIPHERTEXT, "{\"Action\":\"Decrypt\","
	    "\"CiphertextBlob\":\"%s\"}", b64(&blob));
	OK("{\"Action\":\"ListAliases\"}");
	{
		char *all = json_dumps(last, 0);
		assert_non_null(all);
		assert_null(strstr(all, alias));
		free(all);
	}
	for (i = 0; i < n; i++) {
		/* Byte by byte: the database, its WAL, its shared memory. */
		assert_false(db_holds(mat[i].m, (size_t)mat[i].len));
		if (resident) {
			assert_false(token_holds(mat[i].m,
			    (size_t)mat[i].len));
		}
	}
	assert_int_equal(read_material(id, mat), 0);
	kms_buf_free(&blob);
}

/* ------------------------------------------------- kmsctl, libkmsclient */

static void
test_kmsctl_and_typed_calls_drive_the_whole_life(void **state)
{
	char id[KMS_KEY_ID_LEN + 1], *out = NULL, marker[32];
	kms_key_rotation_status st;
	kms_key_rotation_list l;
	kms_schedule_key_deletion_resp sd;
	kms_error_info ei;
	double now = (double)time(NULL);

	new_key(id);
	must(kms_enable_key_rotation(cl, id, 100, &ei), &ei,
	    "EnableKeyRotation");
	must(kms_get_key_rotation_status(cl, id, &st, &ei), &ei,
	    "GetKeyRotationStatus");
	assert_true(st.key_rotation_enabled);
	assert_int_equal(st.rotation_period_in_days, 100);
	assert_true(st.next_rotation_date > now + 99 * 86400);
	assert_non_null(strstr(st.key_id, id));
	assert_int_equal(kms_enable_key_rotation(cl, id, 80, &ei),
	    KMS_EVALIDATION);

	assert_int_equal(kmsctl(&out, "enable-key-rotation --key-id %s "
	    "--rotation-period-in-days 120", id), 0);
	free(out);
	assert_int_equal(kmsctl(&out, "get-key-rotation-status --key-id %s "
	    "--query RotationPeriodInDays", id), 0);
	assert_string_equal(tu_trimnl(out), "120");
	free(out);
	assert_int_equal(kmsctl(&out, "get-key-rotation-status --key-id %s",
	    id), 0);
	assert_non_null(strstr(out, "\"NextRotationDate\": \"20"));
	free(out);

	assert_int_equal(kmsctl(&out, "rotate-key-on-demand --key-id %s", id),
	    0);
	free(out);
	must(kms_rotate_key_on_demand(cl, id, &ei), &ei, "RotateKeyOnDemand");
	must(kms_list_key_rotations(cl, id, 1, NULL, &l, &ei), &ei,
	    "ListKeyRotations");
	assert_int_equal(l.nrotations, 1);
	assert_true(l.truncated);
	assert_non_null(l.next_marker);
	assert_string_equal(l.rotations[0].rotation_type, "ON_DEMAND");
	assert_true(l.rotations[0].rotation_date > 1.7e9);
	snprintf(marker, sizeof(marker), "%s", l.next_marker);
	kms_key_rotation_list_free(&l);
	must(kms_list_key_rotations(cl, id, 0, marker, &l, &ei), &ei,
	    "ListKeyRotations");
	assert_int_equal(l.nrotations, 1);
	assert_false(l.truncated);
	kms_key_rotation_list_free(&l);
	/* kmsctl pages through everything, as the AWS CLI does. */
	assert_int_equal(kmsctl(&out, "list-key-rotations --key-id %s", id),
	    0);
	assert_non_null(strstr(out, "\"RotationType\": \"ON_DEMAND\""));
	assert_non_null(strstr(strstr(out, "ON_DEMAND") + 1, "ON_DEMAND"));
	assert_non_null(strstr(out, "\"RotationDate\": \"20"));
	free(out);

	assert_int_equal(kmsctl(&out, "disable-key-rotation --key-id %s", id),
	    0);
	free(out);
	must(kms_get_key_rotation_status(cl, id, &st, &ei), &ei,
	    "GetKeyRotationStatus");
	assert_false(st.key_rotation_enabled);
	assert_int_equal(st.rotation_period_in_days, 0);

	assert_int_equal(kmsctl(&out, "schedule-key-deletion --key-id %s "
	    "--pending-window-in-days 7", id), 0);
	assert_non_null(strstr(out, "\"KeyState\": \"PendingDeletion\""));
	assert_non_null(strstr(out, "\"PendingWindowInDays\": 7"));
	free(out);
	/* AWS CLI's error line and exit status for a refused operation. */
	assert_int_equal(kmsctl(&out, "rotate-key-on-demand --key-id %s", id),
	    254);
	assert_non_null(strstr(kmsctl_err, "KMSInvalidStateException"));
	free(out);
	assert_int_equal(kmsctl(&out, "cancel-key-deletion --key-id %s", id),
	    0);
	free(out);
	must(kms_schedule_key_deletion(cl, id, 0, &sd, &ei), &ei,
	    "ScheduleKeyDeletion");
	assert_int_equal(sd.pending_window_in_days, 30);
	assert_string_equal(sd.key_state, "PendingDeletion");
	assert_true(sd.deletion_date > now + 29 * 86400);
	must(kms_cancel_key_deletion(cl, id, &ei), &ei, "CancelKeyDeletion");
	assert_int_equal(kms_cancel_key_deletion(cl, id, &ei),
	    KMS_EINVALIDSTATE);
	assert_string_equal(ei.name, "KMSInvalidStateException");
	must(kms_advance_test_clock(cl, 60, &ei), &ei, "AdvanceTestClock");
}

/* ------------------------------------------------ imported key material */

/* Write a base64 field of last into dir/name. */
static void
save_b64(const char *field, const char *name)
{
	const char *v = str_of(field);
	uint8_t buf[2048];
	size_t n = 0;
	char path[400];
	FILE *f;

	assert_int_equal(b64_decode(v, strlen(v), buf, sizeof(buf), &n), 0);
	snprintf(path, sizeof(path), "%s/%s", env.dir, name);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(buf, 1, n, f), n);
	fclose(f);
}

/* GetParametersForImport, then wrap dir/<material> with openssl pkeyutl
 * under its public key into dir/wrapped.bin (token in dir/token.bin). */
static void
wrap_for_import(const char *id, const char *material)
{
	char cmd[1500];

	OK("{\"Action\":\"GetParametersForImport\",\"KeyId\":\"%s\","
	    "\"WrappingAlgorithm\":\"RSAES_OAEP_SHA_1\","
	    "\"WrappingKeySpec\":\"RSA_2048\"}", id);
	assert_true(num_of("ParametersValidTo") > 1.7e9);
	save_b64("PublicKey", "pub.der");
	save_b64("ImportToken", "token.bin");
	snprintf(cmd, sizeof(cmd), "openssl pkeyutl -encrypt -pubin "
	    "-keyform DER -inkey %s/pub.der -pkeyopt rsa_padding_mode:oaep "
	    "-pkeyopt rsa_oaep_md:sha1 -in %s/%s -out %s/wrapped.bin",
	    env.dir, env.dir, material, env.dir);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
}

static void
random_file(const char *name, size_t n)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "head -c %zu /dev/urandom > %s/%s", n,
	    env.dir, name);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
}

/* enc_reserved of id's version 1, read from kmsd's database. */
static long long
reserved_of(const char *id)
{
	char path[400], sql[256];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	snprintf(path, sizeof(path), "%s/kmsd.db", env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_busy_timeout(db, 5000);
	snprintf(sql, sizeof(sql), "SELECT enc_reserved FROM versions WHERE "
	    "lower(hex(key_id)) = replace('%s', '-', '') AND version = 1",
	    id);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
	    SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static const char *
state_of(const char *id)
{
	static char st[32];

	OK("{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}", id);
	snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(
	    json_object_get(last, "KeyMetadata"), "KeyState")));
	return st;
}

static void
test_imported_key_material_round_trip_expiry_and_reimport(void **state)
{
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	char id[KMS_KEY_ID_LEN + 1], *out = NULL, valid_to[64];
	kms_buf blob;
	time_t when;
	struct tm tm;
	double t0;

	cr.origin = "EXTERNAL";
	must(kms_create_key(cl, &cr, &m, &ei), &ei, "CreateKey EXTERNAL");
	snprintf(id, sizeof(id), "%s", m.key_id);
	assert_string_equal(m.key_state, "PendingImport");
	assert_string_equal(m.origin, "EXTERNAL");
	kms_key_metadata_free(&m);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", id);
	/* SoftHSM2 unwraps OAEP with SHA-1 only: kmsd's start-up check
	 * found so (and logged it), and the refusal says so: not faked. */
	FAILS(KMS_EUNSUPPORTED, "{\"Action\":\"GetParametersForImport\","
	    "\"KeyId\":\"%s\",\"WrappingAlgorithm\":\"RSAES_OAEP_SHA_256\","
	    "\"WrappingKeySpec\":\"RSA_2048\"}", id);
	assert_non_null(strstr(last_ei.message, "start-up check"));
	assert_non_null(strstr(last_ei.message, "SHA-1"));
	assert_true(tu_log_says(&env, "HSM check: RSA-OAEP unwrapping with "
	    "SHA-256 refused or wrong"));
	FAILS(KMS_EVALIDATION, "{\"Action\":\"GetParametersForImport\","
	    "\"KeyId\":\"%s\",\"WrappingAlgorithm\":\"RSAES_OAEP_SHA_1\","
	    "\"WrappingKeySpec\":\"RSA_1024\"}", id);

	/* Material wrapped outside with openssl, imported through kmsctl,
	 * expiring in two days of kmsd's clock. */
	random_file("key.bin", 32);
	wrap_for_import(id, "key.bin");
	OK("{\"Action\":\"AdvanceTestClock\",\"Seconds\":1}");
	when = (time_t)num_of("Now") + 2 * 86400;
	gmtime_r(&when, &tm);
	strftime(valid_to, sizeof(valid_to), "%Y-%m-%dT%H:%M:%SZ", &tm);
	assert_int_equal(kmsctl(&out, "import-key-material --key-id %s "
	    "--import-token fileb://%s/token.bin --encrypted-key-material "
	    "fileb://%s/wrapped.bin --expiration-model KEY_MATERIAL_EXPIRES "
	    "--valid-to %s", id, env.dir, env.dir, valid_to), 0);
	free(out);
	assert_string_equal(state_of(id), "Enabled");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    last, "KeyMetadata"), "ExpirationModel")), "KEY_MATERIAL_EXPIRES");
	assert_true(fabs(json_number_value(json_object_get(json_object_get(
	    last, "KeyMetadata"), "ValidTo")) - (double)when) < 2);
	assert_int_equal(seal(id, "imported", &blob), 1);
	opens_to(&blob, "imported");
	FAILS(KMS_EUNSUPPORTED, "{\"Action\":\"RotateKeyOnDemand\","
	    "\"KeyId\":\"%s\"}", id);

	/* ValidTo passes: the material is destroyed, the key waits for it. */
	OK("{\"Action\":\"AdvanceTestClock\",\"Days\":3}");
	for (t0 = tu_now_s(); tu_now_s() - t0 < 20 &&
	    strcmp(state_of(id), "PendingImport") != 0; usleep(100000)) {
	}
	assert_string_equal(state_of(id), "PendingImport");
	assert_int_equal(wait_audit("\"eventName\":\"DeleteExpiredKeyMaterial\"",
	    id, 1), 1);
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":"
	    "\"%s\"}", b64(&blob));

	/* Other material is refused; the same comes back, and the old
	 * ciphertext decrypts again. */
	random_file("other.bin", 32);
	wrap_for_import(id, "other.bin");
	assert_int_equal(kmsctl(&out, "import-key-material --key-id %s "
	    "--import-token fileb://%s/token.bin --encrypted-key-material "
	    "fileb://%s/wrapped.bin", id, env.dir, env.dir), 254);
	assert_non_null(strstr(kmsctl_err, "IncorrectKeyMaterialException"));
	free(out);
	random_file("short.bin", 16);
	wrap_for_import(id, "short.bin");
	assert_int_equal(kmsctl(&out, "import-key-material --key-id %s "
	    "--import-token fileb://%s/token.bin --encrypted-key-material "
	    "fileb://%s/wrapped.bin", id, env.dir, env.dir), 254);
	assert_non_null(strstr(kmsctl_err, "InvalidCiphertextException"));
	free(out);
	wrap_for_import(id, "key.bin");
	/* This time wrapped by kmsctl's own helper (OpenSSL inside). */
	assert_int_equal(kmsctl(&out, "wrap-key-material --public-key "
	    "fileb://%s/pub.der --key-material fileb://%s/key.bin --outfile "
	    "%s/wrapped.bin", env.dir, env.dir, env.dir), 0);
	free(out);
	assert_int_equal(kmsctl(&out, "wrap-key-material --public-key "
	    "fileb://%s/pub.der --key-material fileb://%s/short.bin",
	    env.dir, env.dir), 252);
	free(out);
	assert_int_equal(kmsctl(&out, "import-key-material --key-id %s "
	    "--import-token fileb://%s/token.bin --encrypted-key-material "
	    "fileb://%s/wrapped.bin --expiration-model "
	    "KEY_MATERIAL_DOES_NOT_EXPIRE", id, env.dir, env.dir), 0);
	free(out);
	assert_string_equal(state_of(id), "Enabled");
	opens_to(&blob, "imported");
	/* The same material's GCM count goes on from its first life (the
	 * encryption above reserved a block of 50, this group's budget). */
	assert_int_equal(reserved_of(id), 50);

	/* An import token lives 24 hours. */
	OK("{\"Action\":\"AdvanceTestClock\",\"Days\":2}");
	assert_int_equal(kmsctl(&out, "import-key-material --key-id %s "
	    "--import-token fileb://%s/token.bin --encrypted-key-material "
	    "fileb://%s/wrapped.bin", id, env.dir, env.dir), 254);
	assert_non_null(strstr(kmsctl_err, "ExpiredImportTokenException"));
	free(out);
	/* Deleted by request. */
	assert_int_equal(kmsctl(&out, "delete-imported-key-material --key-id "
	    "%s", id), 0);
	free(out);
	assert_string_equal(state_of(id), "PendingImport");
	FAILS(KMS_EINVALIDSTATE, "{\"Action\":\"DeleteImportedKeyMaterial\","
	    "\"KeyId\":\"%s\"}", id);
	/* The same through the typed calls. */
	{
		kms_import_parameters ip;
		char path[400], cmd[1500];
		uint8_t wrapped[1024];
		size_t wn;
		FILE *f;

		must(kms_get_parameters_for_import(cl, id, "RSAES_OAEP_SHA_1",
		    "RSA_3072", &ip, &ei), &ei, "GetParametersForImport");
		assert_true(ip.public_key.len > 300);
		snprintf(path, sizeof(path), "%s/pub3072.der", env.dir);
		assert_non_null(f = fopen(path, "wb"));
		assert_int_equal(fwrite(ip.public_key.data, 1,
		    ip.public_key.len, f), ip.public_key.len);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "openssl pkeyutl -encrypt -pubin "
		    "-keyform DER -inkey %s -pkeyopt rsa_padding_mode:oaep "
		    "-pkeyopt rsa_oaep_md:sha1 -in %s/key.bin -out "
		    "%s/wrapped3072.bin", path, env.dir, env.dir);
		assert_int_equal(tu_run(cmd, NULL, NULL), 0);
		snprintf(path, sizeof(path), "%s/wrapped3072.bin", env.dir);
		assert_non_null(f = fopen(path, "rb"));
		wn = fread(wrapped, 1, sizeof(wrapped), f);
		fclose(f);
		assert_int_equal(wn, 384);
		must(kms_import_key_material(cl, id, ip.import_token.data,
		    ip.import_token.len, wrapped, wn, 0, &ei), &ei,
		    "ImportKeyMaterial");
		kms_import_parameters_free(&ip);
		assert_string_equal(state_of(id), "Enabled");
		opens_to(&blob, "imported");
		must(kms_delete_imported_key_material(cl, id, &ei), &ei,
		    "DeleteImportedKeyMaterial");
		assert_string_equal(state_of(id), "PendingImport");
	}
	/* Keys made in the HSM take no imported material. */
	new_key(id);
	FAILS(KMS_EUNSUPPORTED, "{\"Action\":\"GetParametersForImport\","
	    "\"KeyId\":\"%s\",\"WrappingAlgorithm\":\"RSAES_OAEP_SHA_1\","
	    "\"WrappingKeySpec\":\"RSA_2048\"}", id);
	kms_buf_free(&blob);
}

static long
searches(const char *log)
{
	struct stat st;

	return stat(log, &st) == 0 ? (long)st.st_size : 0;
}

/*
 * No lifecycle operation on a request path searches the token: with the
 * counting PKCS#11 shim in front of SoftHSM2, resident keys (the case
 * that could search), rotations, encryption under the new versions, the
 * deletion window, and the whole import of key material add no
 * C_FindObjectsInit.
 */
static void
test_no_lifecycle_request_searches_the_token(void **state)
{
	char extra[1200], cwd[512], log[600], id[KMS_KEY_ID_LEN + 1];
	char ext[KMS_KEY_ID_LEN + 1], *out = NULL;
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	kms_buf b1, b2;
	long before;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(extra, sizeof(extra), "pkcs11_module = %s/%s/tests/"
	    "libp11shim.so\nkey_storage = resident\ntest_clock = yes",
	    cwd, build);
	assert_int_equal(tu_env_init(&env, extra), 0);
	snprintf(log, sizeof(log), "%s/find.log", env.dir);
	setenv("P11SHIM_FIND_LOG", log, 1);
	setenv("P11SHIM_MODULE", env.module, 1);
	unsetenv("P11SHIM_FAULT_FILE");
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	kms_client_set_timeout(cl, 20000);
	new_key(id);
	cr.origin = "EXTERNAL";
	must(kms_create_key(cl, &cr, &m, &ei), &ei, "CreateKey EXTERNAL");
	snprintf(ext, sizeof(ext), "%s", m.key_id);
	kms_key_metadata_free(&m);
	assert_int_equal(seal(id, "v1", &b1), 1);
	before = searches(log);
	assert_true(before > 0);	/* the shim does count (start-up) */

	OK("{\"Action\":\"RotateKeyOnDemand\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"RotateKeyOnDemand\",\"KeyId\":\"%s\"}", id);
	assert_int_equal(seal(id, "v3", &b2), 3);
	opens_to(&b1, "v1");
	opens_to(&b2, "v3");
	OK("{\"Action\":\"EnableKeyRotation\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"GetKeyRotationStatus\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"ListKeyRotations\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"ScheduleKeyDeletion\",\"KeyId\":\"%s\"}", id);
	OK("{\"Action\":\"CancelKeyDeletion\",\"KeyId\":\"%s\"}", id);
	kms_buf_free(&b1);
	kms_buf_free(&b2);

	random_file("key.bin", 32);
	wrap_for_import(ext, "key.bin");
	assert_int_equal(kmsctl(&out, "import-key-material --key-id %s "
	    "--import-token fileb://%s/token.bin --encrypted-key-material "
	    "fileb://%s/wrapped.bin", ext, env.dir, env.dir), 0);
	free(out);
	assert_int_equal(seal(ext, "imported", &b1), 1);
	opens_to(&b1, "imported");
	kms_buf_free(&b1);
	assert_int_equal(kmsctl(&out, "delete-imported-key-material --key-id "
	    "%s", ext), 0);
	free(out);
	assert_int_equal(searches(log), before);

	kms_client_close(cl);
	cl = NULL;
	json_decref(last);
	last = NULL;
	free(kmsctl_err);
	kmsctl_err = NULL;
	unsetenv("P11SHIM_FIND_LOG");
	assert_int_equal(tu_env_destroy(&env), 0);
}

/* ------------------------------------------------- domain-key rotation */

#define DK_KEYS 12
#define DK_BLOBS (DK_KEYS * 2)

/* Domain keys on env's token, read with PKCS#11: *cur under the domain
 * key's label, *next under the next one's. */
static void
domain_keys(int *cur, int *next)
{
	struct hsm_config hc;
	char conf[400], pin[400], err[256];
	hsm *h = NULL;
	hsm_session *s = NULL;

	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", env.dir);
	snprintf(pin, sizeof(pin), "%s/user.pin", env.dir);
	setenv("SOFTHSM2_CONF", conf, 1);
	memset(&hc, 0, sizeof(hc));
	hc.module = env.module;
	hc.token_label = "kmsd";
	hc.pin_file = pin;
	if (hsm_open(&hc, &h, err, sizeof(err)) != 0) {
		fail_msg("hsm_open: %s", err);
	}
	assert_int_equal(hsm_session_open(h, &s), 0);
	assert_int_equal(hsm_count_label(s, HSM_DOMAIN_LABEL, cur), 0);
	assert_int_equal(hsm_count_label(s, HSM_DOMAIN_NEXT_LABEL, next), 0);
	hsm_session_close(s);
	hsm_close(h);
}

/* Wait for kmsd to die of a crash point (SIGKILL); 1 if it did. */
static int
wait_killed(void)
{
	int i, st;

	for (i = 0; i < 300; i++) {
		if (waitpid(env.kmsd, &st, WNOHANG) == env.kmsd) {
			env.kmsd = 0;
			return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
		}
		usleep(50000);
	}
	return 0;
}

static int
wait_domain_done(void)
{
	int i;

	for (i = 0; i < 300; i++) {
		if (call("{\"Action\":\"GetDomainKeyStatus\"}") == 0 &&
		    strcmp(str_of("State"), "DONE") == 0) {
			return 1;
		}
		usleep(100000);
	}
	return 0;
}

static void
all_open(kms_buf *blobs, size_t n)
{
	char text[32];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "blob %zu", i);
		opens_to(&blobs[i], text);
	}
}

/*
 * The domain key rotated online (requests go on meanwhile), then killed
 * with SIGKILL at five points of a rotation and restarted: each time the
 * rotation finishes, every ciphertext of every version still decrypts,
 * new ones are made, and the token holds one domain key, a new one.
 */
static void
test_domain_key_rotation_online_and_after_kill_9_at_five_points(
    void **state)
{
	static const char *const points[] = { "requested", "after-begin",
		"mid-sweep", "before-commit", "after-destroy" };
	char ids[DK_KEYS][KMS_KEY_ID_LEN + 1], text[32], *out = NULL;
	struct material before[MAX_VERSIONS], after[MAX_VERSIONS];
	kms_buf blobs[DK_BLOBS], b;
	size_t i, p;
	int cur, next, rounds;

	assert_int_equal(tu_env_init(&env, "test_clock = yes\n"
	    "key_cache_handles = 16\nhsm_recycle_objects = 0"), 0);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	kms_client_set_timeout(cl, 20000);
	for (i = 0; i < DK_KEYS; i++) {
		new_key(ids[i]);
		snprintf(text, sizeof(text), "blob %zu", 2 * i);
		(void)seal(ids[i], text, &blobs[2 * i]);
		OK("{\"Action\":\"RotateKeyOnDemand\",\"KeyId\":\"%s\"}",
		    ids[i]);
		snprintf(text, sizeof(text), "blob %zu", 2 * i + 1);
		assert_int_equal(seal(ids[i], text, &blobs[2 * i + 1]), 2);
	}
	OK("{\"Action\":\"GetDomainKeyStatus\"}");
	assert_string_equal(str_of("State"), "NONE");
	assert_int_equal(read_material(ids[0], before), 2);

	/* Online: clients keep working while it runs (small batches). */
	kms_client_close(cl);
	cl = NULL;
	assert_int_equal(tu_kmsd_stop(&env), 0);
	setenv("KMSD_TEST_REWRAP_BATCH", "1", 1);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	assert_int_equal(kmsctl(&out, "admin rotate-domain-key --no-wait"),
	    0);
	free(out);
	for (rounds = 0; rounds < 3; rounds++) {
		all_open(blobs, DK_BLOBS);
		assert_true(seal(ids[rounds], "during", &b) >= 2);
		opens_to(&b, "during");
		kms_buf_free(&b);
	}
	assert_true(wait_domain_done());
	assert_int_equal((int)num_of("VersionsRewrapped"), DK_BLOBS);
	/* Its steps are service events in the audit log. */
	assert_int_equal(wait_audit("\"eventName\":"
	    "\"DomainKeyRotationCompleted\"", "\"versionsRewrapped\":24", 1),
	    1);
	assert_int_equal(tu_audit_count(&env, "\"eventName\":"
	    "\"DomainKeyRotationBegun\"", SERVICE_EVENT), 1);
	all_open(blobs, DK_BLOBS);
	domain_keys(&cur, &next);
	assert_int_equal(cur, 1);
	assert_int_equal(next, 0);
	/* Stored blobs re-wrapped: new bytes (the old ones opened only
	 * under the old domain key, which is destroyed). */
	assert_int_equal(read_material(ids[0], after), 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(after[i].len, before[i].len);
		assert_memory_not_equal(after[i].m, before[i].m,
		    (size_t)before[i].len);
	}

	for (p = 0; p < sizeof(points) / sizeof(points[0]); p++) {
		kms_client_close(cl);
		cl = NULL;
		assert_int_equal(tu_kmsd_stop(&env), 0);
		setenv("KMSD_TEST_CRASH", points[p], 1);
		setenv("KMSD_TEST_REWRAP_BATCH", "5", 1);
		assert_int_equal(tu_kmsd_start(&env), 0);
		assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
		/* kmsctl follows it to the end, or to the crash. */
		(void)kmsctl(&out, "admin rotate-domain-key");
		free(out);
		if (!wait_killed()) {
			fail_msg("kmsd did not die at %s", points[p]);
		}
		kms_client_close(cl);
		cl = NULL;
		unsetenv("KMSD_TEST_CRASH");
		assert_int_equal(tu_kmsd_start(&env), 0);
		assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
		kms_client_set_timeout(cl, 20000);
		if (!wait_domain_done()) {
			fail_msg("the rotation killed at %s did not finish",
			    points[p]);
		}
		all_open(blobs, DK_BLOBS);
		snprintf(text, sizeof(text), "after %s", points[p]);
		(void)seal(ids[p], text, &b);
		opens_to(&b, text);
		kms_buf_free(&b);
		domain_keys(&cur, &next);
		assert_int_equal(cur, 1);
		assert_int_equal(next, 0);
	}
	assert_true(tu_log_says(&env, "test crash point after-destroy"));
	assert_true(tu_log_says(&env, "the new domain key takes over"));
	/* Six rotations, each begun and completed once in the audit log,
	 * whatever point a kill -9 fell on; and the log verifies. */
	assert_int_equal(tu_audit_count(&env, "\"eventName\":"
	    "\"DomainKeyRotationBegun\"", SERVICE_EVENT), 6);
	assert_int_equal(tu_audit_count(&env, "\"eventName\":"
	    "\"DomainKeyRotationCompleted\"", SERVICE_EVENT), 6);
	unsetenv("KMSD_TEST_REWRAP_BATCH");
	/* Restarted once more: everything unwraps from the store. */
	kms_client_close(cl);
	cl = NULL;
	assert_int_equal(tu_kmsd_stop(&env), 0);
	assert_int_equal(tu_audit_verify(&env), 0);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	all_open(blobs, DK_BLOBS);
	for (i = 0; i < DK_BLOBS; i++) {
		kms_buf_free(&blobs[i]);
	}
	kms_client_close(cl);
	cl = NULL;
	json_decref(last);
	last = NULL;
	free(kmsctl_err);
	kmsctl_err = NULL;
	assert_int_equal(tu_env_destroy(&env), 0);
}

static const struct CMUnitTest once[] = {
	cmocka_unit_test(test_test_clock_refused_without_setting_or_to_non_admins),
	cmocka_unit_test(test_no_lifecycle_request_searches_the_token),
	cmocka_unit_test(test_domain_key_rotation_online_and_after_kill_9_at_five_points),
};

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_test_clock_moves_kmsd_forward),
	cmocka_unit_test(test_on_demand_rotation_keeps_every_version_decrypting),
	cmocka_unit_test(test_on_demand_rotation_limit_conflict_and_states),
	cmocka_unit_test(test_automatic_rotation_follows_the_test_clock),
	cmocka_unit_test(test_budget_rotation_joins_the_history),
	cmocka_unit_test(test_schedule_and_cancel_deletion_as_aws_does),
	cmocka_unit_test(test_every_operation_answers_as_aws_while_pending_deletion),
	cmocka_unit_test(test_deletion_shreds_the_material_in_the_token_and_the_files),
	cmocka_unit_test(test_kmsctl_and_typed_calls_drive_the_whole_life),
	cmocka_unit_test(test_imported_key_material_round_trip_expiry_and_reimport),
};

int
main(void)
{
	int r;

	if (getenv("KMS_TEST_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("KMS_TEST_FILTER"));
	}
	r = cmocka_run_group_tests_name("lifecycle, own daemons", once, NULL,
	    NULL);
	storage = "wrapped";
	r |= cmocka_run_group_tests_name("lifecycle, wrapped keys", tests,
	    setup, teardown);
	storage = "resident";
	r |= cmocka_run_group_tests_name("lifecycle, resident keys", tests,
	    setup, teardown);
	return r;
}
