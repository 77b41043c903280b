/*
 * test_config.c — kmsd.conf parsing: defaults, every key, and the errors a
 * person gets for a bad file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "kmsd/daemon/config.h"
#include "tests/testutil.h"

static char dir[64];

static const char *
write_conf(const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/kmsd.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, 0644), 0);	/* whatever the umask */
	return path;
}

static void
expect_error(const char *text, const char *needle)
{
	struct config c;
	char err[256];

	config_defaults(&c, dir);
	assert_int_equal(config_load(&c, write_conf(text), err, sizeof(err)),
	    KMS_EVALIDATION);
	if (strstr(err, needle) == NULL) {
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
	}
}

static void
test_config_defaults_derive_from_state_dir(void **state)
{
	struct config c;
	char err[256], pin[128];
	FILE *f;

	config_defaults(&c, dir);
	assert_string_equal(c.state_dir, dir);
	snprintf(pin, sizeof(pin), "%s/user.pin", dir);
	f = fopen(pin, "w");
	fputs("1234\n", f);
	fclose(f);
	chmod(pin, 0600);
	assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
	assert_string_equal(c.pin_file, pin);
	assert_non_null(strstr(c.listen, "ipc://"));
	assert_non_null(strstr(c.listen, "/kmsd.sock"));
	assert_non_null(strstr(c.store, "/kmsd.db"));
	assert_int_equal(c.key_storage, STORAGE_WRAPPED);
	assert_int_equal(c.socket_mode, 0660);
	assert_int_equal(c.nadministrators, 1);
	/* What one peer may make the listener hold is bounded by default. */
	assert_int_equal(c.max_connections_per_uid, 1024);
	assert_int_equal(c.max_buffered_input_mib, 64);
	assert_int_equal(c.test_clock, 0);	/* never moved in production */
}

static void
test_config_relative_state_dir_is_made_absolute(void **state)
{
	struct config c;

	config_defaults(&c, "var");
	assert_true(c.state_dir[0] == '/');
	assert_non_null(strstr(c.state_dir, "/var"));
}

static void
test_config_reads_every_key(void **state)
{
	struct config c;
	char err[256];

	config_defaults(&c, dir);
	assert_int_equal(config_load(&c, write_conf(
	    "# comment\n"
	    "pkcs11_module = /usr/lib/softhsm/libsofthsm2.so\n"
	    "token_label = other   # trailing comment\n"
	    "listen = ipc:///tmp/x.sock\n"
	    "socket_mode = 0600\n"
	    "store = sqlite:/tmp/x.db\n"
	    "key_storage = resident\n"
	    "workers = 3\n"
	    "administrators = user:alice, uid:0 group:wheel\n"
	    "account_id = 123456789012\n"
	    "arn_partition = aws-cn\n"
	    "region = eu-west-3\n"
	    "key_cache_handles = 100\n"
	    "max_encryptions_per_version = 10\n"
	    "hsm_retry_ms = 50\n"
	    "hsm_recycle_objects = 250\n"
	    "batch_hsm_exclusive = no\n"
	    "max_connections_per_uid = 7\n"
	    "max_buffered_input_mib = 4\n"
	    "test_clock = yes\n"), err, sizeof(err)), 0);
	assert_string_equal(c.token_label, "other");
	assert_string_equal(c.listen, "ipc:///tmp/x.sock");
	assert_int_equal(c.socket_mode, 0600);
	assert_string_equal(c.store, "/tmp/x.db");
	assert_int_equal(c.key_storage, STORAGE_RESIDENT);
	assert_int_equal(c.workers, 3);
	assert_int_equal(c.nadministrators, 3);
	assert_true(config_is_admin(&c, "user:alice"));
	assert_true(config_is_admin(&c, "group:wheel"));
	assert_false(config_is_admin(&c, "user:bob"));
	assert_string_equal(c.account_id, "123456789012");
	assert_string_equal(c.arn_partition, "aws-cn");
	assert_string_equal(c.region, "eu-west-3");
	assert_int_equal(c.key_cache_handles, 100);
	assert_int_equal(c.max_encryptions, 10);
	assert_int_equal(c.hsm_retry_ms, 50);
	assert_int_equal(c.hsm_recycle_objects, 250);
	assert_int_equal(c.batch_hsm_exclusive, 0);
	assert_int_equal(c.max_connections_per_uid, 7);
	assert_int_equal(c.max_buffered_input_mib, 4);
	assert_int_equal(c.test_clock, 1);
}

