/*
 * record.c — the audit log's records (record.h): CloudTrail-shaped JSON
 * formatted from a request, its reply and what dispatch noted, or from a
 * service event; and the ids and times they carry.  No file, lock or
 * chain here (audit.c appends "sequence" and "previousHash" as it chains
 * a record): every function works on the caller's buffer.
 *
 * Records are written on every request (every Batch item): no printf, no
 * random draw and no jansson lookup per record.  The request and the
 * reply are each walked once for what the record takes of them, the
 * operation is classed once, constant fragments are put with lengths
 * known when compiled, and strings are checked for escapes and copied a
 * word at a time.
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

/*
 * Room for n more bytes at the end of b: 0, or -1 (b->oom set) when it
 * cannot grow.  The slow path of put(): kept out of line so that every
 * put of a constant is a length check and a few moves.
 */
static __attribute__((noinline)) int
rec_grow(struct rec_buf *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->oom) {
		return -1;
	}
	if (n <= b->cap - b->len) {
		return 0;
	}
	cap = b->cap < 1024 ? 1024 : b->cap;
	while (cap - b->len < n) {
		cap *= 2;
	}
	if ((np = realloc(b->p, cap)) == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = np;
	b->cap = cap;
	return 0;
}

/* Where n bytes may be written at the end of b (then b->len += what
 * was), or NULL when it cannot grow. */
static inline char *
rec_room(struct rec_buf *b, size_t n)
{
	if ((b->oom || n > b->cap - b->len) && rec_grow(b, n) != 0) {
		return NULL;
	}
	return b->p + b->len;
}

static inline void
put(struct rec_buf *b, const char *s, size_t n)
{
	char *w;

	if ((w = rec_room(b, n)) != NULL) {
		memcpy(w, s, n);
		b->len += n;
	}
}

/* A string literal, its length known when compiled. */
#define PUTS(b, lit) put((b), "" lit, sizeof(lit) - 1)

void
rec_put(struct rec_buf *b, const char *s, size_t n)
{
	put(b, s, n);
}

void
rec_puts(struct rec_buf *b, const char *s)
{
	put(b, s, strlen(s));
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

/* The digits of v, written in place: their number first. */
static void
rec_u64(struct rec_buf *b, uint64_t v)
{
	uint64_t t = v;
	size_t n = 1;
	char *w;

	while (t >= 10) {
		t /= 10;
		n++;
	}
	if ((w = rec_room(b, n)) == NULL) {
		return;
	}
	b->len += n;
	do {
		w[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
}

static void
rec_i64(struct rec_buf *b, int64_t v)
{
	if (v < 0) {
		PUTS(b, "-");
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
static inline int
word_needs_escape(uint64_t w)
{
	uint64_t q = w ^ (SWAR_ONES * '"'), bs = w ^ (SWAR_ONES * '\\'),
	    del = w ^ (SWAR_ONES * 0x7f);

	return ((((w - SWAR_ONES * 0x20) & ~w) | ((q - SWAR_ONES) & ~q) |
	    ((bs - SWAR_ONES) & ~bs) | ((del - SWAR_ONES) & ~del)) &
	    SWAR_HIGHS) != 0;
}

/* The escaped form of s (n bytes), quotes included: rec_strn's slow
 * path. */
static __attribute__((noinline)) void
rec_strn_escaped(struct rec_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	PUTS(b, "\"");
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
		if (!json_esc[ch]) {
			continue;
		}
		put(b, s + run, i - run);
		run = i + 1;
		if (ch == '"' || ch == '\\') {
			esc[1] = (char)ch;
			put(b, esc, 2);
		} else {
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
			put(b, esc, 6);
		}
	}
	put(b, s + run, n - run);
	PUTS(b, "\"");
}

/*
 * A JSON string of s (n bytes, at most AUDIT_STR_MAX, cut on a UTF-8
 * character boundary).  Most strings need no escape: each word is
 * checked and copied at once (the last one overlapping), with no byte
 * loop beyond a string shorter than a word, and no memcpy of a length
 * known only now (GCC made that a rep movs, dearer for a short string
 * than its check).
 */
static void
rec_strn(struct rec_buf *b, const char *s, size_t n)
{
	uint64_t x;
	size_t i;
	char *w;

	if (n > AUDIT_STR_MAX) {
		n = AUDIT_STR_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
			n--;
		}
	}
	if ((w = rec_room(b, n + 2)) == NULL) {
		return;
	}
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&x, s + i, 8);
		if (word_needs_escape(x)) {
			goto escaped;
		}
		memcpy(w + 1 + i, &x, 8);
	}
	if (i < n && n >= 8) {
		memcpy(&x, s + n - 8, 8);
		if (word_needs_escape(x)) {
			goto escaped;
		}
		memcpy(w + 1 + n - 8, &x, 8);
	} else {
		for (; i < n; i++) {
			if (json_esc[(unsigned char)s[i]]) {
				goto escaped;
			}
			w[1 + i] = s[i];
		}
	}
	w[0] = '"';
	w[n + 1] = '"';
	b->len += n + 2;
	return;
 escaped:
	rec_strn_escaped(b, s, n);
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
		PUTS(b, ",");
	}
	*first = 0;
	PUTS(b, "\"");
	rec_puts(b, name);
	PUTS(b, "\":");
}

