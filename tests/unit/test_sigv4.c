/*
 * test_sigv4.c — SigV4 as kmsd checks it: the vectors of AWS's Signature
 * Version 4 test suite (credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z,
 * us-east-1, service "service"), a KMS request signed by botocore, and
 * each way a signature fails with AWS's exception; the signing key as
 * AWS's documentation derives it, and as the credentials file keeps it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "kmsd/frontend/credentials.h"
#include "kmsd/frontend/sigv4.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SECRET2 "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ"	/* one letter */
#define WHEN 1440938160		/* 20150830T123600Z */
#define CRED "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/" \
	"service/aws4_request, "

struct vec {
	const char *name, *method, *path;
	struct sigv4_kv query[3];
	size_t nquery;
	struct sigv4_kv headers[6];
	size_t nheaders;
	const char *signed_headers, *signature;
};

#define HOST { "Host", "example.amazonaws.com" }
#define DATE { "X-Amz-Date", "20150830T123600Z" }

static const struct vec vecs[] = {
	{ "get-vanilla", "GET", "/", { { 0 } }, 0, { HOST, DATE }, 2,
	    "host;x-amz-date",
	    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
	{ "get-header-key-duplicate", "GET", "/", { { 0 } }, 0,
	    { HOST, { "My-Header1", "value2" }, { "My-Header1", "value2" },
	    { "My-Header1", "value1" }, DATE }, 5, "host;my-header1;x-amz-date",
	    "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },
	{ "get-header-value-order", "GET", "/", { { 0 } }, 0,
	    { HOST, { "My-Header1", "value4" }, { "My-Header1", "value1" },
	    { "My-Header1", "value3" }, { "My-Header1", "value2" }, DATE }, 6,
	    "host;my-header1;x-amz-date",
	    "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01" },
	{ "get-header-value-trim", "GET", "/", { { 0 } }, 0,
	    { HOST, { "My-Header1", " value1" },
	    { "My-Header2", " \"a   b   c\"" }, DATE }, 4,
	    "host;my-header1;my-header2;x-amz-date",
	    "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },
	{ "get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz", { { 0 } }, 0, { HOST, DATE }, 2,
	    "host;x-amz-date",
	    "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" },
	{ "get-vanilla-query-order-key-case", "GET", "/",
	    { { "Param2", "value2" }, { "Param1", "value1" } }, 2,
	    { HOST, DATE }, 2, "host;x-amz-date",
	    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
	{ "get-vanilla-query-order-value", "GET", "/",
	    { { "Param1", "value2" }, { "Param1", "value1" } }, 2,
	    { HOST, DATE }, 2, "host;x-amz-date",
	    "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694" },
	{ "get-vanilla-utf8-query", "GET", "/",
	    { { "\xe1\x88\xb4", "bar" } }, 1, { HOST, DATE }, 2,
	    "host;x-amz-date",
	    "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },
	{ "post-vanilla", "POST", "/", { { 0 } }, 0, { HOST, DATE }, 2,
	    "host;x-amz-date",
	    "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },
	{ "post-header-key-sort", "POST", "/", { { 0 } }, 0,
	    { HOST, { "My-Header1", "value1" }, DATE }, 3,
	    "host;my-header1;x-amz-date",
	    "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c" },
	{ "post-header-value-case", "POST", "/", { { 0 } }, 0,
	    { HOST, { "My-Header1", "VALUE1" }, DATE }, 3,
	    "host;my-header1;x-amz-date",
	    "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d" },
	{ "post-vanilla-query", "POST", "/", { { "Param1", "value1" } }, 1,
	    { HOST, DATE }, 2, "host;x-amz-date",
	    "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11" },
};

/* The vector as a request carrying its Authorization header. */
static void
vec_msg(const struct vec *v, struct sigv4_kv *hdrs, char *authz,
    size_t authzlen, struct sigv4_msg *m)
{
	memcpy(hdrs, v->headers, v->nheaders * sizeof(*hdrs));
	snprintf(authz, authzlen, CRED "SignedHeaders=%s, Signature=%s",
	    v->signed_headers, v->signature);
	hdrs[v->nheaders].name = "Authorization";
	hdrs[v->nheaders].value = authz;
	memset(m, 0, sizeof(*m));
	m->method = v->method;
	m->path = v->path;
	m->query = v->query;
	m->nquery = v->nquery;
	m->headers = hdrs;
	m->nheaders = v->nheaders + 1;
}

static void
test_sigv4_aws_test_suite_vectors_verify(void **state)
{
	struct sigv4_kv hdrs[8];
	struct sigv4_msg m;
	struct sigv4_auth a;
	char authz[512], msg[512], hex[65];
	size_t i;

	for (i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
		vec_msg(&vecs[i], hdrs, authz, sizeof(authz), &m);
		assert_int_equal(sigv4_parse(&m, &a, msg, sizeof(msg)), 0);
		assert_int_equal(sigv4_sign(&m, &a, (const uint8_t *)SECRET,
		    strlen(SECRET), hex, msg, sizeof(msg)), 0);
		if (strcmp(hex, vecs[i].signature) != 0) {
			fail_msg("%s: %s", vecs[i].name, hex);
		}
		assert_int_equal(sigv4_verify(&m, &a, (const uint8_t *)SECRET,
		    strlen(SECRET), "us-east-1", "service", WHEN, msg,
		    sizeof(msg)), SIGV4_OK);
	}
}

static void
test_sigv4_canonical_request_trims_and_joins_values(void **state)
{
	struct sigv4_kv hdrs[8];
	struct sigv4_msg m;
	struct sigv4_auth a;
	char authz[512], msg[512], *creq = NULL;

	vec_msg(&vecs[3], hdrs, authz, sizeof(authz), &m);
	assert_int_equal(sigv4_parse(&m, &a, msg, sizeof(msg)), 0);
	assert_int_equal(sigv4_canonical_request(&m, &a, &creq, msg,
	    sizeof(msg)), 0);
	assert_string_equal(creq, "GET\n/\n\nhost:example.amazonaws.com\n"
	    "my-header1:value1\nmy-header2:\"a b c\"\n"
	    "x-amz-date:20150830T123600Z\n\n"
	    "host;my-header1;my-header2;x-amz-date\n"
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	free(creq);
}

/* A KMS call as botocore signs it (body, content type, target). */
static const char kms_body[] = "{\"KeyId\":\"alias/app\",\"NumberOfBytes\":32}";

static void
kms_msg(struct sigv4_kv *h, struct sigv4_msg *m, const char *authz,
    const char *body)
{
	h[0] = (struct sigv4_kv){ "Host", "127.0.0.1:8443" };
	h[1] = (struct sigv4_kv){ "Content-Type",
	    "application/x-amz-json-1.1" };
	h[2] = (struct sigv4_kv){ "X-Amz-Target",
	    "TrentService.GenerateDataKey" };
	h[3] = (struct sigv4_kv){ "X-Amz-Date", "20261205T135539Z" };
	h[4] = (struct sigv4_kv){ "Authorization", authz };
	memset(m, 0, sizeof(*m));
	m->method = "POST";
	m->path = "/";
	m->headers = h;
	m->nheaders = authz != NULL ? 5 : 4;
	m->body = (const uint8_t *)body;
	m->bodylen = strlen(body);
}

#define KMS_AUTHZ "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261205/local/" \
	"kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;" \
	"x-amz-target, Signature=4f7bcef5dff69a89b340b101d8fd4cd5984cbd6f017d5" \
	"df5cb97c1f8a8bc7413"
#define KMS_WHEN 1796478939	/* 20261205T135539Z */

static int
kms_check(const char *authz, const char *body, const char *secret,
    const char *region, long long now, char *msg, size_t msglen)
{
	struct sigv4_kv h[6];
	struct sigv4_msg m;
	struct sigv4_auth a;
	int r;

	kms_msg(h, &m, authz, body);
	if ((r = sigv4_parse(&m, &a, msg, msglen)) != 0) {
		return r;
	}
	return sigv4_verify(&m, &a, (const uint8_t *)secret, strlen(secret),
	    region, "kms", (time_t)now, msg, msglen);
}

static void
test_sigv4_botocore_kms_request_verifies(void **state)
{
	char msg[512];

	assert_int_equal(kms_check(KMS_AUTHZ, kms_body, SECRET, "local",
	    KMS_WHEN, msg, sizeof(msg)), SIGV4_OK);
	/* Within five minutes either way. */
	assert_int_equal(kms_check(KMS_AUTHZ, kms_body, SECRET, "local",
	    KMS_WHEN + 300, msg, sizeof(msg)), SIGV4_OK);
	assert_int_equal(kms_check(KMS_AUTHZ, kms_body, SECRET, "local",
	    KMS_WHEN - 300, msg, sizeof(msg)), SIGV4_OK);
}

static void
test_sigv4_each_failure_has_aws_exception(void **state)
{
	char msg[512], bad[600];

	/* No Authorization header at all. */
	assert_int_equal(kms_check(NULL, kms_body, SECRET, "local", KMS_WHEN,
	    msg, sizeof(msg)), SIGV4_MISSING);
	assert_string_equal(sigv4_error_name(SIGV4_MISSING),
	    "MissingAuthenticationTokenException");
	/* Wrong secret, a changed body, the wrong region: the signature. */
	assert_int_equal(kms_check(KMS_AUTHZ, kms_body, "not-the-secret",
	    "local", KMS_WHEN, msg, sizeof(msg)), SIGV4_INVALID);
	assert_non_null(strstr(msg, "does not match"));
	assert_int_equal(kms_check(KMS_AUTHZ, "{\"KeyId\":\"alias/app\","
	    "\"NumberOfBytes\":64}", SECRET, "local", KMS_WHEN, msg,
	    sizeof(msg)), SIGV4_INVALID);
	assert_int_equal(kms_check(KMS_AUTHZ, kms_body, SECRET, "us-east-1",
	    KMS_WHEN, msg, sizeof(msg)), SIGV4_INVALID);
	assert_non_null(strstr(msg, "valid region"));
	/* Outside the five-minute window. */
	assert_int_equal(kms_check(KMS_AUTHZ, kms_body, SECRET, "local",
	    KMS_WHEN + 301, msg, sizeof(msg)), SIGV4_INVALID);
	assert_non_null(strstr(msg, "Signature expired"));
	assert_int_equal(kms_check(KMS_AUTHZ, kms_body, SECRET, "local",
	    KMS_WHEN - 301, msg, sizeof(msg)), SIGV4_INVALID);
	assert_non_null(strstr(msg, "not yet current"));
	/* One hex digit changed. */
	snprintf(bad, sizeof(bad), "%s", KMS_AUTHZ);
	bad[strlen(bad) - 1] = '4';
	assert_int_equal(kms_check(bad, kms_body, SECRET, "local", KMS_WHEN,
	    msg, sizeof(msg)), SIGV4_INVALID);
	/* Malformed headers. */
	assert_int_equal(kms_check("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
	    "20261205/local/kms/aws4_request, SignedHeaders=host", kms_body,
	    SECRET, "local", KMS_WHEN, msg, sizeof(msg)), SIGV4_INCOMPLETE);
	assert_string_equal(msg, "Authorization header requires 'Signature' "
	    "parameter.");
	assert_int_equal(kms_check("Basic dXNlcjpwYXNz", kms_body, SECRET,
	    "local", KMS_WHEN, msg, sizeof(msg)), SIGV4_INCOMPLETE);
	assert_int_equal(kms_check("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
	    "local/kms/aws4_request, SignedHeaders=host, Signature=00",
	    kms_body, SECRET, "local", KMS_WHEN, msg, sizeof(msg)),
	    SIGV4_INCOMPLETE);
	/* Host must be signed. */
	assert_int_equal(kms_check("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
	    "20261205/local/kms/aws4_request, SignedHeaders=x-amz-date, "
	    "Signature=00", kms_body, SECRET, "local", KMS_WHEN, msg,
	    sizeof(msg)), SIGV4_INCOMPLETE);
	/* A signed header the request lacks. */
	assert_int_equal(kms_check("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
	    "20261205/local/kms/aws4_request, SignedHeaders=host;x-absent, "
	    "Signature=4f7bcef5dff69a89b340b101d8fd4cd5984cbd6f017d5df5cb97c1f8"
	    "a8bc7413", kms_body, SECRET, "local", KMS_WHEN, msg,
	    sizeof(msg)), SIGV4_INVALID);
}

/* Every prefix of a valid Authorization header fails cleanly. */
static void
test_sigv4_every_prefix_of_the_header_fails(void **state)
{
	char msg[512], cut[600];
	size_t n, len = strlen(KMS_AUTHZ);
	int r;

	for (n = 0; n < len; n++) {
		memcpy(cut, KMS_AUTHZ, n);
		cut[n] = '\0';
		r = kms_check(cut, kms_body, SECRET, "local", KMS_WHEN, msg,
		    sizeof(msg));
		if (r == SIGV4_OK) {
			fail_msg("prefix of %zu bytes verified", n);
		}
		assert_true(r == SIGV4_INCOMPLETE || r == SIGV4_INVALID);
	}
}

/* The fields a signature covers, as parsed (the access key id only picks
 * the secret; the signature's hex digits may come in either case). */
static int
same_signed_fields(const char *hdr, const char *body)
{
	struct sigv4_kv h0[6], h1[6];
	struct sigv4_msg m0, m1;
	struct sigv4_auth a0, a1;
	char msg[512];

	kms_msg(h0, &m0, KMS_AUTHZ, kms_body);
	kms_msg(h1, &m1, hdr, body);
	if (sigv4_parse(&m0, &a0, msg, sizeof(msg)) != 0 ||
	    sigv4_parse(&m1, &a1, msg, sizeof(msg)) != 0) {
		return 0;
	}
	return strcmp(body, kms_body) == 0 &&
	    strcmp(a0.scope_date, a1.scope_date) == 0 &&
	    strcmp(a0.region, a1.region) == 0 &&
	    strcmp(a0.service, a1.service) == 0 &&
	    strcmp(a0.signed_headers, a1.signed_headers) == 0 &&
	    strcasecmp(a0.signature, a1.signature) == 0;
}

/* 20,000 random mutations of a valid header and body: each is refused
 * with one of AWS's exceptions, unless it changed nothing signed. */
static void
test_sigv4_mutations_never_verify(void **state)
{
	char msg[512], hdr[600], body[128];
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	size_t hl = strlen(KMS_AUTHZ), bl = strlen(kms_body);
	int i, k, r, refused = 0;

	for (i = 0; i < 20000; i++) {
		memcpy(hdr, KMS_AUTHZ, hl + 1);
		memcpy(body, kms_body, bl + 1);
		for (k = 0; k < 1 + i % 3; k++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			if (seed % 4 == 0) {
				body[(seed >> 8) % bl] ^= (char)(1 + (seed >> 16) %
				    127);
			} else {
				hdr[(seed >> 8) % hl] ^= (char)(1 + (seed >> 16) %
				    127);
			}
		}
		r = kms_check(hdr, body, SECRET, "local", KMS_WHEN, msg,
		    sizeof(msg));
		if (r == SIGV4_OK) {
			if (!same_signed_fields(hdr, body)) {
				fail_msg("mutation %d verified: %s / %s", i,
				    hdr, body);
			}
			continue;
		}
		refused++;
		assert_true(r == SIGV4_INCOMPLETE || r == SIGV4_INVALID ||
		    r == SIGV4_MISSING);
	}
	assert_true(refused > 19000);
}

static void
hex32(const uint8_t k[32], char out[65])
{
	static const char hx[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = hx[k[i] >> 4];
		out[2 * i + 1] = hx[k[i] & 15];
	}
	out[64] = '\0';
}

/* x-amz-content-sha256, when sent, must be the body's hash: the right
 * one verifies (the canonical request takes it as the payload's hash),
 * another body's is refused before any signature is made. */
static void
test_sigv4_content_sha256_header_must_match_the_body(void **state)
{
	struct sigv4_kv h[6];
	struct sigv4_msg m;
	struct sigv4_auth a;
	char msg[512], hex[65];
	uint8_t d[32];
	int i;

	(void)state;
	for (i = 0; i < 2; i++) {
		const char *b = i == 0 ? kms_body : "{}";
		crypto_hash_sha256(d, (const uint8_t *)b, strlen(b));
		hex32(d, hex);
		kms_msg(h, &m, KMS_AUTHZ, kms_body);
		h[5] = (struct sigv4_kv){ "X-Amz-Content-Sha256", hex };
		m.nheaders = 6;
		assert_int_equal(sigv4_parse(&m, &a, msg, sizeof(msg)), 0);
		assert_int_equal(sigv4_verify(&m, &a, (const uint8_t *)SECRET,
		    strlen(SECRET), "local", "kms", KMS_WHEN, msg,
		    sizeof(msg)), i == 0 ? SIGV4_OK : SIGV4_INVALID);
		if (i == 1) {
			assert_non_null(strstr(msg, "x-amz-content-sha256"));
		}
	}
}

/* AWS's "Examples of how to derive a signing key for Signature Version
 * 4": 20120215, us-east-1, iam. */
static void
test_sigv4_signing_key_as_aws_derives_it(void **state)
{
	uint8_t k[SIGV4_KEY_LEN];
	char hex[65];

	(void)state;
	assert_int_equal(sigv4_signing_key((const uint8_t *)SECRET,
	    strlen(SECRET), "20120215", "us-east-1", "iam", k), 0);
	hex32(k, hex);
	assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505"
	    "a000a1a9e090d414db404d");
}

static void
write_creds(const char *path, const char *line)
{
	char tmp[600];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	assert_non_null(f = fopen(tmp, "w"));
	fputs(line, f);
	fclose(f);
	assert_int_equal(chmod(tmp, 0600), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* The key the credentials file keeps for a scope is the secret's, and a
 * changed secret is used once the file is read again (within a second),
 * not the key derived from the old one. */
static void
test_sigv4_credentials_keep_the_key_until_the_file_changes(void **state)
{
	char dir[] = "/tmp/kms-sigv4.XXXXXX", path[512], err[256];
	char principal[128];
	uint8_t got[SIGV4_KEY_LEN], want[SIGV4_KEY_LEN];
	struct creds *c = NULL;
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/credentials", dir);
	write_creds(path, "AKIDEXAMPLE0000001 " SECRET " user:alice\n");
	assert_int_equal(creds_open(path, &c, err, sizeof(err)), 0);

	assert_int_equal(creds_signing_key(c, "AKIDEXAMPLE0000001",
	    "20150830", "local", "kms", got, principal, sizeof(principal)), 0);
	assert_string_equal(principal, "user:alice");
	assert_int_equal(sigv4_signing_key((const uint8_t *)SECRET,
	    strlen(SECRET), "20150830", "local", "kms", want), 0);
	assert_memory_equal(got, want, sizeof(want));
	/* Another day, another key; the principal alone without a key. */
	assert_int_equal(creds_signing_key(c, "AKIDEXAMPLE0000001",
	    "20150831", "local", "kms", got, principal, sizeof(principal)), 0);
	assert_memory_not_equal(got, want, sizeof(want));
	assert_int_equal(creds_signing_key(c, "AKIDEXAMPLE0000001",
	    "20150830", "local", "kms", NULL, principal, sizeof(principal)), 0);
	assert_int_equal(creds_signing_key(c, "AKIDEXAMPLE0000002",
	    "20150830", "local", "kms", got, principal, sizeof(principal)),
	    -1);

	write_creds(path, "AKIDEXAMPLE0000001 " SECRET2 " user:alice\n");
	assert_int_equal(sigv4_signing_key((const uint8_t *)SECRET2,
	    strlen(SECRET2), "20150830", "local", "kms", want), 0);
	for (i = 0; i < 40; i++) {
		assert_int_equal(creds_signing_key(c, "AKIDEXAMPLE0000001",
		    "20150830", "local", "kms", got, principal,
		    sizeof(principal)), 0);
		if (memcmp(got, want, sizeof(want)) == 0) {
			break;
		}
		usleep(100 * 1000);
	}
	assert_memory_equal(got, want, sizeof(want));
	creds_close(c);
	unlink(path);
	rmdir(dir);
}

/* X-Amz-Date as seconds since the epoch, sigv4_parse's and timegm(3)'s. */
static void
date_as_timegm(const char *date)
{
	struct sigv4_kv h[6];
	struct sigv4_msg m;
	struct sigv4_auth a;
	struct tm tm;
	char msg[512];

	kms_msg(h, &m, KMS_AUTHZ, kms_body);
	h[3].value = date;
	assert_int_equal(sigv4_parse(&m, &a, msg, sizeof(msg)), 0);
	memset(&tm, 0, sizeof(tm));
	assert_int_equal(sscanf(date, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year,
	    &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec), 6);
	tm.tm_year -= 1900;
	tm.tm_mon--;
	assert_int_equal((long long)a.when, (long long)timegm(&tm));
}

/* X-Amz-Date is read as timegm(3) reads a UTC time: every 13th day over
 * four centuries, leap days, a leap second, a day past a month's end. */
static void
test_sigv4_dates_count_as_timegm_does(void **state)
{
	static const char *odd[] = { "20000229T000000Z", "21000301T000000Z",
	    "20240229T235959Z", "19991231T235960Z", "20260231T120000Z",
	    "19700101T000000Z", "99991231T235959Z", "16000101T000000Z" };
	struct tm tm;
	char date[17];
	time_t t;
	size_t i;

	(void)state;
	for (t = 0; t < (time_t)400 * 366 * 86400; t += 13 * 86400 + 3661) {
		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
		date_as_timegm(date);
	}
	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		date_as_timegm(odd[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigv4_aws_test_suite_vectors_verify),
		cmocka_unit_test(test_sigv4_canonical_request_trims_and_joins_values),
		cmocka_unit_test(test_sigv4_botocore_kms_request_verifies),
		cmocka_unit_test(test_sigv4_each_failure_has_aws_exception),
		cmocka_unit_test(test_sigv4_every_prefix_of_the_header_fails),
		cmocka_unit_test(test_sigv4_mutations_never_verify),
		cmocka_unit_test(test_sigv4_signing_key_as_aws_derives_it),
		cmocka_unit_test(test_sigv4_content_sha256_header_must_match_the_body),
		cmocka_unit_test(test_sigv4_credentials_keep_the_key_until_the_file_changes),
		cmocka_unit_test(test_sigv4_dates_count_as_timegm_does),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
