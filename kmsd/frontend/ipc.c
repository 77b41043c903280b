/*
 * ipc.c — the front end: kmsd's own listener on the IPC socket,
 * speaking nng's req0/rep0 wire protocol (common/sp.h), a pool of workers
 * each owning an HSM session and a store connection, and a scheduler
 * thread for the HSM and housekeeping.  The caller's identity comes from
 * the kernel (SO_PEERCRED, read once per connection), never from the
 * request.
 *
 * Why not nng's rep0: nng 1.5.2 (Debian 12) deadlocks closing a
 * connection whose transport is between a message's header and its body
 * (fixed in nng 1.8), which a client killed mid-call triggers, and stops
 * accepting for good when a peer hangs up during the handshake (#1518,
 * fixed in 1.6).  The wire is unchanged: nng's req0 clients and
 * libkmsclient both talk to this listener.
 *
 * Threads and ownership.  Every worker waits in epoll_wait on one shared
 * epoll set (leader/followers: the worker woken by a request serves it,
 * with no hand-off), which holds the listening socket, each connection's
 * socket (EPOLLONESHOT: one worker at a time reads a connection), the
 * write side of connections with unsent replies (a dup of the socket,
 * EPOLLONESHOT), a queue eventfd and a stop eventfd.  A worker reading a
 * connection copies out every complete request, re-arms the connection,
 * queues all but the first request for other workers and serves the
 * first; so requests pipelined on one connection run in parallel, and
 * replies go out in any order (req0 matches them by request id).  A
 * connection is parked (not read) while it has CONN_INFLIGHT requests in
 * the works or CONN_OUT_HIGH bytes of replies its peer has not read, so
 * one client cannot take the daemon's memory or all its workers.
 *
 * Lifetime.  Only the worker holding a connection's read side closes it
 * (end of stream, error or protocol violation); its requests in flight
 * keep the structure (c->inflight) and are not served once it is dead.
 * A write event may still be in another worker's hands when the
 * connection dies, so dead connections are freed by the scheduler only
 * once every worker has begun a new pass of its loop (a grace period, as
 * in RCU; workers pass at least every IDLE_PASS_MS).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/be.h"
#include "common/err.h"
#include "common/json.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "common/log.h"
#include "kmsd/audit/audit.h"
#include "kmsd/kmsd.h"

#define CONN_INFLIGHT 64	/* requests of one connection in the works */
#define CONN_OUT_HIGH (2u << 20)	/* unread reply bytes: stop reading */
#define READ_BUDGET (256u << 10)	/* bytes read per turn (fairness) */
#define RBUF_MIN 4096
#define SP_TTL 8		/* backtrace words, as nng's rep0 */
#define FRAME_MAX (JSON_MAX_MESSAGE + SP_TTL * SP_ID_LEN)
#define HELLO_MS 10000		/* a peer must complete its handshake */
#define IDLE_PASS_MS 500	/* bounds the grace period */
#define WATCH_MS 200		/* scheduler tick */
#define REPLY_MIN 16384

enum { EV_LISTEN, EV_QUEUE, EV_STOP, EV_READ, EV_WRITE };
enum { Q_REQ, Q_CONN };

struct ev {
	int kind;
};

struct qitem {
	struct qitem *next;
	int kind;
};

struct server;

struct conn {
	struct ev rev, wev;
	struct qitem q;			/* Q_CONN: read on (unparked) */
	struct server *sv;
	struct conn *prev, *next;	/* sv->conns, or a grave list */
	uint64_t uid, gid, pid;		/* the kernel's word, at accept */
	uint64_t born_ms;
	atomic_int ready;		/* handshake done */
	atomic_int dead;
	int hs_killed;			/* handshake timed out (sched) */
	/* Read side: only the worker holding it (EPOLLONESHOT, or a queued
	 * Q_CONN) touches these. */
	uint8_t hello[SP_HELLO_LEN];
	size_t hello_got;
	uint8_t *rbuf;
	size_t rlen, rcap;
	/* Under mu: everything below, and the descriptors' validity. */
	pthread_mutex_t mu;
	int fd, wfd;			/* wfd: dup of fd for EPOLLOUT */
	int warmed;			/* wfd armed */
	int parked;			/* not read until unparked */
	int werr;			/* a send failed: peer gone */
	int inflight;
	uint8_t *out;			/* unsent replies: out[ooff..olen) */
	size_t ooff, olen, ocap;
};

