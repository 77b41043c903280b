/*
 * test_hsm.c — custody on a real SoftHSM2 token in a temp dir: what kmsd
 * holds are handles, never key material.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "tools/proc.h"
#include "hsm/hsm.h"
#include "tests/testutil.h"

static struct tu_env env;
static hsm *h;
static hsm_session *s;
static char pin[300];

static int
setup(void **state)
{
	char err[256], sc[300];
	struct hsm_config c;

	if (tu_env_init(&env, NULL) != 0) {
		return -1;
	}
	snprintf(sc, sizeof(sc), "%s/softhsm2.conf", env.dir);
	setenv("SOFTHSM2_CONF", sc, 1);
	snprintf(pin, sizeof(pin), "%s/user.pin", env.dir);
	memset(&c, 0, sizeof(c));
	c.module = env.module;
	c.token_label = "kmsd";
	c.pin_file = pin;
	if (hsm_open(&c, &h, err, sizeof(err)) != 0) {
		fprintf(stderr, "hsm_open: %s\n", err);
		return -1;
	}
	return hsm_session_open(h, &s);
}

static int
teardown(void **state)
{
	hsm_session_close(s);
	hsm_close(h);
	tu_env_destroy(&env);
	return 0;
}

static void
expect_custody(hsm_key k, int token)
{
	struct hsm_key_attrs a;

	assert_int_equal(hsm_inspect_key(s, k, &a), 0);
	assert_true(a.sensitive);
	assert_false(a.extractable);
	assert_int_equal(a.token, token);
	assert_true(a.is_private);
	assert_false(a.value_readable);
	assert_true(a.wrap_refused);
}

static void
gcm_round_trip(hsm_key k)
{
	uint8_t iv[12], pt[40] = "envelope", ct[56], back[56];
	size_t n = 0;

	assert_int_equal(hsm_random(s, iv, sizeof(iv)), 0);
	assert_int_equal(hsm_gcm_encrypt(s, k, iv, (const uint8_t *)"aad", 3,
	    pt, sizeof(pt), ct), 0);
	assert_int_equal(hsm_gcm_decrypt(s, k, iv, (const uint8_t *)"aad", 3,
	    ct, sizeof(ct), back, &n), 0);
	assert_int_equal(n, sizeof(pt));
	assert_memory_equal(back, pt, sizeof(pt));
}

static void
test_hsm_wrapped_version_is_sensitive_and_unextractable(void **state)
{
	uint8_t w[64];
	size_t wl = 0;
	hsm_key k;

	assert_int_equal(hsm_generate_wrapped(s, w, sizeof(w), &wl), 0);
	assert_int_equal(wl, HSM_WRAPPED_LEN);
	assert_int_equal(hsm_unwrap(s, w, wl, &k), 0);
	expect_custody(k, 0);
	gcm_round_trip(k);
	hsm_key_release(s, k);
}

static void
test_hsm_resident_version_is_sensitive_and_unextractable(void **state)
{
	const uint8_t id[20] = "resident-version-001";
	const uint8_t id2[20] = "resident-version-002";
	hsm_resident_ref ref = { 0, 0 }, ref2 = { 0, 0 }, wrong;
	hsm_key k;

	assert_int_equal(hsm_generate_resident(s, id, sizeof(id)), 0);
	assert_int_equal(hsm_generate_resident(s, id2, sizeof(id2)), 0);
	assert_int_equal(hsm_load_resident(s, id, sizeof(id), &ref, &k), 0);
	assert_int_not_equal(ref.obj, 0);	/* found once, kept */
	expect_custody(k, 0);	/* the session copy */
	gcm_round_trip(k);
	hsm_key_release(s, k);
	/* Loaded again by handle. */
	wrong = ref;
	assert_int_equal(hsm_load_resident(s, id, sizeof(id), &ref, &k), 0);
	assert_int_equal(ref.obj, wrong.obj);
	expect_custody(k, 0);
	hsm_key_release(s, k);
	/* A handle that names another version is not trusted: the right
	 * object is searched for again. */
	assert_int_equal(hsm_load_resident(s, id2, sizeof(id2), &ref2, &k),
	    0);
	hsm_key_release(s, k);
	wrong = ref2;
	assert_int_equal(hsm_load_resident(s, id, sizeof(id), &wrong, &k), 0);
	assert_int_equal(wrong.obj, ref.obj);
	hsm_key_release(s, k);
	assert_int_equal(hsm_destroy_resident(s, id2, sizeof(id2)), 0);
	assert_int_equal(hsm_destroy_resident(s, id, sizeof(id)), 0);
	/* Destroyed: neither the kept handle nor a search finds it. */
	assert_int_equal(hsm_load_resident(s, id, sizeof(id), &ref, &k),
	    KMS_ENOTFOUND);
	assert_int_equal(hsm_load_resident(s, id, sizeof(id), NULL, &k),
	    KMS_ENOTFOUND);
}

