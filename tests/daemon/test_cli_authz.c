/*
 * test_cli_authz.c — the policy, grant, alias and tag commands of kmsctl
 * against a real kmsd, typed as a person types them, by two real callers:
 * the test process (root, an administrator: "alice") and kmsctl started
 * under uid/gid 65534 with setpriv ("bob": user:nobody).
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
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/testutil.h"

static struct tu_env env;
static char key[64], key2[64], kmsctl[512], bob[64];

/* Run kmsctl as alice (root) or as bob (uid 65534); exit status back. */
static int
vrun(int as_bob, char **out, char **err, const char *fmt, va_list ap)
{
	char args[4096], cmd[8192];

	vsnprintf(args, sizeof(args), fmt, ap);
	snprintf(cmd, sizeof(cmd), "cd %s && KMS_ENDPOINT=%s %s%s %s",
	    env.dir, env.endpoint, as_bob ? "setpriv --reuid=65534 "
	    "--regid=65534 --clear-groups " : "", kmsctl, args);
	return tu_run(cmd, out, err);
}

static int
alice(char **out, char **err, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vrun(0, out, err, fmt, ap);
	va_end(ap);
	return r;
}

static int
bob_(char **out, char **err, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vrun(1, out, err, fmt, ap);
	va_end(ap);
	return r;
}

/* Run as alice, wanting success; the output parsed as JSON. */
static json_t *
alice_json(const char *fmt, ...)
{
	char *out = NULL, *err = NULL;
	json_t *j;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vrun(0, &out, &err, fmt, ap);
	va_end(ap);
	if (r != 0) {
		fail_msg("kmsctl exited %d: %s", r, err ? err : "");
	}
	j = json_loads(out, 0, NULL);
	if (j == NULL) {
		fail_msg("not JSON: %s", out);
	}
	free(out);
	free(err);
	return j;
}

static int
setup(void **state)
{
	char *out = NULL, cwd[256], cmd[1024];
	struct passwd *pw = getpwuid(65534);

	if (getuid() != 0) {
		fprintf(stderr, "test_cli_authz needs root to run a second "
		    "uid\n");
		return -1;
	}
	snprintf(bob, sizeof(bob), "user:%s", pw ? pw->pw_name : "nobody");
	if (getcwd(cwd, sizeof(cwd)) == NULL || tu_env_init(&env,
	    "socket_mode = 0666\nadministrators = user:root") != 0) {
		return -1;
	}
	chmod(env.dir, 0711);
	/* bob runs a copy he can reach whatever the clone's modes are. */
	snprintf(kmsctl, sizeof(kmsctl), "%s/kmsctl", env.dir);
	snprintf(cmd, sizeof(cmd), "install -m 0755 %s/%s %s", cwd,
	    tu_bin("kmsctl"), kmsctl);
	if (tu_run(cmd, NULL, NULL) != 0 || tu_kmsd_start(&env) != 0) {
		return -1;
	}
	if (alice(&out, NULL, "create-key --description first --query "
	    "KeyMetadata.KeyId --output text") != 0) {
		return -1;
	}
	snprintf(key, sizeof(key), "%s", tu_trimnl(out));
	free(out);
	if (alice(&out, NULL, "create-key --description second --query "
	    "KeyMetadata.KeyId --output text") != 0) {
		return -1;
	}
	snprintf(key2, sizeof(key2), "%s", tu_trimnl(out));
	free(out);
	return strlen(key) == 36 && strlen(key2) == 36 ? 0 : -1;
}

static int
teardown(void **state)
{
	return tu_env_destroy(&env) == 0 ? 0 : -1;
}

static void
test_cli_authz_refused_to_the_other_user(void **state)
{
	char *err = NULL;

	assert_int_equal(bob_(NULL, &err, "encrypt --key-id %s --plaintext "
	    "aGk=", key), 254);
	assert_non_null(strstr(err, "An error occurred "
	    "(AccessDeniedException) when calling the Encrypt operation"));
	assert_non_null(strstr(err, bob));
	assert_non_null(strstr(err, key));
	free(err);
	assert_int_equal(bob_(NULL, &err, "get-key-policy --key-id %s", key),
	    254);
	assert_non_null(strstr(err, "(AccessDeniedException) when calling "
	    "the GetKeyPolicy operation"));
	free(err);
}