struct req {
	struct qitem q;			/* Q_REQ */
	struct conn *c;
	size_t idlen, len;
	uint8_t data[];			/* backtrace, then the request */
};

struct srv_worker {
	struct worker w;
	struct server *sv;
	pthread_t thr;
	int started;
	atomic_uint_fast64_t pass;	/* loop passes (grace periods) */
	uint8_t *rep;			/* reply frames are built here */
	size_t repcap;
};

struct server {
	struct kmsd *d;
	int ep, lfd, qfd, sfd;
	struct ev lev, qev, sev;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct srv_worker *ws;
	int nws;
	/* The queue: requests for any worker, and connections to read. */
	pthread_mutex_t qmu;
	struct qitem *qhead, **qtail;
	/* Connections, live and dead; accept pausing. */
	pthread_mutex_t mu;
	struct conn *conns;
	struct conn *grave_new, *grave_wait;
	uint64_t *grave_snap;		/* workers' passes when it began */
	uint64_t accept_paused_ms;	/* 0: accepting */
	uint64_t accept_logged_ms;	/* last said so */
	/* Scheduler. */
	pthread_t sched;
	pthread_mutex_t smu;
	pthread_cond_t scv;
	int sched_stop;
};

#define CONN_OF(p, member) \
	((struct conn *)(void *)((char *)(p) - offsetof(struct conn, member)))

/* ---- the queue ---- */

static void
queue_push(struct server *sv, struct qitem *head, struct qitem **tail,
    uint64_t n)
{
	if (n == 0) {
		return;
	}
	pthread_mutex_lock(&sv->qmu);
	*sv->qtail = head;
	sv->qtail = tail;
	pthread_mutex_unlock(&sv->qmu);
	/* Semaphore mode: one wake-up per item.  It cannot overflow. */
	if (write(sv->qfd, &n, sizeof(n)) < 0) {
		log_error("queue eventfd: %s", strerror(errno));
	}
}

static struct qitem *
queue_pop(struct server *sv)
{
	struct qitem *q;

	pthread_mutex_lock(&sv->qmu);
	if ((q = sv->qhead) != NULL && (sv->qhead = q->next) == NULL) {
		sv->qtail = &sv->qhead;
	}
	pthread_mutex_unlock(&sv->qmu);
	if (q != NULL) {
		q->next = NULL;
	}
	return q;
}

/* ---- connections ---- */

static void
rearm(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP |
	    EPOLLONESHOT, .data.ptr = &c->rev };

	(void)epoll_ctl(c->sv->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* c->mu held: move c to the grave (its memory outlives stale events). */
static void
grave_push(struct conn *c)
{
	struct server *sv = c->sv;

	pthread_mutex_lock(&sv->mu);
	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else {
		sv->conns = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	}
	c->prev = NULL;
	c->next = sv->grave_new;
	sv->grave_new = c;
	pthread_mutex_unlock(&sv->mu);
}

/* c->mu held: read c again if it is parked and may be read. */
static void
unpark(struct conn *c)
{
	if (c->parked && !atomic_load(&c->dead) &&
	    c->inflight < CONN_INFLIGHT && c->olen - c->ooff < CONN_OUT_HIGH) {
		c->parked = 0;
		/* Requests may wait in its buffer: a worker reads it. */
		c->q.kind = Q_CONN;
		c->q.next = NULL;
		queue_push(c->sv, &c->q, &c->q.next, 1);
	}
}

/* The read side's holder: close c.  Its requests in flight end unserved. */
static void
conn_kill(struct conn *c)
{
	pthread_mutex_lock(&c->mu);
	atomic_store(&c->dead, 1);
	(void)epoll_ctl(c->sv->ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->wfd >= 0) {
		(void)epoll_ctl(c->sv->ep, EPOLL_CTL_DEL, c->wfd, NULL);
		close(c->wfd);
		c->wfd = -1;
	}
	close(c->fd);
	c->fd = -1;
	wipe_free(c->rbuf, c->rcap);
	c->rbuf = NULL;
	c->rlen = c->rcap = 0;
	wipe_free(c->out, c->ocap);
	c->out = NULL;
	c->ooff = c->olen = c->ocap = 0;
	if (c->inflight == 0) {
		grave_push(c);
	}
	pthread_mutex_unlock(&c->mu);
}

static void
conn_free(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
	}
	if (c->wfd >= 0) {
		close(c->wfd);
	}
	wipe_free(c->rbuf, c->rcap);
	wipe_free(c->out, c->ocap);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* c->mu held: keep len bytes of p to send when the peer reads. */
static int
out_append(struct conn *c, const uint8_t *p, size_t len)
{
	uint8_t *n;
	size_t have = c->olen - c->ooff, cap;

	if (c->ooff > 0) {
		memmove(c->out, c->out + c->ooff, have);
		secure_wipe(c->out + have, c->olen - have);
		c->ooff = 0;
		c->olen = have;
	}
	if (have + len > c->ocap) {
		for (cap = c->ocap ? c->ocap : RBUF_MIN; cap < have + len;
		    cap *= 2) {
		}
		if ((n = malloc(cap)) == NULL) {
			return -1;
		}
		if (have > 0) {
			memcpy(n, c->out, have);
		}
		wipe_free(c->out, c->ocap);
		c->out = n;
		c->ocap = cap;
	}
	memcpy(c->out + have, p, len);
	c->olen = have + len;
	return 0;
}

/* c->mu held: a send failed for good; the read side will see the end. */
static void
send_failed(struct conn *c)
{
	c->werr = 1;
	(void)shutdown(c->fd, SHUT_RDWR);
	if (c->out != NULL) {
		secure_wipe(c->out, c->ocap);
	}
	c->ooff = c->olen = 0;
}

/* c->mu held: wait for the peer to read (one event, any worker). */
static void
arm_write(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLONESHOT,
	    .data.ptr = &c->wev };

	if (c->warmed) {
		return;
	}
	if (c->wfd < 0) {
		if ((c->wfd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0)) < 0 ||
		    epoll_ctl(c->sv->ep, EPOLL_CTL_ADD, c->wfd, &ev) != 0) {
			send_failed(c);
			return;
		}
	} else if (epoll_ctl(c->sv->ep, EPOLL_CTL_MOD, c->wfd, &ev) != 0) {
		send_failed(c);
		return;
	}
	c->warmed = 1;
}

