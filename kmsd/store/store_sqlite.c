/*
 * store_sqlite.c — the metadata store on SQLite (store.h, docs/design.md §8).
 *
 * This file opens the database, runs the migrations, prepares the hot
 * statements and owns the writer turn, transactions and the WAL; the
 * methods live beside it by role (sqlite_keys.c, sqlite_authz.c,
 * sqlite_lifecycle.c, sqlite_backup.c; helpers in sqlite_stmt.c), behind
 * the private header sqlite_int.h.
 *
 * One handle is one connection, used by one worker thread.  The database is
 * in WAL mode with synchronous=FULL, so every mutation is on disk when the
 * call returns, and readers never block the writer.  Writers of this
 * process (one connection per worker) queue on one mutex, in the order
 * they come, for up to STORE_BUSY_MS; past that the call fails with
 * KMS_EDEPENDENCYTIMEOUT.  (Left to SQLite's write lock, they polled it
 * with sleeps of up to 100 ms, and under load an unlucky CreateKey waited
 * over a second.)  Another process's writers still meet SQLite's busy
 * timeout.  The WAL is checkpointed by the writer that finds it past
 * STORE_WAL_PAGES, after it lets the next writer in.
 * A new database file is created mode 0600 (SQLite gives its -wal and -shm
 * files the database's mode).  secure_delete is on, so a deleted key's
 * wrapped blobs are overwritten in the database file; old WAL frames may
 * hold them until the WAL is reused, which is why deletion must also
 * destroy material in the HSM where it is resident.
 *
 * Schema, by migration (schema_migrations records each one applied; a
 * migration runs in its own transaction, so a crash leaves the database at
 * one numbered version):
 *
 * 1  keys      id BLOB(16) PK, creation_ms, state (enum key_state),
 *              key_usage, key_spec, origin, description, current_version,
 *              deletion_ms (0 unless PendingDeletion), creator,
 *              row_version (bumped by every mutation of the key).
 *    versions  (key_id → keys ON DELETE CASCADE, version) PK, creation_ms,
 *              material (wrapped blob or CKA_ID, ≤ STORE_MATERIAL_MAX),
 *              resident (0/1), enc_reserved (GCM encryptions reserved).
 *    tags      (key_id → keys ON DELETE CASCADE, tag_key) PK, tag_value.
 * 2  aliases   name PK, key_id → keys ON DELETE CASCADE, creation_ms.
 *    policies  key_id PK → keys ON DELETE CASCADE, name ('default'),
 *              document (JSON text), policy_version.
 *    grants    grant_id PK, key_id → keys ON DELETE CASCADE, name,
 *              grantee, retiring (principals), operations (text),
 *              constraints_json, token_hash, creation_ms,
 *              issuing_principal.  Indexed by key_id and token_hash.
 *
 * 3  rotation_schedules  key_id PK → keys ON DELETE CASCADE, period_days,
 *              base_ms, next_ms (indexed): automatic rotation, while on.
 *    rotations (key_id → keys ON DELETE CASCADE, version) PK, kind (enum
 *              rotation_kind), rotation_ms: the rotation history.
 *    leases    name PK, holder, since_ms, expires_ms: work claimed by one
 *              node or request.  keys gets an index on (state,
 *              deletion_ms) for the deletions coming due.
 * 4  imported_material  key_id PK → keys ON DELETE CASCADE, kcv (check
 *              value of what was imported), expires, valid_to_ms,
 *              present.
 * 5  domain_rotation  one row (id 1): state, cursor (key_id, version)
 *              of the last version re-wrapped, done, total, started_ms,
 *              finished_ms, requested_by.
 * 6  imported_material gains enc_reserved: GCM encryptions reserved by
 *              the material's earlier lives, so the count goes on when
 *              the same material comes back.
 *    import_tokens  token_hash PK (SHA-256), key_id, wrapping_key_id (the
 *              HSM private key's CKA_ID), algorithm, expires_ms; kept
 *              after a key's deletion until they expire, so that the
 *              scheduler destroys their HSM keys.
 *
 * Ids are 16-byte BLOBs; SQLite orders BLOBs by memcmp, which is the order
 * list_keys promises.  Unsigned 64-bit values are stored as INTEGER and are
 * refused above INT64_MAX.  Statements are prepared once at open and reset
 * (bindings cleared) after every use.  Errors are logged to stderr with the
 * operation and SQLite's message; bound values (key material) never are.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/cause.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mutex.h"
#include "kmsd/store/sqlite_int.h"

#define STORE_BUSY_MS 5000	/* wait for another writer before failing */
#define STORE_WAL_PAGES 1000	/* checkpoint past this (SQLite's default) */
#define SHRED_CHECKPOINT_TRIES 20	/* 100 ms each: readers finish */

