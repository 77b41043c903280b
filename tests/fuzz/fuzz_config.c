/*
 * fuzz_config.c — libFuzzer harness for kmsd.conf (kmsd/daemon/config.c).
 *
 * The input is a config file's text, read with config_read from memory
 * over the defaults.  A rejection names the file and line; an acceptance
 * leaves every field within its documented range and every string
 * terminated inside its array.  config_finish then either accepts or says
 * why (it looks at paths named by the input, and only looks); the paths it
 * derives from state_dir end with their file's name, never cut short.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "kmsd/daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

static void
check_fields(const struct config *c)
{
	int i;

	if (!TERMINATED(c->state_dir) || !TERMINATED(c->pkcs11_module) ||
	    !TERMINATED(c->softhsm2_conf) || !TERMINATED(c->token_label) ||
	    !TERMINATED(c->pin_file) || !TERMINATED(c->listen) ||
	    !TERMINATED(c->store) || !TERMINATED(c->account_id)) {
		abort();
	}
	if (c->state_dir[0] != '/' || c->token_label[0] == '\0' ||
	    (c->listen[0] != '\0' && strncmp(c->listen, "ipc://", 6) != 0) ||
	    c->socket_mode > 0777 ||
	    (c->key_storage != STORAGE_WRAPPED &&
	    c->key_storage != STORAGE_RESIDENT) ||
	    c->workers < 1 || c->workers > CONFIG_WORKERS_MAX ||
	    strlen(c->account_id) != 12 ||
	    strspn(c->account_id, "0123456789") != 12 ||
	    c->key_cache_handles < 16 || c->max_encryptions == 0 ||
	    c->hsm_retry_ms < 10 || c->hsm_retry_ms > 60000 ||
	    (c->hsm_recycle_objects != 0 && c->hsm_recycle_objects < 100) ||
	    (c->batch_hsm_exclusive != 0 && c->batch_hsm_exclusive != 1) ||
	    c->log_level < LOG_LEVEL_ERROR || c->log_level > LOG_LEVEL_DEBUG ||
	    (c->log_syslog != 0 && c->log_syslog != 1) ||
	    c->nadministrators < 0 || c->nadministrators > CONFIG_MAX_ADMINS ||
	    c->nkey_creators < 0 || c->nkey_creators > CONFIG_MAX_ADMINS) {
		abort();
	}
	for (i = 0; i < c->nadministrators; i++) {
		if (!TERMINATED(c->administrators[i]) ||
		    c->administrators[i][0] == '\0') {
			abort();
		}
	}
	for (i = 0; i < c->nkey_creators; i++) {
		if (!TERMINATED(c->key_creators[i]) ||
		    c->key_creators[i][0] == '\0') {
			abort();
		}
	}
}

static int
ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n >= m && strcmp(s + n - m, tail) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config defaults, c;
	static int ready;
	char err[512];
	FILE *f;
	int r, pin, listen, store;

	if (!ready) {
		/* Once: it reads the passwd database. */
		config_defaults(&defaults, "/nonexistent/kmsd-fuzz");
		ready = 1;
	}
	if (size == 0) {
		return 0;
	}
	c = defaults;
	if ((f = fmemopen((void *)(uintptr_t)data, size, "r")) == NULL) {
		abort();
	}
	err[0] = '\0';
	r = config_read(&c, f, "fuzz.conf", err, sizeof(err));
	fclose(f);
	if (r != 0) {
		if (r != KMS_EVALIDATION ||
		    strncmp(err, "fuzz.conf:", 10) != 0) {
			abort();
		}
		return 0;
	}
	check_fields(&c);
	pin = c.pin_file[0] == '\0';
	listen = c.listen[0] == '\0';
	store = c.store[0] == '\0';
	err[0] = '\0';
	r = config_finish(&c, err, sizeof(err));
	if (r != 0 && (r != KMS_EVALIDATION || err[0] == '\0')) {
		abort();
	}
	/* Whether or not it then accepts, a path it derived is whole. */
	if ((pin && c.pin_file[0] != '\0' &&
	    !ends_with(c.pin_file, "/user.pin")) ||
	    (listen && c.listen[0] != '\0' &&
	    !ends_with(c.listen, "/kmsd.sock")) ||
	    (store && c.store[0] != '\0' && !ends_with(c.store, "/kmsd.db"))) {
		abort();	/* a derived path cut short */
	}
	check_fields(&c);
	return 0;
}
