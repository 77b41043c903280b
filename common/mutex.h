/*
 * mutex.h — a pthread mutex that knows which thread holds it, so code can
 * say what it expects (mutex.c).
 *
 * Naming convention across the tree: a function whose name ends in
 * _locked requires its caller to hold the lock named in its comment, and
 * begins with kms_mutex_assert_held() on it; every other function takes
 * and releases the locks it needs itself and is called without them.
 * Code that must not run under a lock (HSM key generation, durable store
 * writes under the key cache's mutex) says so with
 * kms_mutex_assert_not_held().
 *
 * The owner is one relaxed atomic word written by the holder after it
 * locks and before it unlocks: cheap enough to keep in production builds,
 * where a violated assertion aborts like every KMS_ASSERT.
 * Thread safety: as pthread_mutex_t.  Ownership: the struct is embedded in
 * the object whose state it guards.
 */
#ifndef KMS_COMMON_MUTEX_H
#define KMS_COMMON_MUTEX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct kms_mutex {
	pthread_mutex_t mu;
	_Atomic uintptr_t owner;	/* the holder's thread tag; 0: free */
};

#define KMS_MUTEX_INITIALIZER { PTHREAD_MUTEX_INITIALIZER, 0 }

int kms_mutex_init(struct kms_mutex *m);
/* With attributes (a type such as PTHREAD_MUTEX_ADAPTIVE_NP). */
int kms_mutex_init_attr(struct kms_mutex *m, const pthread_mutexattr_t *attr);
void kms_mutex_destroy(struct kms_mutex *m);
void kms_mutex_lock(struct kms_mutex *m);
/* 0 when taken, else pthread_mutex_trylock's error. */
int kms_mutex_trylock(struct kms_mutex *m);
/* 0 when taken by the absolute CLOCK_REALTIME time at, else the error. */
int kms_mutex_timedlock(struct kms_mutex *m, const struct timespec *at);
void kms_mutex_unlock(struct kms_mutex *m);
/* 1 when the calling thread holds m. */
int kms_mutex_held(const struct kms_mutex *m);
void kms_mutex_assert_held(const struct kms_mutex *m);
void kms_mutex_assert_not_held(const struct kms_mutex *m);
/* pthread_cond_wait / timedwait on m (held; held again on return). */
void kms_cond_wait(pthread_cond_t *cv, struct kms_mutex *m);
int kms_cond_timedwait(pthread_cond_t *cv, struct kms_mutex *m,
    const struct timespec *at);

#endif