/* Numbered migrations: migrations[i] brings the schema to version i + 1.
 * Append only; never edit one that has shipped. */
static const char *const migrations[] = {
	/* 1: keys, their versions and tags. */
	"CREATE TABLE keys ("
	" id BLOB PRIMARY KEY NOT NULL"
	"  CHECK (typeof(id) = 'blob' AND length(id) = 16),"
	" creation_ms INTEGER NOT NULL,"
	" state INTEGER NOT NULL,"
	" key_usage TEXT NOT NULL,"
	" key_spec TEXT NOT NULL,"
	" origin TEXT NOT NULL,"
	" description TEXT NOT NULL DEFAULT '',"
	" current_version INTEGER NOT NULL,"
	" deletion_ms INTEGER NOT NULL DEFAULT 0,"
	" creator TEXT NOT NULL DEFAULT '',"
	" row_version INTEGER NOT NULL DEFAULT 1"
	");"
	"CREATE TABLE versions ("
	" key_id BLOB NOT NULL REFERENCES keys(id) ON DELETE CASCADE,"
	" version INTEGER NOT NULL CHECK (version >= 1),"
	" creation_ms INTEGER NOT NULL,"
	" material BLOB NOT NULL CHECK (length(material) <= 64),"
	" resident INTEGER NOT NULL CHECK (resident IN (0, 1)),"
	" enc_reserved INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (key_id, version)"
	");"
	"CREATE TABLE tags ("
	" key_id BLOB NOT NULL REFERENCES keys(id) ON DELETE CASCADE,"
	" tag_key TEXT NOT NULL,"
	" tag_value TEXT NOT NULL,"
	" PRIMARY KEY (key_id, tag_key)"
	");",

	/* 2: aliases, key policies and grants (operations come later). */
	"CREATE TABLE aliases ("
	" name TEXT PRIMARY KEY NOT NULL,"
	" key_id BLOB NOT NULL REFERENCES keys(id) ON DELETE CASCADE,"
	" creation_ms INTEGER NOT NULL,"
	" update_ms INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX aliases_key ON aliases(key_id);"
	"CREATE TABLE policies ("
	" key_id BLOB PRIMARY KEY NOT NULL"
	"  REFERENCES keys(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL DEFAULT 'default',"
	" document TEXT NOT NULL,"
	" policy_version INTEGER NOT NULL DEFAULT 1"
	");"
	"CREATE TABLE grants ("
	" grant_id TEXT PRIMARY KEY NOT NULL,"
	" key_id BLOB NOT NULL REFERENCES keys(id) ON DELETE CASCADE,"
	" name TEXT,"
	" grantee TEXT NOT NULL,"
	" retiring TEXT,"
	" operations TEXT NOT NULL,"
	" constraints_json TEXT,"
	" token_hash BLOB,"
	" creation_ms INTEGER NOT NULL,"
	" issuing_principal TEXT NOT NULL"
	");"
	"CREATE INDEX grants_key ON grants(key_id);"
	"CREATE INDEX grants_token ON grants(token_hash);",

	/* 3: the key's life: rotation schedules and history, leases. */
	"CREATE TABLE rotation_schedules ("
	" key_id BLOB PRIMARY KEY NOT NULL"
	"  REFERENCES keys(id) ON DELETE CASCADE,"
	" period_days INTEGER NOT NULL,"
	" base_ms INTEGER NOT NULL,"
	" next_ms INTEGER NOT NULL"
	");"
	"CREATE INDEX rotation_schedules_next ON rotation_schedules(next_ms);"
	"CREATE TABLE rotations ("
	" key_id BLOB NOT NULL REFERENCES keys(id) ON DELETE CASCADE,"
	" version INTEGER NOT NULL,"
	" kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),"
	" rotation_ms INTEGER NOT NULL,"
	" PRIMARY KEY (key_id, version)"
	");"
	"CREATE TABLE leases ("
	" name TEXT PRIMARY KEY NOT NULL,"
	" holder TEXT NOT NULL,"
	" since_ms INTEGER NOT NULL,"
	" expires_ms INTEGER NOT NULL"
	");"
	"CREATE INDEX keys_deletion ON keys(state, deletion_ms);",

	/* 4: imported key material and import tokens. */
	"CREATE TABLE imported_material ("
	" key_id BLOB PRIMARY KEY NOT NULL"
	"  REFERENCES keys(id) ON DELETE CASCADE,"
	" kcv BLOB NOT NULL CHECK (length(kcv) = 16),"
	" expires INTEGER NOT NULL CHECK (expires IN (0, 1)),"
	" valid_to_ms INTEGER NOT NULL,"
	" present INTEGER NOT NULL CHECK (present IN (0, 1))"
	");"
	"CREATE INDEX imported_material_expiry"
	" ON imported_material(present, expires, valid_to_ms);"
	"CREATE TABLE import_tokens ("
	" token_hash BLOB PRIMARY KEY NOT NULL,"
	" key_id BLOB NOT NULL,"
	" wrapping_key_id BLOB NOT NULL,"
	" algorithm TEXT NOT NULL,"
	" expires_ms INTEGER NOT NULL"
	");"
	"CREATE INDEX import_tokens_expiry ON import_tokens(expires_ms);",

	/* 5: the domain-key rotation. */
	"CREATE TABLE domain_rotation ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" state INTEGER NOT NULL CHECK (state IN (1, 2, 3)),"
	" cursor_key BLOB NOT NULL,"
	" cursor_version INTEGER NOT NULL,"
	" done INTEGER NOT NULL,"
	" total INTEGER NOT NULL,"
	" started_ms INTEGER NOT NULL,"
	" finished_ms INTEGER NOT NULL,"
	" requested_by TEXT NOT NULL"
	");",

	/* 6: imported material's GCM reservations across its lives. */
	("ALTER TABLE imported_material ADD COLUMN enc_reserved INTEGER NOT "
	"NULL DEFAULT 0;"),
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static const char *const stmt_sql[ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_KEY_INSERT] = "INSERT INTO keys (id, creation_ms, state, "
	    "key_usage, key_spec, origin, description, current_version, "
	    "deletion_ms, creator, row_version) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_KEY_GET] = "SELECT creation_ms, state, key_usage, key_spec, "
	    "origin, description, current_version, deletion_ms, creator, "
	    "row_version FROM keys WHERE id = ?1",
	[ST_KEY_UPDATE] = "UPDATE keys SET state = ?2, description = ?3, "
	    "current_version = ?4, deletion_ms = ?5, "
	    "row_version = row_version + 1 WHERE id = ?1 "
	    "RETURNING row_version",
	[ST_KEY_BUMP] = "UPDATE keys SET row_version = row_version + 1 "
	    "WHERE id = ?1",
	[ST_KEY_DELETE] = "DELETE FROM keys WHERE id = ?1",
	[ST_KEY_COUNT] = "SELECT count(*) FROM keys",
	[ST_KEY_LIST] = "SELECT id FROM keys ORDER BY id LIMIT ?1",
	[ST_KEY_LIST_AFTER] = "SELECT id FROM keys WHERE id > ?1 "
	    "ORDER BY id LIMIT ?2",
	[ST_VERSION_INSERT] = "INSERT INTO versions (" VERSION_COLS ") "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_VERSION_LIST] = "SELECT " VERSION_COLS " FROM versions "
	    "WHERE key_id = ?1 ORDER BY version",
	[ST_VERSION_ALL] = "SELECT " VERSION_COLS " FROM versions "
	    "ORDER BY key_id, version LIMIT ?1",
	[ST_VERSION_ALL_AFTER] = "SELECT " VERSION_COLS " FROM versions "
	    "WHERE (key_id, version) > (?1, ?2) "
	    "ORDER BY key_id, version LIMIT ?3",
	[ST_VERSION_RESERVE] = "UPDATE versions "
	    "SET enc_reserved = MAX(enc_reserved, ?3) "
	    "WHERE key_id = ?1 AND version = ?2",
	[ST_TAG_INSERT] = "INSERT INTO tags (key_id, tag_key, tag_value) "
	    "VALUES (?1, ?2, ?3)",
	[ST_TAG_LIST] = "SELECT tag_key, tag_value FROM tags "
	    "WHERE key_id = ?1 ORDER BY tag_key",
	[ST_TAG_UPSERT] = "INSERT INTO tags (key_id, tag_key, tag_value) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT (key_id, tag_key) "
	    "DO UPDATE SET tag_value = excluded.tag_value",
	[ST_TAG_DELETE] = "DELETE FROM tags WHERE key_id = ?1 AND tag_key = ?2",
	[ST_ALIAS_INSERT] = "INSERT INTO aliases (" ALIAS_COLS ") "
	    "VALUES (?1, ?2, ?3, ?4)",
	[ST_ALIAS_UPDATE] = "UPDATE aliases SET key_id = ?2, update_ms = ?3 "
	    "WHERE name = ?1",
	[ST_ALIAS_DELETE] = "DELETE FROM aliases WHERE name = ?1",
	[ST_ALIAS_GET] = "SELECT " ALIAS_COLS " FROM aliases WHERE name = ?1",
	[ST_ALIAS_LIST] = "SELECT " ALIAS_COLS " FROM aliases "
	    "WHERE name > ?1 ORDER BY name LIMIT ?2",
	[ST_ALIAS_LIST_KEY] = "SELECT " ALIAS_COLS " FROM aliases "
	    "WHERE key_id = ?3 AND name > ?1 ORDER BY name LIMIT ?2",
	[ST_ALIAS_COUNT] = "SELECT count(*) FROM aliases WHERE key_id = ?1",
	[ST_POLICY_PUT] = "INSERT INTO policies (key_id, name, document, "
	    "policy_version) VALUES (?1, 'default', ?2, 1) "
	    "ON CONFLICT (key_id) DO UPDATE SET document = excluded.document, "
	    "policy_version = policy_version + 1 RETURNING policy_version",
	[ST_POLICY_GET] = "SELECT document, policy_version FROM policies "
	    "WHERE key_id = ?1",
	[ST_GRANT_INSERT] = "INSERT INTO grants (grant_id, key_id, name, "
	    "grantee, retiring, operations, constraints_json, token_hash, "
	    "creation_ms, issuing_principal) VALUES (?1, ?2, nullif(?3, ''), "
	    "?4, nullif(?5, ''), ?6, nullif(?7, ''), ?8, ?9, ?10)",
	[ST_GRANT_DELETE] = "DELETE FROM grants WHERE key_id = ?1 AND "
	    "grant_id = ?2",
	[ST_GRANT_LIST] = "SELECT " GRANT_COLS " FROM grants WHERE key_id = ?1 "
	    "ORDER BY creation_ms, grant_id",
	[ST_GRANT_BY_TOKEN] = "SELECT " GRANT_COLS " FROM grants "
	    "WHERE token_hash = ?1",
	[ST_GRANT_RETIRABLE] = "SELECT " GRANT_COLS " FROM grants "
	    "WHERE retiring = ?1 AND grant_id > ?2 ORDER BY grant_id LIMIT ?3",
};

