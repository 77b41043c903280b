/*
 * bench_echo.c — the transport baseline: an nng rep0 server built like
 * kmsd's (one socket, N workers each with its own context and aio, a
 * blocking receive/reply loop) that does no work but answer each request
 * with a reply of the size it asks for, and req0 clients built like
 * libkmsclient's (one socket per client, one context per request thread).
 *
 * The server runs in its own process (this binary re-executed with
 * --echo-server), as kmsd does, so client and server compete for the CPUs
 * the same way in both measurements.
 *
 * Request format: a 4-byte big-endian reply length, then padding up to the
 * size of the real operation's request.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "tools/bench.h"

#define ECHO_MAX_MESSAGE (1024 * 1024)	/* as kmsd's NNG_OPT_RECVMAXSZ */
#define ECHO_MAX_WORKERS 256
#define ECHO_HDR 4

struct echo_server {
	char dir[64];
	char url[128];
	char sock[128];
	pid_t pid;
};

struct echo_worker {
	nng_ctx ctx;
	nng_aio *aio;
	pthread_t thr;
};

static void *
echo_worker_main(void *arg)
{
	struct echo_worker *w = arg;

	for (;;) {
		nng_msg *m;
		uint8_t *b;
		size_t rl = 0;
		int rv;

		nng_ctx_recv(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if ((rv = nng_aio_result(w->aio)) != 0) {
			if (rv == NNG_ECLOSED) {
				break;
			}
			continue;
		}
		m = nng_aio_get_msg(w->aio);
		b = nng_msg_body(m);
		if (nng_msg_len(m) >= ECHO_HDR) {
			rl = (size_t)b[0] << 24 | (size_t)b[1] << 16 |
			    (size_t)b[2] << 8 | (size_t)b[3];
		}
		if (rl > ECHO_MAX_MESSAGE) {
			rl = ECHO_MAX_MESSAGE;
		}
		/* kmsd writes every byte of its reply: so do we. */
		if (nng_msg_realloc(m, rl) != 0) {
			nng_msg_free(m);
			continue;
		}
		memset(nng_msg_body(m), 'e', rl);
		nng_aio_set_msg(w->aio, m);
		nng_ctx_send(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if (nng_aio_result(w->aio) != 0) {
			nng_msg_free(nng_aio_get_msg(w->aio));
		}
	}
	return NULL;
}

int
echo_server_main(const char *url, int nworkers)
{
	struct echo_worker *ws;
	nng_socket s;
	int i, rv;

	if (nworkers < 1 || nworkers > ECHO_MAX_WORKERS) {
		fprintf(stderr, "echo: bad worker count\n");
		return 1;
	}
	if ((ws = calloc((size_t)nworkers, sizeof(*ws))) == NULL) {
		return 1;
	}
	if ((rv = nng_rep0_open(&s)) != 0) {
		fprintf(stderr, "echo: nng_rep0_open: %s\n", nng_strerror(rv));
		return 1;
	}
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, ECHO_MAX_MESSAGE);
	for (i = 0; i < nworkers; i++) {
		if ((rv = nng_ctx_open(&ws[i].ctx, s)) != 0 ||
		    (rv = nng_aio_alloc(&ws[i].aio, NULL, NULL)) != 0) {
			fprintf(stderr, "echo: %s\n", nng_strerror(rv));
			return 1;
		}
	}
	if ((rv = nng_listen(s, url, NULL, 0)) != 0) {
		fprintf(stderr, "echo: listen %s: %s\n", url,
		    nng_strerror(rv));
		return 1;
	}
	for (i = 0; i < nworkers; i++) {
		if (pthread_create(&ws[i].thr, NULL, echo_worker_main,
		    &ws[i]) != 0) {
			fprintf(stderr, "echo: cannot start workers\n");
			return 1;
		}
	}
	/* SIGTERM (default action) ends the process. */
	for (;;) {
		pause();
	}
}

int
echo_server_start(int nworkers, struct echo_server **out, char *err,
    size_t errlen)
{
	struct echo_server *es;
	struct timespec nap = { 0, 2 * 1000 * 1000 };
	char nw[16];
	int i, st;

	if ((es = calloc(1, sizeof(*es))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(es->dir, sizeof(es->dir), "/tmp/kms-bench-echo.XXXXXX");
	if (mkdtemp(es->dir) == NULL) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		free(es);
		return -1;
	}
	snprintf(es->sock, sizeof(es->sock), "%s/echo.sock", es->dir);
	snprintf(es->url, sizeof(es->url), "ipc://%s", es->sock);
	snprintf(nw, sizeof(nw), "%d", nworkers);
	fflush(NULL);
	if ((es->pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		rmdir(es->dir);
		free(es);
		return -1;
	}
	if (es->pid == 0) {
		int fd = open("/dev/null", O_RDONLY);

		if (fd >= 0) {
			dup2(fd, 0);
		}
		execl("/proc/self/exe", "kms-bench", "--echo-server", es->url,
		    "--echo-workers", nw, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 5000; i++) {
		if (access(es->sock, F_OK) == 0) {
			*out = es;
			return 0;
		}
		if (waitpid(es->pid, &st, WNOHANG) == es->pid) {
			es->pid = 0;
			break;
		}
		nanosleep(&nap, NULL);
	}
	snprintf(err, errlen, "the echo server did not start");
	echo_server_stop(es);
	return -1;
}

const char *
echo_server_url(const struct echo_server *es)
{
	return es->url;
}

pid_t
echo_server_pid(const struct echo_server *es)
{
	return es->pid;
}

void
echo_server_stop(struct echo_server *es)
{
	int st;

	if (es == NULL) {
		return;
	}
	if (es->pid > 0) {
		kill(es->pid, SIGTERM);
		while (waitpid(es->pid, &st, 0) < 0 && errno == EINTR) {
		}
	}
	unlink(es->sock);
	rmdir(es->dir);
	free(es);
}

struct echo_thr {
	nng_ctx ctx;
	nng_aio *aio;
	size_t req_len;
	size_t rep_len;
	uint64_t ops;			/* operations the real request carries */
};

static int
echo_req(void *arg, uint64_t *seed, uint64_t *ops, uint64_t *op_errors,
    char *err, size_t errlen)
{
	struct echo_thr *t = arg;
	nng_msg *m;
	uint8_t *b;
	int rv;

	(void)seed;
	*ops = t->ops;
	*op_errors = 0;
	/* A fresh message per request, as the client library does. */
	if ((rv = nng_msg_alloc(&m, t->req_len)) != 0) {
		snprintf(err, errlen, "echo: %s", nng_strerror(rv));
		return rv;
	}
	b = nng_msg_body(m);
	memset(b, 'r', t->req_len);
	b[0] = (uint8_t)(t->rep_len >> 24);
	b[1] = (uint8_t)(t->rep_len >> 16);
	b[2] = (uint8_t)(t->rep_len >> 8);
	b[3] = (uint8_t)t->rep_len;
	nng_aio_set_msg(t->aio, m);
	nng_ctx_send(t->ctx, t->aio);
	nng_aio_wait(t->aio);
	if ((rv = nng_aio_result(t->aio)) != 0) {
		nng_msg_free(m);
		snprintf(err, errlen, "echo send: %s", nng_strerror(rv));
		return rv;
	}
	nng_ctx_recv(t->ctx, t->aio);
	nng_aio_wait(t->aio);
	if ((rv = nng_aio_result(t->aio)) != 0) {
		snprintf(err, errlen, "echo recv: %s", nng_strerror(rv));
		return rv;
	}
	m = nng_aio_get_msg(t->aio);
	if (nng_msg_len(m) != t->rep_len) {
		snprintf(err, errlen, "echo: reply of %zu bytes, not %zu",
		    nng_msg_len(m), t->rep_len);
		nng_msg_free(m);
		return -1;
	}
	nng_msg_free(m);
	return 0;
}

int
echo_measure(const struct bench_opts *o, const char *url, pid_t pid,
    size_t req_len, size_t rep_len, struct bench_result *res, char *err,
    size_t errlen)
{
	nng_socket *socks = NULL;
	struct echo_thr *ts = NULL;
	void **args = NULL;
	struct bench_run run;
	int nthr = o->clients * o->outstanding, nsock = 0, i, rv, r = -1;

	if (req_len < ECHO_HDR) {
		req_len = ECHO_HDR;
	}
	if ((socks = calloc((size_t)o->clients, sizeof(*socks))) == NULL ||
	    (ts = calloc((size_t)nthr, sizeof(*ts))) == NULL ||
	    (args = calloc((size_t)nthr, sizeof(*args))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < o->clients; i++) {
		if ((rv = nng_req0_open(&socks[i])) != 0) {
			snprintf(err, errlen, "echo: %s", nng_strerror(rv));
			goto out;
		}
		nsock++;
		nng_socket_set_size(socks[i], NNG_OPT_RECVMAXSZ,
		    ECHO_MAX_MESSAGE);
		if ((rv = nng_dial(socks[i], url, NULL, 0)) != 0) {
			snprintf(err, errlen, "echo: dial %s: %s", url,
			    nng_strerror(rv));
			goto out;
		}
	}
	for (i = 0; i < nthr; i++) {
		if ((rv = nng_ctx_open(&ts[i].ctx,
		    socks[i / o->outstanding])) != 0 ||
		    (rv = nng_aio_alloc(&ts[i].aio, NULL, NULL)) != 0) {
			snprintf(err, errlen, "echo: %s", nng_strerror(rv));
			goto out;
		}
		ts[i].req_len = req_len;
		ts[i].rep_len = rep_len;
		ts[i].ops = (uint64_t)o->batch;
		args[i] = &ts[i];
	}
	memset(&run, 0, sizeof(run));
	run.nthreads = nthr;
	run.args = args;
	run.fn = echo_req;
	run.warmup = o->warmup;
	run.duration = o->duration;
	/* An echo of a Batch request stands for its batch of operations. */
	run.count = o->count;
	run.ops_per_req = (uint64_t)o->batch;
	run.watch_pid = pid;
	if (bench_run(&run, res) != 0) {
		snprintf(err, errlen, "echo: the run failed");
		goto out;
	}
	r = 0;
 out:
	if (ts != NULL) {
		for (i = 0; i < nthr; i++) {
			if (ts[i].aio != NULL) {
				nng_aio_free(ts[i].aio);
			}
		}
	}
	for (i = 0; i < nsock; i++) {
		nng_close(socks[i]);
	}
	free(socks);
	free(ts);
	free(args);
	return r;
}
