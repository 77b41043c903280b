/*
 * test_fault.c — the token goes away while kmsd runs, and comes back.
 *
 * kmsd loads tests/p11shim, a PKCS#11 module that forwards every call to
 * the real SoftHSM2 and, while a fault file exists, acts as if the token
 * were pulled (sessions closed, CKR_DEVICE_REMOVED).  Requests must fail
 * promptly with DependencyTimeoutException, and kmsd must recover by
 * itself when the token returns.  And clients that die with calls in
 * flight: kmsd must not keep their connections.  And the module
 * re-initialised on purpose (hsm_recycle_objects) under load: no call may
 * fail or reach the wrong key.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "tools/proc.h"
#include "kms.h"
#include "tests/testutil.h"

static struct tu_env env;
static kms_client *cl;
static char fault[512];

static void must_serve(kms_client *c, const char *when);

static int
gdk(const char *key, kms_generate_data_key_resp *out, kms_error_info *ei)
{
	kms_generate_data_key_req gr = { 0 };

	gr.key_id = key;
	gr.key_spec = "AES_256";
	return kms_generate_data_key(cl, &gr, out, ei);
}

/* The sequence number of the first audit record named name (0: none). */
static long long
audit_seq(const struct tu_env *e, const char *name)
{
	char cmd[1024], *out = NULL;
	long long seq = 0;

	snprintf(cmd, sizeof(cmd), "cat %s/audit/kmsd-audit-*.jsonl | grep "
	    "'\"eventName\":\"%s\"' | head -1 | sed -n "
	    "'s/.*\"sequence\":\\([0-9]*\\).*/\\1/p'", e->dir, name);
	if (tu_run(cmd, &out, NULL) == 0 && out != NULL) {
		seq = atoll(out);
	}
	free(out);
	return seq;
}

static void
run_fault_cycle(const char *storage)
{
	char extra[1200], shim[512], key[KMS_KEY_ID_LEN + 1];
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_generate_data_key_resp before, during;
	kms_decrypt_req dr = { 0 };
	kms_decrypt_resp dout;
	kms_error_info ei;
	double t0;
	int r = -1, i;
	FILE *f;

	snprintf(shim, sizeof(shim), "%s/%s/tests/libp11shim.so",
	    getcwd(extra, 512) ? extra : ".", build);
	assert_int_equal(access(shim, R_OK), 0);
	assert_int_equal(tu_env_init(&env, NULL), 0);
	snprintf(fault, sizeof(fault), "%s/token-pulled", env.dir);
	setenv("P11SHIM_FAULT_FILE", fault, 1);
	setenv("P11SHIM_MODULE", env.module, 1);
	snprintf(extra, sizeof(extra), "pkcs11_module = %s\nkey_storage = %s\n"
	    "hsm_retry_ms = 100\n", shim, storage);
	f = fopen(env.conf, "a");
	assert_non_null(f);
	fputs(extra, f);
	fclose(f);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	kms_client_set_timeout(cl, 10000);

	assert_int_equal(kms_create_key(cl, &cr, &m, &ei), 0);
	snprintf(key, sizeof(key), "%s", m.key_id);
	kms_key_metadata_free(&m);
	assert_int_equal(gdk(key, &before, &ei), 0);

	/* Pull the token. */
	f = fopen(fault, "w");
	assert_non_null(f);
	fclose(f);
	for (i = 0; i < 3; i++) {
		t0 = tu_now_s();
		r = gdk(key, &during, &ei);
		assert_int_equal(r, KMS_EDEPENDENCYTIMEOUT);
		assert_string_equal(ei.name, "DependencyTimeoutException");
		assert_true(tu_now_s() - t0 < 2.0);
	}
	/* Put it back: kmsd must find it again by itself. */
	unlink(fault);
	for (i = 0; i < 100; i++) {
		if ((r = gdk(key, &during, &ei)) == 0) {
			break;
		}
		usleep(100 * 1000);
	}
	if (r != 0) {
		fail_msg("kmsd did not recover: %s %s", ei.name, ei.message);
	}
	kms_generate_data_key_resp_free(&during);
	/* What was made before the outage still decrypts. */
	dr.ciphertext_blob = before.ciphertext_blob.data;
	dr.ciphertext_len = before.ciphertext_blob.len;
	assert_int_equal(kms_decrypt(cl, &dr, &dout, &ei), 0);
	assert_memory_equal(dout.plaintext.data, before.plaintext.data, 32);
	kms_decrypt_resp_free(&dout);
	kms_generate_data_key_resp_free(&before);
	kms_client_close(cl);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	/* The audit log says the token went and came back (once each, as
	 * service events, in that order), and still verifies. */
	assert_int_equal(tu_audit_count(&env, "\"eventName\":"
	    "\"HsmUnavailable\"", "\"eventType\":\"AwsServiceEvent\""), 1);
	assert_int_equal(tu_audit_count(&env, "\"eventName\":\"HsmRecovered\"",
	    "\"eventType\":\"AwsServiceEvent\""), 1);
	assert_true(audit_seq(&env, "HsmUnavailable") <
	    audit_seq(&env, "HsmRecovered"));
	assert_int_equal(tu_audit_verify(&env), 0);
	tu_env_destroy(&env);
	return;
}

