/*
 * client.c — the transport of libkmsclient: one nng req0 socket per
 * client, a pool of nng contexts so that calls from many threads are in
 * flight at once, and the raw JSON entry point.
 *
 * Delivery is at most once.  nng's req0 resends a request on a timer
 * (NNG_OPT_REQ_RESENDTIME, 60 s by default) and again whenever the
 * connection it went out on drops.  Either would run a non-idempotent
 * operation twice (CreateKey makes two keys, a slow GenerateDataKey counts
 * twice against the key's encryption budget), so the timer is switched off
 * and, when a connection drops, every call in flight is aborted with
 * KMS_ETRANSPORT ("the request may or may not have been processed") before
 * nng can redial and resend it.  Retrying is the caller's decision, as it is
 * with AWS SDKs.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "common/err.h"
#include "common/json.h"
#include "common/secmem.h"
#include "libkmsclient/client.h"

/* What the client accepts from the transport: the 1 MiB message limit plus
 * room for nng's header; the bounded reader then enforces 1 MiB exactly. */
#define CLIENT_RECVMAXSZ (JSON_MAX_MESSAGE + 4096)
#define CLIENT_DEFAULT_TIMEOUT_MS 30000
/* Room first given to a request: every single call fits; a Batch may
 * need a second pass. */
#define CLIENT_REQ_GUESS 4096
#define CLIENT_URL_MAX 512
/* Redial quickly while the daemon (re)starts, backing off to 500 ms. */
#define CLIENT_REDIAL_MIN_MS 20
#define CLIENT_REDIAL_MAX_MS 500

/* One borrowed nng context and the aio that drives it. */
struct slot {
	nng_ctx ctx;
	nng_aio *aio;
	struct slot *next_free;	/* on the free list */
	struct slot *next_all;	/* every slot, for close and pipe loss */
	int busy;		/* a request is in flight on it */
	int lost;		/* its connection dropped mid-request */
};

struct kms_client {
	nng_socket sock;
	pthread_mutex_t mu;	/* guards everything below */
	struct slot *free_slots;
	struct slot *all_slots;
	int timeout_ms;		/* whole call; 0 = none */
	int connect_timeout_ms;	/* waiting for a connection; 0 = timeout_ms */
	unsigned pipes_up;	/* connections open now (0 or 1) */
	nng_dialer dialer;
	int dialing;		/* dialer started (on the first call) */
	char url[CLIENT_URL_MAX];
	atomic_size_t req_hint;	/* size of a recent request, for the next */
};

static pthread_once_t json_once = PTHREAD_ONCE_INIT;

static void
install_json_allocator(void)
{
	secure_json_allocator();
}

