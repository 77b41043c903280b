/*
 * ipc.h — the IPC front end (ipc.c): nng's req0/rep0 wire on a Unix
 * socket, the connections, the worker pool and the scheduler.
 *
 * Thread safety: server_run runs on the main thread and returns when the
 * daemon stops (d->stopping); it starts and joins every other thread.
 */
#ifndef KMSD_FRONTEND_IPC_H
#define KMSD_FRONTEND_IPC_H

#include <stddef.h>

#include "kmsd/kmsd.h"

/* Serve until d->stopping; 0 or an error with a sentence in err. */
int server_run(struct kmsd *d, char *err, size_t errlen);

#endif
