/*
 * test_authz.c — authorisation enforced on a real kmsd, with two real
 * callers: the test process (root, the configured administrator, "alice"
 * below) and a child that drops to uid/gid 65534 ("bob": user:nobody,
 * group:nogroup) before it connects, so the kernel reports another uid.
 */
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "kms.h"
#include "tests/testutil.h"

#define BOB 65534

static struct tu_env env;
static kms_client *alice;
static char key[64], arn[256], bob_name[64], bob_group[64];

/* Send req as alice; returns the reply object (caller decrefs) and sets
 * *err to the AWS error name or "". */
static json_t *
call(kms_client *c, const char *req, char *err)
{
	kms_error_info ei;
	char *reply = NULL;
	size_t n;
	json_t *j;
	int r;

	r = kms_call_json(c, req, strlen(req), &reply, &n, &ei);
	snprintf(err, 64, "%s", r == 0 ? "" : ei.name);
	j = reply ? json_loads(reply, 0, NULL) : NULL;
	kms_free(reply);
	return j;
}

static json_t *
alice_call(const char *err_want, const char *fmt, ...)
{
	char req[8192], err[64];
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	j = call(alice, req, err);
	if (strcmp(err, err_want) != 0) {
		char *s = j ? json_dumps(j, 0) : NULL;
		fail_msg("alice %s → %s %s (wanted %s)", req, err, s ? s : "",
		    err_want[0] ? err_want : "success");
	}
	return j;
}

/*
 * Run req as bob in a child that has dropped to uid 65534; returns the
 * error name ("" on success) and the reply text in reply (if not NULL).
 */
static void
as_bob(char *err, char *reply, size_t replysz, const char *fmt, ...)
{
	char req[8192], buf[8192];
	int fds[2], st;
	ssize_t n, got = 0;
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	assert_int_equal(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		char self[512];
		ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
		close(fds[0]);
		dup2(fds[1], 1);
		if (sl <= 0) {
			_exit(5);
		}
		self[sl] = '\0';
		/* A new process image under another uid: as a user would. */
		execl("/usr/bin/setpriv", "setpriv", "--reuid=65534",
		    "--regid=65534", "--clear-groups", self, "--call",
		    env.endpoint, req, (char *)NULL);
		_exit(6);
	}
	close(fds[1]);
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - (size_t)got)) >
	    0) {
		got += n;
	}
	buf[got] = '\0';
	close(fds[0]);
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	{
		char *nl = strchr(buf, '\n');
		assert_non_null(nl);
		*nl = '\0';
		snprintf(err, 64, "%s", buf);
		if (reply != NULL) {
			snprintf(reply, replysz, "%s", nl + 1);
		}
	}
}

static char *
encrypt_b64(const char *ctx)
{
	json_t *j = alice_call("", "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"c2VjcmV0\",\"EncryptionContext\":%s}", key, ctx);
	char *s = strdup(json_string_value(json_object_get(j,
	    "CiphertextBlob")));

	json_decref(j);
	return s;
}

static int
setup(void **state)
{
	struct passwd *pw = getpwuid(BOB);
	struct group *gr = getgrgid(BOB);
	char err[64];
	json_t *j;

	if (getuid() != 0) {
		fprintf(stderr, "test_authz needs root to run a second uid\n");
		return -1;
	}
	snprintf(bob_name, sizeof(bob_name), "user:%s",
	    pw ? pw->pw_name : "nobody");
	snprintf(bob_group, sizeof(bob_group), "group:%s",
	    gr ? gr->gr_name : "nogroup");
	if (tu_env_init(&env, "socket_mode = 0666\nadministrators = "
	    "user:root") != 0) {
		return -1;
	}
	chmod(env.dir, 0711);
	if (tu_kmsd_start(&env) != 0 ||
	    kms_client_open(&alice, env.endpoint) != 0) {
		return -1;
	}
	j = call(alice, "{\"Action\":\"CreateKey\"}", err);
	if (j == NULL || err[0] != '\0') {
		return -1;
	}
	snprintf(key, sizeof(key), "%s", json_string_value(json_object_get(
	    json_object_get(j, "KeyMetadata"), "KeyId")));
	snprintf(arn, sizeof(arn), "%s", json_string_value(json_object_get(
	    json_object_get(j, "KeyMetadata"), "Arn")));
	json_decref(j);
	return 0;
}