/* Material that cannot be unwrapped makes the key Unavailable. */
static void
test_missing_material_makes_the_key_unavailable(void **state)
{
	char db[400], key[KMS_KEY_ID_LEN + 1];
	kms_create_key_req cr = { 0 };
	kms_generate_data_key_resp out;
	kms_key_metadata m;
	kms_error_info ei;
	sqlite3 *s;
	int i;

	assert_int_equal(tu_env_init(&env, NULL), 0);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	assert_int_equal(kms_create_key(cl, &cr, &m, &ei), 0);
	snprintf(key, sizeof(key), "%s", m.key_id);
	kms_key_metadata_free(&m);
	kms_client_close(cl);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	/* Damage the wrapped blob behind kmsd's back. */
	snprintf(db, sizeof(db), "%s/kmsd.db", env.dir);
	assert_int_equal(sqlite3_open(db, &s), SQLITE_OK);
	assert_int_equal(sqlite3_exec(s, "UPDATE versions SET material = "
	    "randomblob(40)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(s);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(gdk(key, &out, &ei), KMS_EINVALIDSTATE);
		assert_non_null(strstr(ei.message, "Unavailable"));
	}
	assert_int_equal(kms_describe_key(cl, key, NULL, &m, &ei), 0);
	assert_string_equal(m.key_state, "Unavailable");
	kms_key_metadata_free(&m);
	kms_client_close(cl);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	tu_env_destroy(&env);
}

static long
searches(const char *log)
{
	struct stat st;

	return stat(log, &st) == 0 ? (long)st.st_size : 0;
}

/*
 * No C_FindObjects on a request path: with more keys than cached handles
 * (so versions are evicted and loaded again) and across a restart, the
 * searches counted by the shim happen at start-up only.
 */
static void
run_no_search(const char *storage)
{
	char extra[1200], shim[512], log[600], keys[20][KMS_KEY_ID_LEN + 1];
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_generate_data_key_resp out;
	kms_error_info ei;
	long before;
	int i, round;
	FILE *f;

	snprintf(shim, sizeof(shim), "%s/%s/tests/libp11shim.so",
	    getcwd(extra, 512) ? extra : ".", build);
	assert_int_equal(tu_env_init(&env, NULL), 0);
	snprintf(log, sizeof(log), "%s/find.log", env.dir);
	setenv("P11SHIM_FIND_LOG", log, 1);
	setenv("P11SHIM_MODULE", env.module, 1);
	unsetenv("P11SHIM_FAULT_FILE");
	snprintf(extra, sizeof(extra), "pkcs11_module = %s\nkey_storage = %s\n"
	    "key_cache_handles = 16\n", shim, storage);
	assert_non_null(f = fopen(env.conf, "a"));
	fputs(extra, f);
	fclose(f);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	for (i = 0; i < 20; i++) {
		assert_int_equal(kms_create_key(cl, &cr, &m, &ei), 0);
		snprintf(keys[i], sizeof(keys[i]), "%s", m.key_id);
		kms_key_metadata_free(&m);
	}
	kms_client_close(cl);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	unlink(log);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	assert_int_equal(gdk(keys[0], &out, &ei), 0);
	kms_generate_data_key_resp_free(&out);
	before = searches(log);
	assert_true(before > 0);	/* the shim does count */
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 20; i++) {
			assert_int_equal(gdk(keys[i], &out, &ei), 0);
			kms_generate_data_key_resp_free(&out);
		}
	}
	assert_int_equal(searches(log), before);
	kms_client_close(cl);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	unsetenv("P11SHIM_FIND_LOG");
	tu_env_destroy(&env);
}

