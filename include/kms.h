/*
 * kms.h — the public C API of kmsd's client library, libkmsclient.
 *
 * This is the only installed header.  It declares the error space shared
 * with the daemon (each error maps to one AWS KMS error name), and one typed
 * function per KMS operation.
 *
 * Thread safety: one kms_client may be shared by any number of threads;
 * calls from several threads are in flight at once over one connection,
 * each matched to its reply by request id.
 *
 * Ownership: every buffer a call returns is owned by the caller and freed
 * with the matching *_free function.  Plaintexts and data keys are returned
 * as kms_secret, which lives in locked, guard-paged memory and is wiped by
 * kms_secret_free().  Request structures are borrowed for the call only.
 *
 * Errors: functions return 0 (KMS_OK) or a positive kms_err.  When the
 * caller passes a kms_error_info, it receives the AWS error name and the
 * daemon's message.
 */
#ifndef KMS_H
#define KMS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KMS_API __attribute__((visibility("default")))
#else
#define KMS_API
#endif

/* Error space: 0 is success; every other value names one AWS error. */
typedef enum kms_err {
	KMS_OK = 0,
	KMS_ENOTFOUND,		/* NotFoundException */
	KMS_EDISABLED,		/* DisabledException */
	KMS_EINVALIDSTATE,	/* KMSInvalidStateException */
	KMS_EINVALIDCIPHERTEXT,	/* InvalidCiphertextException */
	KMS_EINCORRECTKEY,	/* IncorrectKeyException */
	KMS_EACCESSDENIED,	/* AccessDeniedException */
	KMS_EVALIDATION,	/* ValidationException */
	KMS_EALREADYEXISTS,	/* AlreadyExistsException */
	KMS_EINVALIDALIAS,	/* InvalidAliasNameException */
	KMS_EINVALIDGRANTTOKEN,	/* InvalidGrantTokenException */
	KMS_EINVALIDGRANTID,	/* InvalidGrantIdException */
	KMS_EMALFORMEDPOLICY,	/* MalformedPolicyDocumentException */
	KMS_ELIMITEXCEEDED,	/* LimitExceededException */
	KMS_EUNSUPPORTED,	/* UnsupportedOperationException */
	KMS_EINTERNAL,		/* KMSInternalException */
	KMS_EDEPENDENCYTIMEOUT,	/* DependencyTimeoutException (HSM down) */
	KMS_ESERIALIZATION,	/* SerializationException */
	KMS_EUNKNOWNOP,		/* UnknownOperationException */
	KMS_EINVALIDMARKER,	/* InvalidMarkerException */
	KMS_ETAG,		/* TagException */
	KMS_EINVALIDKEYUSAGE,	/* InvalidKeyUsageException */
	KMS_EKEYUNAVAILABLE,	/* KeyUnavailableException */
	KMS_EINVALIDARN,	/* InvalidArnException */
	KMS_ECONFLICT,		/* ConflictException */
	KMS_EINVALIDIMPORTTOKEN,	/* InvalidImportTokenException */
	KMS_EEXPIREDIMPORTTOKEN,	/* ExpiredImportTokenException */
	KMS_EINCORRECTKEYMATERIAL,	/* IncorrectKeyMaterialException */
	/* Client-side conditions (never sent by the daemon). */
	KMS_EINVAL,		/* bad argument to a library call */
	KMS_ENOMEM,		/* out of memory (locked memory included) */
	KMS_ETIMEDOUT,		/* no reply within the client's timeout */
	KMS_ETRANSPORT,		/* cannot reach the daemon / transport error */
	KMS_EPROTO,		/* the reply could not be understood */
	KMS_ERR_MAX
} kms_err;

/* Human text for an error code; never NULL, static storage. */
KMS_API const char *kms_strerror(int err);
/* AWS error name ("NotFoundException"); never NULL, static storage. */
KMS_API const char *kms_error_name(int err);
/* Inverse of kms_error_name(); unknown names map to KMS_EINTERNAL. */
KMS_API int kms_error_from_name(const char *name);

