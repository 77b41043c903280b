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

#define CONFIG_PATH_MAX 1024
#define CONFIG_MAX_ADMINS 32
#define CONFIG_WORKERS_MAX 256

enum key_storage { STORAGE_WRAPPED = 0, STORAGE_RESIDENT };
/* audit_sync: group = each record written (write(2)) before its reply, an
 * fdatasync every audit_sync_ms for all written meanwhile; request = each
 * reply also waits for an fdatasync covering its record (shared by every
 * record written meanwhile). */
enum audit_sync { AUDIT_SYNC_GROUP = 0, AUDIT_SYNC_REQUEST };

struct config {
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
	size_t key_cache_handles;		/* unwrapped versions kept */
	uint64_t max_encryptions;		/* per version, then rotate */
	int hsm_retry_ms;			/* recovery attempt period */
	uint64_t hsm_recycle_objects;		/* re-initialise the module after
						 * this many session objects;
						 * 0: never */
	int batch_hsm_exclusive;		/* a Batch has the HSM to itself */
	int log_level;				/* enum log_level (common/log.h) */
	int log_syslog;				/* syslog/journald, not stderr */
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
/* Derive unset paths from state_dir; check values and files are usable. */
int config_finish(struct config *c, char *err, size_t errlen);
/* Is this principal a configured administrator? */
int config_is_admin(const struct config *c, const char *principal);
struct principal;
/* May this caller create keys (key_creators; "*" = anyone)? */
int config_may_create_keys(const struct config *c, const struct principal *p);

#endif
