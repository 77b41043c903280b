/*
 * err.c — the one table of the error space: code → AWS name → human text.
 *
 * The daemon sends the name as "__type"; the client maps it back with
 * kms_error_from_name().  Adding an error means adding one row here and one
 * enumerator in include/kms.h; a test checks every code has a distinct name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

struct err_row {
	const char *name;	/* AWS KMS error name, sent as "__type" */
	const char *text;	/* for people: logs, kmsctl */
};

static const struct err_row err_table[KMS_ERR_MAX] = {
	[KMS_OK] = { "Success", "Success" },
	[KMS_ENOTFOUND] = { "NotFoundException",
	    "The specified entity or resource could not be found" },
	[KMS_EDISABLED] = { "DisabledException",
	    "The specified key is disabled" },
	[KMS_EINVALIDSTATE] = { "KMSInvalidStateException",
	    "The state of the key is not valid for this request" },
	[KMS_EINVALIDCIPHERTEXT] = { "InvalidCiphertextException",
	    "The ciphertext or its encryption context is not valid" },
	[KMS_EINCORRECTKEY] = { "IncorrectKeyException",
	    "The key does not match the key that encrypted the ciphertext" },
	[KMS_EACCESSDENIED] = { "AccessDeniedException",
	    "Access denied" },
	[KMS_EVALIDATION] = { "ValidationException",
	    "The request failed validation" },
	[KMS_EALREADYEXISTS] = { "AlreadyExistsException",
	    "The resource already exists" },
	[KMS_EINVALIDALIAS] = { "InvalidAliasNameException",
	    "The alias name is not valid" },
	[KMS_EINVALIDGRANTTOKEN] = { "InvalidGrantTokenException",
	    "The grant token is not valid" },
	[KMS_EINVALIDGRANTID] = { "InvalidGrantIdException",
	    "The grant id is not valid" },
	[KMS_EMALFORMEDPOLICY] = { "MalformedPolicyDocumentException",
	    "The key policy is malformed" },
	[KMS_ELIMITEXCEEDED] = { "LimitExceededException",
	    "A limit was exceeded" },
	[KMS_EUNSUPPORTED] = { "UnsupportedOperationException",
	    "The operation is not supported" },
	[KMS_EINTERNAL] = { "KMSInternalException",
	    "Internal error" },
	[KMS_EDEPENDENCYTIMEOUT] = { "DependencyTimeoutException",
	    "The HSM is unavailable" },
	[KMS_ESERIALIZATION] = { "SerializationException",
	    "The request could not be parsed" },
	[KMS_EUNKNOWNOP] = { "UnknownOperationException",
	    "Unknown operation" },
	[KMS_EINVALIDMARKER] = { "InvalidMarkerException",
	    "The pagination marker is not valid" },
	[KMS_ETAG] = { "TagException",
	    "The tags are not valid" },
	[KMS_EINVALIDKEYUSAGE] = { "InvalidKeyUsageException",
	    "The key usage does not allow this operation" },
	[KMS_EKEYUNAVAILABLE] = { "KeyUnavailableException",
	    "The key material is unavailable" },
	[KMS_EINVALIDARN] = { "InvalidArnException",
	    "The ARN is not valid" },
	[KMS_ECONFLICT] = { "ConflictException",
	    "The request conflicts with one in progress" },
	[KMS_EINVALIDIMPORTTOKEN] = { "InvalidImportTokenException",
	    "The import token is not valid for this key" },
	[KMS_EEXPIREDIMPORTTOKEN] = { "ExpiredImportTokenException",
	    "The import token has expired" },
	[KMS_EINCORRECTKEYMATERIAL] = { "IncorrectKeyMaterialException",
	    "The key material is not the key's" },
	[KMS_ENOTAUTHORIZED] = { "NotAuthorizedException",
	    "The name is reserved for AWS" },
	/* Client-side: never on the wire, but named for kms_error_info. */
	[KMS_EINVAL] = { "InvalidArgumentError",
	    "Invalid argument" },
	[KMS_ENOMEM] = { "OutOfMemoryError",
	    "Out of memory" },
	[KMS_ETIMEDOUT] = { "TimeoutError",
	    "Timed out waiting for the daemon" },
	[KMS_ETRANSPORT] = { "TransportError",
	    "Cannot reach the daemon" },
	[KMS_EPROTO] = { "ProtocolError",
	    "The reply could not be understood" },
	[KMS_EIO] = { "IOError",
	    "Reading or writing a stream failed" },
};

/* Out-of-range codes get these, never NULL and never a table overrun. */
#define ERR_UNKNOWN_TEXT "Unknown error"
#define ERR_UNKNOWN_NAME "KMSInternalException"

KMS_API const char *
kms_strerror(int err)
{
	if (err < 0 || err >= KMS_ERR_MAX || err_table[err].text == NULL) {
		return ERR_UNKNOWN_TEXT;
	}
	return err_table[err].text;
}

KMS_API const char *
kms_error_name(int err)
{
	if (err < 0 || err >= KMS_ERR_MAX || err_table[err].name == NULL) {
		return ERR_UNKNOWN_NAME;
	}
	return err_table[err].name;
}

/*
 * AWS JSON 1.1 may qualify "__type" with a namespace
 * ("com.amazonaws.kms#NotFoundException"): only the part after the last '#'
 * names the error.  An error reply never means success, so the name of
 * KMS_OK is not accepted here: it maps to KMS_EINTERNAL like any unknown
 * name, and a caller mapping an error reply can never get 0.
 */
KMS_API int
kms_error_from_name(const char *name)
{
	const char *hash;
	int i;

	if (name == NULL) {
		return KMS_EINTERNAL;
	}
	if ((hash = strrchr(name, '#')) != NULL) {
		name = hash + 1;
	}
	for (i = KMS_OK + 1; i < KMS_ERR_MAX; i++) {
		if (err_table[i].name != NULL &&
		    strcmp(err_table[i].name, name) == 0) {
			return i;
		}
	}
	return KMS_EINTERNAL;
}

int
err_is_client_side(int err)
{
	return err >= KMS_EINVAL && err <= KMS_EIO;
}

void
kms_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "kms: assertion failed: %s (%s:%d)\n", expr, file,
	    line);
	abort();
}

const char *
kms_version(void)
{
	return KMS_VERSION;
}