/* This process's writers, one at a time (see the top of the file).
 * Process-wide, not in a store object: each worker has its own handle
 * (connection) and SQLite allows one writer per database, which is what
 * this turn queues for.  A process with handles on two databases (tests)
 * only serialises their writes.  A handle holding it has s->writing set;
 * functions named *_locked require it. */
static struct kms_mutex writer_mu = KMS_MUTEX_INITIALIZER;

/* A shred's WAL truncation that has not succeeded yet (a reader was in
 * the way): the next writer of this process tries again. */
static atomic_int truncate_due;
static int truncate_wal_locked(struct sqlite_store *s, int busy_ms);

/* SQLite's WAL hook, called after each commit: note the WAL's size (and
 * take over from auto-checkpointing, which would run inside the commit,
 * with writer_mu held). */
static int
wal_note(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct sqlite_store *s = arg;

	(void)db;
	(void)name;
	s->wal_pages = pages;
	return SQLITE_OK;
}

int
sq_writer_lock(struct sqlite_store *s, const char *op)
{
	struct timespec ts;

	KMS_ASSERT(!s->writing);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += STORE_BUSY_MS / 1000;
	ts.tv_nsec += (long)(STORE_BUSY_MS % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (kms_mutex_timedlock(&writer_mu, &ts) != 0) {
		log_warn("store: %s: no turn to write in %d ms",
		    op, STORE_BUSY_MS);
		cause_note("the key store is busy: no turn to write in %d ms",
		    STORE_BUSY_MS);
		return KMS_EDEPENDENCYTIMEOUT;
	}
	s->writing = 1;
	return 0;
}

/* Let the next writer in; then checkpoint if the WAL has grown.  A
 * passive checkpoint waits for nobody (and another connection's running
 * checkpoint just makes it return). */
void
sq_writer_unlock(struct sqlite_store *s)
{
	if (!s->writing) {
		return;
	}
	if (atomic_load(&truncate_due)) {
		/* A shred's WAL still to cut: quick, or the next one. */
		(void)truncate_wal_locked(s, 0);
	}
	s->writing = 0;
	kms_mutex_unlock(&writer_mu);
	if (s->wal_pages >= STORE_WAL_PAGES) {
		s->wal_pages = 0;
		(void)sqlite3_wal_checkpoint_v2(s->db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	}
}

/* One write statement in its own (implicit) transaction; *changes (if
 * wanted) gets the rows it changed. */
int
sq_step_write(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    int *changes)
{
	int r;

	if ((r = sq_writer_lock(s, op)) != 0) {
		sq_finish(st);
		return r;
	}
	if ((r = sq_step_done(s, st, op)) == 0 && changes != NULL) {
		*changes = sqlite3_changes(s->db);
	}
	sq_writer_unlock(s);
	return r;
}

int
sq_tx_begin(struct sqlite_store *s, const char *op)
{
	int r;

	if ((r = sq_writer_lock(s, op)) != 0) {
		return r;
	}
	if ((r = sq_step_done(s, s->st[ST_BEGIN], op)) != 0) {
		sq_writer_unlock(s);
	}
	return r;
}

/* On failure the caller rolls back, which lets the next writer in. */
int
sq_tx_commit(struct sqlite_store *s, const char *op)
{
	int r;

	if ((r = sq_step_done(s, s->st[ST_COMMIT], op)) == 0) {
		sq_writer_unlock(s);
	}
	return r;
}

/* Roll back if a transaction is still open (some errors end it). */
void
sq_tx_rollback(struct sqlite_store *s, const char *op)
{
	if (!sqlite3_get_autocommit(s->db)) {
		(void)sq_step_done(s, s->st[ST_ROLLBACK], op);
	}
	sq_writer_unlock(s);
}

int
sq_tx_end(struct sqlite_store *s, const char *op, int r)
{
	if (r == 0) {
		r = sq_tx_commit(s, op);
	}
	if (r != 0) {
		sq_tx_rollback(s, op);
	}
	return r;
}

/* Checkpoint everything and cut the WAL to nothing, waiting at most
 * busy_ms for readers; 0 or an SQLite code. */
static int
truncate_wal_locked(struct sqlite_store *s, int busy_ms)
{
	int rc;

	kms_mutex_assert_held(&writer_mu);
	sqlite3_busy_timeout(s->db, busy_ms);
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL,
	    SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	if (rc == SQLITE_OK) {
		s->wal_pages = 0;
		atomic_store(&truncate_due, 0);
	}
	return rc;
}

void
sq_shred_wal_locked(struct sqlite_store *s)
{
	int rc = SQLITE_OK, tries;

	kms_mutex_assert_held(&writer_mu);
	KMS_ASSERT(s->writing);
	/* The WAL still holds the old pages (and the frames that first
	 * wrote the material).  Other connections' read transactions are
	 * short; wait them out, a little. */
	atomic_store(&truncate_due, 1);
	for (tries = 0; tries < SHRED_CHECKPOINT_TRIES; tries++) {
		if ((rc = truncate_wal_locked(s, 100)) == SQLITE_OK ||
		    ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) !=
		    SQLITE_LOCKED)) {
			break;
		}
	}
	if (rc != SQLITE_OK) {
		log_warn("store: shred: the WAL could not be truncated yet "
		    "(%s); the next write tries again", sqlite3_errmsg(s->db));
	}
}

