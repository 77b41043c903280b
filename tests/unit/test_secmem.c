/*
 * test_secmem.c — secure memory and the wiping jansson allocator
 * (common/secmem.c).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/secmem.h"

static void
test_secmem_alloc_gives_usable_memory(void **state)
{
	static const size_t sizes[] = { 1, 16, 32, 4095, 4096, 4097, 65536 };
	uint8_t *p;
	size_t i, j;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p = secure_alloc(sizes[i]);
		assert_non_null(p);
		for (j = 0; j < sizes[i]; j++) {
			p[j] = (uint8_t)j;
		}
		for (j = 0; j < sizes[i]; j++) {
			assert_int_equal(p[j], (uint8_t)j);
		}
		secure_free(p, sizes[i]);
	}
	secure_free(NULL, 0);
	secure_free(NULL, 123);
}

static void
test_secmem_wipe_zeroes_exactly_len_bytes(void **state)
{
	uint8_t buf[32];

	memset(buf, 0xa5, sizeof(buf));
	secure_wipe(buf + 4, 16);
	assert_int_equal(buf[3], 0xa5);
	assert_memory_equal(buf + 4, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	assert_int_equal(buf[20], 0xa5);
	secure_wipe(NULL, 10);
	secure_wipe(buf, 0);
	assert_int_equal(buf[0], 0xa5);
}

static void
test_secmem_memcmp_is_zero_only_when_equal(void **state)
{
	uint8_t a[64], b[64];
	size_t i;

	memset(a, 7, sizeof(a));
	memset(b, 7, sizeof(b));
	assert_int_equal(secure_memcmp(a, b, sizeof(a)), 0);
	assert_int_equal(secure_memcmp(a, b, 0), 0);
	for (i = 0; i < sizeof(a); i++) {
		b[i] ^= 0x80;
		assert_int_not_equal(secure_memcmp(a, b, sizeof(a)), 0);
		assert_int_equal(secure_memcmp(a, b, i), 0);
		b[i] ^= 0x80;
	}
}

/* A write past the end must hit the guard page, not the next secret. */
static void
test_secmem_overflow_hits_guard_page(void **state)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		volatile uint8_t *p;
		size_t i;

		/* cmocka catches SIGSEGV; the child must die of it. */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		if ((p = secure_alloc(32)) == NULL) {
			_exit(2);
		}
		/* sodium_malloc right-aligns: the guard page follows
		 * closely; walk until it faults. */
		for (i = 0; i < 2 * 65536; i++) {
			p[i] = 1;
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* Killed by the fault (or, under ASan, its report's exit 1). */
	assert_false(WIFEXITED(status) && (WEXITSTATUS(status) == 0 ||
	    WEXITSTATUS(status) == 2));
}

static void
test_secmem_json_allocator_is_installed(void **state)
{
	json_malloc_t m1 = NULL, m2 = NULL;
	json_free_t f1 = NULL, f2 = NULL;
	json_t *o;
	char *text;

	secure_json_allocator();
	json_get_alloc_funcs(&m1, &f1);
	assert_non_null(m1);
	assert_non_null(f1);
	assert_true(f1 != free);
	assert_true(m1 != malloc);
	/* Idempotent. */
	secure_json_allocator();
	json_get_alloc_funcs(&m2, &f2);
	assert_ptr_equal(m1, m2);
	assert_ptr_equal(f1, f2);

	/* jansson still works through it. */
	o = json_pack("{s:s, s:[i,i]}", "Plaintext", "c2VjcmV0", "n", 1, 2);
	assert_non_null(o);
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(text);
	assert_string_equal(text, "{\"Plaintext\":\"c2VjcmV0\",\"n\":[1,2]}");
	/* json_dumps output comes from the same allocator. */
	f1(text);
	json_decref(o);
}

/* The wipe itself happens on memory already freed, so it cannot be read
 * back without undefined behaviour; check that the wiping free handles
 * NULL and every block size (ASan checks it stays inside the block). */
static void
test_secmem_json_free_accepts_null_and_any_size(void **state)
{
	json_malloc_t m = NULL;
	json_free_t f = NULL;
	size_t sizes[] = { 0, 1, 24, 1000, 200000 };
	size_t i;
	char *p;

	secure_json_allocator();
	json_get_alloc_funcs(&m, &f);
	f(NULL);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p = m(sizes[i]);
		assert_non_null(p);
		memset(p, 'S', sizes[i]);
		f(p);
	}
}

/*
 * Observe the wipe through glibc's allocator: a freed small block is handed
 * back by the next malloc of the same size (tcache), with its old bytes
 * except the allocator's link words at the start.  A plain free() is the
 * control: its old bytes must still be there, or the check proves nothing
 * (ASan's quarantine never reuses at once: then both halves are skipped).
 */
/* Through volatile, so the compiler cannot drop stores before a free. */
static void
fill(unsigned char *p, size_t n)
{
	volatile unsigned char *v = p;
	size_t i;

	for (i = 0; i < n; i++) {
		v[i] = 'S';
	}
}

static void
test_secmem_json_free_wipes_the_block(void **state)
{
	json_malloc_t m = NULL;
	json_free_t f = NULL;
	const size_t n = 200, skip = 32;
	volatile unsigned char *q;
	unsigned char *p;
	size_t i, kept;

	secure_json_allocator();
	json_get_alloc_funcs(&m, &f);

	p = malloc(n);
	assert_non_null(p);
	fill(p, n);
	free(p);
	q = malloc(n);
	assert_non_null(q);
	if ((void *)q != (void *)p) {
		free((void *)q);
		skip();
		return;
	}
	for (i = skip, kept = 0; i < n; i++) {
		kept += q[i] == 'S';
	}
	free((void *)q);
	assert_int_equal(kept, n - skip);	/* control: plain free keeps */

	p = m(n);
	assert_non_null(p);
	fill(p, n);
	f(p);
	q = malloc(n);
	assert_non_null(q);
	if ((void *)q != (void *)p) {
		/* Nothing to look at: not a pass. */
		free((void *)q);
		skip();
		return;
	}
	for (i = skip, kept = 0; i < n; i++) {
		kept += q[i] == 'S';
	}
	assert_int_equal(kept, 0);
	free((void *)q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secmem_alloc_gives_usable_memory),
		cmocka_unit_test(test_secmem_wipe_zeroes_exactly_len_bytes),
		cmocka_unit_test(test_secmem_memcmp_is_zero_only_when_equal),
		cmocka_unit_test(test_secmem_overflow_hits_guard_page),
		cmocka_unit_test(test_secmem_json_allocator_is_installed),
		cmocka_unit_test(
		    test_secmem_json_free_accepts_null_and_any_size),
		cmocka_unit_test(test_secmem_json_free_wipes_the_block),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
