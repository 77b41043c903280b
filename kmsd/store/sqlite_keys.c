/*
 * sqlite_keys.c — keys and their versions in the SQLite store (store.h;
 * store_sqlite.c has the schema, the writer turn and transactions).
 * Arguments were checked at the interface (store.c); what is asserted
 * here is what store.c guarantees.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/err.h"
#include "kmsd/store/sqlite_int.h"

int
sq_read_version(sqlite3_stmt *st, void *out)
{
	struct store_version *v = out;
	uint64_t version, resident;

	memset(v, 0, sizeof(*v));
	if (sq_col_id(st, 0, v->key_id) != 0 ||
	    sq_col_uint(st, 1, UINT32_MAX, &version) != 0 || version < 1 ||
	    sq_col_blob(st, 3, v->material, STORE_MATERIAL_MAX,
	    &v->material_len) != 0 ||
	    sq_col_uint(st, 4, 1, &resident) != 0 ||
	    sq_col_uint(st, 5, INT64_MAX, &v->enc_reserved) != 0) {
		return KMS_EINTERNAL;
	}
	v->version = (uint32_t)version;
	v->creation_ms = sqlite3_column_int64(st, 2);
	v->resident = (int)resident;
	return 0;
}

int
sq_insert_version(struct sqlite_store *s, const struct store_version *v,
    const char *op)
{
	return sq_exec(s, s->st[ST_VERSION_INSERT], op,
	    SQ_ARGS(SQ_ID(v->key_id), SQ_INT(v->version),
	    SQ_INT(v->creation_ms), SQ_BLOB(v->material, v->material_len),
	    SQ_INT(v->resident), SQ_INT(v->enc_reserved)));
}

int
sq_bump_key(struct sqlite_store *s, const uint8_t id[16], const char *op)
{
	int r;

	if ((r = sq_exec(s, s->st[ST_KEY_BUMP], op, SQ_ARGS(SQ_ID(id)))) !=
	    0) {
		return r;
	}
	return sqlite3_changes(s->db) == 0 ? KMS_ENOTFOUND : 0;
}

int
sq_create_key(store *sto, const struct store_key *k,
    const struct store_version *v, const struct store_tag *tags,
    size_t ntags)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "create_key";
	size_t i;
	int r;

	KMS_ASSERT(k != NULL && (ntags == 0 || tags != NULL));
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	r = sq_exec(s, s->st[ST_KEY_INSERT], op, SQ_ARGS(SQ_ID(k->id),
	    SQ_INT(k->creation_ms), SQ_INT(k->state), SQ_TEXT(k->key_usage),
	    SQ_TEXT(k->key_spec), SQ_TEXT(k->origin),
	    SQ_TEXT(k->description), SQ_INT(k->current_version),
	    SQ_INT(k->deletion_ms), SQ_TEXT(k->creator),
	    SQ_INT(k->row_version)));
	if (r == 0 && v != NULL) {
		r = sq_insert_version(s, v, op);
	}
	for (i = 0; i < ntags && r == 0; i++) {
		r = sq_exec(s, s->st[ST_TAG_INSERT], op, SQ_ARGS(SQ_ID(k->id),
		    SQ_TEXT(tags[i].key), SQ_TEXT(tags[i].value)));
		/* Two tags with one key: the caller's mistake. */
		if (r == KMS_EALREADYEXISTS) {
			r = KMS_EINVAL;
		}
	}
	return sq_tx_end(s, op, r);
}

/* A ST_KEY_GET row (all but the id). */
static int
read_key(sqlite3_stmt *st, void *out)
{
	struct store_key *k = out;
	uint64_t state, current;

	memset(k, 0, sizeof(*k));
	if (sq_col_uint(st, 1, KEY_UNAVAILABLE, &state) != 0 ||
	    sq_col_text(st, 2, k->key_usage, sizeof(k->key_usage)) != 0 ||
	    sq_col_text(st, 3, k->key_spec, sizeof(k->key_spec)) != 0 ||
	    sq_col_text(st, 4, k->origin, sizeof(k->origin)) != 0 ||
	    sq_col_text(st, 5, k->description, sizeof(k->description)) != 0 ||
	    sq_col_uint(st, 6, UINT32_MAX, &current) != 0 ||
	    sq_col_text(st, 8, k->creator, sizeof(k->creator)) != 0 ||
	    sq_col_uint(st, 9, INT64_MAX, &k->row_version) != 0) {
		return KMS_EINTERNAL;
	}
	k->creation_ms = sqlite3_column_int64(st, 0);
	k->state = (int)state;
	k->current_version = (uint32_t)current;
	k->deletion_ms = sqlite3_column_int64(st, 7);
	return 0;
}

