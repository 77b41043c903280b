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
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

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

/* Send a raw JSON request; returns the error code, *reply (if wanted)
 * the parsed reply. */
static int
call(const char *fmt, ...)
{
	char req[2048], *reply = NULL;
	size_t n = 0;
	kms_error_info ei;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	r = kms_call_json(cl, req, strlen(req), &reply, &n, &ei);
	kms_free(reply);
	return r;
}

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
	r = tu_run(cmd, out, NULL);
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

	snprintf(extra, sizeof(extra), "key_storage = %s\ntest_clock = yes",
	    storage);
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

static const struct CMUnitTest once[] = {
	cmocka_unit_test(test_test_clock_refused_without_setting_or_to_non_admins),
};

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_test_clock_moves_kmsd_forward),
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