static void
test_no_search_on_a_request_path_wrapped(void **state)
{
	run_no_search("wrapped");
}

static void
test_no_search_on_a_request_path_resident(void **state)
{
	run_no_search("resident");
}

/* An HSM without a mechanism kmsd needs: kmsd refuses to start and says
 * which. */
static void
test_missing_mechanism_refuses_start(void **state)
{
	static const struct {
		const char *num, *name;
	} mechs[] = {
		{ "0x2109", "CKM_AES_KEY_WRAP" },
		{ "0x1087", "CKM_AES_GCM" },
	};
	char extra[1200], shim[512], log[600], *out = NULL;
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	size_t i;
	FILE *f;

	snprintf(shim, sizeof(shim), "%s/%s/tests/libp11shim.so",
	    getcwd(extra, 512) ? extra : ".", build);
	assert_int_equal(tu_env_init(&env, NULL), 0);
	setenv("P11SHIM_MODULE", env.module, 1);
	unsetenv("P11SHIM_FAULT_FILE");
	snprintf(extra, sizeof(extra), "pkcs11_module = %s\n", shim);
	assert_non_null(f = fopen(env.conf, "a"));
	fputs(extra, f);
	fclose(f);
	snprintf(log, sizeof(log), "cat %s/kmsd.log", env.dir);
	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		setenv("P11SHIM_HIDE_MECH", mechs[i].num, 1);
		assert_int_equal(tu_kmsd_start(&env), -1);
		assert_int_equal(tu_run(log, &out, NULL), 0);
		if (strstr(out, mechs[i].name) == NULL) {
			fail_msg("kmsd.log does not name %s: %s",
			    mechs[i].name, out);
		}
		free(out);
	}
	/* With every mechanism there, it starts. */
	unsetenv("P11SHIM_HIDE_MECH");
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	tu_env_destroy(&env);
}

/*
 * The request id an internal error's message names ("... (request ID)"),
 * into id; the log must hold a line of that request holding what.
 */
static void
assert_logged_for_request(const char *message, const char *what)
{
	char id[64], needle[128], path[300], line[2048];
	const char *p = strstr(message, "(request ");
	size_t n;
	int found = 0;
	FILE *f;

	if (p == NULL) {
		fail_msg("no request id in \"%s\"", message);
	}
	p += strlen("(request ");
	n = strcspn(p, ")");
	assert_true(n > 0 && n < sizeof(id));
	memcpy(id, p, n);
	id[n] = '\0';
	snprintf(needle, sizeof(needle), "req %s: ", id);
	snprintf(path, sizeof(path), "%s/kmsd.log", env.dir);
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		found |= strstr(line, needle) != NULL &&
		    strstr(line, what) != NULL;
	}
	fclose(f);
	if (!found) {
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "cat %s >&2", path);
		(void)!system(cmd);
		fail_msg("kmsd.log has no line of request %s with \"%s\"", id,
		    what);
	}
}

/*
 * The token is there but refuses its work (a policy, an internal fault):
 * the error keeps AWS's name, and its message says the HSM refused, names
 * the request, and the log says why under that request's id.  When the
 * HSM works again, so does kmsd.
 */
