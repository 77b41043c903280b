/*
 * metrics.c — counters and the Prometheus text endpoint (metrics.h).
 *
 * Operations and error names get a slot the first time they are seen;
 * slots are published by bumping a count after they are filled, so
 * readers and updaters never lock.  Only names the dispatcher accepted
 * get their own slot: an unknown operation or an unreadable message
 * counts as operation "-", so a caller cannot fill the table with names
 * of its choosing.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netdb.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "kmsd/frontend/http.h"
#include "kmsd/frontend/metrics.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"

#define MET_OPS_MAX 96		/* operations (kmsd has about 40) */
#define MET_ERRS_MAX 512	/* (operation, error) pairs */
#define MET_NAME_MAX 64
#define MET_BODY_MAX (1024 * 1024)

enum { FE_IPC, FE_HTTP, FE_N };
static const char *const fe_name[FE_N] = { "ipc", "http" };

/* Upper bounds of the latency buckets, in seconds (+Inf implied). */
static const double buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10 };
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct op_slot {
	char name[MET_NAME_MAX];
	atomic_uint_fast64_t requests[FE_N];
	atomic_uint_fast64_t bucket[NBUCKETS + 1];
	atomic_uint_fast64_t sum_us;
};

struct err_slot {
	int op;
	char name[MET_NAME_MAX];
	atomic_uint_fast64_t count;
};

static struct op_slot ops[MET_OPS_MAX];
static atomic_int nops;
static struct err_slot errs[MET_ERRS_MAX];
static atomic_int nerrs;
static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;

double
metrics_now(void)
{
	return clock_mono_s();
}

static int
find_op(const char *name)
{
	int i, n = atomic_load_explicit(&nops, memory_order_acquire);

	for (i = 0; i < n; i++) {
		if (strcmp(ops[i].name, name) == 0) {
			return i;
		}
	}
	pthread_mutex_lock(&slot_mu);
	n = atomic_load(&nops);
	for (; i < n; i++) {
		if (strcmp(ops[i].name, name) == 0) {
			break;
		}
	}
	if (i == n) {
		if (n == MET_OPS_MAX) {
			i = 0;		/* slot 0 is "-" */
		} else {
			snprintf(ops[n].name, sizeof(ops[n].name), "%s", name);
			atomic_store_explicit(&nops, n + 1,
			    memory_order_release);
		}
	}
	pthread_mutex_unlock(&slot_mu);
	return i;
}

static struct err_slot *
find_err(int op, const char *name)
{
	int i, n = atomic_load_explicit(&nerrs, memory_order_acquire);
	struct err_slot *e = NULL;

	for (i = 0; i < n; i++) {
		if (errs[i].op == op && strcmp(errs[i].name, name) == 0) {
			return &errs[i];
		}
	}
	pthread_mutex_lock(&slot_mu);
	n = atomic_load(&nerrs);
	for (; i < n; i++) {
		if (errs[i].op == op && strcmp(errs[i].name, name) == 0) {
			e = &errs[i];
			break;
		}
	}
	if (e == NULL && n < MET_ERRS_MAX) {
		errs[n].op = op;
		snprintf(errs[n].name, sizeof(errs[n].name), "%s", name);
		e = &errs[n];
		atomic_store_explicit(&nerrs, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&slot_mu);
	return e;
}

void
metrics_observe(const struct principal *p, const char *op,
    const json_t *resp, double seconds)
{
	const json_t *t = resp != NULL ? json_object_get(resp, "__type") :
	    NULL;
	const char *err = json_is_string(t) ? json_string_value(t) : NULL;
	struct op_slot *s;
	struct err_slot *e;
	size_t b;
	int fe = p != NULL && strcmp(p->source, "ipc") != 0 ? FE_HTTP :
	    FE_IPC, i;

	if (atomic_load(&nops) == 0) {
		find_op("-");		/* slot 0 */
	}
	if (op == NULL || strlen(op) >= MET_NAME_MAX || (err != NULL &&
	    (strcmp(err, "UnknownOperationException") == 0 ||
	    strcmp(err, "SerializationException") == 0))) {
		op = "-";
	}
	if (resp == NULL) {
		err = "KMSInternalException";
	}
	i = find_op(op);
	s = &ops[i];
	atomic_fetch_add_explicit(&s->requests[fe], 1, memory_order_relaxed);
	for (b = 0; b < NBUCKETS && seconds > buckets[b]; b++) {
	}
	atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->sum_us, (uint64_t)(seconds * 1e6),
	    memory_order_relaxed);
	if (err != NULL && strlen(err) < MET_NAME_MAX &&
	    (e = find_err(i, err)) != NULL) {
		atomic_fetch_add_explicit(&e->count, 1, memory_order_relaxed);
	}
}

