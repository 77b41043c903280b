/*
 * test_kmsctl.c — kmsctl without a daemon: help for every command, usage
 * errors exit 252 before anything is sent, and an absent daemon is a quick
 * exit 255 with the AWS CLI's "Could not connect" line.  (The daemon-backed
 * behaviour is test_cli.)
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

#include "tests/testutil.h"

/* Run kmsctl against an endpoint where nobody listens. */
static int
ctl(char **out, char **err, const char *fmt, ...)
{
	char args[2048], cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "KMS_ENDPOINT=ipc:///nonexistent/kmsd.sock "
	    "%s --cli-connect-timeout 1 %s", tu_bin("kmsctl"), args);
	return tu_run(cmd, out, err);
}

static const struct {
	const char *command;
	const char *options[6];
} commands[] = {
	{ "create-key", { "--description", "--key-usage", "--key-spec",
	    "--policy", "--bypass-policy-lockout-safety-check", "--tags" } },
	{ "describe-key", { "--key-id", "--grant-tokens" } },
	{ "list-keys", { "--limit", "--starting-token" } },
	{ "update-key-description", { "--key-id", "--description" } },
	{ "enable-key", { "--key-id" } },
	{ "disable-key", { "--key-id" } },
	{ "encrypt", { "--key-id", "--plaintext", "--encryption-context",
	    "--grant-tokens" } },
	{ "decrypt", { "--ciphertext-blob", "--key-id",
	    "--encryption-context" } },
	{ "re-encrypt", { "--ciphertext-blob", "--destination-key-id",
	    "--source-key-id", "--source-encryption-context",
	    "--destination-encryption-context" } },
	{ "generate-data-key", { "--key-id", "--key-spec",
	    "--number-of-bytes", "--encryption-context" } },
	{ "generate-data-key-without-plaintext", { "--key-id", "--key-spec",
	    "--number-of-bytes" } },
	{ "generate-random", { "--number-of-bytes" } },
	{ "call", { "<request>" } },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
test_kmsctl_help_lists_every_command(void **state)
{
	char *out = NULL;
	size_t i;
	const char *forms[] = { "--help", "help" };
	size_t f;

	for (f = 0; f < 2; f++) {
		assert_int_equal(ctl(&out, NULL, "%s", forms[f]), 0);
		for (i = 0; i < NCOMMANDS; i++) {
			if (strstr(out, commands[i].command) == NULL) {
				fail_msg("%s lacks %s", forms[f],
				    commands[i].command);
			}
		}
		free(out);
	}
}

static void
test_kmsctl_every_command_has_help_with_its_options(void **state)
{
	char *out = NULL;
	size_t i, j, f;
	const char *pre[] = { "", "", "help " };
	const char *post[] = { " --help", " help", "" };

	for (i = 0; i < NCOMMANDS; i++) {
		for (f = 0; f < 3; f++) {
			char args[128];
			snprintf(args, sizeof(args), "%s%s%s", pre[f],
			    commands[i].command, post[f]);
			assert_int_equal(ctl(&out, NULL, "%s", args), 0);
			assert_non_null(strstr(out, "Synopsis"));
			for (j = 0; j < 6 && commands[i].options[j]; j++) {
				if (strstr(out, commands[i].options[j]) ==
				    NULL) {
					fail_msg("%s: no %s", args,
					    commands[i].options[j]);
				}
			}
			free(out);
		}
	}
}

static void
test_kmsctl_usage_errors_exit_252_before_sending(void **state)
{
	static const char *bad[] = {
		"",
		"no-such-command",
		"describe-key",				/* required */
		"describe-key --key-id",		/* no value */
		"describe-key --key-id k --bogus 1",	/* unknown */
		"describe-key --key-id k extra",
		"--output yaml describe-key --key-id k",
		"describe-key --key-id k --query 'a..b'",
		"describe-key --key-id k --query 'a[x]'",
		"describe-key --key-id k --query 'a[]x'",
		"describe-key --key-id k --query 'a[*'",
		"describe-key --key-id k --query 'a[].'",
		"describe-key --key-id k --query '.a'",
		"create-grant --key-id k --grantee-principal uid:1",
		"create-grant --key-id k --grantee-principal uid:1 "
		    "--operations Decrypt --constraints 'Subset={a=b'",
		"put-key-policy --key-id k --policy fileb:///nonexistent/p",
		"tag-resource --key-id k --tags TagKey=a",
		"list-grants --key-id k --limit lots",
		"list-keys --limit many",
		"list-keys --limit 0",
		"generate-random --number-of-bytes -1",
		"generate-random --number-of-bytes 12abc",
		"encrypt --key-id k --plaintext 'not base64!'",
		"encrypt --key-id k --plaintext fileb:///nonexistent/x",
		"encrypt --key-id k --plaintext aGk= --encryption-context "
		    "novalue",
		"encrypt --key-id k --plaintext aGk= --encryption-context =v",
		"encrypt --key-id k --plaintext aGk= --encryption-context "
		    "'{\"a\":1}'",
		"encrypt --key-id k --plaintext aGk= --encryption-context "
		    "'{\"a\":\"1\",\"a\":\"2\"}'",
		"encrypt --key-id k --plaintext aGk= --grant-tokens",
		"create-key --tags TagKey=a",
		"decrypt --key-id k",
		"re-encrypt --ciphertext-blob aGk=",
		"call",
	};
	char *err = NULL;
	size_t i;
	int r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = ctl(NULL, &err, "%s", bad[i]);
		if (r != 252 || strstr(err, "kmsctl: error:") == NULL) {
			fail_msg("'%s' → %d: %s", bad[i], r, err);
		}
		free(err);
	}
}

static void
test_kmsctl_absent_daemon_is_a_quick_255(void **state)
{
	char *err = NULL;
	time_t t0 = time(NULL);

	assert_int_equal(ctl(NULL, &err, "describe-key --key-id k"), 255);
	assert_non_null(strstr(err, "Could not connect to the endpoint URL"));
	assert_true(time(NULL) - t0 < 10);
	free(err);
	/* Options are taken before and after the command alike. */
	assert_int_equal(ctl(NULL, &err, "describe-key --output text "
	    "--key-id k --query KeyMetadata.KeyId"), 255);
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kmsctl_help_lists_every_command),
		cmocka_unit_test(test_kmsctl_every_command_has_help_with_its_options),
		cmocka_unit_test(test_kmsctl_usage_errors_exit_252_before_sending),
		cmocka_unit_test(test_kmsctl_absent_daemon_is_a_quick_255),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
