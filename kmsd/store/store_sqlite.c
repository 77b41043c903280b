/*
 * store_sqlite.c — the metadata store on SQLite (store.h, docs/design.md §8).
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
#include "common/err.h"
#include "common/log.h"
#include "kmsd/store/store.h"

#define STORE_BUSY_MS 5000	/* wait for another writer before failing */
#define STORE_WAL_PAGES 1000	/* checkpoint past this (SQLite's default) */
#define STORE_PAGE 128		/* for_each_version rows read per query */
#define STORE_LIST_MAX (1u << 20)	/* list_keys page cap (sanity) */

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
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_KEY_INSERT,
	ST_KEY_GET,
	ST_KEY_UPDATE,
	ST_KEY_BUMP,
	ST_KEY_DELETE,
	ST_KEY_COUNT,
	ST_KEY_LIST,
	ST_KEY_LIST_AFTER,
	ST_VERSION_INSERT,
	ST_VERSION_LIST,
	ST_VERSION_ALL,
	ST_VERSION_ALL_AFTER,
	ST_VERSION_RESERVE,
	ST_TAG_INSERT,
	ST_TAG_LIST,
	ST_TAG_UPSERT,
	ST_TAG_DELETE,
	ST_ALIAS_INSERT,
	ST_ALIAS_UPDATE,
	ST_ALIAS_DELETE,
	ST_ALIAS_GET,
	ST_ALIAS_LIST,
	ST_ALIAS_LIST_KEY,
	ST_ALIAS_COUNT,
	ST_POLICY_PUT,
	ST_POLICY_GET,
	ST_GRANT_INSERT,
	ST_GRANT_DELETE,
	ST_GRANT_LIST,
	ST_GRANT_BY_TOKEN,
	ST_GRANT_RETIRABLE,
	ST_MAX
};

#define GRANT_COLS \
	"grant_id, key_id, coalesce(name, ''), grantee, coalesce(retiring, ''), " \
	"operations, coalesce(constraints_json, ''), token_hash, creation_ms, " \
	"issuing_principal"
#define ALIAS_COLS "name, key_id, creation_ms, update_ms"

#define VERSION_COLS \
	"key_id, version, creation_ms, material, resident, enc_reserved"

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

struct sqlite_store {
	struct store base;		/* first: store * casts to this */
	sqlite3 *db;
	sqlite3_stmt *st[ST_MAX];
	int writing;			/* holds writer_mu */
	int wal_pages;			/* the WAL's size after our last commit */
};

/* This process's writers, one at a time (see the top of the file). */
static pthread_mutex_t writer_mu = PTHREAD_MUTEX_INITIALIZER;

static const struct store_ops sqlite_ops;

/* A shred's WAL truncation that has not succeeded yet (a reader was in
 * the way): the next writer of this process tries again. */
static atomic_int truncate_due;
static int truncate_wal(struct sqlite_store *s, int busy_ms);

static struct sqlite_store *
to_sqlite(store *st)
{
	KMS_ASSERT(st != NULL && st->ops == &sqlite_ops);
	return (struct sqlite_store *)st;
}

/*
 * Map an SQLite result to the error space.  Expected outcomes (duplicate,
 * missing parent) are not logged; everything else is, with the operation.
 */
static int
map_err(struct sqlite_store *s, int rc, const char *op)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
		return KMS_EALREADYEXISTS;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return KMS_ENOTFOUND;
	default:
		break;
	}
	log_error("store: %s: %s (%d)", op,
	    sqlite3_errmsg(s->db), rc);
	/* For the client, SQLite's generic text ("database or disk is
	 * full"), never errmsg (it may quote the schema). */
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
		cause_note("the key store is busy: %s", sqlite3_errstr(rc));
		return KMS_EDEPENDENCYTIMEOUT;
	}
	cause_note("the key store is unavailable: %s", sqlite3_errstr(rc));
	return KMS_EINTERNAL;
}

/* Reset a statement for its next use and drop pointers to caller memory. */
static void
finish(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

/* Step a statement that returns no rows. */
static int
step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *op)
{
	int rc, r = 0;

	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = map_err(s, rc, op);
	}
	finish(st);
	return r;
}

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