static void
test_cli_authz_grants(void **state)
{
	char *out = NULL, *err = NULL, gid[128], tok[1024];
	json_t *j, *g;

	/* Encrypt and Decrypt for bob, only with app=web in the context. */
	j = alice_json("create-grant --key-id %s --grantee-principal %s "
	    "--operations Encrypt Decrypt --retiring-principal user:root "
	    "--constraints EncryptionContextSubset={app=web} --name web",
	    key, bob);
	snprintf(gid, sizeof(gid), "%s", json_string_value(json_object_get(j,
	    "GrantId")));
	assert_true(strlen(gid) > 0);
	assert_non_null(json_string_value(json_object_get(j, "GrantToken")));
	json_decref(j);
	assert_int_equal(bob_(&out, NULL, "encrypt --key-id %s --plaintext "
	    "aGk= --encryption-context app=web,user=7 --query KeyId --output "
	    "text", key), 0);
	assert_non_null(strstr(out, key));
	free(out);
	assert_int_equal(alice(NULL, NULL, "encrypt --key-id %s --plaintext "
	    "aGk= --encryption-context app=web --outfile %s/web.enc", key,
	    env.dir), 0);
	{
		char p[512];
		snprintf(p, sizeof(p), "%s/web.enc", env.dir);
		chmod(p, 0644);
	}
	assert_int_equal(bob_(&out, NULL, "decrypt --ciphertext-blob "
	    "fileb://%s/web.enc --encryption-context app=web --query "
	    "Plaintext --output text", env.dir), 0);
	assert_string_equal(tu_trimnl(out), "aGk=");
	free(out);
	assert_int_equal(bob_(NULL, &err, "encrypt --key-id %s --plaintext "
	    "aGk= --encryption-context app=evil", key), 254);
	assert_non_null(strstr(err, "(AccessDeniedException)"));
	free(err);

	/* The same grant again with the same name: the same grant id. */
	assert_int_equal(alice(&out, NULL, "create-grant --key-id %s "
	    "--grantee-principal %s --operations Encrypt Decrypt "
	    "--retiring-principal user:root --constraints "
	    "'{\"EncryptionContextSubset\":{\"app\":\"web\"}}' --name web "
	    "--query GrantId --output text", key, bob), 0);
	assert_string_equal(tu_trimnl(out), gid);
	free(out);

	/* Listed, with its constraint and an ISO 8601 date. */
	j = alice_json("list-grants --key-id %s --grant-id %s", key, gid);
	g = json_array_get(json_object_get(j, "Grants"), 0);
	assert_non_null(g);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    json_object_get(g, "Constraints"), "EncryptionContextSubset"),
	    "app")), "web");
	assert_non_null(strstr(json_string_value(json_object_get(g,
	    "CreationDate")), "T"));
	assert_null(json_object_get(j, "Truncated"));
	json_decref(j);
	j = alice_json("list-retirable-grants --retiring-principal user:root");
	assert_true(json_array_size(json_object_get(j, "Grants")) >= 1);
	json_decref(j);

	/* A GenerateDataKey grant works at once through its token. */
	assert_int_equal(alice(&out, NULL, "create-grant --key-id %s "
	    "--grantee-principal %s --operations GenerateDataKey "
	    "--retiring-principal user:root --query GrantToken --output text",
	    key, bob), 0);
	snprintf(tok, sizeof(tok), "%s", tu_trimnl(out));
	free(out);
	assert_int_equal(bob_(NULL, NULL, "generate-data-key --key-id %s "
	    "--key-spec AES_256 --grant-tokens %s", key, tok), 0);
	/* Retired by token: the token is refused from then on. */
	assert_int_equal(alice(&out, NULL, "retire-grant --grant-token %s",
	    tok), 0);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(bob_(NULL, &err, "generate-data-key --key-id %s "
	    "--key-spec AES_256 --grant-tokens %s", key, tok), 254);
	assert_non_null(strstr(err, "(InvalidGrantTokenException)"));
	free(err);

	/* Revoked by id: bob is refused again. */
	assert_int_equal(alice(NULL, NULL, "revoke-grant --key-id %s "
	    "--grant-id %s", key, gid), 0);
	assert_int_equal(bob_(NULL, &err, "encrypt --key-id %s --plaintext "
	    "aGk= --encryption-context app=web", key), 254);
	assert_non_null(strstr(err, "(AccessDeniedException)"));
	free(err);
	assert_int_equal(alice(NULL, &err, "revoke-grant --key-id %s "
	    "--grant-id %s", key, gid), 254);
	assert_non_null(strstr(err, "when calling the RevokeGrant operation"));
	free(err);

	/* Usage errors: exit 252, nothing sent. */
	assert_int_equal(alice(NULL, &err, "create-grant --key-id %s "
	    "--grantee-principal %s", key, bob), 252);
	assert_non_null(strstr(err, "--operations"));
	free(err);
	assert_int_equal(alice(NULL, &err, "create-grant --key-id %s "
	    "--grantee-principal %s --operations Decrypt --constraints "
	    "EncryptionContextSubset=app", key, bob), 252);
	assert_non_null(strstr(err, "--constraints"));
	free(err);
}

