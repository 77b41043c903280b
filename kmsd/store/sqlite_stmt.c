/*
 * sqlite_stmt.c — the SQLite back end's statement helpers: SQLite's
 * results mapped to the KMS error space, arguments bound from a list, a
 * statement run to its end, one row or many read through a row reader,
 * and columns copied into fixed fields (sqlite_int.h).
 *
 * Every helper that binds leaves the statement reset with its bindings
 * cleared (sq_finish), whatever happens, so that no statement keeps a
 * pointer to its caller's memory.
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

/* Log a row that does not fit its structure (a corrupt database). */
int
sq_corrupt(const char *op)
{
	log_error("store: %s: malformed row in the database",
	    op);
	cause_note("the key store holds a malformed row");
	return KMS_EINTERNAL;
}

/* Reset a statement for its next use and drop pointers to caller memory. */
void
sq_finish(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
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

int
sq_bind(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a)
{
	int i, rc = SQLITE_OK;

	for (i = 0; a != NULL && a[i].type != 0 && rc == SQLITE_OK; i++) {
		switch (a[i].type) {
		case SQLITE_INTEGER:
			rc = sqlite3_bind_int64(st, i + 1, a[i].i);
			break;
		case SQLITE_TEXT:
			rc = sqlite3_bind_text(st, i + 1, a[i].p, -1,
			    SQLITE_STATIC);
			break;
		case SQLITE_BLOB:
			rc = sqlite3_bind_blob(st, i + 1, a[i].p, a[i].len,
			    SQLITE_STATIC);
			break;
		default:
			KMS_ASSERT(!"sq_arg type");
		}
	}
	if (rc != SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, op);
	}
	return 0;
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
sq_exec(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a)
{
	int r;

	if ((r = sq_bind(s, st, op, a)) != 0) {
		return r;
	}
	return sq_step_done(s, st, op);
}

int
sq_write(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, int *changes)
{
	int r;

	if ((r = sq_bind(s, st, op, a)) != 0) {
		return r;
	}
	return sq_step_write(s, st, op, changes);
}

int
sq_update(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a)
{
	int r, changes = 0;

	if ((r = sq_write(s, st, op, a, &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

/* A row reader's answer: KMS_EINTERNAL is a malformed row, logged. */
static int
read_row(sq_read_fn read, sqlite3_stmt *st, void *out, const char *op)
{
	int r;

	if ((r = read(st, out)) == KMS_EINTERNAL) {
		r = sq_corrupt(op);
	}
	return r;
}

int
sq_get(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, sq_read_fn read, void *out)
{
	int rc, r;

	if ((r = sq_bind(s, st, op, a)) != 0) {
		return r;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = read_row(read, st, out, op);
	} else {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
	}
	sq_finish(st);
	return r;
}

/*
 * An UPDATE … RETURNING of one integer: the statement (and the implicit
 * transaction of one outside BEGIN) ends at DONE, so only then is the
 * change made, and only then is *v set.  KMS_ENOTFOUND: no row matched.
 */
int
sq_returning(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, uint64_t *v)
{
	uint64_t u = 0;
	int rc, r;

	if ((r = sq_bind(s, st, op, a)) != 0) {
		return r;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
	} else if (sq_col_uint(st, 0, INT64_MAX, &u) != 0) {
		r = sq_corrupt(op);
	} else if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
	} else {
		*v = u;
	}
	sq_finish(st);
	return r;
}

/* The same for a statement prepared for this one call (cold paths). */

int
sq_write_sql(struct sqlite_store *s, const char *sql, const char *op,
    const struct sq_arg *a, int *changes)
{
	sqlite3_stmt *st;
	int r;

	if ((r = sq_prep(s, sql, &st, op)) == 0) {
		r = sq_write(s, st, op, a, changes);
	}
	sqlite3_finalize(st);
	return r;
}

int
sq_get_sql(struct sqlite_store *s, const char *sql, const char *op,
    const struct sq_arg *a, sq_read_fn read, void *out)
{
	sqlite3_stmt *st;
	int r;

	if ((r = sq_prep(s, sql, &st, op)) == 0) {
		r = sq_get(s, st, op, a, read, out);
	}
	sqlite3_finalize(st);
	return r;
}

int
sq_collect_sql(struct sqlite_store *s, const char *sql, const char *op,
    const struct sq_arg *a, struct sq_rows *rows, sq_read_fn read)
{
	sqlite3_stmt *st;
	int r;

	if ((r = sq_prep(s, sql, &st, op)) == 0) {
		r = sq_collect(s, st, op, a, rows, read);
	}
	sqlite3_finalize(st);
	return r;
}

/* Make room for one more row in a grown array; 0 or KMS_ENOMEM. */
static int
grow(struct sq_rows *rows, size_t *cap)
{
	size_t ncap;
	void *p;

	if (rows->n < *cap) {
		return 0;
	}
	ncap = *cap == 0 ? 4 : *cap * 2;
	if (ncap > SIZE_MAX / rows->size ||
	    (p = realloc(rows->arr, ncap * rows->size)) == NULL) {
		return KMS_ENOMEM;
	}
	rows->arr = p;
	*cap = ncap;
	return 0;
}

int
sq_collect(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, struct sq_rows *rows, sq_read_fn read)
{
	int grown = rows->grow, rc, r;
	size_t cap = grown ? 0 : rows->max;

	rows->n = 0;
	rows->more = 0;
	if ((r = sq_bind(s, st, op, a)) != 0) {
		return r;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (rows->n == rows->max) {
			rows->more = 1;
			continue;
		}
		if ((grown && (r = grow(rows, &cap)) != 0) ||
		    (r = read_row(read, st, (char *)rows->arr +
		    rows->n * rows->size, op)) != 0) {
			goto out;
		}
		rows->n++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	r = 0;
 out:
	sq_finish(st);
	if (r != 0 && grown) {
		free(rows->arr);
		rows->arr = NULL;
		rows->n = 0;
	}
	return r;
}

int
sq_collect_all(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, sq_read_fn read, size_t size, void **out,
    size_t *n)
{
	struct sq_rows rows = { .grow = 1, .size = size, .max = SIZE_MAX };
	int r;

	if ((r = sq_collect(s, st, op, a, &rows, read)) == 0) {
		*out = rows.arr;
		*n = rows.n;
	}
	return r;
}

/* Copy a TEXT column into a fixed field; too long means a corrupt row. */
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

/* A BLOB column of exactly len bytes (NULL out: only checked). */
int
sq_col_fixed(sqlite3_stmt *st, int col, void *out, size_t len)
{
	const void *p = sqlite3_column_blob(st, col);

	if (sqlite3_column_type(st, col) != SQLITE_BLOB || p == NULL ||
	    sqlite3_column_bytes(st, col) != (int)len) {
		return KMS_EINTERNAL;
	}
	memcpy(out, p, len);
	return 0;
}

/* A BLOB column of at most max bytes; *len gets its length. */
int
sq_col_blob(sqlite3_stmt *st, int col, void *out, size_t max, size_t *len)
{
	const void *p = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	if (n < 0 || (size_t)n > max || (n > 0 && p == NULL)) {
		return KMS_EINTERNAL;
	}
	if (n > 0) {
		memcpy(out, p, (size_t)n);
	}
	*len = (size_t)n;
	return 0;
}

int
sq_col_id(sqlite3_stmt *st, int col, uint8_t out[16])
{
	return sq_col_fixed(st, col, out, 16);
}

/* Row readers shared by several files. */

int
sq_read_id(sqlite3_stmt *st, void *out)
{
	return sq_col_id(st, 0, out);
}

int
sq_read_count(sqlite3_stmt *st, void *out)
{
	return sq_col_uint(st, 0, INT64_MAX, out);
}