static void
test_hsm_refusal_is_named_in_the_error_and_the_log(void **state)
{
	char extra[1200], shim[512], refuse[600], key[KMS_KEY_ID_LEN + 1];
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	kms_create_key_req cr = { 0 };
	kms_generate_data_key_resp out;
	kms_key_metadata m;
	kms_error_info ei;
	kms_secret rnd;
	FILE *f;

	snprintf(shim, sizeof(shim), "%s/%s/tests/libp11shim.so",
	    getcwd(extra, 512) ? extra : ".", build);
	assert_int_equal(tu_env_init(&env, NULL), 0);
	snprintf(refuse, sizeof(refuse), "%s/hsm-refuses", env.dir);
	setenv("P11SHIM_MODULE", env.module, 1);
	setenv("P11SHIM_REFUSE_FILE", refuse, 1);
	unsetenv("P11SHIM_FAULT_FILE");
	snprintf(extra, sizeof(extra), "pkcs11_module = %s\n", shim);
	assert_non_null(f = fopen(env.conf, "a"));
	fputs(extra, f);
	fclose(f);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	kms_client_set_timeout(cl, 10000);
	assert_int_equal(kms_create_key(cl, &cr, &m, &ei), 0);
	snprintf(key, sizeof(key), "%s", m.key_id);
	kms_key_metadata_free(&m);
	assert_int_equal(gdk(key, &out, &ei), 0);	/* key in the cache */
	kms_generate_data_key_resp_free(&out);

	assert_non_null(f = fopen(refuse, "w"));
	fclose(f);
	assert_int_equal(gdk(key, &out, &ei), KMS_EINTERNAL);
	assert_string_equal(ei.name, "KMSInternalException");
	if (strstr(ei.message, "the HSM refused the operation") == NULL) {
		fail_msg("GenerateDataKey: %s", ei.message);
	}
	assert_logged_for_request(ei.message, "CKR_FUNCTION_FAILED");
	assert_int_equal(kms_create_key(cl, &cr, &m, &ei), KMS_EINTERNAL);
	if (strstr(ei.message, "the HSM refused the operation") == NULL) {
		fail_msg("CreateKey: %s", ei.message);
	}
	assert_logged_for_request(ei.message, "CKR_FUNCTION_FAILED");
	assert_int_equal(kms_generate_random(cl, 16, &rnd, &ei),
	    KMS_EINTERNAL);
	if (strstr(ei.message, "the HSM refused the operation") == NULL) {
		fail_msg("GenerateRandom: %s", ei.message);
	}
	/* Nothing of the store in it: the store did nothing wrong. */
	assert_null(strstr(ei.message, "key store"));

	unlink(refuse);
	assert_int_equal(gdk(key, &out, &ei), 0);
	kms_generate_data_key_resp_free(&out);
	kms_client_close(cl);
	unsetenv("P11SHIM_REFUSE_FILE");
	assert_int_equal(tu_kmsd_stop(&env), 0);
	tu_env_destroy(&env);
}

static off_t
file_size(const char *dir, const char *name)
{
	char path[400];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0 ? st.st_size : 0;
}

/*
 * The store cannot write (here: kmsd's file size limit is reached, which
 * fails the write as a full disk does, and works the same as root): the
 * error keeps AWS's name and says the key store failed, the log says how
 * under the request's id, kmsd stays up, and once the store can write
 * again kmsd serves as before, with nothing acknowledged lost.
 */
static void
test_store_write_failure_is_named_in_the_error_and_the_log(void **state)
{
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	char key[KMS_KEY_ID_LEN + 1];
	struct rlimit lim;
	off_t big;
	int i, r = 0;

	assert_int_equal(tu_env_init(&env, NULL), 0);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	kms_client_set_timeout(cl, 10000);
	assert_int_equal(kms_create_key(cl, &cr, &m, &ei), 0);
	snprintf(key, sizeof(key), "%s", m.key_id);
	kms_key_metadata_free(&m);

	/* No file of kmsd's may grow past what the largest is now. */
	big = file_size(env.dir, "kmsd.db");
	if (file_size(env.dir, "kmsd.db-wal") > big) {
		big = file_size(env.dir, "kmsd.db-wal");
	}
	if (file_size(env.dir, "kmsd.log") + 65536 > big) {
		big = file_size(env.dir, "kmsd.log") + 65536;
	}
	/* The soft limit only: raising it again needs no privilege. */
	assert_int_equal(prlimit(env.kmsd, RLIMIT_FSIZE, NULL, &lim), 0);
	lim.rlim_cur = (rlim_t)big;
	if (prlimit(env.kmsd, RLIMIT_FSIZE, &lim, NULL) != 0) {
		fail_msg("prlimit: %s", strerror(errno));
	}
	for (i = 0; i < 500; i++) {
		if ((r = kms_create_key(cl, &cr, &m, &ei)) != 0) {
			break;
		}
		kms_key_metadata_free(&m);
	}
	assert_int_equal(r, KMS_EINTERNAL);
	assert_string_equal(ei.name, "KMSInternalException");
	if (strstr(ei.message, "the key store is unavailable") == NULL) {
		fail_msg("CreateKey: %s", ei.message);
	}
	assert_null(strstr(ei.message, "HSM"));
	assert_logged_for_request(ei.message, "store:");
	fprintf(stderr, "CreateKey with the store unable to write: %s: %s\n",
	    ei.name, ei.message);
	must_serve(cl, "while the store cannot write");

	lim.rlim_cur = lim.rlim_max;
	if (prlimit(env.kmsd, RLIMIT_FSIZE, &lim, NULL) != 0) {
		fail_msg("prlimit: %s", strerror(errno));
	}
	for (i = 0; i < 50; i++) {
		if ((r = kms_create_key(cl, &cr, &m, &ei)) == 0) {
			kms_key_metadata_free(&m);
			break;
		}
		usleep(100 * 1000);
	}
	if (r != 0) {
		fail_msg("the store did not come back: %s", ei.message);
	}
	assert_int_equal(kms_describe_key(cl, key, NULL, &m, &ei), 0);
	kms_key_metadata_free(&m);
	kms_client_close(cl);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	tu_env_destroy(&env);
}

