/*
 * test_bench.c — kms-bench works and reports: short runs against a real
 * kmsd on a throwaway token, the JSON parsed and every promised field
 * checked.  Never asserts speed; `make bench` measures.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/testutil.h"

static struct tu_env env;

static int
setup(void **state)
{
	(void)state;
	if (tu_env_init(&env, NULL) != 0 || tu_kmsd_start(&env) != 0) {
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	tu_env_destroy(&env);
	return 0;
}

/* Run kms-bench with args against the test kmsd; returns parsed JSON. */
static json_t *
bench(const char *args)
{
	char cmd[2048], *out = NULL, *err = NULL;
	json_error_t je;
	json_t *j;
	int rc;

	snprintf(cmd, sizeof(cmd), "%s --endpoint %s --kmsd-pid %ld --json "
	    "%s", tu_bin("kms-bench"), env.endpoint, (long)env.kmsd, args);
	rc = tu_run(cmd, &out, &err);
	if (rc != 0) {
		fprintf(stderr, "%s\nexit %d\nstdout: %s\nstderr: %s\n", cmd,
		    rc, out ? out : "", err ? err : "");
	}
	assert_int_equal(rc, 0);
	assert_non_null(out);
	j = json_loads(out, 0, &je);
	if (j == NULL) {
		fprintf(stderr, "not JSON (%s): %s\n", je.text, out);
	}
	assert_non_null(j);
	free(out);
	free(err);
	return j;
}

static void
assert_number(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (v == NULL || !json_is_number(v)) {
		fail_msg("field %s missing or not a number", k);
	}
}

static void
assert_latency(json_t *o)
{
	json_t *l = json_object_get(o, "latency_us");
	static const char *ks[] = { "p50", "p90", "p99", "p999", "max" };
	size_t i;

	assert_true(json_is_object(l));
	for (i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
		assert_number(l, ks[i]);
	}
	/* Percentiles are ordered and measured (a reply takes > 0 µs). */
	assert_true(json_number_value(json_object_get(l, "p50")) > 0);
	assert_true(json_number_value(json_object_get(l, "p50")) <=
	    json_number_value(json_object_get(l, "p99")));
	assert_true(json_number_value(json_object_get(l, "p99")) <=
	    json_number_value(json_object_get(l, "max")));
}

/* The fields every run reports. */
static void
assert_report(json_t *j, const char *op, int clients, int outstanding,
    int batch, json_int_t ops)
{
	assert_string_equal(json_string_value(json_object_get(j, "op")), op);
	assert_int_equal(json_integer_value(json_object_get(j, "clients")),
	    clients);
	assert_int_equal(json_integer_value(json_object_get(j,
	    "outstanding")), outstanding);
	assert_int_equal(json_integer_value(json_object_get(j, "batch")),
	    batch);
	assert_int_equal(json_integer_value(json_object_get(j, "errors")), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "ops")), ops);
	assert_number(j, "ops_per_s");
	assert_true(json_number_value(json_object_get(j, "ops_per_s")) > 0);
	assert_latency(j);
	assert_number(j, "kmsd_cpu_s");
	assert_number(j, "kmsd_ctx_switches_per_request");
	assert_true(json_integer_value(json_object_get(j,
	    "kmsd_peak_rss_kib")) > 0);
}

static void
assert_baseline(json_t *j, const char *kind)
{
	json_t *b = json_object_get(j, "baseline");

	assert_true(json_is_object(b));
	assert_string_equal(json_string_value(json_object_get(b, "kind")),
	    kind);
	assert_number(b, "ops_per_s");
	assert_true(json_number_value(json_object_get(b, "ops_per_s")) > 0);
	assert_int_equal(json_integer_value(json_object_get(b, "errors")), 0);
	assert_latency(b);
	assert_number(j, "ratio");
	assert_true(json_number_value(json_object_get(j, "ratio")) > 0);
}

static void
test_bench_reports_generate_data_key_beside_echo(void **state)
{
	json_t *j;

	(void)state;
	j = bench("--op generate-data-key --clients 2 --outstanding 2 "
	    "--count 200 --baseline echo");
	assert_report(j, "generate-data-key", 2, 2, 1, 200);
	assert_baseline(j, "echo");
	/* The echo server answered with the real messages' sizes. */
	assert_true(json_integer_value(json_object_get(j, "request_bytes")) >
	    0);
	assert_true(json_integer_value(json_object_get(j, "reply_bytes")) >
	    0);
	json_decref(j);
}

/* --rounds alternates kmsd and the baseline and reports the round whose
 * ratio is the median: its figures are one of the rounds'. */
