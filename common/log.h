/*
 * log.h — the daemon's one way to say something to its operator.
 *
 * A line is "kmsd[pid]: <level>: <function>: [req <id>: ]<message>" on
 * standard error, or the same without the prefix through syslog (and so
 * journald) when log_open() was asked for it.  The request id is a
 * per-thread value that the front end sets while it serves a request, so
 * every line said on a request's behalf names it.  Thread-safe: one
 * write(2) or syslog(3) call per line.  Never pass a secret: lines go to
 * files and journals other people read.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

enum log_level {
	LOG_LEVEL_ERROR = 0,	/* something failed that an operator must see */
	LOG_LEVEL_WARN,		/* degraded, refused or retried */
	LOG_LEVEL_INFO,		/* life-cycle: start, stop, HSM back, recycle */
	LOG_LEVEL_DEBUG,	/* per-request detail */
};

#define LOG_REQUEST_ID_MAX 40

/* Where lines go and which are said; may be called again (SIGHUP). */
void log_open(const char *ident, int level, int use_syslog);
/* "error", "warn", "info", "debug" → the level, or -1. */
int log_level_parse(const char *name);
/* This thread's current request id (NULL or "" to clear); copied. */
void log_set_request(const char *id);
void log_msg(int level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __func__, __VA_ARGS__)

#endif