static void
free_store(struct sqlite_store *s)
{
	int i;

	if (s == NULL) {
		return;
	}
	for (i = 0; i < ST_MAX; i++) {
		sqlite3_finalize(s->st[i]);	/* NULL is a no-op */
	}
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK) {
		log_warn("store: close: %s",
		    sqlite3_errmsg(s->db));
	}
	free(s);
}

void
sq_close(store *sto)
{
	if (sto != NULL) {
		free_store(to_sqlite(sto));
	}
}

const struct store_ops sq_ops = {
	.close = sq_close,
	.create_key = sq_create_key,
	.get_key = sq_get_key,
	.update_key = sq_update_key,
	.list_keys = sq_list_keys,
	.add_version = sq_add_version,
	.get_versions = sq_get_versions,
	.reserve_encryptions = sq_reserve_encryptions,
	.get_tags = sq_get_tags,
	.for_each_version = sq_for_each_version,
	.delete_key = sq_delete_key,
	.count_keys = sq_count_keys,
	.put_tags = sq_put_tags,
	.delete_tags = sq_delete_tags,
	.create_alias = sq_create_alias,
	.update_alias = sq_update_alias,
	.delete_alias = sq_delete_alias,
	.get_alias = sq_get_alias,
	.list_aliases = sq_list_aliases,
	.count_aliases = sq_count_aliases,
	.put_policy = sq_put_policy,
	.get_policy = sq_get_policy,
	.create_grant = sq_create_grant,
	.delete_grant = sq_delete_grant,
	.get_grants = sq_get_grants,
	.find_grant_by_token = sq_find_grant_by_token,
	.list_retirable = sq_list_retirable,
	.backup = sq_backup,
	.rotate_key = sq_rotate_key,
	.set_rotation_schedule = sq_set_rotation_schedule,
	.get_rotation_schedule = sq_get_rotation_schedule,
	.list_rotations = sq_list_rotations,
	.count_rotations = sq_count_rotations,
	.due_rotations = sq_due_rotations,
	.due_deletions = sq_due_deletions,
	.claim_lease = sq_claim_lease,
	.release_lease = sq_release_lease,
	.get_lease = sq_get_lease,
	.shred_key = sq_shred_key,
	.put_import_token = sq_put_import_token,
	.get_import_token = sq_get_import_token,
	.delete_import_token = sq_delete_import_token,
	.due_import_tokens = sq_due_import_tokens,
	.import_material = sq_import_material,
	.set_import_expiry = sq_set_import_expiry,
	.get_import = sq_get_import,
	.delete_material = sq_delete_material,
	.due_expirations = sq_due_expirations,
	.get_domain_rotation = sq_get_domain_rotation,
	.put_domain_rotation = sq_put_domain_rotation,
	.next_wrapped_versions = sq_next_wrapped_versions,
	.count_wrapped_versions = sq_count_wrapped_versions,
	.rewrap_versions = sq_rewrap_versions,
};

