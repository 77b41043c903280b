/*
 * op.h — what operation handlers share: the per-request context, typed
 * readers for request fields (each failure is a typed error with an
 * AWS-style message), and the handler table entry.
 *
 * Handlers run on one worker thread; everything here is per-request.
 */
#ifndef KMSD_OP_H
#define KMSD_OP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/b64.h"
#include "common/blob.h"
#include "common/json.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"

/* An error's message: room for AWS's validation messages, which quote
 * the values they refuse. */
#define OP_MSG_MAX 1024
#define KMS_MAX_DESCRIPTION 8192	/* AWS Description, characters */
#define KMS_MAX_KEY_ID 2048		/* AWS KeyId length */
#define KMS_MAX_GRANT_TOKEN 8192	/* AWS GrantToken length */
#define KMS_MAX_TAGS 50			/* AWS tags per key */
#define KMS_MAX_TAG_KEY 128		/* AWS TagKey, characters */
#define KMS_MAX_TAG_VALUE 256		/* AWS TagValue, characters */
/* AWS's TagException for more than KMS_MAX_TAGS (LocalStack's snapshot
 * of AWS records it for CreateKey). */
#define OP_TAGS_TOO_MANY "Too many tags"
#define KMS_LIST_DEFAULT 100		/* AWS ListKeys default Limit */
#define KMS_LIST_MAX 1000		/* AWS ListKeys maximum Limit */

/*
 * Random bytes a Batch draws ahead for the items still to come (op_random):
 * a 32-byte data key and its IV per item, rounded; at most OP_RANDOM_MAX
 * in one C_GenerateRandom call.
 */
#define OP_RANDOM_PER_ITEM 48
#define OP_RANDOM_MAX 8192
/* Alignment of every carving of the scratch (op_secret). */
#define OP_SECRET_ALIGN 16

/*
 * The worker's locked scratch, sized so that every message within the
 * limits (DESIGN §4: ≤ JSON_MAX_MESSAGE, items ≤ JSON_MAX_REQUEST, ≤
 * KMS_MAX_BATCH items) has room for all its secrets at once.  Only secrets
 * go there (plaintexts, data keys, random bytes, the base64 of a secret
 * while it is copied into the reply); ciphertexts go to the request's heap
 * (op_heap).  What a message keeps until its Batch's HSM calls are made:
 *
 *  - plaintexts carried in the message (Encrypt's Plaintext) or opened from
 *    ciphertexts carried in it (Decrypt, ReEncrypt: shorter than the
 *    ciphertext): at most 3/4 of the base64 text they come from, and each
 *    base64 text is a different part of the message: ≤ 3/4 of the message;
 *  - generated ones: per item at most a data key and its IV (Encrypt and
 *    ReEncrypt draw an IV only);
 *  - random bytes drawn ahead and left over when the next need does not
 *    fit in them: less than that need, so at most the generated ones
 *    again, and one draw ahead at the end;
 *  - per item up to three carvings, each rounded up to OP_SECRET_ALIGN;
 *
 * and, one at a time and given back at once (op_secret_release), the
 * base64 of the longest output and one GenerateRandom's bytes.  About
 * 2.9 MB.
 */
#define OP_ITEM_GENERATED (KMS_MAX_DATA_KEY_BYTES + BLOB_IV_LEN)
#define OP_SCRATCH_CAP							\
	(JSON_MAX_MESSAGE / 4 * 3 +					\
	    2 * KMS_MAX_BATCH * OP_ITEM_GENERATED + OP_RANDOM_MAX +	\
	    3 * KMS_MAX_BATCH * OP_SECRET_ALIGN +			\
	    B64_ENCODED_LEN(KMS_MAX_CIPHERTEXT) + 1 + KMS_MAX_RANDOM_BYTES + \
	    2 * OP_SECRET_ALIGN)
struct audit_note;
struct audit_origin;

struct opctx {
	struct worker *w;
	const struct principal *p;
	const struct audit_origin *origin;	/* NULL: IPC */
	const char *action;
	json_t *req;
	char msg[OP_MSG_MAX];
	char request_alias[300];	/* alias the KeyId named, if any */
	const char *tokens[KMS_MAX_GRANT_TOKENS];	/* GrantTokens */
	size_t ntokens;
	char grant_id[72];		/* grant that allowed the request */
	/* Locked scratch for secrets (OP_SCRATCH_CAP): wiped after every
	 * request. */
	uint8_t *secret;
	size_t secret_cap, secret_used;
	/* The request's other buffers (ciphertexts), freed when it ends. */
	struct op_block *heap;
	/* HSM random bytes drawn for this request, not yet handed out (in
	 * the scratch), and how many the rest of a Batch may want. */
	uint8_t *rnd;
	size_t rnd_len, rnd_off, rnd_hint;
	/* Inside a Batch with batch_hsm_exclusive: HSM calls recorded here
	 * and made together, with the HSM to this Batch (see run_batch).
	 * NULL: call at once. */
	struct hsm_job *jobs;
	size_t njobs, jobs_cap;
	size_t item;			/* the Batch item being run */
	/* What the audit record of this request (or item) needs to know:
	 * keys resolved and authorised against, the grant used.  NULL:
	 * auditing off. */
	struct audit_note *note;
	struct audit_note *notes;	/* a Batch's, one per item */
};