#define KMS_ERROR_NAME_MAX 64
#define KMS_ERROR_MESSAGE_MAX 512
typedef struct kms_error_info {
	int code;
	char name[KMS_ERROR_NAME_MAX];		/* AWS error name */
	char message[KMS_ERROR_MESSAGE_MAX];	/* daemon's or library's text */
} kms_error_info;

/* Limits, as AWS KMS sets them. */
#define KMS_MAX_PLAINTEXT 4096		/* Encrypt plaintext */
#define KMS_MAX_DATA_KEY_BYTES 1024	/* GenerateDataKey NumberOfBytes */
#define KMS_MAX_RANDOM_BYTES 1024	/* GenerateRandom NumberOfBytes */
#define KMS_MAX_CIPHERTEXT 6144		/* CiphertextBlob */
#define KMS_MAX_GRANT_TOKENS 10
#define KMS_MAX_BATCH 1000
#define KMS_KEY_ID_LEN 36		/* UUID text */
#define KMS_ARN_MAX 256

/* Secret bytes in locked, guard-paged memory; wipe with kms_secret_free. */
typedef struct kms_secret {
	uint8_t *data;
	size_t len;
} kms_secret;
KMS_API void kms_secret_free(kms_secret *s);

/* Ordinary owned bytes (ciphertexts); free with kms_buf_free. */
typedef struct kms_buf {
	uint8_t *data;
	size_t len;
} kms_buf;
KMS_API void kms_buf_free(kms_buf *b);

/* Encryption context: borrowed array of UTF-8 pairs. */
typedef struct kms_context_pair {
	const char *key;
	const char *value;
} kms_context_pair;
typedef struct kms_context {
	const kms_context_pair *pairs;
	size_t npairs;
} kms_context;

/* Grant tokens accompanying a request (≤ KMS_MAX_GRANT_TOKENS). */
typedef struct kms_grant_tokens {
	const char *const *tokens;
	size_t ntokens;
} kms_grant_tokens;

typedef struct kms_client kms_client;

/*
 * Connect to a daemon.  url NULL means the default endpoint: $KMS_ENDPOINT
 * if set, else ipc://./var/kmsd.sock found from the current directory
 * upwards.  The returned client is freed with kms_client_close().
 */
KMS_API int kms_client_open(kms_client **cp, const char *url);
KMS_API void kms_client_close(kms_client *c);
/* Per-call timeout in milliseconds (default 30000; 0 = none). */
KMS_API int kms_client_set_timeout(kms_client *c, int ms);
/*
 * How long a call waits for a connection to the daemon before failing with
 * KMS_ETRANSPORT ("Could not connect"), in milliseconds; 0 (the default)
 * means the call timeout.  For tools that should fail fast when no daemon
 * runs.  A request in flight when its connection drops fails with
 * KMS_ETRANSPORT and is never resent (at most once).
 */
KMS_API int kms_client_set_connect_timeout(kms_client *c, int ms);
/* The endpoint kms_client_open(NULL) would use, into buf. */
KMS_API int kms_default_endpoint(char *buf, size_t len);

/* ---------------------------------------------------------------- keys */

typedef struct kms_tag {
	const char *key;
	const char *value;
} kms_tag;

typedef struct kms_create_key_req {
	const char *description;	/* may be NULL */
	const char *key_usage;		/* NULL = "ENCRYPT_DECRYPT" */
	const char *key_spec;		/* NULL = "SYMMETRIC_DEFAULT" */
	const char *policy;		/* JSON policy document or NULL */
	int bypass_policy_lockout_safety_check;
	const kms_tag *tags;
	size_t ntags;
	const char *origin;		/* NULL = "AWS_KMS"; "EXTERNAL": the
					 * material is imported later */
} kms_create_key_req;