static int
teardown(void **state)
{
	kms_client_close(alice);
	return tu_env_destroy(&env) == 0 ? 0 : -1;
}

static void
test_authz_a_key_of_one_user_is_refused_to_the_other(void **state)
{
	char err[64], reply[8192];

	as_bob(err, reply, sizeof(reply), "{\"Action\":\"Encrypt\","
	    "\"KeyId\":\"%s\",\"Plaintext\":\"aGk=\"}", key);
	assert_string_equal(err, "AccessDeniedException");
	/* The message names caller, operation and key, not the policy. */
	assert_non_null(strstr(reply, bob_name));
	assert_non_null(strstr(reply, "kms:Encrypt"));
	assert_non_null(strstr(reply, key));
	assert_null(strstr(reply, "Statement"));
	as_bob(err, NULL, 0, "{\"Action\":\"DescribeKey\",\"KeyId\":\"%s\"}",
	    key);
	assert_string_equal(err, "AccessDeniedException");
	/* A principal named in the request body is ignored. */
	as_bob(err, NULL, 0, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\",\"Principal\":\"user:root\","
	    "\"CallerPrincipal\":\"uid:0\",\"uid\":0}", key);
	assert_string_equal(err, "AccessDeniedException");
}

static void
test_authz_grant_lets_the_other_decrypt_only_with_its_context(void **state)
{
	char err[64], *web = encrypt_b64("{\"app\":\"web\"}"),
	    *db = encrypt_b64("{\"app\":\"db\"}");
	json_t *g;

	g = alice_call("", "{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\","
	    "\"GranteePrincipal\":\"%s\",\"Operations\":[\"Decrypt\"],"
	    "\"Constraints\":{\"EncryptionContextEquals\":{\"app\":\"web\"}}}",
	    key, bob_name);
	assert_non_null(json_object_get(g, "GrantToken"));
	as_bob(err, NULL, 0, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"app\":\"web\"}}", web);
	assert_string_equal(err, "");
	/* Constraint keys compare case-insensitively, values exactly. */
	as_bob(err, NULL, 0, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"app\":\"db\"}}", db);
	assert_string_equal(err, "AccessDeniedException");
	as_bob(err, NULL, 0, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\",\"EncryptionContext\":{\"app\":\"web\"}}",
	    key);
	assert_string_equal(err, "AccessDeniedException");
	/* With the grant's token too; a forged token is refused. */
	as_bob(err, NULL, 0, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"app\":\"web\"},\"GrantTokens\":[\"%s\"]}",
	    web, json_string_value(json_object_get(g, "GrantToken")));
	assert_string_equal(err, "");
	as_bob(err, NULL, 0, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"app\":\"web\"},\"GrantTokens\":"
	    "[\"kmsgt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]}", web);
	assert_string_equal(err, "InvalidGrantTokenException");
	as_bob(err, NULL, 0, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"app\":\"web\"},\"GrantTokens\":"
	    "[\"garbage\"]}", web);
	assert_string_equal(err, "InvalidGrantTokenException");
	/* Revoked: gone at once. */
	json_decref(alice_call("", "{\"Action\":\"RevokeGrant\",\"KeyId\":"
	    "\"%s\",\"GrantId\":\"%s\"}", key, json_string_value(
	    json_object_get(g, "GrantId"))));
	as_bob(err, NULL, 0, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"app\":\"web\"}}", web);
	assert_string_equal(err, "AccessDeniedException");
	json_decref(g);
	free(web);
	free(db);
}

