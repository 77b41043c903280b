/*
 * sqlite_lifecycle.c — the key's life in the SQLite store: rotations and
 * their schedules, deletion and crypto-shredding, leases, imported key
 * material and import tokens, the domain-key rotation (store.h;
 * store_sqlite.c for the schema, the writer turn and transactions).
 * These are cold paths: statements are prepared per call.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/cause.h"
#include "common/err.h"
#include "common/log.h"
#include "kmsd/store/sqlite_int.h"

/* ---- the key's life (cold paths: statements prepared per call) ---- */

int
sq_rotate_key(store *sto, const struct store_version *v, int kind,
    uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "rotate_key";
	sqlite3_stmt *up = NULL, *hist = NULL, *sched = NULL;
	uint64_t rv = 0;
	int rc, r;

	if (v == NULL || sq_check_version(v) != 0 || kind < ROTATION_AUTOMATIC ||
	    kind > ROTATION_BUDGET) {
		return KMS_EINVAL;
	}
	if ((r = sq_prep(s, "UPDATE keys SET current_version = ?2, "
	    "row_version = row_version + 1 WHERE id = ?1 "
	    "RETURNING row_version", &up, op)) != 0 ||
	    (r = sq_prep(s, "INSERT INTO rotations (key_id, version, kind, "
	    "rotation_ms) VALUES (?1, ?2, ?3, ?4)", &hist, op)) != 0 ||
	    (r = sq_prep(s, "UPDATE rotation_schedules SET base_ms = ?2, "
	    "next_ms = ?2 + period_days * 86400000 WHERE key_id = ?1",
	    &sched, op)) != 0) {
		goto done;
	}
	if ((r = sq_tx_begin(s, op)) != 0) {
		goto done;
	}
	if ((r = sq_insert_version(s, v, op)) != 0) {
		goto out;
	}
	if ((rc = sq_bind_id(up, 1, v->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(up, 2, v->version)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
		goto out;
	}
	if (sq_col_uint(up, 0, INT64_MAX, &rv) != 0) {
		r = sq_corrupt(op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((rc = sq_bind_id(hist, 1, v->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(hist, 2, v->version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(hist, 3, kind)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(hist, 4, v->creation_ms)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, hist, op)) != 0) {
		goto out;
	}
	if (kind == ROTATION_AUTOMATIC) {
		if ((rc = sq_bind_id(sched, 1, v->key_id)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(sched, 2, v->creation_ms)) !=
		    SQLITE_OK) {
			r = sq_map_err(s, rc, op);
			goto out;
		}
		if ((r = sq_step_done(s, sched, op)) != 0) {
			goto out;
		}
	}
	r = sq_tx_commit(s, op);
 out:
	if (r != 0) {
		sq_tx_rollback(s, op);
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

int
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
		r = sq_prep(s, "DELETE FROM rotation_schedules WHERE key_id = ?1",
		    &st, op);
	} else {
		r = sq_prep(s, "INSERT INTO rotation_schedules (key_id, "
		    "period_days, base_ms, next_ms) VALUES (?1, ?2, ?3, ?4) "
		    "ON CONFLICT (key_id) DO UPDATE SET period_days = "
		    "excluded.period_days, base_ms = excluded.base_ms, "
		    "next_ms = excluded.next_ms", &st, op);
	}
	if (r != 0) {
		return r;
	}
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
	    (rs != NULL && ((rc = sqlite3_bind_int64(st, 2,
	    rs->period_days)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, rs->base_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, rs->next_ms)) != SQLITE_OK))) {
		r = sq_map_err(s, rc, op);
	} else {
		r = sq_step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "SELECT period_days, base_ms, next_ms FROM "
	    "rotation_schedules WHERE key_id = ?1", &st, op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
	} else if (sq_col_uint(st, 0, UINT32_MAX, &u) != 0) {
		r = sq_corrupt(op);
	} else {
		out->period_days = (uint32_t)u;
		out->base_ms = sqlite3_column_int64(st, 1);
		out->next_ms = sqlite3_column_int64(st, 2);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "SELECT version, kind, rotation_ms FROM rotations "
	    "WHERE key_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
	    &st, op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, after)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)max + 1)) !=
	    SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (got == max) {
			extra = 1;
			continue;
		}
		if (sq_col_uint(st, 0, UINT32_MAX, &u) != 0) {
			r = sq_corrupt(op);
			goto out;
		}
		out[got].version = (uint32_t)u;
		if (sq_col_uint(st, 1, ROTATION_BUDGET, &u) != 0) {
			r = sq_corrupt(op);
			goto out;
		}
		out[got].kind = (int)u;
		out[got].rotation_ms = sqlite3_column_int64(st, 2);
		got++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	*n = got;
	*more = extra;
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "SELECT count(*) FROM rotations WHERE key_id = ?1 "
	    "AND kind = ?2", &st, op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 2, kind)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = sq_map_err(s, rc, op);
	} else if (sq_col_uint(st, 0, INT64_MAX, &u) != 0) {
		r = sq_corrupt(op);
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
	if ((r = sq_prep(s, sql, &st, op)) != 0) {
		return r;
	}
	if ((rc = sqlite3_bind_int64(st, 1, now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)max)) !=
	    SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sq_col_id(st, 0, ids[got]) != 0) {
			r = sq_corrupt(op);
			goto out;
		}
		got++;
	}
	if (got < max && rc != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	*n = got;
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

int
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

int
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

int
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
	if ((r = sq_prep(s, "INSERT INTO leases (name, holder, since_ms, "
	    "expires_ms) VALUES (?1, ?2, ?3, ?3 + ?4) ON CONFLICT (name) "
	    "DO UPDATE SET holder = excluded.holder, since_ms = CASE WHEN "
	    "leases.holder = excluded.holder THEN leases.since_ms ELSE "
	    "excluded.since_ms END, expires_ms = excluded.expires_ms "
	    "WHERE leases.expires_ms <= ?3 OR leases.holder = ?2", &st,
	    op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_text(st, 1, name)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 2, holder)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, ttl_ms)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else if ((r = sq_step_write(s, st, op, &changes)) == 0 &&
	    changes == 0) {
		r = KMS_ECONFLICT;
	}
	sqlite3_finalize(st);
	return r;
}

int
sq_release_lease(store *sto, const char *name, const char *holder)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "release_lease";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (!lease_args_ok(name, holder)) {
		return KMS_EINVAL;
	}
	if ((r = sq_prep(s, "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
	    &st, op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_text(st, 1, name)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 2, holder)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else {
		r = sq_step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "SELECT holder, since_ms FROM leases WHERE "
	    "name = ?1 AND expires_ms > ?2", &st, op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_text(st, 1, name)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, now)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
	} else if (sq_col_text(st, 0, holder, STORE_LEASE_HOLDER_MAX) != 0) {
		r = sq_corrupt(op);
	} else {
		*since_ms = sqlite3_column_int64(st, 1);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

int
sq_shred_key(store *sto, const uint8_t id[16])
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "shred_key";
	sqlite3_stmt *st = s->st[ST_KEY_DELETE];
	int rc = SQLITE_OK, r, changes, tries;

	if (id == NULL) {
		return KMS_EINVAL;
	}
	if ((r = sq_writer_lock(s, op)) != 0) {
		return r;
	}
	/* Versions (the wrapped material), tags, aliases, policy, grants,
	 * rotations go by ON DELETE CASCADE in this one statement, and
	 * secure_delete overwrites their bytes in the pages they leave. */
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		sq_finish(st);
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, st, op)) != 0) {
		goto out;
	}
	changes = sqlite3_changes(s->db);
	/* The WAL still holds the old pages (and the frames that first
	 * wrote the material): copy the zeroed pages into the database
	 * and cut the WAL to nothing.  Other connections' read
	 * transactions are short; wait them out, a little. */
	atomic_store(&sq_truncate_due, 1);
	for (tries = 0; tries < SHRED_CHECKPOINT_TRIES; tries++) {
		if ((rc = sq_truncate_wal(s, 100)) == SQLITE_OK ||
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
	sq_writer_unlock(s);
	return r;
}

/* ---- imported key material ---- */

static int
bind_token(sqlite3_stmt *st, const struct store_import_token *t)
{
	int rc;

	if ((rc = sqlite3_bind_blob(st, 1, t->hash, 32, SQLITE_STATIC)) !=
	    SQLITE_OK || (rc = sq_bind_id(st, 2, t->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 3, t->wrapping_key_id,
	    (int)t->wrapping_key_id_len, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 4, t->algorithm)) != SQLITE_OK ||
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
	    sq_col_id(st, 1, t->key_id) != 0) {
		return KMS_EINTERNAL;
	}
	memcpy(t->hash, p, 32);
	p = sqlite3_column_blob(st, 2);
	n = sqlite3_column_bytes(st, 2);
	if (n < 0 || (n > 0 && p == NULL) ||
	    (size_t)n > sizeof(t->wrapping_key_id) ||
	    sq_col_text(st, 3, t->algorithm, sizeof(t->algorithm)) != 0) {
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

int
sq_put_import_token(store *sto, const struct store_import_token *t)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "put_import_token";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (t == NULL || t->wrapping_key_id_len == 0 ||
	    t->wrapping_key_id_len > sizeof(t->wrapping_key_id) ||
	    !sq_field_ok(t->algorithm, sizeof(t->algorithm))) {
		return KMS_EINVAL;
	}
	if ((r = sq_prep(s, "INSERT INTO import_tokens (" TOKEN_COLS ") "
	    "VALUES (?1, ?2, ?3, ?4, ?5)", &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_token(st, t)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else {
		r = sq_step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "SELECT " TOKEN_COLS " FROM import_tokens WHERE "
	    "token_hash = ?1", &st, op)) != 0) {
		return r;
	}
	if ((rc = sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC)) !=
	    SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
	} else {
		r = read_token(st, out) != 0 ? sq_corrupt(op) : 0;
	}
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "UPDATE import_tokens SET wrapping_key_id = X'' "
	    "WHERE token_hash = ?1", &st, op)) != 0) {
		return r;
	}
	if ((rc = sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC)) !=
	    SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else {
		r = sq_step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "SELECT " TOKEN_COLS " FROM import_tokens WHERE "
	    "expires_ms <= ?1 AND length(wrapping_key_id) > 0 "
	    "ORDER BY expires_ms LIMIT ?2", &st, op)) != 0) {
		return r;
	}
	if ((rc = sqlite3_bind_int64(st, 1, now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)max)) !=
	    SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (read_token(st, &out[got]) != 0) {
			r = sq_corrupt(op);
			goto out;
		}
		got++;
	}
	if (got < max && rc != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
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

	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 2, im->kcv, 16, SQLITE_STATIC)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 3, im->expires != 0)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, im->valid_to_ms)) != SQLITE_OK) {
		return rc;
	}
	return SQLITE_OK;
}

