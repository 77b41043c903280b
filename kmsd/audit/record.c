/*
 * record.c — the audit log's records (record.h): CloudTrail-shaped JSON
 * formatted from a request, its reply and what dispatch noted, or from a
 * service event; and the ids and times they carry.  No file, lock or
 * chain here (audit.c appends "sequence" and "previousHash" as it chains
 * a record): every function works on the caller's buffer.
 *
 * Records are written on every request: no printf and no random draw per
 * record, strings checked for escapes a word at a time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* SHA256(): a policy's digest in its record; OpenSSL 3 keeps the
 * low-level API, deprecated. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <sodium.h>

#include "common/err.h"
#include "common/json.h"
#include "kmsd/audit/audit.h"
#include "kmsd/audit/record.h"
#include "kmsd/authz/authz.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"

#define AUDIT_STR_MAX 8192		/* a logged string (AWS Description) */
#define AUDIT_EVENT_VERSION "1.08"
#define AUDIT_SOURCE "kms.amazonaws.com"

/* ---- text ---- */

void
rec_put(struct rec_buf *b, const char *s, size_t n)
{
	if (b->oom) {
		return;
	}
	if (n > b->cap - b->len) {
		size_t cap = b->cap < 1024 ? 1024 : b->cap;
		char *np;
		while (cap - b->len < n) {
			cap *= 2;
		}
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

void
rec_puts(struct rec_buf *b, const char *s)
{
	rec_put(b, s, strlen(s));
}

/* Decimal digits of v into out (at least 21 bytes); returns the length.
 * (Records are written on every request: no printf on that path.) */
size_t
rec_u64_dec(uint64_t v, char *out)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++) {
		out[i] = tmp[n - 1 - i];
	}
	return n;
}

static void
rec_u64(struct rec_buf *b, uint64_t v)
{
	char d[24];

	rec_put(b, d, rec_u64_dec(v, d));
}

static void
rec_i64(struct rec_buf *b, int64_t v)
{
	if (v < 0) {
		rec_put(b, "-", 1);
		rec_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		rec_u64(b, (uint64_t)v);
	}
}

/* The bytes a JSON string must escape: controls, '"', '\\', DEL. */
static const unsigned char json_esc[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['"'] = 1, ['\\'] = 1, [0x7f] = 1,
};

/*
 * Whether any of 8 bytes (a word read from a string) must be escaped:
 * below 0x20, '"', '\\' or DEL (the classic SWAR tests for a zero byte
 * and a byte below n).  Most strings in a record need none, and are
 * checked 8 bytes at a time.
 */
#define SWAR_ONES 0x0101010101010101ULL
#define SWAR_HIGHS 0x8080808080808080ULL
static int
word_needs_escape(uint64_t w)
{
	uint64_t q = w ^ (SWAR_ONES * '"'), bs = w ^ (SWAR_ONES * '\\'),
	    del = w ^ (SWAR_ONES * 0x7f);

	return ((((w - SWAR_ONES * 0x20) & ~w) | ((q - SWAR_ONES) & ~q) |
	    ((bs - SWAR_ONES) & ~bs) | ((del - SWAR_ONES) & ~del)) &
	    SWAR_HIGHS) != 0;
}

/* A JSON string of s (n bytes, at most AUDIT_STR_MAX, cut on a UTF-8
 * character boundary). */
static void
rec_strn(struct rec_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	if (n > AUDIT_STR_MAX) {
		n = AUDIT_STR_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
			n--;
		}
	}
	rec_put(b, "\"", 1);
	/* The run before the first byte that needs escaping, by words. */
	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		if (word_needs_escape(w)) {
			break;
		}
	}
	for (; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
		if (!json_esc[ch]) {
			continue;
		}
		rec_put(b, s + run, i - run);
		run = i + 1;
		if (ch == '"' || ch == '\\') {
			esc[1] = (char)ch;
			rec_put(b, esc, 2);
		} else {
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			rec_put(b, esc, 6);
		}
	}
	rec_put(b, s + run, n - run);
	rec_put(b, "\"", 1);
}

