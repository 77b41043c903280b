/*
 * http.c — the AWS-compatible HTTP(S) endpoint (http.h).
 *
 * One request, as AWS JSON 1.1 has it:
 *
 *   POST / HTTP/1.1
 *   X-Amz-Target: TrentService.<Operation>
 *   Content-Type: application/x-amz-json-1.1
 *   Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
 *   X-Amz-Date: ...
 *
 *   { the AWS request object }
 *
 * The body is read up to IPC's message limit (a larger Content-Length is
 * refused before a byte of it is read; a chunked body past the limit
 * closes the connection), within http_request_timeout.  The caller is a
 * verified client certificate's subject (cert:<CN>) or the principal of
 * the SigV4 access key; the body gets "Action" from the target and goes
 * to dispatch() like an IPC message, so every operation (Batch too)
 * answers the same here.  Quick operations run on the thread that read
 * them (one thread by default: on a local token, threads that take turns
 * at it cost more in switches than they gain); the rest are handed to the
 * pool (struct http_pool) so that they never hold a connection thread.
 * Every answer carries x-amzn-RequestId (the audit record's requestID);
 * errors are AWS's {"__type", "message"} with AWS's status (400; 500 for
 * internal errors, 503 when the HSM is away).
 *
 * libmicrohttpd parses HTTP, runs TLS (GnuTLS), bounds connections (in
 * all, per address), times out idle ones (slow-loris peers hold a
 * connection slot, never a thread: the pool polls with epoll).
 */
#include <errno.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "common/strhash.h"
#include "kmsd/audit/audit.h"
#include "kmsd/daemon/daemon.h"
#include "kmsd/dispatch/dispatch.h"
#include "kmsd/frontend/credentials.h"
#include "kmsd/frontend/http.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/frontend/sigv4.h"
#include "kmsd/kmsd.h"

#define HTTP_BODY_MAX JSON_MAX_MESSAGE	/* as IPC: one message */
#define HTTP_BODY_TOO_LARGE "The request body exceeds 1048576 bytes"
/* libmicrohttpd's per-connection pool: request line, headers and the
 * read buffer (AWS SDKs send under 2 KiB of headers). */
#define HTTP_CONN_MEMORY (32 * 1024)
#define HTTP_PEM_MAX (256 * 1024)	/* a certificate chain or a key */
#define HTTP_TARGET_PREFIX "TrentService."
#define HTTP_OP_MAX 64
#define HTTP_UA_MAX 256		/* a User-Agent in an audit record */
#define HTTP_JSON_TYPE "application/x-amz-json-1.1"
#define HTTP_SERVICE "kms"
/* TLS 1.2 and 1.3 only. */
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct hreq;

/*
 * The threads that run the operations that are not quick (key creation,
 * store changes, Batch, listings): a libmicrohttpd thread suspends the
 * connection, queues the request here and goes back to its other
 * connections; a pool thread runs it and resumes the connection, whose
 * thread then sends the answer.
 */
struct http_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hreq *head, *tail;	/* queued, oldest first */
	int stopping;			/* no more queueing; drain and exit */
	struct pool_thread *pt;
	int n;				/* made (worker_init done) */
	int started;			/* running */
};

/*
 * Refusals of peers nobody vouched for (no verified caller: a missing or
 * bad signature, an unknown access key, a certificate that does not
 * verify, a bad path, target or content type, a body over the limit, a
 * request cut short) are recorded one by one up to
 * http_refusals_per_minute from each address, and ten times that from
 * all addresses together; past that they are
 * counted, and the count is recorded once that address's minute is over
 * (within a second, or at shutdown) in one service event,
 * UnauthenticatedRefusalsCounted: the address, how many, which errors,
 * the first and the last.  Otherwise a peer without credentials could
 * grow the audit log without bound and, with audit_required, stop kmsd
 * for everyone by filling its disk; the auditor still sees all it tried.
 * A verified caller's requests are always recorded one by one.  When
 * REFUSAL_SLOTS addresses are being counted at once, the others share
 * one count (its sourceIPAddress null).
 */
#define REFUSAL_SLOTS 1024
#define REFUSAL_PROBE 8			/* slots an address may take */
#define REFUSAL_CODES 8			/* errors counted by name */
#define REFUSAL_WINDOW_MS 60000
#define REFUSAL_ALL 10			/* the limit, for all addresses */

struct refusal_slot {
	char addr[64];			/* "": free */
	uint64_t start_ms;		/* mono_ms: its minute began */
	uint32_t recorded, dropped;
	char first[32], last[32];	/* the first and last dropped */
	struct {
		const char *type;	/* a static string (refuse's) */
		uint32_t n;
	} code[REFUSAL_CODES];
	uint32_t other;			/* dropped with yet other errors */
};

struct refusals {
	pthread_mutex_t mu;
	struct refusal_slot *slot;	/* REFUSAL_SLOTS, then the others' */
	atomic_int pending;		/* slots with a count to record */
	uint64_t all_ms;		/* mono_ms: all addresses' minute */
	uint64_t all;			/* recorded one by one in it */
};

struct http_front {
	struct kmsd *d;
	struct MHD_Daemon *mhd;
	struct worker *ws;		/* one per libmicrohttpd thread */
	int nws;
	atomic_int next_worker;
	struct http_pool pool;
	struct creds *creds;
	char *cert, *ca;		/* PEM, malloc'd */
	char *key;			/* PEM, locked */
	size_t keycap;
	int tls, client_certs;
	struct refusals ref;
};

/* The worker of this libmicrohttpd thread (one front end per process);
 * a pool thread has its own (struct pool_thread). */
static __thread struct worker *my_worker;