/*
 * An HSM call recorded for later: everything but the HSM's part is ready
 * (parsed, authorised).  Its output's base64 goes into obj[name] once the
 * call is made.
 *
 * JOB_SEAL: encrypt in (inlen bytes) under the key's current version,
 * chosen when it is pinned, into out (BLOB_OVERHEAD + inlen).
 * JOB_OPEN: decrypt the blob parsed as blob (its version named there)
 * into out.  Either way outlen is known when the call is recorded.
 */
enum { JOB_SEAL = 1, JOB_OPEN };

struct hsm_job {
	int kind;
	size_t item;			/* Batch item whose response it is */
	const char *action;		/* its operation, for messages */
	struct key_info ki;
	uint8_t iv[12];			/* JOB_SEAL: BLOB_IV_LEN */
	const uint8_t *in;		/* JOB_SEAL: in the request's scratch */
	size_t inlen;
	struct blob_view blob;		/* JOB_OPEN: into the scratch */
	uint8_t *ctx;			/* copy, malloc'd; run_batch frees */
	size_t ctxlen;
	uint8_t *out;			/* in the request's scratch */
	size_t outlen;
	json_t *obj;			/* the item's response (borrowed) */
	const char *name;		/* its field for out */
	int err;			/* set when the call failed */
};

typedef int (*op_fn)(struct opctx *c, json_t **resp);

/*
 * Whether an operation may be a Batch item, and how its reply is bounded:
 * OP_BATCH's reply is at most its request item plus JSON_MAX_ITEM_GROWTH
 * (common/json.h); OP_BATCH_MEASURED's carries stored data (DescribeKey:
 * the description) and is measured against what is left of
 * JSON_MAX_REPLY (run_batch).
 */
enum { OP_SOLO = 0, OP_BATCH, OP_BATCH_MEASURED };

struct op_def {
	const char *name;
	op_fn fn;
	int batch;			/* OP_SOLO, OP_BATCH, ... */
};

