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
 * Admission.  What one peer can make kmsd hold is bounded: a read buffer
 * grows with the bytes that arrive (doubling), never to the length a frame
 * header announces; a frame, once begun, must be complete within FRAME_MS
 * (time kmsd spends not reading it does not count); the buffers of all
 * connections together stay under max_buffered_input_mib, the ones whose
 * partial frames are oldest being dropped to make room; and one peer uid
 * holds at most max_connections_per_uid connections, its oldest dropped
 * for a new one.  A dropped connection is "doomed" under sv->amu (taken
 * off the lists, its buffer no longer counted), then shut down, its buffer
 * freed at once unless a worker is reading it; the worker that reads it
 * next closes it.  Each drop is logged (log_warn), at most
 * DROP_LOG_BURST lines per reason per DROP_LOG_MS, then a count.
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/be.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "kmsd/audit/audit.h"
#include "kmsd/daemon/daemon.h"
#include "kmsd/daemon/lifecycle.h"
#include "kmsd/daemon/service.h"
#include "kmsd/dispatch/dispatch.h"
#include "kmsd/frontend/http.h"
#include "kmsd/frontend/ipc.h"
#include "kmsd/frontend/metrics.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"

#define CONN_INFLIGHT 64	/* requests of one connection in the works */
#define CONN_OUT_HIGH (2u << 20)	/* unread reply bytes: stop reading */
#define READ_BUDGET (256u << 10)	/* bytes read per turn (fairness) */
#define RBUF_MIN 4096
#define RBUF_MAP_MIN (64u << 10)	/* read buffers this big are mapped */
#define FRAME_MAX (JSON_MAX_MESSAGE + SP_TTL * SP_ID_LEN)
#define HELLO_MS 10000		/* a peer must complete its handshake */
#define IDLE_PASS_MS 500	/* bounds the grace period */
#define WATCH_MS 200		/* scheduler tick */
#define REPLY_MIN 16384
#define FRAME_MS 10000		/* a frame, once begun, must be complete */
#define UID_BUCKETS 256		/* the per-uid table's hash (a power of 2) */
#define DROP_LOG_BURST 10	/* drop lines said per reason per window */
#define DROP_LOG_MS 10000	/* the window; then how many more went */

enum { EV_LISTEN, EV_QUEUE, EV_STOP, EV_READ, EV_WRITE };
enum { Q_REQ, Q_CONN };
/* Why a connection is dropped (the drop log's reasons). */
enum { DROP_LATE, DROP_BUFFERED, DROP_UID, DROP_NREASONS };

struct ev {
	int kind;
};

struct qitem {
	struct qitem *next;
	int kind;
};

struct server;
struct conn;

/* A peer uid's connections, oldest first (under sv->amu). */
struct uident {
	struct uident *next;		/* hash chain */
	uint64_t uid;
	unsigned n;
	struct conn *head, *tail;
};

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
	atomic_int doomed;		/* to be dropped: its reader closes it */
	atomic_uint_fast64_t frame_ms;	/* its partial frame began; 0: none */
	/* Under sv->amu: its place among the connections holding a buffer
	 * (a partial frame), oldest frame first, and among its uid's
	 * connections, oldest first; why it was dropped. */
	struct conn *hprev, *hnext;
	atomic_int holding;		/* on sv's holders list (its reader
					 * reads it without amu) */
	size_t held;			/* rbuf bytes counted in sv->held */
	struct conn *uprev, *unext;
	struct uident *ue;		/* NULL once off its uid's list */
	struct conn *vnext;		/* a list of connections to drop */
	int drop_why;
	size_t drop_bytes;
	uint64_t drop_age_ms;
	/* Read side: only the worker holding it (EPOLLONESHOT, or a queued
	 * Q_CONN) touches these; and drop_all, under mu while no worker
	 * is reading, frees a doomed connection's rbuf. */
	uint8_t hello[SP_HELLO_LEN];
	size_t hello_got;
	uint8_t *rbuf;
	size_t rlen, rcap;
	/* Under mu: everything below, and the descriptors' validity. */
	struct kms_mutex mu;
	int fd, wfd;			/* wfd: dup of fd for EPOLLOUT */
	int warmed;			/* wfd armed */
	int parked;			/* not read until unparked */
	int reading;			/* a worker is in conn_read */
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
	/* Admission (amu; taken after a conn's mu, never before). */
	struct kms_mutex amu;
	struct conn *hhead, *htail;	/* holding buffers, oldest frame first */
	size_t held, held_max;		/* their bytes; the cap */
	struct uident *uids[UID_BUCKETS];
	unsigned per_uid_max;
	/* The drop log (lmu), per reason. */
	pthread_mutex_t lmu;
	struct {
		uint64_t since_ms;	/* this window began */
		unsigned said, unsaid;
	} drops[DROP_NREASONS];
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

