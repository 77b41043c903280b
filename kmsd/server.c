/*
 * server.c — the nng front end: one rep0 socket on the IPC listener, a pool
 * of workers each owning an nng context (driven by aio callbacks on nng's
 * task threads), an HSM session and a store connection, and a scheduler
 * thread that brings the HSM back after an outage and keeps the listener
 * accepting (see the watchdog below).  The caller's identity comes from
 * the kernel through the pipe (NNG_OPT_IPC_PEER_UID/GID/PID), never from
 * the request.
 *
 * Life: server_run() blocks SIGINT/SIGTERM, starts everything, waits for a
 * signal, then closes the socket (which aborts every worker's receive) and
 * waits for callbacks still running.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>

#include "common/be.h"
#include "common/err.h"
#include "common/json.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "kmsd/kmsd.h"

#define PIPE_CREDS_CACHE 16	/* per worker, direct-mapped by pipe id */

struct reaper;

struct srv_worker {
	struct worker w;
	nng_socket sock;
	nng_ctx ctx;
	nng_aio *aio;			/* receives; its callback serves */
	nng_aio *saio;			/* sends; no callback (see below) */
	struct reaper *reaper;
	struct srv_worker *next;	/* in the reaper's queue */
	int started;
	size_t reply_hint;		/* a likely reply size (a recent one's) */
	/* A pipe's peer cannot change: its credentials, read once. */
	struct {
		uint32_t pipe;
		uint64_t uid, gid, pid;
	} creds[PIPE_CREDS_CACHE];
};

#define REPLY_GUESS_MIN 512

static json_t *
deny(const char *msg)
{
	return json_pack("{s:s, s:s}", "__type", "AccessDeniedException",
	    "message", msg);
}

static void
wipe_free(nng_msg *m)
{
	if (m != NULL) {
		secure_wipe(nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
	}
}

/* The kernel's word on who is at the other end of pipe (SO_PEERCRED). */
static int
peer_creds(struct srv_worker *sw, nng_pipe pipe, uint64_t *uid, uint64_t *gid,
    uint64_t *pid)
{
	uint32_t id = (uint32_t)nng_pipe_id(pipe);
	size_t i = id % PIPE_CREDS_CACHE;

	if (id != 0 && sw->creds[i].pipe == id) {
		*uid = sw->creds[i].uid;
		*gid = sw->creds[i].gid;
		*pid = sw->creds[i].pid;
		return 0;
	}
	if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_UID, uid) != 0 ||
	    nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_GID, gid) != 0) {
		return -1;
	}
	if (nng_pipe_get_uint64(pipe, NNG_OPT_IPC_PEER_PID, pid) != 0) {
		*pid = 0;
	}
	sw->creds[i].pipe = id;
	sw->creds[i].uid = *uid;
	sw->creds[i].gid = *gid;
	sw->creds[i].pid = *pid;
	return 0;
}

