/*
 * clock.h — the two clocks every part reads (clock.c): the time of day
 * (wall, for dates that are stored or shown) and the monotonic clock (for
 * deadlines and durations, which must not jump with the time of day).
 *
 * Thread safety: plain reads of the system clocks, from any thread.
 * kmsd's lifecycle clock, the time of day plus a test-only offset, is
 * built on clock_wall_ms in kmsd/daemon/clock.[ch].
 */
#ifndef KMS_COMMON_CLOCK_H
#define KMS_COMMON_CLOCK_H

#include <stdint.h>

/* CLOCK_REALTIME in milliseconds since the epoch. */
int64_t clock_wall_ms(void);
/* CLOCK_MONOTONIC in milliseconds: deadlines. */
uint64_t mono_ms(void);
/* CLOCK_MONOTONIC in seconds: durations (metrics, tests). */
double clock_mono_s(void);
/* Days from 1970-01-01 to y-m-d (m 1-12) of the proleptic Gregorian
 * calendar, as timegm(3) counts them without its time-zone machinery;
 * a d past the month's end runs into the next month. */
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