typedef struct kms_key_metadata {
	char aws_account_id[32];
	char key_id[KMS_KEY_ID_LEN + 1];
	char arn[KMS_ARN_MAX];
	double creation_date;		/* seconds since the epoch */
	int enabled;
	char *description;		/* owned; freed by kms_key_metadata_free */
	char key_usage[32];
	char key_state[32];
	double deletion_date;		/* 0 when not pending deletion */
	char origin[32];
	char key_manager[32];
	char key_spec[32];
	char customer_master_key_spec[32];
	char encryption_algorithms[4][32];
	size_t nencryption_algorithms;
	int multi_region;
} kms_key_metadata;
KMS_API void kms_key_metadata_free(kms_key_metadata *m);

KMS_API int kms_create_key(kms_client *c, const kms_create_key_req *req,
    kms_key_metadata *out, kms_error_info *ei);
KMS_API int kms_describe_key(kms_client *c, const char *key_id,
    const kms_grant_tokens *gt, kms_key_metadata *out, kms_error_info *ei);
KMS_API int kms_update_key_description(kms_client *c, const char *key_id,
    const char *description, kms_error_info *ei);
KMS_API int kms_enable_key(kms_client *c, const char *key_id,
    kms_error_info *ei);
KMS_API int kms_disable_key(kms_client *c, const char *key_id,
    kms_error_info *ei);

typedef struct kms_key_list_entry {
	char key_id[KMS_KEY_ID_LEN + 1];
	char key_arn[KMS_ARN_MAX];
} kms_key_list_entry;
typedef struct kms_key_list {
	kms_key_list_entry *keys;
	size_t nkeys;
	int truncated;
	char *next_marker;		/* NULL unless truncated */
} kms_key_list;
/* limit 0 = daemon default (100); marker NULL = from the start. */
KMS_API int kms_list_keys(kms_client *c, int limit, const char *marker,
    kms_key_list *out, kms_error_info *ei);
KMS_API void kms_key_list_free(kms_key_list *l);

/* ----------------------------------------------------------- lifecycle */

/*
 * Automatic rotation: every rotation_period_in_days (90-2560; 0 means
 * AWS's default, 365).  Calling it again changes the period, counted from
 * the same date.
 */
KMS_API int kms_enable_key_rotation(kms_client *c, const char *key_id,
    int rotation_period_in_days, kms_error_info *ei);
KMS_API int kms_disable_key_rotation(kms_client *c, const char *key_id,
    kms_error_info *ei);

typedef struct kms_key_rotation_status {
	char key_id[KMS_ARN_MAX];		/* key ARN */
	int key_rotation_enabled;
	int rotation_period_in_days;		/* 0 when not enabled */
	double next_rotation_date;		/* 0 when not enabled */
	double on_demand_rotation_start_date;	/* 0 unless one is running */
} kms_key_rotation_status;
KMS_API int kms_get_key_rotation_status(kms_client *c, const char *key_id,
    kms_key_rotation_status *out, kms_error_info *ei);

/* Rotate now: new material in the HSM becomes the key's current version;
 * older ones still decrypt.  At most 25 per key (LimitExceededException);
 * ConflictException while another rotation of the key runs. */
KMS_API int kms_rotate_key_on_demand(kms_client *c, const char *key_id,
    kms_error_info *ei);

typedef struct kms_key_rotation {
	char key_id[KMS_ARN_MAX];
	double rotation_date;
	char rotation_type[16];		/* "AUTOMATIC" or "ON_DEMAND" */
} kms_key_rotation;
typedef struct kms_key_rotation_list {
	kms_key_rotation *rotations;
	size_t nrotations;
	int truncated;
	char *next_marker;		/* NULL unless truncated */
} kms_key_rotation_list;
/* limit 0 = daemon default (100); marker NULL = from the start. */
KMS_API int kms_list_key_rotations(kms_client *c, const char *key_id,
    int limit, const char *marker, kms_key_rotation_list *out,
    kms_error_info *ei);
KMS_API void kms_key_rotation_list_free(kms_key_rotation_list *l);

