/*
 * log.c — see log.h.  The level and destination are read without a lock
 * (atomics): log_open() runs at start-up and on SIGHUP, while workers may
 * be logging.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "common/log.h"

#define LOG_LINE_MAX 2048

static atomic_int log_level_now = LOG_LEVEL_INFO;
static atomic_int log_to_syslog;
static char log_ident[32] = "kmsd";
static _Thread_local char log_request[LOG_REQUEST_ID_MAX];

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
log_open(const char *ident, int level, int use_syslog)
{
	if (ident != NULL && ident[0] != '\0') {
		snprintf(log_ident, sizeof(log_ident), "%s", ident);
	}
	if (level < LOG_LEVEL_ERROR) {
		level = LOG_LEVEL_ERROR;
	}
	if (level > LOG_LEVEL_DEBUG) {
		level = LOG_LEVEL_DEBUG;
	}
	atomic_store(&log_level_now, level);
	if (use_syslog) {
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
	atomic_store(&log_to_syslog, use_syslog != 0);
}

int
log_level_parse(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0]));
	    i++) {
		if (strcmp(name, level_names[i]) == 0) {
			return i;
		}
	}
	return -1;
}

void
log_set_request(const char *id)
{
	if (id == NULL) {
		log_request[0] = '\0';
		return;
	}
	snprintf(log_request, sizeof(log_request), "%s", id);
}

void
log_msg(int level, const char *func, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[LOG_LINE_MAX];
	size_t n = 0;
	va_list ap;
	int saved = errno, k;

	if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_DEBUG ||
	    level > atomic_load(&log_level_now)) {
		return;
	}
	if (!atomic_load(&log_to_syslog)) {
		k = snprintf(line, sizeof(line), "%s[%d]: ", log_ident,
		    (int)getpid());
		n = k > 0 ? (size_t)k : 0;
	}
	k = snprintf(line + n, sizeof(line) - n, "%s: %s: ",
	    level_names[level], func);
	n += k > 0 ? (size_t)k : 0;
	if (log_request[0] != '\0' && n < sizeof(line)) {
		k = snprintf(line + n, sizeof(line) - n, "req %s: ",
		    log_request);
		n += k > 0 ? (size_t)k : 0;
	}
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		n += k > 0 ? (size_t)k : 0;
	}
	if (n >= sizeof(line) - 1) {
		n = sizeof(line) - 2;	/* truncated: still one line */
	}
	/* One line whatever the message held. */
	for (size_t i = 0; i < n; i++) {
		if (line[i] == '\n' || line[i] == '\r') {
			line[i] = ' ';
		}
	}
	if (atomic_load(&log_to_syslog)) {
		line[n] = '\0';
		syslog(prio[level], "%s", line);
	} else {
		line[n++] = '\n';
		ssize_t w = write(STDERR_FILENO, line, n);
		(void)w;
	}
	errno = saved;
}