static int
writer_lock(struct sqlite_store *s, const char *op)
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
	if (pthread_mutex_timedlock(&writer_mu, &ts) != 0) {
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
static void
writer_unlock(struct sqlite_store *s)
{
	if (!s->writing) {
		return;
	}
	if (atomic_load(&truncate_due)) {
		/* A shred's WAL still to cut: quick, or the next one. */
		(void)truncate_wal(s, 0);
	}
	s->writing = 0;
	pthread_mutex_unlock(&writer_mu);
	if (s->wal_pages >= STORE_WAL_PAGES) {
		s->wal_pages = 0;
		(void)sqlite3_wal_checkpoint_v2(s->db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	}
}

/* One write statement in its own (implicit) transaction; *changes (if
 * wanted) gets the rows it changed. */
static int
step_write(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    int *changes)
{
	int r;

	if ((r = writer_lock(s, op)) != 0) {
		finish(st);
		return r;
	}
	if ((r = step_done(s, st, op)) == 0 && changes != NULL) {
		*changes = sqlite3_changes(s->db);
	}
	writer_unlock(s);
	return r;
}

static int
tx_begin(struct sqlite_store *s, const char *op)
{
	int r;

	if ((r = writer_lock(s, op)) != 0) {
		return r;
	}
	if ((r = step_done(s, s->st[ST_BEGIN], op)) != 0) {
		writer_unlock(s);
	}
	return r;
}

/* On failure the caller rolls back, which lets the next writer in. */
static int
tx_commit(struct sqlite_store *s, const char *op)
{
	int r;

	if ((r = step_done(s, s->st[ST_COMMIT], op)) == 0) {
		writer_unlock(s);
	}
	return r;
}

/* Roll back if a transaction is still open (some errors end it). */
static void
tx_rollback(struct sqlite_store *s, const char *op)
{
	if (!sqlite3_get_autocommit(s->db)) {
		(void)step_done(s, s->st[ST_ROLLBACK], op);
	}
	writer_unlock(s);
}

static int
bind_id(sqlite3_stmt *st, int idx, const uint8_t id[16])
{
	return sqlite3_bind_blob(st, idx, id, 16, SQLITE_STATIC);
}

static int
bind_text(sqlite3_stmt *st, int idx, const char *p)
{
	return sqlite3_bind_text(st, idx, p, -1, SQLITE_STATIC);
}

/* A fixed-size string field is valid when it is NUL-terminated in place. */
static int
field_ok(const char *p, size_t len)
{
	return strnlen(p, len) < len;
}

static int
check_key(const struct store_key *k)
{
	if (k->state < KEY_ENABLED || k->state > KEY_UNAVAILABLE ||
	    !field_ok(k->key_usage, sizeof(k->key_usage)) ||
	    !field_ok(k->key_spec, sizeof(k->key_spec)) ||
	    !field_ok(k->origin, sizeof(k->origin)) ||
	    !field_ok(k->description, sizeof(k->description)) ||
	    !field_ok(k->creator, sizeof(k->creator)) ||
	    k->row_version > INT64_MAX) {
		return KMS_EINVAL;
	}
	return 0;
}

static int
check_version(const struct store_version *v)
{
	if (v->version < 1 || v->material_len > STORE_MATERIAL_MAX ||
	    (v->resident != 0 && v->resident != 1) ||
	    v->enc_reserved > INT64_MAX) {
		return KMS_EINVAL;
	}
	return 0;
}

static int
check_tag(const struct store_tag *t)
{
	if (!field_ok(t->key, sizeof(t->key)) || t->key[0] == '\0' ||
	    !field_ok(t->value, sizeof(t->value))) {
		return KMS_EINVAL;
	}
	return 0;
}

/* Copy a TEXT column into a fixed field; too long means a corrupt row. */
static int
col_text(sqlite3_stmt *st, int col, char *dst, size_t len)
{
	const unsigned char *p = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (p == NULL) {
		n = 0;
	}
	if (n < 0 || (size_t)n >= len) {
		return KMS_EINTERNAL;
	}
	if (n > 0) {
		memcpy(dst, p, (size_t)n);
	}
	dst[n] = '\0';
	return 0;
}

/* An INTEGER column that must lie in [0, max]. */
static int
col_uint(sqlite3_stmt *st, int col, uint64_t max, uint64_t *out)
{
	sqlite3_int64 v = sqlite3_column_int64(st, col);

	if (sqlite3_column_type(st, col) != SQLITE_INTEGER || v < 0 ||
	    (uint64_t)v > max) {
		return KMS_EINTERNAL;
	}
	*out = (uint64_t)v;
	return 0;
}

static int
col_id(sqlite3_stmt *st, int col, uint8_t out[16])
{
	const void *p = sqlite3_column_blob(st, col);

	if (sqlite3_column_type(st, col) != SQLITE_BLOB || p == NULL ||
	    sqlite3_column_bytes(st, col) != 16) {
		return KMS_EINTERNAL;
	}
	memcpy(out, p, 16);
	return 0;
}

/* One row of VERSION_COLS into v. */
static int
read_version(sqlite3_stmt *st, struct store_version *v)
{
	const void *m;
	uint64_t u;
	int n;

	memset(v, 0, sizeof(*v));
	if (col_id(st, 0, v->key_id) != 0 ||
	    col_uint(st, 1, UINT32_MAX, &u) != 0 || u < 1) {
		return KMS_EINTERNAL;
	}
	v->version = (uint32_t)u;
	v->creation_ms = sqlite3_column_int64(st, 2);
	m = sqlite3_column_blob(st, 3);
	n = sqlite3_column_bytes(st, 3);
	if (n < 0 || n > STORE_MATERIAL_MAX || (n > 0 && m == NULL)) {
		return KMS_EINTERNAL;
	}
	if (n > 0) {
		memcpy(v->material, m, (size_t)n);
	}
	v->material_len = (size_t)n;
	if (col_uint(st, 4, 1, &u) != 0) {
		return KMS_EINTERNAL;
	}
	v->resident = (int)u;
	if (col_uint(st, 5, INT64_MAX, &v->enc_reserved) != 0) {
		return KMS_EINTERNAL;
	}
	return 0;
}

/* Log a row that does not fit its structure (a corrupt database). */
static int
corrupt(const char *op)
{
	log_error("store: %s: malformed row in the database",
	    op);
	cause_note("the key store holds a malformed row");
	return KMS_EINTERNAL;
}

static int
insert_version(struct sqlite_store *s, const struct store_version *v,
    const char *op)
{
	sqlite3_stmt *st = s->st[ST_VERSION_INSERT];
	int rc;

	if ((rc = bind_id(st, 1, v->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, v->version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, v->creation_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 4, v->material, (int)v->material_len,
	    SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 5, v->resident)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, (sqlite3_int64)v->enc_reserved)) !=
	    SQLITE_OK) {
		finish(st);
		return map_err(s, rc, op);
	}
	return step_done(s, st, op);
}

static int
sq_create_key(store *sto, const struct store_key *k,
    const struct store_version *v, const struct store_tag *tags,
    size_t ntags)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "create_key";
	sqlite3_stmt *st = s->st[ST_KEY_INSERT];
	size_t i;
	int rc, r;

	if (k == NULL || (ntags > 0 && tags == NULL) || check_key(k) != 0) {
		return KMS_EINVAL;
	}
	if (v != NULL && (check_version(v) != 0 ||
	    memcmp(v->key_id, k->id, 16) != 0)) {
		return KMS_EINVAL;
	}
	for (i = 0; i < ntags; i++) {
		if (check_tag(&tags[i]) != 0) {
			return KMS_EINVAL;
		}
	}
	if ((r = tx_begin(s, op)) != 0) {
		return r;
	}
	if ((rc = bind_id(st, 1, k->id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, k->creation_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 3, k->state)) != SQLITE_OK ||
	    (rc = bind_text(st, 4, k->key_usage)) != SQLITE_OK ||
	    (rc = bind_text(st, 5, k->key_spec)) != SQLITE_OK ||
	    (rc = bind_text(st, 6, k->origin)) != SQLITE_OK ||
	    (rc = bind_text(st, 7, k->description)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 8, k->current_version)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 9, k->deletion_ms)) != SQLITE_OK ||
	    (rc = bind_text(st, 10, k->creator)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 11, (sqlite3_int64)k->row_version)) !=
	    SQLITE_OK) {
		finish(st);
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, st, op)) != 0) {
		goto out;
	}
	if (v != NULL && (r = insert_version(s, v, op)) != 0) {
		goto out;
	}
	st = s->st[ST_TAG_INSERT];
	for (i = 0; i < ntags; i++) {
		if ((rc = bind_id(st, 1, k->id)) != SQLITE_OK ||
		    (rc = bind_text(st, 2, tags[i].key)) != SQLITE_OK ||
		    (rc = bind_text(st, 3, tags[i].value)) != SQLITE_OK) {
			finish(st);
			r = map_err(s, rc, op);
			goto out;
		}
		if ((r = step_done(s, st, op)) != 0) {
			/* Two tags with one key: the caller's mistake. */
			if (r == KMS_EALREADYEXISTS) {
				r = KMS_EINVAL;
			}
			goto out;
		}
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
	return r;
}

static int
sq_get_key(store *sto, const uint8_t id[16], struct store_key *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "get_key";
	sqlite3_stmt *st = s->st[ST_KEY_GET];
	uint64_t u;
	int rc, r = KMS_EINTERNAL;

	if (id == NULL || out == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
		goto out;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out->id, id, 16);
	out->creation_ms = sqlite3_column_int64(st, 0);
	if (col_uint(st, 1, KEY_UNAVAILABLE, &u) != 0) {
		r = corrupt(op);
		goto out;
	}
	out->state = (int)u;
	if (col_text(st, 2, out->key_usage, sizeof(out->key_usage)) != 0 ||
	    col_text(st, 3, out->key_spec, sizeof(out->key_spec)) != 0 ||
	    col_text(st, 4, out->origin, sizeof(out->origin)) != 0 ||
	    col_text(st, 5, out->description, sizeof(out->description)) != 0 ||
	    col_uint(st, 6, UINT32_MAX, &u) != 0) {
		r = corrupt(op);
		goto out;
	}
	out->current_version = (uint32_t)u;
	out->deletion_ms = sqlite3_column_int64(st, 7);
	if (col_text(st, 8, out->creator, sizeof(out->creator)) != 0 ||
	    col_uint(st, 9, INT64_MAX, &out->row_version) != 0) {
		r = corrupt(op);
		goto out;
	}
	r = 0;
 out:
	finish(st);
	if (r != 0 && out != NULL) {
		/* Never leave a half-filled row behind. */
		memset(out, 0, sizeof(*out));
	}
	return r;
}

static int
sq_update_key(store *sto, const struct store_key *k, uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "update_key";
	sqlite3_stmt *st = s->st[ST_KEY_UPDATE];
	uint64_t rv = 0;
	int rc, r = KMS_EINTERNAL;

	if (k == NULL || check_key(k) != 0) {
		return KMS_EINVAL;
	}
	if ((rc = bind_id(st, 1, k->id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 2, k->state)) != SQLITE_OK ||
	    (rc = bind_text(st, 3, k->description)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, k->current_version)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 5, k->deletion_ms)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = writer_lock(s, op)) != 0) {
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
		goto out;
	}
	if (col_uint(st, 0, INT64_MAX, &rv) != 0) {
		r = corrupt(op);
		goto out;
	}
	/* The statement (and its implicit transaction) ends at DONE: only
	 * then is the change committed, so only then is it reported. */
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	if (row_version != NULL) {
		*row_version = rv;
	}
	r = 0;
 out:
	finish(st);
	writer_unlock(s);
	return r;
}

