/*
 * backup.h — online backups of a kmsd state directory, and restoring one.
 *
 * A backup is a directory: the store (a consistent SQLite snapshot taken
 * while clients keep working), the SoftHSM2 token's files copied while no
 * token object can be created or destroyed, the SoftHSM2 and kmsd
 * configuration files, the PIN files only when asked, and manifest.json:
 * every file's size and SHA-256, the key count, the version.  Nothing in
 * it is usable without the token's user PIN.  Restore checks every byte
 * against the manifest before it writes anything.
 *
 * backup_take runs inside a request (an administrator's CreateBackup);
 * backup_restore runs in `kmsd --restore`, with no daemon.
 */
#ifndef KMSD_DAEMON_BACKUP_H
#define KMSD_DAEMON_BACKUP_H

#include <stddef.h>
#include <stdint.h>

struct worker;

#define BACKUP_MANIFEST "manifest.json"
#define BACKUP_FORMAT "kmsd-backup-1"

struct backup_result {
	uint64_t keys;		/* keys in the store snapshot */
	size_t files;		/* files written, manifest included */
	uint64_t bytes;
	int token_included;	/* 0: not a SoftHSM2 token we can copy */
};

/*
 * Write a backup into dir (absolute; created 0700, or an existing empty
 * directory, which must be 0700 when PINs are included).  0, or an error
 * with a sentence in err.
 */
int backup_take(struct worker *w, const char *dir, int include_pins,
    struct backup_result *res, char *err, size_t errlen);

/*
 * Check the backup in dir against its manifest (every file present, of
 * its size and SHA-256, and nothing else), then copy it into state_dir
 * (which must not exist, or be empty), pointing its SoftHSM2 and kmsd
 * configuration at state_dir.  Nothing is written unless the whole
 * backup checks.  0, or an error naming the file in err.
 */
int backup_restore(const char *dir, const char *state_dir, char *err,
    size_t errlen);

#endif