typedef struct kms_schedule_key_deletion_resp {
	char key_id[KMS_ARN_MAX];
	double deletion_date;
	char key_state[32];		/* "PendingDeletion" */
	int pending_window_in_days;
} kms_schedule_key_deletion_resp;
/* pending_window_in_days 7-30; 0 means AWS's default, 30.  When the date
 * comes the key's material is destroyed and the key is gone for good. */
KMS_API int kms_schedule_key_deletion(kms_client *c, const char *key_id,
    int pending_window_in_days, kms_schedule_key_deletion_resp *out,
    kms_error_info *ei);
/* The key comes back Disabled. */
KMS_API int kms_cancel_key_deletion(kms_client *c, const char *key_id,
    kms_error_info *ei);

/* Imported key material (keys created with origin "EXTERNAL"). */
typedef struct kms_import_parameters {
	char key_id[KMS_ARN_MAX];
	kms_buf import_token;		/* give back to kms_import_key_material */
	kms_buf public_key;		/* DER SubjectPublicKeyInfo (RSA) */
	double parameters_valid_to;	/* 24 hours on */
} kms_import_parameters;
/* wrapping_algorithm: "RSAES_OAEP_SHA_1" (what SoftHSM2 unwraps);
 * wrapping_key_spec: "RSA_2048", "RSA_3072" or "RSA_4096". */
KMS_API int kms_get_parameters_for_import(kms_client *c, const char *key_id,
    const char *wrapping_algorithm, const char *wrapping_key_spec,
    kms_import_parameters *out, kms_error_info *ei);
KMS_API void kms_import_parameters_free(kms_import_parameters *p);
/* valid_to 0: the material does not expire; else seconds since the
 * epoch (KEY_MATERIAL_EXPIRES). */
KMS_API int kms_import_key_material(kms_client *c, const char *key_id,
    const uint8_t *import_token, size_t import_token_len,
    const uint8_t *encrypted_key_material, size_t encrypted_len,
    double valid_to, kms_error_info *ei);
KMS_API int kms_delete_imported_key_material(kms_client *c,
    const char *key_id, kms_error_info *ei);

/* TEST ONLY: move kmsd's clock forward (refused unless kmsd.conf says
 * test_clock = yes, and to anyone but its administrators). */
KMS_API int kms_advance_test_clock(kms_client *c, long long seconds,
    kms_error_info *ei);

/* -------------------------------------------------------------- crypto */

typedef struct kms_encrypt_req {
	const char *key_id;		/* id, ARN, alias name or alias ARN */
	const uint8_t *plaintext;
	size_t plaintext_len;		/* 1..KMS_MAX_PLAINTEXT */
	kms_context context;
	kms_grant_tokens grant_tokens;
} kms_encrypt_req;
typedef struct kms_encrypt_resp {
	kms_buf ciphertext_blob;
	char key_id[KMS_ARN_MAX];	/* key ARN */
	char encryption_algorithm[32];
} kms_encrypt_resp;
KMS_API int kms_encrypt(kms_client *c, const kms_encrypt_req *req,
    kms_encrypt_resp *out, kms_error_info *ei);
KMS_API void kms_encrypt_resp_free(kms_encrypt_resp *r);

typedef struct kms_decrypt_req {
	const uint8_t *ciphertext_blob;
	size_t ciphertext_len;
	const char *key_id;		/* optional; must match the blob */
	kms_context context;
	kms_grant_tokens grant_tokens;
} kms_decrypt_req;
typedef struct kms_decrypt_resp {
	kms_secret plaintext;
	char key_id[KMS_ARN_MAX];
	char encryption_algorithm[32];
} kms_decrypt_resp;
KMS_API int kms_decrypt(kms_client *c, const kms_decrypt_req *req,
    kms_decrypt_resp *out, kms_error_info *ei);
KMS_API void kms_decrypt_resp_free(kms_decrypt_resp *r);