static void
test_authz_grant_delegation_only_narrows(void **state)
{
	char err[64], reply[8192];
	json_t *g;

	g = alice_call("", "{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\","
	    "\"GranteePrincipal\":\"%s\",\"Operations\":[\"Decrypt\","
	    "\"CreateGrant\"],\"Constraints\":{\"EncryptionContextSubset\":"
	    "{\"app\":\"web\"}}}", key, bob_name);
	/* Tighter: fewer operations, more context required. */
	as_bob(err, reply, sizeof(reply), "{\"Action\":\"CreateGrant\","
	    "\"KeyId\":\"%s\",\"GranteePrincipal\":\"uid:12345\","
	    "\"Operations\":[\"Decrypt\"],\"Constraints\":"
	    "{\"EncryptionContextSubset\":{\"app\":\"web\",\"tenant\":\"x\"}}}",
	    key);
	assert_string_equal(err, "");
	/* Wider operations, or no constraint at all: refused. */
	as_bob(err, NULL, 0, "{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\","
	    "\"GranteePrincipal\":\"uid:12345\",\"Operations\":[\"Decrypt\","
	    "\"Encrypt\"],\"Constraints\":{\"EncryptionContextSubset\":"
	    "{\"app\":\"web\"}}}", key);
	assert_string_equal(err, "AccessDeniedException");
	as_bob(err, NULL, 0, "{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\","
	    "\"GranteePrincipal\":\"uid:12345\",\"Operations\":[\"Decrypt\"]}",
	    key);
	assert_string_equal(err, "AccessDeniedException");
	json_decref(alice_call("", "{\"Action\":\"RevokeGrant\",\"KeyId\":"
	    "\"%s\",\"GrantId\":\"%s\"}", key, json_string_value(
	    json_object_get(g, "GrantId"))));
	json_decref(g);
}

static void
test_authz_retire_by_the_retiring_principal(void **state)
{
	char err[64], reply[8192];
	json_t *g;

	g = alice_call("", "{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\","
	    "\"GranteePrincipal\":\"uid:4242\",\"RetiringPrincipal\":\"%s\","
	    "\"Operations\":[\"Encrypt\"],\"Name\":\"to-retire\"}", key,
	    bob_name);
	as_bob(err, reply, sizeof(reply), "{\"Action\":\"ListRetirableGrants\","
	    "\"RetiringPrincipal\":\"%s\"}", bob_name);
	assert_string_equal(err, "");
	assert_non_null(strstr(reply, json_string_value(json_object_get(g,
	    "GrantId"))));
	as_bob(err, NULL, 0, "{\"Action\":\"ListRetirableGrants\","
	    "\"RetiringPrincipal\":\"user:root\"}");
	assert_string_equal(err, "AccessDeniedException");
	as_bob(err, NULL, 0, "{\"Action\":\"RetireGrant\",\"GrantToken\":"
	    "\"%s\"}", json_string_value(json_object_get(g, "GrantToken")));
	assert_string_equal(err, "");
	/* Its token is dead now. */
	as_bob(err, NULL, 0, "{\"Action\":\"RetireGrant\",\"GrantToken\":"
	    "\"%s\"}", json_string_value(json_object_get(g, "GrantToken")));
	assert_string_equal(err, "InvalidGrantTokenException");
	json_decref(alice_call("InvalidGrantIdException", "{\"Action\":"
	    "\"RevokeGrant\",\"KeyId\":\"%s\",\"GrantId\":\"nope\"}", key));
	json_decref(alice_call("NotFoundException", "{\"Action\":"
	    "\"RevokeGrant\",\"KeyId\":\"%s\",\"GrantId\":\"%s\"}", key,
	    json_string_value(json_object_get(g, "GrantId"))));
	json_decref(g);
}

static void
put_policy(const char *statements)
{
	json_decref(alice_call("", "{\"Action\":\"PutKeyPolicy\",\"KeyId\":"
	    "\"%s\",\"PolicyName\":\"default\",\"Policy\":\"{\\\"Version\\\":"
	    "\\\"2012-10-17\\\",\\\"Statement\\\":[{\\\"Effect\\\":"
	    "\\\"Allow\\\",\\\"Principal\\\":{\\\"KMS\\\":\\\"user:root\\\"},"
	    "\\\"Action\\\":\\\"kms:*\\\",\\\"Resource\\\":\\\"*\\\"}%s]}\"}",
	    key, statements));
}

