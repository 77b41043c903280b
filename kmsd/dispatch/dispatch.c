/*
 * dispatch.c — request bytes + principal → reply object.
 *
 * Knows no transport: the IPC server, tests and fuzzers call it alike.
 * Every failure becomes {"__type": <AWS name>, "message": ...}; the daemon
 * never drops a request it cannot parse.  Batch runs its items in order on
 * the same worker (one HSM session, one store connection) and answers each
 * in place; one item's failure does not fail the others.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/b64.h"
#include "common/cause.h"
#include "common/ctx.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/secmem.h"
#include "kmsd/audit/audit.h"
#include "kmsd/authz/authz.h"
#include "kmsd/dispatch/dispatch.h"
#include "kmsd/dispatch/validate.h"
#include "kmsd/frontend/metrics.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"

/* Sorted by name (binary search). */
static const struct op_def ops[] = {
	{ "AdvanceTestClock", op_advance_test_clock, OP_SOLO },
	{ "CancelKeyDeletion", op_cancel_key_deletion, OP_SOLO },
	{ "CreateAlias", op_create_alias, OP_SOLO },
	{ "CreateBackup", op_create_backup, OP_SOLO },
	{ "CreateGrant", op_create_grant, OP_SOLO },
	{ "CreateKey", op_create_key, OP_SOLO },
	{ "Decrypt", op_decrypt, OP_BATCH },
	{ "DeleteAlias", op_delete_alias, OP_SOLO },
	{ "DeleteImportedKeyMaterial", op_delete_imported_key_material, OP_SOLO },
	{ "DescribeKey", op_describe_key, OP_BATCH_MEASURED },
	{ "DisableKey", op_disable_key, OP_SOLO },
	{ "DisableKeyRotation", op_disable_key_rotation, OP_SOLO },
	{ "EnableKey", op_enable_key, OP_SOLO },
	{ "EnableKeyRotation", op_enable_key_rotation, OP_SOLO },
	{ "Encrypt", op_encrypt, OP_BATCH },
	{ "GenerateDataKey", op_generate_data_key, OP_BATCH },
	{ "GenerateDataKeyWithoutPlaintext",
	    op_generate_data_key_without_plaintext, OP_BATCH },
	{ "GenerateRandom", op_generate_random, OP_BATCH },
	{ "GetAuditPublicKey", op_get_audit_public_key, OP_SOLO },
	{ "GetDomainKeyStatus", op_get_domain_key_status, OP_SOLO },
	{ "GetKeyLastUsage", op_get_key_last_usage, OP_SOLO },
	{ "GetKeyPolicy", op_get_key_policy, OP_SOLO },
	{ "GetKeyRotationStatus", op_get_key_rotation_status, OP_SOLO },
	{ "GetParametersForImport", op_get_parameters_for_import, OP_SOLO },
	{ "ImportKeyMaterial", op_import_key_material, OP_SOLO },
	{ "ListAliases", op_list_aliases, OP_SOLO },
	{ "ListGrants", op_list_grants, OP_SOLO },
	{ "ListKeyPolicies", op_list_key_policies, OP_SOLO },
	{ "ListKeyRotations", op_list_key_rotations, OP_SOLO },
	{ "ListKeys", op_list_keys, OP_SOLO },
	{ "ListResourceTags", op_list_resource_tags, OP_SOLO },
	{ "ListRetirableGrants", op_list_retirable_grants, OP_SOLO },
	{ "PutKeyPolicy", op_put_key_policy, OP_SOLO },
	{ "ReEncrypt", op_re_encrypt, OP_BATCH },
	{ "RetireGrant", op_retire_grant, OP_SOLO },
	{ "RevokeGrant", op_revoke_grant, OP_SOLO },
	{ "RotateDomainKey", op_rotate_domain_key, OP_SOLO },
	{ "RotateKeyOnDemand", op_rotate_key_on_demand, OP_SOLO },
	{ "ScheduleKeyDeletion", op_schedule_key_deletion, OP_SOLO },
	{ "TagResource", op_tag_resource, OP_SOLO },
	{ "UntagResource", op_untag_resource, OP_SOLO },
	{ "UpdateAlias", op_update_alias, OP_SOLO },
	{ "UpdateKeyDescription", op_update_key_description, OP_SOLO },
};

/* The audit record's resources: a key this request resolved or was
 * authorised against (each once, in order). */
static void
note_key(struct opctx *c, const char *arn)
{
	struct audit_note *n = c->note;
	int i;

	if (n == NULL) {
		return;
	}
	for (i = 0; i < n->narn; i++) {
		if (strcmp(n->arn[i], arn) == 0) {
			return;
		}
	}
	if (n->narn < AUDIT_NOTE_KEYS && strlen(arn) < sizeof(n->arn[0])) {
		memcpy(n->arn[n->narn++], arn, strlen(arn) + 1);
	}
}

int
op_fail(struct opctx *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	return err;
}

uint8_t *
op_secret(struct opctx *c, size_t n)
{
	uint8_t *p;

	if (c->secret == NULL || n > c->secret_cap - c->secret_used) {
		return NULL;
	}
	/* Aligned carvings keep later ones aligned. */
	n = (n + OP_SECRET_ALIGN - 1) & ~(size_t)(OP_SECRET_ALIGN - 1);
	if (n > c->secret_cap - c->secret_used) {
		return NULL;
	}
	p = c->secret + c->secret_used;
	c->secret_used += n;
	return p;
}

size_t
op_secret_mark(const struct opctx *c)
{
	return c->secret_used;
}

void
op_secret_release(struct opctx *c, size_t mark)
{
	KMS_ASSERT(mark <= c->secret_used);
	secure_wipe(c->secret + mark, c->secret_used - mark);
	c->secret_used = mark;
	/* Random bytes drawn ahead in what was given back are gone too. */
	if (c->rnd != NULL && c->rnd >= c->secret + mark) {
		c->rnd = NULL;
		c->rnd_len = c->rnd_off = 0;
	}
}

