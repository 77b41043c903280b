/*
 * secmem.c — locked, guard-paged memory for secrets, and a wiping
 * allocator for jansson.
 *
 * sodium_malloc gives guard pages, mlock (best effort: libsodium does not
 * fail the allocation when RLIMIT_MEMLOCK is reached) and MADV_DONTDUMP, and
 * sodium_free wipes the whole region.  sodium_init() runs once, under
 * pthread_once, so the first callers may race safely.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "common/err.h"
#include "common/secmem.h"

static pthread_once_t secmem_once = PTHREAD_ONCE_INIT;
static int secmem_ready;	/* 1 once sodium_init() succeeded */

static void
init_sodium(void)
{
	/* 0 = initialised now, 1 = already initialised elsewhere. */
	secmem_ready = sodium_init() >= 0;
}

static int
ensure_sodium(void)
{
	if (pthread_once(&secmem_once, init_sodium) != 0) {
		return 0;
	}
	return secmem_ready;
}

/*
 * The pool: two size classes, each one sodium_malloc region cut into
 * chunks, with a stack of free chunk indexes under a mutex.
 */
#define POOL_CLASSES 2
static const size_t pool_chunk[POOL_CLASSES] = { 64, 4352 };
static const size_t pool_count[POOL_CLASSES] = { 8192, 256 };

static struct pool {
	uint8_t *base;
	size_t chunk, n, nfree;
	uint32_t *free;
} pools[POOL_CLASSES];
/* Process-wide by nature: the pools are this process's locked pages, shared
 * by every thread and object that holds a secret; held only over the free
 * lists, never over an allocation from the system. */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void
init_pools(void)
{
	size_t c, i;

	if (!ensure_sodium()) {
		return;
	}
	for (c = 0; c < POOL_CLASSES; c++) {
		struct pool *p = &pools[c];
		p->chunk = pool_chunk[c];
		p->n = pool_count[c];
		p->base = sodium_malloc(p->chunk * p->n);
		p->free = malloc(p->n * sizeof(*p->free));
		if (p->base == NULL || p->free == NULL) {
			if (p->base != NULL) {
				sodium_free(p->base);
			}
			free(p->free);
			memset(p, 0, sizeof(*p));
			continue;
		}
		for (i = 0; i < p->n; i++) {
			p->free[i] = (uint32_t)(p->n - 1 - i);
		}
		p->nfree = p->n;
	}
}

/* The pool holding p, or NULL. */
static struct pool *
pool_of(const void *ptr)
{
	const uint8_t *q = ptr;
	size_t c;

	for (c = 0; c < POOL_CLASSES; c++) {
		struct pool *p = &pools[c];
		if (p->base != NULL && q >= p->base &&
		    q < p->base + p->chunk * p->n) {
			return p;
		}
	}
	return NULL;
}

void *
secure_alloc_fast(size_t len)
{
	void *r = NULL;
	size_t c;

	if (pthread_once(&pool_once, init_pools) != 0) {
		return secure_alloc(len);
	}
	for (c = 0; c < POOL_CLASSES; c++) {
		struct pool *p = &pools[c];
		if (len == 0 || len > p->chunk || p->base == NULL) {
			continue;
		}
		pthread_mutex_lock(&pool_mu);
		if (p->nfree > 0) {
			r = p->base + (size_t)p->free[--p->nfree] * p->chunk;
		}
		pthread_mutex_unlock(&pool_mu);
		if (r != NULL) {
			return r;
		}
	}
	return secure_alloc(len);
}

void *
secure_alloc(size_t len)
{
	if (!ensure_sodium()) {
		return NULL;
	}
	return sodium_malloc(len);
}

void
secure_free(void *p, size_t len)
{
	struct pool *pl;

	if (p == NULL) {
		return;
	}
	if ((pl = pool_of(p)) != NULL) {
		size_t off = (size_t)((uint8_t *)p - pl->base);
		KMS_ASSERT(off % pl->chunk == 0 && len <= pl->chunk);
		sodium_memzero(p, pl->chunk);
		pthread_mutex_lock(&pool_mu);
		pl->free[pl->nfree++] = (uint32_t)(off / pl->chunk);
		pthread_mutex_unlock(&pool_mu);
		return;
	}
	/*
	 * sodium_free wipes the whole allocation too; wiping len first
	 * makes a wrong length hit the guard page (a crash in tests) rather
	 * than go unnoticed.
	 */
	sodium_memzero(p, len);
	sodium_free(p);
}

void
secure_wipe(void *p, size_t len)
{
	if (p == NULL || len == 0) {
		return;
	}
	sodium_memzero(p, len);
}

void
wipe_free(void *p, size_t len)
{
	if (p != NULL) {
		secure_wipe(p, len);
		free(p);
	}
}

int
secure_memcmp(const void *a, const void *b, size_t len)
{
	if (len == 0) {
		return 0;
	}
	/* sodium_memcmp: constant time, 0 when equal, -1 otherwise. */
	return sodium_memcmp(a, b, len) == 0 ? 0 : 1;
}

/*
 * jansson copies every string it parses or builds (base64 plaintexts, data
 * keys) into heap blocks.  Wiping the usable size of each block on free
 * keeps them from lingering in freed heap memory.
 */
static void *
json_alloc_wiping(size_t len)
{
	return malloc(len);
}

static void
json_free_wiping(void *p)
{
	if (p == NULL) {
		return;
	}
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

void
secure_json_allocator(void)
{
	json_malloc_t cur_malloc = NULL;
	json_free_t cur_free = NULL;

	(void)ensure_sodium();
	json_get_alloc_funcs(&cur_malloc, &cur_free);
	if (cur_malloc == json_alloc_wiping && cur_free == json_free_wiping) {
		return;
	}
	json_set_alloc_funcs(json_alloc_wiping, json_free_wiping);
}
