/*
 * test_audit.c — the audit log of a real kmsd on a real SoftHSM2 token:
 * records of every kind of request (allowed, denied, failed, Batch items),
 * no secret in any file kmsd wrote (canaries planted in every secret
 * field), `kmsctl audit verify` naming each kind of tampering and where,
 * a log written while kmsd was killed with SIGKILL twenty times verifying
 * end to end, files rotated under many concurrent writers, and a full
 * disk refusing requests and recovering by itself.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "kms.h"
#include "common/b64.h"
#include "tests/testutil.h"

/* Send a raw request; returns 0 (success) or the error; *reply set. */
static int
call(kms_client *c, char **reply, const char *fmt, ...)
{
	char req[16384];
	kms_error_info ei;
	size_t n = 0;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	*reply = NULL;
	r = kms_call_json(c, req, strlen(req), reply, &n, &ei);
	return r;
}

static char *
field(const char *reply, const char *path1, const char *path2)
{
	json_t *j = json_loads(reply, 0, NULL), *v;
	char *s = NULL;

	v = json_object_get(j, path1);
	if (path2 != NULL) {
		v = json_object_get(v, path2);
	}
	if (json_is_string(v)) {
		s = strdup(json_string_value(v));
	}
	json_decref(j);
	return s;
}

/* All of the audit files of dir, as a glob for the shell. */
static void
audit_files(const char *dir, char *out, size_t len)
{
	snprintf(out, len, "%s/kmsd-audit-*.jsonl", dir);
}

/* kmsctl audit verify --json over the files; returns its exit status and
 * the parsed report. */
static int
verify(const char *pem, const char *files, json_t **report)
{
	char cmd[8192], *out = NULL;
	int r;

	snprintf(cmd, sizeof(cmd), "%s audit verify --json %s%s %s",
	    tu_bin("kmsctl"), pem != NULL ? "--public-key " : "",
	    pem != NULL ? pem : "", files);
	r = tu_run(cmd, &out, NULL);
	*report = json_loads(out != NULL ? out : "", 0, NULL);
	if (*report == NULL) {
		fprintf(stderr, "verify printed: %s\n", out ? out : "");
	}
	free(out);
	return r;
}

static void
export_key(const struct tu_env *e, char *pem, size_t len)
{
	char cmd[1024];

	snprintf(pem, len, "%s/audit-key.pem", e->dir);
	snprintf(cmd, sizeof(cmd), "KMS_ENDPOINT=%s %s audit public-key > %s",
	    e->endpoint, tu_bin("kmsctl"), pem);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	/* The endpoint given before the command, as for any other, gives
	 * the same key. */
	snprintf(cmd, sizeof(cmd), "%s --endpoint %s audit public-key | cmp "
	    "-s - %s", tu_bin("kmsctl"), e->endpoint, pem);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
}

/* Lines of the audit files holding every one of the strings. */
static int
count_records(const char *dir, const char *a, const char *b)
{
	char path[600], line[65536];
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;
	FILE *f;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "kmsd-audit-", 11) != 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_non_null(f = fopen(path, "r"));
		while (fgets(line, sizeof(line), f) != NULL) {
			n += strstr(line, a) != NULL && (b == NULL ||
			    strstr(line, b) != NULL);
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/* ---- records ---- */

/* A Description as JSON text (for a request) and as the string it is. */
#define ESCAPES_JSON "escape-marker q\\\"b\\\\s\\nn\\tt\\u0001x\\u001fy" \
	"\\u007fz\\u00e9\\u20ac 0123456789abcdef\\\"\\\"\\\\end"
#define ESCAPES_TEXT "escape-marker q\"b\\s\nn\tt\001x\037y\177z\xc3\xa9" \
	"\xe2\x82\xac 0123456789abcdef\"\"\\end"

/* 1 when the records of dir hold exactly one CreateKey whose
 * description holds marker, it parses, and it is ESCAPES_TEXT. */
static int
logged_description(const char *dir, const char *marker)
{
	char path[600], line[65536];
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0, ok = 0;
	json_t *j, *v;
	FILE *f;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "kmsd-audit-", 11) != 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_non_null(f = fopen(path, "r"));
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strstr(line, marker) == NULL) {
				continue;
			}
			n++;
			j = json_loads(line, 0, NULL);
			v = json_object_get(json_object_get(j,
			    "requestParameters"), "description");
			ok = json_is_string(v) && strcmp(json_string_value(v),
			    ESCAPES_TEXT) == 0;
			json_decref(j);
		}
		fclose(f);
	}
	closedir(d);
	return n == 1 && ok;
}

