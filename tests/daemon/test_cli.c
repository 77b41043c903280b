/*
 * test_cli.c — kmsctl against a real kmsd, as a person types it: the README
 * session (create a key, data key, encrypt and decrypt with a context,
 * disable, the refusal, enable), AWS CLI output shapes, exit codes and
 * error text.
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

#include "tests/testutil.h"

static struct tu_env env;
static char key[64];
static char kmsctl[512];

/* Run kmsctl with args; returns exit status, output in *out and *err. */
static int
ctl(char **out, char **err, const char *fmt, ...)
{
	char args[2048], cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "cd %s && KMS_ENDPOINT=%s %s %s", env.dir,
	    env.endpoint, kmsctl, args);
	return tu_run(cmd, out, err);
}

static int
setup(void **state)
{
	char *out = NULL, cwd[256];

	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return -1;
	}
	snprintf(kmsctl, sizeof(kmsctl), "%s/%s", cwd, tu_bin("kmsctl"));
	if (tu_env_init(&env, NULL) != 0 || tu_kmsd_start(&env) != 0) {
		return -1;
	}
	if (ctl(&out, NULL, "create-key --description cli --query "
	    "KeyMetadata.KeyId --output text") != 0) {
		free(out);
		return -1;
	}
	snprintf(key, sizeof(key), "%s", tu_trimnl(out));
	free(out);
	return strlen(key) == 36 ? 0 : -1;
}

static int
teardown(void **state)
{
	return tu_env_destroy(&env) == 0 ? 0 : -1;
}

static void
test_cli_readme_session(void **state)
{
	char *out = NULL, *err = NULL;
	json_t *j;

	/* A data key with a context: AWS CLI JSON, binary fields base64. */
	assert_int_equal(ctl(&out, &err, "generate-data-key --key-id %s "
	    "--key-spec AES_256 --encryption-context purpose=demo", key), 0);
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_true(json_is_string(json_object_get(j, "CiphertextBlob")));
	assert_true(json_is_string(json_object_get(j, "Plaintext")));
	assert_non_null(strstr(json_string_value(json_object_get(j, "KeyId")),
	    key));
	json_decref(j);
	free(out);
	free(err);

	/* Encrypt a file with a context, decrypt it back, raw. */
	assert_int_equal(ctl(NULL, NULL, "encrypt --key-id %s --plaintext "
	    "fileb://%s/kmsd.conf --encryption-context tenant=acme,app=web "
	    "--outfile %s/conf.enc", key, env.dir, env.dir), 0);
	assert_int_equal(ctl(NULL, &err, "decrypt --ciphertext-blob "
	    "fileb://%s/conf.enc --encryption-context app=web,tenant=acme "
	    "--outfile %s/conf.dec", env.dir, env.dir), 0);
	free(err);
	{
		char cmd[1024];
		snprintf(cmd, sizeof(cmd), "cmp %s/kmsd.conf %s/conf.dec",
		    env.dir, env.dir);
		assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	}
	/* Wrong context: the AWS CLI's error line and exit status 254. */
	assert_int_equal(ctl(NULL, &err, "decrypt --ciphertext-blob "
	    "fileb://%s/conf.enc --encryption-context tenant=evil", env.dir),
	    254);
	assert_non_null(strstr(err, "An error occurred "
	    "(InvalidCiphertextException) when calling the Decrypt operation"));
	free(err);

	/* Disable, the refusal, enable. */
	assert_int_equal(ctl(NULL, NULL, "disable-key --key-id %s", key), 0);
	assert_int_equal(ctl(NULL, &err, "decrypt --ciphertext-blob "
	    "fileb://%s/conf.enc --encryption-context app=web,tenant=acme",
	    env.dir), 254);
	assert_non_null(strstr(err, "An error occurred (DisabledException) "
	    "when calling the Decrypt operation"));
	free(err);
	assert_int_equal(ctl(&out, NULL, "describe-key --key-id %s --query "
	    "KeyMetadata.KeyState --output text", key), 0);
	assert_string_equal(tu_trimnl(out), "Disabled");
	free(out);
	assert_int_equal(ctl(NULL, NULL, "enable-key --key-id %s", key), 0);
	assert_int_equal(ctl(NULL, NULL, "decrypt --ciphertext-blob "
	    "fileb://%s/conf.enc --encryption-context app=web,tenant=acme",
	    env.dir), 0);
}