int
sq_import_material(store *sto, const struct store_version *v,
    const struct store_import *im, uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "import_material";
	sqlite3_stmt *up = NULL, *imp = NULL;
	uint64_t rv = 0;
	char sql[256];
	int rc, r;

	if (v == NULL || im == NULL || sq_check_version(v) != 0) {
		return KMS_EINVAL;
	}
	snprintf(sql, sizeof(sql), "UPDATE keys SET state = %d, "
	    "current_version = ?2, row_version = row_version + 1 "
	    "WHERE id = ?1 RETURNING row_version", KEY_ENABLED);
	if ((r = sq_prep(s, sql, &up, op)) != 0 ||
	    (r = sq_prep(s, "INSERT INTO imported_material (key_id, kcv, "
	    "expires, valid_to_ms, present) VALUES (?1, ?2, ?3, ?4, 1) "
	    "ON CONFLICT (key_id) DO UPDATE SET kcv = excluded.kcv, "
	    "expires = excluded.expires, valid_to_ms = excluded.valid_to_ms, "
	    "present = 1", &imp, op)) != 0) {
		goto done;
	}
	if ((r = sq_tx_begin(s, op)) != 0) {
		goto done;
	}
	if ((r = sq_insert_version(s, v, op)) != 0) {
		goto out;
	}
	if ((rc = sq_bind_id(up, 1, v->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(up, 2, v->version)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
		goto out;
	}
	if (sq_col_uint(up, 0, INT64_MAX, &rv) != 0) {
		r = sq_corrupt(op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((rc = bind_import(imp, v->key_id, im)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, imp, op)) != 0) {
		goto out;
	}
	r = sq_tx_commit(s, op);
 out:
	if (r != 0) {
		sq_tx_rollback(s, op);
	}
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
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "set_import_expiry";
	sqlite3_stmt *st = NULL;
	int rc, r, changes = 0;

	if (id == NULL || im == NULL) {
		return KMS_EINVAL;
	}
	if ((r = sq_prep(s, "UPDATE imported_material SET expires = ?3, "
	    "valid_to_ms = ?4 WHERE key_id = ?1 AND kcv = ?2", &st,
	    op)) != 0) {
		return r;
	}
	if ((rc = bind_import(st, id, im)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else if ((r = sq_step_write(s, st, op, &changes)) == 0 &&
	    changes == 0) {
		r = KMS_ENOTFOUND;
	}
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "SELECT kcv, expires, valid_to_ms, present FROM "
	    "imported_material WHERE key_id = ?1", &st, op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
	} else if ((p = sqlite3_column_blob(st, 0)) == NULL ||
	    sqlite3_column_bytes(st, 0) != 16) {
		r = sq_corrupt(op);
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

int
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
	if ((r = sq_prep(s, "DELETE FROM versions WHERE key_id = ?1", &dv,
	    op)) != 0 || (r = sq_prep(s, sql, &up, op)) != 0 ||
	    (r = sq_prep(s, "UPDATE imported_material SET present = 0 WHERE "
	    "key_id = ?1", &imp, op)) != 0) {
		goto done;
	}
	if ((r = sq_tx_begin(s, op)) != 0) {
		goto done;
	}
	if ((rc = sq_bind_id(dv, 1, id)) != SQLITE_OK ||
	    (rc = sq_bind_id(up, 1, id)) != SQLITE_OK ||
	    (rc = sq_bind_id(imp, 1, id)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, dv, op)) != 0 ||
	    (r = sq_step_done(s, imp, op)) != 0) {
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
		goto out;
	}
	if (sq_col_uint(up, 0, INT64_MAX, &rv) != 0) {
		r = sq_corrupt(op);
		goto out;
	}
	if ((rc = sqlite3_step(up)) != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, s->st[ST_COMMIT], op)) != 0) {
		goto out;
	}
	/* As for a shred: the erased material out of the WAL too. */
	atomic_store(&sq_truncate_due, 1);
	for (tries = 0; tries < SHRED_CHECKPOINT_TRIES; tries++) {
		if ((rc = sq_truncate_wal(s, 100)) == SQLITE_OK ||
		    ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) !=
		    SQLITE_LOCKED)) {
			break;
		}
	}
	sq_writer_unlock(s);
	goto done;
 out:
	sq_tx_rollback(s, op);
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
	    "ORDER BY valid_to_ms LIMIT ?2", now, max, ids, n,
	    "due_expirations");
}