/* ---- read buffers ---- */

/*
 * Big read buffers are mapped, not malloc'd: glibc raises its mmap
 * threshold to the size of the first mapped block freed, and keeps later
 * ones in per-thread arenas, so a burst of big partial frames would leave
 * kmsd's memory high long after they were dropped.
 */
static uint8_t *
rbuf_alloc(size_t cap)
{
	void *p;

	if (cap < RBUF_MAP_MIN) {
		return malloc(cap);
	}
	p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		return NULL;
	}
	(void)madvise(p, cap, MADV_DONTDUMP);	/* it holds requests */
	return p;
}

/* Free a read buffer of cap bytes of which only the first used may hold
 * data (next_request wipes what it takes out). */
static void
rbuf_free(uint8_t *p, size_t cap, size_t used)
{
	if (p == NULL) {
		return;
	}
	if (cap < RBUF_MAP_MIN) {
		wipe_free(p, cap);
		return;
	}
	secure_wipe(p, used);
	(void)munmap(p, cap);
}

/* ---- admission: what one peer may make kmsd hold ---- */

/* amu held: c (a holder) is off the holders list. */
static void
holders_unlink_locked(struct server *sv, struct conn *c)
{
	kms_mutex_assert_held(&sv->amu);
	if (c->hprev != NULL) {
		c->hprev->hnext = c->hnext;
	} else {
		sv->hhead = c->hnext;
	}
	if (c->hnext != NULL) {
		c->hnext->hprev = c->hprev;
	} else {
		sv->htail = c->hprev;
	}
	c->hprev = c->hnext = NULL;
	atomic_store(&c->holding, 0);
}

/* amu held: c's buffer is no longer counted, nor c a holder. */
static void
holders_remove_locked(struct server *sv, struct conn *c)
{
	kms_mutex_assert_held(&sv->amu);
	if (atomic_load(&c->holding)) {
		holders_unlink_locked(sv, c);
	}
	sv->held -= c->held;
	c->held = 0;
}

/* amu held: c (not a holder) becomes the holder with the newest frame. */
static void
holders_append_locked(struct server *sv, struct conn *c)
{
	kms_mutex_assert_held(&sv->amu);
	c->hprev = sv->htail;
	c->hnext = NULL;
	if (sv->htail != NULL) {
		sv->htail->hnext = c;
	} else {
		sv->hhead = c;
	}
	sv->htail = c;
	atomic_store(&c->holding, 1);
}

/* amu held: where uid's entry is, or would be linked. */
static struct uident **
uid_slot_locked(struct server *sv, uint64_t uid)
{
	struct uident **p;

	kms_mutex_assert_held(&sv->amu);
	/* Fibonacci hashing: the top bits of uid times 2^64/phi. */
	p = &sv->uids[(uid * 0x9e3779b97f4a7c15ULL) >> 56 & (UID_BUCKETS - 1)];
	while (*p != NULL && (*p)->uid != uid) {
		p = &(*p)->next;
	}
	return p;
}

/* amu held: c is off its uid's list (the entry goes with the last). */
static void
uid_remove_locked(struct server *sv, struct conn *c)
{
	struct uident *ue = c->ue, **p;

	kms_mutex_assert_held(&sv->amu);
	if (ue == NULL) {
		return;
	}
	if (c->uprev != NULL) {
		c->uprev->unext = c->unext;
	} else {
		ue->head = c->unext;
	}
	if (c->unext != NULL) {
		c->unext->uprev = c->uprev;
	} else {
		ue->tail = c->uprev;
	}
	c->uprev = c->unext = NULL;
	c->ue = NULL;
	if (--ue->n == 0) {
		p = uid_slot_locked(sv, ue->uid);
		*p = ue->next;
		free(ue);
	}
}

