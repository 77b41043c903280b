/*
 * config.c — kmsd.conf parsing and validation.
 */
#include <ctype.h>
#include <stddef.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "kmsd/daemon/config.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/kmsd.h"

#define CONFIG_LINE_MAX 4096
/* NIST SP 800-38D §8.3: at most 2^32 invocations with random 96-bit IVs. */
#define GCM_RANDOM_IV_LIMIT 4294967296ULL
/* hsm_recycle_objects: SoftHSM2 2.6.1 keeps ~250 bytes per destroyed
 * session object until C_Finalize; 100,000 is ~25 MB, and each recycle
 * pauses requests for a few tenths of a second (README, Performance). */
#define RECYCLE_DEFAULT 100000
#define RECYCLE_MIN 100		/* below, kmsd would do little else */
#define RECYCLE_MAX 1000000000ULL
/* Audit log defaults (README, Configuration). */
#define AUDIT_SYNC_MS_DEFAULT 50
#define AUDIT_CHECKPOINT_RECORDS_DEFAULT 10000
#define AUDIT_CHECKPOINT_SECONDS_DEFAULT 60
#define AUDIT_ROTATE_BYTES_DEFAULT (64ULL << 20)
#define AUDIT_ROTATE_BYTES_MIN 65536ULL
#define AUDIT_ROTATE_SECONDS_DEFAULT 86400

static void
copy(char *dst, size_t dstlen, const char *src)
{
	snprintf(dst, dstlen, "%s", src);
}

void
config_defaults(struct config *c, const char *state_dir)
{
	char abs[PATH_MAX];
	struct passwd *pw;

	memset(c, 0, sizeof(*c));
	if (state_dir == NULL) {
		state_dir = "var";
	}
	if (state_dir[0] != '/' && getcwd(abs, sizeof(abs)) != NULL) {
		char joined[PATH_MAX + CONFIG_PATH_MAX];
		snprintf(joined, sizeof(joined), "%s/%s", abs, state_dir);
		copy(c->state_dir, sizeof(c->state_dir), joined);
	} else {
		copy(c->state_dir, sizeof(c->state_dir), state_dir);
	}
	copy(c->pkcs11_module, sizeof(c->pkcs11_module),
	    "/usr/lib/softhsm/libsofthsm2.so");
	copy(c->token_label, sizeof(c->token_label), "kmsd");
	c->socket_mode = 0660;
	c->key_storage = STORAGE_WRAPPED;
	c->workers = 8;
	copy(c->account_id, sizeof(c->account_id), "000000000000");
	copy(c->arn_partition, sizeof(c->arn_partition), "aws");
	copy(c->region, sizeof(c->region), "local");
	c->key_cache_handles = 4096;
	c->max_encryptions = GCM_RANDOM_IV_LIMIT - 1;
	c->hsm_retry_ms = 500;
	c->hsm_recycle_objects = RECYCLE_DEFAULT;
	c->batch_hsm_exclusive = 1;
	c->log_level = LOG_LEVEL_INFO;
	c->log_syslog = 0;
	c->http_threads = 1;
	c->http_workers = 4;
	c->http_max_connections = 1024;
	c->http_max_per_ip = 128;
	c->http_refusals_per_minute = 600;
	c->http_idle_timeout_s = 30;
	c->http_request_timeout_s = 30;
	c->max_connections_per_uid = CONFIG_PER_UID_DEFAULT;
	c->max_buffered_input_mib = CONFIG_INPUT_MIB_DEFAULT;
	c->audit = 1;
	c->audit_required = 1;
	c->audit_sync = AUDIT_SYNC_GROUP;
	c->audit_sync_ms = AUDIT_SYNC_MS_DEFAULT;
	c->audit_checkpoint_records = AUDIT_CHECKPOINT_RECORDS_DEFAULT;
	c->audit_checkpoint_seconds = AUDIT_CHECKPOINT_SECONDS_DEFAULT;
	c->audit_rotate_bytes = AUDIT_ROTATE_BYTES_DEFAULT;
	c->audit_rotate_seconds = AUDIT_ROTATE_SECONDS_DEFAULT;
	/* The invoking user administers the embedded default. */
	if ((pw = getpwuid(getuid())) != NULL) {
		snprintf(c->administrators[0], sizeof(c->administrators[0]),
		    "user:%s", pw->pw_name);
	} else {
		snprintf(c->administrators[0], sizeof(c->administrators[0]),
		    "uid:%u", (unsigned)getuid());
	}
	c->nadministrators = 1;
	copy(c->key_creators[0], sizeof(c->key_creators[0]), "*");
	c->nkey_creators = 1;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s)) {
		s++;
	}
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1])) {
		*--e = '\0';
	}
	return s;
}