static void
test_hsm_unwrapped_key_is_usable_from_another_session(void **state)
{
	uint8_t w[64];
	size_t wl;
	hsm_session *s2;
	hsm_key k;
	hsm_session *save = s;

	assert_int_equal(hsm_generate_wrapped(s, w, sizeof(w), &wl), 0);
	assert_int_equal(hsm_unwrap(s, w, wl, &k), 0);
	assert_int_equal(hsm_session_open(h, &s2), 0);
	s = s2;
	gcm_round_trip(k);
	s = save;
	hsm_session_close(s2);
	gcm_round_trip(k);
	hsm_key_release(s, k);
}

static void
test_hsm_gcm_rejects_tampering_and_zeroes_output(void **state)
{
	uint8_t w[64], iv[12] = { 1 }, pt[32], ct[48], back[48];
	size_t wl, n, i;
	hsm_key k;

	memset(pt, 0x5a, sizeof(pt));
	assert_int_equal(hsm_generate_wrapped(s, w, sizeof(w), &wl), 0);
	assert_int_equal(hsm_unwrap(s, w, wl, &k), 0);
	assert_int_equal(hsm_gcm_encrypt(s, k, iv, (const uint8_t *)"a", 1,
	    pt, sizeof(pt), ct), 0);
	memset(back, 0xee, sizeof(back));
	assert_int_equal(hsm_gcm_decrypt(s, k, iv, (const uint8_t *)"b", 1,
	    ct, sizeof(ct), back, &n), KMS_EINVALIDCIPHERTEXT);
	for (i = 0; i < sizeof(pt); i++) {
		assert_true(back[i] == 0 || back[i] == 0xee);
	}
	ct[47] ^= 1;
	assert_int_equal(hsm_gcm_decrypt(s, k, iv, (const uint8_t *)"a", 1,
	    ct, sizeof(ct), back, &n), KMS_EINVALIDCIPHERTEXT);
	ct[47] ^= 1;
	ct[0] ^= 0x80;
	assert_int_equal(hsm_gcm_decrypt(s, k, iv, (const uint8_t *)"a", 1,
	    ct, sizeof(ct), back, &n), KMS_EINVALIDCIPHERTEXT);
	hsm_key_release(s, k);
}

static void
test_hsm_corrupt_wrapped_blob_is_refused(void **state)
{
	uint8_t w[64];
	size_t wl;
	hsm_key k;

	assert_int_equal(hsm_generate_wrapped(s, w, sizeof(w), &wl), 0);
	w[5] ^= 1;
	assert_int_equal(hsm_unwrap(s, w, wl, &k), KMS_EINVALIDCIPHERTEXT);
	assert_int_equal(hsm_unwrap(s, w, 39, &k), KMS_EINVALIDCIPHERTEXT);
	assert_false(hsm_is_down(h));
}

/* The start-up check kmsd runs before it offers RSAES_OAEP_SHA_256 for
 * imported material: a known-answer test that passes with SHA-1 on
 * SoftHSM2 2.6.1 (so the check itself works) and fails with SHA-256,
 * whose parameters SoftHSM2 refuses. */
static void
test_hsm_oaep_probe_passes_sha1_and_fails_sha256_on_softhsm2(void **state)
{
	(void)state;
	assert_int_equal(hsm_probe_oaep(s, 0), 1);
	assert_int_equal(hsm_probe_oaep(s, 1), 0);
	assert_int_equal(hsm_probe_oaep_sha256(s), 0);
}