/* c->mu held: send what is pending; 0 when all of it went. */
static void
out_flush(struct conn *c)
{
	ssize_t n;

	while (c->ooff < c->olen) {
		n = send(c->fd, c->out + c->ooff, c->olen - c->ooff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			secure_wipe(c->out + c->ooff, (size_t)n);
			c->ooff += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN ||
		    errno == EWOULDBLOCK)) {
			arm_write(c);
			return;
		} else {
			send_failed(c);
			return;
		}
	}
	c->ooff = c->olen = 0;
	if (c->ocap > 4 * REPLY_MIN) {
		wipe_free(c->out, c->ocap);	/* wiped already; cheap */
		c->out = NULL;
		c->ocap = 0;
	}
}

/* A reply frame: straight out when the connection is idle, else queued
 * behind what is pending. */
static void
conn_send(struct conn *c, const uint8_t *p, size_t len)
{
	ssize_t n = 0;

	pthread_mutex_lock(&c->mu);
	if (atomic_load(&c->dead) || c->werr) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	if (c->olen == c->ooff) {
		do {
			n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			send_failed(c);
			pthread_mutex_unlock(&c->mu);
			return;
		}
		if (n < 0) {
			n = 0;
		}
	}
	if ((size_t)n < len) {
		if (out_append(c, p + n, len - (size_t)n) != 0) {
			/* A reply cut short cannot be resynchronised. */
			send_failed(c);
		} else {
			arm_write(c);
		}
	}
	pthread_mutex_unlock(&c->mu);
}

/* A request of c is over (served, or dropped). */
static void
conn_done(struct conn *c)
{
	pthread_mutex_lock(&c->mu);
	c->inflight--;
	if (atomic_load(&c->dead)) {
		if (c->inflight == 0) {
			grave_push(c);
		}
	} else {
		unpark(c);
	}
	pthread_mutex_unlock(&c->mu);
}

/* The peer read some replies. */
static void
conn_writable(struct conn *c)
{
	pthread_mutex_lock(&c->mu);
	if (!atomic_load(&c->dead)) {	/* else a stale event */
		c->warmed = 0;
		if (!c->werr) {
			out_flush(c);
		}
		unpark(c);
	}
	pthread_mutex_unlock(&c->mu);
}

/*
 * The next complete request in c's buffer, copied out (and wiped there):
 * 1 and *out; 0 when none is complete yet (*need: the buffer size that
 * would hold it); -1 when the peer breaks the protocol.
 */