int
client_fail(kms_error_info *ei, int code, const char *fmt, ...)
{
	va_list ap;

	if (ei != NULL) {
		ei->code = code;
		snprintf(ei->name, sizeof(ei->name), "%s",
		    kms_error_name(code));
		va_start(ap, fmt);
		vsnprintf(ei->message, sizeof(ei->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

void
client_ok(kms_error_info *ei)
{
	if (ei != NULL) {
		memset(ei, 0, sizeof(*ei));
	}
}

/* ------------------------------------------------------------ endpoint */

static int
copy_endpoint(char *buf, size_t len, const char *dir)
{
	int n;

	n = snprintf(buf, len, "ipc://%s%svar/kmsd.sock", dir,
	    strcmp(dir, "/") == 0 ? "" : "/");
	if (n < 0 || (size_t)n >= len) {
		return KMS_EINVAL;
	}
	return 0;
}

KMS_API int
kms_default_endpoint(char *buf, size_t len)
{
	const char *env = getenv("KMS_ENDPOINT");
	char cwd[PATH_MAX], dir[PATH_MAX], probe[PATH_MAX + 32];
	struct stat st;
	char *slash;
	int n;

	if (buf == NULL || len == 0) {
		return KMS_EINVAL;
	}
	if (env != NULL && env[0] != '\0') {
		n = snprintf(buf, len, "%s", env);
		return (n < 0 || (size_t)n >= len) ? KMS_EINVAL : 0;
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return KMS_EINVAL;
	}
	/* The project directory: the nearest ancestor with var/kmsd.sock. */
	snprintf(dir, sizeof(dir), "%s", cwd);
	for (;;) {
		snprintf(probe, sizeof(probe), "%s%svar/kmsd.sock", dir,
		    strcmp(dir, "/") == 0 ? "" : "/");
		if (stat(probe, &st) == 0) {
			return copy_endpoint(buf, len, dir);
		}
		if (strcmp(dir, "/") == 0) {
			break;
		}
		if ((slash = strrchr(dir, '/')) == NULL) {
			break;
		}
		if (slash == dir) {
			dir[1] = '\0';
		} else {
			*slash = '\0';
		}
	}
	return copy_endpoint(buf, len, cwd);
}

/* ------------------------------------------------------------ open/close */

/* Pipe events: count connections, abort calls whose connection dropped. */
static void
pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	kms_client *c = arg;
	struct slot *s;

	pthread_mutex_lock(&c->mu);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		c->pipes_up++;
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		if (c->pipes_up > 0) {
			c->pipes_up--;
		}
		for (s = c->all_slots; s != NULL; s = s->next_all) {
			if (s->busy) {
				s->lost = 1;
				nng_aio_cancel(s->aio);
			}
		}
	}
	pthread_mutex_unlock(&c->mu);
}

KMS_API int
kms_client_open(kms_client **cp, const char *url)
{
	kms_client *c = NULL;
	char def[CLIENT_URL_MAX];
	int r = KMS_EINTERNAL, rv, sock_open = 0;

	if (cp == NULL) {
		return KMS_EINVAL;
	}
	(void)pthread_once(&json_once, install_json_allocator);
	if (url == NULL) {
		if ((r = kms_default_endpoint(def, sizeof(def))) != 0) {
			return r;
		}
		url = def;
	}
	if (strlen(url) >= CLIENT_URL_MAX) {
		return KMS_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return KMS_ENOMEM;
	}
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		return KMS_ENOMEM;
	}
	snprintf(c->url, sizeof(c->url), "%s", url);
	c->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		r = rv == NNG_ENOMEM ? KMS_ENOMEM : KMS_ETRANSPORT;
		goto out;
	}
	sock_open = 1;
	/* See the comment at the top: at most once. */
	if ((rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ,
	    CLIENT_RECVMAXSZ)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	    NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT,
	    CLIENT_REDIAL_MIN_MS)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT,
	    CLIENT_REDIAL_MAX_MS)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_event,
	    c)) != 0 ||
	    (rv = nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_event,
	    c)) != 0) {
		r = KMS_ETRANSPORT;
		goto out;
	}
	/* The URL is checked now; the connection is made by the first call
	 * (a client opened and closed unused never connects). */
	if ((rv = nng_dialer_create(&c->dialer, c->sock, url)) != 0) {
		r = (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ||
		    rv == NNG_EINVAL) ? KMS_EINVAL : KMS_ETRANSPORT;
		goto out;
	}
	*cp = c;
	c = NULL;
	r = 0;
 out:
	if (c != NULL) {
		if (sock_open) {
			nng_close(c->sock);
		}
		pthread_mutex_destroy(&c->mu);
		free(c);
	}
	return r;
}

KMS_API void
kms_client_close(kms_client *c)
{
	struct slot *s, *next;

	if (c == NULL) {
		return;
	}
	/* Closing the socket closes its contexts and ends their aios. */
	nng_close(c->sock);
	for (s = c->all_slots; s != NULL; s = next) {
		next = s->next_all;
		nng_aio_free(s->aio);
		free(s);
	}
	pthread_mutex_destroy(&c->mu);
	free(c);
}