static void
test_audit_records_requests_denials_failures_and_batch_items(void **state)
{
	struct tu_env e;
	kms_client *c;
	char *rep, *key, *key2, *blob, pem[400], dir[400], files[4096], *lu_op,
	    *lu_ev;
	json_t *report;

	(void)state;
	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	assert_int_equal(call(c, &rep, "{\"Action\":\"CreateKey\","
	    "\"Description\":\"orders\"}"), 0);
	assert_non_null(key = field(rep, "KeyMetadata", "KeyId"));
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":"
	    "\"%s\",\"Plaintext\":\"aGVsbG8=\",\"EncryptionContext\":"
	    "{\"dept\":\"audit-ctx\"}}", key), 0);
	assert_non_null(blob = field(rep, "CiphertextBlob", NULL));
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Decrypt\","
	    "\"CiphertextBlob\":\"%s\",\"EncryptionContext\":{\"dept\":"
	    "\"wrong\"}}", blob), KMS_EINVALIDCIPHERTEXT);
	kms_free(rep);
	/* A policy that denies the caller Encrypt: a denial. */
	assert_int_equal(call(c, &rep, "{\"Action\":\"PutKeyPolicy\","
	    "\"KeyId\":\"%s\",\"PolicyName\":\"default\",\"Policy\":"
	    "\"{\\\"Version\\\":\\\"2012-10-17\\\",\\\"Statement\\\":["
	    "{\\\"Effect\\\":\\\"Allow\\\",\\\"Principal\\\":\\\"*\\\","
	    "\\\"Action\\\":\\\"kms:*\\\",\\\"Resource\\\":\\\"*\\\"},"
	    "{\\\"Effect\\\":\\\"Deny\\\",\\\"Principal\\\":\\\"*\\\","
	    "\\\"Action\\\":\\\"kms:Encrypt\\\",\\\"Resource\\\":\\\"*\\\"}]}\"}",
	    key), 0);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":"
	    "\"%s\",\"Plaintext\":\"aGVsbG8=\"}", key), KMS_EACCESSDENIED);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Batch\",\"Requests\":["
	    "{\"Action\":\"GenerateDataKey\",\"KeyId\":\"%s\",\"KeySpec\":"
	    "\"AES_256\"},{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":8},"
	    "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"dept\":\"audit-ctx\"}}]}", key, blob), 0);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "not json"), KMS_ESERIALIZATION);
	kms_free(rep);
	/* A logged string with every kind of byte that must be escaped,
	 * and some that must not, at every offset of an 8-byte word. */
	(void)call(c, &rep, "{\"Action\":\"CreateKey\",\"Description\":"
	    "\"%s\"}", ESCAPES_JSON);
	kms_free(rep);
	/* GetKeyLastUsage: the Batch's Decrypt, and the record it names. */
	assert_int_equal(call(c, &rep, "{\"Action\":\"GetKeyLastUsage\","
	    "\"KeyId\":\"%s\"}", key), 0);
	assert_non_null(lu_op = field(rep, "KeyLastUsage", "Operation"));
	assert_string_equal(lu_op, "Decrypt");
	assert_non_null(lu_ev = field(rep, "KeyLastUsage", "CloudTrailEventId"));
	assert_non_null(strstr(rep, "\"TrackingStartDate\""));
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"CreateKey\"}"), 0);
	assert_non_null(key2 = field(rep, "KeyMetadata", "KeyId"));
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"GetKeyLastUsage\","
	    "\"KeyId\":\"%s\"}", key2), 0);
	assert_null(strstr(rep, "KeyLastUsage\""));
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"GetKeyLastUsage\","
	    "\"KeyId\":\"alias/x\"}"), KMS_EINVALIDARN);
	kms_free(rep);
	kms_client_close(c);
	export_key(&e, pem, sizeof(pem));
	assert_int_equal(tu_kmsd_stop(&e), 0);

	snprintf(dir, sizeof(dir), "%s/audit", e.dir);
	assert_int_equal(count_records(dir, "\"eventName\":\"CreateKey\"",
	    "\"description\":\"orders\""), 1);
	assert_int_equal(count_records(dir, "\"eventName\":\"Encrypt\"",
	    "{\"dept\":\"audit-ctx\"}"), 1);
	assert_int_equal(count_records(dir, "\"eventName\":\"Decrypt\"",
	    "\"errorCode\":\"InvalidCiphertextException\""), 1);
	assert_int_equal(count_records(dir, "\"errorCode\":"
	    "\"AccessDeniedException\"", "\"keyVersion\"") +
	    count_records(dir, "\"errorCode\":\"AccessDeniedException\"",
	    key), 1);
	assert_int_equal(count_records(dir, "\"eventName\":\"PutKeyPolicy\"",
	    "\"policySha256\":"), 1);
	/* A Batch of three: three records, one request id. */
	assert_int_equal(count_records(dir, "\"batchSize\":3", NULL), 3);
	assert_int_equal(count_records(dir, "\"batchIndex\":2",
	    "\"keyVersion\":1"), 1);
	assert_int_equal(count_records(dir, "\"errorCode\":"
	    "\"SerializationException\"", NULL), 1);
	assert_int_equal(count_records(dir, "\"eventName\":\"KmsdStart\"",
	    "\"audit_sync\":\"group\""), 1);
	assert_int_equal(count_records(dir, "\"eventName\":\"KmsdStop\"",
	    NULL), 1);
	assert_int_equal(count_records(dir, lu_ev, "\"eventName\":\"Decrypt\""),
	    1);
	assert_int_equal(logged_description(dir, "escape-marker"),
	    1);
	free(lu_op);
	free(lu_ev);
	free(key2);
	/* kmsctl audit query: filters, across the files. */
	{
		char cmd[1200], *out = NULL;
		snprintf(cmd, sizeof(cmd), "%s audit query --operation Encrypt "
		    "--result denied --json %s | wc -l", tu_bin("kmsctl"), dir);
		assert_int_equal(tu_run(cmd, &out, NULL), 0);
		assert_int_equal(atoi(out), 1);
		free(out);
		snprintf(cmd, sizeof(cmd), "%s audit query --key-id %s "
		    "--result success %s", tu_bin("kmsctl"), key, dir);
		assert_int_equal(tu_run(cmd, &out, NULL), 0);
		assert_non_null(strstr(out, "CreateKey"));
		assert_non_null(strstr(out, "PutKeyPolicy"));
		assert_null(strstr(out, "AccessDeniedException"));
		free(out);
		snprintf(cmd, sizeof(cmd), "%s audit query --principal "
		    "user:nobody-at-all --json %s | wc -l", tu_bin("kmsctl"),
		    dir);
		assert_int_equal(tu_run(cmd, &out, NULL), 0);
		assert_int_equal(atoi(out), 0);
		free(out);
	}
	audit_files(dir, files, sizeof(files));
	assert_int_equal(verify(pem, files, &report), 0);
	assert_true(json_is_true(json_object_get(report, "ok")));
	assert_int_equal(json_array_size(json_object_get(report, "errors")),
	    0);
	json_decref(report);
	free(key);
	free(blob);
	assert_int_equal(tu_env_destroy(&e), 0);
}

static void
test_audit_query_follow_prints_new_records(void **state)
{
	struct tu_env e;
	kms_client *c;
	char cmd[1200], out[400], *rep, *text = NULL;
	int i;

	(void)state;
	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	snprintf(out, sizeof(out), "%s/follow.out", e.dir);
	snprintf(cmd, sizeof(cmd), "timeout 4 %s audit query --follow "
	    "--operation GenerateRandom --json %s/audit > %s 2>&1 &",
	    tu_bin("kmsctl"), e.dir, out);
	assert_int_equal(system(cmd), 0);
	usleep(1000000);
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(call(c, &rep, "{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":4}"), 0);
		kms_free(rep);
	}
	kms_client_close(c);
	usleep(4000000);
	snprintf(cmd, sizeof(cmd), "grep -c '\"eventName\":\"GenerateRandom\"' "
	    "%s", out);
	assert_int_equal(tu_run(cmd, &text, NULL), 0);
	assert_int_equal(atoi(text), 3);
	free(text);
	assert_int_equal(tu_env_destroy(&e), 0);
}

/* A partial last line (a write a crash cut short) is cut at the next
 * start, and recorded; also audit_sync = request and rotation by age. */
/* GetKeyLastUsage's answer for key: the operation, event id and tracking
 * start (seconds, as text), each malloc'd. */
static void
last_usage(kms_client *c, const char *key, char **op, char **ev,
    char **since)
{
	json_t *j;
	char *rep;

	assert_int_equal(call(c, &rep, "{\"Action\":\"GetKeyLastUsage\","
	    "\"KeyId\":\"%s\"}", key), 0);
	*op = field(rep, "KeyLastUsage", "Operation");
	*ev = field(rep, "KeyLastUsage", "CloudTrailEventId");
	assert_non_null(j = json_loads(rep, 0, NULL));
	assert_true(json_is_number(json_object_get(j, "TrackingStartDate")));
	assert_true(asprintf(since, "%.3f", json_number_value(json_object_get(
	    j, "TrackingStartDate"))) > 0);
	json_decref(j);
	kms_free(rep);
}

/* GetKeyLastUsage across restarts: what a clean stop saved, and after a
 * kill -9 what the log recorded since the last save; tracking keeps the
 * day it started. */
static void
test_audit_key_last_usage_survives_restarts_and_kill_9(void **state)
{
	struct tu_env e;
	kms_client *c;
	char *rep, *key, *blob, *op, *ev, *since, *op2, *ev2, *since2;

	(void)state;
	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	assert_int_equal(call(c, &rep, "{\"Action\":\"CreateKey\"}"), 0);
	assert_non_null(key = field(rep, "KeyMetadata", "KeyId"));
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":"
	    "\"%s\",\"Plaintext\":\"aGVsbG8=\"}", key), 0);
	assert_non_null(blob = field(rep, "CiphertextBlob", NULL));
	kms_free(rep);
	last_usage(c, key, &op, &ev, &since);
	assert_non_null(op);
	assert_string_equal(op, "Encrypt");
	kms_client_close(c);

	/* A clean stop and start: the same answer, tracking unchanged. */
	sleep(1);
	assert_int_equal(tu_kmsd_stop(&e), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	last_usage(c, key, &op2, &ev2, &since2);
	assert_non_null(op2);
	assert_string_equal(op2, "Encrypt");
	assert_string_equal(ev2, ev);
	assert_string_equal(since2, since);
	free(op2);
	free(ev2);
	free(since2);

	/* A Decrypt, then kill -9 at once (before any save): read back
	 * from the log. */
	assert_int_equal(call(c, &rep, "{\"Action\":\"Decrypt\","
	    "\"CiphertextBlob\":\"%s\"}", blob), 0);
	kms_free(rep);
	last_usage(c, key, &op2, &ev2, &since2);
	assert_string_equal(op2, "Decrypt");
	free(op);
	free(ev);
	op = op2;
	ev = ev2;
	free(since2);
	kms_client_close(c);
	assert_int_equal(kill(e.kmsd, SIGKILL), 0);
	assert_int_equal(waitpid(e.kmsd, NULL, 0), e.kmsd);
	e.kmsd = 0;
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	last_usage(c, key, &op2, &ev2, &since2);
	assert_non_null(op2);
	assert_string_equal(op2, "Decrypt");
	assert_string_equal(ev2, ev);
	assert_string_equal(since2, since);
	kms_client_close(c);
	assert_int_equal(tu_kmsd_stop(&e), 0);
	free(op);
	free(ev);
	free(since);
	free(op2);
	free(ev2);
	free(since2);
	free(key);
	free(blob);
	assert_int_equal(tu_env_destroy(&e), 0);
}