/*
 * amu held: c is to be dropped for why.  It leaves both lists (its
 * buffer is no longer counted: it can only shrink from now on) and goes
 * on *vs for drop_all.  Nothing when it was already.
 */
static void
doom_locked(struct server *sv, struct conn *c, int why, uint64_t now,
    struct conn **vs)
{
	uint64_t began;
	int no = 0;

	kms_mutex_assert_held(&sv->amu);
	if (!atomic_compare_exchange_strong(&c->doomed, &no, 1)) {
		return;
	}
	began = why == DROP_UID ? c->born_ms : atomic_load(&c->frame_ms);
	c->drop_why = why;
	c->drop_bytes = c->held;
	c->drop_age_ms = began != 0 && now > began ? now - began : 0;
	holders_remove_locked(sv, c);
	uid_remove_locked(sv, c);
	c->vnext = *vs;
	*vs = c;
}

static const char *const drop_what[DROP_NREASONS] = {
	[DROP_LATE] = "a message not completed in time",
	[DROP_BUFFERED] = "buffered input over max_buffered_input_mib",
	[DROP_UID] = "a uid over max_connections_per_uid",
};

/* Say that c was dropped: the first DROP_LOG_BURST of a reason in a
 * window line by line, the rest as a count when the window closes. */
static void
drop_say(struct server *sv, const struct conn *c)
{
	uint64_t now = mono_ms();
	unsigned unsaid = 0;
	int say, why = c->drop_why;

	pthread_mutex_lock(&sv->lmu);
	if (now - sv->drops[why].since_ms >= DROP_LOG_MS) {
		unsaid = sv->drops[why].unsaid;
		sv->drops[why].since_ms = now;
		sv->drops[why].said = sv->drops[why].unsaid = 0;
	}
	if ((say = sv->drops[why].said < DROP_LOG_BURST)) {
		sv->drops[why].said++;
	} else {
		sv->drops[why].unsaid++;
	}
	pthread_mutex_unlock(&sv->lmu);
	if (unsaid > 0) {
		log_warn("%u more connections dropped for %s", unsaid,
		    drop_what[why]);
	}
	if (!say) {
		return;
	}
	switch (why) {
	case DROP_LATE:
		log_warn("dropping a connection of uid %llu (pid %llu): a "
		    "message begun %.1f s ago (%zu bytes buffered) was not "
		    "completed within %d s", (unsigned long long)c->uid,
		    (unsigned long long)c->pid, c->drop_age_ms / 1000.0,
		    c->drop_bytes, FRAME_MS / 1000);
		break;
	case DROP_BUFFERED:
		log_warn("buffered input over max_buffered_input_mib (%zu "
		    "MiB): dropping the connection with the oldest partial "
		    "message, uid %llu (pid %llu), begun %.1f s ago, %zu "
		    "bytes buffered", sv->held_max >> 20,
		    (unsigned long long)c->uid, (unsigned long long)c->pid,
		    c->drop_age_ms / 1000.0, c->drop_bytes);
		break;
	default:
		log_warn("uid %llu has max_connections_per_uid (%u) "
		    "connections: dropping its oldest (pid %llu, open "
		    "%.1f s)", (unsigned long long)c->uid, sv->per_uid_max,
		    (unsigned long long)c->pid, c->drop_age_ms / 1000.0);
		break;
	}
}

/* The scheduler: the counts of windows that have closed. */
static void
drop_say_unsaid(struct server *sv)
{
	uint64_t now = mono_ms();
	unsigned unsaid;
	int i;

	for (i = 0; i < DROP_NREASONS; i++) {
		pthread_mutex_lock(&sv->lmu);
		unsaid = 0;
		if (sv->drops[i].unsaid > 0 &&
		    now - sv->drops[i].since_ms >= DROP_LOG_MS) {
			unsaid = sv->drops[i].unsaid;
			sv->drops[i].since_ms = now;
			sv->drops[i].said = sv->drops[i].unsaid = 0;
		}
		pthread_mutex_unlock(&sv->lmu);
		if (unsaid > 0) {
			log_warn("%u more connections dropped for %s", unsaid,
			    drop_what[i]);
		}
	}
}