int
sq_get_key(store *sto, const uint8_t id[16], struct store_key *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	int r;

	KMS_ASSERT(id != NULL && out != NULL);
	if ((r = sq_get(s, s->st[ST_KEY_GET], "get_key", SQ_ARGS(SQ_ID(id)),
	    read_key, out)) != 0) {
		/* Never leave a half-filled row behind. */
		memset(out, 0, sizeof(*out));
		return r;
	}
	memcpy(out->id, id, 16);
	return 0;
}

int
sq_update_key(store *sto, const struct store_key *k, uint64_t *row_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "update_key";
	uint64_t rv = 0;
	int r;

	KMS_ASSERT(k != NULL);
	if ((r = sq_writer_lock(s, op)) != 0) {
		return r;
	}
	r = sq_returning(s, s->st[ST_KEY_UPDATE], op, SQ_ARGS(SQ_ID(k->id),
	    SQ_INT(k->state), SQ_TEXT(k->description),
	    SQ_INT(k->current_version), SQ_INT(k->deletion_ms)), &rv);
	sq_writer_unlock(s);
	if (r == 0 && row_version != NULL) {
		*row_version = rv;
	}
	return r;
}

int
sq_list_keys(store *sto, const uint8_t *after, size_t max,
    uint8_t (*ids)[16], size_t *n, int *more)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "list_keys";
	struct sq_rows rows = { .arr = ids, .size = sizeof(*ids), .max = max };
	int r;

	KMS_ASSERT(n != NULL && more != NULL && max <= STORE_LIST_MAX);
	/* One row past the page tells whether more follow. */
	if (after == NULL) {
		r = sq_collect(s, s->st[ST_KEY_LIST], op,
		    SQ_ARGS(SQ_INT(max + 1)), &rows, sq_read_id);
	} else {
		r = sq_collect(s, s->st[ST_KEY_LIST_AFTER], op,
		    SQ_ARGS(SQ_ID(after), SQ_INT(max + 1)), &rows, sq_read_id);
	}
	if (r == 0) {
		*n = rows.n;
		*more = rows.more;
	}
	return r;
}

int
sq_add_version(store *sto, const struct store_version *v)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "add_version";
	int r;

	KMS_ASSERT(v != NULL);
	/* A new version is a mutation of its key: bump row_version with it. */
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = sq_insert_version(s, v, op)) == 0) {
		r = sq_bump_key(s, v->key_id, op);
	}
	return sq_tx_end(s, op, r);
}

int
sq_get_versions(store *sto, const uint8_t id[16],
    struct store_version **out, size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(id != NULL && out != NULL && n != NULL);
	return sq_collect_all(s, s->st[ST_VERSION_LIST], "get_versions",
	    SQ_ARGS(SQ_ID(id)), sq_read_version, sizeof(**out), (void **)out,
	    n);
}

int
sq_reserve_encryptions(store *sto, const uint8_t id[16], uint32_t version,
    uint64_t reserved)
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(id != NULL && reserved <= INT64_MAX);
	return sq_update(s, s->st[ST_VERSION_RESERVE], "reserve_encryptions",
	    SQ_ARGS(SQ_ID(id), SQ_INT(version), SQ_INT(reserved)));
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
	struct store_version *page, last;
	struct sq_rows rows = { .size = sizeof(*page), .max = STORE_PAGE };
	size_t i;
	int r;

	KMS_ASSERT(fn != NULL);
	if ((page = calloc(STORE_PAGE, sizeof(*page))) == NULL) {
		return KMS_ENOMEM;
	}
	rows.arr = page;
	if ((r = sq_collect(s, s->st[ST_VERSION_ALL], op,
	    SQ_ARGS(SQ_INT(STORE_PAGE)), &rows, sq_read_version)) != 0) {
		goto out;
	}
	for (;;) {
		for (i = 0; i < rows.n; i++) {
			if ((r = fn(&page[i], arg)) != 0) {
				goto out;
			}
		}
		if (rows.n < STORE_PAGE) {
			break;
		}
		last = page[rows.n - 1];
		if ((r = sq_collect(s, s->st[ST_VERSION_ALL_AFTER], op,
		    SQ_ARGS(SQ_ID(last.key_id), SQ_INT(last.version),
		    SQ_INT(STORE_PAGE)), &rows, sq_read_version)) != 0) {
			goto out;
		}
	}
	r = 0;
 out:
	free(page);
	return r;
}

int
sq_delete_key(store *sto, const uint8_t id[16])
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(id != NULL);
	/* Versions, tags, aliases, policy and grants go by ON DELETE
	 * CASCADE, in the same statement and so the same transaction. */
	return sq_update(s, s->st[ST_KEY_DELETE], "delete_key",
	    SQ_ARGS(SQ_ID(id)));
}

/* 0 on error (logged): the count is informational. */
uint64_t
sq_count_keys(store *sto)
{
	struct sqlite_store *s = to_sqlite(sto);
	uint64_t n = 0;

	if (sq_get(s, s->st[ST_KEY_COUNT], "count_keys", NULL, sq_read_count,
	    &n) != 0) {
		n = 0;
	}
	return n;
}