/* The HTTP front end's threads: one reads connections and runs the quick
 * operations, a pool of four the rest; each at least one. */
static void
test_config_http_threads_and_workers(void **state)
{
	struct config c;
	char err[256];

	config_defaults(&c, dir);
	assert_int_equal(c.http_threads, 1);
	assert_int_equal(c.http_workers, 4);
	assert_int_equal(config_load(&c, write_conf("http_threads = 3\n"
	    "http_workers = 7\n"), err, sizeof(err)), 0);
	assert_int_equal(c.http_threads, 3);
	assert_int_equal(c.http_workers, 7);
	expect_error("http_workers = 0\n", "http_workers");
	expect_error("http_threads = 0\n", "http_threads");
}

/* http_refusals_per_minute: 600 by default, 0 (no limit) allowed. */
static void
test_config_http_refusals_per_minute(void **state)
{
	struct config c;
	char err[256];

	config_defaults(&c, dir);
	assert_int_equal(c.http_refusals_per_minute, 600);
	assert_int_equal(config_load(&c, write_conf(
	    "http_refusals_per_minute = 0\n"), err, sizeof(err)), 0);
	assert_int_equal(c.http_refusals_per_minute, 0);
	expect_error("http_refusals_per_minute = -1\n",
	    "http_refusals_per_minute");
	expect_error("http_refusals_per_minute = 1000001\n",
	    "http_refusals_per_minute");
}

/* http_regions: the regions a SigV4 scope may name besides region. */
static void
test_config_http_regions(void **state)
{
	struct config c;
	char err[256];

	config_defaults(&c, dir);
	assert_int_equal(c.nhttp_regions, 0);
	assert_int_equal(config_load(&c, write_conf("http_regions = "
	    "us-east-1, eu-west-3\n"), err, sizeof(err)), 0);
	assert_int_equal(c.nhttp_regions, 2);
	assert_string_equal(c.http_regions[0], "us-east-1");
	assert_string_equal(c.http_regions[1], "eu-west-3");
	assert_string_equal(c.region, "local");
	expect_error("http_regions = us-east-1 EU_WEST\n", "http_regions");
}

static void
test_config_hsm_recycle_objects_defaults_to_a_bound_and_zero_is_never(
    void **state)
{
	struct config c;
	char err[256];

	/* The embedded defaults must bound SoftHSM2's memory. */
	config_defaults(&c, dir);
	assert_int_equal(c.hsm_recycle_objects, 100000);
	assert_int_equal(config_load(&c, write_conf(
	    "hsm_recycle_objects = 0\n"), err, sizeof(err)), 0);
	assert_int_equal(c.hsm_recycle_objects, 0);
	assert_int_equal(config_load(&c, write_conf(
	    "hsm_recycle_objects = 1000000000\n"), err, sizeof(err)), 0);
	assert_int_equal(c.hsm_recycle_objects, 1000000000);
}