static void
rec_json(struct rec_buf *b, const json_t *v)
{
	char small[512];
	size_t n = kjson_write_compact(v, small, sizeof(small));
	char *big;

	if (n <= sizeof(small)) {
		put(b, small, n);
		return;
	}
	if ((big = malloc(n)) == NULL) {
		b->oom = 1;
		return;
	}
	if (kjson_write_compact(v, big, n) == n) {
		put(b, big, n);
	}
	free(big);
}

/* Every byte's two hex digits: one 2-byte copy per byte written. */
static const char hex_pairs[513] =
	"000102030405060708090a0b0c0d0e0f"
	"101112131415161718191a1b1c1d1e1f"
	"202122232425262728292a2b2c2d2e2f"
	"303132333435363738393a3b3c3d3e3f"
	"404142434445464748494a4b4c4d4e4f"
	"505152535455565758595a5b5c5d5e5f"
	"606162636465666768696a6b6c6d6e6f"
	"707172737475767778797a7b7c7d7e7f"
	"808182838485868788898a8b8c8d8e8f"
	"909192939495969798999a9b9c9d9e9f"
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
	"b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	"d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
	"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void
rec_hex32(const uint8_t h[32], char out[65])
{
	int i;

	for (i = 0; i < 32; i++) {
		memcpy(out + 2 * i, hex_pairs + 2 * h[i], 2);
	}
	out[64] = '\0';
}

/* 8-4-4-4-12: where each byte's two digits go (no branch per byte). */
static const uint8_t uuid_at[16] = {
	0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34,
};

static void
uuid_str(const uint8_t u[16], char out[37])
{
	int i;

	for (i = 0; i < 16; i++) {
		memcpy(out + uuid_at[i], hex_pairs + 2 * u[i], 2);
	}
	out[8] = out[13] = out[18] = out[23] = '-';
	out[36] = '\0';
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

/* What a record needs to know of its operation, found once per record
 * (op_class): no chain of string comparisons per field. */
#define OPC_READ_ONLY	0x1	/* changes nothing (CloudTrail's readOnly) */
#define OPC_TRACKED	0x2	/* GetKeyLastUsage notes it (rec_tracked_op) */
#define OPC_CREATE_KEY	0x4	/* responseElements: the key's metadata */
#define OPC_CREATE_GRANT 0x8	/* responseElements: the grant's id */

static unsigned
op_class(const char *op, size_t n)
{
#define OPC(name, flags) { name, sizeof(name) - 1, flags }
	static const struct {
		const char *name;
		size_t len;
		unsigned flags;
	} ops[] = {
		OPC("Encrypt", OPC_READ_ONLY | OPC_TRACKED),
		OPC("Decrypt", OPC_READ_ONLY | OPC_TRACKED),
		OPC("GenerateDataKey", OPC_READ_ONLY | OPC_TRACKED),
		OPC("GenerateDataKeyWithoutPlaintext", OPC_READ_ONLY |
		    OPC_TRACKED),
		OPC("ReEncrypt", OPC_READ_ONLY | OPC_TRACKED),
		OPC("GenerateRandom", OPC_READ_ONLY),
		OPC("CreateKey", OPC_CREATE_KEY),
		OPC("CreateGrant", OPC_CREATE_GRANT),
	};
#undef OPC
	size_t i;

	/* Describe*, List*, Get* (GetAuditPublicKey among them). */
	if ((n >= 8 && memcmp(op, "Describe", 8) == 0) || (n >= 4 &&
	    memcmp(op, "List", 4) == 0) || (n >= 3 &&
	    memcmp(op, "Get", 3) == 0)) {
		return OPC_READ_ONLY;
	}
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (ops[i].len == n && memcmp(op, ops[i].name, n) == 0) {
			return ops[i].flags;
		}
	}
	return 0;
}

