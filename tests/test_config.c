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
	return path;
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
	    "key_cache_handles = 100\n"
	    "max_encryptions_per_version = 10\n"
	    "hsm_retry_ms = 50\n"
	    "hsm_recycle_objects = 250\n"
	    "batch_hsm_exclusive = no\n"), err, sizeof(err)), 0);
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
	assert_int_equal(c.key_cache_handles, 100);
	assert_int_equal(c.max_encryptions, 10);
	assert_int_equal(c.hsm_retry_ms, 50);
	assert_int_equal(c.hsm_recycle_objects, 250);
	assert_int_equal(c.batch_hsm_exclusive, 0);
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
test_config_audit_is_on_by_default_and_every_key_reads(void **state)
{
	struct config c;
	char err[256], want[128];

	config_defaults(&c, dir);
	assert_int_equal(c.audit, 1);
	assert_int_equal(c.audit_required, 1);
	assert_int_equal(c.audit_sync, AUDIT_SYNC_GROUP);
	assert_int_equal(c.audit_sync_ms, 50);
	assert_int_equal(c.audit_checkpoint_records, 1000);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults_derive_from_state_dir),
		cmocka_unit_test(test_config_relative_state_dir_is_made_absolute),
		cmocka_unit_test(test_config_reads_every_key),
		cmocka_unit_test(test_config_hsm_recycle_objects_defaults_to_a_bound_and_zero_is_never),
		cmocka_unit_test(test_config_rejects_bad_lines_with_file_and_line),
		cmocka_unit_test(test_config_audit_is_on_by_default_and_every_key_reads),
		cmocka_unit_test(test_config_rejects_bad_audit_values),
		cmocka_unit_test(test_config_missing_file_is_an_error),
		cmocka_unit_test(test_config_finish_refuses_world_readable_pin),
		cmocka_unit_test(test_config_finish_names_a_missing_module),
		cmocka_unit_test(test_config_finish_wants_recycling_above_twice_the_handle_cache),
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