/*
 * kmsd with its store on a tmpfs of its own (a private mount namespace,
 * so nothing outside sees it): pid, or 0 when this machine cannot give a
 * process a mount namespace (no CAP_SYS_ADMIN), or -1.
 */
static pid_t
start_on_small_disk(const char *storedir, size_t bytes)
{
	char sock[300], log[300], opts[64];
	pid_t pid;
	int i, fd, st;

	snprintf(sock, sizeof(sock), "%s/kmsd.sock", env.dir);
	snprintf(log, sizeof(log), "%s/kmsd.log", env.dir);
	snprintf(opts, sizeof(opts), "size=%zu,mode=0700", bytes);
	if ((pid = fork()) < 0) {
		return -1;
	}
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL,
		    MS_REC | MS_PRIVATE, NULL) != 0 || mount("tmpfs",
		    storedir, "tmpfs", 0, opts) != 0) {
			_exit(77);
		}
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND,
		    0600)) >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(tu_bin("kmsd"), "kmsd", "-c", env.conf, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 1500; i++) {
		if (access(sock, F_OK) == 0) {
			env.kmsd = pid;
			return pid;
		}
		if (waitpid(pid, &st, WNOHANG) == pid) {
			return WIFEXITED(st) && WEXITSTATUS(st) == 77 ? 0 : -1;
		}
		usleep(20 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/*
 * A full disk under the store, for real (ENOSPC): writes answer
 * KMSInternalException saying the key store is full, with the request id
 * that the log's line about it carries; reads and the HSM keep working,
 * and every key acknowledged before is still there.
 */
static void
test_full_disk_is_named_in_the_error_and_the_log(void **state)
{
	char storedir[300], extra[400], keys[64][KMS_KEY_ID_LEN + 1];
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	pid_t pid;
	FILE *f;
	int i, n = 0, r = 0;

	assert_int_equal(tu_env_init(&env, NULL), 0);
	snprintf(storedir, sizeof(storedir), "%s/store", env.dir);
	assert_int_equal(mkdir(storedir, 0700), 0);
	snprintf(extra, sizeof(extra), "store = %s/kmsd.db\n", storedir);
	assert_non_null(f = fopen(env.conf, "a"));
	fputs(extra, f);
	fclose(f);
	if ((pid = start_on_small_disk(storedir, 512 * 1024)) == 0) {
		tu_env_destroy(&env);
		skip();	/* no mount namespace here */
	}
	assert_true(pid > 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	kms_client_set_timeout(cl, 10000);
	for (i = 0; i < 2000; i++) {
		if ((r = kms_create_key(cl, &cr, &m, &ei)) != 0) {
			break;
		}
		if (n < 64) {
			snprintf(keys[n++], sizeof(keys[0]), "%s", m.key_id);
		}
		kms_key_metadata_free(&m);
	}
	assert_int_equal(r, KMS_EINTERNAL);
	assert_true(n > 0);
	assert_string_equal(ei.name, "KMSInternalException");
	if (strstr(ei.message, "the key store is unavailable: database or "
	    "disk is full") == NULL) {
		fail_msg("CreateKey on a full disk: %s", ei.message);
	}
	fprintf(stderr, "CreateKey on a full disk, after %d keys: %s\n", i,
	    ei.message);
	assert_logged_for_request(ei.message, "full");
	must_serve(cl, "with the disk full");
	for (i = 0; i < n; i++) {
		if (kms_describe_key(cl, keys[i], NULL, &m, &ei) != 0) {
			fail_msg("key %s made before the disk filled: %s",
			    keys[i], ei.message);
		}
		kms_key_metadata_free(&m);
	}
	kms_client_close(cl);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	tu_env_destroy(&env);
}

static void
test_token_pulled_and_restored_wrapped(void **state)
{
	run_fault_cycle("wrapped");
}

static void
test_token_pulled_and_restored_resident(void **state)
{
	run_fault_cycle("resident");
}

/* One call through client c, which must succeed. */
static void
must_serve(kms_client *c, const char *when)
{
	kms_secret s;
	kms_error_info ei;

	if (kms_generate_random(c, 8, &s, &ei) != 0) {
		fail_msg("%s: %s: %s", when, ei.name, ei.message);
	}
	kms_secret_free(&s);
}

/* One call through a new client, which must succeed. */
static void
serves(const struct tu_env *e, const char *when)
{
	kms_client *c;

	assert_int_equal(kms_client_open(&c, e->endpoint), 0);
	kms_client_set_timeout(c, 15000);
	must_serve(c, when);
	kms_client_close(c);
}

/*
 * Clients killed with calls in flight, forty times.  kmsd must release
 * every connection they had (descriptors and memory), and serve as before.
 * (kmsd on nng 1.5.2 met nng's close deadlock here, after which it never
 * released a closed connection again: 167 to 486 descriptors over thirty
 * such kills by hand.  Its own listener has no such state.)
 */
static void
test_clients_killed_mid_call_leak_nothing(void **state)
{
	struct tu_env e;
	char cmd[1200];
	int i, fds0, fds;
	double t0;

	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	serves(&e, "before the kills");
	fds0 = tu_open_fds(e.kmsd);
	for (i = 0; i < 40; i++) {
		snprintf(cmd, sizeof(cmd), "%s --endpoint %s --op "
		    "generate-data-key --clients 8 --outstanding 4 --keys 2 "
		    "--duration 5 >/dev/null 2>&1 & b=$!; sleep 0.%d; "
		    "kill -9 $b; wait $b", tu_bin("kms-bench"), e.endpoint,
		    2 + i % 3);
		(void)tu_run(cmd, NULL, NULL);
	}
	/* Dead connections are freed after a grace period (under 1 s). */
	t0 = tu_now_s();
	while (tu_now_s() - t0 < 7.0 && tu_open_fds(e.kmsd) > fds0 + 4) {
		usleep(200 * 1000);
	}
	serves(&e, "after the kills");
	fds = tu_open_fds(e.kmsd);
	fprintf(stderr, "kmsd descriptors: %d before, %d after\n", fds0, fds);
	assert_true(fds >= 0 && fds <= fds0 + 4);
	assert_int_equal(tu_env_destroy(&e), 0);
}

/* ---- the module re-initialised under load ---- */

#define RC_KEYS 64		/* four times key_cache_handles: most miss */
#define RC_THREADS 4
#define RC_RECYCLES 8		/* seen in the log before the load stops */
#define RC_MAX_S 90.0		/* ... or the test fails */

static char rc_keys[RC_KEYS][KMS_KEY_ID_LEN + 1];
static atomic_int rc_stop;
static atomic_long rc_calls, rc_bad;
static char rc_first[512];
static pthread_mutex_t rc_mu = PTHREAD_MUTEX_INITIALIZER;

static void
rc_fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&rc_bad, 1) == 0) {
		pthread_mutex_lock(&rc_mu);
		va_start(ap, fmt);
		vsnprintf(rc_first, sizeof(rc_first), fmt, ap);
		va_end(ap);
		pthread_mutex_unlock(&rc_mu);
	}
}

