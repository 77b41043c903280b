/*
 * test_err.c — the error table (common/err.c).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"

static void
test_err_every_code_has_distinct_nonempty_name(void **state)
{
	int i, j;

	for (i = 0; i < KMS_ERR_MAX; i++) {
		assert_non_null(kms_error_name(i));
		assert_true(strlen(kms_error_name(i)) > 0);
		assert_true(strlen(kms_error_name(i)) < KMS_ERROR_NAME_MAX);
		for (j = 0; j < i; j++) {
			assert_string_not_equal(kms_error_name(i),
			    kms_error_name(j));
		}
	}
}

static void
test_err_every_code_has_nonempty_text(void **state)
{
	int i;

	for (i = 0; i < KMS_ERR_MAX; i++) {
		assert_non_null(kms_strerror(i));
		assert_true(strlen(kms_strerror(i)) > 0);
		assert_string_not_equal(kms_strerror(i), "Unknown error");
	}
}

static void
test_err_name_round_trips_to_code(void **state)
{
	int i;

	for (i = 1; i < KMS_ERR_MAX; i++) {
		assert_int_equal(kms_error_from_name(kms_error_name(i)), i);
	}
}

static void
test_err_uses_aws_names(void **state)
{
	static const struct {
		int code;
		const char *name;
	} aws[] = {
		{ KMS_ENOTFOUND, "NotFoundException" },
		{ KMS_EDISABLED, "DisabledException" },
		{ KMS_EINVALIDSTATE, "KMSInvalidStateException" },
		{ KMS_EINVALIDCIPHERTEXT, "InvalidCiphertextException" },
		{ KMS_EINCORRECTKEY, "IncorrectKeyException" },
		{ KMS_EACCESSDENIED, "AccessDeniedException" },
		{ KMS_EVALIDATION, "ValidationException" },
		{ KMS_EALREADYEXISTS, "AlreadyExistsException" },
		{ KMS_EINVALIDALIAS, "InvalidAliasNameException" },
		{ KMS_EINVALIDGRANTTOKEN, "InvalidGrantTokenException" },
		{ KMS_EINVALIDGRANTID, "InvalidGrantIdException" },
		{ KMS_EMALFORMEDPOLICY, "MalformedPolicyDocumentException" },
		{ KMS_ELIMITEXCEEDED, "LimitExceededException" },
		{ KMS_EUNSUPPORTED, "UnsupportedOperationException" },
		{ KMS_EINTERNAL, "KMSInternalException" },
		{ KMS_EDEPENDENCYTIMEOUT, "DependencyTimeoutException" },
		{ KMS_ESERIALIZATION, "SerializationException" },
		{ KMS_EINVALIDMARKER, "InvalidMarkerException" },
		{ KMS_ETAG, "TagException" },
		{ KMS_EINVALIDKEYUSAGE, "InvalidKeyUsageException" },
		{ KMS_EKEYUNAVAILABLE, "KeyUnavailableException" },
		{ KMS_EINVALIDARN, "InvalidArnException" },
	};
	size_t i;

	for (i = 0; i < sizeof(aws) / sizeof(aws[0]); i++) {
		assert_string_equal(kms_error_name(aws[i].code), aws[i].name);
	}
}

static void
test_err_unknown_name_is_internal(void **state)
{
	assert_int_equal(kms_error_from_name("NoSuchException"),
	    KMS_EINTERNAL);
	assert_int_equal(kms_error_from_name(""), KMS_EINTERNAL);
	assert_int_equal(kms_error_from_name(NULL), KMS_EINTERNAL);
	assert_int_equal(kms_error_from_name("notfoundexception"),
	    KMS_EINTERNAL);
	assert_int_equal(kms_error_from_name("NotFoundExceptionX"),
	    KMS_EINTERNAL);
}

/* An error reply naming success must not turn into success. */
static void
test_err_success_name_is_not_an_error_code(void **state)
{
	assert_int_equal(kms_error_from_name(kms_error_name(KMS_OK)),
	    KMS_EINTERNAL);
}

static void
test_err_accepts_namespaced_type(void **state)
{
	assert_int_equal(kms_error_from_name(
	    "com.amazonaws.kms#NotFoundException"), KMS_ENOTFOUND);
	assert_int_equal(kms_error_from_name("#DisabledException"),
	    KMS_EDISABLED);
	assert_int_equal(kms_error_from_name("x#"), KMS_EINTERNAL);
}