static int
next_request(struct conn *c, struct req **out, size_t *need)
{
	uint64_t len;
	size_t idlen, flen;
	struct req *r;

	*need = SP_FRAME_HDR;
	if (c->rlen < SP_FRAME_HDR) {
		return 0;
	}
	if (sp_frame_len(c->rbuf, &len) != 0 || len > FRAME_MAX) {
		return -1;
	}
	flen = SP_FRAME_HDR + (size_t)len;
	*need = flen;
	if (c->rlen < flen) {
		return 0;
	}
	/* The backtrace: words up to one with the high bit set. */
	for (idlen = 0;; idlen += SP_ID_LEN) {
		if (idlen + SP_ID_LEN > len || idlen >= SP_TTL * SP_ID_LEN) {
			return -1;
		}
		if (c->rbuf[SP_FRAME_HDR + idlen] & 0x80) {
			idlen += SP_ID_LEN;
			break;
		}
	}
	if ((r = malloc(sizeof(*r) + (size_t)len)) == NULL) {
		return -1;
	}
	r->q.kind = Q_REQ;
	r->q.next = NULL;
	r->c = c;
	r->idlen = idlen;
	r->len = (size_t)len - idlen;
	memcpy(r->data, c->rbuf + SP_FRAME_HDR, (size_t)len);
	/* The request may carry a plaintext. */
	secure_wipe(c->rbuf, flen);
	memmove(c->rbuf, c->rbuf + flen, c->rlen - flen);
	secure_wipe(c->rbuf + c->rlen - flen, flen);
	c->rlen -= flen;
	*out = r;
	return 1;
}

static void
req_free(struct req *r)
{
	wipe_free(r, sizeof(*r) + r->idlen + r->len);
}

/* Make room for need bytes in c's buffer. */
static int
rbuf_reserve(struct conn *c, size_t need)
{
	uint8_t *n;
	size_t cap;

	if (need <= c->rcap) {
		return 0;
	}
	cap = need < RBUF_MIN ? RBUF_MIN : need;
	if ((n = malloc(cap)) == NULL) {
		return -1;
	}
	if (c->rlen > 0) {
		memcpy(n, c->rbuf, c->rlen);
	}
	wipe_free(c->rbuf, c->rcap);
	c->rbuf = n;
	c->rcap = cap;
	return 0;
}

static void serve(struct srv_worker *, struct req *);

/*
 * Read c (its read side is ours): the handshake, then every complete
 * request, within READ_BUDGET and CONN_INFLIGHT.  All but the first go to
 * the queue; c is re-armed (or parked); then the first is served here.
 */
static void
conn_read(struct srv_worker *sw, struct conn *c)
{
	struct qitem *head = NULL, **tail = &head;
	struct req *first = NULL, *r;
	size_t budget = READ_BUDGET, need = 0, room;
	uint64_t nq = 0;
	int base, n_req, broken = 0, drained = 0, full = 0, rv;
	ssize_t n;

	pthread_mutex_lock(&c->mu);
	base = c->inflight;	/* counts against the cap below */
	pthread_mutex_unlock(&c->mu);
	n_req = base;
	while (!atomic_load(&c->ready)) {
		n = recv(c->fd, c->hello + c->hello_got,
		    SP_HELLO_LEN - c->hello_got, 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			goto rearm;
		}
		if (n <= 0) {
			goto kill;
		}
		if ((c->hello_got += (size_t)n) == SP_HELLO_LEN) {
			if (!sp_hello_is(c->hello, SP_REQ0)) {
				goto kill;
			}
			atomic_store(&c->ready, 1);
		}
	}
	for (;;) {
		while (n_req < CONN_INFLIGHT &&
		    (rv = next_request(c, &r, &need)) != 0) {
			if (rv < 0) {
				broken = 1;
				break;
			}
			n_req++;
			if (first == NULL) {
				first = r;
			} else {
				*tail = &r->q;
				tail = &r->q.next;
				nq++;
			}
		}
		if (broken) {
			break;
		}
		if (n_req >= CONN_INFLIGHT) {
			full = 1;
			break;
		}
		if (drained || budget == 0) {
			break;
		}
		if (rbuf_reserve(c, need > RBUF_MIN ? need : RBUF_MIN) != 0) {
			broken = 1;
			break;
		}
		if ((room = c->rcap - c->rlen) == 0) {
			break;	/* cannot happen: a whole frame would fit */
		}
		n = recv(c->fd, c->rbuf + c->rlen, room, 0);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		}
		if (n <= 0) {
			broken = 1;	/* end of stream or error */
			break;
		}
		c->rlen += (size_t)n;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		/* A short read emptied the socket; parse, then stop. */
		drained = (size_t)n < room;
	}
	if (broken) {
		/* What it sent before is dropped: it cannot take replies. */
		if (first != NULL) {
			req_free(first);
		}
		while ((r = (struct req *)head) != NULL) {
			head = r->q.next;
			req_free(r);
		}
		goto kill;
	}
	if (c->rlen == 0 && c->rcap > RBUF_MIN) {
		wipe_free(c->rbuf, c->rcap);	/* after a big request */
		c->rbuf = NULL;
		c->rcap = 0;
	}
	pthread_mutex_lock(&c->mu);
	/* Completions may have run meanwhile: add, don't set. */
	c->inflight += n_req - base;
	if (full || c->olen - c->ooff >= CONN_OUT_HIGH) {
		c->parked = 1;
		unpark(c);	/* in case it drained meanwhile */
	} else {
		rearm(c);
	}
	pthread_mutex_unlock(&c->mu);
	queue_push(c->sv, head, tail, nq);
	if (first != NULL) {
		serve(sw, first);
	}
	return;
 rearm:
	pthread_mutex_lock(&c->mu);
	rearm(c);
	pthread_mutex_unlock(&c->mu);
	return;
 kill:
	conn_kill(c);
}

