/*
 * sqlite_lifecycle.c — the key's life in the SQLite store: rotations and
 * their schedules, deletion and crypto-shredding, leases, imported key
 * material and import tokens, the domain-key rotation (store.h;
 * store_sqlite.c has the schema, the writer turn and transactions).
 * These are cold paths: statements are prepared per call.  Arguments
 * were checked at the interface (store.c).
 */
#include <stdint.h>
#include <string.h>

#include <sqlite3.h>

#include "common/err.h"
#include "kmsd/store/sqlite_int.h"

/* ---- rotations ---- */

int
sq_rotate_key(store *sto, const struct store_version *v, int kind,
    uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "rotate_key";
	sqlite3_stmt *up = NULL, *hist = NULL, *sched = NULL;
	uint64_t rv = 0;
	int r;

	KMS_ASSERT(v != NULL);
	if ((r = sq_prep(s, "UPDATE keys SET current_version = ?2, "
	    "row_version = row_version + 1 WHERE id = ?1 "
	    "RETURNING row_version", &up, op)) != 0 ||
	    (r = sq_prep(s, "INSERT INTO rotations (key_id, version, kind, "
	    "rotation_ms) VALUES (?1, ?2, ?3, ?4)", &hist, op)) != 0 ||
	    (r = sq_prep(s, "UPDATE rotation_schedules SET base_ms = ?2, "
	    "next_ms = ?2 + period_days * 86400000 WHERE key_id = ?1",
	    &sched, op)) != 0 ||
	    (r = sq_tx_begin(s, op)) != 0) {
		goto done;
	}
	if ((r = sq_insert_version(s, v, op)) == 0 &&
	    (r = sq_returning(s, up, op, SQ_ARGS(SQ_ID(v->key_id),
	    SQ_INT(v->version)), &rv)) == 0 &&
	    (r = sq_exec(s, hist, op, SQ_ARGS(SQ_ID(v->key_id),
	    SQ_INT(v->version), SQ_INT(kind), SQ_INT(v->creation_ms)))) == 0 &&
	    kind == ROTATION_AUTOMATIC) {
		r = sq_exec(s, sched, op, SQ_ARGS(SQ_ID(v->key_id),
		    SQ_INT(v->creation_ms)));
	}
	r = sq_tx_end(s, op, r);
 done:
	sqlite3_finalize(up);
	sqlite3_finalize(hist);
	sqlite3_finalize(sched);
	if (r == 0 && row_version != NULL) {
		*row_version = rv;
	}
	return r;
}

int
sq_set_rotation_schedule(store *sto, const uint8_t id[16],
    const struct store_rotation_schedule *rs)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "set_rotation_schedule";

	KMS_ASSERT(id != NULL);
	if (rs == NULL) {
		return sq_write_sql(s, "DELETE FROM rotation_schedules WHERE "
		    "key_id = ?1", op, SQ_ARGS(SQ_ID(id)), NULL);
	}
	return sq_write_sql(s, "INSERT INTO rotation_schedules (key_id, "
	    "period_days, base_ms, next_ms) VALUES (?1, ?2, ?3, ?4) "
	    "ON CONFLICT (key_id) DO UPDATE SET period_days = "
	    "excluded.period_days, base_ms = excluded.base_ms, "
	    "next_ms = excluded.next_ms", op, SQ_ARGS(SQ_ID(id),
	    SQ_INT(rs->period_days), SQ_INT(rs->base_ms),
	    SQ_INT(rs->next_ms)), NULL);
}

static int
read_schedule(sqlite3_stmt *st, void *out)
{
	struct store_rotation_schedule *rs = out;
	uint64_t days;

	if (sq_col_uint(st, 0, UINT32_MAX, &days) != 0) {
		return KMS_EINTERNAL;
	}
	rs->period_days = (uint32_t)days;
	rs->base_ms = sqlite3_column_int64(st, 1);
	rs->next_ms = sqlite3_column_int64(st, 2);
	return 0;
}

int
sq_get_rotation_schedule(store *sto, const uint8_t id[16],
    struct store_rotation_schedule *out)
{
	KMS_ASSERT(id != NULL && out != NULL);
	return sq_get_sql(to_sqlite(sto), "SELECT period_days, base_ms, "
	    "next_ms FROM rotation_schedules WHERE key_id = ?1",
	    "get_rotation_schedule", SQ_ARGS(SQ_ID(id)), read_schedule, out);
}

