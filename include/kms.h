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

/*
 * Error space: 0 is success; every other value names one AWS error or one
 * client-side condition.  Every value is pinned: it is part of the ABI, so
 * a new error takes the next free number and no value ever changes
 * (test_err checks them).  KMS_ERR_MAX is one past the largest.
 */
typedef enum kms_err {
	KMS_OK = 0,
	KMS_ENOTFOUND = 1,	/* NotFoundException */
	KMS_EDISABLED = 2,	/* DisabledException */
	KMS_EINVALIDSTATE = 3,	/* KMSInvalidStateException */
	KMS_EINVALIDCIPHERTEXT = 4,	/* InvalidCiphertextException */
	KMS_EINCORRECTKEY = 5,	/* IncorrectKeyException */
	KMS_EACCESSDENIED = 6,	/* AccessDeniedException */
	KMS_EVALIDATION = 7,	/* ValidationException */
	KMS_EALREADYEXISTS = 8,	/* AlreadyExistsException */
	KMS_EINVALIDALIAS = 9,	/* InvalidAliasNameException */
	KMS_EINVALIDGRANTTOKEN = 10,	/* InvalidGrantTokenException */
	KMS_EINVALIDGRANTID = 11,	/* InvalidGrantIdException */
	KMS_EMALFORMEDPOLICY = 12,	/* MalformedPolicyDocumentException */
	KMS_ELIMITEXCEEDED = 13,	/* LimitExceededException */
	KMS_EUNSUPPORTED = 14,	/* UnsupportedOperationException */
	KMS_EINTERNAL = 15,	/* KMSInternalException */
	KMS_EDEPENDENCYTIMEOUT = 16,	/* DependencyTimeoutException (HSM down) */
	KMS_ESERIALIZATION = 17,	/* SerializationException */
	KMS_EUNKNOWNOP = 18,	/* UnknownOperationException */
	KMS_EINVALIDMARKER = 19,	/* InvalidMarkerException */
	KMS_ETAG = 20,		/* TagException */
	KMS_EINVALIDKEYUSAGE = 21,	/* InvalidKeyUsageException */
	KMS_EKEYUNAVAILABLE = 22,	/* KeyUnavailableException */
	KMS_EINVALIDARN = 23,	/* InvalidArnException */
	/* Client-side conditions (never sent by the daemon). */
	KMS_EINVAL = 24,	/* bad argument to a library call */
	KMS_ENOMEM = 25,	/* out of memory (locked memory included) */
	KMS_ETIMEDOUT = 26,	/* no reply within the client's timeout */
	KMS_ETRANSPORT = 27,	/* cannot reach the daemon / transport error */
	KMS_EPROTO = 28,	/* the reply could not be understood */
	KMS_EIO = 29,		/* reading or writing a stream failed */
	KMS_ECONFLICT = 30,	/* ConflictException */
	KMS_EINVALIDIMPORTTOKEN = 31,	/* InvalidImportTokenException */
	KMS_EEXPIREDIMPORTTOKEN = 32,	/* ExpiredImportTokenException */
	KMS_EINCORRECTKEYMATERIAL = 33,	/* IncorrectKeyMaterialException */
	KMS_ENOTAUTHORIZED = 34,	/* NotAuthorizedException (alias/aws/) */
	/* New errors: the next free number, here. */
	KMS_ERR_MAX = 35
} kms_err;

/* The version of kmsd this library belongs to ("0.1.0"). */
#define KMS_VERSION "0.1.0"
/* The library's own version string; never NULL, static storage. */
KMS_API const char *kms_version(void);

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

/* ------------------------------------------------------------ envelope */