static void
test_hsm_random_is_random(void **state)
{
	uint8_t a[32], b[32];

	assert_int_equal(hsm_random(s, a, sizeof(a)), 0);
	assert_int_equal(hsm_random(s, b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
}

static void
test_hsm_open_errors_name_the_problem(void **state)
{
	struct hsm_config c;
	char err[256], bad[300];
	hsm *x = NULL;
	FILE *f;

	memset(&c, 0, sizeof(c));
	c.module = "/nonexistent/module.so";
	c.token_label = "kmsd";
	c.pin_file = pin;
	assert_int_not_equal(hsm_open(&c, &x, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "/nonexistent/module.so"));
	c.module = env.module;
	c.token_label = "nosuchtoken";
	assert_int_not_equal(hsm_open(&c, &x, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "nosuchtoken"));
	/* A wrong PIN: only observable with nobody logged in, since PKCS#11
	 * login state is process-wide; so with the fixture's handle closed. */
	hsm_session_close(s);
	hsm_close(h);
	snprintf(bad, sizeof(bad), "%s/bad.pin", env.dir);
	f = fopen(bad, "w");
	fputs("0000\n", f);
	fclose(f);
	c.token_label = "kmsd";
	c.pin_file = bad;
	assert_int_not_equal(hsm_open(&c, &x, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "login"));
	c.pin_file = pin;
	assert_int_equal(hsm_open(&c, &h, err, sizeof(err)), 0);
	assert_int_equal(hsm_session_open(h, &s), 0);
}

/* Is needle anywhere in a file under dir, skipping dir/skip? */
static int
found_outside(const char *dir, const char *skip, const uint8_t *needle,
    size_t n)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	int found = 0;

	while (dp != NULL && !found && (de = readdir(dp)) != NULL) {
		char path[1024];
		struct stat st;
		if (de->d_name[0] == '.' || strcmp(de->d_name, skip) == 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) != 0) {
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			found = found_outside(path, skip, needle, n);
		} else if (S_ISREG(st.st_mode)) {
			FILE *f = fopen(path, "rb");
			uint8_t *buf = malloc((size_t)st.st_size + 1);
			if (f != NULL && buf != NULL && fread(buf, 1,
			    (size_t)st.st_size, f) == (size_t)st.st_size) {
				found = memmem(buf, (size_t)st.st_size,
				    needle, n) != NULL;
			}
			free(buf);
			if (f != NULL) {
				fclose(f);
			}
		}
	}
	if (dp != NULL) {
		closedir(dp);
	}
	return found;
}

static void
test_hsm_nothing_key_shaped_is_written_outside_the_token(void **state)
{
	uint8_t w[64];
	size_t wl;

	assert_int_equal(hsm_generate_wrapped(s, w, sizeof(w), &wl), 0);
	/* Here there is no store: the wrapped blob lives only in memory. */
	assert_false(found_outside(env.dir, "tokens", w, wl));
}