enum { HQ_READING = 0, HQ_QUEUED, HQ_ANSWERED };

/* One request's state across libmicrohttpd's calls. */
struct hreq {
	uint64_t start_ms;
	uint8_t *body;
	size_t len, cap;
	size_t expect;			/* Content-Length, when given */
	char id[37];			/* x-amzn-RequestId */
	int state;			/* HQ_* */
	/* Where the caller came from, for its audit record (origin_init). */
	char source[64];		/* the peer's address */
	char akid[SIGV4_AKID_MAX + 1];	/* the access key it named */
	char ua[HTTP_UA_MAX + 1];	/* its User-Agent */
	char op[HTTP_OP_MAX + 1];	/* the operation its target names */
	struct audit_origin o;
	int recorded;			/* dispatched or refused: it has
					 * its audit record */
	const char *cut;		/* why kmsd closed it unanswered */
	/* Queued for the pool: the connection (suspended), the caller and
	 * the message (the body's object plus "Action"); then the pool's
	 * reply. */
	struct MHD_Connection *conn;
	struct principal p;
	json_t *msg;
	size_t msglen;
	json_t *resp;
	struct hreq *next;
};

/* A reply body that is wiped when libmicrohttpd is done with it. */
struct rbody {
	size_t len;
	char data[];
};

static void
rbody_free(void *cls)
{
	struct rbody *b = cls;

	wipe_free(b, sizeof(*b) + b->len);
}

