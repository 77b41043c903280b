/*
 * sqlite_authz.c — what authorisation reads, in the SQLite store: tags,
 * aliases, key policies and grants (store.h; store_sqlite.c has the
 * schema, the writer turn and transactions).  Every change to what a key
 * allows bumps its row_version, so that the daemon's caches see it.
 * Arguments were checked at the interface (store.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/err.h"
#include "kmsd/store/sqlite_int.h"

/* ---- tags ---- */

static int
read_tag(sqlite3_stmt *st, void *out)
{
	struct store_tag *t = out;

	return sq_col_text(st, 0, t->key, sizeof(t->key)) != 0 ||
	    sq_col_text(st, 1, t->value, sizeof(t->value)) != 0 ?
	    KMS_EINTERNAL : 0;
}

int
sq_get_tags(store *sto, const uint8_t id[16], struct store_tag **out,
    size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(id != NULL && out != NULL && n != NULL);
	return sq_collect_all(s, s->st[ST_TAG_LIST], "get_tags",
	    SQ_ARGS(SQ_ID(id)), read_tag, sizeof(**out), (void **)out, n);
}

int
sq_put_tags(store *sto, const uint8_t id[16], const struct store_tag *tags,
    size_t n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "put_tags";
	size_t i;
	int r;

	KMS_ASSERT(id != NULL && (n == 0 || tags != NULL));
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	r = sq_bump_key(s, id, op);
	for (i = 0; i < n && r == 0; i++) {
		r = sq_exec(s, s->st[ST_TAG_UPSERT], op, SQ_ARGS(SQ_ID(id),
		    SQ_TEXT(tags[i].key), SQ_TEXT(tags[i].value)));
	}
	return sq_tx_end(s, op, r);
}

int
sq_delete_tags(store *sto, const uint8_t id[16], const char *const *keys,
    size_t n)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_tags";
	size_t i;
	int r;

	KMS_ASSERT(id != NULL && (n == 0 || keys != NULL));
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	r = sq_bump_key(s, id, op);
	for (i = 0; i < n && r == 0; i++) {
		r = sq_exec(s, s->st[ST_TAG_DELETE], op, SQ_ARGS(SQ_ID(id),
		    SQ_TEXT(keys[i])));
	}
	return sq_tx_end(s, op, r);
}

/* ---- aliases ---- */

static int
read_alias(sqlite3_stmt *st, void *out)
{
	struct store_alias *a = out;

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

	KMS_ASSERT(a != NULL);
	return sq_write(s, s->st[ST_ALIAS_INSERT], "create_alias",
	    SQ_ARGS(SQ_TEXT(a->name), SQ_ID(a->key_id),
	    SQ_INT(a->creation_ms), SQ_INT(a->update_ms)), NULL);
}

int
sq_update_alias(store *sto, const char *name, const uint8_t id[16],
    int64_t update_ms)
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(name != NULL && id != NULL);
	return sq_update(s, s->st[ST_ALIAS_UPDATE], "update_alias",
	    SQ_ARGS(SQ_TEXT(name), SQ_ID(id), SQ_INT(update_ms)));
}

int
sq_delete_alias(store *sto, const char *name)
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(name != NULL);
	return sq_update(s, s->st[ST_ALIAS_DELETE], "delete_alias",
	    SQ_ARGS(SQ_TEXT(name)));
}

int
sq_get_alias(store *sto, const char *name, struct store_alias *out)
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(name != NULL && out != NULL);
	return sq_get(s, s->st[ST_ALIAS_GET], "get_alias",
	    SQ_ARGS(SQ_TEXT(name)), read_alias, out);
}

int
sq_list_aliases(store *sto, const uint8_t *key_id, const char *after,
    size_t max, struct store_alias *out, size_t *n, int *more)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "list_aliases";
	struct sq_rows rows = { .arr = out, .size = sizeof(*out), .max = max };
	int r;

	KMS_ASSERT(n != NULL && more != NULL && max <= STORE_LIST_MAX);
	if (after == NULL) {
		after = "";
	}
	if (key_id == NULL) {
		r = sq_collect(s, s->st[ST_ALIAS_LIST], op,
		    SQ_ARGS(SQ_TEXT(after), SQ_INT(max + 1)), &rows,
		    read_alias);
	} else {
		r = sq_collect(s, s->st[ST_ALIAS_LIST_KEY], op,
		    SQ_ARGS(SQ_TEXT(after), SQ_INT(max + 1), SQ_ID(key_id)),
		    &rows, read_alias);
	}
	if (r == 0) {
		*n = rows.n;
		*more = rows.more;
	}
	return r;
}

int
sq_count_aliases(store *sto, const uint8_t id[16], size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);
	uint64_t u = 0;
	int r;

	KMS_ASSERT(id != NULL && n != NULL);
	r = sq_get(s, s->st[ST_ALIAS_COUNT], "count_aliases",
	    SQ_ARGS(SQ_ID(id)), sq_read_count, &u);
	*n = (size_t)u;
	return r;
}

/* ---- key policies ---- */

int
sq_put_policy(store *sto, const uint8_t id[16], const char *doc,
    uint64_t *policy_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "put_policy";
	uint64_t v = 0;
	int r;

	KMS_ASSERT(id != NULL && doc != NULL);
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = sq_bump_key(s, id, op)) == 0) {
		r = sq_returning(s, s->st[ST_POLICY_PUT], op,
		    SQ_ARGS(SQ_ID(id), SQ_TEXT(doc)), &v);
	}
	if ((r = sq_tx_end(s, op, r)) == 0 && policy_version != NULL) {
		*policy_version = v;
	}
	return r;
}

struct policy_row {
	char *doc;			/* malloc'd */
	uint64_t version;
};