static int
sq_list_keys(store *sto, const uint8_t *after, size_t max,
    uint8_t (*ids)[16], size_t *n, int *more)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "list_keys";
	sqlite3_stmt *st;
	size_t got = 0;
	int rc, r = KMS_EINTERNAL, extra = 0, lim;

	if (n == NULL || more == NULL || (max > 0 && ids == NULL) ||
	    max > STORE_LIST_MAX) {
		return KMS_EINVAL;
	}
	if (after == NULL) {
		st = s->st[ST_KEY_LIST];
		lim = 1;
		rc = SQLITE_OK;
	} else {
		st = s->st[ST_KEY_LIST_AFTER];
		lim = 2;
		rc = bind_id(st, 1, after);
	}
	/* One row past the page tells whether more follow. */
	if (rc != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, lim, (sqlite3_int64)max + 1)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (got == max) {
			extra = 1;
			continue;
		}
		if (col_id(st, 0, ids[got]) != 0) {
			r = corrupt(op);
			goto out;
		}
		got++;
	}
	if (rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*n = got;
	*more = extra;
	r = 0;
 out:
	finish(st);
	return r;
}

static int
sq_add_version(store *sto, const struct store_version *v)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "add_version";
	sqlite3_stmt *st = s->st[ST_KEY_BUMP];
	int rc, r;

	if (v == NULL || check_version(v) != 0) {
		return KMS_EINVAL;
	}
	/* A new version is a mutation of its key: bump row_version with it. */
	if ((r = tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = insert_version(s, v, op)) != 0) {
		goto out;
	}
	if ((rc = bind_id(st, 1, v->key_id)) != SQLITE_OK) {
		finish(st);
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, st, op)) != 0) {
		goto out;
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
	return r;
}

/* Grow *arr (of *cap elements of size sz) to hold one more; 0 or ENOMEM. */
static int
grow(void **arr, size_t *cap, size_t used, size_t sz)
{
	size_t ncap;
	void *p;

	if (used < *cap) {
		return 0;
	}
	ncap = *cap == 0 ? 4 : *cap * 2;
	if (ncap > SIZE_MAX / sz || (p = realloc(*arr, ncap * sz)) == NULL) {
		return KMS_ENOMEM;
	}
	*arr = p;
	*cap = ncap;
	return 0;
}

static int
sq_get_versions(store *sto, const uint8_t id[16],
    struct store_version **out, size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "get_versions";
	sqlite3_stmt *st = s->st[ST_VERSION_LIST];
	struct store_version *arr = NULL;
	size_t cap = 0, used = 0;
	int rc, r = KMS_EINTERNAL;

	if (id == NULL || out == NULL || n == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&arr, &cap, used, sizeof(*arr))) != 0) {
			goto out;
		}
		if (read_version(st, &arr[used]) != 0) {
			r = corrupt(op);
			goto out;
		}
		used++;
	}
	if (rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*out = arr;
	*n = used;
	arr = NULL;
	r = 0;
 out:
	finish(st);
	free(arr);
	return r;
}

static int
sq_reserve_encryptions(store *sto, const uint8_t id[16], uint32_t version,
    uint64_t reserved)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "reserve_encryptions";
	sqlite3_stmt *st = s->st[ST_VERSION_RESERVE];
	int rc, r, changes = 0;

	if (id == NULL || reserved > INT64_MAX) {
		return KMS_EINVAL;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)reserved)) !=
	    SQLITE_OK) {
		finish(st);
		return map_err(s, rc, op);
	}
	if ((r = step_write(s, st, op, &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

static int
sq_get_tags(store *sto, const uint8_t id[16], struct store_tag **out,
    size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "get_tags";
	sqlite3_stmt *st = s->st[ST_TAG_LIST];
	struct store_tag *arr = NULL;
	size_t cap = 0, used = 0;
	int rc, r = KMS_EINTERNAL;

	if (id == NULL || out == NULL || n == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = grow((void **)&arr, &cap, used, sizeof(*arr))) != 0) {
			goto out;
		}
		if (col_text(st, 0, arr[used].key, sizeof(arr[used].key)) !=
		    0 || col_text(st, 1, arr[used].value,
		    sizeof(arr[used].value)) != 0) {
			r = corrupt(op);
			goto out;
		}
		used++;
	}
	if (rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*out = arr;
	*n = used;
	arr = NULL;
	r = 0;
 out:
	finish(st);
	free(arr);
	return r;
}

/*
 * Pages of STORE_PAGE rows in (key_id, version) order; each page is read
 * and its statement reset before fn sees it, so fn may use this store
 * (the key cache loads keys from inside the walk).
 */
static int
sq_for_each_version(store *sto,
    int (*fn)(const struct store_version *v, void *arg), void *arg)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "for_each_version";
	struct store_version *page = NULL, last;
	sqlite3_stmt *st = NULL;
	size_t got, i;
	int rc, r = KMS_EINTERNAL, first = 1;

	if (fn == NULL) {
		return KMS_EINVAL;
	}
	if ((page = calloc(STORE_PAGE, sizeof(*page))) == NULL) {
		return KMS_ENOMEM;
	}
	memset(&last, 0, sizeof(last));
	for (;;) {
		if (first) {
			st = s->st[ST_VERSION_ALL];
			rc = sqlite3_bind_int(st, 1, STORE_PAGE);
		} else {
			st = s->st[ST_VERSION_ALL_AFTER];
			if ((rc = bind_id(st, 1, last.key_id)) == SQLITE_OK &&
			    (rc = sqlite3_bind_int64(st, 2, last.version)) ==
			    SQLITE_OK) {
				rc = sqlite3_bind_int(st, 3, STORE_PAGE);
			}
		}
		if (rc != SQLITE_OK) {
			r = map_err(s, rc, op);
			goto out;
		}
		got = 0;
		while (got < STORE_PAGE &&
		    (rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (read_version(st, &page[got]) != 0) {
				r = corrupt(op);
				goto out;
			}
			got++;
		}
		if (got < STORE_PAGE && rc != SQLITE_DONE) {
			r = map_err(s, rc, op);
			goto out;
		}
		finish(st);
		st = NULL;
		for (i = 0; i < got; i++) {
			if ((r = fn(&page[i], arg)) != 0) {
				goto out;
			}
		}
		if (got < STORE_PAGE) {
			break;
		}
		last = page[got - 1];
		first = 0;
	}
	r = 0;
 out:
	if (st != NULL) {
		finish(st);
	}
	free(page);
	return r;
}

static int
sq_delete_key(store *sto, const uint8_t id[16])
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_key";
	sqlite3_stmt *st = s->st[ST_KEY_DELETE];
	int rc, r, changes = 0;

	if (id == NULL) {
		return KMS_EINVAL;
	}
	/* Versions, tags, aliases, policy and grants go by ON DELETE
	 * CASCADE, in the same statement and so the same transaction. */
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		finish(st);
		return map_err(s, rc, op);
	}
	if ((r = step_write(s, st, op, &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

/* 0 on error (logged): the count is informational. */
static uint64_t
sq_count_keys(store *sto)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_KEY_COUNT];
	uint64_t n = 0;
	int rc;

	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (col_uint(st, 0, INT64_MAX, &n) != 0) {
			n = 0;
		}
	} else {
		(void)map_err(s, rc, "count_keys");
	}
	finish(st);
	return n;
}

/* ---- tags, aliases, policies, grants (authorisation) ---- */

/* Bump a key's row_version inside the caller's transaction. */
static int
bump_key(struct sqlite_store *s, const uint8_t id[16], const char *op)
{
	sqlite3_stmt *st = s->st[ST_KEY_BUMP];
	int rc;

	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		finish(st);
		return map_err(s, rc, op);
	}
	if ((rc = step_done(s, st, op)) != 0) {
		return rc;
	}
	return sqlite3_changes(s->db) == 0 ? KMS_ENOTFOUND : 0;
}

static int
sq_put_tags(store *sto, const uint8_t id[16], const struct store_tag *tags,
    size_t n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "put_tags";
	sqlite3_stmt *st = s->st[ST_TAG_UPSERT];
	size_t i;
	int rc, r;

	if (id == NULL || (n > 0 && tags == NULL)) {
		return KMS_EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (check_tag(&tags[i]) != 0) {
			return KMS_EINVAL;
		}
	}
	if ((r = tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, id, op)) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
		    (rc = bind_text(st, 2, tags[i].key)) != SQLITE_OK ||
		    (rc = bind_text(st, 3, tags[i].value)) != SQLITE_OK) {
			finish(st);
			r = map_err(s, rc, op);
			goto out;
		}
		if ((r = step_done(s, st, op)) != 0) {
			goto out;
		}
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
	return r;
}