/* ---- serving ---- */

static json_t *
deny(const char *msg)
{
	return json_pack("{s:s, s:s}", "__type", "AccessDeniedException",
	    "message", msg);
}

/* sw->rep holds at least n bytes (its old content is wiped). */
static int
rep_reserve(struct srv_worker *sw, size_t n)
{
	uint8_t *p;

	if (n <= sw->repcap) {
		return 0;
	}
	if (n < REPLY_MIN) {
		n = REPLY_MIN;
	}
	if ((p = malloc(n)) == NULL) {
		return -1;
	}
	wipe_free(sw->rep, sw->repcap);
	sw->rep = p;
	sw->repcap = n;
	return 0;
}

/* Answer one request; the reply frame goes to its connection. */
static void
serve(struct srv_worker *sw, struct req *r)
{
	static const char oom[] = "{\"__type\":\"KMSInternalException\","
	    "\"message\":\"out of memory\"}";
	struct conn *c = r->c;
	struct principal p;
	size_t head = SP_FRAME_HDR + r->idlen, n = 0;
	json_t *resp = NULL;

	if (atomic_load(&c->dead)) {
		goto out;	/* nobody to answer */
	}
	if (c->uid == (uint64_t)-1) {
		resp = deny("The caller's identity is unknown");
		if (audit_request(sw->w.d, NULL, NULL, r->data + r->idlen,
		    r->len, resp) != 0) {
			json_decref(resp);
			resp = NULL;	/* not answered unrecorded */
		}
	} else {
		principal_from_uid(&p, (uid_t)c->uid, (gid_t)c->gid,
		    (pid_t)c->pid);
		resp = dispatch(&sw->w, &p, r->data + r->idlen, r->len);
	}
	atomic_fetch_add(&sw->w.d->requests, 1);
	/* Serialised once into the frame (a second time only when it did
	 * not fit); the partial text may hold a plaintext: rep_reserve
	 * wipes it. */
	if (resp != NULL && rep_reserve(sw, head + REPLY_MIN) == 0) {
		n = json_write_compact(resp, (char *)sw->rep + head, sw->repcap - head);
		if (n > sw->repcap - head && (rep_reserve(sw, head + n) != 0 ||
		    json_write_compact(resp, (char *)sw->rep + head, n) != n)) {
			n = 0;
		}
	}
	json_decref(resp);
	if (n == 0) {
		if (rep_reserve(sw, head + sizeof(oom)) != 0) {
			goto out;	/* cannot even say so: drop it */
		}
		n = sizeof(oom) - 1;
		memcpy(sw->rep + head, oom, n);
	}
	sp_frame_hdr(sw->rep, r->idlen + n);
	memcpy(sw->rep + SP_FRAME_HDR, r->data, r->idlen);
	conn_send(c, sw->rep, head + n);
	secure_wipe(sw->rep, head + n);
 out:
	req_free(r);
	conn_done(c);
}

/* ---- accepting ---- */

