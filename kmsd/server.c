/*
 * server.c — the nng front end: one rep0 socket on the IPC listener, a pool
 * of workers each owning an nng context (driven by aio callbacks on nng's
 * task threads), an HSM session and a store connection, and a scheduler
 * thread that brings the HSM back after an outage.  The caller's identity comes from the kernel through the pipe
 * (NNG_OPT_IPC_PEER_UID/GID/PID), never from the request.
 *
 * Life: server_run() blocks SIGINT/SIGTERM, starts everything, waits for a
 * signal, then closes the socket (which aborts every worker's receive) and
 * waits for callbacks still running.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>

#include "common/err.h"
#include "common/json.h"
#include "common/secmem.h"
#include "kmsd/kmsd.h"

#define PIPE_CREDS_CACHE 16	/* per worker, direct-mapped by pipe id */

struct srv_worker {
	struct worker w;
	nng_socket sock;
	nng_ctx ctx;
	nng_aio *aio;
	int sending;			/* aio carries a reply */
	int started;
	char *out;			/* reply serialisation buffer */
	size_t outcap;
	/* A pipe's peer cannot change: its credentials, read once. */
	struct {
		uint32_t pipe;
		uint64_t uid, gid, pid;
	} creds[PIPE_CREDS_CACHE];
};

#define REPLY_BUF_INITIAL (64 * 1024)

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
	json_t *resp;
	size_t n;
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
		static const char oom[] = "{\"__type\":\"KMSInternal"
		    "Exception\",\"message\":\"out of memory\"}";
		return nng_msg_append(m, oom, sizeof(oom) - 1);
	}
	/* Serialise once into the worker's buffer (a second pass only when
	 * it must grow), then one copy into the message. */
	n = json_write_compact(resp, sw->out, sw->outcap);
	if (n > sw->outcap) {
		/* Grow by hand, not realloc: the old buffer held a reply and
		 * is wiped before it is freed. */
		char *nb = malloc(n);
		if (nb != NULL) {
			secure_wipe(sw->out, sw->outcap);
			free(sw->out);
			sw->out = nb;
			sw->outcap = n;
			n = json_write_compact(resp, sw->out, sw->outcap);
		}
	}
	rv = n <= sw->outcap && n > 0 ? nng_msg_append(m, sw->out, n) :
	    NNG_ENOMEM;
	secure_wipe(sw->out, n <= sw->outcap ? n : 0);
	json_decref(resp);
	return rv;
}

/*
 * A worker is a state machine driven by its aio's completions, run on
 * nng's task threads: no thread of ours waits in between, so a request
 * costs no extra wake-ups.  One context's callbacks never overlap, so the
 * worker's HSM session, store connection and buffers are its own.
 */
static void
worker_cb(void *arg)
{
	struct srv_worker *sw = arg;
	nng_msg *m;
	int rv = nng_aio_result(sw->aio);

	if (sw->sending) {
		sw->sending = 0;
		if (rv != 0) {
			wipe_free(nng_aio_get_msg(sw->aio));
		}
	} else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		return;		/* shutting down */
	} else if (rv == 0) {
		m = nng_aio_get_msg(sw->aio);
		if (serve(sw, m) == 0) {
			nng_aio_set_msg(sw->aio, m);
			sw->sending = 1;
			nng_ctx_send(sw->ctx, sw->aio);
			return;
		}
		wipe_free(m);
	}
	if (atomic_load(&sw->w.d->stopping)) {
		return;
	}
	nng_ctx_recv(sw->ctx, sw->aio);
}

struct sched {
	struct kmsd *d;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
};

/* Brings the HSM back after an outage; later also deletions and rotation. */
static void *
sched_main(void *arg)
{
	struct sched *s = arg;
	struct timespec ts;

	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)s->d->cfg.hsm_retry_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		if (s->stop) {
			break;
		}
		if (hsm_is_down(s->d->hsm)) {
			pthread_mutex_unlock(&s->mu);
			if (hsm_recover(s->d->hsm) == 0) {
				keycache_invalidate_handles(s->d->keys);
				fprintf(stderr, "kmsd: HSM is back\n");
			}
			pthread_mutex_lock(&s->mu);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
server_run(struct kmsd *d, char *err, size_t errlen)
{
	struct srv_worker *ws = NULL;
	struct sched sched;
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	nng_listener l;
	sigset_t set;
	int i, rv, sig, r = KMS_EINTERNAL, sched_started = 0, sock_open = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	memset(&sched, 0, sizeof(sched));
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
	for (i = 0; i < d->cfg.workers; i++) {
		ws[i].sock = sock;
		if ((ws[i].out = malloc(REPLY_BUF_INITIAL)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		ws[i].outcap = REPLY_BUF_INITIAL;
		if ((rv = nng_ctx_open(&ws[i].ctx, sock)) != 0 ||
		    (rv = nng_aio_alloc(&ws[i].aio, worker_cb, &ws[i])) != 0) {
			snprintf(err, errlen, "nng: %s", nng_strerror(rv));
			goto out;
		}
	}
	if ((rv = nng_listener_create(&l, sock, d->cfg.listen)) != 0 ||
	    (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS,
	    (int)d->cfg.socket_mode)) != 0 ||
	    (rv = nng_listener_start(l, 0)) != 0) {
		snprintf(err, errlen, "listen %s: %s", d->cfg.listen,
		    nng_strerror(rv));
		goto out;
	}
	for (i = 0; i < d->cfg.workers; i++) {
		ws[i].started = 1;
		nng_ctx_recv(ws[i].ctx, ws[i].aio);
	}
	sched.d = d;
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
	if (sock_open) {
		nng_close(sock);
	}
	if (ws != NULL) {
		for (i = 0; i < d->cfg.workers; i++) {
			/* Waits for a callback still running. */
			if (ws[i].aio != NULL) {
				nng_aio_stop(ws[i].aio);
				nng_aio_free(ws[i].aio);
			}
			free(ws[i].out);
			worker_fini(&ws[i].w);
		}
		free(ws);
	}
	return r;
}
