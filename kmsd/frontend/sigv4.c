/*
 * sigv4.c — AWS Signature Version 4, the server's side (sigv4.h).
 *
 * The canonical request, as AWS's signing documentation gives it:
 *
 *   METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n
 *   SignedHeaders \n hex(SHA-256(body))
 *
 * CanonicalURI: the path, each byte outside A-Za-z0-9-_.~/ as %XX.
 * CanonicalQuery: name=value pairs, both so encoded, sorted by name then
 * value, joined by '&'.  CanonicalHeaders: for each signed header in the
 * order SignedHeaders names them, "name:value\n", the values of a repeated
 * header joined by ',' in arrival order, each trimmed and its runs of
 * spaces folded to one.  The string to sign is
 *
 *   AWS4-HMAC-SHA256 \n X-Amz-Date \n date/region/service/aws4_request \n
 *   hex(SHA-256(canonical request))
 *
 * and the key HMAC("AWS4" + secret, date) → region → service →
 * "aws4_request".  The test vectors of AWS's SigV4 test suite pass
 * (tests/test_sigv4.c).
 *
 * OpenSSL 3's one-shot HMAC() and SHA256() look their algorithm up on
 * every call, and EVP_Digest() allocates a context, which cost more than
 * the hashing of a request: SHA-256 is OpenSSL's low-level one, which
 * uses the CPU's SHA instructions, and HMAC is made here on it
 * (libsodium's portable SHA-256 took four times as long).  The signing
 * key depends only on the secret and the scope, so a caller may derive
 * it once a day (sigv4_signing_key) and check each request with it
 * (sigv4_verify_key).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* SHA256_CTX: OpenSSL 3 keeps the low-level API, deprecated. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/clock.h"
#include "common/secmem.h"
#include "kmsd/frontend/sigv4.h"

#define SIGV4_SECRET_MAX 128		/* longest secret accepted */

const char *
sigv4_error_name(int e)
{
	switch (e) {
	case SIGV4_MISSING:
		return "MissingAuthenticationTokenException";
	case SIGV4_INCOMPLETE:
		return "IncompleteSignatureException";
	case SIGV4_UNRECOGNIZED:
		return "UnrecognizedClientException";
	case SIGV4_INVALID:
		return "InvalidSignatureException";
	default:
		return "KMSInternalException";
	}
}

