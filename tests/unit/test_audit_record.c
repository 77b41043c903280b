/*
 * test_audit_record.c — the audit log's records (kmsd/audit/record.c),
 * byte for byte: every kind of request (allowed, denied, failed, without
 * a reply, unparseable), every logged parameter kind, strings that need
 * escaping, Batch items formatted after a shared prefix, every caller
 * identity, and what a record tells GetKeyLastUsage.  The expected lines
 * are the format kmsctl audit verify and CloudTrail tooling read; a change
 * to any of them is a change of the log's format.  (With REC_DUMP=1 set,
 * each record is printed instead, its bytes in hex: the material for new
 * expected lines when the format changes on purpose.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kmsd/audit/audit.h"
#include "kmsd/audit/record.h"
#include "kmsd/kmsd.h"

#define PFX "arn:aws:kms:us-east-1:111122223333:key/"
#define K1 "1234abcd-12ab-34cd-56ef-1234567890ab"
#define K2 "0fedcba9-8765-4321-0fed-cba987654321"
/* Ciphertext blobs (format 1) of K1 version 3 and K2 version 1, and one
 * of an unknown format naming K1. */
#define BLOB1 "ARI0q80SqzTNVu8SNFZ4kKsAAAADAAECAwQFBgcICQoLDA0ODxAREhMUFRYX" \
	"GBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"
#define BLOB2 "AQ/ty6mHZUMhD+3LqYdlQyEAAAABAAECAwQFBgcICQoLDA0ODxAREhMUFRYX" \
	"GBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"
#define BLOBX "AhI0q80SqzTNVu8SNFZ4kKsAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define WHEN "2026-12-05T17:00:00.123Z"
#define RID "5d1f0b7e-2c4a-4e8b-9f3d-6a7b8c9d0e1f"

static struct kmsd d;

/* Callers. */
enum who { W_IPC, W_HTTPS, W_HTTPS_ANON, W_UNKNOWN, W_IPC_EXPLICIT,
	W_ODD_NAME };

struct rcase {
	const char *name;
	const char *req;		/* JSON text; NULL: unparseable */
	const char *resp;		/* JSON text; NULL: no reply */
	const char *arn[AUDIT_NOTE_KEYS];	/* the note's keys */
	const char *grant;		/* the note's grant */
	size_t index, count;		/* a Batch item (count > 0) */
	enum who who;
	const char *request_id;
	const char *want;		/* eventID masked as <ID> */
	int nuses;
	const char *uses[2];		/* key ids */
};