static int
sq_delete_tags(store *sto, const uint8_t id[16], const char *const *keys,
    size_t n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_tags";
	sqlite3_stmt *st = s->st[ST_TAG_DELETE];
	size_t i;
	int rc, r;

	if (id == NULL || (n > 0 && keys == NULL)) {
		return KMS_EINVAL;
	}
	if ((r = tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, id, op)) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
		    (rc = bind_text(st, 2, keys[i])) != SQLITE_OK) {
			finish(st);
			r = map_err(s, rc, op);
			goto out;
		}
		if ((r = step_done(s, st, op)) != 0) {
			goto out;
		}
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
	return r;
}

static int
read_alias(sqlite3_stmt *st, struct store_alias *a)
{
	memset(a, 0, sizeof(*a));
	if (col_text(st, 0, a->name, sizeof(a->name)) != 0 ||
	    col_id(st, 1, a->key_id) != 0) {
		return KMS_EINTERNAL;
	}
	a->creation_ms = sqlite3_column_int64(st, 2);
	a->update_ms = sqlite3_column_int64(st, 3);
	return 0;
}

static int
sq_create_alias(store *sto, const struct store_alias *a)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_INSERT];
	int rc;

	if (a == NULL || !field_ok(a->name, sizeof(a->name))) {
		return KMS_EINVAL;
	}
	if ((rc = bind_text(st, 1, a->name)) != SQLITE_OK ||
	    (rc = bind_id(st, 2, a->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, a->creation_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, a->update_ms)) != SQLITE_OK) {
		finish(st);
		return map_err(s, rc, "create_alias");
	}
	return step_write(s, st, "create_alias", NULL);
}

static int
sq_update_alias(store *sto, const char *name, const uint8_t id[16],
    int64_t update_ms)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_UPDATE];
	int rc, r, changes = 0;

	if (name == NULL || id == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = bind_text(st, 1, name)) != SQLITE_OK ||
	    (rc = bind_id(st, 2, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, update_ms)) != SQLITE_OK) {
		finish(st);
		return map_err(s, rc, "update_alias");
	}
	if ((r = step_write(s, st, "update_alias", &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

static int
sq_delete_alias(store *sto, const char *name)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_DELETE];
	int rc, r, changes = 0;

	if (name == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = bind_text(st, 1, name)) != SQLITE_OK) {
		finish(st);
		return map_err(s, rc, "delete_alias");
	}
	if ((r = step_write(s, st, "delete_alias", &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

static int
sq_get_alias(store *sto, const char *name, struct store_alias *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_GET];
	int rc, r;

	if (name == NULL || out == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = bind_text(st, 1, name)) != SQLITE_OK) {
		r = map_err(s, rc, "get_alias");
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND :
		    map_err(s, rc, "get_alias");
	} else {
		r = read_alias(st, out) != 0 ? corrupt("get_alias") : 0;
	}
	finish(st);
	return r;
}

static int
sq_list_aliases(store *sto, const uint8_t *key_id, const char *after,
    size_t max, struct store_alias *out, size_t *n, int *more)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "list_aliases";
	sqlite3_stmt *st = s->st[key_id ? ST_ALIAS_LIST_KEY : ST_ALIAS_LIST];
	size_t got = 0;
	int rc, r = KMS_EINTERNAL, extra = 0;

	if (n == NULL || more == NULL || (max > 0 && out == NULL) ||
	    max > STORE_LIST_MAX) {
		return KMS_EINVAL;
	}
	if ((rc = bind_text(st, 1, after ? after : "")) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)max + 1)) !=
	    SQLITE_OK ||
	    (key_id != NULL && (rc = bind_id(st, 3, key_id)) != SQLITE_OK)) {
		r = map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (got == max) {
			extra = 1;
			continue;
		}
		if (read_alias(st, &out[got]) != 0) {
			r = corrupt(op);
			goto out;
		}
		got++;
	}
	if (rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*n = got;
	*more = extra;
	r = 0;
 out:
	finish(st);
	return r;
}

static int
sq_count_aliases(store *sto, const uint8_t id[16], size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_COUNT];
	uint64_t u = 0;
	int rc, r = 0;

	if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = map_err(s, rc, "count_aliases");
	} else if (col_uint(st, 0, INT64_MAX, &u) != 0) {
		r = corrupt("count_aliases");
	}
	finish(st);
	*n = (size_t)u;
	return r;
}

static int
sq_put_policy(store *sto, const uint8_t id[16], const char *doc,
    uint64_t *policy_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "put_policy";
	sqlite3_stmt *st = s->st[ST_POLICY_PUT];
	uint64_t v = 0;
	int rc, r;

	if (id == NULL || doc == NULL) {
		return KMS_EINVAL;
	}
	if ((r = tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, id, op)) != 0) {
		goto out;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, doc)) != SQLITE_OK) {
		finish(st);
		r = map_err(s, rc, op);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW ||
	    col_uint(st, 0, INT64_MAX, &v) != 0) {
		r = rc == SQLITE_ROW ? corrupt(op) : map_err(s, rc, op);
		finish(st);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = map_err(s, rc, op);
		finish(st);
		goto out;
	}
	finish(st);
	if ((r = tx_commit(s, op)) == 0 && policy_version != NULL) {
		*policy_version = v;
	}
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
	return r;
}

static int
sq_get_policy(store *sto, const uint8_t id[16], char **doc,
    uint64_t *policy_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_POLICY_GET];
	const unsigned char *p;
	uint64_t v = 0;
	int rc, r = 0, len;

	if (id == NULL || doc == NULL) {
		return KMS_EINVAL;
	}
	*doc = NULL;
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		r = map_err(s, rc, "get_policy");
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND :
		    map_err(s, rc, "get_policy");
	} else if ((p = sqlite3_column_text(st, 0)) == NULL ||
	    (len = sqlite3_column_bytes(st, 0)) < 0 ||
	    col_uint(st, 1, INT64_MAX, &v) != 0) {
		r = corrupt("get_policy");
	} else if ((*doc = malloc((size_t)len + 1)) == NULL) {
		r = KMS_ENOMEM;
	} else {
		memcpy(*doc, p, (size_t)len);
		(*doc)[len] = '\0';
		if (policy_version != NULL) {
			*policy_version = v;
		}
	}
	finish(st);
	return r;
}

static int
read_grant(sqlite3_stmt *st, struct store_grant *g)
{
	const void *h;

	memset(g, 0, sizeof(*g));
	if (col_text(st, 0, g->grant_id, sizeof(g->grant_id)) != 0 ||
	    col_id(st, 1, g->key_id) != 0 ||
	    col_text(st, 2, g->name, sizeof(g->name)) != 0 ||
	    col_text(st, 3, g->grantee, sizeof(g->grantee)) != 0 ||
	    col_text(st, 4, g->retiring, sizeof(g->retiring)) != 0 ||
	    col_text(st, 5, g->operations, sizeof(g->operations)) != 0 ||
	    col_text(st, 6, g->constraints, sizeof(g->constraints)) != 0 ||
	    col_text(st, 9, g->issuer, sizeof(g->issuer)) != 0) {
		return KMS_EINTERNAL;
	}
	h = sqlite3_column_blob(st, 7);
	if (h == NULL || sqlite3_column_bytes(st, 7) != 32) {
		return KMS_EINTERNAL;
	}
	memcpy(g->token_hash, h, 32);
	g->creation_ms = sqlite3_column_int64(st, 8);
	return 0;
}