/* Decrypt blob and check it is pt under key k (an id given or not). */
static void
rc_check(kms_client *c, const kms_buf *blob, int k, const char *pt,
    int give_id)
{
	kms_decrypt_req dr = { 0 };
	kms_decrypt_resp dout;
	kms_error_info ei;
	int r;

	dr.ciphertext_blob = blob->data;
	dr.ciphertext_len = blob->len;
	dr.key_id = give_id ? rc_keys[k] : NULL;
	atomic_fetch_add(&rc_calls, 1);
	if ((r = kms_decrypt(c, &dr, &dout, &ei)) != 0) {
		rc_fail("Decrypt under key %d: %d %s: %s", k, r, ei.name,
		    ei.message);
		return;
	}
	if (dout.plaintext.len != strlen(pt) ||
	    memcmp(dout.plaintext.data, pt, strlen(pt)) != 0) {
		rc_fail("Decrypt under key %d returned another plaintext", k);
	} else if (strstr(dout.key_id, rc_keys[k]) == NULL) {
		rc_fail("Decrypt under key %d names %s", k, dout.key_id);
	}
	kms_decrypt_resp_free(&dout);
}

/* Encrypt under keys in a stride, decrypt at once and, a few calls later
 * (after other keys pushed this one out of the cache, perhaps after a
 * recycle), decrypt again. */