/* ---- domain-key rotation ---- */

#define DR_COLS "state, cursor_key, cursor_version, done, total, " \
	"started_ms, finished_ms, requested_by"

int
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
	if ((r = sq_prep(s, "SELECT " DR_COLS " FROM domain_rotation WHERE "
	    "id = 1", &st, op)) != 0) {
		return r;
	}
	memset(out, 0, sizeof(*out));
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
	} else if (sq_col_uint(st, 0, DOMAIN_ROTATION_DONE, &u) != 0 ||
	    sq_col_id(st, 1, out->cursor_key) != 0) {
		r = sq_corrupt(op);
	} else {
		out->state = (int)u;
		if (sq_col_uint(st, 2, UINT32_MAX, &u) != 0 ||
		    sq_col_uint(st, 3, INT64_MAX, &out->done) != 0 ||
		    sq_col_uint(st, 4, INT64_MAX, &out->total) != 0 ||
		    sq_col_text(st, 7, out->requested_by,
		    sizeof(out->requested_by)) != 0) {
			r = sq_corrupt(op);
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
	    (rc = sq_bind_id(st, 2, d->cursor_key)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, d->cursor_version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, (sqlite3_int64)d->done)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)d->total)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, d->started_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 7, d->finished_ms)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 8, d->requested_by)) != SQLITE_OK) {
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

int
sq_put_domain_rotation(store *sto, const struct store_domain_rotation *d)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "put_domain_rotation";
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (d == NULL || d->done > INT64_MAX || d->total > INT64_MAX ||
	    !sq_field_ok(d->requested_by, sizeof(d->requested_by))) {
		return KMS_EINVAL;
	}
	if ((r = sq_prep(s, DR_UPSERT, &st, op)) != 0) {
		return r;
	}
	if ((rc = bind_dr(st, d)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
	} else {
		r = sq_step_write(s, st, op, NULL);
	}
	sqlite3_finalize(st);
	return r;
}

int
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
	if ((r = sq_prep(s, "SELECT " VERSION_COLS " FROM versions WHERE "
	    "resident = 0 AND (key_id, version) > (?1, ?2) "
	    "ORDER BY key_id, version LIMIT ?3", &st, op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_id(st, 1, d->cursor_key)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, d->cursor_version)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)max)) !=
	    SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sq_read_version(st, &out[got]) != 0) {
			r = sq_corrupt(op);
			goto out;
		}
		got++;
	}
	if (got < max && rc != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	*n = got;
	r = 0;
 out:
	sqlite3_finalize(st);
	return r;
}