static int
sq_create_grant(store *sto, const struct store_grant *g)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "create_grant";
	sqlite3_stmt *st = s->st[ST_GRANT_INSERT];
	int rc, r;

	if (g == NULL || !field_ok(g->grant_id, sizeof(g->grant_id)) ||
	    !field_ok(g->name, sizeof(g->name)) ||
	    !field_ok(g->grantee, sizeof(g->grantee)) ||
	    !field_ok(g->retiring, sizeof(g->retiring)) ||
	    !field_ok(g->operations, sizeof(g->operations)) ||
	    !field_ok(g->constraints, sizeof(g->constraints)) ||
	    !field_ok(g->issuer, sizeof(g->issuer))) {
		return KMS_EINVAL;
	}
	if ((r = tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, g->key_id, op)) != 0) {
		goto out;
	}
	if ((rc = bind_text(st, 1, g->grant_id)) != SQLITE_OK ||
	    (rc = bind_id(st, 2, g->key_id)) != SQLITE_OK ||
	    (rc = bind_text(st, 3, g->name)) != SQLITE_OK ||
	    (rc = bind_text(st, 4, g->grantee)) != SQLITE_OK ||
	    (rc = bind_text(st, 5, g->retiring)) != SQLITE_OK ||
	    (rc = bind_text(st, 6, g->operations)) != SQLITE_OK ||
	    (rc = bind_text(st, 7, g->constraints)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 8, g->token_hash, 32,
	    SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 9, g->creation_ms)) != SQLITE_OK ||
	    (rc = bind_text(st, 10, g->issuer)) != SQLITE_OK) {
		finish(st);
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, st, op)) != 0) {
		goto out;
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
	return r;
}

static int
sq_delete_grant(store *sto, const uint8_t id[16], const char *grant_id)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_grant";
	sqlite3_stmt *st = s->st[ST_GRANT_DELETE];
	int rc, r;

	if (id == NULL || grant_id == NULL) {
		return KMS_EINVAL;
	}
	if ((r = tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, id, op)) != 0) {
		goto out;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, grant_id)) != SQLITE_OK) {
		finish(st);
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, st, op)) != 0) {
		goto out;
	}
	if (sqlite3_changes(s->db) == 0) {
		r = KMS_ENOTFOUND;
		goto out;
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
	return r;
}

/* Read all rows of a prepared, bound grant query into *out. */
static int
collect_grants(struct sqlite_store *s, sqlite3_stmt *st, size_t max,
    struct store_grant **out, size_t *n, int *more, const char *op)
{
	struct store_grant *arr = NULL;
	size_t cap = 0, used = 0;
	int rc, r = KMS_EINTERNAL, extra = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (used == max) {
			extra = 1;
			continue;
		}
		if ((r = grow((void **)&arr, &cap, used, sizeof(*arr))) != 0) {
			goto out;
		}
		if (read_grant(st, &arr[used]) != 0) {
			r = corrupt(op);
			goto out;
		}
		used++;
	}
	if (rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*out = arr;
	*n = used;
	if (more != NULL) {
		*more = extra;
	}
	arr = NULL;
	r = 0;
 out:
	finish(st);
	free(arr);
	return r;
}

static int
sq_get_grants(store *sto, const uint8_t id[16], struct store_grant **out,
    size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_GRANT_LIST];
	int rc;

	if (id == NULL || out == NULL || n == NULL) {
		return KMS_EINVAL;
	}
	*out = NULL;
	*n = 0;
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		finish(st);
		return map_err(s, rc, "get_grants");
	}
	return collect_grants(s, st, SIZE_MAX, out, n, NULL, "get_grants");
}

static int
sq_find_grant_by_token(store *sto, const uint8_t hash[32],
    struct store_grant *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_GRANT_BY_TOKEN];
	int rc, r;

	if (hash == NULL || out == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, "find_grant_by_token");
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND :
		    map_err(s, rc, "find_grant_by_token");
	} else {
		r = read_grant(st, out) != 0 ?
		    corrupt("find_grant_by_token") : 0;
	}
	finish(st);
	return r;
}

static int
sq_list_retirable(store *sto, const char *p, const char *after, size_t max,
    struct store_grant **out, size_t *n, int *more)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_GRANT_RETIRABLE];
	int rc;

	if (p == NULL || out == NULL || n == NULL || more == NULL ||
	    max > STORE_LIST_MAX) {
		return KMS_EINVAL;
	}
	*out = NULL;
	*n = 0;
	if ((rc = bind_text(st, 1, p)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, after ? after : "")) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)max + 1)) !=
	    SQLITE_OK) {
		finish(st);
		return map_err(s, rc, "list_retirable");
	}
	return collect_grants(s, st, max, out, n, more, "list_retirable");
}

/* ---- the key's life (cold paths: statements prepared per call) ---- */

static int
prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **st,
    const char *op)
{
	int rc;

	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL)) != SQLITE_OK) {
		*st = NULL;
		return map_err(s, rc, op);
	}
	return 0;
}

static int
sq_rotate_key(store *sto, const struct store_version *v, int kind,
    uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "rotate_key";
	sqlite3_stmt *up = NULL, *hist = NULL, *sched = NULL;
	uint64_t rv = 0;
	int rc, r;

	if (v == NULL || check_version(v) != 0 || kind < ROTATION_AUTOMATIC ||
	    kind > ROTATION_BUDGET) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "UPDATE keys SET current_version = ?2, "
	    "row_version = row_version + 1 WHERE id = ?1 "
	    "RETURNING row_version", &up, op)) != 0 ||
	    (r = prep(s, "INSERT INTO rotations (key_id, version, kind, "
	    "rotation_ms) VALUES (?1, ?2, ?3, ?4)", &hist, op)) != 0 ||
	    (r = prep(s, "UPDATE rotation_schedules SET base_ms = ?2, "
	    "next_ms = ?2 + period_days * 86400000 WHERE key_id = ?1",
	    &sched, op)) != 0) {
		goto done;
	}
	if ((r = tx_begin(s, op)) != 0) {
		goto done;
	}
	if ((r = insert_version(s, v, op)) != 0) {
		goto out;
	}
	if ((rc = bind_id(up, 1, v->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(up, 2, v->version)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
		goto out;
	}
	if (col_uint(up, 0, INT64_MAX, &rv) != 0) {
		r = corrupt(op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((rc = bind_id(hist, 1, v->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(hist, 2, v->version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(hist, 3, kind)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(hist, 4, v->creation_ms)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, hist, op)) != 0) {
		goto out;
	}
	if (kind == ROTATION_AUTOMATIC) {
		if ((rc = bind_id(sched, 1, v->key_id)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(sched, 2, v->creation_ms)) !=
		    SQLITE_OK) {
			r = map_err(s, rc, op);
			goto out;
		}
		if ((r = step_done(s, sched, op)) != 0) {
			goto out;
		}
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
 done:
	sqlite3_finalize(up);
	sqlite3_finalize(hist);
	sqlite3_finalize(sched);
	if (r == 0 && row_version != NULL) {
		*row_version = rv;
	}
	return r;
}

static int
sq_set_rotation_schedule(store *sto, const uint8_t id[16],
    const struct store_rotation_schedule *rs)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "set_rotation_schedule";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (id == NULL) {
		return KMS_EINVAL;
	}
	if (rs == NULL) {
		r = prep(s, "DELETE FROM rotation_schedules WHERE key_id = ?1",
		    &st, op);
	} else {
		r = prep(s, "INSERT INTO rotation_schedules (key_id, "
		    "period_days, base_ms, next_ms) VALUES (?1, ?2, ?3, ?4) "
		    "ON CONFLICT (key_id) DO UPDATE SET period_days = "
		    "excluded.period_days, base_ms = excluded.base_ms, "
		    "next_ms = excluded.next_ms", &st, op);
	}
	if (r != 0) {
		return r;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
	    (rs != NULL && ((rc = sqlite3_bind_int64(st, 2,
	    rs->period_days)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, rs->base_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, rs->next_ms)) != SQLITE_OK))) {
		r = map_err(s, rc, op);
	} else {
		r = step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_get_rotation_schedule(store *sto, const uint8_t id[16],
    struct store_rotation_schedule *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "get_rotation_schedule";
	sqlite3_stmt *st = NULL;
	uint64_t u;
	int rc, r;

	if (id == NULL || out == NULL) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT period_days, base_ms, next_ms FROM "
	    "rotation_schedules WHERE key_id = ?1", &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
	} else if (col_uint(st, 0, UINT32_MAX, &u) != 0) {
		r = corrupt(op);
	} else {
		out->period_days = (uint32_t)u;
		out->base_ms = sqlite3_column_int64(st, 1);
		out->next_ms = sqlite3_column_int64(st, 2);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_list_rotations(store *sto, const uint8_t id[16], uint32_t after,
    size_t max, struct store_rotation *out, size_t *n, int *more)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "list_rotations";
	sqlite3_stmt *st = NULL;
	size_t got = 0;
	uint64_t u;
	int rc, r, extra = 0;

	if (id == NULL || n == NULL || more == NULL ||
	    (max > 0 && out == NULL) || max > STORE_LIST_MAX) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT version, kind, rotation_ms FROM rotations "
	    "WHERE key_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
	    &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, after)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)max + 1)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (got == max) {
			extra = 1;
			continue;
		}
		if (col_uint(st, 0, UINT32_MAX, &u) != 0) {
			r = corrupt(op);
			goto out;
		}
		out[got].version = (uint32_t)u;
		if (col_uint(st, 1, ROTATION_BUDGET, &u) != 0) {
			r = corrupt(op);
			goto out;
		}
		out[got].kind = (int)u;
		out[got].rotation_ms = sqlite3_column_int64(st, 2);
		got++;
	}
	if (rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*n = got;
	*more = extra;
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sq_count_rotations(store *sto, const uint8_t id[16], int kind, size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "count_rotations";
	sqlite3_stmt *st = NULL;
	uint64_t u = 0;
	int rc, r;

	if (id == NULL || n == NULL) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT count(*) FROM rotations WHERE key_id = ?1 "
	    "AND kind = ?2", &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 2, kind)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = map_err(s, rc, op);
	} else if (col_uint(st, 0, INT64_MAX, &u) != 0) {
		r = corrupt(op);
	} else {
		*n = (size_t)u;
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

/* Up to max key ids from a query binding ?1 = now, ?2 = limit. */
static int
due_ids(struct sqlite_store *s, const char *sql, int64_t now, size_t max,
    uint8_t (*ids)[16], size_t *n, const char *op)
{
	sqlite3_stmt *st = NULL;
	size_t got = 0;
	int rc, r;

	if (ids == NULL || n == NULL || max > STORE_LIST_MAX) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, sql, &st, op)) != 0) {
		return r;
	}
	if ((rc = sqlite3_bind_int64(st, 1, now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)max)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (col_id(st, 0, ids[got]) != 0) {
			r = corrupt(op);
			goto out;
		}
		got++;
	}
	if (got < max && rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*n = got;
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
sq_due_rotations(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT r.key_id FROM rotation_schedules r "
	    "JOIN keys k ON k.id = r.key_id WHERE r.next_ms <= ?1 AND "
	    "k.state = %d ORDER BY r.next_ms LIMIT ?2", KEY_ENABLED);
	return due_ids(to_sqlite(sto), sql, now, max, ids, n,
	    "due_rotations");
}

static int
sq_due_deletions(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT id FROM keys WHERE state = %d AND "
	    "deletion_ms <= ?1 ORDER BY deletion_ms LIMIT ?2",
	    KEY_PENDING_DELETION);
	return due_ids(to_sqlite(sto), sql, now, max, ids, n,
	    "due_deletions");
}

