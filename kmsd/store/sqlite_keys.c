/*
 * sqlite_keys.c — keys and their versions in the SQLite store (store.h,
 * store_sqlite.c for the schema, the writer turn and transactions).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/cause.h"
#include "common/err.h"
#include "common/log.h"
#include "kmsd/store/sqlite_int.h"

int
sq_read_version(sqlite3_stmt *st, struct store_version *v)
{
	const void *m;
	uint64_t u;
	int n;

	memset(v, 0, sizeof(*v));
	if (sq_col_id(st, 0, v->key_id) != 0 ||
	    sq_col_uint(st, 1, UINT32_MAX, &u) != 0 || u < 1) {
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
	if (sq_col_uint(st, 4, 1, &u) != 0) {
		return KMS_EINTERNAL;
	}
	v->resident = (int)u;
	if (sq_col_uint(st, 5, INT64_MAX, &v->enc_reserved) != 0) {
		return KMS_EINTERNAL;
	}
	return 0;
}

int
sq_insert_version(struct sqlite_store *s, const struct store_version *v,
    const char *op)
{
	sqlite3_stmt *st = s->st[ST_VERSION_INSERT];
	int rc;

	if ((rc = sq_bind_id(st, 1, v->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, v->version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, v->creation_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 4, v->material, (int)v->material_len,
	    SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 5, v->resident)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, (sqlite3_int64)v->enc_reserved)) !=
	    SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, op);
	}
	return sq_step_done(s, st, op);
}

int
sq_create_key(store *sto, const struct store_key *k,
    const struct store_version *v, const struct store_tag *tags,
    size_t ntags)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "create_key";
	sqlite3_stmt *st = s->st[ST_KEY_INSERT];
	size_t i;
	int rc, r;

	if (k == NULL || (ntags > 0 && tags == NULL) || sq_check_key(k) != 0) {
		return KMS_EINVAL;
	}
	if (v != NULL && (sq_check_version(v) != 0 ||
	    memcmp(v->key_id, k->id, 16) != 0)) {
		return KMS_EINVAL;
	}
	for (i = 0; i < ntags; i++) {
		if (sq_check_tag(&tags[i]) != 0) {
			return KMS_EINVAL;
		}
	}
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((rc = sq_bind_id(st, 1, k->id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, k->creation_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 3, k->state)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 4, k->key_usage)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 5, k->key_spec)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 6, k->origin)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 7, k->description)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 8, k->current_version)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 9, k->deletion_ms)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 10, k->creator)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 11, (sqlite3_int64)k->row_version)) !=
	    SQLITE_OK) {
		sq_finish(st);
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, st, op)) != 0) {
		goto out;
	}
	if (v != NULL && (r = sq_insert_version(s, v, op)) != 0) {
		goto out;
	}
	st = s->st[ST_TAG_INSERT];
	for (i = 0; i < ntags; i++) {
		if ((rc = sq_bind_id(st, 1, k->id)) != SQLITE_OK ||
		    (rc = sq_bind_text(st, 2, tags[i].key)) != SQLITE_OK ||
		    (rc = sq_bind_text(st, 3, tags[i].value)) != SQLITE_OK) {
			sq_finish(st);
			r = sq_map_err(s, rc, op);
			goto out;
		}
		if ((r = sq_step_done(s, st, op)) != 0) {
			/* Two tags with one key: the caller's mistake. */
			if (r == KMS_EALREADYEXISTS) {
				r = KMS_EINVAL;
			}
			goto out;
		}
	}
	r = sq_tx_commit(s, op);
 out:
	if (r != 0) {
		sq_tx_rollback(s, op);
	}
	return r;
}

int
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
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
		goto out;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out->id, id, 16);
	out->creation_ms = sqlite3_column_int64(st, 0);
	if (sq_col_uint(st, 1, KEY_UNAVAILABLE, &u) != 0) {
		r = sq_corrupt(op);
		goto out;
	}
	out->state = (int)u;
	if (sq_col_text(st, 2, out->key_usage, sizeof(out->key_usage)) != 0 ||
	    sq_col_text(st, 3, out->key_spec, sizeof(out->key_spec)) != 0 ||
	    sq_col_text(st, 4, out->origin, sizeof(out->origin)) != 0 ||
	    sq_col_text(st, 5, out->description, sizeof(out->description)) != 0 ||
	    sq_col_uint(st, 6, UINT32_MAX, &u) != 0) {
		r = sq_corrupt(op);
		goto out;
	}
	out->current_version = (uint32_t)u;
	out->deletion_ms = sqlite3_column_int64(st, 7);
	if (sq_col_text(st, 8, out->creator, sizeof(out->creator)) != 0 ||
	    sq_col_uint(st, 9, INT64_MAX, &out->row_version) != 0) {
		r = sq_corrupt(op);
		goto out;
	}
	r = 0;
 out:
	sq_finish(st);
	if (r != 0 && out != NULL) {
		/* Never leave a half-filled row behind. */
		memset(out, 0, sizeof(*out));
	}
	return r;
}