static void
test_config_audit_is_on_by_default_and_every_key_reads(void **state)
{
	struct config c;
	char err[256], want[128];

	config_defaults(&c, dir);
	assert_int_equal(c.audit, 1);
	assert_int_equal(c.audit_required, 1);
	assert_int_equal(c.audit_sync, AUDIT_SYNC_GROUP);
	assert_int_equal(c.audit_sync_ms, 50);
	assert_int_equal(c.audit_checkpoint_records, 10000);
	assert_int_equal(c.audit_checkpoint_seconds, 60);
	assert_int_equal(c.audit_rotate_bytes, 64ULL << 20);
	assert_int_equal(c.audit_rotate_seconds, 86400);
	assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/audit", dir);
	assert_string_equal(c.audit_dir, want);

	config_defaults(&c, dir);
	assert_int_equal(config_load(&c, write_conf("audit = no\n"
	    "audit_dir = /var/log/kmsd\naudit_required = no\n"
	    "audit_sync = request\naudit_sync_ms = 7\n"
	    "audit_checkpoint_records = 10\naudit_checkpoint_seconds = 5\n"
	    "audit_rotate_bytes = 1048576\naudit_rotate_seconds = 0\n"), err,
	    sizeof(err)), 0);
	assert_int_equal(c.audit, 0);
	assert_string_equal(c.audit_dir, "/var/log/kmsd");
	assert_int_equal(c.audit_required, 0);
	assert_int_equal(c.audit_sync, AUDIT_SYNC_REQUEST);
	assert_int_equal(c.audit_sync_ms, 7);
	assert_int_equal(c.audit_checkpoint_records, 10);
	assert_int_equal(c.audit_checkpoint_seconds, 5);
	assert_int_equal(c.audit_rotate_bytes, 1048576);
	assert_int_equal(c.audit_rotate_seconds, 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
	assert_string_equal(c.audit_dir, "/var/log/kmsd");
}

static void
test_config_rejects_bad_audit_values(void **state)
{
	expect_error("audit = maybe\n", "audit must be yes or no");
	expect_error("audit_dir = relative/dir\n", "absolute");
	expect_error("audit_required = 1\n", "audit_required must be");
	expect_error("audit_sync = always\n", "group or request");
	expect_error("audit_sync_ms = 0\n", "audit_sync_ms must be 1-10000");
	expect_error("audit_checkpoint_records = 0\n",
	    "audit_checkpoint_records must be");
	expect_error("audit_checkpoint_seconds = 86401\n",
	    "audit_checkpoint_seconds must be");
	expect_error("audit_rotate_bytes = 4096\n",
	    "audit_rotate_bytes must be 65536");
	expect_error("audit_rotate_seconds = -1\n",
	    "audit_rotate_seconds must be");
	expect_error("audit_colour = blue\n", "audit_colour: unknown key");
}

static void
test_config_rejects_bad_lines_with_file_and_line(void **state)
{
	expect_error("workers = 2\nnonsense\n", "kmsd.conf:2: expected");
	expect_error("colour = blue\n", "colour: unknown key");
	expect_error("workers = 0\n", "workers must be");
	expect_error("workers = -1\n", "workers must be");
	expect_error("workers = 9999999999999999999999\n", "workers must be");
	expect_error("key_storage = clear\n", "wrapped or resident");
	expect_error("listen = tcp://1.2.3.4:5\n", "ipc://");
	expect_error("account_id = 12\n", "12 digits");
	expect_error("region = EU:WEST\n", "region must be");
	expect_error("arn_partition = \n", "arn_partition must be");
	expect_error("socket_mode = 999\n", "octal");
	expect_error("token_label = 012345678901234567890123456789012\n",
	    "1-32");
	expect_error("state_dir = relative\n", "absolute");
	expect_error("max_encryptions_per_version = 4294967296\n",
	    "max_encryptions");
	expect_error("hsm_recycle_objects = 99\n",
	    "hsm_recycle_objects must be 0 (never) or 100-1000000000");
	expect_error("hsm_recycle_objects = 1000000001\n",
	    "hsm_recycle_objects must be");
	expect_error("hsm_recycle_objects = -5\n",
	    "hsm_recycle_objects must be");
	expect_error("hsm_recycle_objects = lots\n",
	    "hsm_recycle_objects must be");
	expect_error("max_connections_per_uid = 0\n",
	    "max_connections_per_uid must be 1-1000000");
	expect_error("max_connections_per_uid = 1000001\n",
	    "max_connections_per_uid must be");
	expect_error("max_connections_per_uid = many\n",
	    "max_connections_per_uid must be");
	/* Below 4 MiB, a few whole messages would not fit. */
	expect_error("max_buffered_input_mib = 3\n",
	    "max_buffered_input_mib must be 4-65536");
	expect_error("max_buffered_input_mib = 65537\n",
	    "max_buffered_input_mib must be");
	expect_error("max_buffered_input_mib = -64\n",
	    "max_buffered_input_mib must be");
	expect_error("test_clock = 1\n", "test_clock must be yes or no");
}

static void
test_config_missing_file_is_an_error(void **state)
{
	struct config c;
	char err[256];

	config_defaults(&c, dir);
	assert_int_equal(config_load(&c, "/nonexistent/kmsd.conf", err,
	    sizeof(err)), KMS_EVALIDATION);
	assert_non_null(strstr(err, "/nonexistent/kmsd.conf"));
}

static void
test_config_finish_refuses_world_readable_pin(void **state)
{
	struct config c;
	char err[256], pin[128];
	FILE *f;

	snprintf(pin, sizeof(pin), "%s/open.pin", dir);
	f = fopen(pin, "w");
	fputs("1234\n", f);
	fclose(f);
	chmod(pin, 0644);
	config_defaults(&c, dir);
	snprintf(c.pin_file, sizeof(c.pin_file), "%s", pin);
	assert_int_equal(config_finish(&c, err, sizeof(err)), KMS_EVALIDATION);
	assert_non_null(strstr(err, "chmod 600"));
}

static void
test_config_finish_wants_recycling_above_twice_the_handle_cache(
    void **state)
{
	struct config c;
	char err[256];

	config_defaults(&c, dir);
	c.key_cache_handles = 60000;	/* default hsm_recycle_objects 100000 */
	assert_int_equal(config_finish(&c, err, sizeof(err)), KMS_EVALIDATION);
	assert_non_null(strstr(err, "at least twice key_cache_handles"));
	c.hsm_recycle_objects = 0;	/* never: no constraint */
	err[0] = '\0';
	if (config_finish(&c, err, sizeof(err)) != 0) {
		assert_null(strstr(err, "hsm_recycle_objects"));
	}
}

static void
test_config_finish_names_a_missing_module(void **state)
{
	struct config c;
	char err[256];

	config_defaults(&c, dir);
	snprintf(c.pkcs11_module, sizeof(c.pkcs11_module), "/no/such.so");
	assert_int_equal(config_finish(&c, err, sizeof(err)), KMS_EVALIDATION);
	assert_non_null(strstr(err, "/no/such.so"));
}

/* A state dir of its own, with a good PIN and a token directory named
 * by its softhsm2.conf, for the trust tests. */
static void
trust_dir(char *sd, size_t sdlen, struct config *c)
{
	char path[256];
	FILE *f;

	snprintf(sd, sdlen, "%s/trust.XXXXXX", dir);
	assert_non_null(mkdtemp(sd));
	snprintf(path, sizeof(path), "%s/user.pin", sd);
	assert_non_null(f = fopen(path, "w"));
	fputs("1234\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/tokens", sd);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/tokens/token-1", sd);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/softhsm2.conf", sd);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "directories.tokendir = %s/tokens\n", sd);
	fclose(f);
	assert_int_equal(chmod(path, 0644), 0);
	config_defaults(c, sd);
}

