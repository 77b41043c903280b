/*
 * test_residue.c — once a request is answered, nothing of its data key is
 * left in kmsd's memory (docs/design.md §3: the plaintext lives only for the
 * request, and is wiped before the reply buffer is freed).
 *
 * A real kmsd serves GenerateDataKey, Decrypt and Encrypt; then every
 * readable, writable mapping of the daemon (heap, thread stacks, anonymous
 * memory, libraries' data) is read through /proc/<pid>/mem and searched
 * for each plaintext, raw and in base64 as it travelled in the reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kms.h"
#include "common/b64.h"
#include "tests/testutil.h"

#define NKEYS 8
#define CHUNK (4 << 20)

struct needle {
	uint8_t raw[32];
	char b64[B64_ENCODED_LEN(32) + 1];
	int hits;		/* raw and base64 */
	int hits_b64;
};

static struct tu_env env;

/* Search every rw mapping of pid for the needles; returns total hits. */
static int
scan(pid_t pid, struct needle *nd, size_t n)
{
	char path[64], line[512];
	uint8_t *buf = malloc(CHUNK + 64);
	FILE *maps;
	int mem, total = 0;
	size_t i;

	assert_non_null(buf);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	assert_non_null(maps = fopen(path, "r"));
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	assert_true((mem = open(path, O_RDONLY)) >= 0);
	while (fgets(line, sizeof(line), maps) != NULL) {
		unsigned long lo, hi, off;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || perms[1] != 'w') {
			continue;
		}
		/* Reservations of terabytes (ASan's shadow) hold no heap. */
		if (hi - lo > (1UL << 32)) {
			continue;
		}
		/* Overlap chunks by 63 bytes so no needle is cut in two. */
		for (off = lo; off < hi; off += CHUNK) {
			size_t want = hi - off < CHUNK + 63 ? hi - off :
			    CHUNK + 63;
			ssize_t got = pread(mem, buf, want, (off_t)off);
			if (got <= 0) {
				break;	/* guard pages and the like */
			}
			for (i = 0; i < n; i++) {
				if (memmem(buf, (size_t)got, nd[i].raw, 32) !=
				    NULL) {
					nd[i].hits++;
					total++;
				}
				if (memmem(buf, (size_t)got, nd[i].b64,
				    strlen(nd[i].b64)) != NULL) {
					nd[i].hits++;
					nd[i].hits_b64++;
					total++;
				}
			}
		}
	}
	close(mem);
	fclose(maps);
	free(buf);
	return total;
}

static void
test_no_data_key_left_in_kmsd_memory(void **state)
{
	struct needle nd[3 * NKEYS];
	kms_client *c;
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	struct timespec settle = { 0, 300 * 1000 * 1000 };
	char key[KMS_KEY_ID_LEN + 1];
	size_t n = 0, i;

#ifdef __SANITIZE_ADDRESS__
	/* ASan's allocator keeps freed blocks in quarantine; make it wipe
	 * them as glibc's does under kmsd/heapwipe.c. */
	{
		const char *o = getenv("ASAN_OPTIONS");
		char opts[512];
		snprintf(opts, sizeof(opts), "%s%smax_free_fill_size=2147483647:"
		    "free_fill_byte=0", o ? o : "", o && *o ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	assert_int_equal(tu_env_init(&env, NULL), 0);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&c, env.endpoint), 0);
	assert_int_equal(kms_create_key(c, &cr, &m, &ei), 0);
	snprintf(key, sizeof(key), "%s", m.key_id);
	kms_key_metadata_free(&m);

	for (i = 0; i < NKEYS; i++) {
		kms_generate_data_key_req gr = { 0 };
		kms_generate_data_key_resp g;
		kms_decrypt_req dr = { 0 };
		kms_decrypt_resp d;
		kms_encrypt_req er = { 0 };
		kms_encrypt_resp e;
		kms_secret r;

		/* A data key: its plaintext goes out in the reply. */
		gr.key_id = key;
		gr.key_spec = "AES_256";
		assert_int_equal(kms_generate_data_key(c, &gr, &g, &ei), 0);
		memcpy(nd[n++].raw, g.plaintext.data, 32);
		/* Decrypted again: out in the reply once more. */
		dr.ciphertext_blob = g.ciphertext_blob.data;
		dr.ciphertext_len = g.ciphertext_blob.len;
		assert_int_equal(kms_decrypt(c, &dr, &d, &ei), 0);
		kms_decrypt_resp_free(&d);
		kms_generate_data_key_resp_free(&g);
		/* A plaintext in a request (Encrypt). */
		assert_int_equal(kms_generate_random(c, 32, &r, &ei), 0);
		memcpy(nd[n++].raw, r.data, 32);
		kms_secret_free(&r);
		er.key_id = key;
		er.plaintext = nd[n - 1].raw;
		er.plaintext_len = 32;
		assert_int_equal(kms_encrypt(c, &er, &e, &ei), 0);
		kms_encrypt_resp_free(&e);
		/* GenerateRandom's bytes are the reply itself. */
		assert_int_equal(kms_generate_random(c, 32, &r, &ei), 0);
		memcpy(nd[n++].raw, r.data, 32);
		kms_secret_free(&r);
	}
	for (i = 0; i < n; i++) {
		assert_int_equal(b64_encode(nd[i].raw, 32, nd[i].b64,
		    sizeof(nd[i].b64)), 0);
		nd[i].hits = nd[i].hits_b64 = 0;
	}
	/* Let nng finish with the last replies. */
	nanosleep(&settle, NULL);
	if (scan(env.kmsd, nd, n) != 0) {
		for (i = 0; i < n; i++) {
			if (nd[i].hits > 0) {
				fprintf(stderr, "needle %zu (%s): %d hits, %d "
				    "in base64\n", i, i % 3 == 0 ? "data key" :
				    i % 3 == 1 ? "Encrypt plaintext" : "random",
				    nd[i].hits, nd[i].hits_b64);
			}
		}
		fail_msg("plaintext left in kmsd's memory");
	}
	/* The scan does find what is there: the client's own copy. */
	{
		struct needle self = { .hits = 0 };
		memcpy(self.raw, nd[0].raw, 32);
		memcpy(self.b64, nd[0].b64, sizeof(self.b64));
		assert_true(scan(getpid(), &self, 1) > 0);
	}
	kms_client_close(c);
	assert_int_equal(tu_env_destroy(&env), 0);
	explicit_bzero(nd, sizeof(nd));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_data_key_left_in_kmsd_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