static int
read_rotation(sqlite3_stmt *st, void *out)
{
	struct store_rotation *rot = out;
	uint64_t version, kind;

	if (sq_col_uint(st, 0, UINT32_MAX, &version) != 0 ||
	    sq_col_uint(st, 1, ROTATION_BUDGET, &kind) != 0) {
		return KMS_EINTERNAL;
	}
	rot->version = (uint32_t)version;
	rot->kind = (int)kind;
	rot->rotation_ms = sqlite3_column_int64(st, 2);
	return 0;
}

int
sq_list_rotations(store *sto, const uint8_t id[16], uint32_t after,
    size_t max, struct store_rotation *out, size_t *n, int *more)
{
	struct sq_rows rows = { .arr = out, .size = sizeof(*out), .max = max };
	int r;

	KMS_ASSERT(id != NULL && n != NULL && more != NULL &&
	    max <= STORE_LIST_MAX);
	if ((r = sq_collect_sql(to_sqlite(sto), "SELECT version, kind, "
	    "rotation_ms FROM rotations WHERE key_id = ?1 AND version > ?2 "
	    "ORDER BY version LIMIT ?3", "list_rotations", SQ_ARGS(SQ_ID(id),
	    SQ_INT(after), SQ_INT(max + 1)), &rows, read_rotation)) == 0) {
		*n = rows.n;
		*more = rows.more;
	}
	return r;
}

int
sq_count_rotations(store *sto, const uint8_t id[16], int kind, size_t *n)
{
	uint64_t u = 0;
	int r;

	KMS_ASSERT(id != NULL && n != NULL);
	if ((r = sq_get_sql(to_sqlite(sto), "SELECT count(*) FROM rotations "
	    "WHERE key_id = ?1 AND kind = ?2", "count_rotations",
	    SQ_ARGS(SQ_ID(id), SQ_INT(kind)), sq_read_count, &u)) == 0) {
		*n = (size_t)u;
	}
	return r;
}

/* Up to max key ids from a query whose arguments a end with its LIMIT. */
static int
due_ids(struct sqlite_store *s, const char *sql, const struct sq_arg *a,
    size_t max, uint8_t (*ids)[16], size_t *n, const char *op)
{
	struct sq_rows rows = { .arr = ids, .size = sizeof(*ids), .max = max };
	int r;

	KMS_ASSERT(ids != NULL && n != NULL && max <= STORE_LIST_MAX);
	if ((r = sq_collect_sql(s, sql, op, a, &rows, sq_read_id)) == 0) {
		*n = rows.n;
	}
	return r;
}

int
sq_due_rotations(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	return due_ids(to_sqlite(sto), "SELECT r.key_id FROM "
	    "rotation_schedules r JOIN keys k ON k.id = r.key_id WHERE "
	    "k.state = ?1 AND r.next_ms <= ?2 ORDER BY r.next_ms LIMIT ?3",
	    SQ_ARGS(SQ_INT(KEY_ENABLED), SQ_INT(now), SQ_INT(max)), max, ids,
	    n, "due_rotations");
}

int
sq_due_deletions(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	return due_ids(to_sqlite(sto), "SELECT id FROM keys WHERE state = ?1 "
	    "AND deletion_ms <= ?2 ORDER BY deletion_ms LIMIT ?3",
	    SQ_ARGS(SQ_INT(KEY_PENDING_DELETION), SQ_INT(now), SQ_INT(max)),
	    max, ids, n, "due_deletions");
}

/* ---- leases ---- */