KMS_API int
kms_client_set_timeout(kms_client *c, int ms)
{
	if (c == NULL || ms < 0) {
		return KMS_EINVAL;
	}
	pthread_mutex_lock(&c->mu);
	c->timeout_ms = ms;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

KMS_API int
kms_client_set_connect_timeout(kms_client *c, int ms)
{
	if (c == NULL || ms < 0) {
		return KMS_EINVAL;
	}
	pthread_mutex_lock(&c->mu);
	c->connect_timeout_ms = ms;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* ------------------------------------------------------------ the pool */

static int
slot_get(kms_client *c, struct slot **sp)
{
	struct slot *s;
	int rv;

	pthread_mutex_lock(&c->mu);
	if ((s = c->free_slots) != NULL) {
		c->free_slots = s->next_free;
		s->busy = 1;
		s->lost = 0;
		pthread_mutex_unlock(&c->mu);
		*sp = s;
		return 0;
	}
	pthread_mutex_unlock(&c->mu);

	/* Grow on demand: one context per concurrent caller. */
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return KMS_ENOMEM;
	}
	if ((rv = nng_aio_alloc(&s->aio, NULL, NULL)) != 0) {
		free(s);
		return KMS_ENOMEM;
	}
	if ((rv = nng_ctx_open(&s->ctx, c->sock)) != 0) {
		nng_aio_free(s->aio);
		free(s);
		return rv == NNG_ENOMEM ? KMS_ENOMEM : KMS_ETRANSPORT;
	}
	(void)nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME,
	    NNG_DURATION_INFINITE);
	pthread_mutex_lock(&c->mu);
	s->busy = 1;
	s->next_all = c->all_slots;
	c->all_slots = s;
	pthread_mutex_unlock(&c->mu);
	*sp = s;
	return 0;
}

static void
slot_put(kms_client *c, struct slot *s)
{
	pthread_mutex_lock(&c->mu);
	s->busy = 0;
	s->lost = 0;
	s->next_free = c->free_slots;
	c->free_slots = s;
	pthread_mutex_unlock(&c->mu);
}

/* Started an operation on s: if the connection already dropped, abort. */
static void
slot_check_lost(kms_client *c, struct slot *s)
{
	pthread_mutex_lock(&c->mu);
	if (s->lost) {
		nng_aio_cancel(s->aio);
	}
	pthread_mutex_unlock(&c->mu);
}

static void
wipe_free_msg(nng_msg *m)
{
	if (m != NULL) {
		secure_wipe(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
	}
}

static int
transport_error(kms_client *c, struct slot *s, int rv, int sending,
    kms_error_info *ei)
{
	int lost, connected;

	pthread_mutex_lock(&c->mu);
	lost = s->lost;
	connected = c->pipes_up > 0;
	pthread_mutex_unlock(&c->mu);
	if (lost || (!sending && (rv == NNG_ECONNRESET ||
	    rv == NNG_ECONNSHUT || rv == NNG_ECONNABORTED))) {
		return client_fail(ei, KMS_ETRANSPORT, "The connection to %s "
		    "dropped during the request; it may or may not have been "
		    "processed", c->url);
	}
	if (rv == NNG_ETIMEDOUT) {
		/* Never handed to a connection: nobody is listening. */
		if (sending && !connected) {
			return client_fail(ei, KMS_ETRANSPORT, "Could not "
			    "connect to the endpoint URL: \"%s\"", c->url);
		}
		return client_fail(ei, KMS_ETIMEDOUT, "No reply from %s "
		    "within the timeout", c->url);
	}
	return client_fail(ei, KMS_ETRANSPORT, "%s: %s", c->url,
	    nng_strerror(rv));
}

/*
 * Send *reqp (taken over, wiped on every path) and receive the reply.
 * The call's timeout covers both; the connect timeout, when set, bounds the
 * wait for a connection (the send phase).
 */
static int
transact(kms_client *c, nng_msg **reqp, nng_msg **repp, kms_error_info *ei)
{
	struct slot *s = NULL;
	nng_msg *req = *reqp;
	nng_time deadline = 0;
	nng_duration t;
	int r, rv, timeout, ctimeout;

	*reqp = NULL;
	if ((r = slot_get(c, &s)) != 0) {
		wipe_free_msg(req);
		return client_fail(ei, r, "Cannot allocate a request context");
	}
	pthread_mutex_lock(&c->mu);
	timeout = c->timeout_ms;
	ctimeout = c->connect_timeout_ms;
	/* Non-blocking: the call waits for the connection within its time,
	 * and nng keeps redialling in the background if the daemon is away
	 * or restarts. */
	rv = c->dialing ? 0 : nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK);
	c->dialing |= rv == 0;
	pthread_mutex_unlock(&c->mu);
	if (rv != 0) {
		slot_put(c, s);
		wipe_free_msg(req);
		return client_fail(ei, KMS_ETRANSPORT, "%s: %s", c->url,
		    nng_strerror(rv));
	}
	if (timeout > 0) {
		deadline = nng_clock() + (nng_time)timeout;
	}

	/* Send: completes once the request is handed to a connection. */
	t = timeout > 0 ? timeout : NNG_DURATION_INFINITE;
	if (ctimeout > 0 && (timeout == 0 || ctimeout < timeout)) {
		t = ctimeout;
	}
	nng_aio_set_timeout(s->aio, t);
	nng_aio_set_msg(s->aio, req);
	nng_ctx_send(s->ctx, s->aio);
	slot_check_lost(c, s);
	nng_aio_wait(s->aio);
	if ((rv = nng_aio_result(s->aio)) != 0) {
		wipe_free_msg(nng_aio_get_msg(s->aio));
		nng_aio_set_msg(s->aio, NULL);
		r = transport_error(c, s, rv, 1, ei);
		goto out;
	}
	/* nng frees the request once answered; it cannot be wiped here. */

	/* Receive, within what is left of the call's time. */
	if (timeout > 0) {
		nng_time now = nng_clock();
		t = now >= deadline ? 1 : (nng_duration)(deadline - now);
	} else {
		t = NNG_DURATION_INFINITE;
	}
	nng_aio_set_timeout(s->aio, t);
	nng_ctx_recv(s->ctx, s->aio);
	slot_check_lost(c, s);
	nng_aio_wait(s->aio);
	if ((rv = nng_aio_result(s->aio)) != 0) {
		r = transport_error(c, s, rv, 0, ei);
		goto out;
	}
	*repp = nng_aio_get_msg(s->aio);
	nng_aio_set_msg(s->aio, NULL);
	r = 0;
 out:
	slot_put(c, s);
	return r;
}