/* A block of the request's heap. */
struct op_block {
	struct op_block *next;
	uint8_t data[];
};

uint8_t *
op_heap(struct opctx *c, size_t n)
{
	struct op_block *b;

	if (n > SIZE_MAX - sizeof(*b) || (b = malloc(sizeof(*b) + n)) ==
	    NULL) {
		return NULL;
	}
	b->next = c->heap;
	c->heap = b;
	return b->data;
}

static void
heap_free(struct opctx *c)
{
	struct op_block *b;

	while ((b = c->heap) != NULL) {
		c->heap = b->next;
		free(b);
	}
}

/*
 * Randomness is drawn per request (docs/design.md §3: one C_GenerateRandom call
 * per request): a single request gets exactly what it asks for; in a
 * Batch the first item that needs random bytes draws for the items still
 * to come, so a Batch of data keys costs one HSM call for all its keys and
 * IVs instead of one per item.  Bytes not handed out stay in the locked
 * scratch and are wiped with it when the request ends.
 */
int
op_random(struct opctx *c, size_t n, uint8_t **out)
{
	size_t want = n;
	uint8_t *p;
	int r;

	if (n > c->rnd_len - c->rnd_off) {
		if (c->rnd_hint > want) {
			want = c->rnd_hint < OP_RANDOM_MAX ? c->rnd_hint :
			    OP_RANDOM_MAX;
			if (want < n) {
				want = n;
			}
		}
		if ((p = op_secret(c, want)) == NULL) {
			return KMS_EINTERNAL;
		}
		if ((r = hsm_random(c->w->hs, p, want)) != 0) {
			return r;
		}
		c->rnd = p;
		c->rnd_len = want;
		c->rnd_off = 0;
	}
	*out = c->rnd + c->rnd_off;
	c->rnd_off += n;
	return 0;
}

static json_t *
field(struct opctx *c, const char *name)
{
	json_t *v = json_object_get(c->req, name);

	return json_is_null(v) ? NULL : v;
}

/*
 * AWS's answer to one member that fails a constraint of its model (its
 * name lowerCamelCase): value NULL leaves the value out, as AWS does for
 * blobs and null.  The constraint is AWS's wording ("Member must ...").
 */
static int
fail_member(struct opctx *c, const char *name, const char *value,
    const char *constraint)
{
	char at[96];
	int q, cut;

	validate_member_name(name, at, sizeof(at));
	if (value == NULL) {
		return op_fail(c, KMS_EVALIDATION, "1 validation error "
		    "detected: Value at '%s' failed to satisfy constraint: %s",
		    at, constraint);
	}
	q = validate_quote_len(value, &cut);
	return op_fail(c, KMS_EVALIDATION, "1 validation error detected: "
	    "Value '%.*s%s' at '%s' failed to satisfy constraint: %s", q, value,
	    cut ? "..." : "", at, constraint);
}

static int
fail_null(struct opctx *c, const char *name)
{
	char at[96];

	validate_member_name(name, at, sizeof(at));
	return op_fail(c, KMS_EVALIDATION, "1 validation error detected: "
	    "Value null at '%s' failed to satisfy constraint: Member must not "
	    "be null", at);
}

/* A length outside [minlen, maxlen]: AWS names the bound crossed. */
static int
fail_length(struct opctx *c, const char *name, const char *value,
    size_t len, size_t minlen, size_t maxlen)
{
	char constraint[96];

	snprintf(constraint, sizeof(constraint), "Member must have length "
	    "%s than or equal to %zu", len < minlen ? "greater" : "less",
	    len < minlen ? minlen : maxlen);
	return fail_member(c, name, value, constraint);
}

/* AWS's limits on strings count characters; unit 1 counts bytes. */
static int
string_field(struct opctx *c, const char *name, int required, size_t minlen,
    size_t maxlen, int bytes, const char **out)
{
	json_t *v = field(c, name);
	size_t len;

	*out = NULL;
	if (v == NULL) {
		if (required) {
			return fail_null(c, name);
		}
		return 0;
	}
	if (!json_is_string(v)) {
		return op_fail(c, KMS_ESERIALIZATION, "%s must be a string",
		    name);
	}
	len = json_string_length(v);
	if (strlen(json_string_value(v)) != len) {
		return op_fail(c, KMS_EVALIDATION, "%s contains a NUL", name);
	}
	/* The parser let only valid UTF-8 through; a value built otherwise
	 * (tests, fuzzers) is checked here. */
	if (!ctx_utf8_valid(json_string_value(v), len)) {
		return op_fail(c, KMS_EVALIDATION, "%s is not UTF-8", name);
	}
	if (!bytes) {
		len = ctx_utf8_chars(json_string_value(v), len);
	}
	if (len < minlen || len > maxlen) {
		/* Never quoted: what the audit log must not hold (grant
		 * tokens, key policies: validate.c's HIDE_VALUE). */
		return fail_length(c, name, strcmp(name, "GrantToken") == 0 ||
		    strcmp(name, "Policy") == 0 ? NULL : json_string_value(v),
		    len, minlen, maxlen);
	}
	*out = json_string_value(v);
	return 0;
}

int
req_string(struct opctx *c, const char *name, int required, size_t minlen,
    size_t maxlen, const char **out)
{
	return string_field(c, name, required, minlen, maxlen, 0, out);
}

int
req_string_bytes(struct opctx *c, const char *name, int required,
    size_t minlen, size_t maxlen, const char **out)
{
	return string_field(c, name, required, minlen, maxlen, 1, out);
}