/*
 * Trust in what kmsd reads at start-up (config.h).  A path fails when its
 * owner is neither root nor kmsd's user, or when group or others may
 * write it (or, for a secret, reach it at all): whoever can write the
 * state directory, kmsd.conf or softhsm2.conf chooses kmsd's token, PIN
 * file and administrators; whoever can write the token directory can
 * replace the token.  The group is refused too, though the socket is
 * 0660 for a group: that group is the clients kmsd serves, who must not
 * control it.  The message names the path and the command that fixes it.
 */
static int
trust_stat(const char *what, const char *path, const struct stat *st,
    int secret, char *err, size_t errlen)
{
	mode_t bad = secret ? (S_IRWXG | S_IRWXO) : (S_IWGRP | S_IWOTH);
	const char *fix = secret ? "chmod 600" : "chmod go-w";

	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(err, errlen, "%s %s: owned by uid %u, neither root "
		    "nor kmsd's user (uid %u): chown %u %s", what, path,
		    (unsigned)st->st_uid, (unsigned)geteuid(),
		    (unsigned)geteuid(), path);
		return KMS_EVALIDATION;
	}
	if ((st->st_mode & bad) != 0) {
		int grp = (st->st_mode & bad & S_IRWXG) != 0;
		int oth = (st->st_mode & bad & S_IRWXO) != 0;
		const char *who = grp && oth ? "its group and others" :
		    grp ? "its group" : "others";
		snprintf(err, errlen, "%s %s: %s by %s (mode %04o), so kmsd "
		    "will not trust it: %s %s", what, path,
		    secret ? "readable or writable" : "writable", who,
		    (unsigned)(st->st_mode & 07777), fix, path);
		return KMS_EVALIDATION;
	}
	return 0;
}

int
config_check_trust(const char *what, const char *path, int secret, char *err,
    size_t errlen)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s %s: %s", what, path,
		    strerror(errno));
		return KMS_EVALIDATION;
	}
	return trust_stat(what, path, &st, secret, err, errlen);
}

/* SoftHSM2's token directory, from its config file (0: none named). */
static int
softhsm_tokendir(const char *conf, char *out, size_t outlen)
{
	char line[CONFIG_LINE_MAX];
	FILE *f;
	int found = 0;

	if ((f = fopen(conf, "r")) == NULL) {
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s = trim(line), *eq;
		if (*s == '#' || (eq = strchr(s, '=')) == NULL) {
			continue;
		}
		*eq = '\0';
		if (strcmp(trim(s), "directories.tokendir") == 0) {
			copy(out, outlen, trim(eq + 1));
			found = out[0] != '\0';
		}
	}
	fclose(f);
	return found;
}

/* The token directory and the token folders in it. */
static int
check_tokendir(const char *dir, char *err, size_t errlen)
{
	char sub[CONFIG_PATH_MAX + 300];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r;

	if ((r = config_check_trust("token directory", dir, 0, err,
	    errlen)) != 0) {
		return r;
	}
	if ((d = opendir(dir)) == NULL) {
		return 0;	/* SoftHSM2 will say what is wrong */
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.') {
			continue;
		}
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode) &&
		    (r = trust_stat("token directory", sub, &st, 0, err,
		    errlen)) != 0) {
			break;
		}
	}
	closedir(d);
	return r;
}

