/*
 * daemon.h — the daemon's life cycle (daemon.c): open and close the HSM,
 * the store and the key cache; each worker's HSM session and store
 * connection; the scheduler's HSM tending.
 *
 * Thread safety: kmsd_open/kmsd_close run on the main thread with no
 * worker running; worker_init/worker_fini on the thread that owns the
 * worker; kmsd_hsm_tend on the scheduler thread only.  Ownership: struct
 * kmsd owns the HSM, key cache, authorisation and audit log; a struct
 * worker owns its session and store connection.
 */
#ifndef KMSD_DAEMON_DAEMON_H
#define KMSD_DAEMON_DAEMON_H

#include <stddef.h>

#include "kmsd/kmsd.h"

/* Open HSM, store, key cache; 0 or error with a sentence in err. */
int kmsd_open(struct kmsd *d, char *err, size_t errlen);
void kmsd_close(struct kmsd *d);
int worker_init(struct kmsd *d, int id, struct worker *w, char *err,
    size_t errlen);
void worker_fini(struct worker *w);
/*
 * The scheduler's HSM duties, called every tick: after an outage, try to
 * recover every cfg.hsm_retry_ms; once cfg.hsm_recycle_objects session
 * objects have been made, re-initialise the module (SoftHSM2 2.6.1 frees
 * destroyed session objects only at C_Finalize).  Both run with hsm_turn
 * held for writing and drop the cached handles; each logs one line.
 */
void kmsd_hsm_tend(struct kmsd *d);

#endif