/*
 * Envelope encryption in the AWS Encryption SDK's message format, version
 * 2 (PROTOCOL.md, "Envelope messages"): a data key from kmsd
 * (GenerateDataKey under key_id; one encrypted data key with provider id
 * "aws-kms" and the key ARN kmsd returned as provider info), the data in
 * AES-256-GCM frames under a key derived from it with HKDF-SHA512, key
 * commitment in the header.  Messages written here are read by the AWS
 * Encryption SDKs pointed at kmsd, and the other way round.
 *
 * Decryption refuses suites without key commitment and non-framed
 * bodies, checks the commitment and the header before any plaintext,
 * releases each frame only after its tag verifies, and fails with
 * KMS_EINVALIDCIPHERTEXT naming the frame when frames are reordered,
 * dropped, duplicated, altered or missing at the end.
 *
 * With the signing suite (0x0578) the footer's ECDSA signature covers the
 * whole message and is checked at the end: streamed plaintext (the
 * _fd and incremental calls) is then final only when the call that ends
 * the message returns 0; discard what was written otherwise (kmsctl
 * writes to a temporary file and renames it only on success).  The
 * one-shot kms_envelope_decrypt() returns nothing on failure.
 *
 * Memory: a stream holds one frame of plaintext (locked) and one of
 * ciphertext, whatever its size.  Data keys and derived keys live in
 * locked memory and are wiped when the call or context ends.
 */
#define KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY 0x0478
#define KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 0x0578
#define KMS_FRAME_LENGTH_DEFAULT 4096	/* as the AWS Encryption SDK */
#define KMS_FRAME_LENGTH_MAX (4u << 20)	/* bounds a stream's memory */

/* Where output goes: called with each piece, in order; return 0, or
 * non-zero to stop the stream (the call then fails with KMS_EIO). */
typedef int (*kms_write_fn)(void *arg, const uint8_t *p, size_t n);

typedef struct kms_dk_cache kms_dk_cache;

typedef struct kms_envelope_encrypt_opts {
	uint16_t algorithm;		/* 0 = 0x0478 */
	uint32_t frame_length;		/* 0 = 4096; ≤ KMS_FRAME_LENGTH_MAX */
	kms_context context;		/* no key may start "aws-crypto-" */
	kms_grant_tokens grant_tokens;
	kms_dk_cache *cache;		/* NULL = a data key per message */
	/* The plaintext's size when known in advance, for the cache's byte
	 * limit; 0 = unknown (then the cache is not used, as the SDK). */
	uint64_t plaintext_length;
} kms_envelope_encrypt_opts;

typedef struct kms_envelope_decrypt_opts {
	/* Pairs the message's context must hold, with these values;
	 * otherwise KMS_EINVALIDCIPHERTEXT before kmsd is asked. */
	kms_context required;
	kms_grant_tokens grant_tokens;
	kms_dk_cache *cache;		/* NULL = none */
} kms_envelope_decrypt_opts;

/* What a decrypted message said about itself.  pairs are owned (the whole
 * context, aws-crypto-public-key included for 0x0578); free with
 * kms_envelope_info_free. */
typedef struct kms_envelope_info {
	uint16_t algorithm;
	uint32_t frame_length;
	uint8_t message_id[32];
	char key_arn[KMS_ARN_MAX];	/* the kms key that unwrapped it */
	kms_context_pair *pairs;
	size_t npairs;
} kms_envelope_info;
KMS_API void kms_envelope_info_free(kms_envelope_info *info);

/* One-shot: the whole message into *out (free with kms_buf_free).
 * opts may be NULL (defaults, empty context). */
KMS_API int kms_envelope_encrypt(kms_client *c, const char *key_id,
    const kms_envelope_encrypt_opts *opts, const uint8_t *plaintext,
    size_t len, kms_buf *out, kms_error_info *ei);
/* One-shot: the plaintext into *out (locked memory, kms_secret_free);
 * info (may be NULL) filled on success.  Nothing is returned unless the
 * whole message, signature included, verified. */
KMS_API int kms_envelope_decrypt(kms_client *c,
    const kms_envelope_decrypt_opts *opts, const uint8_t *msg, size_t len,
    kms_secret *out, kms_envelope_info *info, kms_error_info *ei);

/* Streams: read in_fd to its end, write out_fd.  Descriptors are
 * borrowed (not closed). */