enum pkind { P_STR, P_INT, P_BOOL, P_MAP, P_STRLIST, P_TAGS,
	P_CONSTRAINTS, P_SHA256, P_TOKENS };

/*
 * The request fields that are logged, and how (the allow-list).  Anything
 * else (Plaintext, CiphertextBlob, GrantToken, fields nobody knows) is
 * never written.  Each carries its lengths and its member's key as
 * written, with the comma before it (",\"keyId\":").
 */
#define PARAM(f, n, kind) { f, sizeof(f) - 1, ",\"" n "\":", \
	sizeof(n) + 3, kind }
static const struct {
	const char *field;
	size_t flen;
	const char *key;		/* with its leading comma */
	size_t klen;
	enum pkind kind;
} params[] = {
	PARAM("KeyId", "keyId", P_STR),
	PARAM("EncryptionContext", "encryptionContext", P_MAP),
	PARAM("KeySpec", "keySpec", P_STR),
	PARAM("NumberOfBytes", "numberOfBytes", P_INT),
	PARAM("EncryptionAlgorithm", "encryptionAlgorithm", P_STR),
	PARAM("SourceKeyId", "sourceKeyId", P_STR),
	PARAM("DestinationKeyId", "destinationKeyId", P_STR),
	PARAM("SourceEncryptionContext", "sourceEncryptionContext", P_MAP),
	PARAM("DestinationEncryptionContext", "destinationEncryptionContext",
	    P_MAP),
	PARAM("SourceEncryptionAlgorithm", "sourceEncryptionAlgorithm",
	    P_STR),
	PARAM("DestinationEncryptionAlgorithm",
	    "destinationEncryptionAlgorithm", P_STR),
	PARAM("Description", "description", P_STR),
	PARAM("KeyUsage", "keyUsage", P_STR),
	PARAM("CustomerMasterKeySpec", "customerMasterKeySpec", P_STR),
	PARAM("Origin", "origin", P_STR),
	PARAM("MultiRegion", "multiRegion", P_BOOL),
	PARAM("BypassPolicyLockoutSafetyCheck",
	    "bypassPolicyLockoutSafetyCheck", P_BOOL),
	PARAM("Tags", "tags", P_TAGS),
	PARAM("TagKeys", "tagKeys", P_STRLIST),
	PARAM("PolicyName", "policyName", P_STR),
	PARAM("Policy", "policySha256", P_SHA256),
	PARAM("AliasName", "aliasName", P_STR),
	PARAM("TargetKeyId", "targetKeyId", P_STR),
	PARAM("GranteePrincipal", "granteePrincipal", P_STR),
	PARAM("RetiringPrincipal", "retiringPrincipal", P_STR),
	PARAM("Operations", "operations", P_STRLIST),
	PARAM("Constraints", "constraints", P_CONSTRAINTS),
	PARAM("Name", "name", P_STR),
	PARAM("GrantId", "grantId", P_STR),
	PARAM("GrantTokens", "grantIds", P_TOKENS),
	PARAM("PendingWindowInDays", "pendingWindowInDays", P_INT),
	PARAM("RotationPeriodInDays", "rotationPeriodInDays", P_INT),
	PARAM("Limit", "limit", P_INT),
	PARAM("Marker", "marker", P_STR),
};
#undef PARAM
#define NPARAMS (sizeof(params) / sizeof(params[0]))

/* The params[] entry of a request's field (n bytes), or -1. */
static int
param_index(const char *k, size_t n)
{
	size_t i;

	for (i = 0; i < NPARAMS; i++) {
		if (params[i].flen == n && params[i].field[0] == k[0] &&
		    memcmp(params[i].field, k, n) == 0) {
			return (int)i;
		}
	}
	return -1;
}

/* A member's key: params[i]'s, after a comma unless it is the first. */
static void
param_key(struct rec_buf *b, int *first, int i)
{
	put(b, params[i].key + *first, params[i].klen - *first);
	*first = 0;
}

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

/*
 * params[i]'s member holding {"k":"v",...} of a map of strings, keys in
 * order; nothing when v is not a map of strings (what was written of it
 * is taken back: one walk of the map, not a check and then a copy).
 */