static void *
rc_client(void *arg)
{
	int t = (int)(intptr_t)arg, n, k;
	kms_client *c = NULL;
	kms_buf old[RC_KEYS];
	char pts[RC_KEYS][96], pt[96];
	kms_encrypt_req er = { 0 };
	kms_encrypt_resp eo;
	kms_error_info ei;

	memset(old, 0, sizeof(old));
	if (kms_client_open(&c, env.endpoint) != 0) {
		rc_fail("client %d: cannot connect", t);
		return NULL;
	}
	kms_client_set_timeout(c, 20000);
	for (n = 0; !atomic_load(&rc_stop); n++) {
		k = (t * 17 + n * 23) % RC_KEYS;
		snprintf(pt, sizeof(pt), "client %d call %d key %d", t, n, k);
		er.key_id = rc_keys[k];
		er.plaintext = (const uint8_t *)pt;
		er.plaintext_len = strlen(pt);
		atomic_fetch_add(&rc_calls, 1);
		if (kms_encrypt(c, &er, &eo, &ei) != 0) {
			rc_fail("Encrypt under key %d: %s: %s", k, ei.name,
			    ei.message);
			continue;
		}
		rc_check(c, &eo.ciphertext_blob, k, pt, n % 2);
		if (old[k].data != NULL) {
			rc_check(c, &old[k], k, pts[k], 0);
			kms_buf_free(&old[k]);
		}
		old[k] = eo.ciphertext_blob;	/* kept; the rest freed */
		eo.ciphertext_blob.data = NULL;
		eo.ciphertext_blob.len = 0;
		kms_encrypt_resp_free(&eo);
		memcpy(pts[k], pt, sizeof(pt));
	}
	for (k = 0; k < RC_KEYS; k++) {
		kms_buf_free(&old[k]);
	}
	kms_client_close(c);
	return NULL;
}

static void
run_recycle_under_load(const char *storage)
{
	char extra[256];
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	pthread_t thr[RC_THREADS];
	double t0;
	int i, recycles = 0;

	/* The minimum cache, so most calls unwrap (or copy) a version. */
	snprintf(extra, sizeof(extra), "key_storage = %s\n"
	    "key_cache_handles = 16\nhsm_recycle_objects = 200\n", storage);
	assert_int_equal(tu_env_init(&env, extra), 0);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	for (i = 0; i < RC_KEYS; i++) {
		assert_int_equal(kms_create_key(cl, &cr, &m, &ei), 0);
		snprintf(rc_keys[i], sizeof(rc_keys[i]), "%s", m.key_id);
		kms_key_metadata_free(&m);
	}
	atomic_store(&rc_stop, 0);
	atomic_store(&rc_calls, 0);
	atomic_store(&rc_bad, 0);
	rc_first[0] = '\0';
	for (i = 0; i < RC_THREADS; i++) {
		assert_int_equal(pthread_create(&thr[i], NULL, rc_client,
		    (void *)(intptr_t)i), 0);
	}
	t0 = tu_now_s();
	while (tu_now_s() - t0 < RC_MAX_S && atomic_load(&rc_bad) == 0 &&
	    (recycles = tu_log_count(&env, "HSM module re-initialised")) <
	    RC_RECYCLES) {
		usleep(100 * 1000);
	}
	atomic_store(&rc_stop, 1);
	for (i = 0; i < RC_THREADS; i++) {
		pthread_join(thr[i], NULL);
	}
	kms_client_close(cl);
	cl = NULL;
	assert_int_equal(tu_kmsd_stop(&env), 0);
	recycles = tu_log_count(&env, "HSM module re-initialised");
	/* Every recycle is a service event in the audit log, which
	 * verifies. */
	assert_int_equal(tu_audit_count(&env, "\"eventName\":"
	    "\"HsmModuleRecycled\"", "\"sessionObjects\":"), recycles);
	assert_int_equal(tu_audit_verify(&env), 0);
	fprintf(stderr, "# %s: %ld calls in %.1f s, %d recycles, %ld bad%s%s\n",
	    storage, atomic_load(&rc_calls), tu_now_s() - t0, recycles,
	    atomic_load(&rc_bad), rc_first[0] != '\0' ? ": " : "", rc_first);
	assert_int_equal(atomic_load(&rc_bad), 0);
	assert_true(recycles >= RC_RECYCLES);
	assert_false(tu_log_says(&env, "token unavailable"));
	assert_int_equal(tu_env_destroy(&env), 0);
}