/*
 * Hang up on each doomed connection of vs (amu not held): the worker that
 * reads it next closes it.  They are still in memory: a
 * worker's list is freed only after a grace period its own pass is part
 * of, and the scheduler's by the scheduler, after this.
 */
static void
drop_all(struct server *sv, struct conn *vs)
{
	struct conn *c, *n;

	for (c = vs; c != NULL; c = n) {
		n = c->vnext;
		c->vnext = NULL;
		drop_say(sv, c);
		kms_mutex_lock(&c->mu);
		if (!atomic_load(&c->dead)) {
			(void)shutdown(c->fd, SHUT_RDWR);
			if (!c->reading) {
				/* Nobody reads it: its buffer goes now, not
				 * once a worker comes to close it (under a
				 * flood, workers come late). */
				rbuf_free(c->rbuf, c->rcap, c->rlen);
				c->rbuf = NULL;
				c->rlen = c->rcap = 0;
			}
		}
		kms_mutex_unlock(&c->mu);
	}
}

/* A new connection counts against its uid's cap (the oldest beyond it are
 * dropped): 0, or -1 when out of memory. */
static int
admit(struct server *sv, struct conn *c)
{
	struct conn *vs = NULL;
	struct uident **p, *ue;
	uint64_t now = mono_ms();
	int r = -1;

	kms_mutex_lock(&sv->amu);
	while (*(p = uid_slot_locked(sv, c->uid)) != NULL &&
	    (*p)->n >= sv->per_uid_max) {
		doom_locked(sv, (*p)->head, DROP_UID, now, &vs);
	}
	if ((ue = *p) == NULL) {
		if ((ue = calloc(1, sizeof(*ue))) == NULL) {
			goto out;
		}
		ue->uid = c->uid;
		*p = ue;
	}
	c->uprev = ue->tail;
	if (ue->tail != NULL) {
		ue->tail->unext = c;
	} else {
		ue->head = c;
	}
	ue->tail = c;
	ue->n++;
	c->ue = ue;
	r = 0;
 out:
	kms_mutex_unlock(&sv->amu);
	drop_all(sv, vs);
	return r;
}

/* c->mu held (closing c): c no longer counts against anything. */
static void
admit_forget_locked(struct conn *c)
{
	kms_mutex_assert_held(&c->mu);
	kms_mutex_lock(&c->sv->amu);
	holders_remove_locked(c->sv, c);
	uid_remove_locked(c->sv, c);
	kms_mutex_unlock(&c->sv->amu);
}

/*
 * amu held: c holds a partial frame in a buffer of cap bytes, counted
 * against max_buffered_input_mib (c becomes the holder with the newest
 * frame if it was not one).  Past the cap, the holders whose frames began
 * first are doomed onto *vs.  0, or -1 when c is doomed.
 */
static int
hold_locked(struct server *sv, struct conn *c, size_t cap, uint64_t now,
    struct conn **vs)
{
	struct conn *v;

	kms_mutex_assert_held(&sv->amu);
	if (atomic_load(&c->doomed)) {
		return -1;
	}
	if (!atomic_load(&c->holding)) {
		holders_append_locked(sv, c);
		atomic_store(&c->frame_ms, now);
	}
	while (cap > c->held && sv->held - c->held + cap > sv->held_max &&
	    (v = sv->hhead) != NULL) {
		doom_locked(sv, v, DROP_BUFFERED, now, vs);
		if (v == c) {
			return -1;	/* (c is the newest: never) */
		}
	}
	sv->held = sv->held - c->held + cap;
	c->held = cap;
	return 0;
}