static void
put_string_map(struct rec_buf *b, int *first, int i, json_t *v)
{
	size_t start = b->len;
	int was_first = *first, f = 1;
	void *it;
	json_t *x;

	if (!json_is_object(v)) {
		return;
	}
	param_key(b, first, i);
	PUTS(b, "{");
	for (it = json_object_iter(v); it != NULL;
	    it = json_object_iter_next(v, it)) {
		x = json_object_iter_value(it);
		if (!json_is_string(x)) {
			if (!b->oom) {
				b->len = start;
			}
			*first = was_first;
			return;
		}
		if (!f) {
			PUTS(b, ",");
		}
		f = 0;
		rec_strn(b, json_object_iter_key(it),
		    json_object_iter_key_len(it));
		PUTS(b, ":");
		rec_strn(b, json_string_value(x), json_string_length(x));
	}
	PUTS(b, "}");
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

	PUTS(b, "[");
	json_array_foreach(v, i, t) {
		if (i > 0) {
			PUTS(b, ",");
		}
		if (st == NULL) {
			PUTS(b, "\"unresolved\"");
			continue;
		}
		authz_token_hash(json_string_value(t), h);
		if (st->ops->find_grant_by_token(st, h, &g) == 0) {
			rec_str(b, g.grant_id);
		} else {
			PUTS(b, "\"invalid\"");
		}
	}
	PUTS(b, "]");
}

static void
put_param(struct rec_buf *b, int *first, int i, json_t *v, store *st)
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
			param_key(b, first, i);
			rec_strn(b, json_string_value(v),
			    json_string_length(v));
		}
		break;
	case P_INT:
		if (json_is_integer(v)) {
			param_key(b, first, i);
			rec_i64(b, (int64_t)json_integer_value(v));
		}
		break;
	case P_BOOL:
		if (json_is_boolean(v)) {
			param_key(b, first, i);
			if (json_is_true(v)) {
				PUTS(b, "true");
			} else {
				PUTS(b, "false");
			}
		}
		break;
	case P_MAP:
		put_string_map(b, first, i, v);
		break;
	case P_STRLIST:
		if (string_list(v)) {
			param_key(b, first, i);
			rec_json(b, v);
		}
		break;
	case P_TOKENS:
		if (string_list(v) && json_array_size(v) > 0 &&
		    json_array_size(v) <= KMS_MAX_GRANT_TOKENS) {
			param_key(b, first, i);
			put_grant_ids(b, v, st);
		}
		break;
	case P_TAGS:
		if (!json_is_array(v)) {
			break;
		}
		param_key(b, first, i);
		PUTS(b, "[");
		json_array_foreach(v, j, x) {
			json_t *tk = json_object_get(x, "TagKey");
			json_t *tv = json_object_get(x, "TagValue");
			if (!json_is_string(tk) || !json_is_string(tv)) {
				continue;
			}
			if (!f2) {
				PUTS(b, ",");
			}
			f2 = 0;
			PUTS(b, "{\"tagKey\":");
			rec_strn(b, json_string_value(tk),
			    json_string_length(tk));
			PUTS(b, ",\"tagValue\":");
			rec_strn(b, json_string_value(tv),
			    json_string_length(tv));
			PUTS(b, "}");
		}
		PUTS(b, "]");
		break;
	case P_CONSTRAINTS:
		if (!json_is_object(v)) {
			break;
		}
		param_key(b, first, i);
		PUTS(b, "{");
		json_object_foreach(v, k, x) {
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
		PUTS(b, "}");
		break;
	case P_SHA256:
		/* The policy's digest: enough to tell which document was
		 * set (compare with GetKeyPolicy's), never the document. */
		if (json_is_string(v)) {
			SHA256((const uint8_t *)json_string_value(v),
			    json_string_length(v), h);
			rec_hex32(h, hx);
			param_key(b, first, i);
			rec_strn(b, hx, 64);
		}
		break;
	}
}

/* A base64 character's value, or NB. */
#define NB 0xff
static const uint8_t b64_val[256] = {
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, 62, NB, NB, NB, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, NB, NB, NB, NB, NB, NB,
	NB,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, NB, NB, NB, NB, NB,
	NB, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
	NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB, NB,
};

/* Key ARN and version from a ciphertext blob's base64 (its first 21
 * bytes: format, key id, version; DESIGN §3); 0 when it is not one. */