static void
test_hsm_token_pulled_fails_fast_and_recovers(void **state)
{
	char shim[512], fault[300], sc[300], err[256], cwd[256];
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	struct hsm_config c;
	uint8_t w[64], iv[12] = { 0 }, pt[16] = "x", ct[32], back[32];
	size_t wl, n;
	hsm *fh;
	hsm_session *fs;
	hsm_key k;
	uint64_t gen;
	FILE *f;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(shim, sizeof(shim), "%s/%s/tests/libp11shim.so", cwd, build);
	snprintf(fault, sizeof(fault), "%s/pulled", env.dir);
	snprintf(sc, sizeof(sc), "%s/softhsm2.conf", env.dir);
	setenv("P11SHIM_FAULT_FILE", fault, 1);
	setenv("P11SHIM_MODULE", env.module, 1);
	memset(&c, 0, sizeof(c));
	c.module = shim;
	c.token_label = "kmsd";
	c.pin_file = pin;
	/* A second process-wide initialisation of SoftHSM2 is refused, so
	 * the shim's test runs with the main handle closed. */
	hsm_session_close(s);
	hsm_close(h);
	assert_int_equal(hsm_open(&c, &fh, err, sizeof(err)), 0);
	assert_int_equal(hsm_session_open(fh, &fs), 0);
	assert_int_equal(hsm_generate_wrapped(fs, w, sizeof(w), &wl), 0);
	assert_int_equal(hsm_unwrap(fs, w, wl, &k), 0);
	s = fs;
	assert_int_equal(hsm_gcm_encrypt(fs, k, iv, NULL, 0, pt, sizeof(pt),
	    ct), 0);
	gen = hsm_generation(fh);

	f = fopen(fault, "w");
	fclose(f);
	assert_int_equal(hsm_random(fs, back, 4), KMS_EDEPENDENCYTIMEOUT);
	assert_true(hsm_is_down(fh));
	assert_int_equal(hsm_gcm_encrypt(fs, k, iv, NULL, 0, pt, sizeof(pt),
	    ct), KMS_EDEPENDENCYTIMEOUT);
	assert_int_not_equal(hsm_recover(fh), 0);	/* still pulled */

	unlink(fault);
	assert_int_equal(hsm_recover(fh), 0);
	assert_false(hsm_is_down(fh));
	assert_true(hsm_generation(fh) > gen);
	/* Old handles are gone; the wrapped blob brings the key back. */
	assert_int_equal(hsm_unwrap(fs, w, wl, &k), 0);
	assert_int_equal(hsm_gcm_decrypt(fs, k, iv, NULL, 0, ct, sizeof(ct),
	    back, &n), 0);
	assert_memory_equal(back, pt, sizeof(pt));
	hsm_session_close(fs);
	hsm_close(fh);
	/* Leave the fixture as it was for teardown. */
	setenv("SOFTHSM2_CONF", sc, 1);
	c.module = env.module;
	assert_int_equal(hsm_open(&c, &h, err, sizeof(err)), 0);
	assert_int_equal(hsm_session_open(h, &s), 0);
}

static void
test_hsm_reinit_keeps_the_domain_key_and_stales_old_handles(void **state)
{
	const uint8_t id[20] = "resident-reinit-0001";
	uint8_t w[64], iv[12] = { 7 }, pt[16] = "before reinit", ct[32],
	    back[32];
	hsm_resident_ref ref = { 0, 0 };
	size_t wl, n = 0;
	hsm_key k, k2;
	uint64_t gen, made;

	assert_int_equal(hsm_generate_wrapped(s, w, sizeof(w), &wl), 0);
	assert_int_equal(hsm_unwrap(s, w, wl, &k), 0);
	assert_int_equal(hsm_gcm_encrypt(s, k, iv, NULL, 0, pt, sizeof(pt),
	    ct), 0);
	assert_int_equal(hsm_generate_resident(s, id, sizeof(id)), 0);
	assert_int_equal(hsm_load_resident(s, id, sizeof(id), &ref, &k2), 0);
	hsm_key_release(s, k2);
	made = hsm_objects_made(h);
	assert_true(made >= 4);	/* domain copy, transient, unwrap, copy */
	gen = hsm_generation(h);

	assert_int_equal(hsm_reinit(h), 0);
	assert_false(hsm_is_down(h));
	/* Every handle from before is of an older generation: callers
	 * (the key cache) reload instead of using it. */
	assert_true(hsm_generation(h) > gen);
	assert_true(ref.gen < hsm_generation(h));
	assert_int_equal(hsm_objects_made(h), 1);	/* the domain copy */
	/* The domain key was found again: the blob unwraps, the old
	 * ciphertext decrypts, the session reopened by itself. */
	assert_int_equal(hsm_unwrap(s, w, wl, &k), 0);
	assert_int_equal(hsm_gcm_decrypt(s, k, iv, NULL, 0, ct, sizeof(ct),
	    back, &n), 0);
	assert_int_equal(n, sizeof(pt));
	assert_memory_equal(back, pt, sizeof(pt));
	hsm_key_release(s, k);
	/* A resident ref of the old generation is searched for again. */
	assert_int_equal(hsm_load_resident(s, id, sizeof(id), &ref, &k2), 0);
	assert_int_equal(ref.gen, hsm_generation(h));
	gcm_round_trip(k2);
	hsm_key_release(s, k2);
	assert_int_equal(hsm_destroy_resident(s, id, sizeof(id)), 0);
	assert_int_equal(hsm_objects_made(h), 3);
}