static void
test_cli_other_operations(void **state)
{
	char *out = NULL;
	json_t *j;

	assert_int_equal(ctl(&out, NULL, "generate-random --number-of-bytes "
	    "24 --query Plaintext --output text"), 0);
	assert_int_equal(strlen(tu_trimnl(out)), 32);	/* base64 of 24 */
	free(out);
	assert_int_equal(ctl(&out, NULL, "list-keys --limit 1"), 0);
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "Keys")), 1);
	json_decref(j);
	free(out);
	assert_int_equal(ctl(NULL, NULL, "update-key-description --key-id %s "
	    "--description renamed", key), 0);
	assert_int_equal(ctl(&out, NULL, "describe-key --key-id %s --query "
	    "KeyMetadata.Description --output text", key), 0);
	assert_string_equal(tu_trimnl(out), "renamed");
	free(out);
	assert_int_equal(ctl(NULL, NULL, "generate-data-key-without-plaintext "
	    "--key-id %s --number-of-bytes 16 --outfile %s/dk.enc", key,
	    env.dir), 0);
	assert_int_equal(ctl(NULL, NULL, "re-encrypt --ciphertext-blob "
	    "fileb://%s/dk.enc --destination-key-id %s --outfile %s/dk2.enc",
	    env.dir, key, env.dir), 0);
	assert_int_equal(ctl(&out, NULL, "decrypt --ciphertext-blob "
	    "fileb://%s/dk2.enc --key-id %s --query KeyId --output text",
	    env.dir, key), 0);
	assert_non_null(strstr(out, key));
	free(out);
}

static void
test_cli_errors_and_usage(void **state)
{
	char *err = NULL, *out = NULL;

	assert_int_equal(ctl(NULL, &err, "describe-key --key-id "
	    "00000000-0000-4000-8000-000000000000"), 254);
	assert_non_null(strstr(err, "An error occurred (NotFoundException) "
	    "when calling the DescribeKey operation"));
	free(err);
	assert_int_equal(ctl(NULL, &err, "generate-random --number-of-bytes "
	    "1025"), 254);
	assert_non_null(strstr(err, "(ValidationException)"));
	free(err);
	assert_int_equal(ctl(NULL, NULL, "no-such-command"), 252);
	assert_int_equal(ctl(NULL, NULL, "encrypt --key-id"), 252);
	assert_int_equal(ctl(&out, NULL, "--help"), 0);
	assert_non_null(strstr(out, "generate-data-key"));
	free(out);
	assert_int_equal(ctl(&out, NULL, "encrypt --help"), 0);
	assert_non_null(strstr(out, "--encryption-context"));
	free(out);
}

static void
test_cli_finds_the_daemon_from_the_project_directory(void **state)
{
	char cmd[2048], *out = NULL;

	/* A project dir whose var/ is the daemon's state dir. */
	snprintf(cmd, sizeof(cmd), "set -e; p=%s/proj; mkdir -p $p/src; "
	    "ln -sfn %s $p/var; cd $p/src; unset KMS_ENDPOINT; "
	    "%s describe-key --key-id %s --query KeyMetadata.KeyId "
	    "--output text", env.dir, env.dir, kmsctl, key);
	assert_int_equal(tu_run(cmd, &out, NULL), 0);
	assert_string_equal(tu_trimnl(out), key);
	free(out);
}

/* The README's transcript is what a real run prints (key ids, blobs and
 * dates masked): scripts/readme-session --check runs the session on a
 * throwaway token and compares. */
static void
test_cli_readme_transcript_is_a_real_run(void **state)
{
	char *out = NULL;
	int rc = tu_run("scripts/readme-session --check", &out, NULL);

	if (rc != 0) {
		fprintf(stderr, "%s", out != NULL ? out : "");
	}
	assert_int_equal(rc, 0);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_readme_session),
		cmocka_unit_test(test_cli_readme_transcript_is_a_real_run),
		cmocka_unit_test(test_cli_other_operations),
		cmocka_unit_test(test_cli_errors_and_usage),
		cmocka_unit_test(test_cli_finds_the_daemon_from_the_project_directory),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
