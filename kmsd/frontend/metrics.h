/*
 * metrics.h — what kmsd has done, for Prometheus: requests and errors per
 * operation, latency histograms, the HSM's state, cached key handles,
 * connections per front end; served as Prometheus text on its own
 * listener (metrics_listen: GET /metrics), apart from the API.  Counts and
 * names only: no key material, no request content, no principal.
 *
 * The counters are process-wide and lock-free to update (a mutex only the
 * first time an operation or error name is seen).  Thread-safe.
 */
#ifndef KMSD_FRONTEND_METRICS_H
#define KMSD_FRONTEND_METRICS_H

#include <stddef.h>

#include <jansson.h>

struct kmsd;
struct principal;
struct metrics_front;

/* Seconds on a monotonic clock, for metrics_observe. */
double metrics_now(void);
/*
 * Count one answered message: its front end (from p->source), its
 * "Action" (NULL when unreadable), the reply (an error's "__type" counts
 * as that error) and how long it took.
 */
void metrics_observe(const struct principal *p, const char *op,
    const json_t *resp, double seconds);
/* The text exposition, malloc'd, NUL-terminated; NULL when out of memory. */
char *metrics_render(struct kmsd *d, size_t *len);

/* Serve GET /metrics on cfg.metrics_listen when set (*out NULL when not). */
int metrics_start(struct kmsd *d, struct metrics_front **out, char *err,
    size_t errlen);
void metrics_stop(struct metrics_front *m);

#endif