/*
 * The read side's holder: c's buffer becomes cap bytes (at least c->rlen).
 * Beyond RBUF_MIN, or while c holds a partial frame, it is counted (hold):
 * growing past max_buffered_input_mib drops the connections whose partial
 * frames began first.  A connection's first RBUF_MIN bytes are not
 * counted until a partial frame stays in them (rbuf_settle): a small
 * request read whole costs no lock.  0, or -1 when c must be closed
 * (dropped, or out of memory: then c is unchanged).
 */
static int
rbuf_resize(struct conn *c, size_t cap)
{
	struct server *sv = c->sv;
	struct conn *vs = NULL;
	uint8_t *n;
	int r = 0;

	if ((n = rbuf_alloc(cap)) == NULL) {
		return -1;
	}
	if (cap > RBUF_MIN || atomic_load(&c->holding)) {
		kms_mutex_lock(&sv->amu);
		r = hold_locked(sv, c, cap, mono_ms(), &vs);
		kms_mutex_unlock(&sv->amu);
		drop_all(sv, vs);
	}
	if (r != 0) {
		rbuf_free(n, cap, 0);
		return -1;
	}
	if (c->rlen > 0) {
		memcpy(n, c->rbuf, c->rlen);
	}
	rbuf_free(c->rbuf, c->rcap, c->rlen);
	c->rbuf = n;
	c->rcap = cap;
	return 0;
}

/* The size c's full buffer grows to when the frame it holds the start of
 * needs need bytes: double, but never past need (the header's word is
 * not the bytes that came). */
static size_t
rbuf_next_cap(const struct conn *c, size_t need)
{
	size_t cap = c->rcap < RBUF_MIN ? RBUF_MIN : 2 * c->rcap;

	return need > RBUF_MIN && cap > need ? need : cap;
}

/*
 * The read side's holder, after a read turn.  Empty, c holds no partial
 * frame, and a buffer beyond RBUF_MIN goes (RBUF_MIN stays for the next
 * request, as before any of this).  Else one four times larger than what
 * it holds shrinks, c is (still) a holder, and when a frame was taken out
 * (took) the next frame's clock starts now.
 */
static void
rbuf_settle(struct conn *c, int took)
{
	struct server *sv = c->sv;
	struct conn *vs = NULL;
	size_t cap;

	if (c->rlen == 0) {
		if (atomic_load(&c->holding)) {
			kms_mutex_lock(&sv->amu);
			holders_remove_locked(sv, c);
			atomic_store(&c->frame_ms, 0);
			kms_mutex_unlock(&sv->amu);
		}
		if (c->rcap > RBUF_MIN) {
			rbuf_free(c->rbuf, c->rcap, 0);
			c->rbuf = NULL;
			c->rcap = 0;
		}
		return;
	}
	if (c->rcap > RBUF_MIN && c->rlen <= c->rcap / 4) {
		for (cap = RBUF_MIN; cap < 2 * c->rlen; cap *= 2) {
		}
		(void)rbuf_resize(c, cap);	/* else it stays as it is */
	}
	if (atomic_load(&c->holding) && !took) {
		return;
	}
	kms_mutex_lock(&sv->amu);
	if (!atomic_load(&c->holding)) {
		(void)hold_locked(sv, c, c->rcap, mono_ms(), &vs);
	} else {
		if (sv->htail != c) {
			holders_unlink_locked(sv, c);	/* it has the newest frame */
			holders_append_locked(sv, c);
		}
		atomic_store(&c->frame_ms, mono_ms());
	}
	kms_mutex_unlock(&sv->amu);
	drop_all(sv, vs);
}

/*
 * The scheduler: drop connections whose partial frame began FRAME_MS ago
 * or more, unless kmsd is the one not reading: the connection is parked
 * (its buffer may hold whole requests waiting their turn), or more of the
 * frame waits in the socket for a busy worker.
 */
