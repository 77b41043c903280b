/*
 * test_secmem_pool.c — the secret pool: distinct chunks, wiped on free,
 * and a fallback when empty or too large.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/secmem.h"

static void
test_pool_chunks_are_distinct_and_wiped_on_free(void **state)
{
	uint8_t *a = secure_alloc_fast(32), *b = secure_alloc_fast(32);
	size_t i;

	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	memset(a, 0xa5, 32);
	memset(b, 0x5a, 32);
	secure_free(a, 32);
	/* The chunk stays mapped in the pool: it must now read as zeros. */
	for (i = 0; i < 32; i++) {
		assert_int_equal(a[i], 0);
	}
	assert_int_equal(b[0], 0x5a);
	secure_free(b, 32);
}

static void
test_pool_falls_back_when_empty_or_large(void **state)
{
	enum { N = 9000 };		/* more than the small class holds */
	uint8_t **p = calloc(N, sizeof(*p)), *big;
	size_t i;

	assert_non_null(p);
	for (i = 0; i < N; i++) {
		p[i] = secure_alloc_fast(48);
		assert_non_null(p[i]);
		p[i][47] = (uint8_t)i;
	}
	for (i = 0; i < N; i++) {
		assert_int_equal(p[i][47], (uint8_t)i);
		secure_free(p[i], 48);
	}
	free(p);
	big = secure_alloc_fast(100000);
	assert_non_null(big);
	memset(big, 1, 100000);
	secure_free(big, 100000);
	/* A 4 KiB plaintext fits the large class. */
	big = secure_alloc_fast(4096);
	assert_non_null(big);
	memset(big, 2, 4096);
	secure_free(big, 4096);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_chunks_are_distinct_and_wiped_on_free),
		cmocka_unit_test(test_pool_falls_back_when_empty_or_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
