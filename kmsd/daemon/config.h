/*
 * config.h — kmsd.conf: "key = value" lines, '#' comments.  Every key is
 * documented in the README; every key has a default that works out of the
 * box (the embedded default: everything under ./var).  Not thread-safe;
 * read once at start-up, then read-only.
 */
#ifndef KMSD_CONFIG_H
#define KMSD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_PATH_MAX 1024
#define CONFIG_MAX_ADMINS 32
#define CONFIG_WORKERS_MAX 256
/* ARN fields (so that a key ARN always fits KEY_ARN_MAX). */
#define CONFIG_PARTITION_MAX 16		/* aws-iso-b is the longest AWS's */
#define CONFIG_REGION_MAX 24		/* ap-southeast-3 and the like */
#define CONFIG_HTTP_REGIONS 16		/* http_regions */
/* What one peer may make the IPC listener hold (kmsd/frontend/ipc.c). */
#define CONFIG_PER_UID_DEFAULT 1024	/* connections of one peer uid */
#define CONFIG_PER_UID_MAX 1000000
#define CONFIG_INPUT_MIB_DEFAULT 64	/* partial requests, all peers */
#define CONFIG_INPUT_MIB_MIN 4		/* a few whole 1 MiB messages */
#define CONFIG_INPUT_MIB_MAX 65536

enum key_storage { STORAGE_WRAPPED = 0, STORAGE_RESIDENT };
/* audit_sync: group = each record written (write(2)) before its reply, an
 * fdatasync every audit_sync_ms for all written meanwhile; request = each
 * reply also waits for an fdatasync covering its record (shared by every
 * record written meanwhile). */
enum audit_sync { AUDIT_SYNC_GROUP = 0, AUDIT_SYNC_REQUEST };

struct config {
	char config_path[CONFIG_PATH_MAX];	/* the file read, or "" */
	char state_dir[CONFIG_PATH_MAX];
	char pkcs11_module[CONFIG_PATH_MAX];
	char softhsm2_conf[CONFIG_PATH_MAX];	/* exported if non-empty */
	char token_label[33];			/* PKCS#11 label: 32 chars */
	char pin_file[CONFIG_PATH_MAX];
	char listen[CONFIG_PATH_MAX];		/* ipc://<socket path> */
	unsigned socket_mode;			/* ipc socket permissions */
	char store[CONFIG_PATH_MAX];		/* sqlite database path */
	int key_storage;			/* enum key_storage */
	int workers;
	char administrators[CONFIG_MAX_ADMINS][128];
	int nadministrators;
	char key_creators[CONFIG_MAX_ADMINS][128];	/* who may CreateKey */
	int nkey_creators;
	char account_id[13];			/* 12 digits */
	char arn_partition[CONFIG_PARTITION_MAX + 1];	/* ARNs: aws */
	char region[CONFIG_REGION_MAX + 1];	/* ARNs and SigV4: local */
	size_t key_cache_handles;		/* unwrapped versions kept */
	uint64_t max_encryptions;		/* per version, then rotate */
	int hsm_retry_ms;			/* recovery attempt period */
	uint64_t hsm_recycle_objects;		/* re-initialise the module after
						 * this many session objects;
						 * 0: never */
	int batch_hsm_exclusive;		/* a Batch has the HSM to itself */
	int log_level;				/* enum log_level (common/log.h) */
	int log_syslog;				/* syslog/journald, not stderr */
	/* The HTTP front end (frontend/http.c): off unless http_listen. */
	char http_listen[CONFIG_PATH_MAX];	/* host:port; "" = off */
	char http_tls_cert[CONFIG_PATH_MAX];	/* PEM; "" = plain HTTP */
	char http_tls_key[CONFIG_PATH_MAX];	/* PEM, mode 0600 */
	char http_tls_client_ca[CONFIG_PATH_MAX];	/* verify client certs */
	char http_credentials[CONFIG_PATH_MAX];	/* SigV4 keys, mode 0600 */
	/* Regions a SigV4 scope may name besides region. */
	char http_regions[CONFIG_HTTP_REGIONS][CONFIG_REGION_MAX + 1];
	int nhttp_regions;
	int http_threads;			/* each with its own worker */
	int http_workers;			/* the pool's, likewise */
	int http_max_connections;
	int http_max_per_ip;
	int http_refusals_per_minute;		/* recorded one by one, per
						 * address; 0: all */
	int http_idle_timeout_s;		/* a silent connection closes */
	int http_request_timeout_s;		/* a whole request's body */
	char metrics_listen[CONFIG_PATH_MAX];	/* Prometheus; "" = off */
	unsigned max_connections_per_uid;	/* beyond: its oldest dropped */
	unsigned max_buffered_input_mib;	/* partial requests, all
						 * connections; beyond: the
						 * oldest dropped */
	int test_clock;				/* TEST ONLY: AdvanceTestClock
						 * may move the clock */
	/* The audit log (kmsd/audit/audit.h). */
	int audit;				/* on (the default) */
	char audit_dir[CONFIG_PATH_MAX];
	int audit_required;			/* refuse requests it cannot log */
	int audit_sync;				/* enum audit_sync */
	int audit_sync_ms;			/* group commit interval */
	uint64_t audit_checkpoint_records;	/* sign after this many */
	int audit_checkpoint_seconds;		/* ... or this long */
	uint64_t audit_rotate_bytes;		/* new file after this size */
	int audit_rotate_seconds;		/* ... or age; 0: never */
};

/* Defaults for state_dir (made absolute); path-valued keys not given in
 * the file derive from it. */
void config_defaults(struct config *c, const char *state_dir);
/* Parse file over the defaults; on error returns KMS_EVALIDATION with
 * "file:line: message" in err. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/* The same over an open stream (the file's text; path names it in err). */
int config_read(struct config *c, FILE *f, const char *path, char *err,
    size_t errlen);
/* Derive unset paths from state_dir; check values and files are usable,
 * and that kmsd may trust them: the state directory, the store, the PIN
 * file, softhsm2.conf and the token directory it names are owned by root
 * or kmsd's user and writable by nobody else (the PIN file not even
 * readable); else KMS_EVALIDATION naming the path and the chmod that
 * fixes it.  config_load checks the config file the same way. */
int config_finish(struct config *c, char *err, size_t errlen);
/* That check for one path (secret: no access for group or others). */
int config_check_trust(const char *what, const char *path, int secret,
    char *err, size_t errlen);
/* Is this principal a configured administrator? */
int config_is_admin(const struct config *c, const char *principal);
struct principal;
/* May this caller create keys (key_creators; "*" = anyone)? */
int config_may_create_keys(const struct config *c, const struct principal *p);

#endif