/* Set c->msg and return err. */
int op_fail(struct opctx *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Field readers: absent + !required → 0 with *out untouched/NULL.
 * req_string's lengths are in characters (code points), as AWS counts
 * them: a value may be up to 4 bytes a character, so copy it only into
 * a buffer sized for that.  req_string_bytes counts bytes, for limits AWS
 * states in bytes (a key policy). */
int req_string(struct opctx *c, const char *field, int required,
    size_t minlen, size_t maxlen, const char **out);
int req_string_bytes(struct opctx *c, const char *field, int required,
    size_t minlen, size_t maxlen, const char **out);
int req_int(struct opctx *c, const char *field, int required, long long min,
    long long max, long long *out, int *present);
int req_bool(struct opctx *c, const char *field, int *out);
/* Base64 blob into out (outsz bytes); length checked in decoded bytes. */
int req_blob(struct opctx *c, const char *field, int required, size_t minlen,
    size_t maxlen, uint8_t *out, size_t outsz, size_t *outlen);
/* The same for a required blob, into a buffer of its size carved for the
 * request: from the locked scratch when secret, else from op_heap.  *out
 * lives as long as the request. */
int req_blob_alloc(struct opctx *c, const char *field, size_t minlen,
    size_t maxlen, int secret, uint8_t **out, size_t *outlen);
/* Canonical encryption context of field (absent = empty). */
int req_context(struct opctx *c, const char *field, uint8_t *out,
    size_t outsz, size_t *outlen);
/* Limit of a List operation: 1 to KMS_LIST_MAX as AWS accepts, def when
 * absent, at most page_max (the list's own page). */
int req_limit(struct opctx *c, long long def, long long page_max,
    long long *out);
/* Marker of a List operation: where list's next page starts, as
 * resp_next_marker made it, into pos (possz); *present 0 when absent.
 * InvalidMarkerException for any other marker. */
int req_marker(struct opctx *c, const char *list, char *pos, size_t possz,
    int *present);
/* Set NextMarker (opaque) and Truncated true on a List reply. */
int resp_next_marker(struct opctx *c, json_t *resp, const char *list,
    const char *pos);
int req_grant_tokens(struct opctx *c);
/* Reject a non-default EncryptionAlgorithm. */
int req_algorithm(struct opctx *c, const char *field);
/* Carve n bytes of locked scratch for this request; NULL when it is
 * spent (OP_SCRATCH_CAP says why it is not, within the limits). */
uint8_t *op_secret(struct opctx *c, size_t n);
/* The scratch's fill, and giving back (wiped) everything carved since a
 * mark: for what is needed only a moment (a secret's base64). */
size_t op_secret_mark(const struct opctx *c);
void op_secret_release(struct opctx *c, size_t mark);
/* n bytes of ordinary memory that live as long as the request (its
 * ciphertexts); NULL when out of memory. */
uint8_t *op_heap(struct opctx *c, size_t n);
/* n fresh random bytes from the HSM, in the request's locked scratch
 * (valid until the request ends).  A Batch draws for several items in one
 * C_GenerateRandom call.  0 or the HSM error. */
int op_random(struct opctx *c, size_t n, uint8_t **out);

/* Set a base64 field on obj. */
int resp_blob(json_t *obj, const char *field, const uint8_t *buf, size_t len,
    struct opctx *c);
/* The same for the output of an HSM call (a blob sealed, a plaintext
 * opened): when the call was recorded for later (c->jobs), the field is
 * set once it is made. */
int resp_hsm(json_t *obj, const char *field, uint8_t *buf, size_t len,
    struct opctx *c);
/* Make a recorded HSM call: 0 (j->outlen set), or an error with c->msg
 * set. */
int op_hsm_job(struct opctx *c, struct hsm_job *j);

/* Resolve KeyId (id, key ARN, alias name or alias ARN) for an operation;
 * fills info or fails with AWS's error.  Remembers an alias used. */
int op_key(struct opctx *c, const char *key_id, struct key_info *ki);
/* Is the caller allowed action on ki?  ctx_field names the request's
 * encryption context field (NULL: none); GrantTokens are checked. */
int op_authorize(struct opctx *c, const struct key_info *ki,
    const char *action, const char *ctx_field);
/* Validate an alias name as AWS does (InvalidAliasNameException). */
int op_alias_name_ok(struct opctx *c, const char *name);
/* The error for using a key in its state for crypto. */
int op_state_error(struct opctx *c, int err, const struct key_info *ki);

/* Handlers. */
int op_create_key(struct opctx *c, json_t **resp);
int op_describe_key(struct opctx *c, json_t **resp);
int op_list_keys(struct opctx *c, json_t **resp);
int op_update_key_description(struct opctx *c, json_t **resp);
int op_enable_key(struct opctx *c, json_t **resp);
int op_disable_key(struct opctx *c, json_t **resp);
int op_encrypt(struct opctx *c, json_t **resp);
int op_decrypt(struct opctx *c, json_t **resp);
int op_re_encrypt(struct opctx *c, json_t **resp);
int op_generate_data_key(struct opctx *c, json_t **resp);
int op_generate_data_key_without_plaintext(struct opctx *c, json_t **resp);
int op_generate_random(struct opctx *c, json_t **resp);
int op_get_key_policy(struct opctx *c, json_t **resp);
int op_put_key_policy(struct opctx *c, json_t **resp);
int op_list_key_policies(struct opctx *c, json_t **resp);
int op_create_grant(struct opctx *c, json_t **resp);
int op_list_grants(struct opctx *c, json_t **resp);
int op_list_retirable_grants(struct opctx *c, json_t **resp);
int op_retire_grant(struct opctx *c, json_t **resp);
int op_revoke_grant(struct opctx *c, json_t **resp);
int op_create_alias(struct opctx *c, json_t **resp);
int op_update_alias(struct opctx *c, json_t **resp);
int op_delete_alias(struct opctx *c, json_t **resp);
int op_list_aliases(struct opctx *c, json_t **resp);
int op_tag_resource(struct opctx *c, json_t **resp);
int op_untag_resource(struct opctx *c, json_t **resp);
int op_list_resource_tags(struct opctx *c, json_t **resp);
int op_create_backup(struct opctx *c, json_t **resp);
/* op_lifecycle.c */
int op_enable_key_rotation(struct opctx *c, json_t **resp);
int op_disable_key_rotation(struct opctx *c, json_t **resp);
int op_get_key_rotation_status(struct opctx *c, json_t **resp);
int op_rotate_key_on_demand(struct opctx *c, json_t **resp);
int op_list_key_rotations(struct opctx *c, json_t **resp);
int op_schedule_key_deletion(struct opctx *c, json_t **resp);
int op_cancel_key_deletion(struct opctx *c, json_t **resp);
/* op_import.c */
int op_get_parameters_for_import(struct opctx *c, json_t **resp);
int op_import_key_material(struct opctx *c, json_t **resp);
int op_delete_imported_key_material(struct opctx *c, json_t **resp);
/* op_admin.c */
int op_advance_test_clock(struct opctx *c, json_t **resp);
int op_rotate_domain_key(struct opctx *c, json_t **resp);
int op_get_domain_key_status(struct opctx *c, json_t **resp);
int op_get_audit_public_key(struct opctx *c, json_t **resp);
int op_get_key_last_usage(struct opctx *c, json_t **resp);
/* KeyId field of a management operation; allow_alias 0 refuses one. */
int op_mgmt_key(struct opctx *c, int allow_alias, struct key_info *ki);
/* The key's store row (malloc'd) / commit a changed row and reply {}. */
int op_load_row(struct opctx *c, const struct key_info *ki,
    struct store_key **kp);
int op_commit_key(struct opctx *c, const struct key_info *ki,
    struct store_key *k, json_t **resp);
json_t *op_key_metadata(const struct kmsd *d, const struct store_key *k);
/* Shared by the tag operations and CreateKey. */
int op_parse_tags(struct opctx *c, json_t *tags, struct store_tag **out,
    size_t *n);

#endif