uint64_t
sq_count_wrapped_versions(store *sto)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = NULL;
	uint64_t n = 0;

	if (sq_prep(s, "SELECT count(*) FROM versions WHERE resident = 0", &st,
	    "count_wrapped_versions") != 0) {
		return 0;
	}
	if (sqlite3_step(st) == SQLITE_ROW && sq_col_uint(st, 0, INT64_MAX,
	    &n) != 0) {
		n = 0;
	}
	sqlite3_finalize(st);
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
	int rc, r;

	if ((n > 0 && v == NULL) || d == NULL) {
		return KMS_EINVAL;
	}
	if ((r = sq_prep(s, "UPDATE versions SET material = ?3 WHERE "
	    "key_id = ?1 AND version = ?2 AND resident = 0", &up, op)) != 0 ||
	    (r = sq_prep(s, DR_UPSERT, &dr, op)) != 0) {
		goto done;
	}
	if ((r = sq_tx_begin(s, op)) != 0) {
		goto done;
	}
	for (i = 0; i < n; i++) {
		if (v[i].material_len > STORE_MATERIAL_MAX) {
			r = KMS_EINVAL;
			goto out;
		}
		if ((rc = sq_bind_id(up, 1, v[i].key_id)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(up, 2, v[i].version)) !=
		    SQLITE_OK ||
		    (rc = sqlite3_bind_blob(up, 3, v[i].material,
		    (int)v[i].material_len, SQLITE_STATIC)) != SQLITE_OK) {
			r = sq_map_err(s, rc, op);
			goto out;
		}
		if ((r = sq_step_done(s, up, op)) != 0) {
			goto out;
		}
	}
	if ((rc = bind_dr(dr, d)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, dr, op)) != 0) {
		goto out;
	}
	r = sq_tx_commit(s, op);
 out:
	if (r != 0) {
		sq_tx_rollback(s, op);
	}
 done:
	sqlite3_finalize(up);
	sqlite3_finalize(dr);
	return r;
}
