/*
 * client.c — the transport of libkmsclient: one connection per client to
 * kmsd's IPC socket, speaking nng's req0 protocol (SP over IPC) by hand,
 * and the raw JSON entry point.
 *
 * Why not nng itself: nng 1.5.2 (Debian 12) deadlocks when a connection
 * closes while its transport is between a message's header and its body
 * (nng issue fixed in 1.8, "fix deadlock on socket close").  A client with
 * calls in flight when kmsd restarts met it every few tries: from then on
 * nng's poller spun a core, every redial leaked a descriptor and
 * kms_client_close never returned.  The protocol is small (an 8-byte
 * handshake, then frames of a type byte, a 64-bit length and the request
 * id before the body), so the library speaks it itself.
 *
 * Calls from many threads share the connection: each frame is written
 * whole under a write lock, and one reader thread hands each reply to the
 * call whose request id it carries, so many calls are in flight at once.
 *
 * Delivery is at most once.  A request is never sent twice: when the
 * connection drops, every call in flight fails with KMS_ETRANSPORT ("the
 * request may or may not have been processed"), and the next call
 * connects again.  Retrying is the caller's decision, as it is with AWS
 * SDKs.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/be.h"
#include "common/err.h"
#include "common/json.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "libkmsclient/client.h"

/* What the client accepts from kmsd: a reply of at most JSON_MAX_REPLY
 * (the largest a request within the limits gets, common/json.h) after its
 * request id; the bounded reader then enforces JSON_MAX_REPLY exactly. */
#define CLIENT_RECVMAXSZ (JSON_MAX_REPLY + SP_ID_LEN)
#define CLIENT_DEFAULT_TIMEOUT_MS 30000
/* Room first given to a request: every single call fits; a Batch may
 * need a second pass. */
#define CLIENT_REQ_GUESS 4096
#define CLIENT_URL_MAX 512
/* Reconnect quickly while the daemon (re)starts, backing off to 500 ms. */
#define CLIENT_REDIAL_MIN_MS 20
#define CLIENT_REDIAL_MAX_MS 500


/* One connection.  Freed by its last reference: the client's, and each
 * call's while it writes. */
struct conn {
	int fd;
	unsigned gen;		/* fork_gen when it was made */
	int refs;		/* under the client's mu */
	int dead;		/* no more calls on it */
	pthread_t reader;
	pthread_mutex_t wmu;	/* one frame written at a time */
};

/* One call in flight, on the caller's stack. */
enum { P_WAIT, P_DONE, P_LOST };
struct pending {
	uint32_t id;
	struct conn *conn;
	int state;
	uint8_t *reply;		/* P_DONE: the body, NUL-terminated */
	size_t len;
	pthread_cond_t cv;
	struct pending *next;
};

struct kms_client {
	pthread_mutex_t mu;	/* guards everything below */
	pthread_mutex_t cmu;	/* one thread connects at a time */
	struct conn *conn;	/* NULL until the first call */
	struct pending *pending;
	uint32_t next_id;
	uint64_t nrequests;	/* requests sent, for kms_client_requests */
	int timeout_ms;		/* whole call; 0 = none */
	int connect_timeout_ms;	/* waiting for a connection; 0 = timeout_ms */
	char url[CLIENT_URL_MAX];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	atomic_size_t req_hint;	/* size of a recent request, for the next */
};

static pthread_once_t json_once = PTHREAD_ONCE_INIT;

/*
 * Forks seen by this process.  A child inherits its parent's connection
 * but not the thread that reads it: were both to use it, either could
 * read the other's replies.  So a connection belongs to the generation
 * that made it, and a child's first call leaves the inherited one to the
 * parent and connects anew.
 */
static atomic_uint fork_gen;

static void
forked(void)
{
	atomic_fetch_add(&fork_gen, 1);
}

static void
install_json_allocator(void)
{
	secure_json_allocator();
	(void)pthread_atfork(NULL, NULL, forked);
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

KMS_API int
kms_client_open(kms_client **cp, const char *url)
{
	kms_client *c;
	char def[CLIENT_URL_MAX];
	const char *path;

	if (cp == NULL) {
		return KMS_EINVAL;
	}
	(void)pthread_once(&json_once, install_json_allocator);
	if (url == NULL) {
		int r;
		if ((r = kms_default_endpoint(def, sizeof(def))) != 0) {
			return r;
		}
		url = def;
	}
	/* The URL is checked now; the connection is made by the first call
	 * (a client opened and closed unused never connects). */
	if (strlen(url) >= CLIENT_URL_MAX || strncmp(url, "ipc://", 6) != 0) {
		return KMS_EINVAL;
	}
	path = url + 6;
	if (path[0] == '\0' ||
	    strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		return KMS_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return KMS_ENOMEM;
	}
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c);
		return KMS_ENOMEM;
	}
	if (pthread_mutex_init(&c->cmu, NULL) != 0) {
		pthread_mutex_destroy(&c->mu);
		free(c);
		return KMS_ENOMEM;
	}
	snprintf(c->url, sizeof(c->url), "%s", url);
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
	*cp = c;
	return 0;
}