static void
test_authz_policy_conditions_groups_and_aliases(void **state)
{
	char err[64], st[2048], *fin = encrypt_b64("{\"dept\":\"finance\"}"),
	    *sales = encrypt_b64("{\"dept\":\"sales\"}");

	snprintf(st, sizeof(st), ",{\\\"Effect\\\":\\\"Allow\\\","
	    "\\\"Principal\\\":{\\\"KMS\\\":\\\"%s\\\"},\\\"Action\\\":"
	    "\\\"kms:Decrypt\\\",\\\"Resource\\\":\\\"*\\\",\\\"Condition\\\":"
	    "{\\\"StringEquals\\\":{\\\"kms:EncryptionContext:dept\\\":"
	    "\\\"finance\\\"}}},{\\\"Effect\\\":\\\"Allow\\\",\\\"Principal\\\":"
	    "\\\"%s\\\",\\\"Action\\\":\\\"kms:Encrypt\\\",\\\"Resource\\\":"
	    "\\\"*\\\",\\\"Condition\\\":{\\\"StringEquals\\\":"
	    "{\\\"kms:RequestAlias\\\":\\\"alias/bobs-key\\\"}}}", bob_name,
	    bob_group);
	put_policy(st);
	as_bob(err, NULL, 0, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"dept\":\"finance\"}}", fin);
	assert_string_equal(err, "");
	as_bob(err, NULL, 0, "{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"%s\","
	    "\"EncryptionContext\":{\"dept\":\"sales\"}}", sales);
	assert_string_equal(err, "AccessDeniedException");
	/* Encrypt only through the alias, as a member of the group. */
	json_decref(alice_call("", "{\"Action\":\"CreateAlias\",\"AliasName\":"
	    "\"alias/bobs-key\",\"TargetKeyId\":\"%s\"}", key));
	as_bob(err, NULL, 0, "{\"Action\":\"Encrypt\",\"KeyId\":"
	    "\"alias/bobs-key\",\"Plaintext\":\"aGk=\"}");
	assert_string_equal(err, "");
	as_bob(err, NULL, 0, "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", key);
	assert_string_equal(err, "AccessDeniedException");
	json_decref(alice_call("", "{\"Action\":\"DeleteAlias\",\"AliasName\":"
	    "\"alias/bobs-key\"}"));
	put_policy("");
	free(fin);
	free(sales);
}

static void
test_authz_lockout_check_and_administrators(void **state)
{
	json_t *j;

	/* A policy that would leave the caller unable to PutKeyPolicy. */
	json_decref(alice_call("MalformedPolicyDocumentException", "{\"Action\":"
	    "\"PutKeyPolicy\",\"KeyId\":\"%s\",\"Policy\":\"{\\\"Statement\\\":"
	    "[{\\\"Effect\\\":\\\"Allow\\\",\\\"Principal\\\":\\\"uid:777\\\","
	    "\\\"Action\\\":\\\"kms:*\\\",\\\"Resource\\\":\\\"*\\\"}]}\"}", key));
	json_decref(alice_call("", "{\"Action\":\"PutKeyPolicy\",\"KeyId\":"
	    "\"%s\",\"BypassPolicyLockoutSafetyCheck\":true,\"Policy\":"
	    "\"{\\\"Statement\\\":[{\\\"Effect\\\":\\\"Allow\\\","
	    "\\\"Principal\\\":\\\"uid:777\\\",\\\"Action\\\":\\\"kms:*\\\","
	    "\\\"Resource\\\":\\\"*\\\"}]}\"}", key));
	/* Locked out of crypto, but an administrator keeps the key. */
	json_decref(alice_call("AccessDeniedException", "{\"Action\":"
	    "\"Encrypt\",\"KeyId\":\"%s\",\"Plaintext\":\"aGk=\"}", key));
	j = alice_call("", "{\"Action\":\"GetKeyPolicy\",\"KeyId\":\"%s\"}",
	    key);
	assert_non_null(strstr(json_string_value(json_object_get(j, "Policy")),
	    "uid:777"));
	json_decref(j);
	json_decref(alice_call("", "{\"Action\":\"DescribeKey\",\"KeyId\":"
	    "\"%s\"}", key));
	put_policy("");
	json_decref(alice_call("", "{\"Action\":\"Encrypt\",\"KeyId\":\"%s\","
	    "\"Plaintext\":\"aGk=\"}", key));
	/* Malformed policies name the problem. */
	j = alice_call("MalformedPolicyDocumentException", "{\"Action\":"
	    "\"PutKeyPolicy\",\"KeyId\":\"%s\",\"Policy\":\"{\\\"Statement\\\":"
	    "[{\\\"Effect\\\":\\\"Allow\\\",\\\"Principal\\\":\\\"*\\\","
	    "\\\"Action\\\":\\\"kms:Encrypt\\\",\\\"Resource\\\":\\\"*\\\","
	    "\\\"Condition\\\":{\\\"StringEqualz\\\":{\\\"kms:CallerUid\\\":"
	    "\\\"1\\\"}}}]}\"}", key);
	assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
	    "StringEqualz"));
	json_decref(j);
}