static unsigned
status_for(const char *type)
{
	if (strcmp(type, "KMSInternalException") == 0 ||
	    strcmp(type, "KeyUnavailableException") == 0) {
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	if (strcmp(type, "DependencyTimeoutException") == 0) {
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	return MHD_HTTP_BAD_REQUEST;
}

/* Send body (taken) with status, the JSON type and the request id. */
static enum MHD_Result
send_body(struct MHD_Connection *conn, struct hreq *q, unsigned status,
    struct rbody *b)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer_with_free_callback_cls(b->len,
	    b->data, rbody_free, b);
	if (resp == NULL) {
		rbody_free(b);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    HTTP_JSON_TYPE);
	MHD_add_response_header(resp, "x-amzn-RequestId", q->id);
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

/* A reply object, serialised into a wiped body. */
static enum MHD_Result
send_json(struct MHD_Connection *conn, struct hreq *q, unsigned status,
    const json_t *j)
{
	struct rbody *b;
	size_t n, cap = 1024;

	for (;;) {
		if ((b = malloc(sizeof(*b) + cap)) == NULL) {
			return MHD_NO;
		}
		n = kjson_write_compact(j, b->data, cap);
		if (n > 0 && n <= cap) {
			break;
		}
		wipe_free(b, sizeof(*b) + cap);
		if (n == 0) {
			return MHD_NO;
		}
		cap = n;
	}
	b->len = n;
	return send_body(conn, q, status, b);
}

static enum MHD_Result
send_error(struct MHD_Connection *conn, struct hreq *q, unsigned status,
    const char *type, const char *msg)
{
	json_t *j = json_pack("{s:s, s:s}", "__type", type, "message", msg);
	enum MHD_Result r;

	if (j == NULL) {
		return MHD_NO;
	}
	r = send_json(conn, q, status, j);
	json_decref(j);
	return r;
}

/* The slot of the addresses the table has no room for. */
#define REFUSAL_OTHERS(h) (&(h)->ref.slot[REFUSAL_SLOTS])

/* Record sl's count, ref.mu held, and start its address's next minute;
 * the slot is free again. */
static void
refusal_flush(struct http_front *h, struct refusal_slot *sl)
{
	json_t *det, *codes;
	int i, ok;

	if (sl->dropped > 0) {
		codes = json_object();
		ok = codes != NULL;
		for (i = 0; ok && i < REFUSAL_CODES && sl->code[i].type != NULL;
		    i++) {
			ok = json_object_set_new(codes, sl->code[i].type,
			    json_integer(sl->code[i].n)) == 0;
		}
		if (ok && sl->other > 0) {
			ok = json_object_set_new(codes, "other",
			    json_integer(sl->other)) == 0;
		}
		det = ok ? json_pack("{s:s?, s:I, s:O, s:s, s:s, s:I, s:I}",
		    "sourceIPAddress", sl == REFUSAL_OTHERS(h) ? NULL :
		    sl->addr, "count", (json_int_t)sl->dropped,
		    "errorCodes", codes, "firstTime", sl->first, "lastTime",
		    sl->last, "recordedOneByOne", (json_int_t)sl->recorded,
		    "limitPerMinute",
		    (json_int_t)h->d->cfg.http_refusals_per_minute) : NULL;
		json_decref(codes);	/* det holds its own reference */
		if (det == NULL) {
			log_error("http: %u refusals from %s could not be "
			    "recorded: out of memory", sl->dropped, sl->addr);
		} else {
			(void)audit_service_event(h->d->audit,
			    "UnauthenticatedRefusalsCounted", NULL, det);
			json_decref(det);
		}
		atomic_fetch_sub(&h->ref.pending, 1);
	}
	memset(sl, 0, sizeof(*sl));
}

/* Flush sl when its minute is over (any time, with every). */
static void
refusal_expire(struct http_front *h, struct refusal_slot *sl, uint64_t now,
    int every)
{
	if (sl->addr[0] != '\0' && (every ||
	    now - sl->start_ms >= REFUSAL_WINDOW_MS)) {
		refusal_flush(h, sl);
	}
}

/* Record the counts of the minutes that are over (all, with every). */
static void
refusals_sweep(struct http_front *h, int every)
{
	uint64_t now = mono_ms();
	int i;

	if (h->ref.slot == NULL) {
		return;
	}
	pthread_mutex_lock(&h->ref.mu);
	for (i = 0; i <= REFUSAL_SLOTS; i++) {
		refusal_expire(h, &h->ref.slot[i], now, every);
	}
	pthread_mutex_unlock(&h->ref.mu);
}

/* May a refusal from addr (nobody vouched for it) have its own record?
 * Else it is counted. */
static int
refusal_admit(struct http_front *h, const char *addr, const char *type)
{
	struct refusal_slot *sl = NULL, *free_sl = NULL;
	uint64_t now = mono_ms();
	unsigned hash;
	int i, admit;

	if (h->ref.slot == NULL || h->d->cfg.http_refusals_per_minute == 0) {
		return 1;
	}
	hash = str_hash(addr);
	pthread_mutex_lock(&h->ref.mu);
	for (i = 0; i < REFUSAL_PROBE; i++) {
		struct refusal_slot *s = &h->ref.slot[(hash + (unsigned)i) %
		    REFUSAL_SLOTS];
		refusal_expire(h, s, now, 0);
		if (strcmp(s->addr, addr) == 0) {
			sl = s;
			break;
		}
		if (s->addr[0] == '\0' && free_sl == NULL) {
			free_sl = s;
		}
	}
	if (sl == NULL && (sl = free_sl) == NULL) {
		sl = REFUSAL_OTHERS(h);
		refusal_expire(h, sl, now, 0);
	}
	if (sl->addr[0] == '\0') {
		snprintf(sl->addr, sizeof(sl->addr), "%s",
		    sl == REFUSAL_OTHERS(h) ? "*" : addr);
		sl->start_ms = now;
	}
	if (now - h->ref.all_ms >= REFUSAL_WINDOW_MS) {
		h->ref.all_ms = now;
		h->ref.all = 0;
	}
	admit = sl->recorded < (uint32_t)h->d->cfg.http_refusals_per_minute &&
	    h->ref.all < (uint64_t)h->d->cfg.http_refusals_per_minute *
	    REFUSAL_ALL;
	if (admit) {
		sl->recorded++;
		h->ref.all++;
	} else {
		if (sl->dropped++ == 0) {
			audit_time_now(sl->first);
			if (atomic_fetch_add(&h->ref.pending, 1) == 0) {
				/* A pool thread records it when the minute is
				 * over (pool_main). */
				pthread_mutex_lock(&h->pool.mu);
				pthread_cond_signal(&h->pool.cv);
				pthread_mutex_unlock(&h->pool.mu);
			}
		}
		audit_time_now(sl->last);
		for (i = 0; i < REFUSAL_CODES && sl->code[i].type != NULL &&
		    strcmp(sl->code[i].type, type) != 0; i++) {
		}
		if (i == REFUSAL_CODES) {
			sl->other++;
		} else {
			sl->code[i].type = type;
			sl->code[i].n++;
		}
	}
	pthread_mutex_unlock(&h->ref.mu);
	return admit;
}

/*
 * Refuse q before it reaches dispatch, with its audit record: every
 * request is recorded, whoever sent it, and whether it is answered or
 * closed (on_completed).  p is the caller when known (a malformed body
 * from a verified caller), else NULL; the operation is the one its target
 * named, if any.  A refused request's parameters are not recorded:
 * nobody vouched for them.  When the record cannot be written and
 * audit_required holds, the answer says that instead.
 */
static int
refusal_record(struct http_front *h, struct hreq *q,
    const struct principal *p, const char *type, const char *msg)
{
	json_t *req = NULL, *resp;
	int r;

	q->recorded = 1;
	if (h->d->audit == NULL || (p == NULL && !refusal_admit(h, q->source,
	    type))) {
		return 0;
	}
	if ((resp = json_pack("{s:s, s:s}", "__type", type, "message",
	    msg)) == NULL) {
		return KMS_EINTERNAL;
	}
	if (q->op[0] != '\0') {
		req = json_pack("{s:s}", "Action", q->op); /* NULL: "Unknown" */
	}
	r = audit_one(h->d->audit, p, &q->o, q->id, req, resp);
	json_decref(req);
	json_decref(resp);
	return r;
}

static enum MHD_Result
refuse(struct http_front *h, struct MHD_Connection *conn, struct hreq *q,
    const struct principal *p, unsigned status, const char *type,
    const char *msg)
{
	int r = refusal_record(h, q, p, type, msg);

	if (r != 0) {
		return send_error(conn, q, status_for(kms_error_name(r)),
		    kms_error_name(r), "The audit log cannot be written; the "
		    "request was not answered. Retry later.");
	}
	return send_error(conn, q, status, type, msg);
}


/* ---- who is calling ---- */

struct kv_list {
	struct sigv4_kv v[SIGV4_HEADERS_MAX];
	size_t n;
	int overflow;
};

static enum MHD_Result
collect(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct kv_list *l = cls;

	if (l->n == SIGV4_HEADERS_MAX) {
		l->overflow = 1;
		return MHD_NO;
	}
	l->v[l->n].name = key;
	l->v[l->n].value = value != NULL ? value : "";
	l->n++;
	return MHD_YES;
}

static void
peer_address(struct MHD_Connection *conn, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

	snprintf(out, len, "?");
	if (sa == NULL) {
		return;
	}
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, out, (socklen_t)len);
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr, out, (socklen_t)len);
	}
}

/* The operation X-Amz-Target names (letters only, at most HTTP_OP_MAX),
 * or NULL. */
