/*
 * dispatch.h — request bytes and a proven principal in, reply JSON out
 * (dispatch.c).  Knows no transport: the IPC and HTTP front ends and the
 * fuzzer call it alike.
 *
 * Thread safety: called by one worker thread at a time per struct worker
 * (its HSM session and store connection are its own); takes hsm_turn for
 * reading for the whole request.  Ownership: the reply is the caller's.
 */
#ifndef KMSD_DISPATCH_DISPATCH_H
#define KMSD_DISPATCH_DISPATCH_H

#include <stddef.h>

#include <jansson.h>

#include "kmsd/frontend/principal.h"
#include "kmsd/kmsd.h"

/*
 * Handle one message (a request or a Batch) from principal p and return
 * the reply object (never NULL unless out of memory; the caller
 * json_decref()s it).  Every failure is a typed error object.
 */
json_t *dispatch(struct worker *w, const struct principal *p,
    const void *buf, size_t len);
/* Same, serialised: malloc'd bytes (for tests and fuzzing). */
char *dispatch_bytes(struct worker *w, const struct principal *p,
    const void *buf, size_t len, size_t *outlen);

#endif
