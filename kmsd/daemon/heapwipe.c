/*
 * heapwipe.c — every heap block kmsd frees is wiped first.
 *
 * kmsd's own secrets live in locked, guard-paged memory and are wiped by
 * the code that owns them.  Libraries keep copies where kmsd cannot reach:
 * jansson's strings, SQLite, OpenSSL and the PKCS#11 module have transient
 * buffers of their own.  docs/design.md §3 asks that a data key be wiped before the reply
 * buffer is freed; only the allocator sees every such free, so kmsd
 * replaces free() and realloc() (glibc supports replacing them) with
 * versions that clear the block's usable size and hand it to glibc.
 * Allocation itself stays glibc's.  tests/test_residue proves the effect
 * by searching the daemon's memory for the keys it served.
 *
 * Linked into bin/kmsd only.  Under AddressSanitizer (or ThreadSanitizer)
 * the sanitizer owns the allocator: this file is empty, and under ASan the
 * test asks it to fill freed blocks with zeros instead.
 */
#include <malloc.h>
#include <stddef.h>
#include <string.h>

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)

#define EXPORT __attribute__((visibility("default")))

void *__libc_malloc(size_t);
void __libc_free(void *);

EXPORT void
free(void *p)
{
	if (p != NULL) {
		explicit_bzero(p, malloc_usable_size(p));
		__libc_free(p);
	}
}

/*
 * A block that must move is copied into a new one and the old one wiped
 * and freed (glibc's realloc would free it as it is); shrinking, or growth
 * within the block's usable size, stays in place.
 */
EXPORT void *
realloc(void *p, size_t n)
{
	size_t have;
	void *q;

	if (p == NULL) {
		return __libc_malloc(n);
	}
	if (n == 0) {
		free(p);
		return NULL;
	}
	have = malloc_usable_size(p);
	if (n <= have) {
		return p;
	}
	if ((q = __libc_malloc(n)) == NULL) {
		return NULL;
	}
	memcpy(q, p, have);
	free(p);
	return q;
}

#endif /* !__SANITIZE_ADDRESS__ */