/* Answer one request: the reply replaces the request in m. */
static int
serve(struct srv_worker *sw, nng_msg *m)
{
	uint64_t uid = 0, gid = 0, pid = 0;
	struct principal p;
	static const char oom[] = "{\"__type\":\"KMSInternalException\","
	    "\"message\":\"out of memory\"}";
	json_t *resp;
	size_t n, guess;
	int rv;

	if (peer_creds(sw, nng_msg_get_pipe(m), &uid, &gid, &pid) != 0) {
		resp = deny("The caller's identity is unknown");
	} else {
		principal_from_uid(&p, (uid_t)uid, (gid_t)gid, (pid_t)pid);
		resp = dispatch(&sw->w, &p, nng_msg_body(m), nng_msg_len(m));
	}
	atomic_fetch_add(&sw->w.d->requests, 1);
	/* The request may carry a plaintext: wipe before reuse. */
	secure_wipe(nng_msg_body(m), nng_msg_len(m));
	nng_msg_clear(m);
	if (resp == NULL) {
		return nng_msg_append(m, oom, sizeof(oom) - 1);
	}
	/* Serialised straight into the message, which nng then sends: one
	 * pass of the compact writer into a body of a likely size, a second
	 * into one of the exact size only when it did not fit. */
	guess = sw->reply_hint;
	if (guess < REPLY_GUESS_MIN || guess > JSON_MAX_MESSAGE) {
		guess = REPLY_GUESS_MIN;
	}
	if ((rv = nng_msg_realloc(m, guess)) != 0) {
		goto out;
	}
	n = json_write_compact(resp, nng_msg_body(m), guess);
	if (n > guess) {
		/* The partial text may hold a plaintext: wipe it before
		 * nng copies it into a bigger body and frees this one. */
		secure_wipe(nng_msg_body(m), guess);
		if ((rv = nng_msg_realloc(m, n)) != 0) {
			goto out;
		}
		if (json_write_compact(resp, nng_msg_body(m), n) != n) {
			n = 0;
		}
	}
	if (n == 0) {
		rv = NNG_ENOMEM;
		goto out;
	}
	if (n < guess) {
		(void)nng_msg_chop(m, guess - n);
	}
	sw->reply_hint = n + n / 8;
 out:
	if (rv != 0) {
		/* Still an answer, so the caller is not left waiting. */
		secure_wipe(nng_msg_body(m), nng_msg_len(m));
		nng_msg_clear(m);
		rv = nng_msg_append(m, oom, sizeof(oom) - 1);
	}
	json_decref(resp);
	return rv;
}

/*
 * Replies whose send nng had to queue (the connection was still writing
 * an earlier reply) are waited for here, on a thread of ours: a worker's
 * callback runs on one of nng's few task threads and must never block
 * waiting for another.
 */
struct reaper {
	struct kmsd *d;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct srv_worker *head, *tail;
	int stop;
};

/* A send is over: dispose of a reply nng did not take. */
static void
send_done(struct srv_worker *sw)
{
	if (nng_aio_result(sw->saio) != 0) {
		wipe_free(nng_aio_get_msg(sw->saio));
		nng_aio_set_msg(sw->saio, NULL);
	}
}

static void *
reaper_main(void *arg)
{
	struct reaper *rp = arg;
	struct srv_worker *sw;

	pthread_mutex_lock(&rp->mu);
	for (;;) {
		while (rp->head == NULL && !rp->stop) {
			pthread_cond_wait(&rp->cv, &rp->mu);
		}
		if ((sw = rp->head) == NULL) {
			break;		/* stopping, and nothing is left */
		}
		if ((rp->head = sw->next) == NULL) {
			rp->tail = NULL;
		}
		sw->next = NULL;
		pthread_mutex_unlock(&rp->mu);
		nng_aio_wait(sw->saio);
		send_done(sw);
		if (!atomic_load(&rp->d->stopping)) {
			nng_ctx_recv(sw->ctx, sw->aio);
		}
		pthread_mutex_lock(&rp->mu);
	}
	pthread_mutex_unlock(&rp->mu);
	return NULL;
}

static void
reaper_push(struct reaper *rp, struct srv_worker *sw)
{
	pthread_mutex_lock(&rp->mu);
	sw->next = NULL;
	if (rp->tail != NULL) {
		rp->tail->next = sw;
	} else {
		rp->head = sw;
	}
	rp->tail = sw;
	pthread_cond_signal(&rp->cv);
	pthread_mutex_unlock(&rp->mu);
}

/*
 * A worker is a state machine driven by its receive aio's completions, run
 * on nng's task threads: rep0 completes a receive on the thread that read
 * the request, so serving it costs no wake-up.  The reply goes out through
 * a second aio that has no callback: when the connection is idle (the
 * usual case), rep0 hands the reply to it and completes the send before
 * nng_ctx_send returns, and the worker receives again at once.  (An aio
 * with a callback would have its completion dispatched to another task
 * thread: one more wake-up and two context switches per request.)  rep0
 * takes the message out of the aio when it accepts the send, so a message
 * still there means the send is queued behind another reply or failed;
 * the reaper thread waits for it, and nothing else touches the worker
 * until the send is over.  (A queued send may complete on another thread
 * while the worker looks: it then sees no message and goes on, and its
 * next send waits on the aio first, so either answer is safe.)  One
 * context's receive callbacks never overlap, so the worker's HSM session,
 * store connection and buffers are its own.
 */