static void
test_recycle_under_load_loses_and_confuses_no_key_wrapped(void **state)
{
	run_recycle_under_load("wrapped");
}

static void
test_recycle_under_load_loses_and_confuses_no_key_resident(void **state)
{
	run_recycle_under_load("resident");
}

/*
 * kmsd out of descriptors: 60 peers connect to a kmsd whose limit leaves
 * room for 20.  It must not spin on the listener it cannot accept from,
 * say so once (not once per retry), keep serving the connections it has,
 * and accept again once descriptors are free.
 */
static void
test_out_of_descriptors_pauses_accepting_then_resumes(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl;
	struct tu_env e;
	kms_client *held;
	int fds[60], i, n;
	double cpu0, cpu1;

	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	/* A client connected before the shortage, kept throughout. */
	assert_int_equal(kms_client_open(&held, e.endpoint), 0);
	kms_client_set_timeout(held, 5000);
	must_serve(held, "before");
	assert_true((n = tu_open_fds(e.kmsd)) > 0);
	rl.rlim_cur = (rlim_t)n + 20;
	assert_int_equal(prlimit(e.kmsd, RLIMIT_NOFILE, NULL, &rl), 0);
	rl.rlim_cur = (rlim_t)n + 20;
	assert_int_equal(prlimit(e.kmsd, RLIMIT_NOFILE, &rl, NULL), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
	    e.endpoint + strlen("ipc://"));
	for (i = 0; i < 60; i++) {
		assert_true((fds[i] = socket(AF_UNIX, SOCK_STREAM |
		    SOCK_NONBLOCK, 0)) >= 0);
		(void)connect(fds[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	/* Two seconds of it: kmsd idles (no busy loop on the backlog) and
	 * still serves the client it has. */
	cpu0 = proc_cpu_seconds(e.kmsd);
	sleep(2);
	cpu1 = proc_cpu_seconds(e.kmsd);
	fprintf(stderr, "kmsd CPU while out of descriptors: %.2f s in 2 s\n",
	    cpu1 - cpu0);
	assert_true(cpu1 - cpu0 < 0.5);
	must_serve(held, "during the shortage");
	for (i = 0; i < 60; i++) {
		close(fds[i]);
	}
	/* Free again: a new client is served. */
	serves(&e, "after the shortage");
	assert_int_equal(tu_log_count(&e, "pausing new connections"), 1);
	kms_client_close(held);
	assert_int_equal(tu_env_destroy(&e), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_pulled_and_restored_wrapped),
		cmocka_unit_test(test_token_pulled_and_restored_resident),
		cmocka_unit_test(test_missing_material_makes_the_key_unavailable),
		cmocka_unit_test(test_no_search_on_a_request_path_wrapped),
		cmocka_unit_test(test_no_search_on_a_request_path_resident),
		cmocka_unit_test(test_missing_mechanism_refuses_start),
		cmocka_unit_test(
		    test_hsm_refusal_is_named_in_the_error_and_the_log),
		cmocka_unit_test(
		    test_store_write_failure_is_named_in_the_error_and_the_log),
		cmocka_unit_test(
		    test_full_disk_is_named_in_the_error_and_the_log),
		cmocka_unit_test(test_clients_killed_mid_call_leak_nothing),
		cmocka_unit_test(test_out_of_descriptors_pauses_accepting_then_resumes),
		cmocka_unit_test(test_recycle_under_load_loses_and_confuses_no_key_wrapped),
		cmocka_unit_test(test_recycle_under_load_loses_and_confuses_no_key_resident),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
