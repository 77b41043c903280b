/*
 * test_validate.c — kmsd/dispatch/validate.c without a daemon: AWS's
 * validation messages for requests that break the API model's
 * constraints (every violation, in the model's member order, members in
 * lowerCamelCase), nothing for requests that keep them or whose members
 * have the wrong JSON type (a SerializationException, the operation's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/err.h"
#include "kmsd/dispatch/validate.h"

/* validate_request on the JSON text req; the message in msg. */
static int
run(const char *op, const char *req, char *msg, size_t msgsz)
{
	json_t *j = json_loads(req, 0, NULL);
	int r;

	assert_non_null(j);
	msg[0] = '\0';
	r = validate_request(op, j, msg, msgsz);
	json_decref(j);
	return r;
}

static void
expect(const char *op, const char *req, const char *want)
{
	char msg[1024];

	assert_int_equal(run(op, req, msg, sizeof(msg)), KMS_EVALIDATION);
	assert_string_equal(msg, want);
}

static void
expect_ok(const char *op, const char *req)
{
	char msg[1024];

	assert_int_equal(run(op, req, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
}

static void
test_validate_names_every_violation_in_model_order(void **state)
{
	(void)state;
	expect("Encrypt", "{}", "2 validation errors detected: Value null at "
	    "'keyId' failed to satisfy constraint: Member must not be null; "
	    "Value at 'plaintext' failed to satisfy constraint: Member must "
	    "not be null");
	expect("ListGrants", "{\"Limit\":0,\"GrantId\":\"\"}", "3 validation "
	    "errors detected: Value '0' at 'limit' failed to satisfy "
	    "constraint: Member must have value greater than or equal to 1; "
	    "Value null at 'keyId' failed to satisfy constraint: Member must "
	    "not be null; Value '' at 'grantId' failed to satisfy constraint: "
	    "Member must have length greater than or equal to 1");
}

static void
test_validate_uses_aws_texts(void **state)
{
	(void)state;
	expect("GenerateRandom", "{\"NumberOfBytes\":1025}", "1 validation "
	    "error detected: Value '1025' at 'numberOfBytes' failed to "
	    "satisfy constraint: Member must have value less than or equal to "
	    "1024");
	/* 4097 bytes of plaintext: the value is never shown. */
	{
		char req[6000];
		size_t i, n;
		n = (size_t)snprintf(req, sizeof(req), "{\"KeyId\":\"k\","
		    "\"Plaintext\":\"");
		for (i = 0; i < 1365; i++) {
			memcpy(req + n, "AAAA", 4);
			n += 4;
		}
		snprintf(req + n, sizeof(req) - n, "AAA=\"}");
		expect("Encrypt", req, "1 validation error detected: Value at "
		    "'plaintext' failed to satisfy constraint: Member must "
		    "have length less than or equal to 4096");
	}
	expect("CreateAlias", "{\"AliasName\":\"alias/a b\",\"TargetKeyId\":"
	    "\"k\"}", "1 validation error detected: Value 'alias/a b' at "
	    "'aliasName' failed to satisfy constraint: Member must satisfy "
	    "regular expression pattern: ^[a-zA-Z0-9:/_-]+$");
	expect("CreateKey", "{\"Tags\":[{\"TagKey\":\"a\",\"TagValue\":\"v\"},"
	    "{\"TagKey\":\"\",\"TagValue\":\"v\"}]}", "1 validation error "
	    "detected: Value '' at 'tags.2.member.tagKey' failed to satisfy "
	    "constraint: Member must have length greater than or equal to 1");
	expect("CreateGrant", "{\"KeyId\":\"k\",\"GranteePrincipal\":\"a b\","
	    "\"Operations\":[\"Encrypt\",\"Fly\"]}", "2 validation errors "
	    "detected: Value 'a b' at 'granteePrincipal' failed to satisfy "
	    "constraint: Member must satisfy regular expression pattern: "
	    "^[\\w+=,.@:/-]+$; Value 'Fly' at 'operations.2.member' failed to "
	    "satisfy constraint: Member must satisfy enum value set: [Decrypt, "
	    "Encrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, "
	    "ReEncryptFrom, ReEncryptTo, Sign, Verify, GetPublicKey, "
	    "CreateGrant, RetireGrant, DescribeKey, GenerateDataKeyPair, "
	    "GenerateDataKeyPairWithoutPlaintext, GenerateMac, VerifyMac, "
	    "DeriveSharedSecret]");
}

static void
test_validate_never_quotes_grant_tokens_or_policies(void **state)
{
	char req[9000];
	size_t n;

	(void)state;
	n = (size_t)snprintf(req, sizeof(req), "{\"GrantToken\":\"");
	memset(req + n, 't', 8193);
	n += 8193;
	snprintf(req + n, sizeof(req) - n, "\"}");
	expect("RetireGrant", req, "1 validation error detected: Value at "
	    "'grantToken' failed to satisfy constraint: Member must have "
	    "length less than or equal to 8192");
	expect("PutKeyPolicy", "{\"KeyId\":\"k\",\"Policy\":\"secret\\u0001\"}",
	    "1 validation error detected: Value at 'policy' failed to satisfy "
	    "constraint: Member must satisfy regular expression pattern: "
	    "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+");
	expect("PutKeyPolicy", "{\"KeyId\":\"k\"}", "1 validation error "
	    "detected: Value null at 'policy' failed to satisfy constraint: "
	    "Member must not be null");
}

static void
test_validate_cuts_long_values_at_a_character(void **state)
{
	char req[8000], want[1024];
	size_t n, i;

	(void)state;
	/* 2049 two-byte characters: quoted as the first 128 and "...". */
	n = (size_t)snprintf(req, sizeof(req), "{\"KeyId\":\"");
	for (i = 0; i < 2049; i++) {
		memcpy(req + n, "\xc3\xa9", 2);
		n += 2;
	}
	snprintf(req + n, sizeof(req) - n, "\"}");
	n = (size_t)snprintf(want, sizeof(want), "1 validation error detected: "
	    "Value '");
	for (i = 0; i < VALIDATE_QUOTE_CUT / 2; i++) {
		memcpy(want + n, "\xc3\xa9", 2);
		n += 2;
	}
	snprintf(want + n, sizeof(want) - n, "...' at 'keyId' failed to "
	    "satisfy constraint: Member must have length less than or equal "
	    "to 2048");
	expect("DescribeKey", req, want);
}

static void
test_validate_leaves_good_and_mistyped_requests_alone(void **state)
{
	(void)state;
	expect_ok("Encrypt", "{\"KeyId\":\"k\",\"Plaintext\":\"aGk=\"}");
	expect_ok("ListAliases", "{\"Limit\":1000,\"Marker\":\"abc\"}");
	expect_ok("CreateAlias", "{\"AliasName\":\"alias/x:y\","
	    "\"TargetKeyId\":\"k\"}");
	/* Wrong types and ill-formed base64 are the operation's to refuse
	 * (SerializationException), even beside a violation. */
	expect_ok("Encrypt", "{\"Plaintext\":5}");
	expect_ok("Encrypt", "{\"KeyId\":\"\",\"Plaintext\":\"a\"}");
	expect_ok("GenerateRandom", "{\"NumberOfBytes\":\"1\"}");
	expect_ok("CreateKey", "{\"Tags\":[\"a\"]}");
	/* Operations the model does not have (kmsd's own). */
	expect_ok("AdvanceTestClock", "{\"Seconds\":-1}");
	expect_ok("NoSuchOperation", "{}");
}

static void
test_validate_member_names_are_lower_camel_case(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(validate_member_name("KeyId", buf, sizeof(buf)),
	    "keyId");
	assert_string_equal(validate_member_name("CiphertextBlob", buf,
	    sizeof(buf)), "ciphertextBlob");
	assert_string_equal(validate_member_name("limit", buf, sizeof(buf)),
	    "limit");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_names_every_violation_in_model_order),
		cmocka_unit_test(test_validate_uses_aws_texts),
		cmocka_unit_test(test_validate_never_quotes_grant_tokens_or_policies),
		cmocka_unit_test(test_validate_cuts_long_values_at_a_character),
		cmocka_unit_test(test_validate_leaves_good_and_mistyped_requests_alone),
		cmocka_unit_test(test_validate_member_names_are_lower_camel_case),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