static void
test_audit_start_cuts_a_partial_last_line(void **state)
{
	struct tu_env e;
	kms_client *c;
	char path[600], dir[400], pem[400], files[600], *rep;
	json_t *report;
	FILE *f;
	int i;

	(void)state;
	assert_int_equal(tu_env_init(&e, "audit_sync = request\n"
	    "audit_rotate_seconds = 1\n"), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	export_key(&e, pem, sizeof(pem));
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(call(c, &rep, "{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":4}"), 0);
		kms_free(rep);
		usleep(700000);
	}
	kms_client_close(c);
	assert_int_equal(kill(e.kmsd, SIGKILL), 0);
	assert_int_equal(waitpid(e.kmsd, NULL, 0), e.kmsd);
	e.kmsd = 0;
	snprintf(dir, sizeof(dir), "%s/audit", e.dir);
	/* Rotated by age meanwhile. */
	snprintf(path, sizeof(path), "%s/kmsd-audit-00000002.jsonl", dir);
	assert_int_equal(access(path, F_OK), 0);
	/* The newest file gets half a record. */
	for (i = 2; ; i++) {
		snprintf(path, sizeof(path), "%s/kmsd-audit-%08d.jsonl", dir,
		    i + 1);
		if (access(path, F_OK) != 0) {
			snprintf(path, sizeof(path),
			    "%s/kmsd-audit-%08d.jsonl", dir, i);
			break;
		}
	}
	assert_non_null(f = fopen(path, "a"));
	fputs("{\"eventVersion\":\"1.08\",\"userIdentity\":{\"ty", f);
	fclose(f);
	audit_files(dir, files, sizeof(files));
	assert_int_equal(verify(pem, files, &report), 1);
	json_decref(report);
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(tu_kmsd_stop(&e), 0);
	assert_int_equal(count_records(dir, "\"eventName\":"
	    "\"AuditLogTailRepaired\"", "\"bytesCut\":42"), 1);
	assert_int_equal(count_records(dir, "\"reason\":\"startup-recovery\"",
	    NULL), 1);
	assert_int_equal(verify(pem, files, &report), 0);
	assert_int_equal(json_array_size(json_object_get(report, "errors")),
	    0);
	json_decref(report);
	assert_int_equal(tu_env_destroy(&e), 0);
}

/*
 * Records staged in the ring but not yet in the file when kmsd died (a
 * reply may already have gone): the next start chains and writes them,
 * and passes over those the file holds though the ring's header does not
 * say so (killed between the write and the header).  The ring is written
 * here as a crash would leave it: the file's last record taken out and
 * put back in the ring, unchained, across the ring's end, after one the
 * file still holds.  The record written back is the very line taken out.
 */
static void
test_audit_start_writes_records_a_crash_left_staged(void **state)
{
	struct tu_env e;
	kms_client *c;
	char path[600], ring[600], dir[400], pem[400], files[600], *rep;
	char cmd[700], *buf = NULL, *after = NULL, *l2, *l3, *all;
	uint64_t size, written, staged, pos, gen = 0, seq2;
	size_t len = 0, alen, n3, b2, b3, n1;
	json_t *report;
	int fd, i;

	(void)state;
	assert_int_equal(tu_env_init(&e, "audit_sync = request\n"), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	export_key(&e, pem, sizeof(pem));
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(call(c, &rep, "{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":4}"), 0);
		kms_free(rep);
	}
	kms_client_close(c);
	assert_int_equal(kill(e.kmsd, SIGKILL), 0);
	assert_int_equal(waitpid(e.kmsd, NULL, 0), e.kmsd);
	e.kmsd = 0;
	snprintf(dir, sizeof(dir), "%s/audit", e.dir);
	snprintf(path, sizeof(path), "%s/kmsd-audit-00000001.jsonl", dir);
	snprintf(cmd, sizeof(cmd), "cat %s", path);
	assert_int_equal(tu_run(cmd, &buf, NULL), 0);
	len = strlen(buf);
	/* The last two lines: GenerateRandom records. */
	l3 = buf + len - 1;
	while (l3[-1] != '\n') {
		l3--;
	}
	l2 = l3 - 1;
	while (l2[-1] != '\n') {
		l2--;
	}
	n3 = (size_t)(buf + len - l3);
	assert_non_null(strstr(l3, "\"eventName\":\"GenerateRandom\""));
	/* Their bodies: all before ,"sequence". */
	assert_non_null(strstr(l2, ",\"sequence\":"));
	b2 = (size_t)(strstr(l2, ",\"sequence\":") - l2);
	b3 = (size_t)(strstr(l3, ",\"sequence\":") - l3);
	seq2 = strtoull(l2 + b2 + 12, NULL, 10);
	/* The file loses its last record; the ring holds both, unchained,
	 * and its header says the one before l2 was the last written. */
	assert_int_equal(truncate(path, (off_t)(len - n3)), 0);
	snprintf(ring, sizeof(ring), "%s/staging-ring", dir);
	assert_true((fd = open(ring, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, &size, 8, 16), 8);
	assert_true(size >= 65536);
	written = 5 * size - 100;	/* wraps inside l2's body */
	alen = b2 + 1 + b3 + 1;
	staged = written + alen;
	pos = written % size;
	assert_non_null(all = malloc(alen));
	memcpy(all, l2, b2);
	all[b2] = '\n';
	memcpy(all + b2 + 1, l3, b3);
	all[alen - 1] = '\n';
	n1 = (size_t)(size - pos);
	assert_int_equal(pwrite(fd, all, n1, (off_t)(4096 + pos)),
	    (ssize_t)n1);
	assert_int_equal(pwrite(fd, all + n1, alen - n1, 4096),
	    (ssize_t)(alen - n1));
	free(all);
	seq2--;
	assert_int_equal(pwrite(fd, &staged, 8, 24), 8);
	assert_int_equal(pwrite(fd, &gen, 8, 32), 8);
	assert_int_equal(pwrite(fd, &written, 8, 40), 8);
	assert_int_equal(pwrite(fd, &seq2, 8, 48), 8);
	close(fd);
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(tu_kmsd_stop(&e), 0);
	assert_true(tu_log_says(&e, "1 records staged before an unclean stop"));
	assert_int_equal(count_records(dir, "\"eventName\":"
	    "\"AuditLogTailRepaired\"", "\"stagedRecordsWritten\":1"), 1);
	/* The file as it was, l2 once, l3 back byte for byte. */
	assert_int_equal(tu_run(cmd, &after, NULL), 0);
	alen = strlen(after);
	assert_true(alen == len);
	assert_memory_equal(after, buf, len);
	audit_files(dir, files, sizeof(files));
	assert_int_equal(verify(pem, files, &report), 0);
	assert_int_equal(json_array_size(json_object_get(report, "errors")),
	    0);
	json_decref(report);
	free(after);
	free(buf);
	assert_int_equal(tu_env_destroy(&e), 0);
}

/* ---- canaries ---- */

struct canary {
	char text[80];		/* as planted, or as kmsd returned it */
	const char *skip;	/* a file allowed to hold it (by design) */
};

/* 1 when needle (n bytes) occurs in any file under dir but skip. */
static int
found_in_files(const char *dir, const void *needle, size_t n,
    const char *skip, char *where, size_t wlen)
{
	char path[1024];
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(dir);
	int hit = 0;

	if (d == NULL) {
		return 0;
	}
	while (!hit && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, "user.pin") ==
		    0 || strcmp(de->d_name, "so.pin") == 0 ||
		    strcmp(de->d_name, "kmsd.sock") == 0) {
			continue;	/* written by set-up, not by kmsd */
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) != 0) {
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			hit = found_in_files(path, needle, n, skip, where,
			    wlen);
			continue;
		}
		if (!S_ISREG(st.st_mode) || (skip != NULL &&
		    strstr(de->d_name, skip) != NULL)) {
			continue;
		}
		{
			char *buf = NULL;
			size_t len = 0, i;
			FILE *f = fopen(path, "rb");
			if (f == NULL) {
				continue;
			}
			buf = malloc((size_t)st.st_size + 1);
			len = fread(buf, 1, (size_t)st.st_size, f);
			fclose(f);
			for (i = 0; !hit && len >= n && i <= len - n; i++) {
				hit = memcmp(buf + i, needle, n) == 0;
			}
			free(buf);
			if (hit) {
				snprintf(where, wlen, "%s", path);
			}
		}
	}
	closedir(d);
	return hit;
}