static const char *
target_op(struct MHD_Connection *conn)
{
	const char *t = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    "X-Amz-Target"), *op;
	size_t n;

	if (t == NULL || strncmp(t, HTTP_TARGET_PREFIX,
	    sizeof(HTTP_TARGET_PREFIX) - 1) != 0) {
		return NULL;
	}
	op = t + sizeof(HTTP_TARGET_PREFIX) - 1;
	n = strlen(op);
	if (n == 0 || n > HTTP_OP_MAX || strspn(op, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz") != n) {
		return NULL;
	}
	return op;
}

/*
 * Where q's caller came from: the peer's address and its User-Agent (cut
 * at HTTP_UA_MAX, every byte outside printable ASCII made '?': a header
 * may hold any byte, an audit record only valid UTF-8).  The access key
 * is added once SigV4 has parsed one.
 */
static void
origin_init(struct http_front *h, struct MHD_Connection *conn,
    struct hreq *q)
{
	const char *ua = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_USER_AGENT), *op;
	size_t i;

	peer_address(conn, q->source, sizeof(q->source));
	for (i = 0; ua != NULL && ua[i] != '\0' && i < HTTP_UA_MAX; i++) {
		unsigned char ch = (unsigned char)ua[i];
		q->ua[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	q->ua[i] = '\0';
	if ((op = target_op(conn)) != NULL) {
		/* At most HTTP_OP_MAX letters (target_op). */
		memcpy(q->op, op, strlen(op) + 1);
	}
	q->o.transport = h->tls ? "https" : "http";
	q->o.address = q->source;
	q->o.access_key = NULL;
	q->o.user_agent = q->ua[0] != '\0' ? q->ua : NULL;
}

/*
 * user:<name> is the same caller on both front ends: when <name> is a
 * local account, the HTTP caller gets that account's uid and groups as an
 * IPC caller would (principal_from_uid, cached there).  Names are looked
 * up at most once a minute each (USER_TTL_MS), in a small table.
 */
#define USER_CACHE 64
#define USER_TTL_MS 60000

static struct {
	char name[PRINCIPAL_MAX];
	uid_t uid;
	gid_t gid;
	int found;
	uint64_t at;
} users[USER_CACHE];
static pthread_mutex_t users_mu = PTHREAD_MUTEX_INITIALIZER;

static int
local_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	uint64_t now = mono_ms();
	int i, slot = 0, found;

	pthread_mutex_lock(&users_mu);
	for (i = 0; i < USER_CACHE; i++) {
		if (users[i].at != 0 && now - users[i].at < USER_TTL_MS &&
		    strcmp(users[i].name, name) == 0) {
			*uid = users[i].uid;
			*gid = users[i].gid;
			found = users[i].found;
			pthread_mutex_unlock(&users_mu);
			return found;
		}
		if (users[i].at < users[slot].at) {
			slot = i;
		}
	}
	pthread_mutex_unlock(&users_mu);
	found = getpwnam_r(name, &pw, buf, sizeof(buf), &pwp) == 0 &&
	    pwp != NULL;
	pthread_mutex_lock(&users_mu);
	snprintf(users[slot].name, sizeof(users[slot].name), "%s", name);
	users[slot].found = found;
	users[slot].uid = found ? pw.pw_uid : (uid_t)-1;
	users[slot].gid = found ? pw.pw_gid : (gid_t)-1;
	users[slot].at = now;
	pthread_mutex_unlock(&users_mu);
	*uid = found ? pw.pw_uid : (uid_t)-1;
	*gid = found ? pw.pw_gid : (gid_t)-1;
	return found;
}

static void
principal_named(struct principal *p, const char *name, const char *source)
{
	uid_t uid;
	gid_t gid;

	if (strncmp(name, "user:", 5) == 0 && local_user(name + 5, &uid,
	    &gid) && uid != (uid_t)-1) {
		principal_from_uid(p, uid, gid, 0);
		if (strcmp(p->name, name) == 0) {
			snprintf(p->source, sizeof(p->source), "%s", source);
			return;
		}
	}
	memset(p, 0, sizeof(*p));
	p->uid = (uid_t)-1;
	p->gid = (gid_t)-1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	/* Not a uid: a string no policy or key_creators entry names. */
	snprintf(p->uid_name, sizeof(p->uid_name), "uid:none");
	snprintf(p->source, sizeof(p->source), "%s", source);
}

/*
 * A verified client certificate: 1 with p filled, 0 when none was
 * presented, -1 when one was and did not verify.
 */
static int
client_cert_principal(struct http_front *h, struct MHD_Connection *conn,
    struct principal *p, const char *source)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	unsigned status = 0, n = 0;
	char cn[128], name[PRINCIPAL_MAX];
	size_t cnlen = sizeof(cn);
	int r;

	if (!h->client_certs || (ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_GNUTLS_SESSION)) == NULL ||
	    ci->tls_session == NULL) {
		return 0;
	}
	certs = gnutls_certificate_get_peers(ci->tls_session, &n);
	if (certs == NULL || n == 0) {
		return 0;
	}
	if ((r = gnutls_certificate_verify_peers2(ci->tls_session,
	    &status)) != 0 || status != 0) {
		return -1;
	}
	if (gnutls_x509_crt_init(&crt) != 0) {
		return -1;
	}
	r = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
	if (r == 0) {
		r = gnutls_x509_crt_get_dn_by_oid(crt,
		    GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen);
	}
	gnutls_x509_crt_deinit(crt);
	if (r != 0 || cnlen == 0 || strlen(cn) != cnlen) {
		return -1;
	}
	snprintf(name, sizeof(name), "cert:%s", cn);
	principal_named(p, name, source);
	return 1;
}

/* The region a request's scope may name: its own when http_regions
 * lists it, else the one of kmsd's ARNs. */