/* Drop a reference to cn, c->mu held; the last one closes the socket. */
static void
conn_unref(struct conn *cn)
{
	if (--cn->refs > 0) {
		return;
	}
	close(cn->fd);
	pthread_mutex_destroy(&cn->wmu);
	free(cn);
}

/* In a child: forget the parent's connection and calls (their threads
 * are not here), closing only this process's descriptor.  c->mu held. */
static void
conn_inherited(kms_client *c)
{
	close(c->conn->fd);
	/* Not destroyed: a parent thread may have held its lock. */
	free(c->conn);
	c->conn = NULL;
	c->pending = NULL;
}

/* Stop cn's reader and drop the client's reference, c->mu not held. */
static void
conn_retire(kms_client *c, struct conn *cn)
{
	shutdown(cn->fd, SHUT_RDWR);	/* ends the reader's read */
	pthread_join(cn->reader, NULL);
	pthread_mutex_lock(&c->mu);
	conn_unref(cn);
	pthread_mutex_unlock(&c->mu);
}

KMS_API void
kms_client_close(kms_client *c)
{
	if (c == NULL) {
		return;
	}
	/* No call may be in flight (the API's contract), so the reader is
	 * the connection's last user. */
	if (c->conn != NULL && c->conn->gen != atomic_load(&fork_gen)) {
		conn_inherited(c);
	} else if (c->conn != NULL) {
		conn_retire(c, c->conn);
	}
	pthread_mutex_destroy(&c->cmu);
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

/* ------------------------------------------------------------ time */

/* Milliseconds left until deadline (0: none), for poll: -1 = no limit. */
static int
left_ms(uint64_t deadline)
{
	uint64_t now;

	if (deadline == 0) {
		return -1;
	}
	now = mono_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

/* ------------------------------------------------------------ the wire */

/* Write a whole frame (iov, cnt) by deadline (0: none): 0; -1 on error,
 * -2 past the deadline (either way part of it may have gone). */
static int
write_full(int fd, struct iovec *iov, int cnt, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	struct msghdr mh = { 0 };
	ssize_t r;

	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)cnt;
	while (mh.msg_iovlen > 0) {
		r = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* kmsd is not reading: wait, within the call's time. */
			if (poll(&pfd, 1, left_ms(deadline)) != 1) {
				return -2;
			}
			continue;
		}
		if (r <= 0) {
			return -1;
		}
		while (mh.msg_iovlen > 0 && (size_t)r >= mh.msg_iov->iov_len) {
			r -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov->iov_base =
			    (uint8_t *)mh.msg_iov->iov_base + r;
			mh.msg_iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* Every call in flight on cn fails: the connection is gone.  c->mu held. */
static void
conn_lost(kms_client *c, struct conn *cn)
{
	struct pending *pd;

	cn->dead = 1;
	for (pd = c->pending; pd != NULL; pd = pd->next) {
		if (pd->conn == cn && pd->state == P_WAIT) {
			pd->state = P_LOST;
			pthread_cond_signal(&pd->cv);
		}
	}
}

struct reader_arg {
	kms_client *c;
	struct conn *cn;
};

/* The reader: each reply to the call waiting for its id, until the
 * connection ends. */
static void *
reader_main(void *arg)
{
	struct reader_arg ra = *(struct reader_arg *)arg;
	kms_client *c = ra.c;
	struct conn *cn = ra.cn;
	struct pending *pd;
	uint8_t hdr[SP_FRAME_HDR + SP_ID_LEN], *buf;
	uint64_t len;
	uint32_t id;

	free(arg);
	for (;;) {
		/* A reply is a message that starts with its id: both are read
		 * together (a shorter message breaks the protocol anyway). */
		if (sp_read_full(cn->fd, hdr, sizeof(hdr), 0) != 0 ||
		    sp_frame_len(hdr, &len) != 0 || len < SP_ID_LEN ||
		    len > CLIENT_RECVMAXSZ) {
			break;
		}
		id = get_u32_be(hdr + SP_FRAME_HDR);
		len -= SP_ID_LEN;
		/* One more byte: a raw reply is handed on NUL-terminated. */
		if ((buf = malloc((size_t)len + 1)) == NULL) {
			break;
		}
		if (sp_read_full(cn->fd, buf, (size_t)len, 0) != 0) {
			wipe_free(buf, (size_t)len);
			break;
		}
		buf[len] = '\0';
		pthread_mutex_lock(&c->mu);
		for (pd = c->pending; pd != NULL; pd = pd->next) {
			if (pd->id == id && pd->conn == cn &&
			    pd->state == P_WAIT) {
				break;
			}
		}
		if (pd != NULL) {
			pd->reply = buf;
			pd->len = (size_t)len;
			pd->state = P_DONE;
			pthread_cond_signal(&pd->cv);
			buf = NULL;
		}
		pthread_mutex_unlock(&c->mu);
		/* A reply nobody waits for any more (its call timed out). */
		wipe_free(buf, (size_t)len);
	}
	/* Whatever ended it (kmsd gone, a frame that breaks the protocol),
	 * nothing more goes either way on this connection. */
	shutdown(cn->fd, SHUT_RDWR);
	pthread_mutex_lock(&c->mu);
	conn_lost(c, cn);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Connect and shake hands once: 0, KMS_ETRANSPORT with *retry set when
 * nobody is listening (yet), or another error. */
static int
dial_once(kms_client *c, uint64_t deadline, int *fdp, int *retry,
    kms_error_info *ei)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t hello[SP_HELLO_LEN], peer[SP_HELLO_LEN];
	struct iovec iov = { hello, sizeof(hello) };
	int fd;

	*retry = 0;
	sp_hello(hello, SP_REQ0);
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		return client_fail(ei, KMS_ETRANSPORT, "%s: socket: %s",
		    c->url, strerror(errno));
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		*retry = e == ENOENT || e == ECONNREFUSED || e == EAGAIN ||
		    e == EINTR;
		return client_fail(ei, KMS_ETRANSPORT, "%s: %s", c->url,
		    strerror(e));
	}
	/* A daemon that is starting or stopping may hang up here: retry. */
	if (write_full(fd, &iov, 1, deadline) != 0 ||
	    sp_read_full(fd, peer, sizeof(peer), deadline) != 0) {
		close(fd);
		*retry = 1;
		return client_fail(ei, KMS_ETRANSPORT, "%s: the handshake "
		    "failed", c->url);
	}
	if (!sp_hello_is(peer, SP_REP0)) {
		close(fd);
		return client_fail(ei, KMS_ETRANSPORT, "%s does not speak "
		    "kmsd's protocol", c->url);
	}
	*fdp = fd;
	return 0;
}

/*
 * The connection for a call, with a reference the caller drops: the open
 * one, or a new one made within the deadline, retrying while nobody
 * listens.  Only one thread connects at a time; the others wait for it.
 */
static int
conn_get(kms_client *c, uint64_t deadline, struct conn **cnp,
    kms_error_info *ei)
{
	struct conn *cn, *old = NULL;
	struct reader_arg *ra;
	int fd = -1, retry, r, wait_ms = CLIENT_REDIAL_MIN_MS;

	/* The usual case: connected. */
	pthread_mutex_lock(&c->mu);
	if (c->conn != NULL && c->conn->gen != atomic_load(&fork_gen)) {
		conn_inherited(c);
	}
	if ((cn = c->conn) != NULL && !cn->dead) {
		cn->refs++;
		pthread_mutex_unlock(&c->mu);
		*cnp = cn;
		return 0;
	}
	pthread_mutex_unlock(&c->mu);

	/* Connect, unless another thread did while this one waited. */
	pthread_mutex_lock(&c->cmu);
	pthread_mutex_lock(&c->mu);
	if ((cn = c->conn) != NULL && !cn->dead) {
		cn->refs++;
		pthread_mutex_unlock(&c->mu);
		pthread_mutex_unlock(&c->cmu);
		*cnp = cn;
		return 0;
	}
	old = cn;
	c->conn = NULL;
	pthread_mutex_unlock(&c->mu);
	if (old != NULL) {
		conn_retire(c, old);
	}
	for (;;) {
		if ((r = dial_once(c, deadline, &fd, &retry, ei)) == 0) {
			break;
		}
		if (!retry || (deadline != 0 &&
		    mono_ms() + (uint64_t)wait_ms >= deadline)) {
			pthread_mutex_unlock(&c->cmu);
			if (retry) {
				return client_fail(ei, KMS_ETRANSPORT, "Could "
				    "not connect to the endpoint URL: \"%s\"",
				    c->url);
			}
			return r;
		}
		usleep((useconds_t)wait_ms * 1000);
		wait_ms = wait_ms * 2 > CLIENT_REDIAL_MAX_MS ?
		    CLIENT_REDIAL_MAX_MS : wait_ms * 2;
	}
	if ((cn = calloc(1, sizeof(*cn))) == NULL ||
	    (ra = malloc(sizeof(*ra))) == NULL) {
		free(cn);
		close(fd);
		pthread_mutex_unlock(&c->cmu);
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	cn->fd = fd;
	cn->gen = atomic_load(&fork_gen);
	cn->refs = 2;		/* the client's and the caller's */
	pthread_mutex_init(&cn->wmu, NULL);
	ra->c = c;
	ra->cn = cn;
	if (pthread_create(&cn->reader, NULL, reader_main, ra) != 0) {
		free(ra);
		close(fd);
		pthread_mutex_destroy(&cn->wmu);
		free(cn);
		pthread_mutex_unlock(&c->cmu);
		return client_fail(ei, KMS_ENOMEM, "Cannot start the reader");
	}
	pthread_mutex_lock(&c->mu);
	c->conn = cn;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->cmu);
	*cnp = cn;
	return 0;
}

/* Take pd off the client's list, c->mu held. */
static void
pending_remove(kms_client *c, struct pending *pd)
{
	struct pending **pp;

	for (pp = &c->pending; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == pd) {
			*pp = pd->next;
			return;
		}
	}
}

/*
 * Send the frame in buf (SP_FRAME_HDR + SP_ID_LEN bytes of room, then len
 * bytes of request) and wait for the reply.  On 0, *replyp holds the
 * payload after the id (*lenp bytes, room for a NUL after it; wipe and
 * free with kms_free).  The call's timeout covers both; the connect
 * timeout, when set, bounds the wait for a connection.
 */
static int
transact(kms_client *c, uint8_t *buf, size_t len, uint8_t **replyp,
    size_t *lenp, kms_error_info *ei)
{
	struct pending pd = { 0 };
	struct conn *cn = NULL;
	struct iovec iov;
	pthread_condattr_t ca;
	struct timespec ts;
	uint64_t deadline = 0, cdeadline;
	int timeout, ctimeout, r, sent, wr = 0;

	pthread_mutex_lock(&c->mu);
	timeout = c->timeout_ms;
	ctimeout = c->connect_timeout_ms;
	pthread_mutex_unlock(&c->mu);
	if (timeout > 0) {
		deadline = mono_ms() + (uint64_t)timeout;
	}
	cdeadline = deadline;
	if (ctimeout > 0 && (timeout == 0 || ctimeout < timeout)) {
		cdeadline = mono_ms() + (uint64_t)ctimeout;
	}
	if ((r = conn_get(c, cdeadline, &cn, ei)) != 0) {
		return r;
	}

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pd.cv, &ca);
	pthread_condattr_destroy(&ca);
	pd.conn = cn;
	pthread_mutex_lock(&c->mu);
	/* A connection that died since conn_get: fail as if in flight. */
	pd.state = cn->dead ? P_LOST : P_WAIT;
	sent = pd.state == P_WAIT;
	pd.id = ++c->next_id | 0x80000000u;
	c->nrequests++;
	pd.next = c->pending;
	c->pending = &pd;
	pthread_mutex_unlock(&c->mu);

	sp_frame_hdr(buf, (uint64_t)len + SP_ID_LEN);
	put_u32_be(buf + SP_FRAME_HDR, pd.id);
	iov.iov_base = buf;
	iov.iov_len = SP_FRAME_HDR + SP_ID_LEN + len;
	if (sent) {
		pthread_mutex_lock(&cn->wmu);
		wr = write_full(cn->fd, &iov, 1, deadline);
		pthread_mutex_unlock(&cn->wmu);
		sent = wr == 0;
	}

	pthread_mutex_lock(&c->mu);
	if (!sent && pd.state == P_WAIT) {
		/* A frame cut short leaves the stream unusable. */
		shutdown(cn->fd, SHUT_RDWR);
		conn_lost(c, cn);
	}
	ts.tv_sec = (time_t)(deadline / 1000);
	ts.tv_nsec = (long)(deadline % 1000) * 1000000L;
	while (pd.state == P_WAIT) {
		if (deadline == 0) {
			pthread_cond_wait(&pd.cv, &c->mu);
		} else if (pthread_cond_timedwait(&pd.cv, &c->mu, &ts) ==
		    ETIMEDOUT) {
			break;
		}
	}
	pending_remove(c, &pd);
	conn_unref(cn);
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&pd.cv);

	if (pd.state == P_DONE) {
		*replyp = pd.reply;
		*lenp = pd.len;
		return 0;
	}
	if (pd.state == P_LOST && wr != -2) {
		return client_fail(ei, KMS_ETRANSPORT, "The connection to %s "
		    "dropped during the request; it may or may not have been "
		    "processed", c->url);
	}
	return client_fail(ei, KMS_ETIMEDOUT, "No reply from %s within the "
	    "timeout", c->url);
}