static void
conn_new(struct server *sv, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP |
	    EPOLLONESHOT };
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	uint8_t hello[SP_HELLO_LEN];
	struct conn *c;

	sp_hello(hello, SP_REP0);
	if (send(fd, hello, sizeof(hello), MSG_NOSIGNAL | MSG_DONTWAIT) !=
	    (ssize_t)sizeof(hello) || (c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->rev.kind = EV_READ;
	c->wev.kind = EV_WRITE;
	c->sv = sv;
	c->fd = fd;
	c->wfd = -1;
	c->born_ms = mono_ms();
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0) {
		c->uid = cr.uid;
		c->gid = cr.gid;
		c->pid = cr.pid > 0 ? (uint64_t)cr.pid : 0;
	} else {
		c->uid = (uint64_t)-1;	/* every request is refused */
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_lock(&sv->mu);
	if ((c->next = sv->conns) != NULL) {
		sv->conns->prev = c;
	}
	sv->conns = c;
	pthread_mutex_unlock(&sv->mu);
	ev.data.ptr = &c->rev;
	if (epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		conn_kill(c);	/* not registered: nobody else has it */
	}
}

static void
listener_arm(struct server *sv)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT,
	    .data.ptr = &sv->lev };

	(void)epoll_ctl(sv->ep, EPOLL_CTL_MOD, sv->lfd, &ev);
}

static void
do_accept(struct server *sv)
{
	int i, fd;

	for (i = 0; i < 64; i++) {
		fd = accept4(sv->lfd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_new(sv, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED ||
		    errno == EPROTO) {
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* Out of descriptors: the scheduler listens again
			 * in a while rather than spin on the backlog. */
			pthread_mutex_lock(&sv->mu);
			sv->accept_paused_ms = mono_ms();
			if (sv->accept_logged_ms == 0 || sv->accept_paused_ms -
			    sv->accept_logged_ms >= 10000) {
				/* Once per 10 s of it, not per retry. */
				sv->accept_logged_ms = sv->accept_paused_ms;
				log_warn("accept: %s; pausing "
				    "new connections", strerror(errno));
			}
			pthread_mutex_unlock(&sv->mu);
			return;
		}
		break;		/* EAGAIN, or nothing we can act on */
	}
	listener_arm(sv);
}

static int
listener_open(struct server *sv, char *err, size_t errlen)
{
	struct kmsd *d = sv->d;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = d->cfg.listen + 6;
	mode_t old;
	int fd, probe, rv;

	if (strncmp(d->cfg.listen, "ipc://", 6) != 0 ||
	    strlen(path) == 0 || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "listen %s: not an ipc:// path that "
		    "fits a socket address", d->cfg.listen);
		return KMS_EINVAL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return KMS_EINTERNAL;
	}
	/* Created with its final mode: no moment where others may connect. */
	old = umask(0777 & ~(mode_t)d->cfg.socket_mode);
	rv = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (rv != 0 && errno == EADDRINUSE) {
		/* A socket file: a live kmsd's, or one left by a crash. */
		if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0))
		    >= 0) {
			if (connect(probe, (struct sockaddr *)&sa,
			    sizeof(sa)) != 0 && errno == ECONNREFUSED) {
				(void)unlink(path);
				rv = bind(fd, (struct sockaddr *)&sa,
				    sizeof(sa));
			} else {
				errno = EADDRINUSE;
			}
			close(probe);
		}
	}
	umask(old);
	if (rv != 0) {
		snprintf(err, errlen, "listen %s: %s%s", d->cfg.listen,
		    strerror(errno), errno == EADDRINUSE ?
		    " (is another kmsd serving it?)" : "");
		close(fd);
		return KMS_EINTERNAL;
	}
	if (chmod(path, (mode_t)d->cfg.socket_mode) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "listen %s: %s", d->cfg.listen,
		    strerror(errno));
		(void)unlink(path);
		close(fd);
		return KMS_EINTERNAL;
	}
	snprintf(sv->path, sizeof(sv->path), "%s", path);
	sv->lfd = fd;
	return 0;
}

/* ---- workers ---- */