static const char *
scope_region(const struct config *c, const char *r)
{
	int i;

	for (i = 0; i < c->nhttp_regions; i++) {
		if (strcmp(c->http_regions[i], r) == 0) {
			return r;
		}
	}
	return c->region;
}

/* SigV4: 0 with p filled, or a SIGV4_* error with AWS's message. */
static int
sigv4_principal(struct http_front *h, struct MHD_Connection *conn,
    const char *method, const char *url, struct hreq *q,
    struct principal *p, char *msg, size_t msglen)
{
	struct kv_list hdrs, query;
	struct sigv4_msg m;
	struct sigv4_auth a;
	uint8_t key[SIGV4_KEY_LEN];
	char principal[PRINCIPAL_MAX];
	int r, rc;

	memset(&hdrs, 0, sizeof(hdrs));
	memset(&query, 0, sizeof(query));
	MHD_get_connection_values(conn, MHD_HEADER_KIND, collect, &hdrs);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect,
	    &query);
	if (hdrs.overflow || query.overflow) {
		snprintf(msg, msglen, "More than %d headers or query "
		    "parameters", SIGV4_HEADERS_MAX);
		return SIGV4_INCOMPLETE;
	}
	memset(&m, 0, sizeof(m));
	m.method = method;
	m.path = url;
	m.query = query.v;
	m.nquery = query.n;
	m.headers = hdrs.v;
	m.nheaders = hdrs.n;
	m.body = q->body;
	m.bodylen = q->len;
	if ((r = sigv4_parse(&m, &a, msg, msglen)) != 0) {
		return r;
	}
	/* Letters and digits (sigv4_parse): named in the audit record,
	 * verified or not. */
	memcpy(q->akid, a.akid, sizeof(q->akid));
	q->o.access_key = q->akid;
	/* An unknown access key is answered first, as AWS does; the
	 * scope and the clock are checked before the key is derived. */
	rc = sigv4_check(&m, &a, scope_region(&h->d->cfg, a.region),
	    HTTP_SERVICE, time(NULL), msg, msglen);
	r = creds_signing_key(h->creds, a.akid, a.scope_date, a.region,
	    a.service, rc == SIGV4_OK ? key : NULL, principal,
	    sizeof(principal));
	if (r == -1) {
		snprintf(msg, msglen, "The security token included in the "
		    "request is invalid.");
		return SIGV4_UNRECOGNIZED;
	}
	if (rc != SIGV4_OK) {
		return rc;
	}
	if (r != 0) {
		snprintf(msg, msglen, "The access key's secret is too long.");
		return SIGV4_INVALID;
	}
	r = sigv4_verify_key(&m, &a, key, msg, msglen);
	secure_wipe(key, sizeof(key));
	if (r != SIGV4_OK) {
		return r;
	}
	principal_named(p, principal, q->source);
	return 0;
}

/* ---- one request ---- */

static void
msg_free(struct hreq *q)
{
	if (q->msg != NULL) {
		json_decref(q->msg);	/* its strings wiped as freed */
		q->msg = NULL;
	}
}

/* dispatch()'s reply (NULL: out of memory) as the answer; resp taken. */
static enum MHD_Result
answer(struct MHD_Connection *conn, struct hreq *q, json_t *resp)
{
	json_t *type;
	enum MHD_Result ret;

	if (resp == NULL) {
		return send_error(conn, q, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "KMSInternalException", "out of memory");
	}
	type = json_object_get(resp, "__type");
	ret = send_json(conn, q, json_is_string(type) ?
	    status_for(json_string_value(type)) : MHD_HTTP_OK, resp);
	json_decref(resp);
	return ret;
}

/*
 * Queue q (its message built) for the pool, suspending conn: 1, or 0 when
 * the pool is stopping and the caller is to run it itself.
 */
static int
pool_submit(struct http_front *h, struct MHD_Connection *conn,
    struct hreq *q, const struct principal *p)
{
	struct http_pool *pl = &h->pool;