static void
test_bench_rounds_report_the_median_round(void **state)
{
	json_t *j, *rr;
	double ratios[3], shown;
	int i, below = 0, above = 0;

	(void)state;
	j = bench("--op generate-data-key --clients 1 --count 100 "
	    "--baseline echo --rounds 3");
	assert_report(j, "generate-data-key", 1, 1, 1, 100);
	assert_baseline(j, "echo");
	assert_int_equal(json_integer_value(json_object_get(j, "rounds")), 3);
	rr = json_object_get(j, "round_results");
	assert_int_equal(json_array_size(rr), 3);
	shown = json_number_value(json_object_get(j, "ratio"));
	for (i = 0; i < 3; i++) {
		json_t *r = json_array_get(rr, (size_t)i);
		assert_true(json_number_value(json_object_get(r,
		    "ops_per_s")) > 0);
		assert_true(json_number_value(json_object_get(r,
		    "baseline_ops_per_s")) > 0);
		ratios[i] = json_number_value(json_object_get(r, "ratio"));
		below += ratios[i] < shown;
		above += ratios[i] > shown;
	}
	/* The shown ratio is a round's, with at most one on each side. */
	assert_true(below <= 1 && above <= 1);
	assert_true(fabs(shown - ratios[0]) < 1e-9 ||
	    fabs(shown - ratios[1]) < 1e-9 || fabs(shown - ratios[2]) < 1e-9);
	json_decref(j);
}

static void
test_bench_counts_operations_not_requests_in_batch(void **state)
{
	json_t *j;

	(void)state;
	j = bench("--op generate-data-key --clients 2 --outstanding 2 "
	    "--batch 10 --count 200 --keys 3");
	assert_report(j, "generate-data-key", 2, 2, 10, 200);
	assert_int_equal(json_integer_value(json_object_get(j, "requests")),
	    20);
	assert_null(json_object_get(j, "baseline"));
	json_decref(j);
}

static void
test_bench_reports_hsm_baseline(void **state)
{
	char args[1024];
	json_t *j;

	(void)state;
	snprintf(args, sizeof(args), "--op generate-data-key --clients 2 "
	    "--batch 10 --count 200 --baseline hsm --hsm-conf %s", env.conf);
	j = bench(args);
	assert_report(j, "generate-data-key", 2, 1, 10, 200);
	assert_baseline(j, "hsm");
	json_decref(j);
}

/* kms-bench with args run from dir (cd), against the test kmsd. */
static int
bench_in(const char *dir, const char *args, char **out, char **err)
{
	char cmd[4096], cwd[1024];
	const char *bin = tu_bin("kms-bench");

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(cmd, sizeof(cmd), "cd %s && %s%s%s --endpoint %s "
	    "--kmsd-pid %ld --json %s", dir, bin[0] == '/' ? "" : cwd,
	    bin[0] == '/' ? "" : "/", bin, env.endpoint, (long)env.kmsd,
	    args);
	return tu_run(cmd, out, err);
}

/*
 * Without --hsm-conf the HSM baseline is the token of the var/ found from
 * the current directory upwards, as `make run` leaves it: kmsd's defaults
 * for that directory (a token from scripts/hsm-init, no kmsd.conf), else
 * its kmsd.conf when it has one; with no such var/ a clear error.
 */
static void
test_bench_hsm_baseline_finds_the_state_directory(void **state)
{
	char top[] = "/tmp/kms-bench-var-XXXXXX", bare[] =
	    "/tmp/kms-bench-bare-XXXXXX", cmd[2048], sub[128];
	const char *args = "--op generate-data-key --count 50 "
	    "--baseline hsm";
	char *out = NULL, *err = NULL;
	json_error_t je;
	json_t *j;
	int rc;

	(void)state;
	assert_non_null(mkdtemp(top));
	assert_non_null(mkdtemp(bare));
	snprintf(cmd, sizeof(cmd), "KMS_BIN_DIR=%s scripts/hsm-init %s/var "
	    ">/dev/null && mkdir -p %s/a/b", getenv("KMS_BIN_DIR") ?
	    getenv("KMS_BIN_DIR") : "bin", top, top);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	snprintf(sub, sizeof(sub), "%s/a/b", top);
	/* Embedded defaults for top/var, found from two levels down. */
	rc = bench_in(sub, args, &out, &err);
	if (rc != 0) {
		fail_msg("exit %d: %s", rc, err ? err : "");
	}
	assert_non_null(j = json_loads(out, 0, &je));
	assert_baseline(j, "hsm");
	json_decref(j);
	free(out);
	free(err);
	/* Its kmsd.conf when present: one naming no such token fails. */
	snprintf(cmd, sizeof(cmd), "echo 'token_label = no-such-token' > "
	    "%s/var/kmsd.conf", top);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	assert_int_not_equal(bench_in(sub, args, &out, &err), 0);
	assert_non_null(err);
	assert_non_null(strstr(err, "no-such-token"));
	free(out);
	free(err);
	/* No var/ upwards: the error says what to do. */
	assert_int_not_equal(bench_in(bare, args, &out, &err), 0);
	assert_non_null(err);
	assert_non_null(strstr(err, "--hsm-conf"));
	free(out);
	free(err);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", top, bare);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
}