static int
parse_uint(const char *v, unsigned long long max, unsigned long long *out,
    int base)
{
	char *end;
	unsigned long long n;

	if (*v == '\0' || *v == '-') {
		return -1;
	}
	errno = 0;
	n = strtoull(v, &end, base);
	if (errno != 0 || *end != '\0' || n > max) {
		return -1;
	}
	*out = n;
	return 0;
}

/* A partition or region: what AWS uses in ARNs (lower case, digits, '-'). */
static int
arn_field_ok(const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n == 0 || n > max ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != n) {
		return -1;
	}
	return 0;
}

/*
 * Words separated by spaces or commas into list, an array of at most max
 * strings of width bytes each; with region, each must be one.
 */
static int
set_list(char *list, size_t width, int max, int *n, char *v, int region)
{
	char *tok, *save = NULL;

	*n = 0;
	for (tok = strtok_r(v, " ,\t", &save); tok != NULL;
	    tok = strtok_r(NULL, " ,\t", &save)) {
		if (*n == max || strlen(tok) >= width || (region &&
		    arn_field_ok(tok, CONFIG_REGION_MAX) != 0)) {
			return -1;
		}
		copy(list + (size_t)(*n)++ * width, width, tok);
	}
	return 0;
}

static int set_path(char *dst, size_t dstlen, const char *v,
    const char **why);

/* The HTTP front end's keys (README, Configuration). */
static int
set_http_key(struct config *c, const char *k, char *v, const char **why)
{
	static const struct {
		const char *name;
		size_t off;
		unsigned long long min, max;
	} ints[] = {
		{ "http_threads", offsetof(struct config, http_threads), 1,
		    CONFIG_WORKERS_MAX },
		{ "http_workers", offsetof(struct config, http_workers), 1,
		    CONFIG_WORKERS_MAX },
		{ "http_max_connections", offsetof(struct config,
		    http_max_connections), 1, 65536 },
		{ "http_max_per_ip", offsetof(struct config, http_max_per_ip),
		    1, 65536 },
		{ "http_refusals_per_minute", offsetof(struct config,
		    http_refusals_per_minute), 0, 1000000 },
		{ "http_idle_timeout", offsetof(struct config,
		    http_idle_timeout_s), 1, 3600 },
		{ "http_request_timeout", offsetof(struct config,
		    http_request_timeout_s), 1, 3600 },
	};
	unsigned long long n;
	size_t i;

	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (strcmp(k, ints[i].name) == 0) {
			if (parse_uint(v, ints[i].max, &n, 10) != 0 ||
			    n < ints[i].min) {
				*why = "out of range (see README)";
				return -1;
			}
			*(int *)(void *)((char *)c + ints[i].off) = (int)n;
			return 0;
		}
	}
	if (strcmp(k, "http_listen") == 0) {
		if (*v != '\0' && strrchr(v, ':') == NULL) {
			*why = "http_listen must be ADDRESS:PORT";
			return -1;
		}
		copy(c->http_listen, sizeof(c->http_listen), v);
	} else if (strcmp(k, "http_tls_cert") == 0) {
		return set_path(c->http_tls_cert, sizeof(c->http_tls_cert), v,
		    why);
	} else if (strcmp(k, "http_tls_key") == 0) {
		return set_path(c->http_tls_key, sizeof(c->http_tls_key), v,
		    why);
	} else if (strcmp(k, "http_tls_client_ca") == 0) {
		return set_path(c->http_tls_client_ca,
		    sizeof(c->http_tls_client_ca), v, why);
	} else if (strcmp(k, "http_credentials") == 0) {
		return set_path(c->http_credentials,
		    sizeof(c->http_credentials), v, why);
	} else {
		*why = "unknown key";
		return -1;
	}
	return 0;
}

/* Copy a path-valued setting; -1 when it would not fit (a truncated path
 * names another file). */
static int
set_path(char *dst, size_t dstlen, const char *v, const char **why)
{
	if (strlen(v) >= dstlen) {
		*why = "path too long (at most 1023 bytes)";
		return -1;
	}
	copy(dst, dstlen, v);
	return 0;
}