KMS_API int kms_envelope_encrypt_fd(kms_client *c, const char *key_id,
    const kms_envelope_encrypt_opts *opts, int in_fd, int out_fd,
    kms_error_info *ei);
KMS_API int kms_envelope_decrypt_fd(kms_client *c,
    const kms_envelope_decrypt_opts *opts, int in_fd, int out_fd,
    kms_envelope_info *info, kms_error_info *ei);

/*
 * Incremental: for servers that encrypt or decrypt as bytes arrive.  _new
 * fetches the data key (encryption writes the header to sink at once);
 * each _update consumes all it is given and writes what is complete;
 * _final ends the message (encryption: the final frame and footer;
 * decryption: checks that the message was complete and, for 0x0578, its
 * signature, and fills info).  After an error the context only frees.
 * Memory stays bounded by the frame length whatever the stream's size.
 * Options and the key id are borrowed for _new only (a decryptor copies
 * its required pairs and grant tokens); the client and the cache are used
 * until the context is freed and must outlive it.  A context is used by
 * one thread at a time; sink is called from the calling thread.
 */
typedef struct kms_encryptor kms_encryptor;
typedef struct kms_decryptor kms_decryptor;
KMS_API int kms_encryptor_new(kms_client *c, const char *key_id,
    const kms_envelope_encrypt_opts *opts, kms_write_fn sink, void *arg,
    kms_encryptor **ep, kms_error_info *ei);
KMS_API int kms_encryptor_update(kms_encryptor *e, const uint8_t *p,
    size_t n, kms_error_info *ei);
KMS_API int kms_encryptor_final(kms_encryptor *e, kms_error_info *ei);
KMS_API void kms_encryptor_free(kms_encryptor *e);
/* The data key is fetched when the header has arrived (in _update). */
KMS_API int kms_decryptor_new(kms_client *c,
    const kms_envelope_decrypt_opts *opts, kms_write_fn sink, void *arg,
    kms_decryptor **dp, kms_error_info *ei);
KMS_API int kms_decryptor_update(kms_decryptor *d, const uint8_t *p,
    size_t n, kms_error_info *ei);
KMS_API int kms_decryptor_final(kms_decryptor *d, kms_envelope_info *info,
    kms_error_info *ei);
KMS_API void kms_decryptor_free(kms_decryptor *d);

/*
 * The data-key cache, as the AWS Encryption SDK's caching materials
 * manager.  Encryption reuses a data key for the same key id, algorithm
 * and context while it is younger than max_age_ms, has protected fewer
 * than max_messages messages and max_bytes bytes (a message is counted
 * before it is written, so a limit is never passed); decryption maps an
 * encrypted data key (with its context) to its data key for
 * decrypt_ttl_ms.  At most capacity entries, least recently used evicted
 * first.  Data keys live in locked memory, wiped on eviction and free.
 * Thread-safe: share one cache between threads and clients.
 */
typedef struct kms_dk_cache_opts {
	size_t capacity;		/* entries; 0 = 1000 */
	uint64_t max_age_ms;		/* > 0 */
	uint64_t max_messages;		/* 0 = 2^32 */
	uint64_t max_bytes;		/* 0 = 2^63 - 1 */
	uint64_t decrypt_ttl_ms;	/* 0 = max_age_ms */
} kms_dk_cache_opts;
typedef struct kms_dk_cache_stats {
	uint64_t hits, misses, evictions;
	size_t entries;
} kms_dk_cache_stats;
KMS_API int kms_dk_cache_new(const kms_dk_cache_opts *opts,
    kms_dk_cache **cp);
KMS_API void kms_dk_cache_free(kms_dk_cache *c);
KMS_API void kms_dk_cache_stats_get(kms_dk_cache *c, kms_dk_cache_stats *s);
/* Drop every entry (counted as evictions). */
KMS_API void kms_dk_cache_clear(kms_dk_cache *c);

/* Requests this client has sent to kmsd (a Batch counts once). */
KMS_API uint64_t kms_client_requests(kms_client *c);

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