static void
test_cli_authz_key_policies(void **state)
{
	char *out = NULL, *err = NULL, path[512], doc[2048];
	json_t *j, *pol;
	FILE *f;

	j = alice_json("list-key-policies --key-id %s", key);
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    j, "PolicyNames"), 0)), "default");
	json_decref(j);
	/* The default policy: the creator and the administrators. */
	assert_int_equal(alice(&out, NULL, "get-key-policy --key-id %s "
	    "--policy-name default --query Policy --output text", key), 0);
	pol = json_loads(out, 0, NULL);
	assert_non_null(pol);
	assert_true(json_is_array(json_object_get(pol, "Statement")));
	json_decref(pol);
	free(out);

	/* A policy from a file: bob may Encrypt only with dept=finance. */
	snprintf(doc, sizeof(doc), "{\"Version\":\"2012-10-17\","
	    "\"Statement\":[{\"Sid\":\"admin\",\"Effect\":\"Allow\","
	    "\"Principal\":{\"KMS\":\"user:root\"},\"Action\":\"kms:*\","
	    "\"Resource\":\"*\"},{\"Sid\":\"bob\",\"Effect\":\"Allow\","
	    "\"Principal\":{\"KMS\":[\"%s\"]},\"Action\":\"kms:Encrypt\","
	    "\"Resource\":\"*\",\"Condition\":{\"StringEquals\":"
	    "{\"kms:EncryptionContext:dept\":\"finance\"}}}]}", bob);
	snprintf(path, sizeof(path), "%s/policy.json", env.dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(doc, f);
	fclose(f);
	assert_int_equal(alice(&out, NULL, "put-key-policy --key-id %s "
	    "--policy-name default --policy file://%s", key2, path), 0);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(bob_(NULL, NULL, "encrypt --key-id %s --plaintext "
	    "aGk= --encryption-context dept=finance", key2), 0);
	assert_int_equal(bob_(NULL, &err, "encrypt --key-id %s --plaintext "
	    "aGk= --encryption-context dept=sales", key2), 254);
	assert_non_null(strstr(err, "(AccessDeniedException)"));
	free(err);

	/* The lockout check, and its bypass. */
	assert_int_equal(alice(NULL, &err, "put-key-policy --key-id %s "
	    "--policy '{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":"
	    "\"uid:777\",\"Action\":\"kms:*\",\"Resource\":\"*\"}]}'", key2),
	    254);
	assert_non_null(strstr(err, "An error occurred "
	    "(MalformedPolicyDocumentException) when calling the PutKeyPolicy "
	    "operation"));
	free(err);
	assert_int_equal(alice(NULL, NULL, "put-key-policy --key-id %s "
	    "--bypass-policy-lockout-safety-check --policy '{\"Statement\":"
	    "[{\"Effect\":\"Allow\",\"Principal\":\"uid:777\",\"Action\":"
	    "\"kms:*\",\"Resource\":\"*\"}]}'", key2), 0);
	/* An administrator still reads and replaces it. */
	assert_int_equal(alice(&out, NULL, "get-key-policy --key-id %s "
	    "--query Policy --output text", key2), 0);
	assert_non_null(strstr(out, "uid:777"));
	free(out);
	assert_int_equal(alice(NULL, NULL, "put-key-policy --key-id %s "
	    "--policy fileb://%s", key2, path), 0);

	/* A malformed policy names the problem. */
	assert_int_equal(alice(NULL, &err, "put-key-policy --key-id %s "
	    "--policy '{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":"
	    "\"*\",\"Action\":\"kms:Encrypt\",\"Resource\":\"*\","
	    "\"Condition\":{\"StringEqualz\":{\"kms:CallerUid\":\"1\"}}}]}'",
	    key2), 254);
	assert_non_null(strstr(err, "StringEqualz"));
	free(err);
}