static void
rec_str(struct rec_buf *b, const char *s)
{
	rec_strn(b, s, strlen(s));
}

/* "name": as a member (with the comma before it unless first). */
static void
rec_key(struct rec_buf *b, int *first, const char *name)
{
	if (!*first) {
		rec_put(b, ",", 1);
	}
	*first = 0;
	rec_put(b, "\"", 1);
	rec_puts(b, name);
	rec_put(b, "\":", 2);
}

static void
rec_json(struct rec_buf *b, const json_t *v)
{
	char small[512];
	size_t n = kjson_write_compact(v, small, sizeof(small));
	char *big;

	if (n <= sizeof(small)) {
		rec_put(b, small, n);
		return;
	}
	if ((big = malloc(n)) == NULL) {
		b->oom = 1;
		return;
	}
	if (kjson_write_compact(v, big, n) == n) {
		rec_put(b, big, n);
	}
	free(big);
}

void
rec_hex32(const uint8_t h[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 15];
	}
	out[64] = '\0';
}

static void
uuid_str(const uint8_t u[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	int i, o = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10) {
			out[o++] = '-';
		}
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 15];
	}
	out[o] = '\0';
}

/*
 * Ids (UUID version 4 in form) unique within and across runs: a random
 * base per thread, drawn once, with a counter added; a random draw per
 * record cost a getrandom(2) call each.
 */
static __thread uint8_t id_base[16];
static __thread uint64_t id_count;