static void __attribute__((format(printf, 3, 4)))
set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static int64_t
now_ms(void)
{
	return clock_wall_ms();
}

/* Run one statement that returns at most one integer; *out gets it (0 for
 * NULL or no row) when out is not NULL. */
int
sq_exec_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL)) != SQLITE_OK) {
		return rc;
	}
	if (out != NULL) {
		*out = 0;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out != NULL) {
			*out = sqlite3_column_int64(st, 0);
		}
	}
	if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	/* Keep the step's error and message: finalize would repeat it. */
	(void)sqlite3_finalize(st);
	return rc;
}

/*
 * Bring the schema to NMIGRATIONS, one transaction per migration.  Several
 * workers open at once: BEGIN IMMEDIATE serialises them, and each re-reads
 * the applied version inside its transaction, so every migration runs
 * exactly once.
 */
static int
migrate(sqlite3 *db, const char *path, char *errbuf, size_t errlen)
{
	char sql[128];
	int64_t have;
	int i, rc;

	for (i = 0; i < NMIGRATIONS; i++) {
		if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
		    NULL)) != SQLITE_OK ||
		    (rc = sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS "
		    "schema_migrations (version INTEGER PRIMARY KEY, "
		    "applied_ms INTEGER NOT NULL)", NULL, NULL, NULL)) !=
		    SQLITE_OK ||
		    (rc = sq_exec_int(db, "SELECT max(version) FROM "
		    "schema_migrations", &have)) != SQLITE_OK) {
			goto fail;
		}
		if (have > NMIGRATIONS) {
			set_err(errbuf, errlen, "store %s: schema version "
			    "%lld is newer than this kmsd knows (%d)", path,
			    (long long)have, NMIGRATIONS);
			(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return KMS_EINTERNAL;
		}
		if (have < i) {
			set_err(errbuf, errlen, "store %s: schema_migrations "
			    "is missing version %d", path, i);
			(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return KMS_EINTERNAL;
		}
		if (have == i) {
			snprintf(sql, sizeof(sql), "INSERT INTO "
			    "schema_migrations (version, applied_ms) "
			    "VALUES (%d, %lld)", i + 1, (long long)now_ms());
			if ((rc = sqlite3_exec(db, migrations[i], NULL, NULL,
			    NULL)) != SQLITE_OK ||
			    (rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) !=
			    SQLITE_OK) {
				goto fail;
			}
		}
		if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) !=
		    SQLITE_OK) {
			goto fail;
		}
	}
	return 0;
 fail:
	set_err(errbuf, errlen, "store %s: migration %d: %s", path, i + 1,
	    sqlite3_errmsg(db));
	if (!sqlite3_get_autocommit(db)) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return (rc & 0xff) == SQLITE_BUSY ? KMS_EDEPENDENCYTIMEOUT :
	    KMS_EINTERNAL;
}