static int
blob_key(const struct kmsd *d, const json_t *v, struct rec_res *out)
{
	uint8_t hdr[21];
	const char *s;
	uint32_t q, c;
	int i, k;

	if (!json_is_string(v) || json_string_length(v) < 28) {
		return 0;
	}
	/* The header is no secret: a plain decode, not b64_decode's
	 * constant-time one (this runs for every record). */
	s = json_string_value(v);
	for (i = 0; i < 7; i++) {
		for (q = 0, k = 0; k < 4; k++) {
			if ((c = b64_val[(unsigned char)s[4 * i + k]]) == NB) {
				return 0;
			}
			q = q << 6 | c;
		}
		hdr[3 * i] = (uint8_t)(q >> 16);
		hdr[3 * i + 1] = (uint8_t)(q >> 8);
		hdr[3 * i + 2] = (uint8_t)q;
	}
	if (hdr[0] != 0x01) {
		return 0;
	}
	memcpy(out->arn, d->key_arn_prefix, d->key_arn_prefix_len);
	uuid_str(hdr + 1, out->arn + d->key_arn_prefix_len);
	out->len = d->key_arn_prefix_len + 36;
	out->version = (uint32_t)hdr[17] << 24 | (uint32_t)hdr[18] << 16 |
	    (uint32_t)hdr[19] << 8 | hdr[20];
	return 1;
}

/* A resource (arn of len bytes, no NUL within) unless it is listed:
 * a version fills in one listed without. */
static void
res_add(struct rec_res *r, int *n, const char *arn, size_t len,
    uint32_t version)
{
	int i;

	for (i = 0; i < *n; i++) {
		if (r[i].len == len && memcmp(r[i].arn, arn, len) == 0) {
			if (version != 0 && r[i].version == 0) {
				r[i].version = version;
				return;
			}
			if (version == 0 || r[i].version == version) {
				return;
			}
		}
	}
	if (*n < REC_RES_MAX && len < sizeof(r[*n].arn)) {
		memcpy(r[*n].arn, arn, len);
		r[*n].arn[len] = '\0';
		r[*n].len = len;
		r[*n].version = version;
		(*n)++;
	}
}

/* The operations GetKeyLastUsage tracks (AWS: cryptographic ones). */
int
rec_tracked_op(const char *op)
{
	return (op_class(op, strlen(op)) & OPC_TRACKED) != 0;
}

/* A successful tracked record's keys (at most two: ReEncrypt's): those
 * of its resources whose ARN ends in a 36-character key id. */
static void
use_add(struct rec_use *un, size_t *nun, const struct rec_res *res, int nres,
    const char *op, const char *id)
{
	const char *k;
	int i;

	for (i = 0; i < nres && i < 2; i++) {
		if ((k = memrchr(res[i].arn, '/', res[i].len)) == NULL ||
		    res[i].arn + res[i].len - ++k != 36) {
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
	if (p == NULL) {
		PUTS(b, "\"userIdentity\":{\"type\":\"Unknown\"");
	} else {
		PUTS(b, "\"userIdentity\":{\"type\":\"LocalUser\","
		    "\"principalId\":");
		rec_str(b, p->name);
		if (o == NULL || o->transport == NULL ||
		    strcmp(o->transport, "ipc") == 0) {
			PUTS(b, ",\"uid\":");
			rec_u64(b, (uint64_t)p->uid);
			PUTS(b, ",\"pid\":");
			rec_i64(b, (int64_t)p->pid);
		}
	}
	if (o != NULL && o->transport != NULL) {
		PUTS(b, ",\"transport\":");
		rec_str(b, o->transport);
	} else {
		PUTS(b, ",\"transport\":\"ipc\"");
	}
	if (o != NULL && o->access_key != NULL) {
		PUTS(b, ",\"accessKeyId\":");
		rec_str(b, o->access_key);
	}
	PUTS(b, "}");
}

/* A plausible operation name (letters and digits, 1 to 64 of them) for
 * the record of a request, whatever a (its Action, may be NULL) says;
 * its length in *n. */
#define UNKNOWN_OP "Unknown"
static const char *
event_name(const json_t *a, size_t *n)
{
	const char *s;
	size_t len, i;

	*n = sizeof(UNKNOWN_OP) - 1;
	if (!json_is_string(a)) {
		return UNKNOWN_OP;
	}
	s = json_string_value(a);
	len = json_string_length(a);
	if (len < 1 || len > 64) {
		return UNKNOWN_OP;
	}
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' &&
		    s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))) {
			return UNKNOWN_OP;
		}
	}
	*n = len;
	return s;
}