int
req_int(struct opctx *c, const char *name, int required, long long min,
    long long max, long long *out, int *present)
{
	json_t *v = field(c, name);
	char value[32], constraint[96];
	long long n;

	*present = 0;
	if (v == NULL) {
		if (required) {
			return fail_null(c, name);
		}
		return 0;
	}
	if (!json_is_integer(v)) {
		return op_fail(c, KMS_ESERIALIZATION, "%s must be an integer",
		    name);
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		snprintf(value, sizeof(value), "%lld", n);
		snprintf(constraint, sizeof(constraint), "Member must have "
		    "value %s than or equal to %lld", n < min ? "greater" :
		    "less", n < min ? min : max);
		return fail_member(c, name, value, constraint);
	}
	*out = json_integer_value(v);
	*present = 1;
	return 0;
}

int
req_bool(struct opctx *c, const char *name, int *out)
{
	json_t *v = field(c, name);

	*out = 0;
	if (v == NULL) {
		return 0;
	}
	if (!json_is_boolean(v)) {
		return op_fail(c, KMS_ESERIALIZATION, "%s must be a boolean",
		    name);
	}
	*out = json_is_true(v);
	return 0;
}

int
req_blob(struct opctx *c, const char *name, int required, size_t minlen,
    size_t maxlen, uint8_t *out, size_t outsz, size_t *outlen)
{
	json_t *v = field(c, name);
	size_t len, n = 0;

	*outlen = 0;
	if (v == NULL) {
		if (required) {
			return fail_null(c, name);
		}
		return 0;
	}
	if (!json_is_string(v)) {
		return op_fail(c, KMS_ESERIALIZATION, "%s must be a base64 "
		    "string", name);
	}
	len = json_string_length(v);
	/* Bound before decoding: the exact decoded size of well-formed
	 * base64 (ill-formed input is refused by b64_decode below). */
	n = b64_decoded_len(json_string_value(v), len);
	if (n > maxlen || n > outsz) {
		return fail_length(c, name, NULL, n, minlen, maxlen);
	}
	n = 0;
	if (b64_decode(json_string_value(v), len, out, outsz, &n) != 0) {
		return op_fail(c, KMS_ESERIALIZATION, "%s is not valid "
		    "base64", name);
	}
	if (n < minlen || n > maxlen) {
		secure_wipe(out, n);
		return fail_length(c, name, NULL, n, minlen, maxlen);
	}
	*outlen = n;
	return 0;
}

int
req_blob_alloc(struct opctx *c, const char *name, size_t minlen,
    size_t maxlen, int secret, uint8_t **out, size_t *outlen)
{
	json_t *v = field(c, name);
	size_t room = 0;
	uint8_t *buf;
	int r;

	/* Room for what the text can decode to (req_blob checks it). */
	if (json_is_string(v)) {
		room = B64_DECODED_MAX(json_string_length(v));
		if (room > maxlen) {
			room = maxlen;
		}
	}
	buf = secret ? op_secret(c, room) : op_heap(c, room);
	if (buf == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of request memory");
	}
	if ((r = req_blob(c, name, 1, minlen, maxlen, buf, room,
	    outlen)) != 0) {
		return r;
	}
	*out = buf;
	return 0;
}

int
req_context(struct opctx *c, const char *name, uint8_t *out, size_t outsz,
    size_t *outlen)
{
	json_t *v = field(c, name), *e;
	const char *k;
	char msg[256];
	int r;

	if (v != NULL && !json_is_object(v)) {
		return op_fail(c, KMS_ESERIALIZATION, "%s must be an object "
		    "of strings", name);
	}
	/* A map of strings: another type is the request's shape, not its
	 * content, wrong. */
	json_object_foreach(v, k, e) {
		if (!json_is_string(e)) {
			return op_fail(c, KMS_ESERIALIZATION, "%s must be an "
			    "object of strings", name);
		}
	}
	if ((r = ctx_canonical_json(v, out, outsz, outlen, msg,
	    sizeof(msg))) != 0) {
		return op_fail(c, r, "%s: %s", name, msg);
	}
	return 0;
}

int
req_limit(struct opctx *c, long long def, long long page_max,
    long long *out)
{
	long long v = def;
	int present, r;

	if ((r = req_int(c, "Limit", 0, 1, KMS_LIST_MAX, &v, &present)) != 0) {
		return r;
	}
	/* AWS accepts up to KMS_LIST_MAX everywhere and "might return
	 * fewer": each list pages at most its documented maximum. */
	*out = v < page_max ? v : page_max;
	return 0;
}

/*
 * Paging markers are opaque to clients, as AWS's are: base64 of
 * "<list>:<where the next page starts>".  A marker that is not one kmsd
 * made for this list is InvalidMarkerException.
 */
#define MARKER_MAX 1024		/* AWS MarkerType */

int
req_marker(struct opctx *c, const char *list, char *pos, size_t possz,
    int *present)
{
	uint8_t raw[MARKER_MAX];
	const char *m;
	size_t n = 0, plen = strlen(list);
	int r;

	*present = 0;
	pos[0] = '\0';
	if ((r = req_string(c, "Marker", 0, 1, MARKER_MAX, &m)) != 0 ||
	    m == NULL) {
		return r;
	}
	if (b64_decode(m, strlen(m), raw, sizeof(raw), &n) != 0 ||
	    n <= plen + 1 || memcmp(raw, list, plen) != 0 ||
	    raw[plen] != ':' || n - plen - 1 >= possz ||
	    memchr(raw, '\0', n) != NULL) {
		return op_fail(c, KMS_EINVALIDMARKER, "Invalid Marker");
	}
	memcpy(pos, raw + plen + 1, n - plen - 1);
	pos[n - plen - 1] = '\0';
	*present = 1;
	return 0;
}