static void
test_audit_no_secret_in_any_file_kmsd_wrote(void **state)
{
	struct tu_env e;
	kms_client *c;
	struct canary cs[32];
	char *rep, *key, *key2, *blob, *tok, *gid, *v, pt[64], b64[128],
	    where[1024], fake[128], pin[128];
	size_t ncs = 0, i, n;
	FILE *f;
	int r;

	(void)state;
	memset(cs, 0, sizeof(cs));
	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	/* The plaintext canary, raw and base64. */
	snprintf(pt, sizeof(pt), "CANARY-PT-%08x%08x", rand(), rand());
	b64_encode((const uint8_t *)pt, strlen(pt), b64, sizeof(b64));
	snprintf(cs[ncs++].text, 80, "%s", pt);
	snprintf(cs[ncs++].text, 80, "%s", b64);
	assert_int_equal(call(c, &rep, "{\"Action\":\"CreateKey\",\"Policy\":"
	    "\"{\\\"Version\\\":\\\"2012-10-17\\\",\\\"Statement\\\":[{"
	    "\\\"Sid\\\":\\\"CANARY-POLICY-CREATE\\\",\\\"Effect\\\":"
	    "\\\"Allow\\\",\\\"Principal\\\":\\\"*\\\",\\\"Action\\\":"
	    "\\\"kms:*\\\",\\\"Resource\\\":\\\"*\\\"}]}\"}"), 0);
	assert_non_null(key = field(rep, "KeyMetadata", "KeyId"));
	kms_free(rep);
	snprintf(cs[ncs].text, 80, "CANARY-POLICY-CREATE");
	cs[ncs++].skip = "kmsd.db";	/* the store keeps the policy */
	assert_int_equal(call(c, &rep, "{\"Action\":\"CreateKey\"}"), 0);
	assert_non_null(key2 = field(rep, "KeyMetadata", "KeyId"));
	kms_free(rep);
	/* Success, failure, denial and Batch, the plaintext in each. */
	assert_int_equal(call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":"
	    "\"%s\",\"Plaintext\":\"%s\"}", key, b64), 0);
	assert_non_null(blob = field(rep, "CiphertextBlob", NULL));
	snprintf(cs[ncs++].text, 80, "%.79s", blob);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":"
	    "\"alias/none\",\"Plaintext\":\"%s\"}", b64), KMS_ENOTFOUND);
	kms_free(rep);
	/* A field nobody listed is never written, whatever the answer. */
	(void)call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"%s\",\"Unknown\":\"%s\"}", key, b64, pt);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":"
	    "\"%s\",\"Plaintext\":12}", key), KMS_ESERIALIZATION);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"NoSuchOperation\","
	    "\"Plaintext\":\"%s\"}", b64), KMS_EUNKNOWNOP);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Encrypt\",\"Plaintext\":"
	    "\"%s\" garbage %s", b64, pt), KMS_ESERIALIZATION);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Batch\",\"Requests\":["
	    "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\",\"Plaintext\":\"%s\"},"
	    "{\"Action\":\"Encrypt\",\"KeyId\":\"nope\",\"Plaintext\":\"%s\"},"
	    "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\"}]}", key, b64,
	    b64, blob), 0);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Decrypt\","
	    "\"CiphertextBlob\":\"%s\"}", blob), 0);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Decrypt\",\"KeyId\":"
	    "\"%s\",\"CiphertextBlob\":\"%s\"}", key2, blob),
	    KMS_EINCORRECTKEY);
	kms_free(rep);
	/* Data keys and random bytes kmsd returned. */
	assert_int_equal(call(c, &rep, "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"%s\",\"KeySpec\":\"AES_256\"}", key), 0);
	assert_non_null(v = field(rep, "Plaintext", NULL));
	snprintf(cs[ncs++].text, 80, "%s", v);
	free(v);
	assert_non_null(v = field(rep, "CiphertextBlob", NULL));
	snprintf(cs[ncs++].text, 80, "%.79s", v);
	free(v);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"GenerateRandom\","
	    "\"NumberOfBytes\":32}"), 0);
	assert_non_null(v = field(rep, "Plaintext", NULL));
	snprintf(cs[ncs++].text, 80, "%s", v);
	free(v);
	kms_free(rep);
	/* Grant tokens: a real one used, retired by token; a forged one. */
	assert_int_equal(call(c, &rep, "{\"Action\":\"CreateGrant\","
	    "\"KeyId\":\"%s\",\"GranteePrincipal\":\"user:nobody\","
	    "\"Operations\":[\"Encrypt\"]}", key), 0);
	assert_non_null(tok = field(rep, "GrantToken", NULL));
	assert_non_null(gid = field(rep, "GrantId", NULL));
	kms_free(rep);
	snprintf(cs[ncs++].text, 80, "%.79s", tok);
	snprintf(fake, sizeof(fake), "kmsgt1.CANARYGRANTTOKEN%08x", rand());
	snprintf(cs[ncs++].text, 80, "%s", fake);
	assert_int_equal(call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":"
	    "\"%s\",\"Plaintext\":\"%s\",\"GrantTokens\":[\"%s\"]}", key, b64,
	    tok), 0);
	kms_free(rep);
	r = call(c, &rep, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"%s\",\"GrantTokens\":[\"%s\"]}", key, b64, fake);
	assert_int_not_equal(r, 0);
	kms_free(rep);
	assert_int_equal(call(c, &rep, "{\"Action\":\"RetireGrant\","
	    "\"GrantToken\":\"%s\"}", tok), 0);
	kms_free(rep);
	/* Policy bodies: set, refused as malformed, refused for lockout. */
	assert_int_equal(call(c, &rep, "{\"Action\":\"PutKeyPolicy\","
	    "\"KeyId\":\"%s\",\"PolicyName\":\"default\",\"Policy\":"
	    "\"{\\\"Version\\\":\\\"2012-10-17\\\",\\\"Statement\\\":[{"
	    "\\\"Sid\\\":\\\"CANARY-POLICY-PUT\\\",\\\"Effect\\\":\\\"Allow\\\","
	    "\\\"Principal\\\":\\\"*\\\",\\\"Action\\\":\\\"kms:*\\\","
	    "\\\"Resource\\\":\\\"*\\\"}]}\"}", key), 0);
	kms_free(rep);
	snprintf(cs[ncs].text, 80, "CANARY-POLICY-PUT");
	cs[ncs++].skip = "kmsd.db";
	assert_int_equal(call(c, &rep, "{\"Action\":\"PutKeyPolicy\","
	    "\"KeyId\":\"%s\",\"PolicyName\":\"default\",\"Policy\":"
	    "\"CANARY-POLICY-BAD\"}", key), KMS_EMALFORMEDPOLICY);
	kms_free(rep);
	snprintf(cs[ncs++].text, 80, "CANARY-POLICY-BAD");
	kms_client_close(c);
	/* The PIN. */
	snprintf(where, sizeof(where), "%s/user.pin", e.dir);
	assert_non_null(f = fopen(where, "r"));
	assert_non_null(fgets(pin, sizeof(pin), f));
	fclose(f);
	pin[strcspn(pin, "\n")] = '\0';
	snprintf(cs[ncs++].text, 80, "%s", pin);
	assert_int_equal(tu_kmsd_stop(&e), 0);

	/* The audit log did record the operations (not an empty check). */
	snprintf(where, sizeof(where), "%s/audit", e.dir);
	assert_true(count_records(where, "\"eventName\":\"RetireGrant\"",
	    NULL) == 1);
	assert_true(count_records(where, "\"grantIds\":[\"invalid\"]", NULL) ==
	    1);
	assert_true(count_records(where, gid, "\"grantIds\"") >= 1);
	assert_true(count_records(where, "\"policySha256\"", NULL) >= 3);
	for (i = 0; i < ncs; i++) {
		n = strlen(cs[i].text);
		where[0] = '\0';
		if (found_in_files(e.dir, cs[i].text, n, cs[i].skip, where,
		    sizeof(where))) {
			fail_msg("secret %s found in %s", cs[i].text, where);
		}
	}
	free(key);
	free(key2);
	free(blob);
	free(tok);
	free(gid);
	assert_int_equal(tu_env_destroy(&e), 0);
}

