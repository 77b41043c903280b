/*
 * clock.c — kmsd's clock: the time of day, plus a forward offset that
 * only a test may set.
 *
 * Every time kmsd reads for a key's life (creation, rotation and deletion
 * dates, the scheduler's "is it due") comes from now_ms(), so a test can
 * move all of it forward at once instead of sleeping for days.  The offset
 * moves only through clock_advance(), which the AdvanceTestClock
 * operation calls only when kmsd.conf says test_clock = yes (a test-only
 * setting, logged loudly at start-up); a production kmsd keeps it at 0.
 * Thread-safe: the offset is one atomic.
 */
#include <stdatomic.h>

#include "common/clock.h"
#include "kmsd/daemon/clock.h"

static _Atomic int64_t offset_ms;

int64_t
now_ms(void)
{
	return clock_wall_ms() + atomic_load(&offset_ms);
}

int64_t
clock_advance(int64_t ms)
{
	return atomic_fetch_add(&offset_ms, ms) + ms;
}

int64_t
clock_offset(void)
{
	return atomic_load(&offset_ms);
}
