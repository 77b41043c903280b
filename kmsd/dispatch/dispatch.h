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

struct audit_origin;

/*
 * Handle one message (a request or a Batch) from principal p and return
 * the reply object (never NULL unless out of memory; the caller
 * json_decref()s it).  Every failure is a typed error object.  id is the
 * request id the front end gave its caller (audit_new_id's form), or NULL
 * for a new one; the log and the audit record name the request by it.
 */
json_t *dispatch(struct worker *w, const struct principal *p,
    const void *buf, size_t len, const char *id);
/* Same for a message a network front end has parsed already (msg,
 * taken: an object with "Action"), len the size of the bytes it came from
 * (at most JSON_MAX_MESSAGE), which bounds a single request as dispatch()
 * does; o (may be NULL) says where the caller came from, for its audit
 * record. */
json_t *dispatch_object(struct worker *w, const struct principal *p,
    const struct audit_origin *o, json_t *msg, size_t len, const char *id);
/*
 * 1 when the operation named is a quick one: one a Batch may hold (HSM
 * calls and cached reads, no key generation, no store write) or a name
 * that is answered at once as unknown.  0 for Batch and the rest.  A front
 * end may run quick ones on the thread that reads its connections.
 */
int dispatch_op_quick(const char *name);
/* Same, serialised: malloc'd bytes (for tests and fuzzing). */
char *dispatch_bytes(struct worker *w, const struct principal *p,
    const void *buf, size_t len, size_t *outlen);

#endif