static int
yes_no(const char *v, int *out)
{
	if (strcmp(v, "yes") == 0) {
		*out = 1;
	} else if (strcmp(v, "no") == 0) {
		*out = 0;
	} else {
		return -1;
	}
	return 0;
}

/* The audit_* keys; 1 when k is not one of them. */
static int
set_audit_key(struct config *c, const char *k, char *v, const char **why)
{
	unsigned long long n;

	if (strcmp(k, "audit") == 0) {
		if (yes_no(v, &c->audit) != 0) {
			*why = "audit must be yes or no";
			return -1;
		}
	} else if (strcmp(k, "audit_dir") == 0) {
		if (v[0] != '/') {
			*why = "audit_dir must be an absolute path";
			return -1;
		}
		copy(c->audit_dir, sizeof(c->audit_dir), v);
	} else if (strcmp(k, "audit_required") == 0) {
		if (yes_no(v, &c->audit_required) != 0) {
			*why = "audit_required must be yes or no";
			return -1;
		}
	} else if (strcmp(k, "audit_sync") == 0) {
		if (strcmp(v, "group") == 0) {
			c->audit_sync = AUDIT_SYNC_GROUP;
		} else if (strcmp(v, "request") == 0) {
			c->audit_sync = AUDIT_SYNC_REQUEST;
		} else {
			*why = "audit_sync must be group or request";
			return -1;
		}
	} else if (strcmp(k, "audit_sync_ms") == 0) {
		if (parse_uint(v, 10000, &n, 10) != 0 || n == 0) {
			*why = "audit_sync_ms must be 1-10000";
			return -1;
		}
		c->audit_sync_ms = (int)n;
	} else if (strcmp(k, "audit_checkpoint_records") == 0) {
		if (parse_uint(v, 100000000, &n, 10) != 0 || n == 0) {
			*why = "audit_checkpoint_records must be 1-100000000";
			return -1;
		}
		c->audit_checkpoint_records = n;
	} else if (strcmp(k, "audit_checkpoint_seconds") == 0) {
		if (parse_uint(v, 86400, &n, 10) != 0 || n == 0) {
			*why = "audit_checkpoint_seconds must be 1-86400";
			return -1;
		}
		c->audit_checkpoint_seconds = (int)n;
	} else if (strcmp(k, "audit_rotate_bytes") == 0) {
		if (parse_uint(v, 1ULL << 40, &n, 10) != 0 ||
		    n < AUDIT_ROTATE_BYTES_MIN) {
			*why = "audit_rotate_bytes must be 65536-2^40";
			return -1;
		}
		c->audit_rotate_bytes = n;
	} else if (strcmp(k, "audit_rotate_seconds") == 0) {
		if (parse_uint(v, 31622400, &n, 10) != 0) {
			*why = "audit_rotate_seconds must be 0 (never) or "
			    "1-31622400";
			return -1;
		}
		c->audit_rotate_seconds = (int)n;
	} else {
		return 1;
	}
	return 0;
}