int
sq_claim_lease(store *sto, const char *name, const char *holder,
    int64_t now, int64_t ttl_ms)
{
	int r, changes = 0;

	KMS_ASSERT(name != NULL && holder != NULL);
	/* One statement: it takes the lease only where it is free, has
	 * expired, or is already the holder's. */
	if ((r = sq_write_sql(to_sqlite(sto), "INSERT INTO leases (name, "
	    "holder, since_ms, expires_ms) VALUES (?1, ?2, ?3, ?3 + ?4) "
	    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
	    "since_ms = CASE WHEN leases.holder = excluded.holder THEN "
	    "leases.since_ms ELSE excluded.since_ms END, expires_ms = "
	    "excluded.expires_ms WHERE leases.expires_ms <= ?3 OR "
	    "leases.holder = ?2", "claim_lease", SQ_ARGS(SQ_TEXT(name),
	    SQ_TEXT(holder), SQ_INT(now), SQ_INT(ttl_ms)), &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ECONFLICT : 0;
}

int
sq_release_lease(store *sto, const char *name, const char *holder)
{
	KMS_ASSERT(name != NULL && holder != NULL);
	return sq_write_sql(to_sqlite(sto), "DELETE FROM leases WHERE "
	    "name = ?1 AND holder = ?2", "release_lease",
	    SQ_ARGS(SQ_TEXT(name), SQ_TEXT(holder)), NULL);
}

struct lease_row {
	char *holder;			/* STORE_LEASE_HOLDER_MAX */
	int64_t since_ms;
};

static int
read_lease(sqlite3_stmt *st, void *out)
{
	struct lease_row *l = out;

	if (sq_col_text(st, 0, l->holder, STORE_LEASE_HOLDER_MAX) != 0) {
		return KMS_EINTERNAL;
	}
	l->since_ms = sqlite3_column_int64(st, 1);
	return 0;
}

int
sq_get_lease(store *sto, const char *name, int64_t now,
    char holder[STORE_LEASE_HOLDER_MAX], int64_t *since_ms)
{
	struct lease_row row = { holder, 0 };
	int r;

	KMS_ASSERT(name != NULL && holder != NULL && since_ms != NULL);
	if ((r = sq_get_sql(to_sqlite(sto), "SELECT holder, since_ms FROM "
	    "leases WHERE name = ?1 AND expires_ms > ?2", "get_lease",
	    SQ_ARGS(SQ_TEXT(name), SQ_INT(now)), read_lease, &row)) == 0) {
		*since_ms = row.since_ms;
	}
	return r;
}

/* ---- deletion ---- */

int
sq_shred_key(store *sto, const uint8_t id[16])
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "shred_key";
	int r, changes;

	KMS_ASSERT(id != NULL);
	if ((r = sq_writer_lock(s, op)) != 0) {
		return r;
	}
	/* Versions (the wrapped material), tags, aliases, policy, grants,
	 * rotations go by ON DELETE CASCADE in this one statement, and
	 * secure_delete overwrites their bytes in the pages they leave. */
	if ((r = sq_exec(s, s->st[ST_KEY_DELETE], op,
	    SQ_ARGS(SQ_ID(id)))) == 0) {
		changes = sqlite3_changes(s->db);
		sq_shred_wal_locked(s);
		r = changes == 0 ? KMS_ENOTFOUND : 0;
	}
	sq_writer_unlock(s);
	return r;
}

/* ---- imported key material ---- */

#define TOKEN_COLS "token_hash, key_id, wrapping_key_id, algorithm, " \
	"expires_ms"

static int
read_token(sqlite3_stmt *st, void *out)
{
	struct store_import_token *t = out;

	memset(t, 0, sizeof(*t));
	if (sq_col_fixed(st, 0, t->hash, sizeof(t->hash)) != 0 ||
	    sq_col_id(st, 1, t->key_id) != 0 ||
	    sq_col_blob(st, 2, t->wrapping_key_id, sizeof(t->wrapping_key_id),
	    &t->wrapping_key_id_len) != 0 ||
	    sq_col_text(st, 3, t->algorithm, sizeof(t->algorithm)) != 0) {
		return KMS_EINTERNAL;
	}
	t->expires_ms = sqlite3_column_int64(st, 4);
	return 0;
}

int
sq_put_import_token(store *sto, const struct store_import_token *t)
{
	KMS_ASSERT(t != NULL);
	return sq_write_sql(to_sqlite(sto), "INSERT INTO import_tokens ("
	    TOKEN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)", "put_import_token",
	    SQ_ARGS(SQ_BLOB(t->hash, 32), SQ_ID(t->key_id),
	    SQ_BLOB(t->wrapping_key_id, t->wrapping_key_id_len),
	    SQ_TEXT(t->algorithm), SQ_INT(t->expires_ms)), NULL);
}

int
sq_get_import_token(store *sto, const uint8_t hash[32],
    struct store_import_token *out)
{
	KMS_ASSERT(hash != NULL && out != NULL);
	return sq_get_sql(to_sqlite(sto), "SELECT " TOKEN_COLS " FROM "
	    "import_tokens WHERE token_hash = ?1", "get_import_token",
	    SQ_ARGS(SQ_BLOB(hash, 32)), read_token, out);
}

int
sq_delete_import_token(store *sto, const uint8_t hash[32])
{
	KMS_ASSERT(hash != NULL);
	/* The row stays, without its key, so that the token is known to
	 * have expired (ExpiredImportTokenException, not Invalid). */
	return sq_write_sql(to_sqlite(sto), "UPDATE import_tokens SET "
	    "wrapping_key_id = X'' WHERE token_hash = ?1",
	    "delete_import_token", SQ_ARGS(SQ_BLOB(hash, 32)), NULL);
}

int
sq_due_import_tokens(store *sto, int64_t now, size_t max,
    struct store_import_token *out, size_t *n)
{
	struct sq_rows rows = { .arr = out, .size = sizeof(*out), .max = max };
	int r;

	KMS_ASSERT(out != NULL && n != NULL && max <= STORE_LIST_MAX);
	if ((r = sq_collect_sql(to_sqlite(sto), "SELECT " TOKEN_COLS " FROM "
	    "import_tokens WHERE expires_ms <= ?1 AND "
	    "length(wrapping_key_id) > 0 ORDER BY expires_ms LIMIT ?2",
	    "due_import_tokens", SQ_ARGS(SQ_INT(now), SQ_INT(max)), &rows,
	    read_token)) == 0) {
		*n = rows.n;
	}
	return r;
}

/* ?1 key id, ?2 check value, ?3 expires, ?4 valid_to_ms. */
#define IMPORT_ARGS(id, im) SQ_ARGS(SQ_ID(id), SQ_BLOB((im)->kcv, 16), \
	SQ_INT((im)->expires != 0), SQ_INT((im)->valid_to_ms))

