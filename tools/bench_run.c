/*
 * bench_run.c — the closed-loop load runner: nthreads threads, each one
 * request in flight, a warm-up that is not counted, then a measured
 * interval bounded by time or by an operation count.  Every thread keeps
 * its own latency samples; they are merged and sorted once at the end.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/bench.h"

struct thr {
	const struct bench_run *r;
	struct shared *sh;
	void *arg;
	uint64_t seed;
	struct bench_samples s;
	uint64_t ops, requests, errors, warm_errors;
	double last_end;
	int oom;
	pthread_t tid;
};

struct shared {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int go;
	int abort;			/* a thread failed to start */
	double t0, warm_end, end;	/* end: 0 in count mode */
	atomic_uint_fast64_t claimed;
	char first_error[BENCH_ERR_MAX];
	int have_error;
};

static pthread_mutex_t note_mu = PTHREAD_MUTEX_INITIALIZER;
static int noted;

/* The first error of the whole program goes to stderr, once. */
void
bench_note_error(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&note_mu);
	if (!noted) {
		noted = 1;
		fputs("kms-bench: first error: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&note_mu);
}

double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: fast, per thread, good enough to pick keys. */
uint64_t
bench_rand(uint64_t *seed)
{
	uint64_t x = *seed;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*seed = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static int
sample_add(struct bench_samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 4096;
		uint64_t *p = realloc(s->ns, ncap * sizeof(*p));

		if (p == NULL) {
			return -1;
		}
		s->ns = p;
		s->cap = ncap;
	}
	s->ns[s->n++] = ns;
	return 0;
}

static void *
thr_main(void *a)
{
	struct thr *t = a;
	const struct bench_run *r = t->r;
	struct shared *sh = t->sh;
	char err[BENCH_ERR_MAX];

	pthread_mutex_lock(&sh->mu);
	while (!sh->go) {
		pthread_cond_wait(&sh->cv, &sh->mu);
	}
	pthread_mutex_unlock(&sh->mu);
	if (sh->abort) {
		return NULL;
	}

	for (;;) {
		double start = bench_now(), fin;
		uint64_t ops = 0, op_errors = 0;
		int measured = start >= sh->warm_end, rv;

		if (r->count > 0) {
			if (measured && atomic_fetch_add(&sh->claimed,
			    r->ops_per_req) >= r->count) {
				break;
			}
		} else if (start >= sh->end) {
			break;
		}
		err[0] = '\0';
		rv = r->fn(t->arg, &t->seed, &ops, &op_errors, err,
		    sizeof(err));
		fin = bench_now();
		if (rv != 0 || op_errors > 0) {
			pthread_mutex_lock(&sh->mu);
			if (!sh->have_error) {
				sh->have_error = 1;
				snprintf(sh->first_error,
				    sizeof(sh->first_error), "%s",
				    err[0] ? err : "error");
			}
			pthread_mutex_unlock(&sh->mu);
			bench_note_error("%s", err[0] ? err : "error");
		}
		if (!measured) {
			t->warm_errors += rv != 0 || op_errors > 0;
			continue;
		}
		t->requests++;
		if (rv != 0) {
			t->errors += ops ? ops : r->ops_per_req;
		} else {
			t->ops += ops - op_errors;
			t->errors += op_errors;
		}
		t->last_end = fin;
		if (sample_add(&t->s, (uint64_t)((fin - start) * 1e9)) != 0) {
			t->oom = 1;
			break;
		}
	}
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0) {
		return 0;
	}
	/* Nearest rank: the smallest sample with at least p of them ≤ it. */
	i = (size_t)(p * (double)n + 0.999999);
	if (i == 0) {
		i = 1;
	}
	if (i > n) {
		i = n;
	}
	return (double)v[i - 1] / 1000.0;
}