static int
fail(int e, char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(int e, char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return e;
}

/* ---- a growing string, bounded by what it is fed ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom) {
		return;
	}
	if (n + 1 > b->cap - b->len) {
		size_t cap = b->cap == 0 ? 512 : b->cap;
		char *p;
		while (n + 1 > cap - b->len) {
			cap *= 2;
		}
		if ((p = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

#define SIGV4_UNRESERVED "ABCDEFGHIJKLMNOPQRSTUVWXYZ" \
    "abcdefghijklmnopqrstuvwxyz0123456789-_.~"

/* s, each byte outside the unreserved set (and '/' when keep_slash)
 * as %XX; runs of bytes kept as they are added at once. */
static void
sb_uri(struct sbuf *b, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *keep = keep_slash ? SIGV4_UNRESERVED "/" :
	    SIGV4_UNRESERVED;
	char e[3];
	size_t run;

	while (*s != '\0') {
		if ((run = strspn(s, keep)) > 0) {
			sb_add(b, s, run);
			s += run;
			continue;
		}
		e[0] = '%';
		e[1] = hex[(unsigned char)*s >> 4];
		e[2] = hex[(unsigned char)*s & 15];
		sb_add(b, e, 3);
		s++;
	}
}

static void
hexify(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
sha256_hex(const void *p, size_t n, char out[65])
{
	uint8_t d[32];
	SHA256_CTX sc;

	SHA256_Init(&sc);
	SHA256_Update(&sc, p, n);
	SHA256_Final(d, &sc);
	hexify(d, sizeof(d), out);
}

static const char *
header(const struct sigv4_msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nheaders; i++) {
		if (strcasecmp(m->headers[i].name, name) == 0) {
			return m->headers[i].value;
		}
	}
	return NULL;
}

/* ---- parsing ---- */

static int
digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

#define D2(p) (((p)[0] - '0') * 10 + ((p)[1] - '0'))

/* YYYYMMDDTHHMMSSZ → seconds since the epoch; -1 if malformed.  Like
 * timegm(3), a day past the month's end runs into the next month. */
static int
parse_amz_date(const char *s, time_t *out)
{
	int y, mon, mday, hour, min, sec;

	if (strlen(s) != 16 || !digits(s, 8) || s[8] != 'T' ||
	    !digits(s + 9, 6) || s[15] != 'Z') {
		return -1;
	}
	y = D2(s) * 100 + D2(s + 2);
	mon = D2(s + 4);
	mday = D2(s + 6);
	hour = D2(s + 9);
	min = D2(s + 11);
	sec = D2(s + 13);
	if (mon < 1 || mon > 12 || mday < 1 || mday > 31 || hour > 23 ||
	    min > 59 || sec > 60) {
		return -1;
	}
	*out = (time_t)(days_from_civil(y, (unsigned)mon, (unsigned)mday) *
	    86400 + hour * 3600 + min * 60 + sec);
	return 0;
}

/* Copy [s, s+n) into dst of cap bytes; -1 when it does not fit or n is 0. */
static int
take(char *dst, size_t cap, const char *s, size_t n)
{
	if (n == 0 || n >= cap) {
		return -1;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* Is tok one of the ';'-separated names in list? */
static int
has_token(const char *list, const char *tok)
{
	size_t n = strlen(tok);
	const char *p;

	for (p = list; *p != '\0'; p += strcspn(p, ";"), p += *p == ';') {
		if (strncmp(p, tok, n) == 0 && (p[n] == ';' || p[n] == '\0')) {
			return 1;
		}
	}
	return 0;
}

/* Credential=AKID/date/region/service/terminator */
static int
parse_credential(const char *v, size_t n, struct sigv4_auth *a, char *msg,
    size_t msglen)
{
	const char *part[5], *end = v + n, *p = v;
	size_t plen[5];
	int i;

	for (i = 0; i < 5; i++) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		part[i] = p;
		if (i < 4) {
			if (slash == NULL) {
				goto bad;
			}
			plen[i] = (size_t)(slash - p);
			p = slash + 1;
		} else {
			plen[i] = (size_t)(end - p);
		}
	}
	if (take(a->akid, sizeof(a->akid), part[0], plen[0]) != 0 ||
	    strspn(a->akid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789") != plen[0]) {
		goto bad;
	}
	if (plen[1] != 8 || !digits(part[1], 8)) {
		goto bad;
	}
	memcpy(a->scope_date, part[1], 8);
	a->scope_date[8] = '\0';
	if (take(a->region, sizeof(a->region), part[2], plen[2]) != 0 ||
	    take(a->service, sizeof(a->service), part[3], plen[3]) != 0) {
		goto bad;
	}
	if (plen[4] != 12 || memcmp(part[4], "aws4_request", 12) != 0) {
		return fail(SIGV4_INVALID, msg, msglen, "Credential should be "
		    "scoped with a valid terminator: 'aws4_request', not "
		    "'%.*s'.", (int)(plen[4] > 32 ? 32 : plen[4]), part[4]);
	}
	return 0;
 bad:
	return fail(SIGV4_INCOMPLETE, msg, msglen, "Credential must have "
	    "exactly 5 slash-delimited elements, e.g. keyid/date/region/"
	    "service/term, got '%.*s'", (int)(n > 200 ? 200 : n), v);
}

int
sigv4_parse(const struct sigv4_msg *m, struct sigv4_auth *a, char *msg,
    size_t msglen)
{
	const char *h = header(m, "authorization"), *d, *p;
	int have_cred = 0, have_sh = 0, have_sig = 0, r;
	size_t alg = sizeof(SIGV4_ALGORITHM) - 1;

	memset(a, 0, sizeof(*a));
	if (h == NULL) {
		return fail(SIGV4_MISSING, msg, msglen, "Missing Authentication "
		    "Token");
	}
	if (strncmp(h, SIGV4_ALGORITHM, alg) != 0 || h[alg] != ' ') {
		return fail(SIGV4_INCOMPLETE, msg, msglen, "Unsupported "
		    "Authorization Type: only %s is accepted",
		    SIGV4_ALGORITHM);
	}
	/* Credential=..., SignedHeaders=..., Signature=... in any order. */
	for (p = h + alg; *p != '\0';) {
		const char *end, *eq;
		size_t n;
		while (*p == ' ' || *p == ',') {
			p++;
		}
		if (*p == '\0') {
			break;
		}
		end = p + strcspn(p, ",");
		while (end > p && end[-1] == ' ') {
			end--;
		}
		if ((eq = memchr(p, '=', (size_t)(end - p))) == NULL) {
			return fail(SIGV4_INCOMPLETE, msg, msglen,
			    "Authorization header elements must be name=value "
			    "pairs");
		}
		n = (size_t)(end - eq - 1);
		if ((size_t)(eq - p) == 10 && strncmp(p, "Credential", 10) == 0) {
			if ((r = parse_credential(eq + 1, n, a, msg,
			    msglen)) != 0) {
				return r;
			}
			have_cred = 1;
		} else if ((size_t)(eq - p) == 13 &&
		    strncmp(p, "SignedHeaders", 13) == 0) {
			if (take(a->signed_headers, sizeof(a->signed_headers),
			    eq + 1, n) != 0 || strspn(a->signed_headers,
			    "abcdefghijklmnopqrstuvwxyz0123456789-_;") != n) {
				return fail(SIGV4_INCOMPLETE, msg, msglen,
				    "SignedHeaders must be lower-case header "
				    "names separated by ';'");
			}
			have_sh = 1;
		} else if ((size_t)(eq - p) == 9 &&
		    strncmp(p, "Signature", 9) == 0) {
			/* Any other length or case simply will not match. */
			if (n == 0 || n > 64 || strspn(eq + 1,
			    "0123456789abcdefABCDEF") < n) {
				return fail(SIGV4_INCOMPLETE, msg, msglen,
				    "Signature must be 64 hexadecimal digits");
			}
			memcpy(a->signature, eq + 1, n);
			a->signature[n] = '\0';
			have_sig = 1;
		}
		p = *end == '\0' ? end : end + 1;
		while (*p == ' ') {
			p++;
		}
	}
	if (!have_cred || !have_sh || !have_sig) {
		return fail(SIGV4_INCOMPLETE, msg, msglen, "Authorization "
		    "header requires '%s' parameter.", !have_cred ?
		    "Credential" : !have_sh ? "SignedHeaders" : "Signature");
	}
	if ((d = header(m, "x-amz-date")) == NULL) {
		return fail(SIGV4_INCOMPLETE, msg, msglen, "Authorization header "
		    "requires existence of either a 'X-Amz-Date' or a 'Date' "
		    "header.");
	}
	if (parse_amz_date(d, &a->when) != 0) {
		return fail(SIGV4_INCOMPLETE, msg, msglen, "Date must be in "
		    "ISO-8601 'basic format'. Got '%.32s'. See "
		    "http://en.wikipedia.org/wiki/ISO_8601", d);
	}
	memcpy(a->amz_date, d, 16);
	a->amz_date[16] = '\0';
	if (!has_token(a->signed_headers, "host")) {
		return fail(SIGV4_INCOMPLETE, msg, msglen, "'Host' or "
		    "':authority' must be a 'SignedHeader' in the AWS "
		    "Authorization.");
	}
	return SIGV4_OK;
}

/* ---- the canonical request ---- */

/* A header's values, trimmed, runs of spaces folded, joined by ','. */
static int
add_header_values(struct sbuf *b, const struct sigv4_msg *m,
    const char *name, size_t namelen)
{
	size_t i;
	int found = 0;

	for (i = 0; i < m->nheaders; i++) {
		const char *v = m->headers[i].value;
		size_t run;
		if (strncasecmp(m->headers[i].name, name, namelen) != 0 ||
		    m->headers[i].name[namelen] != '\0') {
			continue;
		}
		if (found++) {
			sb_add(b, ",", 1);
		}
		v += strspn(v, " \t");
		while (*v != '\0') {
			run = strcspn(v, " \t");
			sb_add(b, v, run);
			v += run;
			v += strspn(v, " \t");
			if (*v != '\0') {
				sb_add(b, " ", 1);
			}
		}
	}
	return found;
}

struct qpair {
	char *name, *value;
};

static int
qpair_cmp(const void *x, const void *y)
{
	const struct qpair *a = x, *b = y;
	int c = strcmp(a->name, b->name);

	return c != 0 ? c : strcmp(a->value, b->value);
}

static int
add_query(struct sbuf *b, const struct sigv4_msg *m)
{
	struct qpair *q;
	size_t i;
	int r = 0;

	if (m->nquery == 0) {
		return 0;
	}
	if (m->nquery > SIGV4_QUERY_MAX ||
	    (q = calloc(m->nquery, sizeof(*q))) == NULL) {
		return -1;
	}
	for (i = 0; i < m->nquery; i++) {
		struct sbuf n = { 0 }, v = { 0 };
		sb_uri(&n, m->query[i].name, 0);
		sb_str(&n, "");
		sb_uri(&v, m->query[i].value != NULL ? m->query[i].value :
		    "", 0);
		sb_str(&v, "");
		q[i].name = n.p;
		q[i].value = v.p;
		if (n.oom || v.oom) {
			r = -1;
		}
	}
	if (r == 0) {
		qsort(q, m->nquery, sizeof(*q), qpair_cmp);
		for (i = 0; i < m->nquery; i++) {
			if (i > 0) {
				sb_add(b, "&", 1);
			}
			sb_str(b, q[i].name);
			sb_add(b, "=", 1);
			sb_str(b, q[i].value);
		}
	}
	for (i = 0; i < m->nquery; i++) {
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
	return r;
}

/*
 * The payload's hash for the canonical request: x-amz-content-sha256 when
 * the request sent one (sigv4_check has compared it with the body, so the
 * body is hashed once), else the body's SHA-256.
 */
static void
payload_hash(const struct sigv4_msg *m, char out[65])
{
	const char *sent = header(m, "x-amz-content-sha256");
	size_t i;

	if (sent != NULL && strlen(sent) == 64 && strspn(sent,
	    "0123456789abcdefABCDEF") == 64) {
		for (i = 0; i < 64; i++) {
			out[i] = (char)tolower((unsigned char)sent[i]);
		}
		out[64] = '\0';
		return;
	}
	sha256_hex(m->body != NULL ? m->body : (const uint8_t *)"",
	    m->bodylen, out);
}

int
sigv4_canonical_request(const struct sigv4_msg *m, const struct sigv4_auth *a,
    char **out, char *msg, size_t msglen)
{
	struct sbuf b = { 0 };
	const char *p, *e;
	char bodyhash[65];

	sb_str(&b, m->method);
	sb_add(&b, "\n", 1);
	sb_uri(&b, m->path[0] != '\0' ? m->path : "/", 1);
	sb_add(&b, "\n", 1);
	if (add_query(&b, m) != 0) {
		free(b.p);
		return fail(SIGV4_INCOMPLETE, msg, msglen, "Too many query "
		    "parameters");
	}
	sb_add(&b, "\n", 1);
	for (p = a->signed_headers; *p != '\0'; p = *e == ';' ? e + 1 : e) {
		e = p + strcspn(p, ";");
		sb_add(&b, p, (size_t)(e - p));
		sb_add(&b, ":", 1);
		if (e == p || add_header_values(&b, m, p,
		    (size_t)(e - p)) == 0) {
			free(b.p);
			return fail(SIGV4_INVALID, msg, msglen, "The request "
			    "signature we calculated does not match the "
			    "signature you provided: signed header '%.*s' is "
			    "not in the request.", (int)(e - p > 64 ? 64 :
			    e - p), p);
		}
		sb_add(&b, "\n", 1);
	}
	sb_add(&b, "\n", 1);
	sb_str(&b, a->signed_headers);
	sb_add(&b, "\n", 1);
	payload_hash(m, bodyhash);
	sb_str(&b, bodyhash);
	if (b.oom) {
		free(b.p);
		return fail(SIGV4_INCOMPLETE, msg, msglen, "out of memory");
	}
	*out = b.p;
	return SIGV4_OK;
}

/* HMAC-SHA-256 (RFC 2104). */
static void
hmac(const uint8_t *key, size_t keylen, const void *data, size_t len,
    uint8_t out[SIGV4_KEY_LEN])
{
	uint8_t k[64], pad[64], inner[32];
	SHA256_CTX sc;
	size_t i;

	memset(k, 0, sizeof(k));
	if (keylen > sizeof(k)) {
		SHA256_Init(&sc);
		SHA256_Update(&sc, key, keylen);
		SHA256_Final(k, &sc);
	} else {
		memcpy(k, key, keylen);
	}
	for (i = 0; i < sizeof(pad); i++) {
		pad[i] = k[i] ^ 0x36;
	}
	SHA256_Init(&sc);
	SHA256_Update(&sc, pad, sizeof(pad));
	SHA256_Update(&sc, data, len);
	SHA256_Final(inner, &sc);
	for (i = 0; i < sizeof(pad); i++) {
		pad[i] = k[i] ^ 0x5c;
	}
	SHA256_Init(&sc);
	SHA256_Update(&sc, pad, sizeof(pad));
	SHA256_Update(&sc, inner, sizeof(inner));
	SHA256_Final(out, &sc);
	secure_wipe(k, sizeof(k));
	secure_wipe(pad, sizeof(pad));
	secure_wipe(inner, sizeof(inner));
	secure_wipe(&sc, sizeof(sc));
}

int
sigv4_signing_key(const uint8_t *secret, size_t secretlen, const char *date,
    const char *region, const char *service, uint8_t key[SIGV4_KEY_LEN])
{
	uint8_t k[4 + SIGV4_SECRET_MAX], kd[32], kr[32], ks[32];

	if (secretlen > SIGV4_SECRET_MAX) {
		return -1;
	}
	memcpy(k, "AWS4", 4);
	memcpy(k + 4, secret, secretlen);
	hmac(k, 4 + secretlen, date, strlen(date), kd);
	hmac(kd, 32, region, strlen(region), kr);
	hmac(kr, 32, service, strlen(service), ks);
	hmac(ks, 32, "aws4_request", 12, key);
	secure_wipe(k, sizeof(k));
	secure_wipe(kd, sizeof(kd));
	secure_wipe(kr, sizeof(kr));
	secure_wipe(ks, sizeof(ks));
	return 0;
}

/* Append s at out + n; the new length. */
static size_t
put_field(char *out, size_t n, const char *s)
{
	size_t len = strlen(s);

	memcpy(out + n, s, len);
	return n + len;
}

/* The signature of m under the signing key, as hex. */
static int
sign_key(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const uint8_t key[SIGV4_KEY_LEN], char hex[65], char *msg, size_t msglen)
{
	uint8_t sig[32];
	char *creq = NULL, sts[256 + 2 * SIGV4_SCOPE_FIELD_MAX];
	size_t n = 0;
	int r;

	if ((r = sigv4_canonical_request(m, a, &creq, msg, msglen)) != 0) {
		return r;
	}
	/* AWS4-HMAC-SHA256 \n X-Amz-Date \n scope \n hex(SHA-256(creq));
	 * each field is bounded by its array in struct sigv4_auth. */
	n = put_field(sts, n, SIGV4_ALGORITHM "\n");
	n = put_field(sts, n, a->amz_date);
	n = put_field(sts, n, "\n");
	n = put_field(sts, n, a->scope_date);
	n = put_field(sts, n, "/");
	n = put_field(sts, n, a->region);
	n = put_field(sts, n, "/");
	n = put_field(sts, n, a->service);
	n = put_field(sts, n, "/aws4_request\n");
	sha256_hex(creq, strlen(creq), sts + n);
	n += 64;
	free(creq);
	hmac(key, SIGV4_KEY_LEN, sts, n, sig);
	hexify(sig, 32, hex);
	return SIGV4_OK;
}

int
sigv4_sign(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const uint8_t *secret, size_t secretlen, char hex[65], char *msg,
    size_t msglen)
{
	uint8_t key[SIGV4_KEY_LEN];
	int r;

	if (sigv4_signing_key(secret, secretlen, a->scope_date, a->region,
	    a->service, key) != 0) {
		return fail(SIGV4_INVALID, msg, msglen, "secret too long");
	}
	r = sign_key(m, a, key, hex, msg, msglen);
	secure_wipe(key, sizeof(key));
	return r;
}

static void
fmt_amz(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

int
sigv4_check(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const char *region, const char *service, time_t now, char *msg,
    size_t msglen)
{
	char t1[17], t2[17], bodyhash[65];
	const char *sent;

	if (strncmp(a->amz_date, a->scope_date, 8) != 0) {
		return fail(SIGV4_INVALID, msg, msglen, "Date in Credential "
		    "scope does not match YYYYMMDD from ISO-8601 version of "
		    "date from HTTP: '%s' != '%.8s', from '%s'.",
		    a->scope_date, a->amz_date, a->amz_date);
	}
	if (strcmp(a->service, service) != 0) {
		return fail(SIGV4_INVALID, msg, msglen, "Credential should be "
		    "scoped to correct service: '%s'.", service);
	}
	if (strcmp(a->region, region) != 0) {
		return fail(SIGV4_INVALID, msg, msglen, "Credential should be "
		    "scoped to a valid region.");
	}
	if (a->when < now - SIGV4_SKEW_S) {
		fmt_amz(now - SIGV4_SKEW_S, t1);
		fmt_amz(now, t2);
		return fail(SIGV4_INVALID, msg, msglen, "Signature expired: %s "
		    "is now earlier than %s (%s - 5 min.)", a->amz_date, t1,
		    t2);
	}
	if (a->when > now + SIGV4_SKEW_S) {
		fmt_amz(now + SIGV4_SKEW_S, t1);
		fmt_amz(now, t2);
		return fail(SIGV4_INVALID, msg, msglen, "Signature not yet "
		    "current: %s is still later than %s (%s + 5 min.)",
		    a->amz_date, t1, t2);
	}
	if ((sent = header(m, "x-amz-content-sha256")) != NULL) {
		sha256_hex(m->body != NULL ? m->body : (const uint8_t *)"",
		    m->bodylen, bodyhash);
		if (strcasecmp(sent, bodyhash) != 0) {
			return fail(SIGV4_INVALID, msg, msglen, "The provided "
			    "'x-amz-content-sha256' header does not match "
			    "what was computed.");
		}
	}
	return SIGV4_OK;
}

int
sigv4_verify_key(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const uint8_t key[SIGV4_KEY_LEN], char *msg, size_t msglen)
{
	char want[65], lower[65];
	size_t i;
	int r;

	if ((r = sign_key(m, a, key, want, msg, msglen)) != 0) {
		return r;
	}
	/* Hex digits in either case; compared whole, in constant time. */
	memset(lower, 0, sizeof(lower));
	for (i = 0; i < 64 && a->signature[i] != '\0'; i++) {
		lower[i] = (char)tolower((unsigned char)a->signature[i]);
	}
	if (i != 64 || CRYPTO_memcmp(lower, want, 64) != 0) {
		return fail(SIGV4_INVALID, msg, msglen, "The request signature "
		    "we calculated does not match the signature you provided. "
		    "Check your AWS Secret Access Key and signing method. "
		    "Consult the service documentation for details.");
	}
	return SIGV4_OK;
}

int
sigv4_verify(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const uint8_t *secret, size_t secretlen, const char *region,
    const char *service, time_t now, char *msg, size_t msglen)
{
	uint8_t key[SIGV4_KEY_LEN];
	int r;

	if ((r = sigv4_check(m, a, region, service, now, msg, msglen)) != 0) {
		return r;
	}
	if (sigv4_signing_key(secret, secretlen, a->scope_date, a->region,
	    a->service, key) != 0) {
		return fail(SIGV4_INVALID, msg, msglen, "secret too long");
	}
	r = sigv4_verify_key(m, a, key, msg, msglen);
	secure_wipe(key, sizeof(key));
	return r;
}