/* ---- exposition ---- */

struct out {
	char *p;
	size_t len, cap;
	int oom;
};

static void
put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (o->oom) {
			return;
		}
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		if (o->cap * 2 > MET_BODY_MAX) {
			o->oom = 1;
			return;
		}
		char *q = realloc(o->p, o->cap * 2);
		if (q == NULL) {
			o->oom = 1;
			return;
		}
		o->p = q;
		o->cap *= 2;
	}
}

char *
metrics_render(struct kmsd *d, size_t *len)
{
	struct out o = { malloc(16384), 0, 16384, 0 };
	int i, n = atomic_load_explicit(&nops, memory_order_acquire);
	int ne = atomic_load_explicit(&nerrs, memory_order_acquire), f;
	size_t b;

	if (o.p == NULL) {
		return NULL;
	}
	o.p[0] = '\0';
	put(&o, "# HELP kmsd_requests_total Messages answered, by front end "
	    "and operation (a Batch counts once, as Batch).\n"
	    "# TYPE kmsd_requests_total counter\n");
	for (i = 0; i < n; i++) {
		for (f = 0; f < FE_N; f++) {
			uint64_t v = atomic_load(&ops[i].requests[f]);
			if (v > 0) {
				put(&o, "kmsd_requests_total{frontend=\"%s\","
				    "operation=\"%s\"} %llu\n", fe_name[f],
				    ops[i].name, (unsigned long long)v);
			}
		}
	}
	put(&o, "# HELP kmsd_errors_total Error answers, by operation and AWS "
	    "error name.\n# TYPE kmsd_errors_total counter\n");
	for (i = 0; i < ne; i++) {
		put(&o, "kmsd_errors_total{operation=\"%s\",error=\"%s\"} %llu\n",
		    ops[errs[i].op].name, errs[i].name, (unsigned long long)
		    atomic_load(&errs[i].count));
	}
	put(&o, "# HELP kmsd_request_duration_seconds Time from a message "
	    "read to its answer made, by operation.\n"
	    "# TYPE kmsd_request_duration_seconds histogram\n");
	for (i = 0; i < n; i++) {
		uint64_t cum = 0;
		for (b = 0; b <= NBUCKETS; b++) {
			cum += atomic_load(&ops[i].bucket[b]);
			if (b < NBUCKETS) {
				put(&o, "kmsd_request_duration_seconds_bucket{"
				    "operation=\"%s\",le=\"%g\"} %llu\n",
				    ops[i].name, buckets[b],
				    (unsigned long long)cum);
			} else {
				put(&o, "kmsd_request_duration_seconds_bucket{"
				    "operation=\"%s\",le=\"+Inf\"} %llu\n",
				    ops[i].name, (unsigned long long)cum);
			}
		}
		put(&o, "kmsd_request_duration_seconds_sum{operation=\"%s\"} "
		    "%.6f\n", ops[i].name, (double)atomic_load(
		    &ops[i].sum_us) / 1e6);
		put(&o, "kmsd_request_duration_seconds_count{operation=\"%s\"} "
		    "%llu\n", ops[i].name, (unsigned long long)cum);
	}
	put(&o, "# HELP kmsd_hsm_up 1 while the HSM answers, 0 while kmsd "
	    "is trying to get it back.\n# TYPE kmsd_hsm_up gauge\n"
	    "kmsd_hsm_up %d\n", d->hsm != NULL && !hsm_is_down(d->hsm));
	put(&o, "# HELP kmsd_hsm_recoveries_total Times the HSM came back "
	    "after an outage.\n# TYPE kmsd_hsm_recoveries_total counter\n"
	    "kmsd_hsm_recoveries_total %llu\n", (unsigned long long)
	    atomic_load(&d->hsm_recoveries));
	put(&o, "# HELP kmsd_hsm_recycles_total Times the PKCS#11 module was "
	    "re-initialised (hsm_recycle_objects).\n"
	    "# TYPE kmsd_hsm_recycles_total counter\n"
	    "kmsd_hsm_recycles_total %llu\n", (unsigned long long)
	    atomic_load(&d->hsm_recycles));
	put(&o, "# HELP kmsd_key_cache_handles Key versions held as HSM "
	    "objects now (at most key_cache_handles).\n"
	    "# TYPE kmsd_key_cache_handles gauge\n"
	    "kmsd_key_cache_handles %zu\n", d->keys != NULL ?
	    keycache_handles(d->keys) : 0);
	put(&o, "# HELP kmsd_connections Open client connections, by front "
	    "end.\n# TYPE kmsd_connections gauge\n"
	    "kmsd_connections{frontend=\"ipc\"} %d\n"
	    "kmsd_connections{frontend=\"http\"} %d\n",
	    atomic_load(&d->ipc_connections),
	    atomic_load(&d->http_connections));
	put(&o, "# HELP kmsd_http_queued HTTP requests waiting for a thread "
	    "of http_workers.\n# TYPE kmsd_http_queued gauge\n"
	    "kmsd_http_queued %d\n", atomic_load(&d->http_queued));
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}