static int
set_key(struct config *c, const char *k, char *v, const char **why)
{
	unsigned long long n;
	int ar;

	*why = "bad value";
	if (strncmp(k, "audit", 5) == 0 &&
	    (ar = set_audit_key(c, k, v, why)) != 1) {
		return ar;
	}
	if (strcmp(k, "state_dir") == 0) {
		if (v[0] != '/') {
			*why = "state_dir must be an absolute path";
			return -1;
		}
		if (set_path(c->state_dir, sizeof(c->state_dir), v, why) != 0) {
			return -1;
		}
	} else if (strcmp(k, "pkcs11_module") == 0) {
		if (set_path(c->pkcs11_module, sizeof(c->pkcs11_module), v, why) != 0) {
			return -1;
		}
	} else if (strcmp(k, "softhsm2_conf") == 0) {
		if (set_path(c->softhsm2_conf, sizeof(c->softhsm2_conf), v, why) != 0) {
			return -1;
		}
	} else if (strcmp(k, "token_label") == 0) {
		if (strlen(v) == 0 || strlen(v) > 32) {
			*why = "token_label must be 1-32 characters";
			return -1;
		}
		copy(c->token_label, sizeof(c->token_label), v);
	} else if (strcmp(k, "pin_file") == 0) {
		if (set_path(c->pin_file, sizeof(c->pin_file), v, why) != 0) {
			return -1;
		}
	} else if (strcmp(k, "listen") == 0) {
		if (strncmp(v, "ipc://", 6) != 0) {
			*why = "listen must be an ipc:// URL";
			return -1;
		}
		if (set_path(c->listen, sizeof(c->listen), v, why) != 0) {
			return -1;
		}
	} else if (strcmp(k, "socket_mode") == 0) {
		if (parse_uint(v, 0777, &n, 8) != 0) {
			*why = "socket_mode must be octal, e.g. 0660";
			return -1;
		}
		c->socket_mode = (unsigned)n;
	} else if (strcmp(k, "store") == 0) {
		if (strncmp(v, "sqlite:", 7) == 0) {
			v += 7;
		}
		if (set_path(c->store, sizeof(c->store), v, why) != 0) {
			return -1;
		}
	} else if (strcmp(k, "key_storage") == 0) {
		if (strcmp(v, "wrapped") == 0) {
			c->key_storage = STORAGE_WRAPPED;
		} else if (strcmp(v, "resident") == 0) {
			c->key_storage = STORAGE_RESIDENT;
		} else {
			*why = "key_storage must be wrapped or resident";
			return -1;
		}
	} else if (strcmp(k, "workers") == 0) {
		if (parse_uint(v, CONFIG_WORKERS_MAX, &n, 10) != 0 || n == 0) {
			*why = "workers must be 1-256";
			return -1;
		}
		c->workers = (int)n;
	} else if (strcmp(k, "administrators") == 0) {
		if (set_list(c->administrators[0], sizeof(c->administrators[0]),
		    CONFIG_MAX_ADMINS, &c->nadministrators, v, 0) != 0) {
			*why = "too many or too long administrators";
			return -1;
		}
	} else if (strcmp(k, "key_creators") == 0) {
		if (set_list(c->key_creators[0], sizeof(c->key_creators[0]),
		    CONFIG_MAX_ADMINS, &c->nkey_creators, v, 0) != 0) {
			*why = "too many or too long key_creators";
			return -1;
		}
	} else if (strcmp(k, "account_id") == 0) {
		if (strlen(v) != 12 || strspn(v, "0123456789") != 12) {
			*why = "account_id must be 12 digits";
			return -1;
		}
		copy(c->account_id, sizeof(c->account_id), v);
	} else if (strcmp(k, "arn_partition") == 0) {
		if (arn_field_ok(v, CONFIG_PARTITION_MAX) != 0) {
			*why = "arn_partition must be 1-16 of a-z, 0-9 and -";
			return -1;
		}
		copy(c->arn_partition, sizeof(c->arn_partition), v);
	} else if (strcmp(k, "region") == 0) {
		if (arn_field_ok(v, CONFIG_REGION_MAX) != 0) {
			*why = "region must be 1-24 of a-z, 0-9 and -";
			return -1;
		}
		copy(c->region, sizeof(c->region), v);
	} else if (strcmp(k, "http_regions") == 0) {
		if (set_list(c->http_regions[0], sizeof(c->http_regions[0]),
		    CONFIG_HTTP_REGIONS, &c->nhttp_regions, v, 1) != 0) {
			*why = "at most 16 regions, each 1-24 of a-z, 0-9 "
			    "and -";
			return -1;
		}
	} else if (strcmp(k, "key_cache_handles") == 0) {
		if (parse_uint(v, 10000000, &n, 10) != 0 || n < 16) {
			*why = "key_cache_handles must be 16-10000000";
			return -1;
		}
		c->key_cache_handles = (size_t)n;
	} else if (strcmp(k, "max_encryptions_per_version") == 0) {
		if (parse_uint(v, GCM_RANDOM_IV_LIMIT - 1, &n, 10) != 0 ||
		    n == 0) {
			*why = "max_encryptions_per_version must be 1-(2^32-1)";
			return -1;
		}
		c->max_encryptions = n;
	} else if (strcmp(k, "hsm_retry_ms") == 0) {
		if (parse_uint(v, 60000, &n, 10) != 0 || n < 10) {
			*why = "hsm_retry_ms must be 10-60000";
			return -1;
		}
		c->hsm_retry_ms = (int)n;
	} else if (strcmp(k, "hsm_recycle_objects") == 0) {
		if (parse_uint(v, RECYCLE_MAX, &n, 10) != 0 ||
		    (n != 0 && n < RECYCLE_MIN)) {
			*why = "hsm_recycle_objects must be 0 (never) or "
			    "100-1000000000";
			return -1;
		}
		c->hsm_recycle_objects = n;
	} else if (strcmp(k, "batch_hsm_exclusive") == 0) {
		if (strcmp(v, "yes") == 0) {
			c->batch_hsm_exclusive = 1;
		} else if (strcmp(v, "no") == 0) {
			c->batch_hsm_exclusive = 0;
		} else {
			*why = "batch_hsm_exclusive must be yes or no";
			return -1;
		}
	} else if (strcmp(k, "log_level") == 0) {
		int lv = log_level_parse(v);
		if (lv < 0) {
			*why = "log_level must be error, warn, info or debug";
			return -1;
		}
		c->log_level = lv;
	} else if (strcmp(k, "log_syslog") == 0) {
		if (strcmp(v, "yes") == 0) {
			c->log_syslog = 1;
		} else if (strcmp(v, "no") == 0) {
			c->log_syslog = 0;
		} else {
			*why = "log_syslog must be yes or no";
			return -1;
		}
	} else if (strcmp(k, "metrics_listen") == 0) {
		if (*v != '\0' && strrchr(v, ':') == NULL) {
			*why = "metrics_listen must be ADDRESS:PORT";
			return -1;
		}
		copy(c->metrics_listen, sizeof(c->metrics_listen), v);
	} else if (strncmp(k, "http_", 5) == 0) {
		return set_http_key(c, k, v, why);
	} else if (strcmp(k, "max_connections_per_uid") == 0) {
		if (parse_uint(v, CONFIG_PER_UID_MAX, &n, 10) != 0 || n == 0) {
			*why = "max_connections_per_uid must be 1-1000000";
			return -1;
		}
		c->max_connections_per_uid = (unsigned)n;
	} else if (strcmp(k, "max_buffered_input_mib") == 0) {
		if (parse_uint(v, CONFIG_INPUT_MIB_MAX, &n, 10) != 0 ||
		    n < CONFIG_INPUT_MIB_MIN) {
			*why = "max_buffered_input_mib must be 4-65536";
			return -1;
		}
		c->max_buffered_input_mib = (unsigned)n;
	} else if (strcmp(k, "test_clock") == 0) {
		/* For tests only (README): lets an administrator move
		 * kmsd's clock forward, so rotations and deletions come
		 * due at once. */
		if (strcmp(v, "yes") == 0) {
			c->test_clock = 1;
		} else if (strcmp(v, "no") == 0) {
			c->test_clock = 0;
		} else {
			*why = "test_clock must be yes or no";
			return -1;
		}
	} else {
		*why = "unknown key";
		return -1;
	}
	return 0;
}

