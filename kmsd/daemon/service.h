/*
 * service.h — kmsd as a service: telling systemd (Type=notify) when it is
 * ready, reloading and stopping, and what SIGHUP does.  Called from the
 * main thread only.
 */
#ifndef KMSD_DAEMON_SERVICE_H
#define KMSD_DAEMON_SERVICE_H

struct kmsd;

/* Serving: READY=1 with a status line (no-op outside systemd). */
void service_ready(const struct kmsd *d);
/* A stop signal arrived: STOPPING=1. */
void service_stopping(void);
/*
 * SIGHUP: read the configuration file again for what can change while
 * running (log_level, log_syslog) and reopen the log.  Everything else
 * needs a restart; a file that no longer parses is logged and ignored.
 */
void service_reload(struct kmsd *d);

#endif