/* A frame buffer holding len bytes of req after the header's room. */
static int
request_frame(const void *req, size_t len, uint8_t **bufp,
    kms_error_info *ei)
{
	uint8_t *b;

	if (len > JSON_MAX_MESSAGE) {
		return client_fail(ei, KMS_EINVAL, "The request is %zu bytes; "
		    "a message holds at most %d", len, JSON_MAX_MESSAGE);
	}
	if ((b = malloc(SP_FRAME_HDR + SP_ID_LEN + len)) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	if (len > 0) {
		memcpy(b + SP_FRAME_HDR + SP_ID_LEN, req, len);
	}
	*bufp = b;
	return 0;
}

int
client_roundtrip(kms_client *c, const void *req, size_t len, char **bodyp,
    size_t *lenp, kms_error_info *ei)
{
	uint8_t *b = NULL, *reply = NULL;
	size_t n = 0;
	int r;

	if ((r = request_frame(req, len, &b, ei)) != 0) {
		return r;
	}
	r = transact(c, b, len, &reply, &n, ei);
	wipe_free(b, SP_FRAME_HDR + SP_ID_LEN + len);
	if (r != 0) {
		return r;
	}
	*bodyp = (char *)reply;
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

/* Parse a reply (wiped and freed here) and classify it. */
static int
parse_reply(uint8_t *rep, size_t n, json_t **replyp, kms_error_info *ei)
{
	char msg[256];
	json_t *j;
	int err = 0, r;

	j = kjson_read_bounded((const char *)rep, n, JSON_MAX_REPLY, &err,
	    msg, sizeof(msg));
	wipe_free(rep, n);
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
	const size_t room = SP_FRAME_HDR + SP_ID_LEN;
	uint8_t *b, *nb, *rep = NULL;
	size_t n, guess = atomic_load(&c->req_hint), rn = 0;
	int r;

	client_ok(ei);
	/* One pass of the compact writer into a frame of a likely size (a
	 * recent request's, so Batches of one size fit too); a second, into
	 * one of the exact size, only when it did not fit. */
	if (guess < CLIENT_REQ_GUESS || guess > JSON_MAX_MESSAGE) {
		guess = CLIENT_REQ_GUESS;
	}
	if ((b = malloc(room + guess)) == NULL) {
		return client_fail(ei, KMS_ENOMEM, "Out of memory");
	}
	n = kjson_write_compact(req, (char *)b + room, guess);
	if (n > guess && n <= JSON_MAX_MESSAGE) {
		/* The partial text may hold a plaintext: wipe, then grow. */
		nb = malloc(room + n);
		wipe_free(b, room + guess);
		if ((b = nb) == NULL) {
			return client_fail(ei, KMS_ENOMEM, "Out of memory");
		}
		guess = n;
		if (kjson_write_compact(req, (char *)b + room, n) != n) {
			n = 0;
		}
	}
	if (n == 0) {
		wipe_free(b, room + guess);
		return client_fail(ei, KMS_ENOMEM, "Cannot serialise the "
		    "request");
	}
	if (n > JSON_MAX_MESSAGE) {
		wipe_free(b, room + guess);
		return client_fail(ei, KMS_EINVAL, "The request is %zu bytes; "
		    "a message holds at most %d", n, JSON_MAX_MESSAGE);
	}
	atomic_store(&c->req_hint, n + n / 8);
	r = transact(c, b, n, &rep, &rn, ei);
	wipe_free(b, room + guess);
	if (r != 0) {
		return r;
	}
	return parse_reply(rep, rn, replyp, ei);
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
	j = kjson_read_bounded(body, n, JSON_MAX_REPLY, &err, msg,
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

KMS_API uint64_t
kms_client_requests(kms_client *c)
{
	uint64_t n;

	if (c == NULL) {
		return 0;
	}
	pthread_mutex_lock(&c->mu);
	n = c->nrequests;
	pthread_mutex_unlock(&c->mu);
	return n;
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