static int
lease_args_ok(const char *name, const char *holder)
{
	return name != NULL && holder != NULL && *name != '\0' &&
	    *holder != '\0' && strlen(name) < STORE_LEASE_NAME_MAX &&
	    strlen(holder) < STORE_LEASE_HOLDER_MAX;
}

static int
sq_claim_lease(store *sto, const char *name, const char *holder,
    int64_t now, int64_t ttl_ms)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "claim_lease";
	sqlite3_stmt *st = NULL;
	int rc, r, changes = 0;

	if (!lease_args_ok(name, holder) || ttl_ms <= 0) {
		return KMS_EINVAL;
	}
	/* One statement: it takes the lease only where it is free, has
	 * expired, or is already the holder's. */
	if ((r = prep(s, "INSERT INTO leases (name, holder, since_ms, "
	    "expires_ms) VALUES (?1, ?2, ?3, ?3 + ?4) ON CONFLICT (name) "
	    "DO UPDATE SET holder = excluded.holder, since_ms = CASE WHEN "
	    "leases.holder = excluded.holder THEN leases.since_ms ELSE "
	    "excluded.since_ms END, expires_ms = excluded.expires_ms "
	    "WHERE leases.expires_ms <= ?3 OR leases.holder = ?2", &st,
	    op)) != 0) {
		return r;
	}
	if ((rc = bind_text(st, 1, name)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, holder)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, ttl_ms)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else if ((r = step_write(s, st, op, &changes)) == 0 &&
	    changes == 0) {
		r = KMS_ECONFLICT;
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_release_lease(store *sto, const char *name, const char *holder)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "release_lease";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (!lease_args_ok(name, holder)) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
	    &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_text(st, 1, name)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, holder)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else {
		r = step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_get_lease(store *sto, const char *name, int64_t now,
    char holder[STORE_LEASE_HOLDER_MAX], int64_t *since_ms)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "get_lease";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (name == NULL || holder == NULL || since_ms == NULL) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT holder, since_ms FROM leases WHERE "
	    "name = ?1 AND expires_ms > ?2", &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_text(st, 1, name)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, now)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
	} else if (col_text(st, 0, holder, STORE_LEASE_HOLDER_MAX) != 0) {
		r = corrupt(op);
	} else {
		*since_ms = sqlite3_column_int64(st, 1);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

#define SHRED_CHECKPOINT_TRIES 20	/* 100 ms each: readers finish */

/* Checkpoint everything and cut the WAL to nothing, waiting at most
 * busy_ms for readers; 0 or an SQLite code. */
static int
truncate_wal(struct sqlite_store *s, int busy_ms)
{
	int rc;

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

static int
sq_shred_key(store *sto, const uint8_t id[16])
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "shred_key";
	sqlite3_stmt *st = s->st[ST_KEY_DELETE];
	int rc = SQLITE_OK, r, changes, tries;

	if (id == NULL) {
		return KMS_EINVAL;
	}
	if ((r = writer_lock(s, op)) != 0) {
		return r;
	}
	/* Versions (the wrapped material), tags, aliases, policy, grants,
	 * rotations go by ON DELETE CASCADE in this one statement, and
	 * secure_delete overwrites their bytes in the pages they leave. */
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		finish(st);
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, st, op)) != 0) {
		goto out;
	}
	changes = sqlite3_changes(s->db);
	/* The WAL still holds the old pages (and the frames that first
	 * wrote the material): copy the zeroed pages into the database
	 * and cut the WAL to nothing.  Other connections' read
	 * transactions are short; wait them out, a little. */
	atomic_store(&truncate_due, 1);
	for (tries = 0; tries < SHRED_CHECKPOINT_TRIES; tries++) {
		if ((rc = truncate_wal(s, 100)) == SQLITE_OK ||
		    ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) !=
		    SQLITE_LOCKED)) {
			break;
		}
	}
	if (rc != SQLITE_OK) {
		log_warn("store: shred: the WAL could not be truncated yet "
		    "(%s); the next write tries again", sqlite3_errmsg(s->db));
	}
	r = changes == 0 ? KMS_ENOTFOUND : 0;
 out:
	writer_unlock(s);
	return r;
}

/* ---- imported key material ---- */

static int
bind_token(sqlite3_stmt *st, const struct store_import_token *t)
{
	int rc;

	if ((rc = sqlite3_bind_blob(st, 1, t->hash, 32, SQLITE_STATIC)) !=
	    SQLITE_OK || (rc = bind_id(st, 2, t->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 3, t->wrapping_key_id,
	    (int)t->wrapping_key_id_len, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_text(st, 4, t->algorithm)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 5, t->expires_ms)) != SQLITE_OK) {
		return rc;
	}
	return SQLITE_OK;
}