static void
test_hsm_sessions_reopen_after_reinit_without_closing_anothers(void **state)
{
	hsm_session *s2;
	uint8_t b[4];

	/* From a fresh start, s then s2 open: SoftHSM2 numbers sessions
	 * and objects from one counter, restarted by C_Initialize. */
	assert_int_equal(hsm_reinit(h), 0);
	assert_int_equal(hsm_session_open(h, &s2), 0);
	assert_int_equal(hsm_random(s, b, sizeof(b)), 0);
	assert_int_equal(hsm_random(s2, b, sizeof(b)), 0);
	assert_int_equal(hsm_reinit(h), 0);
	/* s2 reopens first and gets the number s had before: s must not
	 * close it as its own stale session. */
	assert_int_equal(hsm_random(s2, b, sizeof(b)), 0);
	assert_int_equal(hsm_random(s, b, sizeof(b)), 0);
	assert_int_equal(hsm_random(s2, b, sizeof(b)), 0);
	hsm_session_close(s2);
	assert_int_equal(hsm_random(s, b, sizeof(b)), 0);
	assert_false(hsm_is_down(h));
}

#define RSS_CYCLES 40000	/* unwrap + release: ~10 MB in SoftHSM2 2.6.1 */
#define RSS_REINIT_EVERY 4000

/* n unwrap+release cycles, re-initialising every `every` (0: never);
 * returns the growth of VmRSS in KiB. */
static long
unwrap_release_growth(const uint8_t *w, size_t wl, int n, int every)
{
	long before = proc_status_kib(getpid(), "VmRSS");
	hsm_key k;
	int i;

	for (i = 0; i < n; i++) {
		assert_int_equal(hsm_unwrap(s, w, wl, &k), 0);
		hsm_key_release(s, k);
		if (every > 0 && (i + 1) % every == 0) {
			assert_int_equal(hsm_reinit(h), 0);
		}
	}
	return proc_status_kib(getpid(), "VmRSS") - before;
}

static void
test_hsm_reinit_bounds_the_memory_of_destroyed_objects(void **state)
{
	uint8_t w[64];
	size_t wl;
	long with, without;

#if defined(__SANITIZE_ADDRESS__)
	/* ASan keeps freed memory in quarantine: RSS says nothing here. */
	skip();
#endif
	assert_int_equal(hsm_generate_wrapped(s, w, sizeof(w), &wl), 0);
	/* With recycling first, so the run without cannot reuse memory the
	 * recycling freed. */
	with = unwrap_release_growth(w, wl, RSS_CYCLES, RSS_REINIT_EVERY);
	without = unwrap_release_growth(w, wl, RSS_CYCLES, 0);
	fprintf(stderr, "# %d unwrap+release: VmRSS +%ld KiB with a reinit "
	    "every %d, +%ld KiB without\n", RSS_CYCLES, with,
	    RSS_REINIT_EVERY, without);
	/* SoftHSM2 2.6.1 keeps ~250 bytes per destroyed object until
	 * C_Finalize: 40,000 of them are ~10 MB. */
	assert_true(without >= 4096);
	assert_true(with <= 2048);
	assert_int_equal(hsm_reinit(h), 0);	/* give it back */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hsm_wrapped_version_is_sensitive_and_unextractable),
		cmocka_unit_test(test_hsm_resident_version_is_sensitive_and_unextractable),
		cmocka_unit_test(test_hsm_unwrapped_key_is_usable_from_another_session),
		cmocka_unit_test(test_hsm_gcm_rejects_tampering_and_zeroes_output),
		cmocka_unit_test(test_hsm_corrupt_wrapped_blob_is_refused),
		cmocka_unit_test(test_hsm_random_is_random),
		cmocka_unit_test(
		    test_hsm_oaep_probe_passes_sha1_and_fails_sha256_on_softhsm2),
		cmocka_unit_test(test_hsm_open_errors_name_the_problem),
		cmocka_unit_test(test_hsm_nothing_key_shaped_is_written_outside_the_token),
		cmocka_unit_test(test_hsm_token_pulled_fails_fast_and_recovers),
		cmocka_unit_test(test_hsm_reinit_keeps_the_domain_key_and_stales_old_handles),
		cmocka_unit_test(test_hsm_sessions_reopen_after_reinit_without_closing_anothers),
		cmocka_unit_test(test_hsm_reinit_bounds_the_memory_of_destroyed_objects),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