/* A request message holding len bytes of buf. */
static int
request_msg(const void *buf, size_t len, nng_msg **mp, kms_error_info *ei)
{
	nng_msg *m;

	if (len > JSON_MAX_MESSAGE) {
		return client_fail(ei, KMS_EINVAL, "The request is %zu bytes; "
		    "a message holds at most %d", len, JSON_MAX_MESSAGE);
	}
	if (nng_msg_alloc(&m, len) != 0) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	if (len > 0) {
		memcpy(nng_msg_body(m), buf, len);
	}
	*mp = m;
	return 0;
}

int
client_roundtrip(kms_client *c, const void *req, size_t len, char **bodyp,
    size_t *lenp, kms_error_info *ei)
{
	nng_msg *m = NULL, *rep = NULL;
	char *body;
	size_t n;
	int r;

	if ((r = request_msg(req, len, &m, ei)) != 0) {
		return r;
	}
	if ((r = transact(c, &m, &rep, ei)) != 0) {
		return r;
	}
	n = nng_msg_len(rep);
	if ((body = malloc(n + 1)) == NULL) {
		wipe_free_msg(rep);
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	memcpy(body, nng_msg_body(rep), n);
	body[n] = '\0';
	wipe_free_msg(rep);
	*bodyp = body;
	*lenp = n;
	return 0;
}

int
client_reply_status(const json_t *reply, kms_error_info *ei)
{
	const json_t *type, *msg;
	int code;

	if (!json_is_object(reply)) {
		return client_fail(ei, KMS_EPROTO, "A reply item is not a "
		    "JSON object");
	}
	if ((type = json_object_get(reply, "__type")) == NULL) {
		client_ok(ei);
		return 0;
	}
	if (!json_is_string(type) || json_string_length(type) == 0) {
		return client_fail(ei, KMS_EPROTO, "The reply's \"__type\" is "
		    "not an error name");
	}
	msg = json_object_get(reply, "message");
	code = kms_error_from_name(json_string_value(type));
	/* Daemon errors use client-side codes never; keep its name as sent. */
	if (code == KMS_OK) {
		code = KMS_EPROTO;
	}
	if (ei != NULL) {
		ei->code = code;
		snprintf(ei->name, sizeof(ei->name), "%s",
		    json_string_value(type));
		snprintf(ei->message, sizeof(ei->message), "%s",
		    json_is_string(msg) ? json_string_value(msg) : "");
	}
	return code;
}

/* Parse an nng reply (wiped and freed here) and classify it. */
static int
parse_reply(nng_msg *rep, json_t **replyp, kms_error_info *ei)
{
	char msg[256];
	json_t *j;
	int err = 0, r;

	j = json_read_bounded(nng_msg_body(rep), nng_msg_len(rep),
	    JSON_MAX_MESSAGE, &err, msg, sizeof(msg));
	wipe_free_msg(rep);
	if (j == NULL) {
		return client_fail(ei, KMS_EPROTO, "The reply could not be "
		    "parsed: %s", msg);
	}
	if ((r = client_reply_status(j, ei)) != 0) {
		json_decref(j);
		return r;
	}
	*replyp = j;
	return 0;
}

int
client_call(kms_client *c, const json_t *req, json_t **replyp,
    kms_error_info *ei)
{
	nng_msg *m = NULL, *rep = NULL;
	size_t n, guess = atomic_load(&c->req_hint);
	int r;

	client_ok(ei);
	/* One pass of the compact writer into a message of a likely size (a
	 * recent request's, so Batches of one size fit too); a second, into
	 * one of the exact size, only when it did not fit. */
	if (guess < CLIENT_REQ_GUESS || guess > JSON_MAX_MESSAGE) {
		guess = CLIENT_REQ_GUESS;
	}
	if (nng_msg_alloc(&m, guess) != 0) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	n = json_write_compact(req, nng_msg_body(m), guess);
	if (n > guess && n <= JSON_MAX_MESSAGE) {
		/* The partial text may hold a plaintext: wipe, then grow. */
		secure_wipe(nng_msg_body(m), guess);
		if (nng_msg_realloc(m, n) != 0) {
			wipe_free_msg(m);
			return client_fail(ei, KMS_ENOMEM, "Out of memory");
		}
		if (json_write_compact(req, nng_msg_body(m), n) != n) {
			n = 0;
		}
	}
	if (n == 0) {
		wipe_free_msg(m);
		return client_fail(ei, KMS_ENOMEM, "Cannot serialise the "
		    "request");
	}
	if (n > JSON_MAX_MESSAGE) {
		wipe_free_msg(m);
		return client_fail(ei, KMS_EINVAL, "The request is %zu bytes; "
		    "a message holds at most %d", n, JSON_MAX_MESSAGE);
	}
	if (n < guess) {
		(void)nng_msg_chop(m, guess - n);
	}
	atomic_store(&c->req_hint, n + n / 8);
	if ((r = transact(c, &m, &rep, ei)) != 0) {
		return r;
	}
	return parse_reply(rep, replyp, ei);
}

/* ------------------------------------------------------------ raw JSON */

KMS_API int
kms_call_json(kms_client *c, const char *request, size_t len, char **reply,
    size_t *reply_len, kms_error_info *ei)
{
	char msg[256], *body = NULL;
	size_t n = 0;
	json_t *j;
	int err = 0, r;

	client_ok(ei);
	if (c == NULL || request == NULL || reply == NULL) {
		return client_fail(ei, KMS_EINVAL, "NULL argument");
	}
	*reply = NULL;
	if (reply_len != NULL) {
		*reply_len = 0;
	}
	if ((r = client_roundtrip(c, request, len, &body, &n, ei)) != 0) {
		return r;
	}
	j = json_read_bounded(body, n, JSON_MAX_MESSAGE, &err, msg,
	    sizeof(msg));
	if (j == NULL) {
		r = client_fail(ei, KMS_EPROTO, "The reply could not be "
		    "parsed: %s", msg);
	} else {
		r = client_reply_status(j, ei);
		json_decref(j);
	}
	*reply = body;
	if (reply_len != NULL) {
		*reply_len = n;
	}
	return r;
}

KMS_API void
kms_free(void *p)
{
	/* Raw replies may carry base64 plaintexts: wipe the whole block. */
	if (p != NULL) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

KMS_API void
kms_secret_free(kms_secret *s)
{
	if (s == NULL) {
		return;
	}
	if (s->data != NULL) {
		secure_free(s->data, s->len);
	}
	s->data = NULL;
	s->len = 0;
}

KMS_API void
kms_buf_free(kms_buf *b)
{
	if (b == NULL) {
		return;
	}
	free(b->data);
	b->data = NULL;
	b->len = 0;
}