static void
test_err_out_of_range_codes_give_fixed_strings(void **state)
{
	static const int codes[] = { -1, -1000, KMS_ERR_MAX, KMS_ERR_MAX + 1,
	    1 << 30 };
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_string_equal(kms_strerror(codes[i]), "Unknown error");
		assert_string_equal(kms_error_name(codes[i]),
		    "KMSInternalException");
	}
}

/* KMS_ASSERT aborts in every build, never continues. */
/* The values are ABI: an application built against an older kms.h reads
 * the same number as the same error.  New errors only append. */
static void
test_err_codes_keep_their_pinned_values(void **state)
{
	static const struct {
		int code, value;
		const char *name;
	} pinned[] = {
		{ KMS_OK, 0, NULL },
		{ KMS_ENOTFOUND, 1, "NotFoundException" },
		{ KMS_EDISABLED, 2, "DisabledException" },
		{ KMS_EINVALIDSTATE, 3, "KMSInvalidStateException" },
		{ KMS_EINVALIDCIPHERTEXT, 4, "InvalidCiphertextException" },
		{ KMS_EINCORRECTKEY, 5, "IncorrectKeyException" },
		{ KMS_EACCESSDENIED, 6, "AccessDeniedException" },
		{ KMS_EVALIDATION, 7, "ValidationException" },
		{ KMS_EALREADYEXISTS, 8, "AlreadyExistsException" },
		{ KMS_EINVALIDALIAS, 9, "InvalidAliasNameException" },
		{ KMS_EINVALIDGRANTTOKEN, 10, "InvalidGrantTokenException" },
		{ KMS_EINVALIDGRANTID, 11, "InvalidGrantIdException" },
		{ KMS_EMALFORMEDPOLICY, 12, "MalformedPolicyDocumentException" },
		{ KMS_ELIMITEXCEEDED, 13, "LimitExceededException" },
		{ KMS_EUNSUPPORTED, 14, "UnsupportedOperationException" },
		{ KMS_EINTERNAL, 15, "KMSInternalException" },
		{ KMS_EDEPENDENCYTIMEOUT, 16, "DependencyTimeoutException" },
		{ KMS_ESERIALIZATION, 17, "SerializationException" },
		{ KMS_EUNKNOWNOP, 18, "UnknownOperationException" },
		{ KMS_EINVALIDMARKER, 19, "InvalidMarkerException" },
		{ KMS_ETAG, 20, "TagException" },
		{ KMS_EINVALIDKEYUSAGE, 21, "InvalidKeyUsageException" },
		{ KMS_EKEYUNAVAILABLE, 22, "KeyUnavailableException" },
		{ KMS_EINVALIDARN, 23, "InvalidArnException" },
		{ KMS_EINVAL, 24, NULL },
		{ KMS_ENOMEM, 25, NULL },
		{ KMS_ETIMEDOUT, 26, NULL },
		{ KMS_ETRANSPORT, 27, NULL },
		{ KMS_EPROTO, 28, NULL },
		{ KMS_EIO, 29, NULL },
		{ KMS_ECONFLICT, 30, "ConflictException" },
		{ KMS_EINVALIDIMPORTTOKEN, 31, "InvalidImportTokenException" },
		{ KMS_EEXPIREDIMPORTTOKEN, 32, "ExpiredImportTokenException" },
		{ KMS_EINCORRECTKEYMATERIAL, 33,
		    "IncorrectKeyMaterialException" },
		{ KMS_ENOTAUTHORIZED, 34, "NotAuthorizedException" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
		assert_int_equal(pinned[i].code, pinned[i].value);
		if (pinned[i].name != NULL) {
			assert_string_equal(kms_error_name(pinned[i].code),
			    pinned[i].name);
		}
	}
	assert_true(KMS_ERR_MAX >= 35);
}

static void
test_err_assert_aborts_on_false(void **state)
{
	pid_t pid;
	int status, one = 1;

	KMS_ASSERT(one == 1);	/* a true assertion is a no-op */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGABRT, SIG_DFL);
		KMS_ASSERT(one == 2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_err_every_code_has_distinct_nonempty_name),
		cmocka_unit_test(test_err_every_code_has_nonempty_text),
		cmocka_unit_test(test_err_name_round_trips_to_code),
		cmocka_unit_test(test_err_uses_aws_names),
		cmocka_unit_test(test_err_unknown_name_is_internal),
		cmocka_unit_test(test_err_success_name_is_not_an_error_code),
		cmocka_unit_test(test_err_accepts_namespaced_type),
		cmocka_unit_test(
		    test_err_out_of_range_codes_give_fixed_strings),
		cmocka_unit_test(test_err_codes_keep_their_pinned_values),
		cmocka_unit_test(test_err_assert_aborts_on_false),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