int
sq_update_key(store *sto, const struct store_key *k, uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "update_key";
	sqlite3_stmt *st = s->st[ST_KEY_UPDATE];
	uint64_t rv = 0;
	int rc, r = KMS_EINTERNAL;

	if (k == NULL || sq_check_key(k) != 0) {
		return KMS_EINVAL;
	}
	if ((rc = sq_bind_id(st, 1, k->id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 2, k->state)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 3, k->description)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, k->current_version)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 5, k->deletion_ms)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_writer_lock(s, op)) != 0) {
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND : sq_map_err(s, rc, op);
		goto out;
	}
	if (sq_col_uint(st, 0, INT64_MAX, &rv) != 0) {
		r = sq_corrupt(op);
		goto out;
	}
	/* The statement (and its implicit transaction) ends at DONE: only
	 * then is the change committed, so only then is it reported. */
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if (row_version != NULL) {
		*row_version = rv;
	}
	r = 0;
 out:
	sq_finish(st);
	sq_writer_unlock(s);
	return r;
}

int
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
		rc = sq_bind_id(st, 1, after);
	}
	/* One row past the page tells whether more follow. */
	if (rc != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, lim, (sqlite3_int64)max + 1)) !=
	    SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (got == max) {
			extra = 1;
			continue;
		}
		if (sq_col_id(st, 0, ids[got]) != 0) {
			r = sq_corrupt(op);
			goto out;
		}
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
	sq_finish(st);
	return r;
}

int
sq_add_version(store *sto, const struct store_version *v)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "add_version";
	sqlite3_stmt *st = s->st[ST_KEY_BUMP];
	int rc, r;

	if (v == NULL || sq_check_version(v) != 0) {
		return KMS_EINVAL;
	}
	/* A new version is a mutation of its key: bump row_version with it. */
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = sq_insert_version(s, v, op)) != 0) {
		goto out;
	}
	if ((rc = sq_bind_id(st, 1, v->key_id)) != SQLITE_OK) {
		sq_finish(st);
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, st, op)) != 0) {
		goto out;
	}
	r = sq_tx_commit(s, op);
 out:
	if (r != 0) {
		sq_tx_rollback(s, op);
	}
	return r;
}

/* Grow *arr (of *cap elements of size sz) to hold one more; 0 or ENOMEM. */
int
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
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = sq_grow((void **)&arr, &cap, used, sizeof(*arr))) != 0) {
			goto out;
		}
		if (sq_read_version(st, &arr[used]) != 0) {
			r = sq_corrupt(op);
			goto out;
		}
		used++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	*out = arr;
	*n = used;
	arr = NULL;
	r = 0;
 out:
	sq_finish(st);
	free(arr);
	return r;
}

int
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
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)reserved)) !=
	    SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, op);
	}
	if ((r = sq_step_write(s, st, op, &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

/*
 * Pages of STORE_PAGE rows in (key_id, version) order; each page is read
 * and its statement reset before fn sees it, so fn may use this store
 * (the key cache loads keys from inside the walk).
 */
int
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
			if ((rc = sq_bind_id(st, 1, last.key_id)) == SQLITE_OK &&
			    (rc = sqlite3_bind_int64(st, 2, last.version)) ==
			    SQLITE_OK) {
				rc = sqlite3_bind_int(st, 3, STORE_PAGE);
			}
		}
		if (rc != SQLITE_OK) {
			r = sq_map_err(s, rc, op);
			goto out;
		}
		got = 0;
		while (got < STORE_PAGE &&
		    (rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (sq_read_version(st, &page[got]) != 0) {
				r = sq_corrupt(op);
				goto out;
			}
			got++;
		}
		if (got < STORE_PAGE && rc != SQLITE_DONE) {
			r = sq_map_err(s, rc, op);
			goto out;
		}
		sq_finish(st);
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
		sq_finish(st);
	}
	free(page);
	return r;
}

int
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
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, op);
	}
	if ((r = sq_step_write(s, st, op, &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

/* 0 on error (logged): the count is informational. */
uint64_t
sq_count_keys(store *sto)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_KEY_COUNT];
	uint64_t n = 0;
	int rc;

	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sq_col_uint(st, 0, INT64_MAX, &n) != 0) {
			n = 0;
		}
	} else {
		(void)sq_map_err(s, rc, "count_keys");
	}
	sq_finish(st);
	return n;
}