int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct stat st;
	FILE *f;
	int r;

	if (errlen > 0) {
		err[0] = '\0';
	}

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return KMS_EVALIDATION;
	}
	/* The file read, not the name: it cannot be swapped in between. */
	if (fstat(fileno(f), &st) != 0 ||
	    trust_stat("config file", path, &st, 0, err, errlen) != 0) {
		if (err[0] == '\0') {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		}
		fclose(f);
		return KMS_EVALIDATION;
	}
	r = config_read(c, f, path, err, errlen);
	fclose(f);
	return r;
}

int
config_read(struct config *c, FILE *f, const char *path, char *err,
    size_t errlen)
{
	char line[CONFIG_LINE_MAX];
	int lineno = 0, r = 0;

	while (fgets(line, sizeof(line), f) != NULL) {
		char *s, *eq, *k, *v, *hash;
		const char *why;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line too long", path,
			    lineno);
			r = KMS_EVALIDATION;
			break;
		}
		if ((hash = strchr(line, '#')) != NULL) {
			*hash = '\0';
		}
		s = trim(line);
		if (*s == '\0') {
			continue;
		}
		if ((eq = strchr(s, '=')) == NULL) {
			snprintf(err, errlen, "%s:%d: expected key = value",
			    path, lineno);
			r = KMS_EVALIDATION;
			break;
		}
		*eq = '\0';
		k = trim(s);
		v = trim(eq + 1);
		if (set_key(c, k, v, &why) != 0) {
			snprintf(err, errlen, "%s:%d: %s: %s", path, lineno, k,
			    why);
			r = KMS_EVALIDATION;
			break;
		}
	}
	return r;
}

