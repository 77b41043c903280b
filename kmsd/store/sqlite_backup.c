/*
 * sqlite_backup.c — an online copy of the SQLite store (store.h backup).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/cause.h"
#include "common/err.h"
#include "common/log.h"
#include "kmsd/store/sqlite_int.h"


/*
 * SQLite's online backup API copies every page in one step, inside one
 * read transaction: a snapshot as of its start, while this process's
 * writers keep committing to the WAL.  The copy is then counted.
 */
int
sq_backup(store *sto, const char *path, uint64_t *nkeys)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3 *dst = NULL;
	sqlite3_backup *b = NULL;
	int rc, r = KMS_EINTERNAL, fd;
	int64_t n = 0;

	/* Created 0600 before SQLite opens it (it keeps an existing mode). */
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) < 0) {
		log_error("store: backup: %s: %s", path, strerror(errno));
		return KMS_EINTERNAL;
	}
	close(fd);
	if ((rc = sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE,
	    NULL)) != SQLITE_OK) {
		r = sq_map_err(s, rc, "backup open");
		goto out;
	}
	if ((b = sqlite3_backup_init(dst, "main", s->db, "main")) == NULL) {
		log_error("store: backup: %s", sqlite3_errmsg(dst));
		goto out;
	}
	do {
		rc = sqlite3_backup_step(b, -1);
	} while (rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
	if (rc != SQLITE_DONE) {
		r = sq_map_err(s, rc, "backup");
		goto out;
	}
	if ((rc = sqlite3_backup_finish(b)) != SQLITE_OK) {
		b = NULL;
		r = sq_map_err(s, rc, "backup sq_finish");
		goto out;
	}
	b = NULL;
	if ((rc = sq_exec_int(dst, "SELECT count(*) FROM keys", &n)) !=
	    SQLITE_OK) {
		r = sq_map_err(s, rc, "backup count");
		goto out;
	}
	*nkeys = (uint64_t)n;
	r = 0;
 out:
	if (b != NULL) {
		(void)sqlite3_backup_finish(b);
	}
	if (dst != NULL) {
		(void)sqlite3_close(dst);
	}
	return r;
}