/* Per-connection settings; WAL and foreign keys are verified, since an
 * SQLite built without them would otherwise ignore the pragma. */
static int
configure(sqlite3 *db, const char *path, char *errbuf, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const char *what;
	int64_t fk = 0;
	int rc, tries, wal = 0;

	what = "journal_mode=WAL";
	if ((rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st,
	    NULL)) != SQLITE_OK) {
		goto fail;
	}
	/* Switching a new file to WAL needs an exclusive lock, and SQLite
	 * returns BUSY at once rather than calling the busy handler when
	 * several workers open together: retry for STORE_BUSY_MS. */
	for (tries = 0; (rc = sqlite3_step(st)) == SQLITE_BUSY &&
	    tries < STORE_BUSY_MS / 10; tries++) {
		sqlite3_reset(st);
		usleep(10000);
	}
	if (rc == SQLITE_ROW) {
		const unsigned char *m = sqlite3_column_text(st, 0);
		wal = m != NULL && strcmp((const char *)m, "wal") == 0;
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		goto fail;	/* message read before finalize */
	}
	sqlite3_finalize(st);
	st = NULL;
	if (!wal) {
		set_err(errbuf, errlen, "store %s: cannot enable WAL mode",
		    path);
		return KMS_EINTERNAL;
	}
	what = "pragmas";
	if ((rc = sqlite3_exec(db, "PRAGMA synchronous=FULL; "
	    "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON", NULL, NULL,
	    NULL)) != SQLITE_OK ||
	    (rc = sq_exec_int(db, "PRAGMA foreign_keys", &fk)) != SQLITE_OK) {
		goto fail;
	}
	if (fk != 1) {
		set_err(errbuf, errlen, "store %s: this SQLite has no foreign "
		    "key support", path);
		return KMS_EINTERNAL;
	}
	return 0;
 fail:
	set_err(errbuf, errlen, "store %s: %s: %s", path, what,
	    sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return (rc & 0xff) == SQLITE_BUSY ? KMS_EDEPENDENCYTIMEOUT :
	    KMS_EINTERNAL;
}

