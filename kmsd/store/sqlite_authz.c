/*
 * sqlite_authz.c — what authorisation reads, in the SQLite store: tags,
 * aliases, key policies and grants (store.h; store_sqlite.c for the
 * schema, the writer turn and transactions).  Every change to what a key
 * allows bumps its row_version, so that the daemon's caches see it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/cause.h"
#include "common/err.h"
#include "common/log.h"
#include "kmsd/store/sqlite_int.h"

/* ---- tags, aliases, policies, grants (authorisation) ---- */

int
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
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = sq_grow((void **)&arr, &cap, used, sizeof(*arr))) != 0) {
			goto out;
		}
		if (sq_col_text(st, 0, arr[used].key, sizeof(arr[used].key)) !=
		    0 || sq_col_text(st, 1, arr[used].value,
		    sizeof(arr[used].value)) != 0) {
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

/* Bump a key's row_version inside the caller's transaction. */
static int
bump_key(struct sqlite_store *s, const uint8_t id[16], const char *op)
{
	sqlite3_stmt *st = s->st[ST_KEY_BUMP];
	int rc;

	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, op);
	}
	if ((rc = sq_step_done(s, st, op)) != 0) {
		return rc;
	}
	return sqlite3_changes(s->db) == 0 ? KMS_ENOTFOUND : 0;
}

int
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
		if (sq_check_tag(&tags[i]) != 0) {
			return KMS_EINVAL;
		}
	}
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, id, op)) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
		    (rc = sq_bind_text(st, 2, tags[i].key)) != SQLITE_OK ||
		    (rc = sq_bind_text(st, 3, tags[i].value)) != SQLITE_OK) {
			sq_finish(st);
			r = sq_map_err(s, rc, op);
			goto out;
		}
		if ((r = sq_step_done(s, st, op)) != 0) {
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
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, id, op)) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
		    (rc = sq_bind_text(st, 2, keys[i])) != SQLITE_OK) {
			sq_finish(st);
			r = sq_map_err(s, rc, op);
			goto out;
		}
		if ((r = sq_step_done(s, st, op)) != 0) {
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

static int
read_alias(sqlite3_stmt *st, struct store_alias *a)
{
	memset(a, 0, sizeof(*a));
	if (sq_col_text(st, 0, a->name, sizeof(a->name)) != 0 ||
	    sq_col_id(st, 1, a->key_id) != 0) {
		return KMS_EINTERNAL;
	}
	a->creation_ms = sqlite3_column_int64(st, 2);
	a->update_ms = sqlite3_column_int64(st, 3);
	return 0;
}

int
sq_create_alias(store *sto, const struct store_alias *a)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_INSERT];
	int rc;

	if (a == NULL || !sq_field_ok(a->name, sizeof(a->name))) {
		return KMS_EINVAL;
	}
	if ((rc = sq_bind_text(st, 1, a->name)) != SQLITE_OK ||
	    (rc = sq_bind_id(st, 2, a->key_id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, a->creation_ms)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, a->update_ms)) != SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, "create_alias");
	}
	return sq_step_write(s, st, "create_alias", NULL);
}

int
sq_update_alias(store *sto, const char *name, const uint8_t id[16],
    int64_t update_ms)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_UPDATE];
	int rc, r, changes = 0;

	if (name == NULL || id == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = sq_bind_text(st, 1, name)) != SQLITE_OK ||
	    (rc = sq_bind_id(st, 2, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, update_ms)) != SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, "update_alias");
	}
	if ((r = sq_step_write(s, st, "update_alias", &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

int
sq_delete_alias(store *sto, const char *name)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_DELETE];
	int rc, r, changes = 0;

	if (name == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = sq_bind_text(st, 1, name)) != SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, "delete_alias");
	}
	if ((r = sq_step_write(s, st, "delete_alias", &changes)) != 0) {
		return r;
	}
	return changes == 0 ? KMS_ENOTFOUND : 0;
}

int
sq_get_alias(store *sto, const char *name, struct store_alias *out)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_GET];
	int rc, r;

	if (name == NULL || out == NULL) {
		return KMS_EINVAL;
	}
	if ((rc = sq_bind_text(st, 1, name)) != SQLITE_OK) {
		r = sq_map_err(s, rc, "get_alias");
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND :
		    sq_map_err(s, rc, "get_alias");
	} else {
		r = read_alias(st, out) != 0 ? sq_corrupt("get_alias") : 0;
	}
	sq_finish(st);
	return r;
}

int
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
	if ((rc = sq_bind_text(st, 1, after ? after : "")) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)max + 1)) !=
	    SQLITE_OK ||
	    (key_id != NULL && (rc = sq_bind_id(st, 3, key_id)) != SQLITE_OK)) {
		r = sq_map_err(s, rc, op);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (got == max) {
			extra = 1;
			continue;
		}
		if (read_alias(st, &out[got]) != 0) {
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
sq_count_aliases(store *sto, const uint8_t id[16], size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	sqlite3_stmt *st = s->st[ST_ALIAS_COUNT];
	uint64_t u = 0;
	int rc, r = 0;

	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = sq_map_err(s, rc, "count_aliases");
	} else if (sq_col_uint(st, 0, INT64_MAX, &u) != 0) {
		r = sq_corrupt("count_aliases");
	}
	sq_finish(st);
	*n = (size_t)u;
	return r;
}

int
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
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, id, op)) != 0) {
		goto out;
	}
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 2, doc)) != SQLITE_OK) {
		sq_finish(st);
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW ||
	    sq_col_uint(st, 0, INT64_MAX, &v) != 0) {
		r = rc == SQLITE_ROW ? sq_corrupt(op) : sq_map_err(s, rc, op);
		sq_finish(st);
		goto out;
	}
	if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
		r = sq_map_err(s, rc, op);
		sq_finish(st);
		goto out;
	}
	sq_finish(st);
	if ((r = sq_tx_commit(s, op)) == 0 && policy_version != NULL) {
		*policy_version = v;
	}
 out:
	if (r != 0) {
		sq_tx_rollback(s, op);
	}
	return r;
}

