/*
 * cause.c — see cause.h.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common/cause.h"

static _Thread_local char cause[CAUSE_MAX];

void
cause_note(const char *fmt, ...)
{
	va_list ap;

	if (cause[0] != '\0') {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(cause, sizeof(cause), fmt, ap);
	va_end(ap);
}

const char *
cause_get(void)
{
	return cause;
}

void
cause_clear(void)
{
	cause[0] = '\0';
}
