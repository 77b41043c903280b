/*
 * service.c — see service.h.  sd_notify() does nothing when kmsd was not
 * started by systemd ($NOTIFY_SOCKET unset), so the same binary runs in a
 * terminal, under `make run` and as a unit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "kmsd/daemon/service.h"
#include "kmsd/kmsd.h"

void
service_ready(const struct kmsd *d)
{
	(void)sd_notifyf(0, "READY=1\nSTATUS=serving on %s (%d workers)",
	    d->cfg.listen, d->cfg.workers);
}

void
service_stopping(void)
{
	(void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void
service_reload(struct kmsd *d)
{
	struct config *c = NULL;
	char err[512];

	(void)sd_notify(0, "RELOADING=1");
	if (d->cfg.config_path[0] == '\0') {
		log_open("kmsd", d->cfg.log_level, d->cfg.log_syslog);
		log_info("SIGHUP: log reopened (no configuration file)");
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_error("SIGHUP: out of memory");
		goto out;
	}
	config_defaults(c, d->cfg.state_dir);
	err[0] = '\0';
	if (config_load(c, d->cfg.config_path, err, sizeof(err)) != 0) {
		log_warn("SIGHUP: %s; keeping the settings in force", err);
		log_open("kmsd", d->cfg.log_level, d->cfg.log_syslog);
		goto out;
	}
	d->cfg.log_level = c->log_level;
	d->cfg.log_syslog = c->log_syslog;
	log_open("kmsd", d->cfg.log_level, d->cfg.log_syslog);
	log_info("SIGHUP: %s read again (log_level, log_syslog); other "
	    "settings take effect at the next start", d->cfg.config_path);
 out:
	free(c);
	(void)sd_notify(0, "READY=1");
}