static void
frame_sweep(struct server *sv)
{
	struct conn *c, *next, *vs = NULL;
	uint64_t now = mono_ms(), began;
	int unread;

	kms_mutex_lock(&sv->amu);
	for (c = sv->hhead; c != NULL; c = next) {
		next = c->hnext;	/* doom_locked() unlinks c */
		began = atomic_load(&c->frame_ms);
		if (began == 0 || now - began < FRAME_MS ||
		    kms_mutex_trylock(&c->mu) != 0) {
			continue;	/* (locked: next tick) */
		}
		unread = 0;
		if (c->parked) {
			unread = 1;	/* waits for its requests in flight */
		} else if (!atomic_load(&c->dead) &&
		    ioctl(c->fd, FIONREAD, &unread) != 0) {
			unread = 0;
		}
		kms_mutex_unlock(&c->mu);
		if (unread == 0) {
			doom_locked(sv, c, DROP_LATE, now, &vs);
		}
	}
	kms_mutex_unlock(&sv->amu);
	drop_all(sv, vs);
}

/* c->mu held: move c to the grave (its memory outlives stale events). */
static void
grave_push_locked(struct conn *c)
{
	struct server *sv = c->sv;

	kms_mutex_assert_held(&c->mu);
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
unpark_locked(struct conn *c)
{
	kms_mutex_assert_held(&c->mu);
	if (c->parked && !atomic_load(&c->dead) &&
	    c->inflight < CONN_INFLIGHT && c->olen - c->ooff < CONN_OUT_HIGH) {
		c->parked = 0;
		/* Its partial frame waited on kmsd: its time starts again. */
		if (atomic_load(&c->frame_ms) != 0) {
			atomic_store(&c->frame_ms, mono_ms());
		}
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
	kms_mutex_lock(&c->mu);
	atomic_store(&c->dead, 1);
	(void)epoll_ctl(c->sv->ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->wfd >= 0) {
		(void)epoll_ctl(c->sv->ep, EPOLL_CTL_DEL, c->wfd, NULL);
		close(c->wfd);
		c->wfd = -1;
	}
	close(c->fd);
	c->fd = -1;
	admit_forget_locked(c);
	rbuf_free(c->rbuf, c->rcap, c->rlen);
	c->rbuf = NULL;
	c->rlen = c->rcap = 0;
	wipe_free(c->out, c->ocap);
	c->out = NULL;
	c->ooff = c->olen = c->ocap = 0;
	if (c->inflight == 0) {
		grave_push_locked(c);
	}
	kms_mutex_unlock(&c->mu);
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
	rbuf_free(c->rbuf, c->rcap, c->rlen);
	wipe_free(c->out, c->ocap);
	kms_mutex_destroy(&c->mu);
	atomic_fetch_sub(&c->sv->d->ipc_connections, 1);
	free(c);
}

/* c->mu held: keep len bytes of p to send when the peer reads. */
static int
out_append_locked(struct conn *c, const uint8_t *p, size_t len)
{
	uint8_t *n;
	size_t have = c->olen - c->ooff, cap;

	kms_mutex_assert_held(&c->mu);
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
send_failed_locked(struct conn *c)
{
	kms_mutex_assert_held(&c->mu);
	c->werr = 1;
	(void)shutdown(c->fd, SHUT_RDWR);
	if (c->out != NULL) {
		secure_wipe(c->out, c->ocap);
	}
	c->ooff = c->olen = 0;
}

/* c->mu held: wait for the peer to read (one event, any worker). */
static void
arm_write_locked(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLONESHOT,
	    .data.ptr = &c->wev };

	kms_mutex_assert_held(&c->mu);
	if (c->warmed) {
		return;
	}
	if (c->wfd < 0) {
		if ((c->wfd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0)) < 0 ||
		    epoll_ctl(c->sv->ep, EPOLL_CTL_ADD, c->wfd, &ev) != 0) {
			send_failed_locked(c);
			return;
		}
	} else if (epoll_ctl(c->sv->ep, EPOLL_CTL_MOD, c->wfd, &ev) != 0) {
		send_failed_locked(c);
		return;
	}
	c->warmed = 1;
}

/* c->mu held: send what is pending; 0 when all of it went. */
static void
out_flush_locked(struct conn *c)
{
	ssize_t n;

	kms_mutex_assert_held(&c->mu);
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
			arm_write_locked(c);
			return;
		} else {
			send_failed_locked(c);
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

	kms_mutex_lock(&c->mu);
	if (atomic_load(&c->dead) || c->werr) {
		kms_mutex_unlock(&c->mu);
		return;
	}
	if (c->olen == c->ooff) {
		do {
			n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			send_failed_locked(c);
			kms_mutex_unlock(&c->mu);
			return;
		}
		if (n < 0) {
			n = 0;
		}
	}
	if ((size_t)n < len) {
		if (out_append_locked(c, p + n, len - (size_t)n) != 0) {
			/* A reply cut short cannot be resynchronised. */
			send_failed_locked(c);
		} else {
			arm_write_locked(c);
		}
	}
	kms_mutex_unlock(&c->mu);
}

/* A request of c is over (served, or dropped). */
static void
conn_done(struct conn *c)
{
	kms_mutex_lock(&c->mu);
	c->inflight--;
	if (atomic_load(&c->dead)) {
		if (c->inflight == 0) {
			grave_push_locked(c);
		}
	} else {
		unpark_locked(c);
	}
	kms_mutex_unlock(&c->mu);
}

/* The peer read some replies. */
static void
conn_writable(struct conn *c)
{
	kms_mutex_lock(&c->mu);
	if (!atomic_load(&c->dead)) {	/* else a stale event */
		c->warmed = 0;
		if (!c->werr) {
			out_flush_locked(c);
		}
		unpark_locked(c);
	}
	kms_mutex_unlock(&c->mu);
}

/*
 * The next complete request in c's buffer, copied out (and wiped there):
 * 1 and *out; 0 when none is complete yet (*need: the buffer size that
 * would hold it); -1 when the peer breaks the protocol.
 */
static int
next_request(struct conn *c, struct req **out, size_t *need)
{
	size_t idlen, flen, len;
	struct req *r;
	int rv;

	rv = sp_frame_parse(c->rbuf, c->rlen, FRAME_MAX, &flen, &idlen);
	*need = flen;
	if (rv <= 0) {
		return rv;
	}
	len = flen - SP_FRAME_HDR;
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

	kms_mutex_lock(&c->mu);
	base = c->inflight;	/* counts against the cap below */
	c->reading = 1;		/* c's buffer is ours until rearmed */
	kms_mutex_unlock(&c->mu);
	n_req = base;
	if (atomic_load(&c->doomed)) {
		goto kill;	/* dropped (admission): it was shut down */
	}
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
		if (atomic_load(&c->doomed)) {
			broken = 1;
			break;
		}
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
		/* The buffer holds the start of one frame: grow it
		 * when full, with what arrives. */
		if (c->rlen == c->rcap &&
		    rbuf_resize(c, rbuf_next_cap(c, need)) != 0) {
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
	rbuf_settle(c, n_req > base);
	kms_mutex_lock(&c->mu);
	/* Completions may have run meanwhile: add, don't set. */
	c->inflight += n_req - base;
	c->reading = 0;
	if (full || c->olen - c->ooff >= CONN_OUT_HIGH) {
		c->parked = 1;
		unpark_locked(c);	/* in case it drained meanwhile */
	} else {
		rearm(c);
	}
	kms_mutex_unlock(&c->mu);
	queue_push(c->sv, head, tail, nq);
	if (first != NULL) {
		serve(sw, first);
	}
	return;
 rearm:
	kms_mutex_lock(&c->mu);
	c->reading = 0;
	rearm(c);
	kms_mutex_unlock(&c->mu);
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
		resp = dispatch(&sw->w, &p, r->data + r->idlen, r->len, NULL);
	}
	atomic_fetch_add(&sw->w.d->requests, 1);
	/* Serialised once into the frame (a second time only when it did
	 * not fit); the partial text may hold a plaintext: rep_reserve
	 * wipes it. */
	if (resp != NULL && rep_reserve(sw, head + REPLY_MIN) == 0) {
		n = kjson_write_compact(resp, (char *)sw->rep + head, sw->repcap - head);
		if (n > sw->repcap - head && (rep_reserve(sw, head + n) != 0 ||
		    kjson_write_compact(resp, (char *)sw->rep + head, n) != n)) {
			n = 0;
		}
	}
	json_decref(resp);
	if (n > JSON_MAX_REPLY) {
		/* Never, by JSON_MAX_REPLY's derivation; were it wrong, the
		 * client would drop the connection on this reply. */
		log_error("a reply of %zu bytes exceeds the %d a client "
		    "accepts; sent an error instead", n, JSON_MAX_REPLY);
		n = 0;
	}
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
	audit_after_reply();	/* replied, or never will */
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
	atomic_fetch_add(&sv->d->ipc_connections, 1);
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
	kms_mutex_init(&c->mu);
	if (admit(sv, c) != 0) {
		kms_mutex_destroy(&c->mu);
		free(c);
		close(fd);
		return;
	}
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
		    kms_mutex_trylock(&c->mu) != 0) {
			continue;
		}
		if (!atomic_load(&c->dead)) {
			(void)shutdown(c->fd, SHUT_RDWR);
		}
		c->hs_killed = 1;
		kms_mutex_unlock(&c->mu);
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
		frame_sweep(sv);
		drop_say_unsaid(sv);
		kmsd_hsm_tend(sv->d);	/* recovery, module recycling */
		kmsd_lifecycle_tend(sv->d);	/* rotations, deletions due */
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
	struct uident *ue;
	struct qitem *q;
	struct conn *c;
	int i;

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
	for (i = 0; i < UID_BUCKETS; i++) {
		while ((ue = sv->uids[i]) != NULL) {
			sv->uids[i] = ue->next;
			free(ue);
		}
	}
	pthread_mutex_destroy(&sv->qmu);
	pthread_mutex_destroy(&sv->mu);
	kms_mutex_destroy(&sv->amu);
	pthread_mutex_destroy(&sv->lmu);
	pthread_mutex_destroy(&sv->smu);
	pthread_cond_destroy(&sv->scv);
}