static int
read_token(sqlite3_stmt *st, struct store_import_token *t)
{
	const void *p;
	int n;

	memset(t, 0, sizeof(*t));
	p = sqlite3_column_blob(st, 0);
	if (p == NULL || sqlite3_column_bytes(st, 0) != 32 ||
	    col_id(st, 1, t->key_id) != 0) {
		return KMS_EINTERNAL;
	}
	memcpy(t->hash, p, 32);
	p = sqlite3_column_blob(st, 2);
	n = sqlite3_column_bytes(st, 2);
	if (n < 0 || (n > 0 && p == NULL) ||
	    (size_t)n > sizeof(t->wrapping_key_id) ||
	    col_text(st, 3, t->algorithm, sizeof(t->algorithm)) != 0) {
		return KMS_EINTERNAL;
	}
	if (n > 0) {
		memcpy(t->wrapping_key_id, p, (size_t)n);
	}
	t->wrapping_key_id_len = (size_t)n;
	t->expires_ms = sqlite3_column_int64(st, 4);
	return 0;
}

#define TOKEN_COLS "token_hash, key_id, wrapping_key_id, algorithm, " \
	"expires_ms"

static int
sq_put_import_token(store *sto, const struct store_import_token *t)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "put_import_token";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (t == NULL || t->wrapping_key_id_len == 0 ||
	    t->wrapping_key_id_len > sizeof(t->wrapping_key_id) ||
	    !field_ok(t->algorithm, sizeof(t->algorithm))) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "INSERT INTO import_tokens (" TOKEN_COLS ") "
	    "VALUES (?1, ?2, ?3, ?4, ?5)", &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_token(st, t)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else {
		r = step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_get_import_token(store *sto, const uint8_t hash[32],
    struct store_import_token *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "get_import_token";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (hash == NULL || out == NULL) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT " TOKEN_COLS " FROM import_tokens WHERE "
	    "token_hash = ?1", &st, op)) != 0) {
		return r;
	}
	if ((rc = sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
	} else {
		r = read_token(st, out) != 0 ? corrupt(op) : 0;
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_delete_import_token(store *sto, const uint8_t hash[32])
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_import_token";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (hash == NULL) {
		return KMS_EINVAL;
	}
	/* The row stays, without its key, so that the token is known to
	 * have expired (ExpiredImportTokenException, not Invalid). */
	if ((r = prep(s, "UPDATE import_tokens SET wrapping_key_id = X'' "
	    "WHERE token_hash = ?1", &st, op)) != 0) {
		return r;
	}
	if ((rc = sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, op);
	} else {
		r = step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_due_import_tokens(store *sto, int64_t now, size_t max,
    struct store_import_token *out, size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "due_import_tokens";
	sqlite3_stmt *st = NULL;
	size_t got = 0;
	int rc, r;

	if (out == NULL || n == NULL || max > STORE_LIST_MAX) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT " TOKEN_COLS " FROM import_tokens WHERE "
	    "expires_ms <= ?1 AND length(wrapping_key_id) > 0 "
	    "ORDER BY expires_ms LIMIT ?2", &st, op)) != 0) {
		return r;
	}
	if ((rc = sqlite3_bind_int64(st, 1, now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)max)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (read_token(st, &out[got]) != 0) {
			r = corrupt(op);
			goto out;
		}
		got++;
	}
	if (got < max && rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*n = got;
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static int
bind_import(sqlite3_stmt *st, const uint8_t id[16],
    const struct store_import *im)
{
	int rc;

	if ((rc = bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 2, im->kcv, 16, SQLITE_STATIC)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 3, im->expires != 0)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, im->valid_to_ms)) != SQLITE_OK) {
		return rc;
	}
	return SQLITE_OK;
}

static int
sq_import_material(store *sto, const struct store_version *v,
    const struct store_import *im, uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "import_material";
	sqlite3_stmt *up = NULL, *imp = NULL;
	uint64_t rv = 0;
	char sql[256];
	int rc, r;

	if (v == NULL || im == NULL || check_version(v) != 0) {
		return KMS_EINVAL;
	}
	snprintf(sql, sizeof(sql), "UPDATE keys SET state = %d, "
	    "current_version = ?2, row_version = row_version + 1 "
	    "WHERE id = ?1 RETURNING row_version", KEY_ENABLED);
	if ((r = prep(s, sql, &up, op)) != 0 ||
	    (r = prep(s, "INSERT INTO imported_material (key_id, kcv, "
	    "expires, valid_to_ms, present) VALUES (?1, ?2, ?3, ?4, 1) "
	    "ON CONFLICT (key_id) DO UPDATE SET kcv = excluded.kcv, "
	    "expires = excluded.expires, valid_to_ms = excluded.valid_to_ms, "
	    "present = 1", &imp, op)) != 0) {
		goto done;
	}
	if ((r = tx_begin(s, op)) != 0) {
		goto done;
	}
	if ((r = insert_version(s, v, op)) != 0) {
		goto out;
	}
	if ((rc = bind_id(up, 1, v->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(up, 2, v->version)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
		goto out;
	}
	if (col_uint(up, 0, INT64_MAX, &rv) != 0) {
		r = corrupt(op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((rc = bind_import(imp, v->key_id, im)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, imp, op)) != 0) {
		goto out;
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
 done:
	sqlite3_finalize(up);
	sqlite3_finalize(imp);
	if (r == 0 && row_version != NULL) {
		*row_version = rv;
	}
	return r;
}

static int
sq_set_import_expiry(store *sto, const uint8_t id[16],
    const struct store_import *im)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "set_import_expiry";
	sqlite3_stmt *st = NULL;
	int rc, r, changes = 0;

	if (id == NULL || im == NULL) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "UPDATE imported_material SET expires = ?3, "
	    "valid_to_ms = ?4 WHERE key_id = ?1 AND kcv = ?2", &st,
	    op)) != 0) {
		return r;
	}
	if ((rc = bind_import(st, id, im)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else if ((r = step_write(s, st, op, &changes)) == 0 &&
	    changes == 0) {
		r = KMS_ENOTFOUND;
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_get_import(store *sto, const uint8_t id[16], struct store_import *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "get_import";
	sqlite3_stmt *st = NULL;
	const void *p;
	int rc, r;

	if (id == NULL || out == NULL) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT kcv, expires, valid_to_ms, present FROM "
	    "imported_material WHERE key_id = ?1", &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_id(st, 1, id)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
	} else if ((p = sqlite3_column_blob(st, 0)) == NULL ||
	    sqlite3_column_bytes(st, 0) != 16) {
		r = corrupt(op);
	} else {
		memcpy(out->kcv, p, 16);
		out->expires = sqlite3_column_int(st, 1) != 0;
		out->valid_to_ms = sqlite3_column_int64(st, 2);
		out->present = sqlite3_column_int(st, 3) != 0;
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_delete_material(store *sto, const uint8_t id[16], uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_material";
	sqlite3_stmt *dv = NULL, *up = NULL, *imp = NULL;
	uint64_t rv = 0;
	char sql[256];
	int rc, r, tries;

	if (id == NULL) {
		return KMS_EINVAL;
	}
	snprintf(sql, sizeof(sql), "UPDATE keys SET state = %d, "
	    "current_version = 0, row_version = row_version + 1 "
	    "WHERE id = ?1 RETURNING row_version", KEY_PENDING_IMPORT);
	if ((r = prep(s, "DELETE FROM versions WHERE key_id = ?1", &dv,
	    op)) != 0 || (r = prep(s, sql, &up, op)) != 0 ||
	    (r = prep(s, "UPDATE imported_material SET present = 0 WHERE "
	    "key_id = ?1", &imp, op)) != 0) {
		goto done;
	}
	if ((r = tx_begin(s, op)) != 0) {
		goto done;
	}
	if ((rc = bind_id(dv, 1, id)) != SQLITE_OK ||
	    (rc = bind_id(up, 1, id)) != SQLITE_OK ||
	    (rc = bind_id(imp, 1, id)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, dv, op)) != 0 ||
	    (r = step_done(s, imp, op)) != 0) {
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
		goto out;
	}
	if (col_uint(up, 0, INT64_MAX, &rv) != 0) {
		r = corrupt(op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, s->st[ST_COMMIT], op)) != 0) {
		goto out;
	}
	/* As for a shred: the erased material out of the WAL too. */
	atomic_store(&truncate_due, 1);
	for (tries = 0; tries < SHRED_CHECKPOINT_TRIES; tries++) {
		if ((rc = truncate_wal(s, 100)) == SQLITE_OK ||
		    ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) !=
		    SQLITE_LOCKED)) {
			break;
		}
	}
	writer_unlock(s);
	goto done;
 out:
	tx_rollback(s, op);
 done:
	sqlite3_finalize(dv);
	sqlite3_finalize(up);
	sqlite3_finalize(imp);
	if (r == 0 && row_version != NULL) {
		*row_version = rv;
	}
	return r;
}

static int
sq_due_expirations(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	return due_ids(to_sqlite(sto), "SELECT key_id FROM imported_material "
	    "WHERE present = 1 AND expires = 1 AND valid_to_ms <= ?1 "
	    "ORDER BY valid_to_ms LIMIT ?2", now, max, ids, n,
	    "due_expirations");
}

/* ---- domain-key rotation ---- */

#define DR_COLS "state, cursor_key, cursor_version, done, total, " \
	"started_ms, finished_ms, requested_by"

static int
sq_get_domain_rotation(store *sto, struct store_domain_rotation *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "get_domain_rotation";
	sqlite3_stmt *st = NULL;
	uint64_t u;
	int rc, r;

	if (out == NULL) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT " DR_COLS " FROM domain_rotation WHERE "
	    "id = 1", &st, op)) != 0) {
		return r;
	}
	memset(out, 0, sizeof(*out));
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : map_err(s, rc, op);
	} else if (col_uint(st, 0, DOMAIN_ROTATION_DONE, &u) != 0 ||
	    col_id(st, 1, out->cursor_key) != 0) {
		r = corrupt(op);
	} else {
		out->state = (int)u;
		if (col_uint(st, 2, UINT32_MAX, &u) != 0 ||
		    col_uint(st, 3, INT64_MAX, &out->done) != 0 ||
		    col_uint(st, 4, INT64_MAX, &out->total) != 0 ||
		    col_text(st, 7, out->requested_by,
		    sizeof(out->requested_by)) != 0) {
			r = corrupt(op);
		} else {
			out->cursor_version = (uint32_t)u;
			out->started_ms = sqlite3_column_int64(st, 5);
			out->finished_ms = sqlite3_column_int64(st, 6);
			r = 0;
		}
	}
	sqlite3_finalize(st);
	return r;
}