/* ---- the listener ---- */

struct metrics_front {
	struct kmsd *d;
	struct MHD_Daemon *mhd;
};

static enum MHD_Result
on_metrics(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct metrics_front *m = cls;
	struct MHD_Response *resp;
	enum MHD_Result r;
	static const char nf[] = "GET /metrics\n";
	char *body;
	size_t len = 0;

	if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
		resp = MHD_create_response_from_buffer(sizeof(nf) - 1,
		    (void *)nf, MHD_RESPMEM_PERSISTENT);
		r = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, resp);
		MHD_destroy_response(resp);
		return r;
	}
	if ((body = metrics_render(m->d, &len)) == NULL) {
		return MHD_NO;
	}
	resp = MHD_create_response_from_buffer(len, body,
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; version=0.0.4; charset=utf-8");
	r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}

int
metrics_start(struct kmsd *d, struct metrics_front **out, char *err,
    size_t errlen)
{
	struct metrics_front *m;
	struct addrinfo *ai = NULL;
	const union MHD_DaemonInfo *di;

	*out = NULL;
	if (d->cfg.metrics_listen[0] == '\0') {
		return 0;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return KMS_ENOMEM;
	}
	m->d = d;
	if (http_resolve_listen("metrics_listen", d->cfg.metrics_listen, &ai,
	    err, errlen) != 0) {
		free(m);
		return KMS_EVALIDATION;
	}
	m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_EPOLL | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, NULL, NULL, on_metrics, m,
	    MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	    MHD_OPTION_END);
	if (m->mhd == NULL) {
		snprintf(err, errlen, "metrics_listen %s: cannot start the "
		    "listener", d->cfg.metrics_listen);
		freeaddrinfo(ai);
		free(m);
		return KMS_EINTERNAL;
	}
	di = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_BIND_PORT);
	printf("kmsd: metrics on %.*s:%u\n", (int)(strrchr(
	    d->cfg.metrics_listen, ':') - d->cfg.metrics_listen),
	    d->cfg.metrics_listen, di != NULL ? (unsigned)di->port : 0);
	fflush(stdout);
	freeaddrinfo(ai);
	*out = m;
	return 0;
}

void
metrics_stop(struct metrics_front *m)
{
	if (m == NULL) {
		return;
	}
	MHD_stop_daemon(m->mhd);
	free(m);
}