static void
worker_cb(void *arg)
{
	struct srv_worker *sw = arg;
	nng_msg *m;
	int rv = nng_aio_result(sw->aio);

	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		return;		/* shutting down */
	}
	if (rv == 0) {
		m = nng_aio_get_msg(sw->aio);
		nng_aio_set_msg(sw->aio, NULL);
		if (serve(sw, m) == 0) {
			/* The last send is over (the reaper or an inline
			 * completion saw to it): this returns at once. */
			nng_aio_wait(sw->saio);
			nng_aio_set_msg(sw->saio, m);
			nng_ctx_send(sw->ctx, sw->saio);
			if (nng_aio_get_msg(sw->saio) != NULL) {
				reaper_push(sw->reaper, sw);
				return;
			}
		} else {
			wipe_free(m);
		}
	}
	if (atomic_load(&sw->w.d->stopping)) {
		return;
	}
	nng_ctx_recv(sw->ctx, sw->aio);
}

/*
 * The listener watchdog.  nng 1.5.2 stops accepting for good when a peer
 * hangs up during the SP handshake: the transport hands the listener
 * NNG_ECLOSED, which it takes for its own closing (nng issue #1518, fixed
 * in 1.6; Debian 12 ships 1.5.2).  One local process that connects and
 * exits at the wrong moment would leave kmsd deaf to new clients.  So the
 * scheduler watches the listener's error count; when it moves, it checks
 * that the socket still completes a handshake and, if not, closes the
 * listener and listens again.  Closing it drops the connections it had
 * made (nng ties pipes to their listener): requests in flight on them fail
 * and their clients reconnect.
 */
#define WATCH_MS 200		/* listener check period */
#define PROBE_MS 2000		/* how long a live listener may take */

struct sched {
	struct kmsd *d;
	nng_socket sock;
	nng_listener l;
	uint64_t errors;	/* listener's "other" errors seen so far */
	uint64_t probe_ms;	/* reaper check: probe made at (0: none) */
	uint64_t probe_released;	/* pipes_released before it */
	uint64_t probe_done_ms;	/* when the last check began */
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
};

static int
listener_open(struct kmsd *d, nng_socket sock, nng_listener *l, char *err,
    size_t errlen)
{
	int rv;

	if ((rv = nng_listener_create(l, sock, d->cfg.listen)) != 0 ||
	    (rv = nng_listener_set_int(*l, NNG_OPT_IPC_PERMISSIONS,
	    (int)d->cfg.socket_mode)) != 0 ||
	    (rv = nng_listener_start(*l, 0)) != 0) {
		snprintf(err, errlen, "listen %s: %s", d->cfg.listen,
		    nng_strerror(rv));
		return KMS_EINTERNAL;
	}
	return 0;
}

/* The listener's count of unclassified accept errors (where NNG_ECLOSED
 * from a handshake lands). */
static uint64_t
listener_errors(nng_listener l)
{
	nng_stat *all, *ls, *st;
	uint64_t v = 0;

	if (nng_stats_get(&all) != 0) {
		return 0;
	}
	if ((ls = nng_stat_find_listener(all, l)) != NULL &&
	    (st = nng_stat_find(ls, "other")) != NULL) {
		v = nng_stat_value(st);
	}
	nng_stats_free(all);
	return v;
}