int
server_run(struct kmsd *d, char *err, size_t errlen)
{
	static struct server sv;
	struct srv_worker *ws = NULL;
	struct http_front *http = NULL;
	struct metrics_front *metrics = NULL;
	sigset_t set;
	uint64_t one = 1;
	int i, sig, r = KMS_EINTERNAL, sched_started = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
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
	kms_mutex_init(&sv.amu);
	pthread_mutex_init(&sv.lmu, NULL);
	sv.held_max = (size_t)d->cfg.max_buffered_input_mib << 20;
	sv.per_uid_max = d->cfg.max_connections_per_uid;
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
	/* Imported key material wrapped with RSAES_OAEP_SHA_256 is offered
	 * only when this HSM unwraps it right (a known-answer check). */
	atomic_store(&d->oaep_sha256, hsm_probe_oaep_sha256(ws[0].w.hs));
	log_info("HSM check: RSA-OAEP unwrapping with SHA-256 %s",
	    atomic_load(&d->oaep_sha256) ? "works: RSAES_OAEP_SHA_256 "
	    "offered for imports" : "refused or wrong: imports use "
	    "RSAES_OAEP_SHA_1 only");
	/* The HTTP endpoint, when configured: up before the socket is, so
	 * that a started kmsd serves both. */
	if ((r = http_start(d, &http, err, errlen)) != 0 ||
	    (r = metrics_start(d, &metrics, err, errlen)) != 0) {
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
		(void)pthread_setname_np(ws[i].thr, "kmsd-worker");
	}
	if (pthread_create(&sv.sched, NULL, sched_main, &sv) != 0) {
		snprintf(err, errlen, "cannot start the scheduler");
		goto out;
	}
	sched_started = 1;
	(void)pthread_setname_np(sv.sched, "kmsd-sched");
	printf("kmsd: ready on %s (%d workers, %s keys)\n", d->cfg.listen,
	    d->cfg.workers, d->cfg.key_storage == STORAGE_RESIDENT ?
	    "resident" : "wrapped");
	fflush(stdout);
	service_ready(d);

	for (;;) {
		if (sigwait(&set, &sig) != 0) {
			continue;
		}
		if (sig != SIGHUP) {
			break;
		}
		service_reload(d);
	}
	service_stopping();
	log_info("signal %d, stopping", sig);
	r = 0;
 out:
	/* Workers finish the request in hand; what is queued is dropped
	 * (its clients see the connection close). */
	atomic_store(&d->stopping, 1);
	http_stop(http);
	metrics_stop(metrics);
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