int
bench_run(const struct bench_run *r, struct bench_result *out)
{
	struct shared sh;
	struct thr *ts;
	uint64_t *all = NULL;
	size_t nall = 0, k;
	double cpu0 = -1, cpu1 = -1, last = 0;
	long long cs0 = -1, cs1 = -1;
	int i, started = 0, rc = -1;
	struct timespec nap;

	memset(out, 0, sizeof(*out));
	out->cpu_s = -1;
	out->ctx_switches = -1;
	out->peak_rss_kib = -1;
	if (r->nthreads < 1 || r->nthreads > BENCH_MAX_THREADS) {
		return -1;
	}
	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	pthread_cond_init(&sh.cv, NULL);
	atomic_init(&sh.claimed, 0);
	if ((ts = calloc((size_t)r->nthreads, sizeof(*ts))) == NULL) {
		return -1;
	}
	for (i = 0; i < r->nthreads; i++) {
		ts[i].r = r;
		ts[i].sh = &sh;
		ts[i].arg = r->args[i];
		ts[i].seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1) ^
		    (uint64_t)time(NULL);
		if (pthread_create(&ts[i].tid, NULL, thr_main, &ts[i]) != 0) {
			break;
		}
		started++;
	}
	pthread_mutex_lock(&sh.mu);
	sh.t0 = bench_now();
	sh.warm_end = sh.t0 + r->warmup;
	sh.end = r->count > 0 ? 0 : sh.warm_end + r->duration;
	/* If a thread failed to start, the others stop at once. */
	sh.abort = started != r->nthreads;
	sh.go = 1;
	pthread_cond_broadcast(&sh.cv);
	pthread_mutex_unlock(&sh.mu);

	/* CPU of the watched process over the measured interval. */
	for (; !sh.abort;) {
		double left = sh.warm_end - bench_now();

		if (left <= 0) {
			break;
		}
		nap.tv_sec = (time_t)left;
		nap.tv_nsec = (long)((left - (double)nap.tv_sec) * 1e9);
		nanosleep(&nap, NULL);
	}
	if (r->watch_pid > 0) {
		cpu0 = proc_cpu_seconds(r->watch_pid);
		cs0 = proc_ctx_switches(r->watch_pid);
	}
	for (i = 0; i < started; i++) {
		pthread_join(ts[i].tid, NULL);
	}
	if (r->watch_pid > 0) {
		cpu1 = proc_cpu_seconds(r->watch_pid);
		cs1 = proc_ctx_switches(r->watch_pid);
		out->peak_rss_kib = proc_status_kib(r->watch_pid, "VmHWM");
		if (cpu0 >= 0 && cpu1 >= 0) {
			out->cpu_s = cpu1 - cpu0;
		}
		if (cs0 >= 0 && cs1 >= cs0) {
			out->ctx_switches = cs1 - cs0;
		}
	}
	if (started != r->nthreads) {
		goto out;
	}

	for (i = 0; i < r->nthreads; i++) {
		if (ts[i].oom) {
			goto out;
		}
		nall += ts[i].s.n;
		out->ops += ts[i].ops;
		out->requests += ts[i].requests;
		out->errors += ts[i].errors;
		out->warmup_errors += ts[i].warm_errors;
		if (ts[i].last_end > last) {
			last = ts[i].last_end;
		}
	}
	if ((all = malloc((nall ? nall : 1) * sizeof(*all))) == NULL) {
		goto out;
	}
	for (i = 0, k = 0; i < r->nthreads; i++) {
		/* A thread may have measured nothing (--count reached by
		 * the others): its sample array is NULL. */
		if (ts[i].s.n > 0) {
			memcpy(all + k, ts[i].s.ns, ts[i].s.n * sizeof(*all));
		}
		k += ts[i].s.n;
	}
	qsort(all, nall, sizeof(*all), cmp_u64);
	out->lat.p50 = pct(all, nall, 0.50);
	out->lat.p90 = pct(all, nall, 0.90);
	out->lat.p99 = pct(all, nall, 0.99);
	out->lat.p999 = pct(all, nall, 0.999);
	out->lat.max = nall ? (double)all[nall - 1] / 1000.0 : 0;
	/* In time mode the interval is the planned one, unless the last
	 * request ended later; in count mode it ends with the last reply. */
	if (r->count == 0 && sh.end > last) {
		last = sh.end;
	}
	out->elapsed_s = last > sh.warm_end ? last - sh.warm_end : 0;
	out->ops_per_s = out->elapsed_s > 0 ?
	    (double)out->ops / out->elapsed_s : 0;
	snprintf(out->first_error, sizeof(out->first_error), "%s",
	    sh.first_error);
	rc = 0;
 out:
	for (i = 0; i < r->nthreads; i++) {
		free(ts[i].s.ns);
	}
	free(ts);
	free(all);
	pthread_mutex_destroy(&sh.mu);
	pthread_cond_destroy(&sh.cv);
	return rc;
}