/* config_finish on sd after chmod(sub, mode); the error must name the
 * path and the fix. */
static void
refused_after_chmod(const char *sub, mode_t mode, const char *fix)
{
	struct config c;
	char sd[128], path[300], err[512];

	trust_dir(sd, sizeof(sd), &c);
	err[0] = '\0';
	assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s%s%s", sd, sub[0] ? "/" : "", sub);
	assert_int_equal(chmod(path, mode), 0);
	config_defaults(&c, sd);
	assert_int_equal(config_finish(&c, err, sizeof(err)), KMS_EVALIDATION);
	if (strstr(err, path) == NULL || strstr(err, fix) == NULL) {
		fail_msg("mode %04o on %s: \"%s\" does not name the path and "
		    "\"%s\"", (unsigned)mode, path, err, fix);
	}
	/* The fix it names works. */
	assert_int_equal(chmod(path, strcmp(fix, "chmod 600") == 0 ? 0600 :
	    mode & ~(mode_t)(S_IWGRP | S_IWOTH)), 0);
	config_defaults(&c, sd);
	if (config_finish(&c, err, sizeof(err)) != 0) {
		fail_msg("after the fix: %s", err);
	}
}

static void
test_config_refuses_a_state_dir_others_may_write(void **state)
{
	refused_after_chmod("", 01777, "chmod go-w");
	refused_after_chmod("", 0777, "chmod go-w");
	refused_after_chmod("", 0770, "chmod go-w");	/* the clients' group */
	refused_after_chmod("", 0702, "chmod go-w");
}

static void
test_config_refuses_pin_files_open_to_others(void **state)
{
	refused_after_chmod("user.pin", 0640, "chmod 600");
	refused_after_chmod("user.pin", 0604, "chmod 600");
	refused_after_chmod("user.pin", 0620, "chmod 600");
}