/* Fill an unset path from the state directory; -1 when it would not fit. */
static int
derive(char *dst, size_t len, const char *dir, const char *prefix,
    const char *name)
{
	int n;

	if (dst[0] != '\0') {
		return 0;
	}
	n = snprintf(dst, len, "%s%s/%s", prefix, dir, name);
	if (n < 0 || (size_t)n >= len) {
		dst[0] = '\0';
		return -1;
	}
	return 0;
}

int
config_finish(struct config *c, char *err, size_t errlen)
{
	struct stat st;
	char sc[CONFIG_PATH_MAX + 32];

	if (derive(c->pin_file, sizeof(c->pin_file), c->state_dir, "",
	    "user.pin") != 0 ||
	    derive(c->listen, sizeof(c->listen), c->state_dir, "ipc://",
	    "kmsd.sock") != 0 ||
	    derive(c->store, sizeof(c->store), c->state_dir, "",
	    "kmsd.db") != 0) {
		snprintf(err, errlen, "state_dir %.64s...: too long for the "
		    "paths kept in it (set pin_file, listen and store, or "
		    "use a shorter state_dir)", c->state_dir);
		return KMS_EVALIDATION;
	}
	if (derive(c->http_credentials, sizeof(c->http_credentials),
	    c->state_dir, "", "credentials") != 0) {
		snprintf(err, errlen, "state_dir %.64s...: too long for "
		    "http_credentials (set it)", c->state_dir);
		return KMS_EVALIDATION;
	}
	if (c->http_listen[0] != '\0' &&
	    (c->http_tls_cert[0] == '\0') != (c->http_tls_key[0] == '\0')) {
		snprintf(err, errlen, "http_tls_cert and http_tls_key go "
		    "together");
		return KMS_EVALIDATION;
	}
	/* Plain HTTP carries plaintexts and data keys: loopback only. */
	if (c->http_listen[0] != '\0' && c->http_tls_cert[0] == '\0' &&
	    strncmp(c->http_listen, "127.", 4) != 0 &&
	    strncmp(c->http_listen, "[::1]:", 6) != 0 &&
	    strncmp(c->http_listen, "localhost:", 10) != 0) {
		snprintf(err, errlen, "http_listen %s without http_tls_cert: "
		    "plain HTTP is served on loopback addresses only",
		    c->http_listen);
		return KMS_EVALIDATION;
	}
	if (c->http_tls_client_ca[0] != '\0' && c->http_tls_cert[0] == '\0') {
		snprintf(err, errlen, "http_tls_client_ca needs http_tls_cert");
		return KMS_EVALIDATION;
	}
	if (derive(c->audit_dir, sizeof(c->audit_dir), c->state_dir, "",
	    "audit") != 0) {
		snprintf(err, errlen, "state_dir %.64s...: too long for "
		    "audit_dir (set it)", c->state_dir);
		return KMS_EVALIDATION;
	}
	snprintf(sc, sizeof(sc), "%s/softhsm2.conf", c->state_dir);
	if (c->softhsm2_conf[0] == '\0' && stat(sc, &st) == 0) {
		copy(c->softhsm2_conf, sizeof(c->softhsm2_conf), sc);
	}
	/* Each recycle empties the handle cache; refilling it must not
	 * bring on the next one. */
	if (c->hsm_recycle_objects != 0 &&
	    c->hsm_recycle_objects < 2 * (uint64_t)c->key_cache_handles) {
		snprintf(err, errlen, "hsm_recycle_objects (%llu) must be 0 or "
		    "at least twice key_cache_handles (%zu): each recycle "
		    "empties the handle cache", (unsigned long long)
		    c->hsm_recycle_objects, c->key_cache_handles);
		return KMS_EVALIDATION;
	}
	if (stat(c->state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state_dir %s: not a directory "
		    "(run scripts/hsm-init %s)", c->state_dir, c->state_dir);
		return KMS_EVALIDATION;
	}
	if (trust_stat("state_dir", c->state_dir, &st, 0, err, errlen) != 0) {
		return KMS_EVALIDATION;
	}
	if (stat(c->store, &st) == 0 &&
	    trust_stat("store", c->store, &st, 0, err, errlen) != 0) {
		return KMS_EVALIDATION;
	}
	/* And where it lives: whoever may write there may swap it. */
	{
		char sdir[CONFIG_PATH_MAX];
		char *slash;
		copy(sdir, sizeof(sdir), c->store);
		if ((slash = strrchr(sdir, '/')) != NULL && slash != sdir) {
			*slash = '\0';
			if (stat(sdir, &st) == 0 && trust_stat("store "
			    "directory", sdir, &st, 0, err, errlen) != 0) {
				return KMS_EVALIDATION;
			}
		}
	}
	if (access(c->pkcs11_module, R_OK) != 0) {
		snprintf(err, errlen, "pkcs11_module %s: %s", c->pkcs11_module,
		    strerror(errno));
		return KMS_EVALIDATION;
	}
	if (stat(c->pin_file, &st) != 0) {
		snprintf(err, errlen, "pin_file %s: %s", c->pin_file,
		    strerror(errno));
		return KMS_EVALIDATION;
	}
	if (trust_stat("pin_file", c->pin_file, &st, 1, err, errlen) != 0) {
		return KMS_EVALIDATION;
	}
	if (c->softhsm2_conf[0] != '\0' && access(c->softhsm2_conf, R_OK) != 0) {
		snprintf(err, errlen, "softhsm2_conf %s: %s", c->softhsm2_conf,
		    strerror(errno));
		return KMS_EVALIDATION;
	}
	if (c->softhsm2_conf[0] != '\0') {
		char tokendir[CONFIG_PATH_MAX];
		int r;
		if ((r = config_check_trust("softhsm2_conf", c->softhsm2_conf,
		    0, err, errlen)) != 0) {
			return r;
		}
		if (softhsm_tokendir(c->softhsm2_conf, tokendir,
		    sizeof(tokendir)) && (r = check_tokendir(tokendir, err,
		    errlen)) != 0) {
			return r;
		}
	}
	return 0;
}

int
config_is_admin(const struct config *c, const char *principal)
{
	int i;

	for (i = 0; i < c->nadministrators; i++) {
		if (strcmp(c->administrators[i], principal) == 0) {
			return 1;
		}
	}
	return 0;
}

int
config_may_create_keys(const struct config *c, const struct principal *p)
{
	int i, j;

	for (i = 0; i < c->nkey_creators; i++) {
		const char *s = c->key_creators[i];
		if (strcmp(s, "*") == 0 || strcmp(s, p->name) == 0 ||
		    strcmp(s, p->uid_name) == 0) {
			return 1;
		}
		for (j = 0; j < p->ngroups; j++) {
			if (strcmp(s, p->groups[j]) == 0) {
				return 1;
			}
		}
	}
	return 0;
}
