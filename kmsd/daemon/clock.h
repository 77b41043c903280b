/*
 * clock.h — kmsd's clock (clock.c): the time of day (common/clock.h) plus
 * a forward offset only a test may set.
 *
 * Thread safety: the offset is one atomic; every function may be called
 * from any thread.
 */
#ifndef KMSD_DAEMON_CLOCK_H
#define KMSD_DAEMON_CLOCK_H

#include <stdint.h>

/* kmsd's clock, milliseconds since the epoch: the time of day plus the
 * test clock's offset (0 unless test_clock = yes and a test moved it).
 * Every lifecycle date and every "is it due" reads this. */
int64_t now_ms(void);
/* Move the clock forward by ms (> 0); returns the new offset.  Callers
 * check cfg.test_clock first. */
int64_t clock_advance(int64_t ms);
int64_t clock_offset(void);

#endif