int
store_sqlite_open(const char *path, store **out, char *errbuf,
    size_t errlen)
{
	struct sqlite_store *s = NULL;
	int fd, i, rc, r = KMS_EINTERNAL;

	if (path == NULL || *path == '\0' || out == NULL) {
		set_err(errbuf, errlen, "store: no database path");
		return KMS_EINVAL;
	}
	/* Create the file ourselves so that it is private from the start;
	 * an existing file keeps the mode its operator gave it.  Only a new
	 * file is opened (O_EXCL): closing a descriptor of a file drops
	 * every POSIX lock this process holds on it, and the other
	 * connections' locks are what tell any other process's closing
	 * connection that the WAL is still in use (without them it deletes
	 * the WAL and shared memory under kmsd's feet). */
	if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) >= 0) {
		close(fd);
	} else if (errno != EEXIST) {
		set_err(errbuf, errlen, "store %s: cannot open: %s", path,
		    strerror(errno));
		return KMS_EINTERNAL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		set_err(errbuf, errlen, "store %s: out of memory", path);
		return KMS_ENOMEM;
	}
	store_init(&s->base, &sq_ops);
	/* NOMUTEX: a connection belongs to one thread (store.h). */
	if ((rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
	    NULL)) != SQLITE_OK) {
		set_err(errbuf, errlen, "store %s: cannot open: %s", path,
		    s->db != NULL ? sqlite3_errmsg(s->db) :
		    sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	sqlite3_wal_hook(s->db, wal_note, s);
	if ((r = configure(s->db, path, errbuf, errlen)) != 0 ||
	    (r = migrate(s->db, path, errbuf, errlen)) != 0) {
		goto fail;
	}
	for (i = 0; i < ST_MAX; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
			set_err(errbuf, errlen, "store %s: prepare %d: %s",
			    path, i, sqlite3_errmsg(s->db));
			r = KMS_EINTERNAL;
			goto fail;
		}
	}
	*out = &s->base;
	return 0;
 fail:
	free_store(s);
	return r;
}
