/*
 * test_http.c — kmsd's AWS-compatible HTTPS endpoint driven by the AWS
 * SDKs themselves: Debian's awscli and python3-boto3, and the AWS SDK for
 * JavaScript v3 (tests/sdk/node_modules, installed by scripts/install-deps)
 * against one real kmsd on a throwaway token, with a throwaway server
 * certificate, a client CA and SigV4 access keys from `kmsd credentials`.
 * The drivers (tests/sdk/) print a line per check and exit non-zero on
 * the first failure; this file sets the stage, carries a ciphertext
 * between IPC and HTTP both ways, and checks what the drivers cannot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/b64.h"
#include "kms.h"
#include "tests/testutil.h"

/* As configured below; hostile.py is told the same. */
#define IDLE_TIMEOUT "2"
#define REQUEST_TIMEOUT "3"
#define MAX_PER_IP "120"

static struct tu_env env;
static kms_client *cl;
static char ipc_key[KMS_KEY_ID_LEN + 1];
static char admin_secret[160];
static int metrics_port;

static int
run(char **out, const char *fmt, ...)
{
	char cmd[4096], *err = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = tu_run(cmd, out, &err);
	if (r != 0) {
		fprintf(stderr, "%s: exit %d\n%s\n", cmd, r, err ? err : "");
	}
	free(err);
	return r;
}

/* `kmsd credentials add --principal p`: the id and secret into the
 * environment as NAME_AKID and NAME_SECRET. */
static int
add_credentials(const char *name, const char *principal)
{
	char *out = NULL, *id, *sec, var[64];
	int r = -1;

	if (run(&out, "%s -c %s credentials add --principal %s",
	    tu_bin("kmsd"), env.conf, principal) != 0) {
		goto done;
	}
	if ((id = strstr(out, "aws_access_key_id = ")) == NULL ||
	    (sec = strstr(out, "aws_secret_access_key = ")) == NULL) {
		goto done;
	}
	id += 20;
	sec += 24;
	id[strcspn(id, "\n")] = '\0';
	sec[strcspn(sec, "\n")] = '\0';
	snprintf(var, sizeof(var), "%s_AKID", name);
	setenv(var, id, 1);
	snprintf(var, sizeof(var), "%s_SECRET", name);
	setenv(var, sec, 1);
	if (strcmp(name, "ADMIN") == 0) {
		snprintf(admin_secret, sizeof(admin_secret), "%s", sec);
	}
	r = 0;
 done:
	free(out);
	return r;
}

/* The port kmsd says it bound ("kmsd: https on 127.0.0.1:PORT"). */
static int
find_port(const char *what)
{
	char path[400], line[512];
	FILE *f;
	int port = 0;

	snprintf(path, sizeof(path), "%s/kmsd.log", env.dir);
	if ((f = fopen(path, "r")) == NULL) {
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, what);
		if (p != NULL) {
			port = atoi(p + strlen(what));
		}
	}
	fclose(f);
	return port;
}