/* ---- tampering ---- */

struct log {
	char *line[512];
	size_t n;
};

static void
log_read(const char *path, struct log *l)
{
	char buf[65536];
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	l->n = 0;
	while (fgets(buf, sizeof(buf), f) != NULL && l->n < 512) {
		buf[strcspn(buf, "\n")] = '\0';
		l->line[l->n++] = strdup(buf);
	}
	fclose(f);
}

static void
log_write(const char *path, struct log *l, int final_newline)
{
	FILE *f = fopen(path, "w");
	size_t i;

	assert_non_null(f);
	for (i = 0; i < l->n; i++) {
		fprintf(f, "%s%s", l->line[i], i + 1 < l->n || final_newline ?
		    "\n" : "");
	}
	fclose(f);
}

static void
log_free(struct log *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->line[i]);
	}
	l->n = 0;
}

/* Recompute every previousHash from line `from` on (a forger who knows
 * the format): only what the chain cannot show is left to find. */
static void
rechain(struct log *l, size_t from)
{
	uint8_t h[32];
	char hx[65];
	size_t i, k, len;

	for (i = from; i < l->n; i++) {
		if (i == 0) {
			continue;
		}
		SHA256((const uint8_t *)l->line[i - 1], strlen(l->line[i - 1]),
		    h);
		for (k = 0; k < 32; k++) {
			snprintf(hx + 2 * k, 3, "%02x", h[k]);
		}
		len = strlen(l->line[i]);
		/* ...,"previousHash":"<64 hex>"} */
		assert_true(len > 66);
		memcpy(l->line[i] + len - 66, hx, 64);
	}
}

/* Index of the first line holding s, from `from`. */
static size_t
find_line(struct log *l, size_t from, const char *s)
{
	size_t i;

	for (i = from; i < l->n; i++) {
		if (strstr(l->line[i], s) != NULL) {
			return i;
		}
	}
	fail_msg("no line holds %s", s);
	return 0;
}

/* Replace the value of "key":"..." in line i by val. */
static void
set_string(struct log *l, size_t i, const char *key, const char *val)
{
	char pat[64], *p, *q, *nl;
	size_t len;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	assert_non_null(p = strstr(l->line[i], pat));
	p += strlen(pat);
	assert_non_null(q = strchr(p, '"'));
	len = (size_t)(p - l->line[i]) + strlen(val) + strlen(q) + 1;
	nl = malloc(len);
	snprintf(nl, len, "%.*s%s%s", (int)(p - l->line[i]), l->line[i], val,
	    q);
	free(l->line[i]);
	l->line[i] = nl;
}

static struct tu_env tenv;
static char tpem[400], tdir[400];
static char tfiles[3][600];	/* the three files of the log */

static int
tamper_setup(void **state)
{
	kms_client *c;
	char *rep;
	int run, i, r;

	(void)state;
	if (tu_env_init(&tenv, NULL) != 0) {
		return -1;
	}
	/* Three runs of kmsd: three files. */
	for (run = 0; run < 3; run++) {
		if (tu_kmsd_start(&tenv) != 0 ||
		    kms_client_open(&c, tenv.endpoint) != 0) {
			fprintf(stderr, "tamper_setup: kmsd run %d did not "
			    "start\n", run);
			return -1;
		}
		for (i = 0; i < 6; i++) {
			if ((r = call(c, &rep, "{\"Action\":\"GenerateRandom\","
			    "\"NumberOfBytes\":%d}", 8 + i)) != 0) {
				fprintf(stderr, "tamper_setup: run %d call %d: "
				    "%s %s\n", run, i, kms_strerror(r),
				    rep != NULL ? rep : "");
				return -1;
			}
			kms_free(rep);
		}
		kms_client_close(c);
		if (run == 0) {
			export_key(&tenv, tpem, sizeof(tpem));
		}
		if ((r = tu_kmsd_stop(&tenv)) != 0) {
			fprintf(stderr, "tamper_setup: kmsd run %d exited %d\n",
			    run, r);
			return -1;
		}
	}
	snprintf(tdir, sizeof(tdir), "%s/audit", tenv.dir);
	for (i = 0; i < 3; i++) {
		snprintf(tfiles[i], sizeof(tfiles[i]),
		    "%s/kmsd-audit-%08d.jsonl", tdir, i + 1);
	}
	return 0;
}

static int
tamper_teardown(void **state)
{
	(void)state;
	return tu_env_destroy(&tenv);
}