static void
test_authz_aliases_and_tags_follow_aws_rules(void **state)
{
	json_t *j;

	json_decref(alice_call("", "{\"Action\":\"CreateAlias\",\"AliasName\":"
	    "\"alias/orders\",\"TargetKeyId\":\"%s\"}", arn));
	json_decref(alice_call("AlreadyExistsException", "{\"Action\":"
	    "\"CreateAlias\",\"AliasName\":\"alias/orders\",\"TargetKeyId\":"
	    "\"%s\"}", key));
	json_decref(alice_call("NotAuthorizedException", "{\"Action\":"
	    "\"CreateAlias\",\"AliasName\":\"alias/aws/x\",\"TargetKeyId\":"
	    "\"%s\"}", key));
	json_decref(alice_call("ValidationException", "{\"Action\":"
	    "\"CreateAlias\",\"AliasName\":\"orders\",\"TargetKeyId\":"
	    "\"%s\"}", key));
	json_decref(alice_call("ValidationException", "{\"Action\":"
	    "\"CreateAlias\",\"AliasName\":\"alias/a b\",\"TargetKeyId\":"
	    "\"%s\"}", key));
	j = alice_call("", "{\"Action\":\"DescribeKey\",\"KeyId\":"
	    "\"alias/orders\"}");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    j, "KeyMetadata"), "KeyId")), key);
	json_decref(j);
	/* Management operations refuse an alias as KeyId. */
	json_decref(alice_call("InvalidArnException", "{\"Action\":"
	    "\"DisableKey\",\"KeyId\":\"alias/orders\"}"));
	j = alice_call("", "{\"Action\":\"ListAliases\",\"KeyId\":\"%s\"}", key);
	assert_int_equal(json_array_size(json_object_get(j, "Aliases")), 1);
	json_decref(j);
	json_decref(alice_call("", "{\"Action\":\"TagResource\",\"KeyId\":"
	    "\"%s\",\"Tags\":[{\"TagKey\":\"team\",\"TagValue\":\"blue\"}]}",
	    key));
	json_decref(alice_call("TagException", "{\"Action\":\"TagResource\","
	    "\"KeyId\":\"%s\",\"Tags\":[{\"TagKey\":\"aws:x\",\"TagValue\":"
	    "\"1\"}]}", key));
	j = alice_call("", "{\"Action\":\"ListResourceTags\",\"KeyId\":\"%s\"}",
	    key);
	assert_int_equal(json_array_size(json_object_get(j, "Tags")), 1);
	json_decref(j);
	json_decref(alice_call("", "{\"Action\":\"UntagResource\",\"KeyId\":"
	    "\"%s\",\"TagKeys\":[\"team\"]}", key));
	json_decref(alice_call("", "{\"Action\":\"DeleteAlias\",\"AliasName\":"
	    "\"alias/orders\"}"));
	json_decref(alice_call("NotFoundException", "{\"Action\":\"Encrypt\","
	    "\"KeyId\":\"alias/orders\",\"Plaintext\":\"aGk=\"}"));
}

/* Child mode: one raw call, as whoever we were started as. */
static int
call_mode(const char *endpoint, const char *req)
{
	kms_client *c;
	char e[64], *s;
	json_t *j;

	if (kms_client_open(&c, endpoint) != 0) {
		return 4;
	}
	j = call(c, req, e);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	printf("%s\n%s", e, s ? s : "");
	free(s);
	json_decref(j);
	kms_client_close(c);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--call") == 0) {
		return call_mode(argv[2], argv[3]);
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_authz_a_key_of_one_user_is_refused_to_the_other),
		cmocka_unit_test(test_authz_grant_lets_the_other_decrypt_only_with_its_context),
		cmocka_unit_test(test_authz_grant_delegation_only_narrows),
		cmocka_unit_test(test_authz_retire_by_the_retiring_principal),
		cmocka_unit_test(test_authz_policy_conditions_groups_and_aliases),
		cmocka_unit_test(test_authz_lockout_check_and_administrators),
		cmocka_unit_test(test_authz_aliases_and_tags_follow_aws_rules),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