static int
read_policy(sqlite3_stmt *st, void *out)
{
	struct policy_row *p = out;
	const unsigned char *text;
	int len;

	if ((text = sqlite3_column_text(st, 0)) == NULL ||
	    (len = sqlite3_column_bytes(st, 0)) < 0 ||
	    sq_col_uint(st, 1, INT64_MAX, &p->version) != 0) {
		return KMS_EINTERNAL;
	}
	if ((p->doc = malloc((size_t)len + 1)) == NULL) {
		return KMS_ENOMEM;
	}
	memcpy(p->doc, text, (size_t)len);
	p->doc[len] = '\0';
	return 0;
}

int
sq_get_policy(store *sto, const uint8_t id[16], char **doc,
    uint64_t *policy_version)
{
	struct sqlite_store *s = to_sqlite(sto);
	struct policy_row row = { NULL, 0 };
	int r;

	KMS_ASSERT(id != NULL && doc != NULL);
	*doc = NULL;
	if ((r = sq_get(s, s->st[ST_POLICY_GET], "get_policy",
	    SQ_ARGS(SQ_ID(id)), read_policy, &row)) != 0) {
		return r;
	}
	*doc = row.doc;
	if (policy_version != NULL) {
		*policy_version = row.version;
	}
	return 0;
}

/* ---- grants ---- */

static int
read_grant(sqlite3_stmt *st, void *out)
{
	struct store_grant *g = out;

	memset(g, 0, sizeof(*g));
	if (sq_col_text(st, 0, g->grant_id, sizeof(g->grant_id)) != 0 ||
	    sq_col_id(st, 1, g->key_id) != 0 ||
	    sq_col_text(st, 2, g->name, sizeof(g->name)) != 0 ||
	    sq_col_text(st, 3, g->grantee, sizeof(g->grantee)) != 0 ||
	    sq_col_text(st, 4, g->retiring, sizeof(g->retiring)) != 0 ||
	    sq_col_text(st, 5, g->operations, sizeof(g->operations)) != 0 ||
	    sq_col_text(st, 6, g->constraints, sizeof(g->constraints)) != 0 ||
	    sq_col_fixed(st, 7, g->token_hash, sizeof(g->token_hash)) != 0 ||
	    sq_col_text(st, 9, g->issuer, sizeof(g->issuer)) != 0) {
		return KMS_EINTERNAL;
	}
	g->creation_ms = sqlite3_column_int64(st, 8);
	return 0;
}

int
sq_create_grant(store *sto, const struct store_grant *g)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "create_grant";
	int r;

	KMS_ASSERT(g != NULL);
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = sq_bump_key(s, g->key_id, op)) == 0) {
		r = sq_exec(s, s->st[ST_GRANT_INSERT], op,
		    SQ_ARGS(SQ_TEXT(g->grant_id), SQ_ID(g->key_id),
		    SQ_TEXT(g->name), SQ_TEXT(g->grantee), SQ_TEXT(g->retiring),
		    SQ_TEXT(g->operations), SQ_TEXT(g->constraints),
		    SQ_BLOB(g->token_hash, sizeof(g->token_hash)),
		    SQ_INT(g->creation_ms), SQ_TEXT(g->issuer)));
	}
	return sq_tx_end(s, op, r);
}

int
sq_delete_grant(store *sto, const uint8_t id[16], const char *grant_id)
{
	struct sqlite_store *s = to_sqlite(sto);
	const char *op = "delete_grant";
	int r;

	KMS_ASSERT(id != NULL && grant_id != NULL);
	if ((r = sq_tx_begin(s, op)) != 0) {
		return r;
	}
	if ((r = sq_bump_key(s, id, op)) == 0 &&
	    (r = sq_exec(s, s->st[ST_GRANT_DELETE], op,
	    SQ_ARGS(SQ_ID(id), SQ_TEXT(grant_id)))) == 0 &&
	    sqlite3_changes(s->db) == 0) {
		r = KMS_ENOTFOUND;
	}
	return sq_tx_end(s, op, r);
}

int
sq_get_grants(store *sto, const uint8_t id[16], struct store_grant **out,
    size_t *n)
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(id != NULL && out != NULL && n != NULL);
	*out = NULL;
	*n = 0;
	return sq_collect_all(s, s->st[ST_GRANT_LIST], "get_grants",
	    SQ_ARGS(SQ_ID(id)), read_grant, sizeof(**out), (void **)out, n);
}

int
sq_find_grant_by_token(store *sto, const uint8_t hash[32],
    struct store_grant *out)
{
	struct sqlite_store *s = to_sqlite(sto);

	KMS_ASSERT(hash != NULL && out != NULL);
	return sq_get(s, s->st[ST_GRANT_BY_TOKEN], "find_grant_by_token",
	    SQ_ARGS(SQ_BLOB(hash, 32)), read_grant, out);
}

int
sq_list_retirable(store *sto, const char *p, const char *after, size_t max,
    struct store_grant **out, size_t *n, int *more)
{
	struct sqlite_store *s = to_sqlite(sto);
	struct sq_rows rows = { .grow = 1, .size = sizeof(**out), .max = max };
	int r;

	KMS_ASSERT(p != NULL && out != NULL && n != NULL && more != NULL);
	*out = NULL;
	*n = 0;
	if ((r = sq_collect(s, s->st[ST_GRANT_RETIRABLE], "list_retirable",
	    SQ_ARGS(SQ_TEXT(p), SQ_TEXT(after != NULL ? after : ""),
	    SQ_INT(max + 1)), &rows, read_grant)) == 0) {
		*out = rows.arr;
		*n = rows.n;
		*more = rows.more;
	}
	return r;
}
