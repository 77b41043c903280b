/*
 * sqlite_stmt.c — the SQLite back end's statement helpers: errors mapped
 * to the KMS error space, binding, stepping, reading columns into fixed
 * fields, and the argument checks the methods share (store_sqlite.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/cause.h"
#include "common/err.h"
#include "common/log.h"
#include "kmsd/store/sqlite_int.h"

/*
 * Map an SQLite result to the error space.  Expected outcomes (duplicate,
 * missing parent) are not logged; everything else is, with the operation.
 */
int
sq_map_err(struct sqlite_store *s, int rc, const char *op)
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
void
sq_finish(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

/* Step a statement that returns no rows. */
int
sq_step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *op)
{
	int rc, r = 0;

	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
	}
	sq_finish(st);
	return r;
}

int
sq_bind_id(sqlite3_stmt *st, int idx, const uint8_t id[16])
{
	return sqlite3_bind_blob(st, idx, id, 16, SQLITE_STATIC);
}

int
sq_bind_text(sqlite3_stmt *st, int idx, const char *p)
{
	return sqlite3_bind_text(st, idx, p, -1, SQLITE_STATIC);
}

/* A fixed-size string field is valid when it is NUL-terminated in place. */
int
sq_field_ok(const char *p, size_t len)
{
	return strnlen(p, len) < len;
}

int
sq_check_key(const struct store_key *k)
{
	if (k->state < KEY_ENABLED || k->state > KEY_UNAVAILABLE ||
	    !sq_field_ok(k->key_usage, sizeof(k->key_usage)) ||
	    !sq_field_ok(k->key_spec, sizeof(k->key_spec)) ||
	    !sq_field_ok(k->origin, sizeof(k->origin)) ||
	    !sq_field_ok(k->description, sizeof(k->description)) ||
	    !sq_field_ok(k->creator, sizeof(k->creator)) ||
	    k->row_version > INT64_MAX) {
		return KMS_EINVAL;
	}
	return 0;
}

int
sq_check_version(const struct store_version *v)
{
	if (v->version < 1 || v->material_len > STORE_MATERIAL_MAX ||
	    (v->resident != 0 && v->resident != 1) ||
	    v->enc_reserved > INT64_MAX) {
		return KMS_EINVAL;
	}
	return 0;
}

int
sq_check_tag(const struct store_tag *t)
{
	if (!sq_field_ok(t->key, sizeof(t->key)) || t->key[0] == '\0' ||
	    !sq_field_ok(t->value, sizeof(t->value))) {
		return KMS_EINVAL;
	}
	return 0;
}

/* Copy a TEXT column into a fixed field; too long means a sq_corrupt row. */
int
sq_col_text(sqlite3_stmt *st, int col, char *dst, size_t len)
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
int
sq_col_uint(sqlite3_stmt *st, int col, uint64_t max, uint64_t *out)
{
	sqlite3_int64 v = sqlite3_column_int64(st, col);

	if (sqlite3_column_type(st, col) != SQLITE_INTEGER || v < 0 ||
	    (uint64_t)v > max) {
		return KMS_EINTERNAL;
	}
	*out = (uint64_t)v;
	return 0;
}

int
sq_col_id(sqlite3_stmt *st, int col, uint8_t out[16])
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
/* Log a row that does not fit its structure (a sq_corrupt database). */
int
sq_corrupt(const char *op)
{
	log_error("store: %s: malformed row in the database",
	    op);
	cause_note("the key store holds a malformed row");
	return KMS_EINTERNAL;
}
int
sq_grow(void **arr, size_t *cap, size_t used, size_t sz)
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

int
sq_prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **st,
    const char *op)
{
	int rc;

	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL)) != SQLITE_OK) {
		*st = NULL;
		return sq_map_err(s, rc, op);
	}
	return 0;
}