static int
setup(void **state)
{
	char conf[2048], val[512], cwd[256], me[160], shim[512];
	struct passwd *pw = getpwuid(getuid());
	struct group *gr;
	kms_create_key_req kr = { .description = "made over IPC" };
	kms_key_metadata km;
	kms_error_info ei;
	kms_context_pair pair = { "via", "ipc" };
	kms_encrypt_req er;
	kms_encrypt_resp eo;
	char b64[4096];
	FILE *f;
	int port;

	if (getcwd(cwd, sizeof(cwd)) == NULL || tu_env_init(&env, NULL) != 0) {
		return -1;
	}
	if (run(NULL, "tests/sdk/make-certs.sh %s", env.dir) != 0) {
		return -1;
	}
	/* The token behind tests/p11shim, which forwards every call to
	 * SoftHSM2 and holds C_GenerateKey while HOLD_FILE exists. */
	snprintf(shim, sizeof(shim), "%s/%s/tests/libp11shim.so", cwd,
	    getenv("BUILD") ? getenv("BUILD") : "build");
	if (access(shim, R_OK) != 0) {
		return -1;
	}
	setenv("P11SHIM_MODULE", env.module, 1);
	snprintf(val, sizeof(val), "%s/hold", env.dir);
	setenv("P11SHIM_HOLD_FILE", val, 1);
	setenv("HOLD_FILE", val, 1);
	/* The thread layout is the default one. */
	snprintf(conf, sizeof(conf),
	    "pkcs11_module = %s\n"
	    "http_listen = 127.0.0.1:0\n"
	    "http_tls_cert = %s/server.crt\n"
	    "http_tls_key = %s/server.key\n"
	    "http_tls_client_ca = %s/ca.crt\n"
	    "http_regions = eu-west-3\n"
	    "http_idle_timeout = " IDLE_TIMEOUT "\n"
	    "http_request_timeout = " REQUEST_TIMEOUT "\n"
	    "http_max_per_ip = " MAX_PER_IP "\n"
	    "metrics_listen = 127.0.0.1:0\n", shim, env.dir, env.dir,
	    env.dir);
	if ((f = fopen(env.conf, "a")) == NULL) {
		return -1;
	}
	fputs(conf, f);
	fclose(f);
	/* The user running the test is one caller over IPC and HTTP. */
	snprintf(me, sizeof(me), "user:%s", pw != NULL ? pw->pw_name : "root");
	if ((gr = getgrgid(getgid())) == NULL) {
		return -1;
	}
	snprintf(val, sizeof(val), "group:%s", gr->gr_name);
	setenv("ADMIN_GROUP", val, 1);
	setenv("ADMIN_PRINCIPAL", me, 1);
	if (add_credentials("ADMIN", me) != 0 ||
	    add_credentials("BOB", "user:bob") != 0) {
		return -1;
	}
#ifdef __SANITIZE_ADDRESS__
	/* ASan's allocator keeps freed blocks in quarantine; make it wipe
	 * them as glibc's does under kmsd/heapwipe.c (test_residue does the
	 * same). */
	{
		const char *o = getenv("ASAN_OPTIONS");
		char opts[512];
		snprintf(opts, sizeof(opts), "%s%smax_free_fill_size=2147483647:"
		    "free_fill_byte=0", o ? o : "", o && *o ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	if (tu_kmsd_start(&env) != 0 ||
	    (port = find_port("https on 127.0.0.1:")) == 0 ||
	    (metrics_port = find_port("metrics on 127.0.0.1:")) == 0) {
		return -1;
	}
	snprintf(val, sizeof(val), "https://127.0.0.1:%d", port);
	setenv("KMSD_ENDPOINT", val, 1);
	snprintf(val, sizeof(val), "%d", port);
	setenv("KMSD_PORT", val, 1);
	snprintf(val, sizeof(val), "%s/server.crt", env.dir);
	setenv("KMSD_CA", val, 1);
	setenv("NODE_EXTRA_CA_CERTS", val, 1);
	snprintf(val, sizeof(val), "%s/client.crt", env.dir);
	setenv("CLIENT_CERT", val, 1);
	snprintf(val, sizeof(val), "%s/client.key", env.dir);
	setenv("CLIENT_KEY", val, 1);
	snprintf(val, sizeof(val), "%s/from-http.b64", env.dir);
	setenv("HTTP_CT_OUT", val, 1);
	setenv("WORK", env.dir, 1);
	snprintf(val, sizeof(val), "%d", (int)env.kmsd);
	setenv("KMSD_PID", val, 1);
	setenv("IDLE_TIMEOUT", IDLE_TIMEOUT, 1);
	setenv("REQUEST_TIMEOUT", REQUEST_TIMEOUT, 1);
	setenv("MAX_PER_IP", MAX_PER_IP, 1);
	snprintf(val, sizeof(val), "%s/tests/sdk", cwd);
	setenv("SDK_DIR", val, 1);

	/* A key and a ciphertext made over IPC, for the SDKs to decrypt. */
	if (kms_client_open(&cl, env.endpoint) != 0 ||
	    kms_create_key(cl, &kr, &km, &ei) != 0) {
		return -1;
	}
	snprintf(ipc_key, sizeof(ipc_key), "%s", km.key_id);
	kms_key_metadata_free(&km);
	setenv("IPC_KEY", ipc_key, 1);
	setenv("FLOOD_KEY", ipc_key, 1);
	memset(&er, 0, sizeof(er));
	er.key_id = ipc_key;
	er.plaintext = (const uint8_t *)"from-ipc";
	er.plaintext_len = 8;
	er.context.pairs = &pair;
	er.context.npairs = 1;
	if (kms_encrypt(cl, &er, &eo, &ei) != 0) {
		return -1;
	}
	if (b64_encode(eo.ciphertext_blob.data, eo.ciphertext_blob.len, b64,
	    sizeof(b64)) != 0) {
		kms_encrypt_resp_free(&eo);
		return -1;
	}
	kms_encrypt_resp_free(&eo);
	setenv("IPC_CT", b64, 1);
	return 0;
}

static int
teardown(void **state)
{
	kms_client_close(cl);
	return tu_env_destroy(&env) == 0 ? 0 : -1;
}

/* Run a driver; its lines go to our output either way. */
static void
drive(const char *cmd)
{
	char *out = NULL;
	int r = run(&out, "%s", cmd);

	fputs(out != NULL ? out : "", stdout);
	free(out);
	assert_int_equal(r, 0);
}

static void
test_http_boto3_drives_every_operation(void **state)
{
	kms_context_pair pair = { "via", "http" };
	kms_decrypt_req dr;
	kms_decrypt_resp dout;
	kms_error_info ei;
	char *b64 = NULL, path[400];
	uint8_t ct[4096];
	size_t n = 0;

	drive("/usr/bin/python3 tests/sdk/drive_boto3.py");
	/* ... and what boto3 encrypted decrypts over IPC. */
	snprintf(path, sizeof(path), "cat %s/from-http.b64", env.dir);
	assert_int_equal(run(&b64, "%s", path), 0);
	assert_int_equal(b64_decode(b64, strlen(tu_trimnl(b64)), ct, sizeof(ct),
	    &n), 0);
	free(b64);
	memset(&dr, 0, sizeof(dr));
	dr.ciphertext_blob = ct;
	dr.ciphertext_len = n;
	dr.context.pairs = &pair;
	dr.context.npairs = 1;
	if (kms_decrypt(cl, &dr, &dout, &ei) != 0) {
		fail_msg("IPC Decrypt of the HTTP ciphertext: %s: %s", ei.name,
		    ei.message);
	}
	assert_int_equal(dout.plaintext.len, 9);
	assert_memory_equal(dout.plaintext.data, "from-http", 9);
	assert_true(strstr(dout.key_id, ipc_key) != NULL);
	kms_decrypt_resp_free(&dout);
}

/*
 * The AWS CLI and the JavaScript SDK prove compatibility, which sanitizers
 * do not change; under ASan, boto3 and the hostile peers exercise the same
 * server paths, and the suite stays short.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SDK_ONLY_PLAIN() skip()
#else
#define SDK_ONLY_PLAIN() do { } while (0)
#endif

static void
test_http_aws_cli_drives_every_operation(void **state)
{
	SDK_ONLY_PLAIN();
	drive("tests/sdk/drive_awscli.sh");
}

static void
test_http_javascript_sdk_drives_every_operation(void **state)
{
	SDK_ONLY_PLAIN();
	if (access("tests/sdk/node_modules/@aws-sdk/client-kms", R_OK) != 0) {
		fail_msg("tests/sdk/node_modules lacks @aws-sdk/client-kms: "
		    "run scripts/install-deps");
	}
	drive("cd tests/sdk && node drive_node.mjs");
}

static void
test_http_hostile_peers_do_not_stall_others(void **state)
{
	drive("/usr/bin/python3 tests/sdk/hostile.py");
}

/* An operation the token is slow at (CreateKey, held in C_GenerateKey)
 * holds up only itself: another connection's quick calls are answered
 * meanwhile.  Fails when the thread that reads the connections runs it. */
static void
test_http_slow_operation_holds_up_only_itself(void **state)
{
	char path[400], op[64], id[64], a[128], b[128];
	FILE *f;
	int n = 0;

	drive("/usr/bin/python3 tests/sdk/slow_token.py");
	/* The x-amzn-RequestId a caller was given is its audit record's
	 * requestID, for a quick call and for one the pool ran. */
	snprintf(path, sizeof(path), "%s/request-ids", env.dir);
	assert_non_null(f = fopen(path, "r"));
	while (fscanf(f, "%63s %63s", op, id) == 2) {
		snprintf(a, sizeof(a), "\"requestID\":\"%s\"", id);
		snprintf(b, sizeof(b), "\"eventName\":\"%s\"", op);
		if (tu_audit_count(&env, a, b) != 1) {
			fail_msg("%s %s: not one audit record", op, id);
		}
		n++;
	}
	fclose(f);
	assert_int_equal(n, 2);
}

/* Every request over HTTPS has its audit record, those refused before
 * they reach an operation too (SigV4, a malformed or oversized body, a
 * path not served) and those closed unanswered, naming the access key,
 * address and User-Agent. */
static void
test_http_every_request_audited_refusals_too(void **state)
{
	drive("/usr/bin/python3 tests/sdk/audit_http.py");
}

/* Data keys and plaintexts that went over HTTPS are not left in kmsd's
 * memory (test_residue shows the same for IPC). */
static void
test_http_no_plaintext_left_in_kmsd_memory(void **state)
{
	drive("/usr/bin/python3 tests/sdk/residue.py");
}

/* A credentials file that others may read serves no one, at once. */
static void
test_http_credentials_file_made_readable_fails_closed(void **state)
{
	static const char probe[] = "/usr/bin/python3 -c '"
	    "import os, boto3, botocore.exceptions as x\n"
	    "c = boto3.client(\"kms\", endpoint_url=os.environ[\"KMSD_ENDPOINT\"],"
	    " region_name=\"local\", verify=os.environ[\"KMSD_CA\"],"
	    " aws_access_key_id=os.environ[\"ADMIN_AKID\"],"
	    " aws_secret_access_key=os.environ[\"ADMIN_SECRET\"])\n"
	    "try:\n"
	    "    c.list_keys(Limit=1); print(\"served\")\n"
	    "except x.ClientError as e:\n"
	    "    print(e.response[\"Error\"][\"Code\"])'";
	char path[400], *out = NULL;

	snprintf(path, sizeof(path), "%s/credentials", env.dir);
	assert_int_equal(chmod(path, 0644), 0);
	usleep(1300 * 1000);	/* the file is looked at once a second */
	assert_int_equal(run(&out, "%s", probe), 0);
	assert_string_equal(tu_trimnl(out), "UnrecognizedClientException");
	free(out);
	assert_int_equal(chmod(path, 0600), 0);
	usleep(1300 * 1000);
	assert_int_equal(run(&out, "%s", probe), 0);
	assert_string_equal(tu_trimnl(out), "served");
	free(out);
	assert_true(tu_log_says(&env, "readable by others"));
}

/*
 * The metrics endpoint, after the tests above: requests per front end and
 * operation, errors by name, latency histograms, the HSM up, cached
 * handles, connections; no secret.
 */
static void
test_http_metrics_count_both_front_ends(void **state)
{
	char *out = NULL;

	assert_int_equal(run(&out, "/usr/bin/python3 -c 'import urllib.request;"
	    " print(urllib.request.urlopen(\"http://127.0.0.1:%d/metrics\")."
	    "read().decode())'", metrics_port), 0);
	assert_non_null(strstr(out, "kmsd_requests_total{frontend=\"http\","
	    "operation=\"Encrypt\"} "));
	assert_non_null(strstr(out, "kmsd_requests_total{frontend=\"ipc\","
	    "operation=\"Encrypt\"} "));
	assert_non_null(strstr(out, "kmsd_requests_total{frontend=\"http\","
	    "operation=\"Batch\"} "));
	assert_non_null(strstr(out, "kmsd_errors_total{operation=\"Encrypt\","
	    "error=\"DisabledException\"} "));
	assert_non_null(strstr(out, "kmsd_errors_total{operation=\"Encrypt\","
	    "error=\"AccessDeniedException\"} "));
	assert_non_null(strstr(out, "kmsd_request_duration_seconds_bucket{"
	    "operation=\"GenerateDataKey\",le=\"+Inf\"} "));
	assert_non_null(strstr(out, "kmsd_hsm_up 1\n"));
	assert_non_null(strstr(out, "kmsd_key_cache_handles "));
	assert_non_null(strstr(out, "kmsd_connections{frontend=\"http\"} "));
	assert_non_null(strstr(out, "\nkmsd_http_queued 0\n"));
	assert_null(strstr(out, admin_secret));
	assert_null(strstr(out, "user:"));
	free(out);
}

/* TLS 1.2 and 1.3 only: a client willing to speak 1.1 (security level 0)
 * gets no session. */
static void
test_http_tls_1_2_and_1_3_only(void **state)
{
	static const char *const want[] = { "tls1_1", "(NONE)", "tls1_2",
		"TLSv1.2", "tls1_3", "TLSv1.3" };
	char *out = NULL;
	size_t i;

	for (i = 0; i < 6; i += 2) {
		assert_int_equal(run(&out, "echo | timeout 10 openssl s_client "
		    "-connect 127.0.0.1:$KMSD_PORT -%s -cipher "
		    "'DEFAULT@SECLEVEL=0' 2>&1 | grep 'Cipher is' || true",
		    want[i]), 0);
		if (strstr(out, want[i + 1]) == NULL) {
			fail_msg("-%s: %s", want[i], out);
		}
		free(out);
	}
}

/* kms-bench over HTTPS, with the http-echo baseline: it runs and
 * reports (not how fast), with each server's CPU time a request (kmsd
 * found by its port, the echo its child). */
static void
test_http_kms_bench_runs_against_the_endpoint(void **state)
{
	char *out = NULL, *p;

	assert_int_equal(run(&out, "AWS_ACCESS_KEY_ID=$ADMIN_AKID "
	    "AWS_SECRET_ACCESS_KEY=$ADMIN_SECRET %s --endpoint $KMSD_ENDPOINT "
	    "--ca-bundle $KMSD_CA --op generate-data-key --clients 2 "
	    "--duration 0.5 --warmup 0.1 --baseline http-echo --tls-cert "
	    "%s/server.crt --tls-key %s/server.key --echo-workers 2",
	    tu_bin("kms-bench"), env.dir, env.dir), 0);
	assert_non_null(strstr(out, "ratio"));
	assert_non_null(strstr(out, "0 errors"));
	assert_non_null(p = strstr(out, "kmsd "));
	assert_non_null(p = strstr(p, "server CPU"));
	assert_non_null(p = strstr(p, "http-echo "));
	assert_non_null(strstr(p, "server CPU"));
	free(out);
}

/* Secrets never reach the log; plain HTTP only on loopback. */
static void
test_http_no_secret_in_log_and_plain_http_loopback_only(void **state)
{
	char conf[600], *out = NULL;
	FILE *f;

	assert_false(tu_log_says(&env, admin_secret));
	snprintf(conf, sizeof(conf), "%s/plain.conf", env.dir);
	assert_non_null(f = fopen(conf, "w"));
	fprintf(f, "state_dir = %s\npkcs11_module = %s\n"
	    "http_listen = 0.0.0.0:8080\n", env.dir, env.module);
	fclose(f);
	snprintf(conf, sizeof(conf), "%s -c %s/plain.conf --check-config "
	    "2>&1", tu_bin("kmsd"), env.dir);
	assert_int_not_equal(tu_run(conf, &out, NULL), 0);
	assert_non_null(strstr(out, "loopback addresses only"));
	free(out);
}

/* Records of unsigned requests from addr, one by one, and counts. */
static int
refusals_of(const char *addr)
{
	char a[64];

	snprintf(a, sizeof(a), "\"sourceIPAddress\":\"%s\"", addr);
	return tu_audit_count(&env, a, "\"errorCode\":"
	    "\"MissingAuthenticationTokenException\"");
}

static int
counted(const char *addr, int n)
{
	char a[200];

	snprintf(a, sizeof(a), "\"serviceEventDetails\":{"
	    "\"sourceIPAddress\":\"%s\",\"count\":%d,\"errorCodes\":{"
	    "\"MissingAuthenticationTokenException\":%d}", addr, n, n);
	return tu_audit_count(&env,
	    "\"eventName\":\"UnauthenticatedRefusalsCounted\"", a);
}

/*
 * Refusals of a peer nobody vouched for are recorded one by one up to
 * http_refusals_per_minute from its address (and ten times that from all
 * together), then counted: the count is recorded at the end of its
 * minute or, as here, when kmsd stops.  Other addresses keep their own
 * allowance, and the log still verifies.
 */
static void
test_http_unauthenticated_refusals_counted_past_the_limit(void **state)
{
	char addr[32], bursts[512], val[32];
	size_t len = 0;
	int i, total = 0;
	FILE *f;

	/* The default limit, 600: 650 from one address, 3 from another. */
	setenv("BURSTS", "127.0.0.2:650,127.0.0.3:3", 1);
	drive("/usr/bin/python3 tests/sdk/refusal_limit.py");
	for (i = 0; i < 100 && refusals_of("127.0.0.2") < 600; i++) {
		usleep(50 * 1000);
	}
	usleep(200 * 1000);
	assert_int_equal(refusals_of("127.0.0.2"), 600);
	assert_int_equal(refusals_of("127.0.0.3"), 3);
	assert_int_equal(tu_audit_count(&env,
	    "UnauthenticatedRefusalsCounted", NULL), 0);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	assert_int_equal(counted("127.0.0.2", 50), 1);
	assert_int_equal(tu_audit_count(&env,
	    "UnauthenticatedRefusalsCounted", "127.0.0.3"), 0);
	assert_int_equal(tu_audit_verify(&env), 0);

	/* A limit of 3: 4 each from 12 addresses; all together may have 30
	 * records, so the first ten have 3 and a count of 1, the last two
	 * a count of 4. */
	assert_non_null(f = fopen(env.conf, "a"));
	fputs("http_refusals_per_minute = 3\n", f);
	fclose(f);
	assert_int_equal(tu_kmsd_start(&env), 0);
	snprintf(val, sizeof(val), "%d", find_port("https on 127.0.0.1:"));
	setenv("KMSD_PORT", val, 1);
	for (i = 10; i < 22; i++) {
		len += (size_t)snprintf(bursts + len, sizeof(bursts) - len,
		    "%s127.0.0.%d:4", i > 10 ? "," : "", i);
	}
	setenv("BURSTS", bursts, 1);
	drive("/usr/bin/python3 tests/sdk/refusal_limit.py");
	assert_int_equal(tu_kmsd_stop(&env), 0);
	for (i = 10; i < 22; i++) {
		snprintf(addr, sizeof(addr), "127.0.0.%d", i);
		total += refusals_of(addr);
		assert_int_equal(refusals_of(addr), i < 20 ? 3 : 0);
		assert_int_equal(counted(addr, i < 20 ? 1 : 4), 1);
	}
	assert_int_equal(total, 30);
	assert_int_equal(tu_audit_verify(&env), 0);
	assert_int_equal(tu_kmsd_start(&env), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_boto3_drives_every_operation),
		cmocka_unit_test(test_http_aws_cli_drives_every_operation),
		cmocka_unit_test(test_http_javascript_sdk_drives_every_operation),
		cmocka_unit_test(test_http_hostile_peers_do_not_stall_others),
		cmocka_unit_test(test_http_slow_operation_holds_up_only_itself),
		cmocka_unit_test(test_http_every_request_audited_refusals_too),
		cmocka_unit_test(test_http_no_plaintext_left_in_kmsd_memory),
		cmocka_unit_test(test_http_credentials_file_made_readable_fails_closed),
		cmocka_unit_test(test_http_no_secret_in_log_and_plain_http_loopback_only),
		cmocka_unit_test(test_http_metrics_count_both_front_ends),
		cmocka_unit_test(test_http_kms_bench_runs_against_the_endpoint),
		cmocka_unit_test(test_http_tls_1_2_and_1_3_only),
		cmocka_unit_test(test_http_unauthenticated_refusals_counted_past_the_limit),
	};

	if (getenv("KMS_TEST_FILTER") != NULL) {
		cmocka_set_test_filter(getenv("KMS_TEST_FILTER"));
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