void
rec_api_prefix(struct rec_buf *b, const struct kmsd *d,
    const struct audit_call *call, const char *when)
{
	PUTS(b, "{\"eventVersion\":\"" AUDIT_EVENT_VERSION "\",");
	put_identity(b, d, call->p, call->o);
	PUTS(b, ",\"eventTime\":\"");
	rec_puts(b, when);
	PUTS(b, "\",\"eventSource\":\"" AUDIT_SOURCE "\",\"eventName\":");
}

/* What one walk of a request finds: its Action, its ciphertext and the
 * logged fields, in the request's order (an object's keys are unique,
 * so there are at most NPARAMS).  Keys are matched by their length as
 * jansson keeps it: neither the daemon's reader (common/json.c) nor
 * jansson's accepts a NUL in a key. */
struct req_fields {
	json_t *action, *blob;
	struct {
		int i;
		json_t *v;
	} p[NPARAMS];
	size_t np;
};

static void
req_fields(json_t *req, struct req_fields *f)
{
	const char *k;
	size_t n;
	void *it;
	int i;

	f->action = f->blob = NULL;
	f->np = 0;
	for (it = json_object_iter(req); it != NULL;
	    it = json_object_iter_next(req, it)) {
		k = json_object_iter_key(it);
		n = json_object_iter_key_len(it);
		if (n == 6 && memcmp(k, "Action", 6) == 0) {
			f->action = json_object_iter_value(it);
		} else if (n == 14 && memcmp(k, "CiphertextBlob", 14) == 0) {
			f->blob = json_object_iter_value(it);
		} else if ((i = param_index(k, n)) >= 0 && f->np < NPARAMS) {
			f->p[f->np].i = i;
			f->p[f->np].v = json_object_iter_value(it);
			f->np++;
		}
	}
}

/* What one walk of a reply finds (each NULL when absent). */
struct resp_fields {
	json_t *type, *message, *md, *grant_id, *blob;
};

static void
resp_fields(json_t *resp, struct resp_fields *f)
{
	const char *k;
	size_t n;
	void *it;

	memset(f, 0, sizeof(*f));
	for (it = json_object_iter(resp); it != NULL;
	    it = json_object_iter_next(resp, it)) {
		k = json_object_iter_key(it);
		n = json_object_iter_key_len(it);
		if (n == 6 && memcmp(k, "__type", 6) == 0) {
			f->type = json_object_iter_value(it);
		} else if (n == 7 && memcmp(k, "message", 7) == 0) {
			f->message = json_object_iter_value(it);
		} else if (n == 11 && memcmp(k, "KeyMetadata", 11) == 0) {
			f->md = json_object_iter_value(it);
		} else if (n == 7 && memcmp(k, "GrantId", 7) == 0) {
			f->grant_id = json_object_iter_value(it);
		} else if (n == 14 && memcmp(k, "CiphertextBlob", 14) == 0) {
			f->blob = json_object_iter_value(it);
		}
	}
}

/*
 * The keys a record names: those the request was authorised against
 * (its note), with the version a ciphertext names (the request's, rq,
 * for a decryption; the reply's for an encryption), and a created key.
 */
static int
find_resources(const struct kmsd *d, const struct audit_item *it,
    const struct rec_res *rq, int failed, const struct resp_fields *rs,
    struct rec_res *res)
{
	struct rec_res r;
	json_t *v;
	int nres = 0, i;

	if (it->note != NULL) {
		for (i = 0; i < it->note->narn; i++) {
			res_add(res, &nres, it->note->arn[i],
			    strlen(it->note->arn[i]), 0);
		}
	}
	if (rq != NULL) {
		res_add(res, &nres, rq->arn, rq->len, rq->version);
	}
	if (!failed && it->resp != NULL) {
		if (blob_key(d, rs->blob, &r)) {
			res_add(res, &nres, r.arn, r.len, r.version);
		}
		v = rs->md != NULL ? json_object_get(rs->md, "Arn") : NULL;
		if (json_is_string(v)) {
			res_add(res, &nres, json_string_value(v),
			    strlen(json_string_value(v)), 0);
		}
	}
	return nres;
}

/* What differs between a Batch's items comes last: the writer hashes a
 * line from the state after the blocks it shares with the line before
 * (audit.c, line_hash), and JSON readers take keys in any order. */