static void
test_bench_times_hsm_calls_under_private_and_public_keys(void **state)
{
	static const char *kinds[] = { "private_us", "public_us" };
	static const char *calls[] = { "random", "encrypt_init", "encrypt",
	    "total" };
	char args[1024];
	json_t *j, *k;
	size_t a, b;

	(void)state;
	snprintf(args, sizeof(args), "--op hsm-calls --hsm-conf %s "
	    "--hsm-keys 3 --count 200 --rounds 2", env.conf);
	j = bench(args);
	assert_string_equal(json_string_value(json_object_get(j, "op")),
	    "hsm-calls");
	assert_int_equal(json_integer_value(json_object_get(j, "hsm_keys")),
	    3);
	for (a = 0; a < 2; a++) {
		assert_non_null(k = json_object_get(j, kinds[a]));
		for (b = 0; b < 4; b++) {
			assert_number(k, calls[b]);
			assert_true(json_number_value(json_object_get(k,
			    calls[b])) > 0);
		}
	}
	json_decref(j);
}

static void
test_bench_decrypts_and_mixes_with_context(void **state)
{
	json_t *j;

	(void)state;
	j = bench("--op decrypt --clients 1 --outstanding 2 --count 50 "
	    "--keys 4 --hot 2 --context-pairs 3 --plaintext-bytes 100");
	assert_report(j, "decrypt", 1, 2, 1, 50);
	assert_int_equal(json_integer_value(json_object_get(j, "hot")), 2);
	json_decref(j);
	j = bench("--op mix --clients 1 --batch 5 --count 50 --keys 3");
	assert_report(j, "mix", 1, 1, 5, 50);
	json_decref(j);
}

static void
test_bench_streams_envelope_beside_raw_gcm(void **state)
{
	json_t *j;

	(void)state;
	j = bench("--op envelope --stream-mib 8 --frame-length 8192 "
	    "--rounds 2");
	assert_string_equal(json_string_value(json_object_get(j, "op")),
	    "envelope");
	assert_int_equal(json_integer_value(json_object_get(j,
	    "frame_length")), 8192);
	assert_true(json_number_value(json_object_get(j, "encrypt_ratio")) >
	    0);
	assert_true(json_number_value(json_object_get(j,
	    "round_trip_ratio")) > 0);
	assert_true(json_number_value(json_object_get(j,
	    "raw_round_trip_mib_s")) > 0);
	assert_true(json_integer_value(json_object_get(j, "peak_rss_kib")) >
	    0);
	json_decref(j);
}

static void
test_bench_times_kmsd_startup(void **state)
{
	char cmd[2048], kmsd[1024], *out = NULL, *err = NULL;
	json_error_t je;
	json_t *j;
	long pid;
	int rc, st;

	(void)state;
	assert_int_equal(tu_kmsd_stop(&env), 0);
	/* tu_bin() returns one static buffer: copy before the next call. */
	snprintf(kmsd, sizeof(kmsd), "%s", tu_bin("kmsd"));
	snprintf(cmd, sizeof(cmd), "%s --op startup --json --endpoint %s "
	    "--kmsd-bin %s --kmsd-conf %s --kmsd-log %s/kmsd.log",
	    tu_bin("kms-bench"), env.endpoint, kmsd, env.conf,
	    env.dir);
	rc = tu_run(cmd, &out, &err);
	if (rc != 0) {
		fprintf(stderr, "%s\nexit %d\nstderr: %s\n", cmd, rc,
		    err ? err : "");
	}
	assert_int_equal(rc, 0);
	free(err);
	assert_non_null(j = json_loads(out, 0, &je));
	assert_string_equal(json_string_value(json_object_get(j, "op")),
	    "startup");
	assert_true(json_number_value(json_object_get(j, "startup_s")) > 0);
	assert_true(json_number_value(json_object_get(j, "socket_s")) <=
	    json_number_value(json_object_get(j, "startup_s")));
	pid = (long)json_integer_value(json_object_get(j, "kmsd_pid"));
	assert_true(pid > 0);
	assert_true(json_integer_value(json_object_get(j,
	    "kmsd_peak_rss_kib")) > 0);
	/* It left kmsd running and serving: stop it as ours. */
	assert_int_equal(kill((pid_t)pid, 0), 0);
	assert_int_equal(kill((pid_t)pid, SIGTERM), 0);
	for (rc = 0; rc < 500 && kill((pid_t)pid, 0) == 0; rc++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		(void)waitpid((pid_t)pid, &st, WNOHANG);
		nanosleep(&ts, NULL);
	}
	assert_int_not_equal(kill((pid_t)pid, 0), 0);
	json_decref(j);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_bench_reports_generate_data_key_beside_echo),
		cmocka_unit_test(
		    test_bench_counts_operations_not_requests_in_batch),
		cmocka_unit_test(test_bench_reports_hsm_baseline),
		cmocka_unit_test(
		    test_bench_hsm_baseline_finds_the_state_directory),
		cmocka_unit_test(
		    test_bench_times_hsm_calls_under_private_and_public_keys),
		cmocka_unit_test(test_bench_rounds_report_the_median_round),
		cmocka_unit_test(test_bench_decrypts_and_mixes_with_context),
		cmocka_unit_test(test_bench_streams_envelope_beside_raw_gcm),
		cmocka_unit_test(test_bench_times_kmsd_startup),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