int
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
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		r = sq_map_err(s, rc, "get_policy");
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND :
		    sq_map_err(s, rc, "get_policy");
	} else if ((p = sqlite3_column_text(st, 0)) == NULL ||
	    (len = sqlite3_column_bytes(st, 0)) < 0 ||
	    sq_col_uint(st, 1, INT64_MAX, &v) != 0) {
		r = sq_corrupt("get_policy");
	} else if ((*doc = malloc((size_t)len + 1)) == NULL) {
		r = KMS_ENOMEM;
	} else {
		memcpy(*doc, p, (size_t)len);
		(*doc)[len] = '\0';
		if (policy_version != NULL) {
			*policy_version = v;
		}
	}
	sq_finish(st);
	return r;
}

static int
read_grant(sqlite3_stmt *st, struct store_grant *g)
{
	const void *h;

	memset(g, 0, sizeof(*g));
	if (sq_col_text(st, 0, g->grant_id, sizeof(g->grant_id)) != 0 ||
	    sq_col_id(st, 1, g->key_id) != 0 ||
	    sq_col_text(st, 2, g->name, sizeof(g->name)) != 0 ||
	    sq_col_text(st, 3, g->grantee, sizeof(g->grantee)) != 0 ||
	    sq_col_text(st, 4, g->retiring, sizeof(g->retiring)) != 0 ||
	    sq_col_text(st, 5, g->operations, sizeof(g->operations)) != 0 ||
	    sq_col_text(st, 6, g->constraints, sizeof(g->constraints)) != 0 ||
	    sq_col_text(st, 9, g->issuer, sizeof(g->issuer)) != 0) {
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

int
sq_create_grant(store *sto, const struct store_grant *g)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "create_grant";
	sqlite3_stmt *st = s->st[ST_GRANT_INSERT];
	int rc, r;

	if (g == NULL || !sq_field_ok(g->grant_id, sizeof(g->grant_id)) ||
	    !sq_field_ok(g->name, sizeof(g->name)) ||
	    !sq_field_ok(g->grantee, sizeof(g->grantee)) ||
	    !sq_field_ok(g->retiring, sizeof(g->retiring)) ||
	    !sq_field_ok(g->operations, sizeof(g->operations)) ||
	    !sq_field_ok(g->constraints, sizeof(g->constraints)) ||
	    !sq_field_ok(g->issuer, sizeof(g->issuer))) {
		return KMS_EINVAL;
	}
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, g->key_id, op)) != 0) {
		goto out;
	}
	if ((rc = sq_bind_text(st, 1, g->grant_id)) != SQLITE_OK ||
	    (rc = sq_bind_id(st, 2, g->key_id)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 3, g->name)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 4, g->grantee)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 5, g->retiring)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 6, g->operations)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 7, g->constraints)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 8, g->token_hash, 32,
	    SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 9, g->creation_ms)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 10, g->issuer)) != SQLITE_OK) {
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

int
sq_delete_grant(store *sto, const uint8_t id[16], const char *grant_id)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_grant";
	sqlite3_stmt *st = s->st[ST_GRANT_DELETE];
	int rc, r;

	if (id == NULL || grant_id == NULL) {
		return KMS_EINVAL;
	}
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = bump_key(s, id, op)) != 0) {
		goto out;
	}
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 2, grant_id)) != SQLITE_OK) {
		sq_finish(st);
		r = sq_map_err(s, rc, op);
		goto out;
	}
	if ((r = sq_step_done(s, st, op)) != 0) {
		goto out;
	}
	if (sqlite3_changes(s->db) == 0) {
		r = KMS_ENOTFOUND;
		goto out;
	}
	r = sq_tx_commit(s, op);
 out:
	if (r != 0) {
		sq_tx_rollback(s, op);
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
		if ((r = sq_grow((void **)&arr, &cap, used, sizeof(*arr))) != 0) {
			goto out;
		}
		if (read_grant(st, &arr[used]) != 0) {
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
	if (more != NULL) {
		*more = extra;
	}
	arr = NULL;
	r = 0;
 out:
	sq_finish(st);
	free(arr);
	return r;
}

int
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
	if ((rc = sq_bind_id(st, 1, id)) != SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, "get_grants");
	}
	return collect_grants(s, st, SIZE_MAX, out, n, NULL, "get_grants");
}

int
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
		r = sq_map_err(s, rc, "find_grant_by_token");
	} else if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? KMS_ENOTFOUND :
		    sq_map_err(s, rc, "find_grant_by_token");
	} else {
		r = read_grant(st, out) != 0 ?
		    sq_corrupt("find_grant_by_token") : 0;
	}
	sq_finish(st);
	return r;
}

int
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
	if ((rc = sq_bind_text(st, 1, p)) != SQLITE_OK ||
	    (rc = sq_bind_text(st, 2, after ? after : "")) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)max + 1)) !=
	    SQLITE_OK) {
		sq_finish(st);
		return sq_map_err(s, rc, "list_retirable");
	}
	return collect_grants(s, st, max, out, n, more, "list_retirable");
}