	pthread_mutex_lock(&pl->mu);
	if (pl->stopping || pl->started == 0) {
		pthread_mutex_unlock(&pl->mu);
		return 0;
	}
	q->conn = conn;
	q->p = *p;
	q->state = HQ_QUEUED;
	q->next = NULL;
	/* Under the lock: the pool cannot resume it before this. */
	MHD_suspend_connection(conn);
	if (pl->tail != NULL) {
		pl->tail->next = q;
	} else {
		pl->head = q;
	}
	pl->tail = q;
	atomic_fetch_add(&h->d->http_queued, 1);
	pthread_cond_signal(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
	return 1;
}

struct pool_thread {
	struct http_front *h;
	struct worker w;
	pthread_t thr;
};

static void *
pool_main(void *arg)
{
	struct pool_thread *t = arg;
	struct http_pool *pl = &t->h->pool;
	struct timespec ts;
	struct hreq *q;

	pthread_mutex_lock(&pl->mu);
	for (;;) {
		while (pl->head == NULL && !pl->stopping) {
			if (atomic_load(&t->h->ref.pending) == 0) {
				pthread_cond_wait(&pl->cv, &pl->mu);
				continue;
			}
			/* Refusals are being counted: their minute's count
			 * is recorded within a second of its end. */
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec++;
			if (pthread_cond_timedwait(&pl->cv, &pl->mu, &ts) ==
			    ETIMEDOUT) {
				pthread_mutex_unlock(&pl->mu);
				refusals_sweep(t->h, 0);
				pthread_mutex_lock(&pl->mu);
			}
		}
		if ((q = pl->head) == NULL) {
			break;		/* stopping, and drained */
		}
		if ((pl->head = q->next) == NULL) {
			pl->tail = NULL;
		}
		atomic_fetch_sub(&t->h->d->http_queued, 1);
		pthread_mutex_unlock(&pl->mu);
		q->resp = dispatch_object(&t->w, &q->p, &q->o, q->msg,
		    q->msglen, q->id);
		q->msg = NULL;
		atomic_fetch_add(&t->h->d->requests, 1);
		q->state = HQ_ANSWERED;
		/* From here q is the connection thread's again. */
		MHD_resume_connection(q->conn);
		audit_after_reply();
		pthread_mutex_lock(&pl->mu);
	}
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

static enum MHD_Result
serve(struct http_front *h, struct MHD_Connection *conn, const char *url,
    const char *method, struct hreq *q)
{
	struct worker *w = my_worker;
	struct principal p;
	const char *ctype, *op;
	char msg[512];
	size_t n;
	json_t *req = NULL, *resp;
	int err = 0, r;

	if (strcmp(method, "POST") != 0 || strcmp(url, "/") != 0) {
		return refuse(h, conn, q, NULL, strcmp(url, "/") != 0 ?
		    MHD_HTTP_NOT_FOUND : MHD_HTTP_METHOD_NOT_ALLOWED,
		    "UnknownOperationException", "kmsd serves AWS JSON 1.1: "
		    "POST / with X-Amz-Target: TrentService.<Operation>");
	}
	if (q->op[0] == '\0') {
		return refuse(h, conn, q, NULL, MHD_HTTP_BAD_REQUEST,
		    "UnknownOperationException", "X-Amz-Target must be "
		    "TrentService.<Operation>");
	}
	op = q->op;
	n = strlen(op);
	ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ctype != NULL && strncasecmp(ctype, HTTP_JSON_TYPE,
	    sizeof(HTTP_JSON_TYPE) - 1) != 0 && strncasecmp(ctype,
	    "application/json", 16) != 0) {
		return refuse(h, conn, q, NULL, MHD_HTTP_BAD_REQUEST,
		    "SerializationException", "Content-Type must be "
		    HTTP_JSON_TYPE);
	}
	if (w == NULL) {
		return refuse(h, conn, q, NULL,
		    MHD_HTTP_INTERNAL_SERVER_ERROR, "KMSInternalException",
		    "no worker for this thread");
	}
	msg[0] = '\0';
	if ((r = client_cert_principal(h, conn, &p, q->source)) < 0) {
		return refuse(h, conn, q, NULL, MHD_HTTP_FORBIDDEN,
		    "UnrecognizedClientException", "The client certificate "
		    "did not verify");
	}
	if (r == 0 && (r = sigv4_principal(h, conn, method, url, q, &p,
	    msg, sizeof(msg))) != 0) {
		log_debug("%s from %s: %s: %s", op, q->source,
		    sigv4_error_name(r), msg);
		return refuse(h, conn, q, NULL, r == SIGV4_MISSING ?
		    MHD_HTTP_FORBIDDEN : MHD_HTTP_BAD_REQUEST,
		    sigv4_error_name(r), msg);
	}
	/* The AWS request object, plus the operation: an IPC message. */
	req = q->len == 0 ? json_object() : kjson_read_bounded(q->body, q->len,
	    HTTP_BODY_MAX, &err, msg, sizeof(msg));
	if (req == NULL) {
		return refuse(h, conn, q, &p, MHD_HTTP_BAD_REQUEST,
		    "SerializationException", msg[0] != '\0' ? msg :
		    "out of memory");
	}
	if (json_object_set_new(req, "Action", json_string(op)) != 0) {
		json_decref(req);
		return MHD_NO;
	}
	/* Handed over parsed; its size is the body's plus the member
	 * added, as an IPC message's would be. */
	q->msg = req;
	q->msglen = q->len + sizeof(",\"Action\":\"\"") - 1 + n;
	q->recorded = 1;		/* by dispatch */
	if (!dispatch_op_quick(op) && pool_submit(h, conn, q, &p)) {
		return MHD_YES;	/* answered when the pool resumes it */
	}
	q->msg = NULL;
	resp = dispatch_object(w, &p, &q->o, req, q->msglen, q->id);
	atomic_fetch_add(&h->d->requests, 1);
	return answer(conn, q, resp);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http_front *h = cls;
	struct hreq *q = *con_cls;

	if (my_worker == NULL) {
		int i = atomic_fetch_add(&h->next_worker, 1);
		if (i < h->nws) {
			my_worker = &h->ws[i];
		}
	}
	if (q == NULL) {
		const char *cl;
		char *end;
		unsigned long long len;

		if ((q = calloc(1, sizeof(*q))) == NULL) {
			return MHD_NO;
		}
		q->start_ms = mono_ms();
		audit_new_id(q->id);	/* as its audit record's requestID */
		origin_init(h, conn, q);
		*con_cls = q;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			errno = 0;
			len = strtoull(cl, &end, 10);
			if (errno != 0 || *end != '\0' || len > HTTP_BODY_MAX) {
				/* Refused before a byte of it is read. */
				return refuse(h, conn, q, NULL,
				    MHD_HTTP_CONTENT_TOO_LARGE,
				    "ValidationException",
				    HTTP_BODY_TOO_LARGE);
			}
			q->expect = (size_t)len;
		}
		return MHD_YES;
	}
	if (q->state == HQ_ANSWERED) {
		json_t *resp = q->resp;

		q->resp = NULL;
		q->state = HQ_READING;
		return answer(conn, q, resp);
	}
	if (q->state == HQ_QUEUED) {
		return MHD_YES;		/* not called while suspended */
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		if (mono_ms() - q->start_ms > (uint64_t)h->d->cfg.
		    http_request_timeout_s * 1000) {
			log_debug("request %s: body too slow, closing", q->id);
			q->cut = "The request body did not arrive within "
			    "http_request_timeout; the connection was closed";
			return MHD_NO;
		}
		if (n > HTTP_BODY_MAX - q->len) {
			/* Chunked past the limit: nothing more is read. */
			log_debug("request %s: body over %d bytes, closing",
			    q->id, HTTP_BODY_MAX);
			q->cut = HTTP_BODY_TOO_LARGE "; the connection was "
			    "closed";
			return MHD_NO;
		}
		if (q->len + n > q->cap) {
			/* As announced (a body is wiped when freed: no
			 * more room than it needs), else from 4 KiB. */
			size_t cap = q->cap != 0 ? q->cap : q->expect > 0 ?
			    q->expect : 4096;
			uint8_t *b;
			while (cap < q->len + n) {
				cap *= 2;
			}
			if (cap > HTTP_BODY_MAX) {
				cap = HTTP_BODY_MAX;
			}
			/* The body may hold plaintexts: the old block is
			 * wiped, never left to realloc. */
			if ((b = malloc(cap)) == NULL) {
				return MHD_NO;
			}
			if (q->len > 0) {
				memcpy(b, q->body, q->len);
			}
			wipe_free(q->body, q->cap);
			q->body = b;
			q->cap = cap;
		}
		memcpy(q->body + q->len, upload_data, n);
		q->len += n;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return serve(h, conn, url, method, q);
}

/* Why q was closed before it was answered. */
static const char *
cut_reason(const struct hreq *q, enum MHD_RequestTerminationCode toe)
{
	if (q->cut != NULL) {
		return q->cut;
	}
	switch (toe) {
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
		return "The connection was idle past http_idle_timeout before "
		    "the request was complete";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
		return "kmsd stopped before the request was complete";
	default:
		return "The connection closed before the request was complete";
	}
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_front *h = cls;
	struct hreq *q = *con_cls;

	if (q != NULL && !q->recorded) {
		/* Closed before it was answered: recorded all the same. */
		(void)refusal_record(h, q, NULL, "ConnectionClosed",
		    cut_reason(q, toe));
	}
	audit_after_reply();	/* the reply has been sent */
	if (q == NULL) {
		return;
	}
	wipe_free(q->body, q->cap);
	msg_free(q);
	if (q->resp != NULL) {
		json_decref(q->resp);
	}
	free(q);
	*con_cls = NULL;
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct http_front *h = cls;

	atomic_fetch_add(&h->d->http_connections,
	    toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

/* libmicrohttpd's own messages: its format, its arguments. */
static void __attribute__((format(printf, 2, 0)))
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n') {
		line[--n] = '\0';
	}
	log_debug("libmicrohttpd: %s", line);
}

/* ---- start and stop ---- */

/* A PEM file into memory (locked when secret); mode 0600 when secret. */
static int
read_pem(const char *path, int secret, char **out, size_t *cap, char *err,
    size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0, n = 0;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) != 0 || st.st_size <= 0 ||
	    st.st_size > HTTP_PEM_MAX) {
		snprintf(err, errlen, "%s: empty or larger than %d bytes", path,
		    HTTP_PEM_MAX);
		goto fail;
	}
	if (secret && (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: readable by others (mode %03o); "
		    "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
		goto fail;
	}
	n = (size_t)st.st_size + 1;
	if ((buf = secret ? secure_alloc(n) : malloc(n)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (got < n - 1) {
		size_t k = fread(buf + got, 1, n - 1 - got, f);
		if (k == 0) {
			break;
		}
		got += k;
	}
	buf[got] = '\0';
	fclose(f);
	*out = buf;
	*cap = n;
	return 0;
 fail:
	fclose(f);
	return -1;
}

int
http_resolve_listen(const char *key, const char *spec, struct addrinfo **out,
    char *err, size_t errlen)
{
	struct addrinfo hints;
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl;
	int r;

	if (colon == NULL || colon == spec) {
		snprintf(err, errlen, "%s %s: expected ADDRESS:PORT", key,
		    spec);
		return -1;
	}
	hl = (size_t)(colon - spec);
	if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		snprintf(err, errlen, "%s %s: address too long", key, spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, colon + 1, &hints, out)) != 0) {
		snprintf(err, errlen, "%s %s: %s", key, spec, gai_strerror(r));
		return -1;
	}
	return 0;
}