void
audit_new_id(char out[37])
{
	uint8_t u[16];
	uint64_t c;
	int i;

	if (id_count == 0) {
		randombytes_buf(id_base, sizeof(id_base));
	}
	c = ++id_count;
	memcpy(u, id_base, sizeof(u));
	for (i = 15; i >= 8 && c != 0; i--) {
		c += u[i];
		u[i] = (uint8_t)c;
		c >>= 8;
	}
	u[6] = (u[6] & 0x0f) | 0x40;	/* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	uuid_str(u, out);
}

/* UTC with milliseconds, as CloudTrail's eventTime (which has seconds). */
static __thread time_t utc_sec = -1;
static __thread char utc_text[24];	/* "YYYY-MM-DDTHH:MM:SS." */

void
rec_utc_now(char out[32])
{
	struct timespec ts;
	struct tm tm;
	long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	/* The date and time to the second, once a second per thread. */
	if (ts.tv_sec != utc_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		snprintf(utc_text, sizeof(utc_text),
		    "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec);
		utc_sec = ts.tv_sec;
	}
	ms = ts.tv_nsec / 1000000;
	memcpy(out, utc_text, 20);
	out[20] = (char)('0' + ms / 100);
	out[21] = (char)('0' + ms / 10 % 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

/* ---- records of requests ---- */

/* Operations that change nothing (CloudTrail's readOnly). */
static int
read_only(const char *op)
{
	static const char *const ro[] = { "Decrypt", "Encrypt",
		"GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
		"GenerateRandom", "ReEncrypt", "GetAuditPublicKey", NULL };
	int i;

	if (strncmp(op, "Describe", 8) == 0 || strncmp(op, "List", 4) == 0 ||
	    strncmp(op, "Get", 3) == 0) {
		return 1;
	}
	for (i = 0; ro[i] != NULL; i++) {
		if (strcmp(op, ro[i]) == 0) {
			return 1;
		}
	}
	return 0;
}

enum pkind { P_STR, P_INT, P_BOOL, P_MAP, P_STRLIST, P_TAGS,
	P_CONSTRAINTS, P_SHA256, P_TOKENS };

/*
 * The request fields that are logged, and how (the allow-list).  Anything
 * else (Plaintext, CiphertextBlob, GrantToken, fields nobody knows) is
 * never written.
 */
static const struct {
	const char *field, *name;
	enum pkind kind;
} params[] = {
	{ "KeyId", "keyId", P_STR },
	{ "EncryptionContext", "encryptionContext", P_MAP },
	{ "KeySpec", "keySpec", P_STR },
	{ "NumberOfBytes", "numberOfBytes", P_INT },
	{ "EncryptionAlgorithm", "encryptionAlgorithm", P_STR },
	{ "SourceKeyId", "sourceKeyId", P_STR },
	{ "DestinationKeyId", "destinationKeyId", P_STR },
	{ "SourceEncryptionContext", "sourceEncryptionContext", P_MAP },
	{ "DestinationEncryptionContext", "destinationEncryptionContext",
	    P_MAP },
	{ "SourceEncryptionAlgorithm", "sourceEncryptionAlgorithm", P_STR },
	{ "DestinationEncryptionAlgorithm", "destinationEncryptionAlgorithm",
	    P_STR },
	{ "Description", "description", P_STR },
	{ "KeyUsage", "keyUsage", P_STR },
	{ "CustomerMasterKeySpec", "customerMasterKeySpec", P_STR },
	{ "Origin", "origin", P_STR },
	{ "MultiRegion", "multiRegion", P_BOOL },
	{ "BypassPolicyLockoutSafetyCheck", "bypassPolicyLockoutSafetyCheck",
	    P_BOOL },
	{ "Tags", "tags", P_TAGS },
	{ "TagKeys", "tagKeys", P_STRLIST },
	{ "PolicyName", "policyName", P_STR },
	{ "Policy", "policySha256", P_SHA256 },
	{ "AliasName", "aliasName", P_STR },
	{ "TargetKeyId", "targetKeyId", P_STR },
	{ "GranteePrincipal", "granteePrincipal", P_STR },
	{ "RetiringPrincipal", "retiringPrincipal", P_STR },
	{ "Operations", "operations", P_STRLIST },
	{ "Constraints", "constraints", P_CONSTRAINTS },
	{ "Name", "name", P_STR },
	{ "GrantId", "grantId", P_STR },
	{ "GrantTokens", "grantIds", P_TOKENS },
	{ "PendingWindowInDays", "pendingWindowInDays", P_INT },
	{ "RotationPeriodInDays", "rotationPeriodInDays", P_INT },
	{ "Limit", "limit", P_INT },
	{ "Marker", "marker", P_STR },
};

static int
string_map(const json_t *v)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v)) {
		return 0;
	}
	json_object_foreach((json_t *)v, k, x) {
		if (!json_is_string(x)) {
			return 0;
		}
	}
	return 1;
}

static int
string_list(const json_t *v)
{
	size_t i;
	json_t *x;

	if (!json_is_array(v)) {
		return 0;
	}
	json_array_foreach(v, i, x) {
		if (!json_is_string(x)) {
			return 0;
		}
	}
	return 1;
}

/* {"k":"v",...} of a map of strings (string_map), keys in order. */
static void
put_string_map(struct rec_buf *b, const json_t *v)
{
	const char *k;
	json_t *x;
	int f = 1;

	rec_put(b, "{", 1);
	json_object_foreach((json_t *)v, k, x) {
		if (!f) {
			rec_put(b, ",", 1);
		}
		f = 0;
		rec_str(b, k);
		rec_put(b, ":", 1);
		rec_strn(b, json_string_value(x), json_string_length(x));
	}
	rec_put(b, "}", 1);
}

/* Grant tokens → the ids of their grants ("invalid" for one that names
 * none); the tokens themselves are never written. */
static void
put_grant_ids(struct rec_buf *b, const json_t *v, store *st)
{
	struct store_grant g;
	uint8_t h[32];
	size_t i;
	json_t *t;

	rec_put(b, "[", 1);
	json_array_foreach(v, i, t) {
		if (i > 0) {
			rec_put(b, ",", 1);
		}
		if (st == NULL) {
			rec_str(b, "unresolved");
			continue;
		}
		authz_token_hash(json_string_value(t), h);
		if (st->ops->find_grant_by_token(st, h, &g) == 0) {
			rec_str(b, g.grant_id);
		} else {
			rec_str(b, "invalid");
		}
	}
	rec_put(b, "]", 1);
}

static void
put_param(struct rec_buf *b, int *first, int i, const json_t *v, store *st)
{
	uint8_t h[32];
	char hx[65];
	const char *k;
	json_t *x;
	size_t j;
	int f2 = 1;

	switch (params[i].kind) {
	case P_STR:
		if (json_is_string(v)) {
			rec_key(b, first, params[i].name);
			rec_strn(b, json_string_value(v),
			    json_string_length(v));
		}
		break;
	case P_INT:
		if (json_is_integer(v)) {
			rec_key(b, first, params[i].name);
			rec_i64(b, (int64_t)json_integer_value(v));
		}
		break;
	case P_BOOL:
		if (json_is_boolean(v)) {
			rec_key(b, first, params[i].name);
			rec_puts(b, json_is_true(v) ? "true" : "false");
		}
		break;
	case P_MAP:
		if (string_map(v)) {
			rec_key(b, first, params[i].name);
			put_string_map(b, v);
		}
		break;
	case P_STRLIST:
		if (string_list(v)) {
			rec_key(b, first, params[i].name);
			rec_json(b, v);
		}
		break;
	case P_TOKENS:
		if (string_list(v) && json_array_size(v) > 0 &&
		    json_array_size(v) <= KMS_MAX_GRANT_TOKENS) {
			rec_key(b, first, params[i].name);
			put_grant_ids(b, v, st);
		}
		break;
	case P_TAGS:
		if (!json_is_array(v)) {
			break;
		}
		rec_key(b, first, params[i].name);
		rec_put(b, "[", 1);
		json_array_foreach(v, j, x) {
			json_t *tk = json_object_get(x, "TagKey");
			json_t *tv = json_object_get(x, "TagValue");
			if (!json_is_string(tk) || !json_is_string(tv)) {
				continue;
			}
			if (!f2) {
				rec_put(b, ",", 1);
			}
			f2 = 0;
			rec_puts(b, "{\"tagKey\":");
			rec_strn(b, json_string_value(tk),
			    json_string_length(tk));
			rec_puts(b, ",\"tagValue\":");
			rec_strn(b, json_string_value(tv),
			    json_string_length(tv));
			rec_put(b, "}", 1);
		}
		rec_put(b, "]", 1);
		break;
	case P_CONSTRAINTS:
		if (!json_is_object(v)) {
			break;
		}
		rec_key(b, first, params[i].name);
		rec_put(b, "{", 1);
		json_object_foreach((json_t *)v, k, x) {
			if ((strcmp(k, "EncryptionContextSubset") == 0 ||
			    strcmp(k, "EncryptionContextEquals") == 0) &&
			    string_map(x)) {
				rec_key(b, &f2, strcmp(k,
				    "EncryptionContextSubset") == 0 ?
				    "encryptionContextSubset" :
				    "encryptionContextEquals");
				rec_json(b, x);
			}
		}
		rec_put(b, "}", 1);
		break;
	case P_SHA256:
		/* The policy's digest: enough to tell which document was
		 * set (compare with GetKeyPolicy's), never the document. */
		if (json_is_string(v)) {
			SHA256((const uint8_t *)json_string_value(v),
			    json_string_length(v), h);
			rec_hex32(h, hx);
			rec_key(b, first, params[i].name);
			rec_str(b, hx);
		}
		break;
	}
}

/* A base64 character's value, or -1. */
static int
b64_sextet(char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Key id and version from a ciphertext blob's base64 (its first 21
 * bytes: format, key id, version; DESIGN §3); 0 when it is not one. */
static int
blob_key(const struct kmsd *d, const json_t *v, char arn[KEY_ARN_MAX],
    uint32_t *version)
{
	uint8_t hdr[21];
	const char *s;
	uint32_t q;
	char id[37];
	int i, k, c;

	if (!json_is_string(v) || json_string_length(v) < 28) {
		return 0;
	}
	/* The header is no secret: a plain decode, not b64_decode's
	 * constant-time one (this runs for every record). */
	s = json_string_value(v);
	for (i = 0; i < 7; i++) {
		for (q = 0, k = 0; k < 4; k++) {
			if ((c = b64_sextet(s[4 * i + k])) < 0) {
				return 0;
			}
			q = q << 6 | (uint32_t)c;
		}
		hdr[3 * i] = (uint8_t)(q >> 16);
		hdr[3 * i + 1] = (uint8_t)(q >> 8);
		hdr[3 * i + 2] = (uint8_t)q;
	}
	if (hdr[0] != 0x01) {
		return 0;
	}
	uuid_str(hdr + 1, id);
	memcpy(arn, d->key_arn_prefix, d->key_arn_prefix_len);
	memcpy(arn + d->key_arn_prefix_len, id, sizeof(id));
	*version = (uint32_t)hdr[17] << 24 | (uint32_t)hdr[18] << 16 |
	    (uint32_t)hdr[19] << 8 | hdr[20];
	return 1;
}

struct res {
	char arn[KEY_ARN_MAX];
	uint32_t version;
};

#define RES_MAX 4

static void
res_add(struct res *r, int *n, const char *arn, uint32_t version)
{
	int i;

	for (i = 0; i < *n; i++) {
		if (strcmp(r[i].arn, arn) == 0) {
			if (version != 0 && r[i].version == 0) {
				r[i].version = version;
				return;
			}
			if (version == 0 || r[i].version == version) {
				return;
			}
		}
	}
	if (*n < RES_MAX && strlen(arn) < sizeof(r[*n].arn)) {
		memcpy(r[*n].arn, arn, strlen(arn) + 1);
		r[*n].version = version;
		(*n)++;
	}
}

/* The operations GetKeyLastUsage tracks (AWS: cryptographic ones). */
int
rec_tracked_op(const char *op)
{
	return strcmp(op, "Encrypt") == 0 || strcmp(op, "Decrypt") == 0 ||
	    strcmp(op, "ReEncrypt") == 0 || strcmp(op, "GenerateDataKey") ==
	    0 || strcmp(op, "GenerateDataKeyWithoutPlaintext") == 0;
}

/* A successful tracked record's keys (at most two: ReEncrypt's). */
static void
use_add(struct rec_use *un, size_t *nun, const struct res *res, int nres,
    const char *op, const char *id)
{
	const char *k;
	int i;

	for (i = 0; i < nres && i < 2; i++) {
		if ((k = strrchr(res[i].arn, '/')) == NULL ||
		    strlen(++k) != 36) {
			continue;
		}
		memcpy(un[*nun].key, k, 37);
		un[*nun].op = op;
		memcpy(un[*nun].id, id, 37);
		(*nun)++;
	}
}

static void
put_identity(struct rec_buf *b, const struct kmsd *d,
    const struct principal *p, const struct audit_origin *o)
{
	int first = 1;

	rec_puts(b, "\"userIdentity\":{");
	if (p == NULL) {
		rec_puts(b, "\"type\":\"Unknown\"");
	} else {
		rec_key(b, &first, "type");
		rec_str(b, "LocalUser");
		rec_key(b, &first, "principalId");
		rec_str(b, p->name);
		if (o == NULL || o->transport == NULL ||
		    strcmp(o->transport, "ipc") == 0) {
			rec_key(b, &first, "uid");
			rec_u64(b, (uint64_t)p->uid);
			rec_key(b, &first, "pid");
			rec_i64(b, (int64_t)p->pid);
		}
	}
	if (!first || p == NULL) {
		first = 0;
	}
	rec_key(b, &first, "transport");
	rec_str(b, o != NULL && o->transport != NULL ? o->transport : "ipc");
	if (o != NULL && o->access_key != NULL) {
		rec_key(b, &first, "accessKeyId");
		rec_str(b, o->access_key);
	}
	rec_put(b, "}", 1);
}

/* A plausible operation name for the record of a request, whatever it
 * says. */
static const char *
event_name(json_t *req)
{
	json_t *a = json_object_get(req, "Action");
	const char *s;
	size_t n, i;

	if (!json_is_string(a)) {
		return "Unknown";
	}
	s = json_string_value(a);
	n = json_string_length(a);
	if (n < 1 || n > 64) {
		return "Unknown";
	}
	for (i = 0; i < n; i++) {
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' &&
		    s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))) {
			return "Unknown";
		}
	}
	return s;
}

