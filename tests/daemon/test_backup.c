/*
 * test_backup.c — online backup and restore, against real kmsd processes
 * on real SoftHSM2 tokens: a backup taken while 8 clients encrypt, restored
 * into a fresh directory, serves a second kmsd that decrypts every
 * ciphertext acknowledged before the backup began; a damaged backup (a
 * changed byte, a missing file, a file added) is refused with the file
 * named; only administrators may take one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kms.h"
#include "tests/testutil.h"

#define CLIENTS 8
#define PER_CLIENT_MAX 20000

struct sealed {
	uint8_t blob[256];
	size_t len;
	uint32_t value;		/* the plaintext */
	double acked;		/* tu_now_s() when the reply came */
};

struct loader {
	const char *endpoint;
	const char *key;
	int id;
	atomic_int *stop;
	struct sealed *out;
	size_t n;
};

static void *
load(void *arg)
{
	struct loader *L = arg;
	kms_client *c = NULL;

	if (kms_client_open(&c, L->endpoint) != 0) {
		return NULL;
	}
	while (!atomic_load(L->stop) && L->n < PER_CLIENT_MAX) {
		uint32_t v = (uint32_t)(L->id << 24) | (uint32_t)L->n;
		kms_encrypt_req req = { .key_id = L->key,
			.plaintext = (const uint8_t *)&v,
			.plaintext_len = sizeof(v) };
		kms_encrypt_resp resp;
		kms_error_info ei;

		if (kms_encrypt(c, &req, &resp, &ei) != 0) {
			break;
		}
		if (resp.ciphertext_blob.len <= sizeof(L->out[0].blob)) {
			struct sealed *s = &L->out[L->n++];
			memcpy(s->blob, resp.ciphertext_blob.data,
			    resp.ciphertext_blob.len);
			s->len = resp.ciphertext_blob.len;
			s->value = v;
			s->acked = tu_now_s();
		}
		kms_encrypt_resp_free(&resp);
	}
	kms_client_close(c);
	return NULL;
}

static int
ctl(const struct tu_env *e, char **out, const char *fmt, ...)
{
	char args[1024], cmd[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "KMS_ENDPOINT=%s %s %s 2>&1", e->endpoint,
	    tu_bin("kmsctl"), args);
	return tu_run(cmd, out, NULL);
}