static void
handle(struct srv_worker *sw, struct ev *e)
{
	struct server *sv = sw->sv;
	struct qitem *q;
	uint64_t v;

	switch (e->kind) {
	case EV_LISTEN:
		do_accept(sv);
		break;
	case EV_READ:
		conn_read(sw, CONN_OF(e, rev));
		break;
	case EV_WRITE:
		conn_writable(CONN_OF(e, wev));
		break;
	case EV_QUEUE:
		if (read(sv->qfd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
			break;	/* another worker took it */
		}
		if ((q = queue_pop(sv)) == NULL) {
			break;
		}
		if (q->kind == Q_REQ) {
			serve(sw, (struct req *)q);
		} else {
			conn_read(sw, CONN_OF(q, q));
		}
		break;
	default:
		break;		/* EV_STOP: the loop sees it */
	}
}

static void *
worker_main(void *arg)
{
	struct srv_worker *sw = arg;
	struct server *sv = sw->sv;
	struct epoll_event ev;

	while (!atomic_load(&sv->d->stopping)) {
		atomic_fetch_add(&sw->pass, 1);
		if (epoll_wait(sv->ep, &ev, 1, IDLE_PASS_MS) == 1) {
			handle(sw, ev.data.ptr);
		}
	}
	return NULL;
}

/* ---- the scheduler ---- */

/* Free connections no worker can still hold an event for. */
static void
grave_sweep(struct server *sv)
{
	struct conn *c, *n, *done = NULL;
	int i, passed = 1;

	pthread_mutex_lock(&sv->mu);
	if (sv->grave_wait != NULL) {
		for (i = 0; i < sv->nws; i++) {
			if (atomic_load(&sv->ws[i].pass) <= sv->grave_snap[i]) {
				passed = 0;
			}
		}
		if (passed) {
			done = sv->grave_wait;
			sv->grave_wait = NULL;
		}
	}
	if (sv->grave_wait == NULL && sv->grave_new != NULL) {
		sv->grave_wait = sv->grave_new;
		sv->grave_new = NULL;
		for (i = 0; i < sv->nws; i++) {
			sv->grave_snap[i] = atomic_load(&sv->ws[i].pass);
		}
	}
	pthread_mutex_unlock(&sv->mu);
	for (c = done; c != NULL; c = n) {
		n = c->next;
		conn_free(c);
	}
}

/* Hang up on peers that have not completed the handshake in time: the
 * worker that sees the end of stream closes them. */
static void
hello_sweep(struct server *sv)
{
	uint64_t now = mono_ms();
	struct conn *c;

	pthread_mutex_lock(&sv->mu);
	for (c = sv->conns; c != NULL; c = c->next) {
		if (atomic_load(&c->ready) || c->hs_killed ||
		    now - c->born_ms < HELLO_MS ||
		    pthread_mutex_trylock(&c->mu) != 0) {
			continue;
		}
		if (!atomic_load(&c->dead)) {
			(void)shutdown(c->fd, SHUT_RDWR);
		}
		c->hs_killed = 1;
		pthread_mutex_unlock(&c->mu);
	}
	if (sv->accept_paused_ms != 0 &&
	    now - sv->accept_paused_ms >= WATCH_MS) {
		sv->accept_paused_ms = 0;
		listener_arm(sv);
	}
	pthread_mutex_unlock(&sv->mu);
}

static void *
sched_main(void *arg)
{
	struct server *sv = arg;
	struct timespec ts;

	pthread_mutex_lock(&sv->smu);
	while (!sv->sched_stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)WATCH_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&sv->scv, &sv->smu, &ts);
		if (sv->sched_stop) {
			break;
		}
		pthread_mutex_unlock(&sv->smu);
		grave_sweep(sv);
		hello_sweep(sv);
		kmsd_hsm_tend(sv->d);	/* recovery, module recycling */
		pthread_mutex_lock(&sv->smu);
	}
	pthread_mutex_unlock(&sv->smu);
	return NULL;
}

/* ---- life ---- */