static void
test_cli_authz_aliases(void **state)
{
	char *out = NULL, *err = NULL;
	json_t *j, *a;
	size_t i;

	assert_int_equal(alice(&out, NULL, "create-alias --alias-name "
	    "alias/cli-app --target-key-id %s", key), 0);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(alice(NULL, NULL, "create-alias --alias-name "
	    "alias/cli-other --target-key-id %s", key), 0);
	/* The alias works as a KeyId. */
	assert_int_equal(alice(&out, NULL, "encrypt --key-id alias/cli-app "
	    "--plaintext aGk= --query KeyId --output text"), 0);
	assert_non_null(strstr(out, key));
	free(out);
	/* AWS's errors for a taken name and a reserved prefix. */
	assert_int_equal(alice(NULL, &err, "create-alias --alias-name "
	    "alias/cli-app --target-key-id %s", key2), 254);
	assert_non_null(strstr(err, "(AlreadyExistsException) when calling "
	    "the CreateAlias operation"));
	free(err);
	assert_int_equal(alice(NULL, &err, "create-alias --alias-name "
	    "alias/aws/x --target-key-id %s", key), 254);
	assert_non_null(strstr(err, "(NotAuthorizedException)"));
	free(err);

	/* One page at a time with --limit; every page without. */
	j = alice_json("list-aliases --key-id %s --limit 1", key);
	assert_int_equal(json_array_size(json_object_get(j, "Aliases")), 1);
	assert_true(json_is_true(json_object_get(j, "Truncated")));
	assert_non_null(json_string_value(json_object_get(j, "NextMarker")));
	json_decref(j);
	/* A projection over the merged pages, as text. */
	assert_int_equal(alice(&out, NULL, "list-aliases --key-id %s --query "
	    "'Aliases[].AliasName' --output text", key), 0);
	assert_string_equal(tu_trimnl(out), "alias/cli-app\talias/cli-other");
	free(out);
	j = alice_json("list-aliases --key-id %s", key);
	assert_int_equal(json_array_size(json_object_get(j, "Aliases")), 2);
	assert_null(json_object_get(j, "NextMarker"));
	json_array_foreach(json_object_get(j, "Aliases"), i, a) {
		assert_non_null(strstr(json_string_value(json_object_get(a,
		    "AliasArn")), ":alias/cli-"));
	}
	json_decref(j);

	/* Moved to the other key, then deleted. */
	assert_int_equal(alice(NULL, NULL, "update-alias --alias-name "
	    "alias/cli-app --target-key-id %s", key2), 0);
	assert_int_equal(alice(&out, NULL, "describe-key --key-id "
	    "alias/cli-app --query KeyMetadata.KeyId --output text"), 0);
	assert_string_equal(tu_trimnl(out), key2);
	free(out);
	assert_int_equal(alice(NULL, NULL, "delete-alias --alias-name "
	    "alias/cli-app"), 0);
	assert_int_equal(alice(NULL, NULL, "delete-alias --alias-name "
	    "alias/cli-other"), 0);
	assert_int_equal(alice(NULL, &err, "describe-key --key-id "
	    "alias/cli-app"), 254);
	assert_non_null(strstr(err, "(NotFoundException)"));
	free(err);
}

static void
test_cli_authz_tags(void **state)
{
	char *out = NULL, *err = NULL;
	json_t *j;

	assert_int_equal(alice(&out, NULL, "tag-resource --key-id %s --tags "
	    "TagKey=team,TagValue=blue TagKey=env,TagValue=prod", key), 0);
	assert_string_equal(out, "");
	free(out);
	j = alice_json("list-resource-tags --key-id %s", key);
	assert_int_equal(json_array_size(json_object_get(j, "Tags")), 2);
	json_decref(j);
	assert_int_equal(alice(NULL, NULL, "untag-resource --key-id %s "
	    "--tag-keys env", key), 0);
	assert_int_equal(alice(&out, NULL, "list-resource-tags --key-id %s "
	    "--query Tags[0].TagValue --output text", key), 0);
	assert_string_equal(tu_trimnl(out), "blue");
	free(out);
	assert_int_equal(alice(NULL, &err, "tag-resource --key-id %s --tags "
	    "TagKey=aws:x,TagValue=1", key), 254);
	assert_non_null(strstr(err, "An error occurred (TagException) when "
	    "calling the TagResource operation"));
	free(err);
	assert_int_equal(alice(NULL, &err, "tag-resource --key-id %s --tags "
	    "team", key), 252);
	free(err);
	/* bob may not read another user's tags. */
	assert_int_equal(bob_(NULL, &err, "list-resource-tags --key-id %s",
	    key), 254);
	assert_non_null(strstr(err, "(AccessDeniedException)"));
	free(err);
}

static void
test_cli_authz_help(void **state)
{
	static const char *const cmds[] = { "get-key-policy",
	    "put-key-policy", "list-key-policies", "create-grant",
	    "list-grants", "list-retirable-grants", "retire-grant",
	    "revoke-grant", "create-alias", "update-alias", "delete-alias",
	    "list-aliases", "tag-resource", "untag-resource",
	    "list-resource-tags" };
	char *out = NULL;
	size_t i;

	assert_int_equal(alice(&out, NULL, "help"), 0);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_non_null(strstr(out, cmds[i]));
	}
	free(out);
	assert_int_equal(alice(&out, NULL, "create-grant help"), 0);
	assert_non_null(strstr(out, "--constraints"));
	assert_non_null(strstr(out, "--grantee-principal"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_authz_refused_to_the_other_user),
		cmocka_unit_test(test_cli_authz_grants),
		cmocka_unit_test(test_cli_authz_key_policies),
		cmocka_unit_test(test_cli_authz_aliases),
		cmocka_unit_test(test_cli_authz_tags),
		cmocka_unit_test(test_cli_authz_help),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