int
resp_next_marker(struct opctx *c, json_t *resp, const char *list,
    const char *pos)
{
	char raw[MARKER_MAX / 4 * 3], b64[MARKER_MAX + 1];
	int n;

	n = snprintf(raw, sizeof(raw), "%s:%s", list, pos);
	if (n < 0 || (size_t)n >= sizeof(raw) ||
	    b64_encode((const uint8_t *)raw, (size_t)n, b64,
	    sizeof(b64)) != 0 ||
	    json_object_set_new(resp, "NextMarker", json_string(b64)) != 0 ||
	    json_object_set_new(resp, "Truncated", json_true()) != 0) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

int
req_grant_tokens(struct opctx *c)
{
	json_t *v = field(c, "GrantTokens"), *t;
	char at[48];
	size_t i, len;

	c->ntokens = 0;
	if (v == NULL) {
		return 0;
	}
	if (!json_is_array(v)) {
		return op_fail(c, KMS_ESERIALIZATION, "GrantTokens must be a "
		    "list of strings");
	}
	if (json_array_size(v) > KMS_MAX_GRANT_TOKENS) {
		return fail_length(c, "GrantTokens", NULL, json_array_size(v),
		    0, KMS_MAX_GRANT_TOKENS);
	}
	json_array_foreach(v, i, t) {
		if (!json_is_string(t)) {
			return op_fail(c, KMS_ESERIALIZATION, "GrantTokens "
			    "must be a list of strings");
		}
		len = ctx_utf8_chars(json_string_value(t),
		    json_string_length(t));
		if (len < 1 || len > KMS_MAX_GRANT_TOKEN) {
			snprintf(at, sizeof(at), "GrantTokens.%zu.member",
			    i + 1);
			return fail_length(c, at, NULL, len, 1,
			    KMS_MAX_GRANT_TOKEN);
		}
		c->tokens[c->ntokens++] = json_string_value(t);
	}
	return 0;
}

int
op_authorize(struct opctx *c, const struct key_info *ki, const char *action,
    const char *ctx_field)
{
	kms_context_pair pairs[CTX_MAX_PAIRS];
	struct authz_req r;
	json_t *ctx = ctx_field ? field(c, ctx_field) : NULL, *v;
	const char *k;
	int rc;

	memset(&r, 0, sizeof(r));
	r.action = action;
	r.bypass_lockout = -1;
	r.request_alias = c->request_alias[0] ? c->request_alias : NULL;
	r.grant_tokens = c->tokens;
	r.ngrant_tokens = c->ntokens;
	if (json_is_object(ctx)) {
		json_object_foreach(ctx, k, v) {
			if (r.nctx == CTX_MAX_PAIRS || !json_is_string(v)) {
				return op_fail(c, KMS_EVALIDATION, "%s: at most "
				    "%d string pairs", ctx_field,
				    CTX_MAX_PAIRS);
			}
			pairs[r.nctx].key = k;
			pairs[r.nctx].value = json_string_value(v);
			r.nctx++;
		}
		r.ctx = pairs;
	}
	rc = authz_check(c->w, c->p, ki, &r, c->grant_id,
	    sizeof(c->grant_id), c->msg, sizeof(c->msg));
	note_key(c, ki->arn);
	if (c->note != NULL && c->grant_id[0] != '\0') {
		snprintf(c->note->grant_id, sizeof(c->note->grant_id), "%s",
		    c->grant_id);
	}
	return rc;
}

int
req_algorithm(struct opctx *c, const char *name)
{
	const char *a;
	int r;

	if ((r = req_string(c, name, 0, 1, 64, &a)) != 0 || a == NULL) {
		return r;
	}
	if (strcmp(a, "SYMMETRIC_DEFAULT") == 0) {
		return 0;
	}
	if (strcmp(a, "RSAES_OAEP_SHA_1") == 0 ||
	    strcmp(a, "RSAES_OAEP_SHA_256") == 0 ||
	    strcmp(a, "SM2PKE") == 0) {
		return op_fail(c, KMS_EINVALIDKEYUSAGE, "%s is not valid for "
		    "a symmetric key", a);
	}
	return fail_member(c, name, a, "Member must satisfy enum value set: "
	    "[SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, "
	    "SM2PKE]");
}

int
resp_blob(json_t *obj, const char *name, const uint8_t *buf, size_t len,
    struct opctx *c)
{
	size_t n = B64_ENCODED_LEN(len) + 1, mark = op_secret_mark(c);
	char *b64 = (char *)op_secret(c, n);
	json_t *s = NULL;
	int r = 0;

	/* The base64 lives in the scratch only until jansson copies it (its
	 * strings are wiped when freed: secure_json_allocator). */
	if (b64 == NULL || b64_encode(buf, len, b64, n) != 0) {
		r = op_fail(c, KMS_EINTERNAL, "out of reply memory");
	} else if ((s = json_stringn_nocheck(b64, n - 1)) == NULL ||
	    json_object_set_new_nocheck(obj, name, s) != 0) {
		r = op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	op_secret_release(c, mark);
	return r;
}

int
resp_hsm(json_t *obj, const char *field, uint8_t *buf, size_t len,
    struct opctx *c)
{
	struct hsm_job *j = c->njobs > 0 ? &c->jobs[c->njobs - 1] : NULL;

	if (j != NULL && j->out == buf && j->obj == NULL &&
	    j->item == c->item) {
		KMS_ASSERT(len == j->outlen);
		j->obj = obj;
		j->name = field;
		return 0;
	}
	return resp_blob(obj, field, buf, len, c);
}

/* AWS's answer to an alias name without its prefix, as LocalStack's
 * snapshot tests recorded it against AWS. */
#define ALIAS_PREFIX_MSG "Alias must start with the prefix \"alias/\". " \
	"Please see https://docs.aws.amazon.com/kms/latest/developerguide/" \
	"kms-alias.html"

int
op_alias_name_ok(struct opctx *c, const char *name)
{
	size_t n = strlen(name);

	/* The model's pattern (validate.c checks it first; this is the
	 * second line). */
	if (n < 1 || n > 256 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:/_-") != n) {
		return op_fail(c, KMS_EVALIDATION, "1 validation error "
		    "detected: Value '%.256s' at 'aliasName' failed to satisfy "
		    "constraint: Member must satisfy regular expression "
		    "pattern: ^[a-zA-Z0-9:/_-]+$", name);
	}
	if (strncmp(name, "alias/", 6) != 0) {
		return op_fail(c, KMS_EVALIDATION, "%s", ALIAS_PREFIX_MSG);
	}
	/* AWS answers NotAuthorizedException for the prefix of its own
	 * aliases (with no message; this one says why). */
	if (strncmp(name, "alias/aws/", 10) == 0) {
		return op_fail(c, KMS_ENOTAUTHORIZED, "Alias names beginning "
		    "with alias/aws/ are reserved for AWS managed keys");
	}
	/* The model's pattern allows ':', the operation does not (the
	 * text is moto's, after AWS's). */
	if (strchr(name, ':') != NULL) {
		return op_fail(c, KMS_EVALIDATION, "%s contains invalid "
		    "characters for an alias", name);
	}
	if (n == 6) {
		return op_fail(c, KMS_EINVALIDALIAS, "Alias name %s has no "
		    "name after alias/", name);
	}
	return 0;
}

int
op_key(struct opctx *c, const char *key_id, struct key_info *ki)
{
	struct store_alias a;
	const char *prefix = c->w->d->alias_arn_prefix;
	const char *name = NULL;
	char arn[KEY_ARN_MAX + 256];
	size_t plen = c->w->d->alias_arn_prefix_len;
	int r;

	if (strncmp(key_id, "alias/", 6) == 0) {
		name = key_id;
	} else if (strncmp(key_id, prefix, plen) == 0) {
		name = key_id + plen - 6;	/* "alias/..." */
	}
	if (name == NULL) {
		if ((r = keycache_lookup(c->w, key_id, ki, c->msg,
		    sizeof(c->msg))) == 0) {
			note_key(c, ki->arn);
		}
		return r;
	}
	if (strlen(name) > 256 || (r = c->w->st->ops->get_alias(c->w->st,
	    name, &a)) == KMS_ENOTFOUND || r == KMS_EINVAL) {
		alias_arn(c->w->d, name, arn, sizeof(arn));
		return op_fail(c, KMS_ENOTFOUND, "Alias %.400s is not found.",
		    arn);
	}
	if (r != 0) {
		return op_fail(c, r, "The key store failed");
	}
	snprintf(c->request_alias, sizeof(c->request_alias), "%s", name);
	if ((r = keycache_lookup_id(c->w, a.key_id, ki)) != 0) {
		return op_fail(c, r, "Alias %s names a key that is gone",
		    name);
	}
	note_key(c, ki->arn);
	return 0;
}

static const char *
state_name(int s)
{
	switch (s) {
	case KEY_ENABLED:
		return "Enabled";
	case KEY_DISABLED:
		return "Disabled";
	case KEY_PENDING_DELETION:
		return "PendingDeletion";
	case KEY_PENDING_IMPORT:
		return "PendingImport";
	default:
		return "Unavailable";
	}
}

int
op_state_error(struct opctx *c, int err, const struct key_info *ki)
{
	switch (err) {
	case KMS_EDISABLED:
		return op_fail(c, err, "%s is disabled.", ki->arn);
	case KMS_EKEYUNAVAILABLE:
		return op_fail(c, KMS_EINVALIDSTATE, "%s is Unavailable: its "
		    "key material cannot be loaded from the HSM.", ki->arn);
	case KMS_EINVALIDSTATE:
		/* AWS's texts for these two (LocalStack's snapshot of AWS for
		 * a key pending import; AWS's key-state table for one
		 * pending deletion). */
		if (ki->state == KEY_PENDING_IMPORT) {
			return op_fail(c, err, "%s is pending import.",
			    ki->arn);
		}
		if (ki->state == KEY_PENDING_DELETION) {
			return op_fail(c, err, "%s is pending deletion.",
			    ki->arn);
		}
		return op_fail(c, KMS_EINVALIDSTATE, "%s is %s and cannot be "
		    "used for %s.", ki->arn, state_name(ki->state), c->action);
	case KMS_ENOTFOUND:
		return op_fail(c, err, "Key '%s' does not exist", ki->arn);
	case KMS_EDEPENDENCYTIMEOUT:
		return op_fail(c, err, "The HSM is unavailable; retry later.");
	case KMS_ELIMITEXCEEDED:
		return op_fail(c, err, "Too many keys in use at once.");
	default:
		if (c->msg[0] == '\0') {
			op_fail(c, err, "%s", kms_strerror(err));
		}
		return err;
	}
}

/*
 * This thread's request id: unique in the daemon's life and across
 * restarts (a random prefix drawn at start-up, then a counter), named in
 * every log line said on the request's behalf (log_set_request) and in
 * the message of an internal or dependency error, so that an operator
 * finds the cause a client was told about.
 */
static _Thread_local char request_id[LOG_REQUEST_ID_MAX];
/* Internal errors of this request: the first is logged, the rest counted
 * (a Batch must not turn one fault into a thousand log lines). */
static _Thread_local size_t request_faults;

static void
request_begin(const char *id)
{
	size_t n;

	/* A UUID, as CloudTrail's requestID: the same id names the
	 * request in the log, in an error's message, in its audit record
	 * and, over HTTP, in x-amzn-RequestId. */
	if (id != NULL && (n = strlen(id)) < sizeof(request_id)) {
		memcpy(request_id, id, n + 1);
	} else {
		audit_new_id(request_id);
	}
	log_set_request(request_id);
	request_faults = 0;
	cause_clear();
}

static void
request_end(void)
{
	if (request_faults > 1) {
		log_warn("and %zu more internal errors in this request",
		    request_faults - 1);
	}
	request_faults = 0;
	log_set_request(NULL);
	request_id[0] = '\0';
	cause_clear();
}

static json_t *
error_object(int err, const char *msg)
{
	char full[OP_MSG_MAX + CAUSE_MAX + LOG_REQUEST_ID_MAX + 16];
	size_t len;

	/* Client-side codes never leave the daemon under their own name. */
	if (err <= 0 || err >= KMS_ERR_MAX || err_is_client_side(err)) {
		err = KMS_EINTERNAL;
	}
	if (msg[0] == '\0') {
		msg = kms_strerror(err);
	}
	/* AWS's name stays; the message says which dependency failed
	 * (never a secret: see cause.h) and names the request, whose log
	 * lines hold the details. */
	if (err == KMS_EINTERNAL || err == KMS_EDEPENDENCYTIMEOUT) {
		const char *why = cause_get();
		int n = (int)strlen(msg);
		if (n > 0 && msg[n - 1] == '.') {
			n--;	/* "retry later.: the HSM ..." reads badly */
		}
		snprintf(full, sizeof(full), "%.*s%s%s (request %s)", n, msg,
		    why[0] != '\0' ? ": " : "", why,
		    request_id[0] != '\0' ? request_id : "?");
		msg = full;
		if (request_faults++ == 0) {
			log_warn("%s: %s", kms_error_name(err), msg);
		}
	}
	/* A message quoting the request may have been cut inside a
	 * character (snprintf counts bytes): end it where its UTF-8 does,
	 * or jansson refuses the whole reply. */
	len = strlen(msg);
	while (len > 0 && !ctx_utf8_valid(msg, len)) {
		len--;
	}
	return json_pack("{s:s, s:s#}", "__type", kms_error_name(err),
	    "message", msg, (int)len);
}

static pthread_once_t ops_checked = PTHREAD_ONCE_INIT;

/* An operation added out of order would be unreachable: stop at once. */
static void
check_ops_sorted(void)
{
	size_t i;

	for (i = 1; i < sizeof(ops) / sizeof(ops[0]); i++) {
		KMS_ASSERT(strcmp(ops[i - 1].name, ops[i].name) < 0);
	}
}

static const struct op_def *
find_op(const char *name)
{
	size_t lo = 0, hi = sizeof(ops) / sizeof(ops[0]);

	pthread_once(&ops_checked, check_ops_sorted);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(name, ops[mid].name);
		if (cmp == 0) {
			return &ops[mid];
		}
		if (cmp < 0) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	return NULL;
}

int
dispatch_op_quick(const char *name)
{
	const struct op_def *o;

	if (strcmp(name, "Batch") == 0) {
		return 0;
	}
	o = find_op(name);
	return o == NULL || o->batch != OP_SOLO;
}

/* Forget the recorded calls from the from-th on. */
static void
drop_jobs(struct opctx *c, size_t from)
{
	while (c->njobs > from) {
		free(c->jobs[--c->njobs].ctx);
	}
}

/*
 * The recorded HSM calls of a Batch, with the HSM to this Batch; then,
 * outside the turn, each output's base64 into its response.  An item
 * whose call fails (a disabled key, a blob that does not authenticate)
 * gets the error instead of its response.
 */
static void
run_hsm_jobs(struct opctx *c, json_t *arr)
{
	struct hsm_job *j;
	size_t k;

	pthread_mutex_lock(&c->w->d->batch_turn);
	for (k = 0; k < c->njobs; k++) {
		j = &c->jobs[k];
		if (j->obj == NULL) {
			/* Recorded but never given a response field. */
			j->err = KMS_EINTERNAL;
			json_array_set_new(arr, j->item,
			    error_object(KMS_EINTERNAL, "internal error"));
			continue;
		}
		c->msg[0] = '\0';
		cause_clear();
		if ((j->err = op_hsm_job(c, j)) != 0) {
			/* Replaces (and frees) the item's response. */
			json_array_set_new(arr, j->item,
			    error_object(j->err, c->msg));
		}
	}
	pthread_mutex_unlock(&c->w->d->batch_turn);
	for (k = 0; k < c->njobs; k++) {
		j = &c->jobs[k];
		if (j->err == 0 && resp_blob(j->obj, j->name, j->out,
		    j->outlen, c) != 0) {
			cause_clear();	/* not the last HSM call's */
			json_array_set_new(arr, j->item,
			    error_object(KMS_EINTERNAL, c->msg));
		}
	}
}

/* One request object (top level or a Batch item); *measured (may be NULL)
 * says whether its response is to be measured (OP_BATCH_MEASURED). */
static json_t *
run_one(struct opctx *c, json_t *req, int in_batch, int *measured)
{
	const struct op_def *op;
	json_t *action, *resp = NULL;
	int r;

	if (measured != NULL) {
		*measured = 0;
	}
	c->req = req;
	c->msg[0] = '\0';
	cause_clear();
	c->action = "?";
	c->request_alias[0] = '\0';
	c->ntokens = 0;
	c->grant_id[0] = '\0';
	if (!json_is_object(req)) {
		return error_object(KMS_ESERIALIZATION, "A request must be a "
		    "JSON object");
	}
	action = json_object_get(req, "Action");
	if (!json_is_string(action)) {
		return error_object(KMS_ESERIALIZATION, "Missing or non-string "
		    "\"Action\"");
	}
	if ((op = find_op(json_string_value(action))) == NULL) {
		if (strcmp(json_string_value(action), "Batch") == 0) {
			return error_object(KMS_EVALIDATION, "Batch cannot be "
			    "nested");
		}
		snprintf(c->msg, sizeof(c->msg), "Unknown operation %.64s",
		    json_string_value(action));
		return error_object(KMS_EUNKNOWNOP, c->msg);
	}
	if (in_batch && op->batch == OP_SOLO) {
		snprintf(c->msg, sizeof(c->msg), "%s is not allowed in a Batch",
		    op->name);
		return error_object(KMS_EVALIDATION, c->msg);
	}
	c->action = op->name;
	if (measured != NULL) {
		*measured = op->batch == OP_BATCH_MEASURED;
	}
	/* AWS validates the whole request against its model before the
	 * operation sees it, and names every violation at once. */
	if ((r = validate_request(op->name, req, c->msg,
	    sizeof(c->msg))) != 0) {
		return error_object(r, c->msg);
	}
	if ((r = op->fn(c, &resp)) != 0) {
		json_decref(resp);
		return error_object(r, c->msg);
	}
	return resp;
}

/* The refusal of a measured item that does not fit (its fixed text and
 * an operation name) is shorter than this. */
#define BATCH_REFUSAL_MAX 256

/*
 * Room in the reply for the responses of the Batch's OP_BATCH_MEASURED
 * items (DescribeKey): the reply is at most its request plus
 * JSON_MAX_ITEM_GROWTH per other item plus what these measure (or their
 * refusals), and must stay within JSON_MAX_REPLY (common/json.h).
 */
static size_t
measured_room(json_t *reqs, size_t msglen)
{
	const struct op_def *op;
	json_t *item, *action;
	size_t i, others = 0, measured = 0;

	json_array_foreach(reqs, i, item) {
		action = json_object_get(item, "Action");
		op = json_is_string(action) ?
		    find_op(json_string_value(action)) : NULL;
		if (op != NULL && op->batch == OP_BATCH_MEASURED) {
			measured++;
		} else {
			others++;
		}
	}
	/* Cannot wrap: msglen ≤ JSON_MAX_MESSAGE, and the items, at most
	 * KMS_MAX_BATCH, reserve at most JSON_MAX_ITEM_GROWTH each. */
	return JSON_MAX_REPLY - msglen - others * JSON_MAX_ITEM_GROWTH -
	    measured * BATCH_REFUSAL_MAX;
}

static json_t *
run_batch(struct opctx *c, json_t *msg, size_t msglen)
{
	json_t *reqs = json_object_get(msg, "Requests"), *out, *arr, *item;
	size_t i, n, before, room = 0, len;
	int measured = 0;

	if (!json_is_array(reqs)) {
		return error_object(KMS_ESERIALIZATION, "Batch needs "
		    "\"Requests\": [ ... ]");
	}
	n = json_array_size(reqs);
	if (n < 1 || n > KMS_MAX_BATCH) {
		snprintf(c->msg, sizeof(c->msg), "A Batch holds 1 to %d "
		    "requests", KMS_MAX_BATCH);
		return error_object(KMS_EVALIDATION, c->msg);
	}
	if ((arr = json_array()) == NULL) {
		return NULL;
	}
	room = measured_room(reqs, msglen);
	/*
	 * With batch_hsm_exclusive, the items' encryptions and decryptions
	 * are recorded as the items run (parsing, authorisation, the
	 * response's other fields) and made afterwards all together, with
	 * the HSM to this Batch: SoftHSM2 serialises its operations on
	 * internal locks, and workers whose calls interleaved spent their
	 * time handing those locks back and forth (futex sleeps and
	 * wake-ups) instead of encrypting.  Everything else stays outside
	 * the turn, so the other core does it meanwhile.  Single requests
	 * never wait for a turn.  (ReEncrypt decrypts at once: it needs the
	 * plaintext to seal.)  An HSM with parallel engines may want
	 * batch_hsm_exclusive = no.
	 */
	if (c->w->d->cfg.batch_hsm_exclusive &&
	    (c->jobs = calloc(n, sizeof(*c->jobs))) != NULL) {
		c->jobs_cap = n;
	}
	/* One audit record per item, each with what its item learnt. */
	if (c->note != NULL) {
		c->notes = calloc(n, sizeof(*c->notes));
		c->note = NULL;
	}
	json_array_foreach(reqs, i, item) {
		json_t *r;
		/* An item is no bigger than the message holding it: measure
		 * items only when the message could hold an oversized one. */
		size_t sz = msglen <= JSON_MAX_REQUEST ? 0 :
		    json_dumpb(item, NULL, 0, JSON_COMPACT);
		before = c->njobs;
		c->item = i;
		c->note = c->notes != NULL ? &c->notes[i] : NULL;
		if (sz > JSON_MAX_REQUEST) {
			r = error_object(KMS_EVALIDATION, "A Batch item "
			    "exceeds 65536 bytes");
		} else {
			c->rnd_hint = (n - i) * OP_RANDOM_PER_ITEM;
			r = run_one(c, item, 1, &measured);
		}
		if (r != NULL && measured) {
			len = kjson_write_compact(r, NULL, 0);
			if (len > room) {
				json_decref(r);
				snprintf(c->msg, sizeof(c->msg), "The Batch's "
				    "reply would exceed %d bytes: send this "
				    "%s in another Batch", JSON_MAX_REPLY,
				    c->action);
				r = error_object(KMS_EVALIDATION, c->msg);
				len = 0;	/* reserved */
			}
			room -= len;
		}
		/* A failed item's recorded calls are void. */
		if (r == NULL || json_object_get(r, "__type") != NULL) {
			drop_jobs(c, before);
		}
		if (r == NULL || json_array_append_new(arr, r) != 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
	}
	if (arr != NULL && c->njobs > 0) {
		run_hsm_jobs(c, arr);
	}
	drop_jobs(c, 0);
	free(c->jobs);
	c->jobs = NULL;
	c->jobs_cap = 0;
	if (arr == NULL) {
		return NULL;
	}
	out = json_object();
	if (out == NULL || json_object_set_new(out, "Responses", arr) != 0) {
		json_decref(out);
		json_decref(arr);
		return NULL;
	}
	return out;
}

/* Where a Batch's items lie in the message as it came (dispatch_msg:
 * none when it came parsed), for their audit records: a thread's, kept
 * from message to message. */
static __thread struct kjson_span item_at[KMS_MAX_BATCH];

/*
 * The audit records of one message (audit.h): one per item of a Batch
 * that ran, else one.  Written before the reply leaves; when they cannot
 * be and audit_required is set, the reply is replaced by the error (its
 * plaintexts are freed, and wiped, with it).
 */
static json_t *
audit_reply(struct opctx *c, json_t *msg, json_t *resp, const char *reqid,
    const char *buf, const struct kjson_spans *spans)
{
	struct audit_call call;
	struct audit_item one, *items = &one;
	json_t *reqs = json_object_get(msg, "Requests"),
	    *resps = json_object_get(resp, "Responses");
	size_t n = 1, i;
	int r;

	memset(&call, 0, sizeof(call));
	call.p = c->p;
	call.o = c->origin;
	call.request_id = reqid;
	call.st = c->w->st;
	memset(&one, 0, sizeof(one));
	one.req = msg;
	one.resp = resp;
	one.note = c->note;
	if (json_is_array(reqs) && json_is_array(resps) &&
	    json_array_size(reqs) == json_array_size(resps) &&
	    json_array_size(reqs) > 0 &&
	    (items = calloc(json_array_size(reqs), sizeof(*items))) != NULL) {
		n = json_array_size(reqs);
		for (i = 0; i < n; i++) {
			items[i].req = json_array_get(reqs, i);
			items[i].resp = json_array_get(resps, i);
			items[i].note = c->notes != NULL ? &c->notes[i] : NULL;
			items[i].index = i;
			items[i].count = n;
			if (i < spans->n) {
				items[i].raw = buf + spans->at[i].off;
				items[i].rawlen = spans->at[i].len;
			}
		}
	} else if (items == NULL) {
		items = &one;
	}
	r = audit_calls(c->w->d->audit, &call, items, n);
	if (items != &one) {
		free(items);
	}
	if (r != 0) {
		json_decref(resp);
		resp = error_object(r, "The audit log cannot be written; the "
		    "request was not answered. Retry later.");
	}
	return resp;
}

/* dispatch() and dispatch_object(): buf is parsed unless parsed (taken)
 * is given. */
static json_t *
dispatch_msg(struct worker *w, const struct principal *p,
    const struct audit_origin *o, const void *buf, size_t len, json_t *parsed,
    const char *id)
{
	struct opctx c;
	struct audit_note note;
	struct kjson_spans spans = { item_at, 0, KMS_MAX_BATCH };
	json_t *msg = NULL, *action = NULL, *resp;
	double t0 = metrics_now();
	int err = 0, r;

	memset(&c, 0, sizeof(c));
	c.w = w;
	c.p = p;
	c.origin = o;
	c.secret = w->secret;
	c.secret_cap = w->secret_cap;
	request_begin(id);
	if (w->d->audit != NULL) {
		/* Nothing is served that cannot be recorded. */
		if ((r = audit_admit(w->d->audit, c.msg, sizeof(c.msg))) != 0) {
			resp = error_object(r, c.msg);
			json_decref(parsed);
			request_end();
			return resp;
		}
		memset(&note, 0, sizeof(note));
		c.note = &note;
	}
	if ((msg = parsed) == NULL && (msg = kjson_read_spans(buf, len,
	    JSON_MAX_MESSAGE, &err, c.msg, sizeof(c.msg), w->d->audit != NULL ?
	    "Requests" : NULL, &spans)) == NULL) {
		resp = error_object(KMS_ESERIALIZATION, c.msg);
		goto out;
	}
	/* The HSM's turn (kmsd.h), for everything that may touch a key:
	 * taken once per message, since a Batch runs its items through
	 * run_one here and never through dispatch(). */
	pthread_rwlock_rdlock(&w->d->hsm_turn);
	action = json_object_get(msg, "Action");
	if (json_is_string(action) &&
	    strcmp(json_string_value(action), "Batch") == 0) {
		resp = run_batch(&c, msg, len);
	} else if (len > JSON_MAX_REQUEST) {
		resp = error_object(KMS_EVALIDATION, "A request exceeds 65536 "
		    "bytes");
	} else {
		resp = run_one(&c, msg, 0, NULL);
	}
	pthread_rwlock_unlock(&w->d->hsm_turn);
 out:
	metrics_observe(p, json_is_string(action) ? json_string_value(action) :
	    NULL, resp, metrics_now() - t0);
	if (w->d->audit != NULL) {
		/* The record carries the request id of the log and of any
		 * error message. */
		c.note = &note;
		resp = audit_reply(&c, msg, resp, request_id, buf, &spans);
		free(c.notes);
		audit_done(w->d->audit);
	}
	json_decref(msg);
	/* Plaintexts of this request die here, with the request. */
	if (c.secret_used > 0) {
		secure_wipe(c.secret, c.secret_used);
	}
	heap_free(&c);
	request_end();
	return resp;
}

json_t *
dispatch(struct worker *w, const struct principal *p, const void *buf,
    size_t len, const char *id)
{
	return dispatch_msg(w, p, NULL, buf, len, NULL, id);
}

json_t *
dispatch_object(struct worker *w, const struct principal *p,
    const struct audit_origin *o, json_t *msg, size_t len, const char *id)
{
	return dispatch_msg(w, p, o, NULL, len, msg, id);
}

char *
dispatch_bytes(struct worker *w, const struct principal *p, const void *buf,
    size_t len, size_t *outlen)
{
	json_t *resp = dispatch(w, p, buf, len, NULL);
	char *s;

	audit_after_reply();	/* as a front end does once it replied */
	if (resp == NULL) {
		return NULL;
	}
	s = json_dumps(resp, JSON_COMPACT);
	json_decref(resp);
	if (s != NULL && outlen != NULL) {
		*outlen = strlen(s);
	}
	return s;
}