static const struct rcase cases[] = {
{
	"generate_data_key",
	"{\"Action\":\"GenerateDataKey\",\"KeyId\":\"alias/bench\","
	    "\"EncryptionContext\":{\"purpose\":\"bench\"},"
	    "\"KeySpec\":\"AES_256\"}",
	"{\"KeyId\":\"" PFX K1 "\",\"CiphertextBlob\":\"" BLOB1 "\","
	    "\"Plaintext\":\"c2VjcmV0\"}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"GenerateDataKey\",\"requestParameters\":{\"keyId\":"
	    "\"alias/bench\",\"encryptionContext\":{\"purpose\":"
	    "\"bench\"},\"keySpec\":\"AES_256\"},\"responseElements\":"
	    "null,\"requestID\":\"" RID "\",\"readOnly\":true,"
	    "\"resources\":[{\"ARN\":\"" PFX K1 "\",\"keyVersion\":3}],"
	    "\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	1, { K1, NULL },
},
{
	"generate_data_key_batch_item",
	"{\"Action\":\"GenerateDataKey\",\"KeyId\":\"" K1 "\","
	    "\"NumberOfBytes\":32,\"GrantTokens\":[\"tokA\",\"tokB\"]}",
	"{\"KeyId\":\"" PFX K1 "\",\"CiphertextBlob\":\"" BLOB1 "\","
	    "\"Plaintext\":\"c2VjcmV0\"}",
	{ PFX K1, NULL }, "gr-0123456789abcdef", 7, 100, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"GenerateDataKey\",\"requestParameters\":{\"keyId\":\""
	    K1 "\",\"numberOfBytes\":32,\"grantIds\":[\"unresolved\","
	    "\"unresolved\"]},\"responseElements\":null,\"requestID\":"
	    "\"" RID "\",\"readOnly\":true,\"resources\":[{\"ARN\":\""
	    PFX K1 "\",\"keyVersion\":3}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\",\"additionalEventData\":{"
	    "\"batchIndex\":7,\"batchSize\":100,\"grantId\":"
	    "\"gr-0123456789abcdef\"}",
	1, { K1, NULL },
},
{
	"generate_data_key_without_plaintext_https",
	"{\"Action\":\"GenerateDataKeyWithoutPlaintext\",\"KeyId\":"
	    "\"" PFX K1 "\",\"KeySpec\":\"AES_128\"}",
	"{\"KeyId\":\"" PFX K1 "\",\"CiphertextBlob\":\"" BLOB1 "\"}",
	{ PFX K1, NULL }, NULL, 0, 2, W_HTTPS, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\","
	    "\"transport\":\"https\",\"accessKeyId\":\"AKIAEXAMPLE\"},"
	    "\"eventTime\":\"" WHEN "\",\"eventSource\":"
	    "\"kms.amazonaws.com\",\"eventName\":"
	    "\"GenerateDataKeyWithoutPlaintext\",\"sourceIPAddress\":"
	    "\"127.0.0.1\",\"userAgent\":"
	    "\"aws-sdk-go/1.0 \\\"quoted\\\"\",\"requestParameters\":{"
	    "\"keyId\":\"" PFX K1 "\",\"keySpec\":\"AES_128\"},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":true,\"resources\":[{\"ARN\":\"" PFX K1 "\","
	    "\"keyVersion\":3}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\",\"additionalEventData\":{"
	    "\"batchIndex\":0,\"batchSize\":2}",
	1, { K1, NULL },
},
{
	"encrypt_context_escapes",
	"{\"Action\":\"Encrypt\",\"KeyId\":\"alias/app\",\"Plaintext\":"
	    "\"aGVsbG8=\",\"EncryptionContext\":{\"q\\\"uote\":\"back\\\\slash"
	    "\",\"ctl\":\"a\\u0001b\\nc\\td\\u001f\\u007f\",\"utf8\":"
	    "\"caf\\u00e9 \\u20ac\",\"nul\":\"x\\u0000y\",\"long words "
	    "without escapes\":\"0123456789abcdef0123456789abcdef\"},"
	    "\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}",
	"{\"KeyId\":\"" PFX K2 "\",\"CiphertextBlob\":\"" BLOB2 "\","
	    "\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}",
	{ PFX K2, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Encrypt\",\"requestParameters\":{\"keyId\":"
	    "\"alias/app\",\"encryptionContext\":{\"q\\\"uote\":"
	    "\"back\\\\slash\",\"ctl\":"
	    "\"a\\u0001b\\u000ac\\u0009d\\u001f\\u007f\",\"utf8\":"
	    "\"café €\",\"nul\":\"x\\u0000y\","
	    "\"long words without escapes\":"
	    "\"0123456789abcdef0123456789abcdef\"},"
	    "\"encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":true,\"resources\":[{\"ARN\":\"" PFX K2 "\","
	    "\"keyVersion\":1}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	1, { K2, NULL },
},
{
	"escapes_at_every_place_in_a_word",
	"{\"Action\":\"Encrypt\",\"KeyId\":\"alias/app\",\"EncryptionContext\":"
	    "{\"\":\"\",\"a\":\"\\\"\",\"b\":\"abcdefg\\\"\",\"c\":"
	    "\"abcdefgh\\\"\",\"d\":\"abcdefghijklmn\\\\\",\"e\":"
	    "\"abcdefghijklmnop\\n\",\"f\":\"0123456789\\u007f\",\"g\":"
	    "\"0123456789abcdef\",\"h\":\"0123456\",\"context-key\\\"\":"
	    "\"\\u001fabcdefghijklmnopq\",\"i\":\"abcdefgh\\tbcdefgh\","
	    "\"j\":\"abcdefghijklmnopqrstuvwxy\\\"\"}}",
	"{\"KeyId\":\"" PFX K2 "\",\"CiphertextBlob\":\"" BLOB2 "\"}",
	{ PFX K2, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Encrypt\",\"requestParameters\":{\"keyId\":"
	    "\"alias/app\",\"encryptionContext\":{\"\":\"\",\"a\":"
	    "\"\\\"\",\"b\":\"abcdefg\\\"\",\"c\":\"abcdefgh\\\"\","
	    "\"d\":\"abcdefghijklmn\\\\\",\"e\":"
	    "\"abcdefghijklmnop\\u000a\",\"f\":\"0123456789\\u007f\","
	    "\"g\":\"0123456789abcdef\",\"h\":\"0123456\","
	    "\"context-key\\\"\":\"\\u001fabcdefghijklmnopq\",\"i\":"
	    "\"abcdefgh\\u0009bcdefgh\",\"j\":"
	    "\"abcdefghijklmnopqrstuvwxy\\\"\"}},\"responseElements\":"
	    "null,\"requestID\":\"" RID "\",\"readOnly\":true,"
	    "\"resources\":[{\"ARN\":\"" PFX K2 "\",\"keyVersion\":1}],"
	    "\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	1, { K2, NULL },
},
{
	"decrypt_with_grant",
	"{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"" BLOB1 "\","
	    "\"GrantTokens\":[\"t1\"],\"EncryptionContext\":{}}",
	"{\"KeyId\":\"" PFX K1 "\",\"Plaintext\":\"aGVsbG8=\","
	    "\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}",
	{ PFX K1, NULL }, "0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef", 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Decrypt\",\"requestParameters\":{\"grantIds\":["
	    "\"unresolved\"],\"encryptionContext\":{}},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":true,\"resources\":[{\"ARN\":\"" PFX K1 "\","
	    "\"keyVersion\":3}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\",\"additionalEventData\":{\"grantId\":"
	    "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}",
	1, { K1, NULL },
},
{
	"decrypt_denied",
	"{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"" BLOB2 "\"}",
	"{\"__type\":\"AccessDeniedException\",\"message\":\"User: "
	    "user:alice is not authorized to perform: kms:Decrypt on \\\""
	    "key\\\"\\n\"}",
	{ PFX K2, NULL }, NULL, 3, 4, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Decrypt\",\"errorCode\":\"AccessDeniedException\","
	    "\"errorMessage\":\"User: user:"
	    "alice is not authorized to perform: kms:"
	    "Decrypt on \\\"key\\\"\\u000a\",\"requestParameters\":{},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":true,\"resources\":[{\"ARN\":\"" PFX K2 "\","
	    "\"keyVersion\":1}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\",\"additionalEventData\":{"
	    "\"batchIndex\":3,\"batchSize\":4}",
	0, { NULL, NULL },
},
{
	"decrypt_bad_blobs",
	"{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"" BLOBX "\"}",
	"{\"__type\":\"InvalidCiphertextException\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Decrypt\",\"errorCode\":\"InvalidCiphertextException\","
	    "\"requestParameters\":{},\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":true,\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"decrypt_short_blob",
	"{\"Action\":\"Decrypt\",\"CiphertextBlob\":\"AQID\","
	    "\"KeyId\":7}",
	"{\"__type\":\"InvalidCiphertextException\",\"message\":7}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, NULL,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Decrypt\",\"errorCode\":\"InvalidCiphertextException\","
	    "\"requestParameters\":{},\"responseElements\":null,"
	    "\"requestID\":\"\",\"readOnly\":true,\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"decrypt_blob_not_base64",
	"{\"Action\":\"Decrypt\",\"CiphertextBlob\":"
	    "\"AQ*ty6mHZUMhD+3LqYdlQyEAAAABAAECAwQFBgcICQoLDA0O\"}",
	"{\"__type\":\"InvalidCiphertextException\",\"message\":\"bad\"}",
	{ NULL, NULL }, NULL, 0, 0, W_UNKNOWN, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"Unknown\",\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Decrypt\",\"errorCode\":\"InvalidCiphertextException\","
	    "\"errorMessage\":\"bad\",\"requestParameters\":{},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":true,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"re_encrypt",
	"{\"Action\":\"ReEncrypt\",\"CiphertextBlob\":\"" BLOB1 "\","
	    "\"DestinationKeyId\":\"" K2 "\",\"SourceEncryptionContext\":"
	    "{\"a\":\"1\"},\"DestinationEncryptionContext\":{\"b\":\"2\"},"
	    "\"SourceEncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\","
	    "\"DestinationEncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\","
	    "\"SourceKeyId\":\"" K1 "\"}",
	"{\"CiphertextBlob\":\"" BLOB2 "\",\"SourceKeyId\":\"" PFX K1 "\","
	    "\"KeyId\":\"" PFX K2 "\"}",
	{ PFX K1, PFX K2 }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"ReEncrypt\",\"requestParameters\":{\"destinationKeyId\":"
	    "\"" K2 "\",\"sourceEncryptionContext\":{\"a\":\"1\"},"
	    "\"destinationEncryptionContext\":{\"b\":\"2\"},"
	    "\"sourceEncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\","
	    "\"destinationEncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\","
	    "\"sourceKeyId\":\"" K1 "\"},\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":true,\"resources\":"
	    "[{\"ARN\":\"" PFX K1 "\",\"keyVersion\":3},{\"ARN\":\""
	    PFX K2 "\",\"keyVersion\":1}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	2, { K1, K2 },
},
{
	"re_encrypt_same_key",
	"{\"Action\":\"ReEncrypt\",\"CiphertextBlob\":\"" BLOB1 "\","
	    "\"DestinationKeyId\":\"" K1 "\"}",
	"{\"CiphertextBlob\":\"" BLOB1 "\",\"SourceKeyId\":\"" PFX K1 "\","
	    "\"KeyId\":\"" PFX K1 "\"}",
	{ PFX K1, PFX K1 }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"ReEncrypt\",\"requestParameters\":{\"destinationKeyId\":"
	    "\"" K1 "\"},\"responseElements\":null,\"requestID\":\""
	    RID "\",\"readOnly\":true,\"resources\":[{\"ARN\":\"" PFX
	    K1 "\",\"keyVersion\":3}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	1, { K1, NULL },
},
{
	"no_reply",
	"{\"Action\":\"Encrypt\",\"KeyId\":\"alias/x\"}",
	NULL,
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Encrypt\",\"errorCode\":\"KMSInternalException\","
	    "\"errorMessage\":\"no reply\",\"requestParameters\":{"
	    "\"keyId\":\"alias/x\"},\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":true,\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"unparseable",
	NULL,
	"{\"__type\":\"SerializationException\",\"message\":\"bad JSON\"}",
	{ NULL, NULL }, NULL, 0, 0, W_UNKNOWN, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"Unknown\",\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Unknown\",\"errorCode\":\"SerializationException\","
	    "\"errorMessage\":\"bad JSON\",\"requestParameters\":null,"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"not_an_object",
	"[1,2,3]",
	"{\"__type\":\"SerializationException\"}",
	{ NULL, NULL }, NULL, 0, 0, W_HTTPS_ANON, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"Unknown\",\"transport\":\"https\"},\"eventTime\":\""
	    WHEN "\",\"eventSource\":\"kms.amazonaws.com\","
	    "\"eventName\":\"Unknown\",\"sourceIPAddress\":"
	    "\"127.0.0.1\",\"errorCode\":\"SerializationException\","
	    "\"requestParameters\":null,\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":false,"
	    "\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"action_odd",
	"{\"Action\":\"Enc\\\"rypt\",\"KeyId\":\"k\"}",
	"{\"__type\":\"UnsupportedOperationException\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Unknown\",\"errorCode\":"
	    "\"UnsupportedOperationException\",\"requestParameters\":{"
	    "\"keyId\":\"k\"},\"responseElements\":null,\"requestID\":"
	    "\"" RID "\",\"readOnly\":false,\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"action_not_a_string",
	"{\"Action\":5,\"Limit\":10}",
	"{\"__type\":\"UnsupportedOperationException\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Unknown\",\"errorCode\":"
	    "\"UnsupportedOperationException\",\"requestParameters\":{"
	    "\"limit\":10},\"responseElements\":null,\"requestID\":\""
	    RID "\",\"readOnly\":false,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"action_empty",
	"{\"Action\":\"\"}",
	"{\"__type\":\"UnsupportedOperationException\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Unknown\",\"errorCode\":"
	    "\"UnsupportedOperationException\",\"requestParameters\":{"
	    "},\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"action_too_long",
	"{\"Action\":\"A1234567890123456789012345678901234567890123456789"
	    "012345678901234\"}",
	"{\"__type\":\"UnsupportedOperationException\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Unknown\",\"errorCode\":"
	    "\"UnsupportedOperationException\",\"requestParameters\":{"
	    "},\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"action_longest",
	"{\"Action\":\"A123456789012345678901234567890123456789012345678901"
	    "234567890123\"}",
	"{\"__type\":\"UnsupportedOperationException\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"A123456789012345678901234567890123456789012345678901234567890123\","
	    "\"errorCode\":\"UnsupportedOperationException\","
	    "\"requestParameters\":{},\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":false,"
	    "\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"create_key",
	"{\"Action\":\"CreateKey\",\"Description\":\"my \\\"key\\\"\","
	    "\"KeyUsage\":\"ENCRYPT_DECRYPT\",\"CustomerMasterKeySpec\":"
	    "\"SYMMETRIC_DEFAULT\",\"Origin\":\"AWS_KMS\",\"MultiRegion\":false,"
	    "\"BypassPolicyLockoutSafetyCheck\":true,\"Tags\":[{\"TagKey\":"
	    "\"team\",\"TagValue\":\"a\\\"b\"},{\"TagKey\":1,\"TagValue\":\"x\"},"
	    "\"junk\",{\"TagKey\":\"env\",\"TagValue\":\"prod\"}],\"Policy\":"
	    "\"{\\\"Version\\\":\\\"2012-10-17\\\"}\",\"Unknown\":\"never\"}",
	"{\"KeyMetadata\":{\"AWSAccountId\":\"111122223333\",\"KeyId\":\"" K1
	    "\",\"Arn\":\"" PFX K1 "\",\"CreationDate\":1746000000.5,"
	    "\"Enabled\":true,\"Description\":\"my \\\"key\\\"\","
	    "\"KeyUsage\":\"ENCRYPT_DECRYPT\"}}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"CreateKey\",\"requestParameters\":{\"description\":"
	    "\"my \\\"key\\\"\",\"keyUsage\":\"ENCRYPT_DECRYPT\","
	    "\"customerMasterKeySpec\":\"SYMMETRIC_DEFAULT\","
	    "\"origin\":\"AWS_KMS\",\"multiRegion\":false,"
	    "\"bypassPolicyLockoutSafetyCheck\":true,\"tags\":[{"
	    "\"tagKey\":\"team\",\"tagValue\":\"a\\\"b\"},{\"tagKey\":"
	    "\"env\",\"tagValue\":\"prod\"}],\"policySha256\":"
	    "\"52279714d77bcfad953e90e091f01cf2b8df980cb4c43eea600ce15103933a2c\"},"
	    "\"responseElements\":{\"keyMetadata\":{\"AWSAccountId\":"
	    "\"111122223333\",\"KeyId\":\"" K1 "\",\"Arn\":\"" PFX K1
	    "\",\"CreationDate\":1746000000.5,\"Enabled\":true,"
	    "\"Description\":\"my \\\"key\\\"\",\"KeyUsage\":"
	    "\"ENCRYPT_DECRYPT\"}},\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"resources\":[{\"ARN\":\"" PFX K1
	    "\"}],\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"create_key_too_many_resources",
	"{\"Action\":\"CreateKey\",\"CiphertextBlob\":\"" BLOB1 "\"}",
	"{\"CiphertextBlob\":\"" BLOB2 "\",\"KeyMetadata\":{\"Arn\":"
	    "\"" PFX "ffffffff-ffff-4fff-bfff-ffffffffffff\"}}",
	{ PFX "aaaaaaaa-aaaa-4aaa-baaa-aaaaaaaaaaaa",
	    PFX "bbbbbbbb-bbbb-4bbb-bbbb-bbbbbbbbbbbb" }, NULL, 0, 0, W_IPC,
	    RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"CreateKey\",\"requestParameters\":{},"
	    "\"responseElements\":{\"keyMetadata\":{\"Arn\":\"" PFX
	    "ffffffff-ffff-4fff-bfff-ffffffffffff\"}},\"requestID\":\""
	    RID "\",\"readOnly\":false,\"resources\":[{\"ARN\":\"" PFX
	    "aaaaaaaa-aaaa-4aaa-baaa-aaaaaaaaaaaa\"},{\"ARN\":\"" PFX
	    "bbbbbbbb-bbbb-4bbb-bbbb-bbbbbbbbbbbb\"},{\"ARN\":\"" PFX
	    K1 "\",\"keyVersion\":3},{\"ARN\":\"" PFX K2 "\","
	    "\"keyVersion\":1}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"create_key_failed",
	"{\"Action\":\"CreateKey\",\"Tags\":\"not a list\",\"MultiRegion\":"
	    "\"yes\",\"Policy\":3}",
	"{\"__type\":\"LimitExceededException\",\"message\":\"too many\","
	    "\"KeyMetadata\":{\"Arn\":\"x\"}}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"CreateKey\",\"errorCode\":\"LimitExceededException\","
	    "\"errorMessage\":\"too many\",\"requestParameters\":{},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"create_grant",
	"{\"Action\":\"CreateGrant\",\"KeyId\":\"" K1 "\",\"GranteePrincipal\":"
	    "\"user:bob\",\"RetiringPrincipal\":\"user:carol\",\"Operations\":"
	    "[\"Encrypt\",\"Decrypt\"],\"Constraints\":{\"EncryptionContext"
	    "Subset\":{\"dept\":\"a\\\"b\"},\"Other\":{\"x\":\"y\"},"
	    "\"EncryptionContextEquals\":{\"k\":1}},\"Name\":\"g1\","
	    "\"GrantTokens\":[]}",
	"{\"GrantId\":\"abcdef0123456789\",\"GrantToken\":\"secret-token\"}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"CreateGrant\",\"requestParameters\":{\"keyId\":\"" K1
	    "\",\"granteePrincipal\":\"user:bob\","
	    "\"retiringPrincipal\":\"user:carol\",\"operations\":["
	    "\"Encrypt\",\"Decrypt\"],\"constraints\":{"
	    "\"encryptionContextSubset\":{\"dept\":\"a\\\"b\"}},"
	    "\"name\":\"g1\"},\"responseElements\":{\"grantId\":"
	    "\"abcdef0123456789\"},\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"resources\":[{\"ARN\":\"" PFX K1
	    "\"}],\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"create_grant_constraints_equals",
	"{\"Action\":\"CreateGrant\",\"KeyId\":\"" K1 "\",\"Operations\":"
	    "[\"Encrypt\",3],\"Constraints\":{\"EncryptionContextEquals\":"
	    "{\"k\":\"v\"}}}",
	"{\"GrantId\":7}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"CreateGrant\",\"requestParameters\":{\"keyId\":\"" K1
	    "\",\"constraints\":{\"encryptionContextEquals\":{\"k\":"
	    "\"v\"}}},\"responseElements\":null,\"requestID\":\"" RID
	    "\",\"readOnly\":false,\"resources\":[{\"ARN\":\"" PFX K1
	    "\"}],\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"retire_grant",
	"{\"Action\":\"RetireGrant\",\"GrantId\":\"abc\",\"KeyId\":\"" K1 "\","
	    "\"GrantToken\":\"never logged\"}",
	"{}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC_EXPLICIT, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"RetireGrant\",\"userAgent\":\"kmsctl/0.1\","
	    "\"requestParameters\":{\"grantId\":\"abc\",\"keyId\":\""
	    K1 "\"},\"responseElements\":null,\"requestID\":\"" RID
	    "\",\"readOnly\":false,\"resources\":[{\"ARN\":\"" PFX K1
	    "\"}],\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"list_keys",
	"{\"Action\":\"ListKeys\",\"Limit\":-5,\"Marker\":\"m\\u00e9\"}",
	"{\"Keys\":[],\"Truncated\":false}",
	{ NULL, NULL }, NULL, 0, 0, W_ODD_NAME, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:"
	    "o\\\"dd\\\\name\\u0009\",\"uid\":1000,\"pid\":-1,"
	    "\"transport\":\"ipc\"},\"eventTime\":\"" WHEN "\","
	    "\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"ListKeys\",\"requestParameters\":{\"limit\":-5,"
	    "\"marker\":\"mé\"},\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":true,\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"describe_key",
	"{\"Action\":\"DescribeKey\",\"KeyId\":\"alias/a\"}",
	"{\"KeyMetadata\":{\"Arn\":\"" PFX K2 "\"}}",
	{ PFX K2, NULL }, NULL, 1, 2, W_HTTPS, "",
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\","
	    "\"transport\":\"https\",\"accessKeyId\":\"AKIAEXAMPLE\"},"
	    "\"eventTime\":\"" WHEN "\",\"eventSource\":"
	    "\"kms.amazonaws.com\",\"eventName\":\"DescribeKey\","
	    "\"sourceIPAddress\":\"127.0.0.1\",\"userAgent\":"
	    "\"aws-sdk-go/1.0 \\\"quoted\\\"\",\"requestParameters\":{"
	    "\"keyId\":\"alias/a\"},\"responseElements\":null,"
	    "\"requestID\":\"\",\"readOnly\":true,\"resources\":[{"
	    "\"ARN\":\"" PFX K2 "\"}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\",\"additionalEventData\":{"
	    "\"batchIndex\":1,\"batchSize\":2}",
	0, { NULL, NULL },
},
{
	"get_key_policy",
	"{\"Action\":\"GetKeyPolicy\",\"KeyId\":\"" K1 "\",\"PolicyName\":"
	    "\"default\"}",
	"{\"Policy\":\"{}\"}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"GetKeyPolicy\",\"requestParameters\":{\"keyId\":\"" K1
	    "\",\"policyName\":\"default\"},\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":true,\"resources\":"
	    "[{\"ARN\":\"" PFX K1 "\"}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"get_audit_public_key",
	"{\"Action\":\"GetAuditPublicKey\"}",
	"{\"PublicKey\":\"pem\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"GetAuditPublicKey\",\"requestParameters\":{},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":true,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"generate_random",
	"{\"Action\":\"GenerateRandom\",\"NumberOfBytes\":9223372036854775807}",
	"{\"Plaintext\":\"AAAA\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"GenerateRandom\",\"requestParameters\":{"
	    "\"numberOfBytes\":9223372036854775807},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":true,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"schedule_key_deletion",
	"{\"Action\":\"ScheduleKeyDeletion\",\"KeyId\":\"" K1 "\","
	    "\"PendingWindowInDays\":7}",
	"{\"KeyId\":\"" PFX K1 "\",\"DeletionDate\":1746000000}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"ScheduleKeyDeletion\",\"requestParameters\":{\"keyId\":"
	    "\"" K1 "\",\"pendingWindowInDays\":7},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"resources\":[{\"ARN\":\"" PFX K1
	    "\"}],\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"enable_key_rotation",
	"{\"Action\":\"EnableKeyRotation\",\"KeyId\":\"" K1 "\","
	    "\"RotationPeriodInDays\":90}",
	"{}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"EnableKeyRotation\",\"requestParameters\":{\"keyId\":\""
	    K1 "\",\"rotationPeriodInDays\":90},\"responseElements\":"
	    "null,\"requestID\":\"" RID "\",\"readOnly\":false,"
	    "\"resources\":[{\"ARN\":\"" PFX K1 "\"}],\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"create_alias",
	"{\"AliasName\":\"alias/new\",\"TargetKeyId\":\"" K1 "\","
	    "\"Action\":\"CreateAlias\"}",
	"{}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"CreateAlias\",\"requestParameters\":{\"aliasName\":"
	    "\"alias/new\",\"targetKeyId\":\"" K1 "\"},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"resources\":[{\"ARN\":\"" PFX K1
	    "\"}],\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"untag_resource",
	"{\"Action\":\"UntagResource\",\"KeyId\":\"" K1 "\",\"TagKeys\":"
	    "[\"a\",\"b\\\"c\"]}",
	"{}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"UntagResource\",\"requestParameters\":{\"keyId\":\"" K1
	    "\",\"tagKeys\":[\"a\",\"b\\\"c\"]},\"responseElements\":"
	    "null,\"requestID\":\"" RID "\",\"readOnly\":false,"
	    "\"resources\":[{\"ARN\":\"" PFX K1 "\"}],\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"tag_resource_bad_keys",
	"{\"Action\":\"TagResource\",\"KeyId\":\"" K1 "\",\"TagKeys\":"
	    "[\"a\",1],\"Tags\":[]}",
	"{\"__type\":\"ValidationException\",\"message\":\"no\"}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"TagResource\",\"errorCode\":\"ValidationException\","
	    "\"errorMessage\":\"no\",\"requestParameters\":{\"keyId\":"
	    "\"" K1 "\",\"tags\":[]},\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":false,"
	    "\"resources\":[{\"ARN\":\"" PFX K1 "\"}],\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"put_key_policy",
	"{\"Action\":\"PutKeyPolicy\",\"KeyId\":\"" K1 "\",\"PolicyName\":"
	    "\"default\",\"Policy\":\"{\\\"Statement\\\":[]}\"}",
	"{}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"PutKeyPolicy\",\"requestParameters\":{\"keyId\":\"" K1
	    "\",\"policyName\":\"default\",\"policySha256\":"
	    "\"701f12e2a45641932e7716b160cc43c240755a8790dc94ac5af17eb9dc4d261f\"},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"resources\":[{\"ARN\":\"" PFX K1
	    "\"}],\"eventType\":\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"wrong_types_left_out",
	"{\"Action\":\"Encrypt\",\"KeyId\":[\"x\"],\"EncryptionContext\":"
	    "{\"a\":1},\"NumberOfBytes\":\"32\",\"MultiRegion\":1,"
	    "\"GrantTokens\":[1],\"Constraints\":[],\"Tags\":{},"
	    "\"KeySpec\":null,\"Limit\":1.5,\"Description\":\"\"}",
	"{\"KeyId\":\"" PFX K1 "\",\"CiphertextBlob\":\"" BLOB1 "\"}",
	{ PFX K1, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Encrypt\",\"requestParameters\":{\"description\":\"\"},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":true,\"resources\":[{\"ARN\":\"" PFX K1 "\","
	    "\"keyVersion\":3}],\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\"",
	1, { K1, NULL },
},
{
	"too_many_grant_tokens",
	"{\"Action\":\"Encrypt\",\"KeyId\":\"" K1 "\",\"GrantTokens\":"
	    "[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
	    "\"11\"]}",
	"{\"__type\":\"ValidationException\",\"message\":\"too many\"}",
	{ NULL, NULL }, NULL, 0, 0, W_IPC, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\",\"uid\":1000,"
	    "\"pid\":4242,\"transport\":\"ipc\"},\"eventTime\":\"" WHEN
	    "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Encrypt\",\"errorCode\":\"ValidationException\","
	    "\"errorMessage\":\"too many\",\"requestParameters\":{"
	    "\"keyId\":\"" K1 "\"},\"responseElements\":null,"
	    "\"requestID\":\"" RID "\",\"readOnly\":true,\"eventType\":"
	    "\"AwsApiCall\",\"eventID\":\"<ID>\"",
	0, { NULL, NULL },
},
{
	"unknown_action_batch",
	"{\"Action\":\"FrobnicateKey\",\"KeyId\":\"" K1 "\"}",
	"{\"__type\":\"UnsupportedOperationException\",\"message\":\"?\"}",
	{ NULL, NULL }, NULL, 99, 100, W_HTTPS, RID,
	"{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":"
	    "\"LocalUser\",\"principalId\":\"user:alice\","
	    "\"transport\":\"https\",\"accessKeyId\":\"AKIAEXAMPLE\"},"
	    "\"eventTime\":\"" WHEN "\",\"eventSource\":"
	    "\"kms.amazonaws.com\",\"eventName\":\"FrobnicateKey\","
	    "\"sourceIPAddress\":\"127.0.0.1\",\"userAgent\":"
	    "\"aws-sdk-go/1.0 \\\"quoted\\\"\",\"errorCode\":"
	    "\"UnsupportedOperationException\",\"errorMessage\":\"?\","
	    "\"requestParameters\":{\"keyId\":\"" K1 "\"},"
	    "\"responseElements\":null,\"requestID\":\"" RID "\","
	    "\"readOnly\":false,\"eventType\":\"AwsApiCall\","
	    "\"eventID\":\"<ID>\",\"additionalEventData\":{"
	    "\"batchIndex\":99,\"batchSize\":100}",
	0, { NULL, NULL },
},
};

/* The record with its eventID replaced by <ID> (checked to be a UUID). */
static char *
masked(const char *rec, size_t len, char id[37])
{
	static const char tag[] = "\"eventID\":\"";
	const char *at = NULL, *p;
	char *out;
	size_t off;
	int i;

	for (p = rec; p + sizeof(tag) - 1 <= rec + len; p++) {
		if (memcmp(p, tag, sizeof(tag) - 1) == 0) {
			at = p + sizeof(tag) - 1;
			break;
		}
	}
	assert_non_null(at);
	assert_true(at + 37 <= rec + len);
	for (i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		assert_true(dash ? at[i] == '-' : strchr("0123456789abcdef",
		    at[i]) != NULL && at[i] != '\0');
	}
	assert_int_equal(at[14], '4');
	assert_non_null(strchr("89ab", at[19]));
	assert_int_equal(at[36], '"');
	memcpy(id, at, 36);
	id[36] = '\0';
	off = (size_t)(at - rec);
	out = malloc(len - 36 + 5);
	assert_non_null(out);
	memcpy(out, rec, off);
	memcpy(out + off, "<ID>", 4);
	memcpy(out + off + 4, at + 36, len - off - 36);
	out[len - 36 + 4] = '\0';
	return out;
}

static json_t *
parse(const char *text)
{
	json_error_t e;
	json_t *j;

	if (text == NULL) {
		return NULL;
	}
	j = json_loads(text, JSON_ALLOW_NUL, &e);
	if (j == NULL) {
		fail_msg("bad test JSON: %s: %s", e.text, text);
	}
	return j;
}

/* REC_DUMP: one line per case (name, uses, the record in hex, eventID
 * masked), to make new expected records from when the format changes on
 * purpose. */
static void
dump(const char *name, const char *got, const struct rec_use *uses,
    size_t nuses)
{
	size_t i;

	printf("REC %s %zu", name, nuses);
	for (i = 0; i < nuses; i++) {
		printf(" %s", uses[i].key);
	}
	printf(" ");
	for (; *got != '\0'; got++) {
		printf("%02x", (unsigned char)*got);
	}
	printf("\n");
}

static void
caller(enum who w, struct principal *p, struct audit_origin *o,
    struct audit_call *call)
{
	memset(p, 0, sizeof(*p));
	memset(o, 0, sizeof(*o));
	memset(call, 0, sizeof(*call));
	p->uid = 1000;
	p->gid = 1000;
	p->pid = 4242;
	snprintf(p->name, sizeof(p->name), "user:alice");
	snprintf(p->source, sizeof(p->source), "ipc");
	call->p = p;
	switch (w) {
	case W_IPC:
		break;
	case W_IPC_EXPLICIT:
		o->transport = "ipc";
		o->user_agent = "kmsctl/0.1";
		call->o = o;
		break;
	case W_HTTPS:
		o->transport = "https";
		o->address = "127.0.0.1";
		o->access_key = "AKIAEXAMPLE";
		o->user_agent = "aws-sdk-go/1.0 \"quoted\"";
		call->o = o;
		break;
	case W_HTTPS_ANON:
		o->transport = "https";
		o->address = "127.0.0.1";
		call->o = o;
		call->p = NULL;
		break;
	case W_UNKNOWN:
		call->p = NULL;
		break;
	case W_ODD_NAME:
		snprintf(p->name, sizeof(p->name), "user:o\"dd\\name\t");
		p->pid = -1;
		break;
	}
}

/* Format one case, as a lone request (prefix absent or empty) and as a
 * Batch item after a shared prefix, into a fresh and a large buffer. */
static void
run_case(const struct rcase *c, int dumping)
{
	struct principal p;
	struct audit_origin o;
	struct audit_call call;
	struct audit_item it;
	struct audit_note note;
	struct rec_use uses[REC_USES_PER_ITEM];
	struct rec_buf prefix = { 0 };
	char id[37];
	size_t nuses, i;
	int pass;

	caller(c->who, &p, &o, &call);
	call.request_id = c->request_id;
	memset(&note, 0, sizeof(note));
	for (i = 0; i < AUDIT_NOTE_KEYS && c->arn[i] != NULL; i++) {
		snprintf(note.arn[i], sizeof(note.arn[i]), "%s", c->arn[i]);
		note.narn++;
	}
	if (c->grant != NULL) {
		snprintf(note.grant_id, sizeof(note.grant_id), "%s", c->grant);
	}
	memset(&it, 0, sizeof(it));
	it.req = parse(c->req);
	it.resp = parse(c->resp);
	it.note = c->arn[0] != NULL || c->grant != NULL ? &note : NULL;
	it.index = c->index;
	it.count = c->count;
	rec_api_prefix(&prefix, &d, &call, WHEN);
	assert_false(prefix.oom);
	for (pass = 0; pass < 4; pass++) {
		struct rec_buf b = { 0 };
		char *got;
		const char *pre = "previous record";
		size_t start = 0;
		if (pass >= 2) {
			/* After another record, in a buffer with room. */
			b.p = malloc(65536);
			assert_non_null(b.p);
			b.cap = 65536;
			rec_puts(&b, pre);
			start = b.len;
		}
		nuses = 0;
		rec_api_record(&b, &d, &call, &it, WHEN, pass & 1 ? &prefix :
		    NULL, NULL, uses, &nuses);
		assert_false(b.oom);
		if (pass >= 2) {
			assert_memory_equal(b.p, pre, start);
		}
		got = masked(b.p + start, b.len - start, id);
		if (dumping) {
			if (pass == 0) {
				dump(c->name, got, uses, nuses);
			}
		} else {
			if (strcmp(got, c->want) != 0) {
				print_error("case %s, pass %d:\n got  %s\n want "
				    "%s\n", c->name, pass, got, c->want);
				fail();
			}
			assert_int_equal(nuses, c->nuses);
			for (i = 0; i < nuses; i++) {
				assert_string_equal(uses[i].key, c->uses[i]);
				assert_string_equal(uses[i].id, id);
				assert_string_equal(uses[i].op,
				    json_string_value(json_object_get(it.req,
				    "Action")));
			}
		}
		free(got);
		free(b.p);
	}
	/* Three items of the same text in a row, as a Batch's: the second
	 * and third lend what they can of the record before; each is the
	 * same record still, with its own eventID and uses. */
	if (!dumping) {
		struct rec_buf b = { 0 };
		struct rec_memo memo;
		size_t offs[4], k;
		char prev[37] = "";

		memset(&memo, 0, sizeof(memo));
		it.raw = c->req;
		it.rawlen = c->req != NULL ? strlen(c->req) : 0;
		for (k = 0; k < 3; k++) {
			struct rec_use u3[REC_USES_PER_ITEM];
			size_t n3 = 0;
			char *got;

			offs[k] = b.len;
			rec_api_record(&b, &d, &call, &it, WHEN, &prefix,
			    &memo, u3, &n3);
			assert_false(b.oom);
			got = masked(b.p + offs[k], b.len - offs[k], id);
			if (strcmp(got, c->want) != 0) {
				print_error("case %s, item %zu of a run:\n got  "
				    "%s\n want %s\n", c->name, k, got, c->want);
				fail();
			}
			assert_string_not_equal(id, prev);
			memcpy(prev, id, sizeof(prev));
			assert_int_equal(n3, c->nuses);
			for (i = 0; i < n3; i++) {
				assert_string_equal(u3[i].key, c->uses[i]);
				assert_string_equal(u3[i].id, id);
			}
			free(got);
		}
		free(b.p);
	}
	free(prefix.p);
	json_decref(it.req);
	json_decref(it.resp);
}

static void
test_record_formats_every_case_byte_for_byte(void **state)
{
	int dumping = getenv("REC_DUMP") != NULL;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_case(&cases[i], dumping);
	}
}

/*
 * A Batch of items of one text whose outcomes differ (a failure, another
 * key in the note, a reply naming another version, a grant) and of
 * another text: each record, formatted after the one before (lending
 * what it can), is the record formatted alone.
 */
static void
test_record_of_items_alike_is_each_its_own(void **state)
{
	static const char *text = "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"alias/bench\",\"EncryptionContext\":{\"a\":"
	    "\"b\"},\"KeySpec\":\"AES_256\"}";
	static const char *other = "{\"Action\":\"GenerateDataKey\","
	    "\"KeyId\":\"alias/bench\",\"EncryptionContext\":{\"a\":"
	    "\"c\"},\"KeySpec\":\"AES_256\"}";
	static const char *ok1 = "{\"KeyId\":\"" PFX K1 "\","
	    "\"CiphertextBlob\":\"" BLOB1 "\"}";
	static const char *ok2 = "{\"KeyId\":\"" PFX K2 "\","
	    "\"CiphertextBlob\":\"" BLOB2 "\"}";
	static const char *bad = "{\"__type\":\"DisabledException\","
	    "\"message\":\"off\"}";
	/* A decryption names the same keys whether it fails or not. */
	static const char *dec = "{\"Action\":\"Decrypt\","
	    "\"CiphertextBlob\":\"" BLOB1 "\"}";
	static const char *dok = "{\"KeyId\":\"" PFX K1 "\","
	    "\"Plaintext\":\"c2VjcmV0\"}";
	static const struct {
		const char *req, *resp, *arn, *grant;
	} items[] = {
		{ NULL, NULL, PFX K1, NULL },	/* text */
		{ NULL, NULL, PFX K1, NULL },
		{ NULL, "bad", PFX K1, NULL },
		{ NULL, NULL, PFX K1, NULL },
		{ NULL, NULL, PFX K1, "g-1" },
		{ NULL, NULL, PFX K2, NULL },
		{ NULL, "ok2", PFX K2, NULL },
		{ NULL, "ok2", PFX K2, NULL },
		{ "other", "ok2", PFX K2, NULL },
		{ NULL, "ok2", PFX K2, NULL },
		{ NULL, NULL, NULL, NULL },
		{ NULL, NULL, PFX K1, NULL },
		{ "dec", "dok", PFX K1, NULL },
		{ "dec", "dok", PFX K1, NULL },
		{ "dec", "bad", PFX K1, NULL },
		{ "dec", "dok", PFX K1, NULL },
	};
	size_t n = sizeof(items) / sizeof(items[0]), k, start, nu, nu1, i;
	struct principal p;
	struct audit_origin o;
	struct audit_call call;
	struct audit_note notes[16];
	struct audit_item its[16];
	struct rec_buf prefix = { 0 }, b = { 0 };
	struct rec_memo memo;
	struct rec_use u[REC_USES_PER_ITEM], u1[REC_USES_PER_ITEM];
	char id[37], id1[37];

	(void)state;
	caller(W_IPC, &p, &o, &call);
	call.request_id = RID;
	rec_api_prefix(&prefix, &d, &call, WHEN);
	memset(&memo, 0, sizeof(memo));
	memset(notes, 0, sizeof(notes));
	memset(its, 0, sizeof(its));
	for (k = 0; k < n; k++) {
		const char *t = items[k].req == NULL ? text :
		    strcmp(items[k].req, "dec") == 0 ? dec : other;
		const char *r = items[k].resp == NULL ? ok1 :
		    strcmp(items[k].resp, "bad") == 0 ? bad :
		    strcmp(items[k].resp, "dok") == 0 ? dok : ok2;
		struct rec_buf one = { 0 };
		char *got, *want;

		if (items[k].arn != NULL) {
			snprintf(notes[k].arn[0], KEY_ARN_MAX, "%s",
			    items[k].arn);
			notes[k].narn = 1;
		}
		if (items[k].grant != NULL) {
			snprintf(notes[k].grant_id, sizeof(notes[k].grant_id),
			    "%s", items[k].grant);
		}
		its[k].req = parse(t);
		its[k].resp = parse(r);
		its[k].note = &notes[k];
		its[k].index = k;
		its[k].count = n;
		its[k].raw = t;
		its[k].rawlen = strlen(t);
		start = b.len;
		nu = 0;
		rec_api_record(&b, &d, &call, &its[k], WHEN, &prefix, &memo,
		    u, &nu);
		nu1 = 0;
		rec_api_record(&one, &d, &call, &its[k], WHEN, &prefix, NULL,
		    u1, &nu1);
		assert_false(b.oom);
		assert_false(one.oom);
		got = masked(b.p + start, b.len - start, id);
		want = masked(one.p, one.len, id1);
		if (strcmp(got, want) != 0) {
			print_error("item %zu:\n got  %s\n want %s\n", k, got,
			    want);
			fail();
		}
		assert_int_equal(nu, nu1);
		for (i = 0; i < nu; i++) {
			assert_string_equal(u[i].key, u1[i].key);
			assert_string_equal(u[i].op, u1[i].op);
			assert_string_equal(u[i].id, id);
		}
		free(got);
		free(want);
		free(one.p);
	}
	for (k = 0; k < n; k++) {
		json_decref(its[k].req);
		json_decref(its[k].resp);
	}
	free(b.p);
	free(prefix.p);
}

/* Without uses, nothing is noted and the record is the same. */
static void
test_record_without_uses(void **state)
{
	struct principal p;
	struct audit_origin o;
	struct audit_call call;
	struct audit_item it;
	struct rec_buf b = { 0 };
	char id[37], *got;

	caller(W_IPC, &p, &o, &call);
	call.request_id = cases[0].request_id;
	memset(&it, 0, sizeof(it));
	it.req = parse(cases[0].req);
	it.resp = parse(cases[0].resp);
	rec_api_record(&b, &d, &call, &it, WHEN, NULL, NULL, NULL, NULL);
	got = masked(b.p, b.len, id);
	/* No note: the key comes from the reply's blob alone. */
	assert_string_equal(got, cases[0].want);
	free(got);
	free(b.p);
	json_decref(it.req);
	json_decref(it.resp);
}

/* A logged string is cut at 8192 bytes, on a character boundary. */
static void
test_record_cuts_long_strings_on_a_character(void **state)
{
	struct principal p;
	struct audit_origin o;
	struct audit_call call;
	struct audit_item it;
	struct rec_buf b = { 0 };
	static const char head[] = "\"requestParameters\":{"
	    "\"description\":\"";
	const size_t hl = sizeof(head) - 1;
	char *desc, *want, *at;
	size_t n = 8191 + 2 + 100;

	caller(W_IPC, &p, &o, &call);
	desc = malloc(n);
	want = malloc(64 + 8191);
	assert_non_null(desc);
	assert_non_null(want);
	memset(desc, 'x', n);
	/* "é" straddles byte 8192: the cut falls before it. */
	desc[8191] = (char)0xc3;
	desc[8192] = (char)0xa9;
	memset(&it, 0, sizeof(it));
	it.req = json_object();
	json_object_set_new(it.req, "Action", json_string("CreateKey"));
	json_object_set_new(it.req, "Description", json_stringn(desc, n));
	it.resp = json_object();
	rec_api_record(&b, &d, &call, &it, WHEN, NULL, NULL, NULL, NULL);
	rec_put(&b, "", 1);
	assert_false(b.oom);
	memcpy(want, head, hl);
	memset(want + hl, 'x', 8191);
	memcpy(want + hl + 8191, "\"},", 3);
	at = strstr(b.p, "\"requestParameters\"");
	assert_non_null(at);
	assert_memory_equal(at, want, hl + 8191 + 3);
	free(desc);
	free(want);
	free(b.p);
	json_decref(it.req);
	json_decref(it.resp);
}

static void
test_record_of_a_service_event(void **state)
{
	struct rec_buf b = { 0 };
	json_t *details = json_pack("{s:s,s:i}", "reason", "a \"test\"",
	    "n", 3);
	char id[37], *got;

	rec_service_record(&b, &d, "RotateKey", PFX K1, details, WHEN);
	got = masked(b.p, b.len, id);
	assert_string_equal(got, "{\"eventVersion\":\"1.08\",\"userIdentity\":"
	    "{\"type\":\"AWSService\",\"invokedBy\":\"kmsd\"},\"eventTime\":\""
	    WHEN "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"RotateKey\",\"requestParameters\":null,\"responseElements\":"
	    "null,\"eventID\":\"<ID>\",\"readOnly\":false,\"resources\":[{"
	    "\"ARN\":\"" PFX K1 "\"}],\"eventType\":\"AwsServiceEvent\","
	    "\"serviceEventDetails\":{\"reason\":\"a \\\"test\\\"\",\"n\":3}");
	free(got);
	b.len = 0;
	rec_service_record(&b, &d, "Start", NULL, NULL, WHEN);
	got = masked(b.p, b.len, id);
	assert_string_equal(got, "{\"eventVersion\":\"1.08\",\"userIdentity\":"
	    "{\"type\":\"AWSService\",\"invokedBy\":\"kmsd\"},\"eventTime\":\""
	    WHEN "\",\"eventSource\":\"kms.amazonaws.com\",\"eventName\":"
	    "\"Start\",\"requestParameters\":null,\"responseElements\":null,"
	    "\"eventID\":\"<ID>\",\"readOnly\":false,\"eventType\":"
	    "\"AwsServiceEvent\",\"serviceEventDetails\":{}");
	free(got);
	free(b.p);
	json_decref(details);
}

/* Ids are distinct, version 4 in form, and numbers and digests exact. */
static void
test_record_ids_numbers_and_digests(void **state)
{
	char a[37], b[37], dec[24];
	uint8_t h[32];
	char hx[65];
	int i;

	audit_new_id(a);
	for (i = 0; i < 1000; i++) {
		audit_new_id(b);
		assert_int_equal(strlen(b), 36);
		assert_int_equal(b[14], '4');
		assert_string_not_equal(a, b);
	}
	dec[rec_u64_dec(0, dec)] = '\0';
	assert_string_equal(dec, "0");
	dec[rec_u64_dec(UINT64_MAX, dec)] = '\0';
	assert_string_equal(dec, "18446744073709551615");
	dec[rec_u64_dec(1000000, dec)] = '\0';
	assert_string_equal(dec, "1000000");
	for (i = 0; i < 32; i++) {
		h[i] = (uint8_t)(i * 37 + 5);
	}
	rec_hex32(h, hx);
	assert_string_equal(hx, "052a4f74" "99bee308" "2d52779c" "c1e60b30"
	    "557a9fc4" "e90e3358" "7da2c7ec" "11365b80");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_formats_every_case_byte_for_byte),
		cmocka_unit_test(test_record_of_items_alike_is_each_its_own),
		cmocka_unit_test(test_record_without_uses),
		cmocka_unit_test(test_record_cuts_long_strings_on_a_character),
		cmocka_unit_test(test_record_of_a_service_event),
		cmocka_unit_test(test_record_ids_numbers_and_digests),
	};

	d.key_arn_prefix_len = (size_t)snprintf(d.key_arn_prefix,
	    sizeof(d.key_arn_prefix), "%s", PFX);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