static void
put_tail(struct rec_buf *b, const struct audit_item *it, const char *id)
{
	int first = 1;

	PUTS(b, ",\"eventType\":\"AwsApiCall\",\"eventID\":\"");
	put(b, id, 36);
	PUTS(b, "\"");
	if (it->count > 0 || (it->note != NULL &&
	    it->note->grant_id[0] != '\0')) {
		PUTS(b, ",\"additionalEventData\":{");
		if (it->count > 0) {
			PUTS(b, "\"batchIndex\":");
			rec_u64(b, it->index);
			PUTS(b, ",\"batchSize\":");
			rec_u64(b, it->count);
			first = 0;
		}
		if (it->note != NULL && it->note->grant_id[0] != '\0') {
			rec_key(b, &first, "grantId");
			rec_str(b, it->note->grant_id);
		}
		PUTS(b, "}");
	}
}

/*
 * The record of an item that is the same text as the previous one (m),
 * when both succeeded and name the same keys: the previous record up to
 * its eventID, then its own tail.  0 (nothing written) when it is not.
 */
static int
memo_record(struct rec_buf *b, const struct kmsd *d,
    const struct audit_item *it, struct rec_memo *m, struct rec_use *un,
    size_t *nun)
{
	struct resp_fields rs;
	struct rec_res res[REC_RES_MAX];
	size_t start = b->len;
	char id[37], *w;
	int nres, i;

	if (m == NULL || !m->ok || it->raw == NULL || it->resp == NULL ||
	    it->rawlen != m->rawlen || memcmp(it->raw, m->raw,
	    it->rawlen) != 0) {
		return 0;
	}
	resp_fields(it->resp, &rs);
	if (rs.type != NULL) {
		return 0;
	}
	nres = find_resources(d, it, m->has_rq ? &m->rq : NULL, 0, &rs, res);
	if (nres != m->nres) {
		return 0;
	}
	for (i = 0; i < nres; i++) {
		if (res[i].len != m->res[i].len ||
		    res[i].version != m->res[i].version ||
		    memcmp(res[i].arn, m->res[i].arn, res[i].len) != 0) {
			return 0;
		}
	}
	/* Room first: the copy comes from b itself. */
	if ((w = rec_room(b, m->mid)) == NULL) {
		return 0;
	}
	memcpy(w, b->p + m->start, m->mid);
	b->len += m->mid;
	m->start = start;
	audit_new_id(id);
	if (un != NULL && (m->opc & OPC_TRACKED)) {
		use_add(un, nun, res, nres, m->op, id);
	}
	put_tail(b, it, id);
	return 1;
}

void
rec_api_record(struct rec_buf *b, const struct kmsd *d,
    const struct audit_call *call, const struct audit_item *it,
    const char *when, const struct rec_buf *prefix, struct rec_memo *m,
    struct rec_use *un, size_t *nun)
{
	struct req_fields rq;
	struct resp_fields rs;
	const char *op;
	json_t *err;
	struct rec_res res[REC_RES_MAX], rqres;
	char id[37];
	size_t k, oplen, start = b->len;
	unsigned opc;
	int first = 1, nres, has_rq, tokens = 0,
	    is_obj = json_is_object(it->req);

