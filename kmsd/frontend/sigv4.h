/*
 * sigv4.h — AWS Signature Version 4 as a server checks it: the
 * Authorization header parsed, the canonical request and string to sign
 * built exactly as AWS specifies, the signature compared in constant time.
 *
 * Pure: no I/O, no globals, no locks; thread-safe.  The caller supplies
 * the request as it arrived (headers, decoded path and query, body) and
 * the secret; the secret and every key derived from it are wiped before
 * return.  Failures carry AWS's exception names (sigv4_error_name) and a
 * message in AWS's words, never the secret or the expected signature.
 */
#ifndef KMSD_FRONTEND_SIGV4_H
#define KMSD_FRONTEND_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_AKID_MAX 128		/* AWS: 16-128 characters */
#define SIGV4_SCOPE_FIELD_MAX 64	/* region, service */
#define SIGV4_SIGNED_HEADERS_MAX 1024	/* "host;x-amz-date;..." */
#define SIGV4_HEADERS_MAX 64		/* headers a request may carry */
#define SIGV4_QUERY_MAX 64		/* query parameters */
#define SIGV4_SKEW_S 300		/* X-Amz-Date within 5 minutes */
#define SIGV4_KEY_LEN 32		/* a signing key: HMAC-SHA256 */

enum sigv4_err {
	SIGV4_OK = 0,
	SIGV4_MISSING,		/* MissingAuthenticationTokenException */
	SIGV4_INCOMPLETE,	/* IncompleteSignatureException */
	SIGV4_UNRECOGNIZED,	/* UnrecognizedClientException */
	SIGV4_INVALID,		/* InvalidSignatureException */
};

/* A header or query parameter.  Header names in any case. */
struct sigv4_kv {
	const char *name;
	const char *value;
};

/* A request as received. */
struct sigv4_msg {
	const char *method;
	const char *path;		/* decoded, e.g. "/" */
	const struct sigv4_kv *query;	/* decoded */
	size_t nquery;
	const struct sigv4_kv *headers;	/* in arrival order */
	size_t nheaders;
	const uint8_t *body;
	size_t bodylen;
};

/* What the Authorization and X-Amz-Date headers say. */
struct sigv4_auth {
	char akid[SIGV4_AKID_MAX + 1];
	char scope_date[9];		/* YYYYMMDD */
	char region[SIGV4_SCOPE_FIELD_MAX + 1];
	char service[SIGV4_SCOPE_FIELD_MAX + 1];
	char signed_headers[SIGV4_SIGNED_HEADERS_MAX + 1];
	char signature[65];		/* lower-case hex */
	char amz_date[17];		/* YYYYMMDDTHHMMSSZ */
	time_t when;			/* amz_date as seconds */
};

/* AWS's exception name for e. */
const char *sigv4_error_name(int e);

/*
 * Read the Authorization and X-Amz-Date headers into a.  SIGV4_MISSING
 * when the request carries no Authorization header, SIGV4_INCOMPLETE when
 * it is malformed (with AWS's message in msg).
 */
int sigv4_parse(const struct sigv4_msg *m, struct sigv4_auth *a, char *msg,
    size_t msglen);

/*
 * The canonical request for m as signed by a's SignedHeaders: malloc'd,
 * NUL-terminated, in *out.  SIGV4_INVALID when a signed header is absent.
 */
int sigv4_canonical_request(const struct sigv4_msg *m,
    const struct sigv4_auth *a, char **out, char *msg, size_t msglen);

/* The hex signature of m under secret (with a's scope and date). */
int sigv4_sign(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const uint8_t *secret, size_t secretlen, char hex[65], char *msg,
    size_t msglen);

/*
 * Check a parsed request: scope (date matching X-Amz-Date, region,
 * service, aws4_request), X-Amz-Date within SIGV4_SKEW_S of now, the
 * x-amz-content-sha256 header (when sent) against the body, and the
 * signature, compared in constant time.  SIGV4_OK or SIGV4_INVALID /
 * SIGV4_INCOMPLETE with AWS's message.
 */
/*
 * The signing key of secret for a scope: HMAC-SHA256 of date, region,
 * service and "aws4_request" in turn, from "AWS4" + secret.  0, or -1 when
 * the secret is longer than any accepted.
 */
int sigv4_signing_key(const uint8_t *secret, size_t secretlen,
    const char *date, const char *region, const char *service,
    uint8_t key[SIGV4_KEY_LEN]);

/*
 * What is checked before any secret is used: the scope's date, service and
 * region, X-Amz-Date within SIGV4_SKEW_S of now, and x-amz-content-sha256
 * when sent.  SIGV4_OK, or SIGV4_INVALID with AWS's message.
 */
int sigv4_check(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const char *region, const char *service, time_t now, char *msg,
    size_t msglen);

/* The signature compared, in constant time, with the one key makes;
 * only after sigv4_check passed (the canonical request takes the payload's
 * hash from x-amz-content-sha256 when sent, which sigv4_check compared). */
int sigv4_verify_key(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const uint8_t key[SIGV4_KEY_LEN], char *msg, size_t msglen);

/* sigv4_check, then sigv4_verify_key with the key of secret. */
int sigv4_verify(const struct sigv4_msg *m, const struct sigv4_auth *a,
    const uint8_t *secret, size_t secretlen, const char *region,
    const char *service, time_t now, char *msg, size_t msglen);

#endif
