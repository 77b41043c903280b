/*
 * test_mutex.c — mutexes that know their holder (common/mutex.c): the
 * assert-held helper behind the _locked naming convention.
 */
#include <pthread.h>
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/mutex.h"

static struct kms_mutex gm = KMS_MUTEX_INITIALIZER;
static pthread_cond_t gcv = PTHREAD_COND_INITIALIZER;
static int seen_held;

static void
test_mutex_held_only_by_the_locking_thread(void **state)
{
	struct kms_mutex m;

	assert_int_equal(kms_mutex_init(&m), 0);
	assert_false(kms_mutex_held(&m));
	kms_mutex_lock(&m);
	assert_true(kms_mutex_held(&m));
	kms_mutex_unlock(&m);
	assert_false(kms_mutex_held(&m));
	assert_int_equal(kms_mutex_trylock(&m), 0);
	assert_true(kms_mutex_held(&m));
	kms_mutex_unlock(&m);
	kms_mutex_destroy(&m);
}

static void *
other_thread(void *arg)
{
	/* gm is held by the main thread: not by this one. */
	seen_held = kms_mutex_held(&gm);
	return NULL;
}

static void
test_mutex_another_threads_hold_is_not_mine(void **state)
{
	pthread_t t;

	kms_mutex_lock(&gm);
	seen_held = -1;
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(seen_held, 0);
	kms_mutex_unlock(&gm);
}

static void
test_mutex_cond_wait_gives_up_and_takes_back_the_hold(void **state)
{
	struct timespec at;
	int r;

	kms_mutex_lock(&gm);
	clock_gettime(CLOCK_REALTIME, &at);
	at.tv_nsec += 10 * 1000 * 1000;
	if (at.tv_nsec >= 1000000000L) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000L;
	}
	r = kms_cond_timedwait(&gcv, &gm, &at);
	assert_true(r == 0 || r == ETIMEDOUT);
	assert_true(kms_mutex_held(&gm));
	kms_mutex_unlock(&gm);
}

/* Run f in a child: 1 when it died of a failed assertion. */
static int
dies(void (*f)(void))
{
	pid_t pid;
	int st;

	if ((pid = fork()) == 0) {
		f();
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
assert_held_without_lock(void)
{
	kms_mutex_assert_held(&gm);
}

static void
assert_not_held_with_lock(void)
{
	kms_mutex_lock(&gm);
	kms_mutex_assert_not_held(&gm);
}

static void
unlock_unheld(void)
{
	kms_mutex_unlock(&gm);
}

static void
nothing_wrong(void)
{
	kms_mutex_lock(&gm);
	kms_mutex_assert_held(&gm);
	kms_mutex_unlock(&gm);
	kms_mutex_assert_not_held(&gm);
}

static void
test_mutex_asserts_abort_when_violated(void **state)
{
	assert_false(dies(nothing_wrong));
	assert_true(dies(assert_held_without_lock));
	assert_true(dies(assert_not_held_with_lock));
	assert_true(dies(unlock_unheld));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mutex_held_only_by_the_locking_thread),
		cmocka_unit_test(test_mutex_another_threads_hold_is_not_mine),
		cmocka_unit_test(
		    test_mutex_cond_wait_gives_up_and_takes_back_the_hold),
		cmocka_unit_test(test_mutex_asserts_abort_when_violated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