static int
bind_dr(sqlite3_stmt *st, const struct store_domain_rotation *d)
{
	int rc;

	if ((rc = sqlite3_bind_int(st, 1, d->state)) != SQLITE_OK ||
	    (rc = bind_id(st, 2, d->cursor_key)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, d->cursor_version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, (sqlite3_int64)d->done)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)d->total)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, d->started_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 7, d->finished_ms)) != SQLITE_OK ||
	    (rc = bind_text(st, 8, d->requested_by)) != SQLITE_OK) {
		return rc;
	}
	return SQLITE_OK;
}

#define DR_UPSERT "INSERT INTO domain_rotation (id, " DR_COLS ") VALUES " \
	"(1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO UPDATE SET " \
	"state = excluded.state, cursor_key = excluded.cursor_key, " \
	"cursor_version = excluded.cursor_version, done = excluded.done, " \
	"total = excluded.total, started_ms = excluded.started_ms, " \
	"finished_ms = excluded.finished_ms, " \
	"requested_by = excluded.requested_by"

static int
sq_put_domain_rotation(store *sto, const struct store_domain_rotation *d)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "put_domain_rotation";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (d == NULL || d->done > INT64_MAX || d->total > INT64_MAX ||
	    !field_ok(d->requested_by, sizeof(d->requested_by))) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, DR_UPSERT, &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_dr(st, d)) != SQLITE_OK) {
		r = map_err(s, rc, op);
	} else {
		r = step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

static int
sq_next_wrapped_versions(store *sto, const struct store_domain_rotation *d,
    size_t max, struct store_version *out, size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "next_wrapped_versions";
	sqlite3_stmt *st = NULL;
	size_t got = 0;
	int rc, r;

	if (d == NULL || out == NULL || n == NULL || max > STORE_LIST_MAX) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "SELECT " VERSION_COLS " FROM versions WHERE "
	    "resident = 0 AND (key_id, version) > (?1, ?2) "
	    "ORDER BY key_id, version LIMIT ?3", &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_id(st, 1, d->cursor_key)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, d->cursor_version)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)max)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (read_version(st, &out[got]) != 0) {
			r = corrupt(op);
			goto out;
		}
		got++;
	}
	if (got < max && rc != SQLITE_DONE) {
		r = map_err(s, rc, op);
		goto out;
	}
	*n = got;
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

static uint64_t
sq_count_wrapped_versions(store *sto)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = NULL;
	uint64_t n = 0;

	if (prep(s, "SELECT count(*) FROM versions WHERE resident = 0", &st,
	    "count_wrapped_versions") != 0) {
		return 0;
	}
	if (sqlite3_step(st) == SQLITE_ROW && col_uint(st, 0, INT64_MAX,
	    &n) != 0) {
		n = 0;
	}
	sqlite3_finalize(st);
	return n;
}

static int
sq_rewrap_versions(store *sto, const struct store_version *v, size_t n,
    const struct store_domain_rotation *d)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "rewrap_versions";
	sqlite3_stmt *up = NULL, *dr = NULL;
	size_t i;
	int rc, r;

	if ((n > 0 && v == NULL) || d == NULL) {
		return KMS_EINVAL;
	}
	if ((r = prep(s, "UPDATE versions SET material = ?3 WHERE "
	    "key_id = ?1 AND version = ?2 AND resident = 0", &up, op)) != 0 ||
	    (r = prep(s, DR_UPSERT, &dr, op)) != 0) {
		goto done;
	}
	if ((r = tx_begin(s, op)) != 0) {
		goto done;
	}
	for (i = 0; i < n; i++) {
		if (v[i].material_len > STORE_MATERIAL_MAX) {
			r = KMS_EINVAL;
			goto out;
		}
		if ((rc = bind_id(up, 1, v[i].key_id)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(up, 2, v[i].version)) !=
		    SQLITE_OK ||
		    (rc = sqlite3_bind_blob(up, 3, v[i].material,
		    (int)v[i].material_len, SQLITE_STATIC)) != SQLITE_OK) {
			r = map_err(s, rc, op);
			goto out;
		}
		if ((r = step_done(s, up, op)) != 0) {
			goto out;
		}
	}
	if ((rc = bind_dr(dr, d)) != SQLITE_OK) {
		r = map_err(s, rc, op);
		goto out;
	}
	if ((r = step_done(s, dr, op)) != 0) {
		goto out;
	}
	r = tx_commit(s, op);
 out:
	if (r != 0) {
		tx_rollback(s, op);
	}
 done:
	sqlite3_finalize(up);
	sqlite3_finalize(dr);
	return r;
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

static void
sq_close(store *sto)
{
	if (sto != NULL) {
		free_store(to_sqlite(sto));
	}
}

/* ---- operations ---- */

static int exec_int(sqlite3 *db, const char *sql, int64_t *out);

/*
 * SQLite's online backup API copies every page in one step, inside one
 * read transaction: a snapshot as of its start, while this process's
 * writers keep committing to the WAL.  The copy is then counted.
 */
static int
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
		r = map_err(s, rc, "backup open");
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
		r = map_err(s, rc, "backup");
		goto out;
	}
	if ((rc = sqlite3_backup_finish(b)) != SQLITE_OK) {
		b = NULL;
		r = map_err(s, rc, "backup finish");
		goto out;
	}
	b = NULL;
	if ((rc = exec_int(dst, "SELECT count(*) FROM keys", &n)) !=
	    SQLITE_OK) {
		r = map_err(s, rc, "backup count");
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

static const struct store_ops sqlite_ops = {
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
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run one statement that returns at most one integer; *out gets it (0 for
 * NULL or no row) when out is not NULL. */
static int
exec_int(sqlite3 *db, const char *sql, int64_t *out)
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
		    (rc = exec_int(db, "SELECT max(version) FROM "
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
	    (rc = exec_int(db, "PRAGMA foreign_keys", &fk)) != SQLITE_OK) {
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
	s->base.ops = &sqlite_ops;
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