/* Start kmsd on a restored state directory; its pid, or -1. */
static pid_t
start_on(const char *dir)
{
	char sock[512], log[512];
	pid_t pid;

	snprintf(sock, sizeof(sock), "%s/kmsd.sock", dir);
	snprintf(log, sizeof(log), "%s/kmsd.log", dir);
	if ((pid = fork()) == 0) {
		FILE *f = freopen(log, "w", stderr);
		(void)f;
		execl(tu_bin("kmsd"), "kmsd", "--state-dir", dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		if (access(sock, F_OK) == 0) {
			usleep(100000);
			return pid;
		}
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static void
test_backup_under_load_restores_every_acknowledged_ciphertext(void **state)
{
	struct tu_env e;
	struct loader L[CLIENTS];
	pthread_t th[CLIENTS];
	atomic_int stop = 0;
	char *out = NULL, bdir[512], ndir[512], cmd[2048], ep[600], key[64];
	double began;
	size_t i, k, before = 0, checked = 0, total = 0;
	kms_client *c = NULL;
	pid_t pid;

	(void)state;
	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(ctl(&e, &out, "create-key --query KeyMetadata.KeyId "
	    "--output text"), 0);
	snprintf(key, sizeof(key), "%s", tu_trimnl(out));
	free(out);
	for (i = 0; i < CLIENTS; i++) {
		L[i] = (struct loader){ e.endpoint, key, (int)i, &stop,
			calloc(PER_CLIENT_MAX, sizeof(struct sealed)), 0 };
		assert_non_null(L[i].out);
		assert_int_equal(pthread_create(&th[i], NULL, load, &L[i]), 0);
	}
	usleep(300000);
	snprintf(bdir, sizeof(bdir), "%s-backup", e.dir);
	snprintf(ndir, sizeof(ndir), "%s-restored", e.dir);
	began = tu_now_s();
	assert_int_equal(ctl(&e, &out, "admin backup %s", bdir), 0);
	assert_non_null(strstr(out, "\"KeyCount\": 1"));
	free(out);
	usleep(300000);		/* clients went on during and after it */
	atomic_store(&stop, 1);
	for (i = 0; i < CLIENTS; i++) {
		pthread_join(th[i], NULL);
		for (k = 0; k < L[i].n; k++) {
			before += L[i].out[k].acked < began;
		}
		total += L[i].n;
		assert_true(L[i].n > 0);
	}
	fprintf(stderr, "%zu ciphertexts acknowledged before the backup, "
	    "%zu in all\n", before, total);
	assert_true(total > before);	/* clients kept working */
	assert_true(before >= CLIENTS);
	/* The backup holds no PIN: the operator keeps it (here, a copy). */
	snprintf(cmd, sizeof(cmd), "cp %s/user.pin %s.pin", e.dir, ndir);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	assert_int_equal(tu_env_destroy(&e), 0);

	/* Restore into a fresh directory, give it the PIN, serve. */
	snprintf(cmd, sizeof(cmd), "%s --restore %s --state-dir %s",
	    tu_bin("kmsd"), bdir, ndir);
	assert_int_equal(tu_run(cmd, &out, NULL), 0);
	assert_non_null(strstr(out, "restored 1 keys"));
	assert_non_null(strstr(out, "holds no PIN files"));
	free(out);
	snprintf(cmd, sizeof(cmd), "mv %s.pin %s/user.pin && chmod 600 "
	    "%s/user.pin", ndir, ndir, ndir);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	assert_true((pid = start_on(ndir)) > 0);
	snprintf(ep, sizeof(ep), "ipc://%s/kmsd.sock", ndir);
	assert_int_equal(kms_client_open(&c, ep), 0);
	for (i = 0; i < CLIENTS; i++) {
		for (k = 0; k < L[i].n; k++) {
			kms_decrypt_req dr = { .ciphertext_blob =
				L[i].out[k].blob,
				.ciphertext_len = L[i].out[k].len };
			kms_decrypt_resp resp;
			kms_error_info ei;
			int r;

			if (L[i].out[k].acked >= began) {
				continue;
			}
			r = kms_decrypt(c, &dr, &resp, &ei);
			if (r != 0) {
				fprintf(stderr, "%s: %s\n", ei.name,
				    ei.message);
			}
			assert_int_equal(r, 0);
			assert_int_equal(resp.plaintext.len, 4);
			assert_memory_equal(resp.plaintext.data,
			    &L[i].out[k].value, 4);
			kms_decrypt_resp_free(&resp);
			checked++;
		}
		free(L[i].out);
	}
	assert_int_equal(checked, before);
	kms_client_close(c);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", bdir, ndir);
	assert_int_equal(system(cmd), 0);
}

/* Restore of a copy of bdir with one change; the error kmsd prints. */
static char *
restore_damaged(const char *bdir, const char *damage)
{
	char cmd[2048], *out = NULL;

	snprintf(cmd, sizeof(cmd), "rm -rf %s-d %s-n && cp -a %s %s-d && "
	    "cd %s-d && %s", bdir, bdir, bdir, bdir, bdir, damage);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	snprintf(cmd, sizeof(cmd), "%s --restore %s-d --state-dir %s-n 2>&1",
	    tu_bin("kmsd"), bdir, bdir);
	assert_int_not_equal(tu_run(cmd, &out, NULL), 0);
	snprintf(cmd, sizeof(cmd), "test ! -e %s-n/kmsd.db", bdir);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);	/* nothing written */
	return out;
}

static void
test_damaged_backups_are_refused_naming_the_file(void **state)
{
	struct tu_env e;
	char bdir[512], cmd[2048], *out = NULL;

	(void)state;
	assert_int_equal(tu_env_init(&e, NULL), 0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	assert_int_equal(ctl(&e, NULL, "create-key"), 0);
	snprintf(bdir, sizeof(bdir), "%s-backup", e.dir);
	/* PINs only into a private directory. */
	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s", bdir);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	assert_int_equal(ctl(&e, &out, "admin backup %s --include-pins",
	    bdir), 254);
	assert_non_null(strstr(out, "mode 755"));
	free(out);
	snprintf(cmd, sizeof(cmd), "chmod 700 %s", bdir);
	assert_int_equal(tu_run(cmd, NULL, NULL), 0);
	assert_int_equal(ctl(&e, &out, "admin backup %s --include-pins",
	    bdir), 0);
	assert_non_null(strstr(out, "\"PinsIncluded\": true"));
	free(out);

	out = restore_damaged(bdir, "printf '\\x42' | dd of=kmsd.db bs=1 "
	    "seek=4000 conv=notrunc 2>/dev/null");
	assert_non_null(strstr(out, "kmsd.db differs from the manifest"));
	free(out);
	out = restore_damaged(bdir, "rm \"$(ls tokens/*/*.object | head -1)\"");
	assert_non_null(strstr(out, ".object is missing"));
	free(out);
	out = restore_damaged(bdir, "echo x > tokens/extra");
	assert_non_null(strstr(out, "tokens/extra is not in the manifest"));
	free(out);
	out = restore_damaged(bdir, "rm manifest.json");
	assert_non_null(strstr(out, "no manifest.json"));
	free(out);
	out = restore_damaged(bdir, "sed -i 's|\"path\": \"kmsd.db\"|"
	    "\"path\": \"../kmsd.db\"|' manifest.json");
	assert_non_null(strstr(out, "malformed"));
	free(out);

	/* Intact, it restores, PINs and all. */
	snprintf(cmd, sizeof(cmd), "%s --restore %s --state-dir %s-n && "
	    "test -f %s-n/user.pin && stat -c %%a %s-n/user.pin", tu_bin("kmsd"),
	    bdir, bdir, bdir, bdir);
	assert_int_equal(tu_run(cmd, &out, NULL), 0);
	assert_non_null(strstr(out, "600"));
	free(out);
	assert_int_equal(tu_env_destroy(&e), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s-d %s-n", bdir, bdir, bdir);
	assert_int_equal(system(cmd), 0);
}

static void
test_only_administrators_take_backups(void **state)
{
	struct tu_env e;
	char bdir[512], *out = NULL;

	(void)state;
	assert_int_equal(tu_env_init(&e, "administrators = user:nobody\n"),
	    0);
	assert_int_equal(tu_kmsd_start(&e), 0);
	snprintf(bdir, sizeof(bdir), "%s-backup", e.dir);
	assert_int_equal(ctl(&e, &out, "admin backup %s", bdir), 254);
	assert_non_null(strstr(out, "AccessDeniedException"));
	free(out);
	assert_int_not_equal(access(bdir, F_OK), 0);
	assert_int_equal(tu_env_destroy(&e), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		  test_backup_under_load_restores_every_acknowledged_ciphertext),
		cmocka_unit_test(test_damaged_backups_are_refused_naming_the_file),
		cmocka_unit_test(test_only_administrators_take_backups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