static int
ep_add(struct server *sv, int fd, uint32_t events, struct ev *e)
{
	struct epoll_event ev = { .events = events, .data.ptr = e };

	return epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Everything is stopped: free what is left. */
static void
server_free(struct server *sv)
{
	struct qitem *q;
	struct conn *c;

	while ((q = queue_pop(sv)) != NULL) {
		if (q->kind == Q_REQ) {
			req_free((struct req *)q);
		}
	}
	while ((c = sv->conns) != NULL) {
		sv->conns = c->next;
		conn_free(c);
	}
	while ((c = sv->grave_new) != NULL) {
		sv->grave_new = c->next;
		conn_free(c);
	}
	while ((c = sv->grave_wait) != NULL) {
		sv->grave_wait = c->next;
		conn_free(c);
	}
	if (sv->lfd >= 0) {
		close(sv->lfd);
		(void)unlink(sv->path);
	}
	if (sv->qfd >= 0) {
		close(sv->qfd);
	}
	if (sv->sfd >= 0) {
		close(sv->sfd);
	}
	if (sv->ep >= 0) {
		close(sv->ep);
	}
	free(sv->grave_snap);
	pthread_mutex_destroy(&sv->qmu);
	pthread_mutex_destroy(&sv->mu);
	pthread_mutex_destroy(&sv->smu);
	pthread_cond_destroy(&sv->scv);
}

int
server_run(struct kmsd *d, char *err, size_t errlen)
{
	static struct server sv;
	struct srv_worker *ws = NULL;
	sigset_t set;
	uint64_t one = 1;
	int i, sig, r = KMS_EINTERNAL, sched_started = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	memset(&sv, 0, sizeof(sv));
	sv.d = d;
	sv.ep = sv.lfd = sv.qfd = sv.sfd = -1;
	sv.lev.kind = EV_LISTEN;
	sv.qev.kind = EV_QUEUE;
	sv.sev.kind = EV_STOP;
	sv.qtail = &sv.qhead;
	pthread_mutex_init(&sv.qmu, NULL);
	pthread_mutex_init(&sv.mu, NULL);
	pthread_mutex_init(&sv.smu, NULL);
	pthread_cond_init(&sv.scv, NULL);
	if ((ws = calloc((size_t)d->cfg.workers, sizeof(*ws))) == NULL ||
	    (sv.grave_snap = calloc((size_t)d->cfg.workers,
	    sizeof(*sv.grave_snap))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	sv.ws = ws;
	sv.nws = d->cfg.workers;
	for (i = 0; i < d->cfg.workers; i++) {
		ws[i].sv = &sv;
		if ((r = worker_init(d, i, &ws[i].w, err, errlen)) != 0) {
			goto out;
		}
	}
	if ((r = keycache_startup(&ws[0].w, err, errlen)) != 0) {
		goto out;
	}
	r = KMS_EINTERNAL;
	if ((sv.ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (sv.qfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC |
	    EFD_SEMAPHORE)) < 0 ||
	    (sv.sfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto out;
	}
	if ((r = listener_open(&sv, err, errlen)) != 0) {
		goto out;
	}
	r = KMS_EINTERNAL;
	if (ep_add(&sv, sv.lfd, EPOLLIN | EPOLLONESHOT, &sv.lev) != 0 ||
	    ep_add(&sv, sv.qfd, EPOLLIN, &sv.qev) != 0 ||
	    ep_add(&sv, sv.sfd, EPOLLIN, &sv.sev) != 0) {
		snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < d->cfg.workers; i++) {
		if (pthread_create(&ws[i].thr, NULL, worker_main, &ws[i]) !=
		    0) {
			snprintf(err, errlen, "cannot start worker %d", i);
			goto out;
		}
		ws[i].started = 1;
	}
	if (pthread_create(&sv.sched, NULL, sched_main, &sv) != 0) {
		snprintf(err, errlen, "cannot start the scheduler");
		goto out;
	}
	sched_started = 1;
	printf("kmsd: ready on %s (%d workers, %s keys)\n", d->cfg.listen,
	    d->cfg.workers, d->cfg.key_storage == STORAGE_RESIDENT ?
	    "resident" : "wrapped");
	fflush(stdout);

	while (sigwait(&set, &sig) != 0) {
	}
	log_info("signal %d, stopping", sig);
	r = 0;
 out:
	/* Workers finish the request in hand; what is queued is dropped
	 * (its clients see the connection close). */
	atomic_store(&d->stopping, 1);
	if (sv.sfd >= 0 && write(sv.sfd, &one, sizeof(one)) < 0) {
		log_error("stop eventfd: %s", strerror(errno));
	}
	if (sched_started) {
		pthread_mutex_lock(&sv.smu);
		sv.sched_stop = 1;
		pthread_cond_signal(&sv.scv);
		pthread_mutex_unlock(&sv.smu);
		pthread_join(sv.sched, NULL);
	}
	if (ws != NULL) {
		for (i = 0; i < d->cfg.workers; i++) {
			if (ws[i].started) {
				pthread_join(ws[i].thr, NULL);
			}
		}
	}
	server_free(&sv);
	if (ws != NULL) {
		for (i = 0; i < d->cfg.workers; i++) {
			wipe_free(ws[i].rep, ws[i].repcap);
			worker_fini(&ws[i].w);
		}
		free(ws);
	}
	return r;
}