/*
 * Does kmsd still take new clients at url?  A handshake is not enough (the
 * transport negotiates even when the socket no longer accepts what it
 * negotiated), so the probe sends one request, "{}", speaking nng's IPC
 * framing, and waits for the reply (a ValidationException).  It hangs up
 * only after the handshake, so it cannot trigger the bug it looks for.
 * 1: it answered; 0: it did not; -1: no probe was made (cannot tell).
 */
static int
listener_answers(const char *url)
{
	static const uint8_t req[SP_FRAME_HDR + SP_ID_LEN + 2] = { [13] = '{',
	    [14] = '}' };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t msg[sizeof(req)], hello[SP_HELLO_LEN], got[SP_FRAME_HDR];
	uint64_t deadline = mono_ms() + PROBE_MS;
	int fd, alive;

	if (strncmp(url, "ipc://", 6) != 0 ||
	    strlen(url + 6) >= sizeof(sa.sun_path)) {
		return -1;	/* not ours to probe */
	}
	memcpy(sa.sun_path, url + 6, strlen(url + 6) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		return -1;	/* cannot tell */
	}
	sp_hello(hello, SP_REQ0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    send(fd, hello, sizeof(hello), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(hello)) {
		close(fd);
		return 0;
	}
	memcpy(msg, req, sizeof(msg));
	sp_frame_hdr(msg, SP_ID_LEN + 2);
	put_u32_be(msg + SP_FRAME_HDR, 0x80000001u);
	alive = fd_read_full(fd, hello, sizeof(hello), deadline) == 0 &&
	    sp_hello_is(hello, SP_REP0) && send(fd, msg, sizeof(msg),
	    MSG_NOSIGNAL) == (ssize_t)sizeof(msg) &&
	    fd_read_full(fd, got, sizeof(got), deadline) == 0 && got[0] == 1;
	close(fd);
	return alive;
}

/* Scheduler thread, s->mu held: restore the listener if it went deaf. */
static void
watch_listener(struct sched *s)
{
	char err[256];
	uint64_t e = listener_errors(s->l);

	if (e == s->errors) {
		return;
	}
	s->errors = e;
	if (listener_answers(s->d->cfg.listen) != 0) {
		return;
	}
	/* Close first: closing unlinks the socket path. */
	nng_listener_close(s->l);
	if (listener_open(s->d, s->sock, &s->l, err, sizeof(err)) != 0) {
		fprintf(stderr, "kmsd: the listener stopped accepting and "
		    "cannot be restarted: %s\n", err);
		return;
	}
	s->errors = listener_errors(s->l);
	fprintf(stderr, "kmsd: the listener stopped accepting (a peer hung "
	    "up during the handshake, nng 1.5.2 issue #1518); listening "
	    "again\n");
}

/*
 * The reaper check.  When nng 1.5.2's close deadlock (see socket_close)
 * strikes a running kmsd, typically a client killed with calls in flight,
 * nng's one reaper thread stops for good, and every connection closed
 * after it keeps its descriptor and memory: a client that crashes often
 * enough would leave kmsd out of descriptors.  nng runs a pipe's removal
 * callback on that thread, so kmsd counts removals, and every REAP_CHECK_MS
 * makes one short connection of its own (the listener probe) and expects
 * some removal within REAP_STUCK_MS.  None means the reaper is stuck:
 * kmsd then stops as on SIGTERM and executes itself again (same pid, same
 * configuration), which the clients see as a restart.
 */
#define REAP_CHECK_MS 2000
#define REAP_STUCK_MS 5000

static atomic_uint_fast64_t pipes_released;

static void
pipe_released(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	(void)arg;
	atomic_fetch_add(&pipes_released, 1);
}

/* Scheduler thread, s->mu held. */
static void
watch_reaper(struct sched *s)
{
	uint64_t now = mono_ms();

	if (s->probe_ms != 0) {
		if (atomic_load(&pipes_released) != s->probe_released) {
			s->probe_ms = 0;	/* the reaper works */
		} else if (now - s->probe_ms >= REAP_STUCK_MS) {
			fprintf(stderr, "kmsd: nng no longer releases closed "
			    "connections (nng 1.5.2's close deadlock); "
			    "restarting in place\n");
			s->d->restart = 1;
			s->probe_ms = 0;
			kill(getpid(), SIGTERM);
		}
		return;
	}
	if (now - s->probe_done_ms < REAP_CHECK_MS) {
		return;
	}
	s->probe_done_ms = now;
	s->probe_released = atomic_load(&pipes_released);
	/* Only a probe that connected has a connection to release. */
	if (listener_answers(s->d->cfg.listen) == 1) {
		s->probe_ms = now;
	}
}

/* Brings the HSM back after an outage and keeps the listener accepting;
 * later also deletions and rotation. */
static void *
sched_main(void *arg)
{
	struct sched *s = arg;
	struct timespec ts;

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)WATCH_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		if (s->stop) {
			break;
		}
		watch_listener(s);
		if (!s->d->restart) {
			watch_reaper(s);
		}
		pthread_mutex_unlock(&s->mu);
		kmsd_hsm_tend(s->d);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/*
 * Closing the socket, within CLOSE_MS.  nng 1.5.2 can deadlock here: when
 * a connection is closed while its transport is between reading a
 * message's header and its body, the body read is never started and the
 * pipe can never be torn down (fixed in nng 1.8 by "fix deadlock on socket
 * close").  Clients that vanish or keep sending as kmsd stops make it
 * likely.  So the close runs on a thread of its own; if it has not
 * returned in time, kmsd says so and goes on stopping without it: its
 * workers, HSM sessions and store are closed all the same.
 */
#define CLOSE_MS 3000

struct closer {
	nng_socket sock;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static void *
closer_main(void *arg)
{
	struct closer *cl = arg;

	nng_close(cl->sock);
	pthread_mutex_lock(&cl->mu);
	cl->done = 1;
	pthread_cond_signal(&cl->cv);
	pthread_mutex_unlock(&cl->mu);
	return NULL;
}

/* 1 when the socket closed (every receive and queued send is over); 0 when
 * nng did not finish in time, and the closer is left running. */
static int
socket_close(nng_socket sock)
{
	static struct closer cl;	/* outlives us if nng never returns */
	struct timespec ts;
	pthread_t thr;
	int done;

	cl.sock = sock;
	pthread_mutex_init(&cl.mu, NULL);
	pthread_cond_init(&cl.cv, NULL);
	if (pthread_create(&thr, NULL, closer_main, &cl) != 0) {
		nng_close(sock);
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += CLOSE_MS / 1000;
	pthread_mutex_lock(&cl.mu);
	while (!cl.done && pthread_cond_timedwait(&cl.cv, &cl.mu, &ts) == 0) {
	}
	done = cl.done;
	pthread_mutex_unlock(&cl.mu);
	if (!done) {
		pthread_detach(thr);
		fprintf(stderr, "kmsd: nng did not close its connections in "
		    "%d ms (nng 1.5.2's close deadlock); stopping without "
		    "it\n", CLOSE_MS);
		return 0;
	}
	pthread_join(thr, NULL);
	return 1;
}

int
server_run(struct kmsd *d, char *err, size_t errlen)
{
	struct srv_worker *ws = NULL;
	struct sched sched;
	struct reaper reaper;
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	nng_listener l;
	sigset_t set;
	int i, rv, sig, r = KMS_EINTERNAL, sched_started = 0, sock_open = 0;
	int reaper_started = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	memset(&sched, 0, sizeof(sched));
	memset(&reaper, 0, sizeof(reaper));
	reaper.d = d;
	pthread_mutex_init(&reaper.mu, NULL);
	pthread_cond_init(&reaper.cv, NULL);
	if ((ws = calloc((size_t)d->cfg.workers, sizeof(*ws))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < d->cfg.workers; i++) {
		if ((r = worker_init(d, i, &ws[i].w, err, errlen)) != 0) {
			goto out;
		}
	}
	if ((r = keycache_startup(&ws[0].w, err, errlen)) != 0) {
		goto out;
	}
	r = KMS_EINTERNAL;
	if ((rv = nng_rep0_open(&sock)) != 0) {
		snprintf(err, errlen, "nng_rep0_open: %s", nng_strerror(rv));
		goto out;
	}
	sock_open = 1;
	/* Bigger messages never reach the parser (DESIGN §4). */
	nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, JSON_MAX_MESSAGE);
	if ((rv = nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, pipe_released,
	    NULL)) != 0) {
		snprintf(err, errlen, "nng_pipe_notify: %s", nng_strerror(rv));
		goto out;
	}
	for (i = 0; i < d->cfg.workers; i++) {
		ws[i].sock = sock;
		ws[i].reaper = &reaper;
		if ((rv = nng_ctx_open(&ws[i].ctx, sock)) != 0 ||
		    (rv = nng_aio_alloc(&ws[i].aio, worker_cb, &ws[i])) != 0 ||
		    (rv = nng_aio_alloc(&ws[i].saio, NULL, NULL)) != 0) {
			snprintf(err, errlen, "nng: %s", nng_strerror(rv));
			goto out;
		}
	}
	if (pthread_create(&reaper.thr, NULL, reaper_main, &reaper) != 0) {
		snprintf(err, errlen, "cannot start the reply thread");
		goto out;
	}
	reaper_started = 1;
	if (listener_open(d, sock, &l, err, errlen) != 0) {
		goto out;
	}
	for (i = 0; i < d->cfg.workers; i++) {
		ws[i].started = 1;
		nng_ctx_recv(ws[i].ctx, ws[i].aio);
	}
	sched.d = d;
	sched.sock = sock;
	sched.l = l;
	sched.errors = listener_errors(l);
	pthread_mutex_init(&sched.mu, NULL);
	pthread_cond_init(&sched.cv, NULL);
	if (pthread_create(&sched.thr, NULL, sched_main, &sched) != 0) {
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
	fprintf(stderr, "kmsd: signal %d, stopping\n", sig);
	r = 0;
 out:
	atomic_store(&d->stopping, 1);
	if (sched_started) {
		pthread_mutex_lock(&sched.mu);
		sched.stop = 1;
		pthread_cond_signal(&sched.cv);
		pthread_mutex_unlock(&sched.mu);
		pthread_join(sched.thr, NULL);
	}
	if (sock_open && !socket_close(sock)) {
		/* nng is wedged: our workers are stopped below, but what nng
		 * may still touch (aios, the worker array) is left to the
		 * process's exit. */
		d->nng_stuck = 1;
	}
	if (ws != NULL) {
		/* Waits for a callback still running: none hands the reaper
		 * work after this. */
		for (i = 0; i < d->cfg.workers; i++) {
			if (ws[i].aio != NULL) {
				nng_aio_stop(ws[i].aio);
			}
		}
	}
	if (reaper_started) {
		/* It drains its queue (every send there is over or aborted)
		 * before it stops. */
		pthread_mutex_lock(&reaper.mu);
		reaper.stop = 1;
		pthread_cond_signal(&reaper.cv);
		pthread_mutex_unlock(&reaper.mu);
		pthread_join(reaper.thr, NULL);
	}
	if (ws != NULL) {
		for (i = 0; i < d->cfg.workers; i++) {
			if (!d->nng_stuck && ws[i].aio != NULL) {
				nng_aio_free(ws[i].aio);
			}
			if (!d->nng_stuck && ws[i].saio != NULL) {
				nng_aio_stop(ws[i].saio);
				send_done(&ws[i]);
				nng_aio_free(ws[i].saio);
			}
			worker_fini(&ws[i].w);
		}
		if (!d->nng_stuck) {
			free(ws);
		}
	}
	pthread_cond_destroy(&reaper.cv);
	pthread_mutex_destroy(&reaper.mu);
	return r;
}
