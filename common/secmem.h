/*
 * secmem.h — memory for secrets: locked, guard-paged, excluded from core
 * dumps, wiped on free (libsodium's sodium_malloc underneath).
 *
 * Every free takes the length, as the caller must know what it wipes.
 * Thread-safe.  sodium_init() is called on first use.
 */
#ifndef KMS_COMMON_SECMEM_H
#define KMS_COMMON_SECMEM_H

#include <stddef.h>

/* Returns NULL on failure (including RLIMIT_MEMLOCK exhaustion). */
void *secure_alloc(size_t len);
/*
 * The same, from a pool for the hot path (a client's returned data keys
 * and plaintexts): chunks of one locked, guard-paged, non-dumped region,
 * wiped whole on free, so an allocation costs no system call.  The guard
 * pages bound the region, not each chunk.  Falls back to secure_alloc
 * when the pool is empty or len is large.  Free with secure_free.
 */
void *secure_alloc_fast(size_t len);
/* Wipes len bytes and frees; NULL is fine. */
void secure_free(void *p, size_t len);
/* Wipe that the compiler cannot drop. */
void secure_wipe(void *p, size_t len);
/* Wipes len bytes of a malloc'd block and free()s it; NULL is fine. */
void wipe_free(void *p, size_t len);
/* Constant-time compare: 0 when equal. */
int secure_memcmp(const void *a, const void *b, size_t len);

/*
 * Make jansson allocate through wiping functions: every json_t string freed
 * is zeroed first (malloc_usable_size bytes), so base64 plaintexts parsed
 * from or written into JSON never linger in the heap.  Call once, before any
 * jansson use, in every program that handles secrets in JSON.
 */
void secure_json_allocator(void);

#endif
