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
	if (p == NULL) {
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