typedef struct kms_re_encrypt_req {
	const uint8_t *ciphertext_blob;
	size_t ciphertext_len;
	const char *source_key_id;	/* optional */
	kms_context source_context;
	const char *destination_key_id;
	kms_context destination_context;
	kms_grant_tokens grant_tokens;
} kms_re_encrypt_req;
typedef struct kms_re_encrypt_resp {
	kms_buf ciphertext_blob;
	char source_key_id[KMS_ARN_MAX];
	char key_id[KMS_ARN_MAX];
	char source_encryption_algorithm[32];
	char destination_encryption_algorithm[32];
} kms_re_encrypt_resp;
KMS_API int kms_re_encrypt(kms_client *c, const kms_re_encrypt_req *req,
    kms_re_encrypt_resp *out, kms_error_info *ei);
KMS_API void kms_re_encrypt_resp_free(kms_re_encrypt_resp *r);

typedef struct kms_generate_data_key_req {
	const char *key_id;
	const char *key_spec;		/* "AES_128"/"AES_256", or NULL */
	size_t number_of_bytes;		/* 1..1024, or 0; exactly one is set */
	kms_context context;
	kms_grant_tokens grant_tokens;
} kms_generate_data_key_req;
typedef struct kms_generate_data_key_resp {
	kms_secret plaintext;		/* empty for ...WithoutPlaintext */
	kms_buf ciphertext_blob;
	char key_id[KMS_ARN_MAX];
} kms_generate_data_key_resp;
KMS_API int kms_generate_data_key(kms_client *c,
    const kms_generate_data_key_req *req, kms_generate_data_key_resp *out,
    kms_error_info *ei);
KMS_API int kms_generate_data_key_without_plaintext(kms_client *c,
    const kms_generate_data_key_req *req, kms_generate_data_key_resp *out,
    kms_error_info *ei);
KMS_API void kms_generate_data_key_resp_free(kms_generate_data_key_resp *r);

/* n in 1..KMS_MAX_RANDOM_BYTES */
KMS_API int kms_generate_random(kms_client *c, size_t n, kms_secret *out,
    kms_error_info *ei);

/* --------------------------------------------------------------- batch */

typedef enum kms_batch_op {
	KMS_BATCH_ENCRYPT = 1,
	KMS_BATCH_DECRYPT,
	KMS_BATCH_RE_ENCRYPT,
	KMS_BATCH_GENERATE_DATA_KEY,
	KMS_BATCH_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT,
} kms_batch_op;

/*
 * One item of a Batch request.  Fill op and the matching req member; after
 * kms_batch() returns 0, each item's err says whether it succeeded and, if
 * so, the matching resp member is set and must be freed with
 * kms_batch_item_free().  One item's failure does not fail the others.
 */
typedef struct kms_batch_item {
	kms_batch_op op;
	union {
		kms_encrypt_req encrypt;
		kms_decrypt_req decrypt;
		kms_re_encrypt_req re_encrypt;
		kms_generate_data_key_req generate_data_key;
	} req;
	kms_error_info err;		/* err.code == 0 on success */
	union {
		kms_encrypt_resp encrypt;
		kms_decrypt_resp decrypt;
		kms_re_encrypt_resp re_encrypt;
		kms_generate_data_key_resp generate_data_key;
	} resp;
} kms_batch_item;
/* n in 1..KMS_MAX_BATCH; returns non-zero only if the batch as a whole
 * failed (transport, serialisation). */
KMS_API int kms_batch(kms_client *c, kms_batch_item *items, size_t n,
    kms_error_info *ei);
KMS_API void kms_batch_item_free(kms_batch_item *item);

/* ----------------------------------------------------------------- raw */

/*
 * Send a raw JSON request (an object with "Action") and return the raw
 * JSON reply in *reply (NUL-terminated, free with kms_free).  Returns 0 when
 * the daemon answered with a success object, the error otherwise; *reply is
 * set in both cases when a reply arrived.  For tools and tests.
 */
KMS_API int kms_call_json(kms_client *c, const char *request, size_t len,
    char **reply, size_t *reply_len, kms_error_info *ei);
KMS_API void kms_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* KMS_H */