int
sq_import_material(store *sto, const struct store_version *v,
    const struct store_import *im, uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "import_material";
	sqlite3_stmt *up = NULL, *imp = NULL;
	uint64_t rv = 0;
	int r;

	KMS_ASSERT(v != NULL && im != NULL);
	if ((r = sq_prep(s, "UPDATE keys SET state = ?3, current_version = "
	    "?2, row_version = row_version + 1 WHERE id = ?1 "
	    "RETURNING row_version", &up, op)) != 0 ||
	    (r = sq_prep(s, "INSERT INTO imported_material (key_id, kcv, "
	    "expires, valid_to_ms, present) VALUES (?1, ?2, ?3, ?4, 1) "
	    "ON CONFLICT (key_id) DO UPDATE SET kcv = excluded.kcv, "
	    "expires = excluded.expires, valid_to_ms = excluded.valid_to_ms, "
	    "present = 1", &imp, op)) != 0 ||
	    (r = sq_tx_begin(s, op)) != 0) {
		goto done;
	}
	if ((r = sq_insert_version(s, v, op)) == 0 &&
	    (r = sq_returning(s, up, op, SQ_ARGS(SQ_ID(v->key_id),
	    SQ_INT(v->version), SQ_INT(KEY_ENABLED)), &rv)) == 0) {
		r = sq_exec(s, imp, op, IMPORT_ARGS(v->key_id, im));
	}
	r = sq_tx_end(s, op, r);
 done:
	sqlite3_finalize(up);
	sqlite3_finalize(imp);
	if (r == 0 && row_version != NULL) {
		*row_version = rv;
	}
	return r;
}