static void
pool_stop(struct http_pool *pl)
{
	int i, n;

	pthread_mutex_lock(&pl->mu);
	pl->stopping = 1;
	n = pl->started;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
	for (i = 0; i < n; i++) {
		pthread_join(pl->pt[i].thr, NULL);
	}
}

/* The pool's threads, each with a worker (ids from first_id). */
static int
pool_start(struct http_front *h, int nthreads, int first_id, char *err,
    size_t errlen)
{
	struct http_pool *pl = &h->pool;
	int i, r;

	if ((pl->pt = calloc((size_t)nthreads, sizeof(*pl->pt))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return KMS_ENOMEM;
	}
	for (i = 0; i < nthreads; i++) {
		pl->pt[i].h = h;
		if ((r = worker_init(h->d, first_id + i, &pl->pt[i].w, err,
		    errlen)) != 0) {
			return r;
		}
		pl->n = i + 1;
	}
	for (i = 0; i < nthreads; i++) {
		if ((r = pthread_create(&pl->pt[i].thr, NULL, pool_main,
		    &pl->pt[i])) != 0) {
			snprintf(err, errlen, "http pool thread: %s",
			    strerror(r));
			return KMS_EINTERNAL;
		}
		(void)pthread_setname_np(pl->pt[i].thr, "kmsd-http");
		pthread_mutex_lock(&pl->mu);
		pl->started = i + 1;
		pthread_mutex_unlock(&pl->mu);
	}
	return 0;
}

void
http_stop(struct http_front *h)
{
	int i;

	if (h == NULL) {
		return;
	}
	/* The pool first: it runs what is queued and resumes every
	 * suspended connection (libmicrohttpd must have none when it
	 * stops); the connection threads then run the rest themselves. */
	pool_stop(&h->pool);
	if (h->mhd != NULL) {
		MHD_stop_daemon(h->mhd);	/* waits for its threads */
	}
	/* No refusal comes now: the counts of the minutes begun. */
	refusals_sweep(h, 1);
	for (i = 0; i < h->nws; i++) {
		worker_fini(&h->ws[i]);
	}
	for (i = 0; i < h->pool.n; i++) {
		worker_fini(&h->pool.pt[i].w);
	}
	free(h->pool.pt);
	pthread_mutex_destroy(&h->pool.mu);
	pthread_cond_destroy(&h->pool.cv);
	pthread_mutex_destroy(&h->ref.mu);
	free(h->ref.slot);
	free(h->ws);
	creds_close(h->creds);
	free(h->cert);
	free(h->ca);
	if (h->key != NULL) {
		secure_free(h->key, h->keycap);
	}
	free(h);
}

int
http_start(struct kmsd *d, struct http_front **out, char *err, size_t errlen)
{
	const struct config *c = &d->cfg;
	struct http_front *h;
	struct addrinfo *ai = NULL;
	struct MHD_OptionItem opts[24];
	const union MHD_DaemonInfo *di;
	char addr[INET6_ADDRSTRLEN];
	size_t certcap = 0, cacap = 0;
	unsigned flags;
	int i, no = 0, r = KMS_EINTERNAL;

	*out = NULL;
	if (c->http_listen[0] == '\0') {
		return 0;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return KMS_ENOMEM;
	}
	h->d = d;
	pthread_mutex_init(&h->pool.mu, NULL);
	pthread_cond_init(&h->pool.cv, NULL);
	pthread_mutex_init(&h->ref.mu, NULL);
	if (d->audit != NULL && (h->ref.slot = calloc(REFUSAL_SLOTS + 1,
	    sizeof(*h->ref.slot))) == NULL) {
		snprintf(err, errlen, "out of memory");
		r = KMS_ENOMEM;
		goto fail;
	}
	if (http_resolve_listen("http_listen", c->http_listen, &ai, err,
	    errlen) != 0) {
		r = KMS_EVALIDATION;
		goto fail;
	}
	if (creds_open(c->http_credentials, &h->creds, err, errlen) != 0) {
		r = KMS_EVALIDATION;
		goto fail;
	}
	if (c->http_tls_cert[0] != '\0') {
		h->tls = 1;
		if (read_pem(c->http_tls_cert, 0, &h->cert, &certcap, err,
		    errlen) != 0 || read_pem(c->http_tls_key, 1, &h->key,
		    &h->keycap, err, errlen) != 0) {
			r = KMS_EVALIDATION;
			goto fail;
		}
		if (c->http_tls_client_ca[0] != '\0') {
			if (read_pem(c->http_tls_client_ca, 0, &h->ca, &cacap,
			    err, errlen) != 0) {
				r = KMS_EVALIDATION;
				goto fail;
			}
			h->client_certs = 1;
		}
	}
	if ((h->ws = calloc((size_t)c->http_threads, sizeof(*h->ws))) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < c->http_threads; i++) {
		/* Ids after the IPC workers'. */
		if ((r = worker_init(d, c->workers + i, &h->ws[i], err,
		    errlen)) != 0) {
			goto fail;
		}
		h->nws = i + 1;
	}
	if ((r = pool_start(h, c->http_workers, c->workers + c->http_threads,
	    err, errlen)) != 0) {
		goto fail;
	}
	r = KMS_EINTERNAL;
#define OPT(o, v, p) opts[no++] = (struct MHD_OptionItem){ (o), \
	(intptr_t)(v), (void *)(p) }
	/* The logger first, so that it hears about the rest. */
	OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h);
	OPT(MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr);
	OPT(MHD_OPTION_THREAD_POOL_SIZE, c->http_threads, NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, c->http_max_connections, NULL);
	OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->http_max_per_ip, NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, c->http_idle_timeout_s, NULL);
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY, NULL);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, h);
	OPT(MHD_OPTION_NOTIFY_CONNECTION, on_connection, h);
	if (h->tls) {
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert);
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, h->key);
		OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, HTTP_TLS_PRIORITIES);
		if (h->client_certs) {
			OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, h->ca);
		}
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | (h->tls ? MHD_USE_TLS : 0) |
	    (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (h->mhd == NULL) {
		snprintf(err, errlen, "http_listen %s: cannot start the "
		    "listener (address in use, or bad TLS certificate/key?)",
		    c->http_listen);
		goto fail;
	}
	di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (ai->ai_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)
		    ai->ai_addr)->sin6_addr, addr, sizeof(addr));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)
		    ai->ai_addr)->sin_addr, addr, sizeof(addr));
	}
	printf("kmsd: %s on %s%s%s:%u (%d threads, %d workers%s)\n",
	    h->tls ? "https" : "http", ai->ai_family == AF_INET6 ? "[" : "",
	    addr, ai->ai_family == AF_INET6 ? "]" : "", di != NULL ?
	    (unsigned)di->port : 0, c->http_threads, c->http_workers,
	    h->client_certs ? ", client certificates" : "");
	fflush(stdout);
	freeaddrinfo(ai);
	*out = h;
	return 0;
 fail:
	if (ai != NULL) {
		freeaddrinfo(ai);
	}
	http_stop(h);
	return r;
}