void
rec_api_prefix(struct rec_buf *b, const struct kmsd *d,
    const struct audit_call *call, const char *when)
{
	rec_puts(b, "{\"eventVersion\":\"" AUDIT_EVENT_VERSION "\",");
	put_identity(b, d, call->p, call->o);
	rec_puts(b, ",\"eventTime\":\"");
	rec_puts(b, when);
	rec_puts(b, "\",\"eventSource\":\"" AUDIT_SOURCE "\",\"eventName\":");
}

void
rec_api_record(struct rec_buf *b, const struct kmsd *d,
    const struct audit_call *call, const struct audit_item *it,
    const char *when, const struct rec_buf *prefix, struct rec_use *un,
    size_t *nun)
{
	const char *op = it->req != NULL ? event_name(it->req) : "Unknown";
	json_t *err = it->resp != NULL ? json_object_get(it->resp, "__type") :
	    NULL, *v, *md, *gid;
	struct res res[RES_MAX];
	char id[37], arn[KEY_ARN_MAX];
	uint32_t ver;
	int first = 1, nres = 0, i;
	size_t k;

	audit_new_id(id);
	/* What every record of the message shares, formatted once. */
	if (prefix != NULL && prefix->len > 0) {
		rec_put(b, prefix->p, prefix->len);
	} else {
		rec_api_prefix(b, d, call, when);
	}
	rec_str(b, op);
	if (call->o != NULL && call->o->address != NULL) {
		rec_puts(b, ",\"sourceIPAddress\":");
		rec_str(b, call->o->address);
	}
	if (call->o != NULL && call->o->user_agent != NULL) {
		rec_puts(b, ",\"userAgent\":");
		rec_str(b, call->o->user_agent);
	}
	if (it->resp == NULL) {
		rec_puts(b, ",\"errorCode\":\"KMSInternalException\","
		    "\"errorMessage\":\"no reply\"");
	} else if (json_is_string(err)) {
		v = json_object_get(it->resp, "message");
		rec_puts(b, ",\"errorCode\":");
		rec_str(b, json_string_value(err));
		if (json_is_string(v)) {
			rec_puts(b, ",\"errorMessage\":");
			rec_strn(b, json_string_value(v),
			    json_string_length(v));
		}
	}
	/* requestParameters: the allow-list. */
	rec_puts(b, ",\"requestParameters\":");
	if (!json_is_object(it->req)) {
		rec_puts(b, "null");
	} else {
		const char *fk;
		rec_put(b, "{", 1);
		/* A request has a few fields; the list has dozens. */
		json_object_foreach(it->req, fk, v) {
			for (i = 0; i < (int)(sizeof(params) /
			    sizeof(params[0])); i++) {
				if (fk[0] == params[i].field[0] &&
				    strcmp(fk, params[i].field) == 0) {
					put_param(b, &first, i, v, call->st);
					break;
				}
			}
		}
		rec_put(b, "}", 1);
	}
	/* responseElements: what CloudTrail shows, never a secret. */
	rec_puts(b, ",\"responseElements\":");
	md = it->resp != NULL ? json_object_get(it->resp, "KeyMetadata") :
	    NULL;
	gid = it->resp != NULL ? json_object_get(it->resp, "GrantId") : NULL;
	if (err == NULL && strcmp(op, "CreateKey") == 0 && json_is_object(md)) {
		v = md;
		rec_puts(b, "{\"keyMetadata\":");
		rec_json(b, v);
		rec_put(b, "}", 1);
	} else if (err == NULL && strcmp(op, "CreateGrant") == 0 &&
	    json_is_string(gid)) {
		rec_puts(b, "{\"grantId\":");
		rec_str(b, json_string_value(gid));
		rec_put(b, "}", 1);
	} else {
		rec_puts(b, "null");
	}
	first = 1;
	if (it->count > 0 || (it->note != NULL &&
	    it->note->grant_id[0] != '\0')) {
		rec_puts(b, ",\"additionalEventData\":{");
		if (it->count > 0) {
			rec_key(b, &first, "batchIndex");
			rec_u64(b, it->index);
			rec_key(b, &first, "batchSize");
			rec_u64(b, it->count);
		}
		if (it->note != NULL && it->note->grant_id[0] != '\0') {
			rec_key(b, &first, "grantId");
			rec_str(b, it->note->grant_id);
		}
		rec_put(b, "}", 1);
	}
	rec_puts(b, ",\"requestID\":");
	rec_str(b, call->request_id != NULL ? call->request_id : "");
	rec_puts(b, ",\"eventID\":\"");
	rec_puts(b, id);
	rec_puts(b, "\",\"readOnly\":");
	rec_puts(b, read_only(op) ? "true" : "false");
	/* resources: the keys it was authorised against, with the version a
	 * ciphertext names (the request's for a decryption, the reply's for
	 * an encryption). */
	if (it->note != NULL) {
		for (i = 0; i < it->note->narn; i++) {
			res_add(res, &nres, it->note->arn[i], 0);
		}
	}
	if (json_is_object(it->req) &&
	    blob_key(d, json_object_get(it->req, "CiphertextBlob"), arn,
	    &ver)) {
		res_add(res, &nres, arn, ver);
	}
	if (err == NULL && it->resp != NULL) {
		if (blob_key(d, json_object_get(it->resp, "CiphertextBlob"),
		    arn, &ver)) {
			res_add(res, &nres, arn, ver);
		}
		v = json_object_get(md, "Arn");
		if (json_is_string(v)) {
			res_add(res, &nres, json_string_value(v), 0);
		}
	}
	if (err == NULL && it->resp != NULL && un != NULL &&
	    rec_tracked_op(op)) {
		use_add(un, nun, res, nres, op, id);
	}
	if (nres > 0) {
		rec_puts(b, ",\"resources\":[");
		for (k = 0; k < (size_t)nres; k++) {
			rec_puts(b, k > 0 ? ",{\"ARN\":" : "{\"ARN\":");
			rec_str(b, res[k].arn);
			if (res[k].version != 0) {
				rec_puts(b, ",\"keyVersion\":");
				rec_u64(b, res[k].version);
			}
			rec_put(b, "}", 1);
		}
		rec_put(b, "]", 1);
	}
	rec_puts(b, ",\"eventType\":\"AwsApiCall\"");
}

void
rec_service_record(struct rec_buf *b, const struct kmsd *d, const char *name,
    const char *resource_arn, json_t *details, const char *when)
{
	char id[37];

	audit_new_id(id);
	rec_puts(b, "{\"eventVersion\":\"" AUDIT_EVENT_VERSION "\","
	    "\"userIdentity\":{\"type\":\"AWSService\",\"invokedBy\":"
	    "\"kmsd\"},\"eventTime\":\"");
	rec_puts(b, when);
	rec_puts(b, "\",\"eventSource\":\"" AUDIT_SOURCE "\",\"eventName\":");
	rec_str(b, name);
	rec_puts(b, ",\"requestParameters\":null,\"responseElements\":null,"
	    "\"eventID\":\"");
	rec_puts(b, id);
	rec_puts(b, "\",\"readOnly\":false");
	if (resource_arn != NULL) {
		rec_puts(b, ",\"resources\":[{\"ARN\":");
		rec_str(b, resource_arn);
		rec_puts(b, "}]");
	}
	rec_puts(b, ",\"eventType\":\"AwsServiceEvent\","
	    "\"serviceEventDetails\":");
	if (details != NULL) {
		rec_json(b, details);
	} else {
		rec_puts(b, "{}");
	}
}