/* A copy of the log in dir/name/; returns its middle file's path. */
static void
copy_log(const char *name, char *sub, size_t len, char files[3][700])
{
	char cmd[2048];
	int i;

	snprintf(sub, len, "%s/t-%s", tenv.dir, name);
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir %s && cp %s/*.jsonl %s",
	    sub, sub, tdir, sub);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	for (i = 0; i < 3; i++) {
		snprintf(files[i], 700, "%s/kmsd-audit-%08d.jsonl", sub, i + 1);
	}
}

/* Verify the copy; expect failure (or not) and the first finding's kind,
 * file and line. */
static void
expect(const char *sub, int ok, const char *kind, const char *file,
    long line, int warning)
{
	char files[2048];
	json_t *rep, *list, *first;
	int r;

	snprintf(files, sizeof(files), "%s/*.jsonl", sub);
	r = verify(tpem, files, &rep);
	assert_non_null(rep);
	assert_int_equal(r, ok ? 0 : 1);
	assert_true(json_is_true(json_object_get(rep, "ok")) == ok);
	list = json_object_get(rep, warning ? "warnings" : "errors");
	if (kind != NULL) {
		size_t i;
		json_t *it;
		first = NULL;
		json_array_foreach(list, i, it) {
			if (strcmp(json_string_value(json_object_get(it,
			    "kind")), kind) == 0) {
				first = it;
				break;
			}
		}
		if (first == NULL) {
			char *d = json_dumps(rep, JSON_INDENT(2));
			fail_msg("no %s in %s", kind, d);
		}
		if (file != NULL) {
			assert_non_null(strstr(json_string_value(
			    json_object_get(first, "file")), file));
		}
		if (line > 0) {
			assert_int_equal(json_integer_value(json_object_get(
			    first, "line")), line);
		}
	}
	json_decref(rep);
}

static void
test_audit_verify_accepts_the_untouched_log(void **state)
{
	char sub[600], f[3][700];
	json_t *rep;
	char files[2048], *d;

	(void)state;
	copy_log("clean", sub, sizeof(sub), f);
	expect(sub, 1, NULL, NULL, 0, 0);
	/* Without --public-key: the key the log names, with a warning. */
	snprintf(files, sizeof(files), "%s/*.jsonl", sub);
	assert_int_equal(verify(NULL, files, &rep), 0);
	d = json_dumps(rep, 0);
	assert_non_null(strstr(d, "key-not-pinned"));
	free(d);
	json_decref(rep);
}

static void
test_audit_verify_finds_an_edited_line(void **state)
{
	char sub[600], f[3][700];
	struct log l;
	size_t i;

	(void)state;
	copy_log("edit", sub, sizeof(sub), f);
	log_read(f[1], &l);
	i = find_line(&l, 0, "\"eventName\":\"GenerateRandom\"");
	set_string(&l, i, "principalId", "user:mallory");
	log_write(f[1], &l, 1);
	expect(sub, 0, "edited", "kmsd-audit-00000002", (long)i + 1, 0);
	log_free(&l);
}

static void
test_audit_verify_finds_a_deleted_line(void **state)
{
	char sub[600], f[3][700];
	struct log l;
	size_t i;

	(void)state;
	copy_log("delete", sub, sizeof(sub), f);
	log_read(f[1], &l);
	i = find_line(&l, 0, "\"eventName\":\"GenerateRandom\"");
	free(l.line[i]);
	memmove(&l.line[i], &l.line[i + 1], (l.n - i - 1) * sizeof(char *));
	l.n--;
	log_write(f[1], &l, 1);
	/* Reported at the line that now follows the gap. */
	expect(sub, 0, "deleted", "kmsd-audit-00000002", (long)i + 1, 0);
	log_free(&l);
}

static void
test_audit_verify_finds_an_inserted_line(void **state)
{
	char sub[600], f[3][700];
	struct log l;
	size_t i;

	(void)state;
	copy_log("insert", sub, sizeof(sub), f);
	log_read(f[1], &l);
	i = find_line(&l, 0, "\"eventName\":\"GenerateRandom\"");
	memmove(&l.line[i + 1], &l.line[i], (l.n - i) * sizeof(char *));
	l.line[i] = strdup(l.line[i + 1]);
	set_string(&l, i, "eventName", "DisableKey");
	l.n++;
	log_write(f[1], &l, 1);
	expect(sub, 0, "inserted", "kmsd-audit-00000002", (long)i + 1, 0);
	log_free(&l);
}

static void
test_audit_verify_finds_reordered_lines(void **state)
{
	char sub[600], f[3][700], *t;
	struct log l;
	size_t i;

	(void)state;
	copy_log("reorder", sub, sizeof(sub), f);
	log_read(f[1], &l);
	i = find_line(&l, 0, "\"eventName\":\"GenerateRandom\"");
	t = l.line[i];
	l.line[i] = l.line[i + 1];
	l.line[i + 1] = t;
	log_write(f[1], &l, 1);
	expect(sub, 0, "reordered", "kmsd-audit-00000002", (long)i + 1, 0);
	log_free(&l);
}

static void
test_audit_verify_finds_a_file_missing_from_the_middle(void **state)
{
	char sub[600], f[3][700];
	json_t *rep;
	char files[2048], *d;

	(void)state;
	copy_log("missing", sub, sizeof(sub), f);
	assert_int_equal(unlink(f[1]), 0);
	expect(sub, 0, "file-missing", NULL, 0, 0);
	snprintf(files, sizeof(files), "%s/*.jsonl", sub);
	assert_int_equal(verify(tpem, files, &rep), 1);
	d = json_dumps(rep, 0);
	assert_non_null(strstr(d, "kmsd-audit-00000002.jsonl is missing"));
	/* Only that: not also the records it held, as deletions. */
	assert_int_equal(json_array_size(json_object_get(rep, "errors")), 1);
	free(d);
	json_decref(rep);
}

static void
test_audit_verify_finds_a_truncated_tail(void **state)
{
	char sub[600], f[3][700];
	struct log l;
	size_t cut;

	(void)state;
	copy_log("truncated", sub, sizeof(sub), f);
	log_read(f[2], &l);
	cut = strlen(l.line[l.n - 1]) / 2;
	l.line[l.n - 1][cut] = '\0';
	log_write(f[2], &l, 0);
	expect(sub, 0, "truncated", "kmsd-audit-00000003", (long)l.n, 0);
	log_free(&l);
	/* Whole lines cut from the end: what is left is unsigned. */
	copy_log("cut", sub, sizeof(sub), f);
	log_read(f[2], &l);
	l.n -= 3;
	log_write(f[2], &l, 1);
	free(l.line[l.n]);
	free(l.line[l.n + 1]);
	free(l.line[l.n + 2]);
	expect(sub, 1, "unsigned-tail", "kmsd-audit-00000003", 0, 1);
	log_free(&l);
}

static void
test_audit_verify_finds_a_forged_signature(void **state)
{
	char sub[600], f[3][700], *sig;
	struct log l;
	size_t i;

	(void)state;
	copy_log("forged", sub, sizeof(sub), f);
	log_read(f[1], &l);
	i = find_line(&l, 0, "\"eventName\":\"AuditCheckpoint\"");
	/* Another signature (a byte changed), and the chain made good. */
	assert_non_null(sig = strstr(l.line[i], "\"signature\":\""));
	sig += 13;
	*sig = *sig == 'A' ? 'B' : 'A';
	rechain(&l, i + 1);
	log_write(f[1], &l, 1);
	/* The next file's first line chains to this file's last: fix it. */
	{
		struct log l3;
		uint8_t h[32];
		char hx[65];
		size_t k, len;
		log_read(f[2], &l3);
		SHA256((const uint8_t *)l.line[l.n - 1],
		    strlen(l.line[l.n - 1]), h);
		for (k = 0; k < 32; k++) {
			snprintf(hx + 2 * k, 3, "%02x", h[k]);
		}
		len = strlen(l3.line[0]);
		memcpy(l3.line[0] + len - 66, hx, 64);
		log_write(f[2], &l3, 1);
		log_free(&l3);
	}
	expect(sub, 0, "forged-signature", "kmsd-audit-00000002", (long)i + 1,
	    0);
	log_free(&l);
}

static void
test_audit_verify_finds_a_missing_signature(void **state)
{
	char sub[600], f[3][700];
	struct log l;
	size_t i;

	(void)state;
	copy_log("nosig", sub, sizeof(sub), f);
	log_read(f[2], &l);
	i = find_line(&l, 0, "\"eventName\":\"AuditCheckpoint\"");
	set_string(&l, i, "signature", "");
	rechain(&l, i + 1);
	log_write(f[2], &l, 1);
	expect(sub, 0, "missing-signature", "kmsd-audit-00000003", (long)i + 1,
	    0);
	log_free(&l);
}

static void
test_audit_verify_finds_a_signature_by_another_key(void **state)
{
	char sub[600], f[3][700], hx[65], st[600], fp[64], sigb64[128],
	    *head, *when, *cnt;
	struct log l;
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *kc;
	EVP_MD_CTX *mc;
	unsigned char *der = NULL, sig[64];
	uint8_t h[32];
	size_t i, siglen = sizeof(sig), n;
	int dl;
	json_t *j, *d;

	(void)state;
	copy_log("otherkey", sub, sizeof(sub), f);
	log_read(f[2], &l);
	i = find_line(&l, 0, "\"reason\":\"shutdown\"");
	/* A forger's own Ed25519 key signs the same statement. */
	assert_non_null(kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL));
	assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
	assert_int_equal(EVP_PKEY_keygen(kc, &k), 1);
	EVP_PKEY_CTX_free(kc);
	assert_true((dl = i2d_PUBKEY(k, &der)) > 0);
	SHA256(der, (size_t)dl, h);
	OPENSSL_free(der);
	b64_encode(h, 32, sigb64, sizeof(sigb64));
	sigb64[strcspn(sigb64, "=")] = '\0';
	snprintf(fp, sizeof(fp), "SHA256:%s", sigb64);
	assert_non_null(j = json_loads(l.line[i], 0, NULL));
	d = json_object_get(j, "serviceEventDetails");
	head = (char *)json_string_value(json_object_get(d, "chainHead"));
	when = (char *)json_string_value(json_object_get(d, "signedAt"));
	cnt = json_dumps(json_object_get(d, "recordCount"), JSON_ENCODE_ANY);
	snprintf(hx, sizeof(hx), "%s", head);
	n = (size_t)snprintf(st, sizeof(st), "kmsd-audit-checkpoint-v1\n"
	    "chainHead=%s\nrecordCount=%s\nsignedAt=%s\nkeyFingerprint=%s\n",
	    hx, cnt, when, fp);
	free(cnt);
	json_decref(j);
	assert_non_null(mc = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestSignInit(mc, NULL, NULL, NULL, k), 1);
	assert_int_equal(EVP_DigestSign(mc, sig, &siglen, (uint8_t *)st, n),
	    1);
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(k);
	b64_encode(sig, siglen, sigb64, sizeof(sigb64));
	set_string(&l, i, "signature", sigb64);
	set_string(&l, i, "keyFingerprint", fp);
	rechain(&l, i + 1);
	log_write(f[2], &l, 1);
	expect(sub, 0, "wrong-key", "kmsd-audit-00000003", (long)i + 1, 0);
	log_free(&l);
}