static void
test_config_refuses_a_token_directory_others_may_write(void **state)
{
	refused_after_chmod("tokens", 0777, "chmod go-w");
	refused_after_chmod("tokens", 0730, "chmod go-w");
	refused_after_chmod("tokens/token-1", 0707, "chmod go-w");
	refused_after_chmod("softhsm2.conf", 0666, "chmod go-w");
}

/* A store kept elsewhere: its directory is trusted no less. */
static void
test_config_refuses_a_store_directory_others_may_write(void **state)
{
	struct config c;
	char sd[128], db[200], err[512];

	trust_dir(sd, sizeof(sd), &c);
	snprintf(db, sizeof(db), "%s/db", sd);
	assert_int_equal(mkdir(db, 0700), 0);
	snprintf(c.store, sizeof(c.store), "%s/kmsd.db", db);
	assert_int_equal(config_finish(&c, err, sizeof(err)), 0);
	assert_int_equal(chmod(db, 01777), 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)),
	    KMS_EVALIDATION);
	assert_non_null(strstr(err, db));
	assert_non_null(strstr(err, "chmod go-w"));
}

/* Group and others may read and search the state directory (clients
 * reach the socket through it); that is no reason to refuse. */
static void
test_config_accepts_a_state_dir_others_may_read(void **state)
{
	struct config c;
	char sd[128], err[512];

	trust_dir(sd, sizeof(sd), &c);
	assert_int_equal(chmod(sd, 0755), 0);
	if (config_finish(&c, err, sizeof(err)) != 0) {
		fail_msg("%s", err);
	}
}

static void
test_config_load_refuses_a_config_file_others_may_write(void **state)
{
	struct config c;
	char err[512];
	const char *path = write_conf("workers = 2\n");

	assert_int_equal(chmod(path, 0664), 0);
	config_defaults(&c, dir);
	assert_int_equal(config_load(&c, path, err, sizeof(err)),
	    KMS_EVALIDATION);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "chmod go-w"));
	assert_int_equal(c.workers, 8);		/* nothing of it was read */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.workers, 2);
}

/* Owned by someone else, even unwritable, it is theirs to change. */
static void
test_config_refuses_a_state_dir_owned_by_another_user(void **state)
{
	struct config c;
	char sd[128], err[512];

	if (geteuid() != 0) {
		skip();
	}
	trust_dir(sd, sizeof(sd), &c);
	assert_int_equal(chown(sd, 4242, 4242), 0);
	assert_int_equal(config_finish(&c, err, sizeof(err)),
	    KMS_EVALIDATION);
	assert_non_null(strstr(err, "chown"));
	assert_non_null(strstr(err, sd));
	assert_int_equal(chown(sd, 0, 0), 0);
}

/*
 * The daemon itself: with <state_dir>/kmsd.conf in a directory others may
 * write, kmsd refuses to start (before reading the file) and says why;
 * scripts/hsm-init, given such a directory, takes write access from
 * group and others (and makes its tokens directory 0700), after which
 * kmsd starts.
 */