int
sq_set_import_expiry(store *sto, const uint8_t id[16],
    const struct store_import *im)
{
	int r, changes = 0;

	KMS_ASSERT(id != NULL && im != NULL);
	if ((r = sq_write_sql(to_sqlite(sto), "UPDATE imported_material SET "
	    "expires = ?3, valid_to_ms = ?4 WHERE key_id = ?1 AND kcv = ?2",
	    "set_import_expiry", IMPORT_ARGS(id, im), &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

static int
read_import(sqlite3_stmt *st, void *out)
{
	struct store_import *im = out;

	if (sq_col_fixed(st, 0, im->kcv, sizeof(im->kcv)) != 0) {
		return KMS_EINTERNAL;
	}
	im->expires = sqlite3_column_int(st, 1) != 0;
	im->valid_to_ms = sqlite3_column_int64(st, 2);
	im->present = sqlite3_column_int(st, 3) != 0;
	if (sq_col_uint(st, 4, INT64_MAX, &im->enc_reserved) != 0) {
		return KMS_EINTERNAL;
	}
	return 0;
}

int
sq_get_import(store *sto, const uint8_t id[16], struct store_import *out)
{
	KMS_ASSERT(id != NULL && out != NULL);
	return sq_get_sql(to_sqlite(sto), "SELECT kcv, expires, valid_to_ms, "
	    "present, enc_reserved FROM imported_material WHERE key_id = ?1",
	    "get_import", SQ_ARGS(SQ_ID(id)), read_import, out);
}

int
sq_delete_material(store *sto, const uint8_t id[16], uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_material";
	sqlite3_stmt *dv = NULL, *up = NULL, *imp = NULL;
	uint64_t rv = 0;
	int r;

	KMS_ASSERT(id != NULL);
	if ((r = sq_prep(s, "DELETE FROM versions WHERE key_id = ?1", &dv,
	    op)) != 0 || (r = sq_prep(s, "UPDATE keys SET state = ?2, "
	    "current_version = 0, row_version = row_version + 1 "
	    "WHERE id = ?1 RETURNING row_version", &up, op)) != 0 ||
	    (r = sq_prep(s, "UPDATE imported_material SET present = 0, "
	    "enc_reserved = max(enc_reserved, (SELECT coalesce("
	    "max(enc_reserved), 0) FROM versions WHERE key_id = ?1)) "
	    "WHERE key_id = ?1", &imp, op)) != 0 ||
	    (r = sq_tx_begin(s, op)) != 0) {
		goto done;
	}
	/* The reservation is kept before the versions go. */
	if ((r = sq_exec(s, imp, op, SQ_ARGS(SQ_ID(id)))) != 0 ||
	    (r = sq_exec(s, dv, op, SQ_ARGS(SQ_ID(id)))) != 0 ||
	    (r = sq_returning(s, up, op, SQ_ARGS(SQ_ID(id),
	    SQ_INT(KEY_PENDING_IMPORT)), &rv)) != 0 ||
	    (r = sq_step_done(s, s->st[ST_COMMIT], op)) != 0) {
		sq_tx_rollback(s, op);
		goto done;
	}
	/* As for a shred: the erased material out of the WAL too, before
	 * the next writer's turn. */
	sq_shred_wal_locked(s);
	sq_writer_unlock(s);
 done:
	sqlite3_finalize(dv);
	sqlite3_finalize(up);
	sqlite3_finalize(imp);
	if (r == 0 && row_version != NULL) {
		*row_version = rv;
	}
	return r;
}

int
sq_due_expirations(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	return due_ids(to_sqlite(sto), "SELECT key_id FROM imported_material "
	    "WHERE present = 1 AND expires = 1 AND valid_to_ms <= ?1 "
	    "ORDER BY valid_to_ms LIMIT ?2", SQ_ARGS(SQ_INT(now), SQ_INT(max)),
	    max, ids, n, "due_expirations");
}

/* ---- domain-key rotation ---- */

#define DR_COLS "state, cursor_key, cursor_version, done, total, " \
	"started_ms, finished_ms, requested_by"

#define DR_UPSERT "INSERT INTO domain_rotation (id, " DR_COLS ") VALUES " \
	"(1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO UPDATE SET " \
	"state = excluded.state, cursor_key = excluded.cursor_key, " \
	"cursor_version = excluded.cursor_version, done = excluded.done, " \
	"total = excluded.total, started_ms = excluded.started_ms, " \
	"finished_ms = excluded.finished_ms, " \
	"requested_by = excluded.requested_by"

/* DR_UPSERT's arguments. */
#define DR_ARGS(d) SQ_ARGS(SQ_INT((d)->state), SQ_ID((d)->cursor_key), \
	SQ_INT((d)->cursor_version), SQ_INT((d)->done), SQ_INT((d)->total), \
	SQ_INT((d)->started_ms), SQ_INT((d)->finished_ms), \
	SQ_TEXT((d)->requested_by))

static int
read_domain_rotation(sqlite3_stmt *st, void *out)
{
	struct store_domain_rotation *d = out;
	uint64_t state, version;

	if (sq_col_uint(st, 0, DOMAIN_ROTATION_DONE, &state) != 0 ||
	    sq_col_id(st, 1, d->cursor_key) != 0 ||
	    sq_col_uint(st, 2, UINT32_MAX, &version) != 0 ||
	    sq_col_uint(st, 3, INT64_MAX, &d->done) != 0 ||
	    sq_col_uint(st, 4, INT64_MAX, &d->total) != 0 ||
	    sq_col_text(st, 7, d->requested_by,
	    sizeof(d->requested_by)) != 0) {
		return KMS_EINTERNAL;
	}
	d->state = (int)state;
	d->cursor_version = (uint32_t)version;
	d->started_ms = sqlite3_column_int64(st, 5);
	d->finished_ms = sqlite3_column_int64(st, 6);
	return 0;
}

int
sq_get_domain_rotation(store *sto, struct store_domain_rotation *out)
{
	KMS_ASSERT(out != NULL);
	memset(out, 0, sizeof(*out));
	return sq_get_sql(to_sqlite(sto), "SELECT " DR_COLS " FROM "
	    "domain_rotation WHERE id = 1", "get_domain_rotation", NULL,
	    read_domain_rotation, out);
}

int
sq_put_domain_rotation(store *sto, const struct store_domain_rotation *d)
{
	KMS_ASSERT(d != NULL);
	return sq_write_sql(to_sqlite(sto), DR_UPSERT, "put_domain_rotation",
	    DR_ARGS(d), NULL);
}

int
sq_next_wrapped_versions(store *sto, const struct store_domain_rotation *d,
    size_t max, struct store_version *out, size_t *n)
{
	struct sq_rows rows = { .arr = out, .size = sizeof(*out), .max = max };
	int r;

	KMS_ASSERT(d != NULL && out != NULL && n != NULL &&
	    max <= STORE_LIST_MAX);
	if ((r = sq_collect_sql(to_sqlite(sto), "SELECT " VERSION_COLS
	    " FROM versions WHERE resident = 0 AND (key_id, version) > "
	    "(?1, ?2) ORDER BY key_id, version LIMIT ?3",
	    "next_wrapped_versions", SQ_ARGS(SQ_ID(d->cursor_key),
	    SQ_INT(d->cursor_version), SQ_INT(max)), &rows,
	    sq_read_version)) == 0) {
		*n = rows.n;
	}
	return r;
}

/* 0 on error (logged): the count is informational. */
uint64_t
sq_count_wrapped_versions(store *sto)
{
	uint64_t n = 0;

	if (sq_get_sql(to_sqlite(sto), "SELECT count(*) FROM versions WHERE "
	    "resident = 0", "count_wrapped_versions", NULL, sq_read_count,
	    &n) != 0) {
		n = 0;
	}
	return n;
}

int
sq_rewrap_versions(store *sto, const struct store_version *v, size_t n,
    const struct store_domain_rotation *d)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "rewrap_versions";
	sqlite3_stmt *up = NULL, *dr = NULL;
	size_t i;
	int r;

	KMS_ASSERT((n == 0 || v != NULL) && d != NULL);
	if ((r = sq_prep(s, "UPDATE versions SET material = ?3 WHERE "
	    "key_id = ?1 AND version = ?2 AND resident = 0", &up, op)) != 0 ||
	    (r = sq_prep(s, DR_UPSERT, &dr, op)) != 0 ||
	    (r = sq_tx_begin(s, op)) != 0) {
		goto done;
	}
	for (i = 0; i < n && r == 0; i++) {
		KMS_ASSERT(v[i].material_len <= STORE_MATERIAL_MAX);
		r = sq_exec(s, up, op, SQ_ARGS(SQ_ID(v[i].key_id),
		    SQ_INT(v[i].version), SQ_BLOB(v[i].material,
		    v[i].material_len)));
	}
	if (r == 0) {
		r = sq_exec(s, dr, op, DR_ARGS(d));
	}
	r = sq_tx_end(s, op, r);
 done:
	sqlite3_finalize(up);
	sqlite3_finalize(dr);
	return r;
}