/* ---- crashes ---- */

struct load {
	const char *endpoint;
	volatile int stop;
	long done, records;	/* messages and records answered */
};

static void *
load_main(void *arg)
{
	struct load *ld = arg;
	kms_client *c = NULL;
	char *rep;

	while (!ld->stop) {
		if (c == NULL && kms_client_open(&c, ld->endpoint) != 0) {
			c = NULL;
			usleep(10000);
			continue;
		}
		if (call(c, &rep, "{\"Action\":\"Batch\",\"Requests\":["
		    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":16},"
		    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":16},"
		    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":16}]}") ==
		    0) {
			ld->done++;
			ld->records += 3;
		}
		kms_free(rep);
		if (call(c, &rep, "{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":16}") == 0) {
			ld->done++;
			ld->records++;
		}
		kms_free(rep);
	}
	kms_client_close(c);
	return NULL;
}

static void
test_audit_log_of_a_kmsd_killed_20_times_verifies(void **state)
{
	struct tu_env e;
	struct load ld[3];
	pthread_t th[3];
	char pem[400], dir[400], files[16384];
	json_t *rep;
	int k, t, st;
	long total = 0;

	(void)state;
	/* Small files and frequent checkpoints: rotations and signatures
	 * happen while kmsd is killed. */
	assert_int_equal(tu_env_init(&e, "audit_rotate_bytes = 65536\n"
	    "audit_checkpoint_records = 50\n"), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	export_key(&e, pem, sizeof(pem));
	for (t = 0; t < 3; t++) {
		memset(&ld[t], 0, sizeof(ld[t]));
		ld[t].endpoint = e.endpoint;
		assert_int_equal(pthread_create(&th[t], NULL, load_main,
		    &ld[t]), 0);
	}
	for (k = 0; k < 20; k++) {
		usleep(150000 + (useconds_t)(rand() % 150000));
		assert_int_equal(kill(e.kmsd, SIGKILL), 0);
		assert_int_equal(waitpid(e.kmsd, &st, 0), e.kmsd);
		e.kmsd = 0;
		assert_int_equal(tu_kmsd_start(&e), 0);
	}
	usleep(200000);
	for (t = 0; t < 3; t++) {
		ld[t].stop = 1;
		pthread_join(th[t], NULL);
		total += ld[t].done;
	}
	assert_int_equal(tu_kmsd_stop(&e), 0);
	assert_true(total > 20);
	snprintf(dir, sizeof(dir), "%s/audit", e.dir);
	/* Starts after a kill signed what the killed kmsd left (a kill
	 * right after a checkpoint leaves nothing unsigned). */
	assert_true(count_records(dir, "\"reason\":\"startup-recovery\"",
	    NULL) >= 3);
	assert_int_equal(count_records(dir, "\"eventName\":\"KmsdStart\"",
	    NULL), 21);
	audit_files(dir, files, sizeof(files));
	assert_int_equal(verify(pem, files, &rep), 0);
	assert_int_equal(json_array_size(json_object_get(rep, "errors")), 0);
	assert_true(json_integer_value(json_object_get(rep, "records")) >
	    total);
	json_decref(rep);
	/* No answered request's record was lost to a kill. */
	for (t = 0, total = 0; t < 3; t++) {
		total += ld[t].records;
	}
	assert_true(count_records(dir, "\"eventName\":\"GenerateRandom\"",
	    NULL) >= total);
	assert_int_equal(tu_env_destroy(&e), 0);
}

/* A second kmsd started on a running one's state directory leaves before
 * it writes anything: its start record, chained from the log's head while
 * the first kmsd went on appending, made the log fail verification. */
static void
test_audit_a_second_kmsd_on_the_same_state_dir_writes_nothing(void **state)
{
	struct tu_env e;
	char pem[400], dir[400], files[16384], cmd[1400], *out = NULL,
	    *err = NULL;
	kms_client *c = NULL;
	json_t *rep;
	int i;

	(void)state;
	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	export_key(&e, pem, sizeof(pem));
	snprintf(cmd, sizeof(cmd), "%s -c %s", tu_bin("kmsd"), e.conf);
	assert_int_equal(tu_run(cmd, &out, &err), 1);
	if (strstr(err, "another kmsd is running on state directory") ==
	    NULL) {
		fail_msg("second kmsd said: %s", err);
	}
	free(out);
	free(err);
	/* The first goes on serving, and recording. */
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	for (i = 0; i < 5; i++) {
		char *reply = NULL;
		assert_int_equal(call(c, &reply, "{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":8}"), 0);
		free(reply);
	}
	kms_client_close(c);
	assert_int_equal(tu_kmsd_stop(&e), 0);
	snprintf(dir, sizeof(dir), "%s/audit", e.dir);
	assert_int_equal(count_records(dir, "\"eventName\":\"KmsdStart\"",
	    NULL), 1);
	audit_files(dir, files, sizeof(files));
	assert_int_equal(verify(pem, files, &rep), 0);
	assert_int_equal(json_array_size(json_object_get(rep, "errors")), 0);
	json_decref(rep);
	assert_int_equal(tu_env_destroy(&e), 0);
}

/* ---- a full disk ---- */

static char full_mnt[400];	/* mounted by the test below */

/* Whatever the test's outcome, the tmpfs goes. */
static int
full_disk_teardown(void **state)
{
	(void)state;
	if (full_mnt[0] != '\0') {
		(void)umount2(full_mnt, MNT_DETACH);
		full_mnt[0] = '\0';
	}
	return 0;
}

static void
test_audit_full_disk_refuses_then_resumes(void **state)
{
	struct tu_env e;
	kms_client *c;
	char mnt[400], conf[600], cmd[1200], pem[400], files[8192], *rep;
	json_t *report;
	int r, i, refused = 0, served = 0;

	(void)state;
	assert_int_equal(tu_env_init(&e, NULL), 0);
	snprintf(mnt, sizeof(mnt), "%s/auditfs", e.dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=128k") != 0) {
		fprintf(stderr, "  (skipped: mounting a tmpfs needs root: %s)\n",
		    strerror(errno));
		tu_env_destroy(&e);
		skip();
	}
	snprintf(full_mnt, sizeof(full_mnt), "%s", mnt);
	snprintf(conf, sizeof(conf), "audit_dir = %s\n", mnt);
	{
		FILE *f = fopen(e.conf, "a");
		assert_non_null(f);
		fputs(conf, f);
		fclose(f);
	}
	assert_int_equal(tu_kmsd_start(&e), 0);
	export_key(&e, pem, sizeof(pem));
	assert_int_equal(kms_client_open(&c, e.endpoint), 0);
	assert_int_equal(call(c, &rep, "{\"Action\":\"GenerateRandom\","
	    "\"NumberOfBytes\":8}"), 0);
	kms_free(rep);
	/* Fill the file system. */
	snprintf(cmd, sizeof(cmd), "dd if=/dev/zero of=%s/filler bs=4k "
	    "2>/dev/null; true", mnt);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	for (i = 0; i < 40; i++) {
		r = call(c, &rep, "{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":8}");
		if (r == KMS_EDEPENDENCYTIMEOUT) {
			assert_non_null(strstr(rep, "audit log"));
			refused++;
		} else {
			/* Records fit in the file's last page for a while;
			 * once refused, refused until there is room. */
			assert_int_equal(r, 0);
			assert_int_equal(refused, 0);
		}
		kms_free(rep);
	}
	assert_true(refused >= 20);
	/* Space again: kmsd finds out by itself. */
	snprintf(cmd, sizeof(cmd), "rm -f %s/filler", mnt);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	for (i = 0; i < 100 && served == 0; i++) {
		usleep(50000);
		r = call(c, &rep, "{\"Action\":\"GenerateRandom\","
		    "\"NumberOfBytes\":8}");
		served = r == 0;
		kms_free(rep);
	}
	assert_true(served);
	kms_client_close(c);
	assert_int_equal(tu_kmsd_stop(&e), 0);
	assert_true(count_records(mnt, "\"eventName\":\"AuditLogResumed\"",
	    "\"requestsRefused\"") == 1);
	audit_files(mnt, files, sizeof(files));
	assert_int_equal(verify(pem, files, &report), 0);
	assert_int_equal(json_array_size(json_object_get(report, "errors")),
	    0);
	json_decref(report);
	assert_true(tu_log_says(&e, "cannot be written"));
	assert_int_equal(umount(mnt), 0);
	full_mnt[0] = '\0';
	assert_int_equal(tu_env_destroy(&e), 0);
}

/* ---- rotation while many callers write ---- */

#define RL_THREADS 8
#define RL_SECONDS 3
#define RL_BATCH 400		/* its records: more than one write takes */

struct rl_arg {
	const char *endpoint;
	long records;			/* answered, so recorded */
	int bad;
};

static void *
rl_client(void *p)
{
	struct rl_arg *arg = p;
	kms_client *c;
	char req[32768], *rep;
	size_t o, n;
	kms_error_info ei;
	double t0 = tu_now_s();
	int i, k;

	if (kms_client_open(&c, arg->endpoint) != 0) {
		arg->bad++;
		return NULL;
	}
	for (i = 0; tu_now_s() - t0 < RL_SECONDS; i++) {
		if (i % 16 == 15) {
			/* A Batch: the log's thread writes its records, in
			 * more than one write. */
			o = (size_t)snprintf(req, sizeof(req),
			    "{\"Action\":\"Batch\",\"Requests\":[");
			for (k = 0; k < RL_BATCH; k++) {
				o += (size_t)snprintf(req + o, sizeof(req) - o,
				    "%s{\"Action\":\"GenerateRandom\","
				    "\"NumberOfBytes\":8}", k > 0 ? "," : "");
			}
			snprintf(req + o, sizeof(req) - o, "]}");
			k = RL_BATCH;
		} else {
			snprintf(req, sizeof(req), "{\"Action\":"
			    "\"GenerateRandom\",\"NumberOfBytes\":8}");
			k = 1;
		}
		rep = NULL;
		n = 0;
		if (kms_call_json(c, req, strlen(req), &rep, &n, &ei) != 0) {
			arg->bad++;
		} else {
			arg->records += k;
		}
		kms_free(rep);
	}
	kms_client_close(c);
	return NULL;
}

/*
 * Files rotated every 64 KiB while eight clients write singly and in
 * Batches: records of concurrent requests go to the file in one write by
 * whichever caller writes, a Batch's in several by the log's thread, and
 * a rotation must never switch or close a file under a write nor before
 * the ring is empty.  Every answered request's record is there,
 * every file begins with its AuditLogFileOpened, and the log verifies.
 */
static void
test_audit_rotation_while_many_callers_write_verifies(void **state)
{
	struct rl_arg args[RL_THREADS];
	pthread_t thr[RL_THREADS];
	struct tu_env e;
	char dir[400], files[4096];
	struct dirent *de;
	json_t *report;
	long records = 0;
	int i, nfiles = 0;
	DIR *d;

	(void)state;
	assert_int_equal(tu_env_init(&e, "audit_rotate_bytes = 65536\n"
	    "audit_checkpoint_records = 50\n"), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	memset(args, 0, sizeof(args));
	for (i = 0; i < RL_THREADS; i++) {
		args[i].endpoint = e.endpoint;
		assert_int_equal(pthread_create(&thr[i], NULL, rl_client,
		    &args[i]), 0);
	}
	for (i = 0; i < RL_THREADS; i++) {
		pthread_join(thr[i], NULL);
		assert_int_equal(args[i].bad, 0);
		records += args[i].records;
	}
	/* A last Batch, alone once the log is quiet (its checkpoints
	 * done): only the log's thread writes its records.  Every answered
	 * request's record reaches the file while kmsd runs, not at its
	 * shutdown. */
	usleep(300000);
	{
		kms_client *c;
		kms_error_info ei;
		const char *req = "{\"Action\":\"Batch\",\"Requests\":["
		    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":8},"
		    "{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":8}]}";
		char *rep = NULL;
		size_t n = 0;

		assert_int_equal(kms_client_open(&c, e.endpoint), 0);
		assert_int_equal(kms_call_json(c, req, strlen(req), &rep, &n,
		    &ei), 0);
		kms_free(rep);
		kms_client_close(c);
		records += 2;
	}
	snprintf(dir, sizeof(dir), "%s/audit", e.dir);
	for (i = 0; i < 200 && count_records(dir,
	    "\"eventName\":\"GenerateRandom\"", NULL) < records; i++) {
		usleep(10000);
	}
	assert_int_equal(count_records(dir, "\"eventName\":\"GenerateRandom\"",
	    NULL), records);
	assert_int_equal(tu_kmsd_stop(&e), 0);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		nfiles += strncmp(de->d_name, "kmsd-audit-", 11) == 0;
	}
	closedir(d);
	fprintf(stderr, "  (%ld records answered, %d files)\n", records,
	    nfiles);
	assert_true(nfiles >= 10);
	assert_int_equal(count_records(dir, "\"eventName\":\"GenerateRandom\"",
	    NULL), records);
	assert_int_equal(count_records(dir, "\"eventName\":"
	    "\"AuditLogFileOpened\"", NULL), nfiles);
	audit_files(dir, files, sizeof(files));
	assert_int_equal(verify(NULL, files, &report), 0);
	assert_int_equal(json_array_size(json_object_get(report, "errors")),
	    0);
	assert_int_equal(json_integer_value(json_object_get(report, "files")),
	    nfiles);
	json_decref(report);
	assert_int_equal(tu_env_destroy(&e), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_audit_records_requests_denials_failures_and_batch_items),
		cmocka_unit_test(test_audit_query_follow_prints_new_records),
		cmocka_unit_test(test_audit_start_cuts_a_partial_last_line),
		cmocka_unit_test(
		    test_audit_start_writes_records_a_crash_left_staged),
		cmocka_unit_test(test_audit_key_last_usage_survives_restarts_and_kill_9),
		cmocka_unit_test(
		    test_audit_a_second_kmsd_on_the_same_state_dir_writes_nothing),
		cmocka_unit_test(test_audit_no_secret_in_any_file_kmsd_wrote),
		cmocka_unit_test(test_audit_log_of_a_kmsd_killed_20_times_verifies),
		cmocka_unit_test(
		    test_audit_rotation_while_many_callers_write_verifies),
		cmocka_unit_test_teardown(
		    test_audit_full_disk_refuses_then_resumes,
		    full_disk_teardown),
	};
	const struct CMUnitTest tamper[] = {
		cmocka_unit_test(test_audit_verify_accepts_the_untouched_log),
		cmocka_unit_test(test_audit_verify_finds_an_edited_line),
		cmocka_unit_test(test_audit_verify_finds_a_deleted_line),
		cmocka_unit_test(test_audit_verify_finds_an_inserted_line),
		cmocka_unit_test(test_audit_verify_finds_reordered_lines),
		cmocka_unit_test(
		    test_audit_verify_finds_a_file_missing_from_the_middle),
		cmocka_unit_test(test_audit_verify_finds_a_truncated_tail),
		cmocka_unit_test(test_audit_verify_finds_a_forged_signature),
		cmocka_unit_test(test_audit_verify_finds_a_missing_signature),
		cmocka_unit_test(
		    test_audit_verify_finds_a_signature_by_another_key),
	};
	int r;

	r = cmocka_run_group_tests_name("audit log", tests, NULL, NULL);
	r |= cmocka_run_group_tests_name("audit verify: tampering", tamper,
	    tamper_setup, tamper_teardown);
	return r;
}