static void
test_kmsd_and_hsm_init_on_a_world_writable_state_dir(void **state)
{
	char sd[128], cmd[1024], path[300], *out = NULL, *err = NULL;
	struct stat st;
	FILE *f;
	int r;

	snprintf(sd, sizeof(sd), "%s/shared.XXXXXX", dir);
	assert_non_null(mkdtemp(sd));
	assert_int_equal(chmod(sd, 01777), 0);
	snprintf(cmd, sizeof(cmd), "KMS_BIN_DIR=%s scripts/hsm-init %s",
	    getenv("KMS_BIN_DIR") ? getenv("KMS_BIN_DIR") : "bin", sd);
	if ((r = tu_run(cmd, &out, &err)) != 0) {
		fail_msg("hsm-init: %d: %s%s", r, out, err);
	}
	free(out);
	free(err);
	assert_int_equal(stat(sd, &st), 0);
	assert_int_equal(st.st_mode & (S_IWGRP | S_IWOTH | S_ISVTX), 0);
	snprintf(path, sizeof(path), "%s/tokens", sd);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	snprintf(path, sizeof(path), "%s/kmsd.conf", sd);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "workers = 2\n");
	fclose(f);
	assert_int_equal(chmod(path, 0644), 0);
	snprintf(cmd, sizeof(cmd), "%s --state-dir %s --check-config",
	    tu_bin("kmsd"), sd);
	assert_int_equal(tu_run(cmd, &out, &err), 0);
	free(out);
	free(err);
	assert_int_equal(chmod(sd, 0777), 0);
	assert_int_equal(tu_run(cmd, &out, &err), 1);
	if (strstr(err, sd) == NULL || strstr(err, "chmod go-w") == NULL) {
		fail_msg("kmsd's refusal: %s", err);
	}
	free(out);
	free(err);
	/* And hsm-init on the existing token mends it again. */
	snprintf(cmd, sizeof(cmd), "KMS_BIN_DIR=%s scripts/hsm-init %s",
	    getenv("KMS_BIN_DIR") ? getenv("KMS_BIN_DIR") : "bin", sd);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	snprintf(cmd, sizeof(cmd), "%s --state-dir %s --check-config",
	    tu_bin("kmsd"), sd);
	assert_int_equal(tu_run(cmd, &out, &err), 0);
	free(out);
	free(err);
}

/* A path that does not fit is refused, never cut short (a shorter path
 * names another file): given, or derived from state_dir. */
static void
test_config_refuses_paths_too_long_to_keep(void **state)
{
	char text[3000], err[512];
	struct config c;

	snprintf(text, sizeof(text), "store = /%01500d\n", 0);
	expect_error(text, "store: path too long");
	snprintf(text, sizeof(text), "pin_file = /%01100d\n", 0);
	expect_error(text, "pin_file: path too long");
	/* A state_dir that fits, whose derived paths would not. */
	config_defaults(&c, dir);
	memset(c.state_dir, 'a', 1020);
	c.state_dir[0] = '/';
	c.state_dir[1020] = '\0';
	assert_int_equal(config_finish(&c, err, sizeof(err)), KMS_EVALIDATION);
	assert_non_null(strstr(err, "too long"));
	assert_string_equal(c.store, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults_derive_from_state_dir),
		cmocka_unit_test(test_config_relative_state_dir_is_made_absolute),
		cmocka_unit_test(test_config_reads_every_key),
		cmocka_unit_test(test_config_http_threads_and_workers),
		cmocka_unit_test(test_config_http_refusals_per_minute),
		cmocka_unit_test(test_config_http_regions),
		cmocka_unit_test(test_config_hsm_recycle_objects_defaults_to_a_bound_and_zero_is_never),
		cmocka_unit_test(test_config_rejects_bad_lines_with_file_and_line),
		cmocka_unit_test(test_config_audit_is_on_by_default_and_every_key_reads),
		cmocka_unit_test(test_config_rejects_bad_audit_values),
		cmocka_unit_test(test_config_missing_file_is_an_error),
		cmocka_unit_test(test_config_finish_refuses_world_readable_pin),
		cmocka_unit_test(test_config_finish_names_a_missing_module),
		cmocka_unit_test(
		    test_config_refuses_a_state_dir_others_may_write),
		cmocka_unit_test(test_config_refuses_pin_files_open_to_others),
		cmocka_unit_test(
		    test_config_refuses_a_token_directory_others_may_write),
		cmocka_unit_test(test_config_accepts_a_state_dir_others_may_read),
		cmocka_unit_test(
		    test_config_refuses_a_store_directory_others_may_write),
		cmocka_unit_test(
		    test_config_load_refuses_a_config_file_others_may_write),
		cmocka_unit_test(
		    test_config_refuses_a_state_dir_owned_by_another_user),
		cmocka_unit_test(
		    test_kmsd_and_hsm_init_on_a_world_writable_state_dir),
		cmocka_unit_test(test_config_finish_wants_recycling_above_twice_the_handle_cache),
		cmocka_unit_test(test_config_refuses_paths_too_long_to_keep),
	};
	int r;

	snprintf(dir, sizeof(dir), "/tmp/kmsconf.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		return 1;
	}
	r = cmocka_run_group_tests(tests, NULL, NULL);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0) {
			r = 1;
		}
	}
	return r;
}
