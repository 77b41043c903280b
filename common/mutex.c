/*
 * mutex.c — mutexes that remember their holder (mutex.h).
 *
 * A thread's tag is the address of a thread-local byte: unique among the
 * live threads, never 0, and free to read.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "common/err.h"
#include "common/mutex.h"

static _Thread_local char thread_tag;

static uintptr_t
self(void)
{
	return (uintptr_t)&thread_tag;
}

int
kms_mutex_init(struct kms_mutex *m)
{
	return kms_mutex_init_attr(m, NULL);
}

int
kms_mutex_init_attr(struct kms_mutex *m, const pthread_mutexattr_t *attr)
{
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	return pthread_mutex_init(&m->mu, attr);
}

void
kms_mutex_destroy(struct kms_mutex *m)
{
	KMS_ASSERT(atomic_load_explicit(&m->owner, memory_order_relaxed) == 0);
	pthread_mutex_destroy(&m->mu);
}

void
kms_mutex_lock(struct kms_mutex *m)
{
	int r;

	KMS_ASSERT(!kms_mutex_held(m));		/* not recursive */
	r = pthread_mutex_lock(&m->mu);
	KMS_ASSERT(r == 0);
	atomic_store_explicit(&m->owner, self(), memory_order_relaxed);
}

int
kms_mutex_trylock(struct kms_mutex *m)
{
	int r;

	KMS_ASSERT(!kms_mutex_held(m));
	if ((r = pthread_mutex_trylock(&m->mu)) == 0) {
		atomic_store_explicit(&m->owner, self(), memory_order_relaxed);
	}
	return r;
}

int
kms_mutex_timedlock(struct kms_mutex *m, const struct timespec *at)
{
	int r;

	KMS_ASSERT(!kms_mutex_held(m));
	if ((r = pthread_mutex_timedlock(&m->mu, at)) == 0) {
		atomic_store_explicit(&m->owner, self(), memory_order_relaxed);
	}
	return r;
}

void
kms_mutex_unlock(struct kms_mutex *m)
{
	kms_mutex_assert_held(m);
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	pthread_mutex_unlock(&m->mu);
}

int
kms_mutex_held(const struct kms_mutex *m)
{
	return atomic_load_explicit(&m->owner, memory_order_relaxed) ==
	    self();
}

void
kms_mutex_assert_held(const struct kms_mutex *m)
{
	KMS_ASSERT(kms_mutex_held(m));
}

void
kms_mutex_assert_not_held(const struct kms_mutex *m)
{
	KMS_ASSERT(!kms_mutex_held(m));
}

void
kms_cond_wait(pthread_cond_t *cv, struct kms_mutex *m)
{
	kms_mutex_assert_held(m);
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	pthread_cond_wait(cv, &m->mu);
	atomic_store_explicit(&m->owner, self(), memory_order_relaxed);
}

int
kms_cond_timedwait(pthread_cond_t *cv, struct kms_mutex *m,
    const struct timespec *at)
{
	int r;

	kms_mutex_assert_held(m);
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	r = pthread_cond_timedwait(cv, &m->mu, at);
	atomic_store_explicit(&m->owner, self(), memory_order_relaxed);
	return r;
}