	if (memo_record(b, d, it, m, un, nun)) {
		return;
	}
	audit_new_id(id);
	/* Each of the request and reply walked once for what the record
	 * takes of them. */
	if (is_obj) {
		req_fields(it->req, &rq);
	} else {
		rq.action = rq.blob = NULL;
		rq.np = 0;
	}
	resp_fields(it->resp, &rs);
	err = rs.type;
	op = event_name(rq.action, &oplen);
	opc = op_class(op, oplen);
	/* What every record of the message shares, formatted once. */
	if (prefix != NULL && prefix->len > 0) {
		put(b, prefix->p, prefix->len);
	} else {
		rec_api_prefix(b, d, call, when);
	}
	/* Letters and digits: nothing to escape. */
	PUTS(b, "\"");
	put(b, op, oplen);
	PUTS(b, "\"");
	if (call->o != NULL && call->o->address != NULL) {
		PUTS(b, ",\"sourceIPAddress\":");
		rec_str(b, call->o->address);
	}
	if (call->o != NULL && call->o->user_agent != NULL) {
		PUTS(b, ",\"userAgent\":");
		rec_str(b, call->o->user_agent);
	}
	if (it->resp == NULL) {
		PUTS(b, ",\"errorCode\":\"KMSInternalException\","
		    "\"errorMessage\":\"no reply\"");
	} else if (json_is_string(err)) {
		PUTS(b, ",\"errorCode\":");
		rec_strn(b, json_string_value(err), strlen(
		    json_string_value(err)));
		if (json_is_string(rs.message)) {
			PUTS(b, ",\"errorMessage\":");
			rec_strn(b, json_string_value(rs.message),
			    json_string_length(rs.message));
		}
	}
	/* requestParameters: the allow-list. */
	if (!is_obj) {
		PUTS(b, ",\"requestParameters\":null");
	} else {
		PUTS(b, ",\"requestParameters\":{");
		for (k = 0; k < rq.np; k++) {
			tokens |= params[rq.p[k].i].kind == P_TOKENS;
			put_param(b, &first, rq.p[k].i, rq.p[k].v, call->st);
		}
		PUTS(b, "}");
	}
	/* responseElements: what CloudTrail shows, never a secret. */
	if (err == NULL && (opc & OPC_CREATE_KEY) && json_is_object(rs.md)) {
		PUTS(b, ",\"responseElements\":{\"keyMetadata\":");
		rec_json(b, rs.md);
		PUTS(b, "}");
	} else if (err == NULL && (opc & OPC_CREATE_GRANT) &&
	    json_is_string(rs.grant_id)) {
		PUTS(b, ",\"responseElements\":{\"grantId\":");
		rec_str(b, json_string_value(rs.grant_id));
		PUTS(b, "}");
	} else {
		PUTS(b, ",\"responseElements\":null");
	}
	PUTS(b, ",\"requestID\":");
	if (call->request_id != NULL) {
		rec_str(b, call->request_id);
	} else {
		PUTS(b, "\"\"");
	}
	if (opc & OPC_READ_ONLY) {
		PUTS(b, ",\"readOnly\":true");
	} else {
		PUTS(b, ",\"readOnly\":false");
	}
	has_rq = blob_key(d, rq.blob, &rqres);
	nres = find_resources(d, it, has_rq ? &rqres : NULL, err != NULL ||
	    it->resp == NULL, &rs, res);
	if (err == NULL && it->resp != NULL && un != NULL &&
	    (opc & OPC_TRACKED)) {
		use_add(un, nun, res, nres, op, id);
	}
	if (nres > 0) {
		PUTS(b, ",\"resources\":[");
		for (k = 0; k < (size_t)nres; k++) {
			if (k > 0) {
				PUTS(b, ",");
			}
			PUTS(b, "{\"ARN\":");
			rec_strn(b, res[k].arn, res[k].len);
			if (res[k].version != 0) {
				PUTS(b, ",\"keyVersion\":");
				rec_u64(b, res[k].version);
			}
			PUTS(b, "}");
		}
		PUTS(b, "]");
	}
	/* What the next item may share: all but the tail, when nothing in
	 * it came of anything but the item's text and the keys named.
	 * (Grant tokens are looked up in the store: not lent.) */
	if (m != NULL) {
		m->ok = it->raw != NULL && it->resp != NULL && err == NULL &&
		    !(opc & (OPC_CREATE_KEY | OPC_CREATE_GRANT)) && !tokens &&
		    !b->oom;
		if (m->ok) {
			m->raw = it->raw;
			m->rawlen = it->rawlen;
			m->start = start;
			m->mid = b->len - start;
			m->op = op;
			m->opc = opc;
			m->has_rq = has_rq;
			if (has_rq) {
				m->rq = rqres;
			}
			m->nres = nres;
			memcpy(m->res, res, (size_t)nres * sizeof(res[0]));
		}
	}
	put_tail(b, it, id);
}

void
rec_service_record(struct rec_buf *b, const struct kmsd *d, const char *name,
    const char *resource_arn, json_t *details, const char *when)
{
	char id[37];

	audit_new_id(id);
	PUTS(b, "{\"eventVersion\":\"" AUDIT_EVENT_VERSION "\","
	    "\"userIdentity\":{\"type\":\"AWSService\",\"invokedBy\":"
	    "\"kmsd\"},\"eventTime\":\"");
	rec_puts(b, when);
	PUTS(b, "\",\"eventSource\":\"" AUDIT_SOURCE "\",\"eventName\":");
	rec_str(b, name);
	PUTS(b, ",\"requestParameters\":null,\"responseElements\":null,"
	    "\"eventID\":\"");
	put(b, id, 36);
	PUTS(b, "\",\"readOnly\":false");
	if (resource_arn != NULL) {
		PUTS(b, ",\"resources\":[{\"ARN\":");
		rec_str(b, resource_arn);
		PUTS(b, "}]");
	}
	PUTS(b, ",\"eventType\":\"AwsServiceEvent\","
	    "\"serviceEventDetails\":");
	if (details != NULL) {
		rec_json(b, details);
	} else {
		PUTS(b, "{}");
	}
}
