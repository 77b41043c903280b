/*
 * test_fault.c — the token goes away while kmsd runs, and comes back.
 *
 * kmsd loads tests/p11shim, a PKCS#11 module that forwards every call to
 * the real SoftHSM2 and, while a fault file exists, acts as if the token
 * were pulled (sessions closed, CKR_DEVICE_REMOVED).  Requests must fail
 * promptly with DependencyTimeoutException, and kmsd must recover by
 * itself when the token returns.
 */
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
#include "tests/testutil.h"

static struct tu_env env;
static kms_client *cl;
static char fault[512];

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
gdk(const char *key, kms_generate_data_key_resp *out, kms_error_info *ei)
{
	kms_generate_data_key_req gr = { 0 };

	gr.key_id = key;
	gr.key_spec = "AES_256";
	return kms_generate_data_key(cl, &gr, out, ei);
}

static void
run_fault_cycle(const char *storage)
{
	char extra[1200], shim[512], key[KMS_KEY_ID_LEN + 1];
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	kms_create_key_req cr = { 0 };
	kms_key_metadata m;
	kms_generate_data_key_resp before, during;
	kms_decrypt_req dr = { 0 };
	kms_decrypt_resp dout;
	kms_error_info ei;
	double t0;
	int r = -1, i;
	FILE *f;

	snprintf(shim, sizeof(shim), "%s/%s/tests/libp11shim.so",
	    getcwd(extra, 512) ? extra : ".", build);
	assert_int_equal(access(shim, R_OK), 0);
	assert_int_equal(tu_env_init(&env, NULL), 0);
	snprintf(fault, sizeof(fault), "%s/token-pulled", env.dir);
	setenv("P11SHIM_FAULT_FILE", fault, 1);
	setenv("P11SHIM_MODULE", env.module, 1);
	snprintf(extra, sizeof(extra), "pkcs11_module = %s\nkey_storage = %s\n"
	    "hsm_retry_ms = 100\n", shim, storage);
	f = fopen(env.conf, "a");
	assert_non_null(f);
	fputs(extra, f);
	fclose(f);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&cl, env.endpoint), 0);
	kms_client_set_timeout(cl, 10000);

	assert_int_equal(kms_create_key(cl, &cr, &m, &ei), 0);
	snprintf(key, sizeof(key), "%s", m.key_id);
	kms_key_metadata_free(&m);
	assert_int_equal(gdk(key, &before, &ei), 0);

	/* Pull the token. */
	f = fopen(fault, "w");
	assert_non_null(f);
	fclose(f);
	for (i = 0; i < 3; i++) {
		t0 = now_s();
		r = gdk(key, &during, &ei);
		assert_int_equal(r, KMS_EDEPENDENCYTIMEOUT);
		assert_string_equal(ei.name, "DependencyTimeoutException");
		assert_true(now_s() - t0 < 2.0);
	}
	/* Put it back: kmsd must find it again by itself. */
	unlink(fault);
	for (i = 0; i < 100; i++) {
		if ((r = gdk(key, &during, &ei)) == 0) {
			break;
		}
		usleep(100 * 1000);
	}
	if (r != 0) {
		fail_msg("kmsd did not recover: %s %s", ei.name, ei.message);
	}
	kms_generate_data_key_resp_free(&during);
	/* What was made before the outage still decrypts. */
	dr.ciphertext_blob = before.ciphertext_blob.data;
	dr.ciphertext_len = before.ciphertext_blob.len;
	assert_int_equal(kms_decrypt(cl, &dr, &dout, &ei), 0);
	assert_memory_equal(dout.plaintext.data, before.plaintext.data, 32);
	kms_decrypt_resp_free(&dout);
	kms_generate_data_key_resp_free(&before);
	kms_client_close(cl);
	assert_int_equal(tu_kmsd_stop(&env), 0);
	tu_env_destroy(&env);
	return;
}

static void
test_token_pulled_and_restored_wrapped(void **state)
{
	run_fault_cycle("wrapped");
}

static void
test_token_pulled_and_restored_resident(void **state)
{
	run_fault_cycle("resident");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_pulled_and_restored_wrapped),
		cmocka_unit_test(test_token_pulled_and_restored_resident),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
