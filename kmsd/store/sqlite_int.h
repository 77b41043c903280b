/*
 * sqlite_int.h — private to the SQLite store back end (kmsd/store/sqlite_*.c,
 * store_sqlite.c); nothing outside kmsd/store/ includes it.
 *
 * The back end is split by role: store_sqlite.c opens the database, runs
 * the migrations, prepares the hot statements and owns the writer turn,
 * transactions and the WAL; sqlite_stmt.c binds, steps and reads rows;
 * sqlite_keys.c, sqlite_authz.c, sqlite_lifecycle.c and sqlite_backup.c
 * hold the store.h methods of their part.  A handle is one connection used
 * by one thread (store.h).
 */
#ifndef KMSD_STORE_SQLITE_INT_H
#define KMSD_STORE_SQLITE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "common/err.h"
#include "kmsd/store/store.h"

#define STORE_PAGE 128		/* for_each_version rows read per query */

/* The statements prepared once at open (store_sqlite.c: stmt_sql). */
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


struct sqlite_store {
	struct store base;		/* first: store * casts to this */
	sqlite3 *db;
	sqlite3_stmt *st[ST_MAX];
	int writing;			/* holds the writer turn */
	int wal_pages;			/* the WAL's size after our last commit */
};

extern const struct store_ops sq_ops;

static inline struct sqlite_store *
to_sqlite(store *st)
{
	KMS_ASSERT(st != NULL && st->impl == &sq_ops);
	return (struct sqlite_store *)st;
}

/* ---- store_sqlite.c: the writer turn, transactions, the WAL ---- */

/* Take this process's writer turn (waits up to STORE_BUSY_MS). */
int sq_writer_lock(struct sqlite_store *s, const char *op);
/* Let the next writer in; checkpoint if the WAL has grown. */
void sq_writer_unlock(struct sqlite_store *s);
/* One write statement in its own (implicit) transaction; *changes (if
 * wanted) gets the rows it changed. */
int sq_step_write(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    int *changes);
int sq_tx_begin(struct sqlite_store *s, const char *op);
/* On failure the caller rolls back, which lets the next writer in. */
int sq_tx_commit(struct sqlite_store *s, const char *op);
/* Roll back if a transaction is still open; lets the next writer in. */
void sq_tx_rollback(struct sqlite_store *s, const char *op);
/* End a transaction: commit when r is 0, else (or when the commit fails)
 * roll back; returns the outcome. */
int sq_tx_end(struct sqlite_store *s, const char *op, int r);
/* After deleting key material, in the writer turn: copy the zeroed pages
 * into the database and cut the WAL to nothing, waiting a little for
 * readers (or leaving it to the next writer). */
void sq_shred_wal_locked(struct sqlite_store *s);
/* One statement returning at most one integer (0 for NULL or no row). */
int sq_exec_int(sqlite3 *db, const char *sql, int64_t *out);

/* ---- sqlite_stmt.c: errors, binding, stepping, rows, columns ---- */

/*
 * Arguments bound to ?1, ?2, … in order: SQ_ARGS(SQ_ID(k->id),
 * SQ_INT(k->state), SQ_TEXT(k->description)).  A NULL list binds nothing.
 * Text and blobs are bound SQLITE_STATIC: they must live until the
 * statement is finished, which every helper does before it returns.
 */
struct sq_arg {
	int type;		/* SQLITE_INTEGER, _TEXT, _BLOB; 0 ends */
	int64_t i;
	const void *p;
	int len;		/* BLOB bytes */
};
#define SQ_INT(x) ((struct sq_arg){ .type = SQLITE_INTEGER, \
	.i = (int64_t)(x) })
#define SQ_TEXT(x) ((struct sq_arg){ .type = SQLITE_TEXT, .p = (x) })
#define SQ_BLOB(x, n) ((struct sq_arg){ .type = SQLITE_BLOB, .p = (x), \
	.len = (int)(n) })
#define SQ_ID(x) SQ_BLOB((x), 16)
#define SQ_ARGS(...) ((const struct sq_arg[]){ __VA_ARGS__, { .type = 0 } })

/* Reads the current row into out: 0, KMS_EINTERNAL for a row that does
 * not fit (logged as a corrupt row by the caller) or another error. */
typedef int (*sq_read_fn)(sqlite3_stmt *st, void *out);

/* Rows read into an array: the caller's (arr of max rows) or, with grow,
 * one grown with realloc that the caller frees (NULL when no rows).  A row past max
 * sets more (a query asks for max + 1 to learn whether more follow). */
struct sq_rows {
	void *arr;
	int grow;		/* 1: arr starts NULL and is grown */
	size_t size;		/* bytes of one row */
	size_t max;		/* rows wanted (SIZE_MAX: all) */
	size_t n;		/* rows read */
	int more;
};

/* An SQLite result in the KMS error space; unexpected ones are logged. */
int sq_map_err(struct sqlite_store *s, int rc, const char *op);
/* Log a row that does not fit its structure (a corrupt database). */
int sq_corrupt(const char *op);
/* Reset a statement for its next use and drop pointers to caller memory. */
void sq_finish(sqlite3_stmt *st);
/* Prepare a statement for one call (cold paths); finalized by the caller. */
int sq_prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **st,
    const char *op);
/* Bind a; on failure the statement is finished and the error mapped. */
int sq_bind(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a);
/* Step a statement that returns no rows, inside the caller's transaction
 * (or its own implicit one when there is none). */
int sq_step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *op);
/* Bind and run to the end, in the caller's transaction. */
int sq_exec(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a);
/* Bind and run as one write of its own, in the writer turn; *changes (if
 * wanted) gets the rows it changed. */
int sq_write(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, int *changes);
/* sq_write of a statement that must change a row: KMS_ENOTFOUND when it
 * changed none. */
int sq_update(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a);
/* Bind and read one row into out; KMS_ENOTFOUND when there is none. */
int sq_get(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, sq_read_fn read, void *out);
/* Bind and run an UPDATE … RETURNING of one integer into *v;
 * KMS_ENOTFOUND when no row matched. */
int sq_returning(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, uint64_t *v);
/* Bind and read every row into rows (see struct sq_rows). */
int sq_collect(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, struct sq_rows *rows, sq_read_fn read);
/* Every row into an array grown with realloc: on success *out (the
 * caller frees it; NULL when there are no rows) and *n. */
int sq_collect_all(struct sqlite_store *s, sqlite3_stmt *st, const char *op,
    const struct sq_arg *a, sq_read_fn read, size_t size, void **out,
    size_t *n);
/* sq_write, sq_get, sq_collect of a statement prepared for this one call
 * (the cold paths). */
int sq_write_sql(struct sqlite_store *s, const char *sql, const char *op,
    const struct sq_arg *a, int *changes);
int sq_get_sql(struct sqlite_store *s, const char *sql, const char *op,
    const struct sq_arg *a, sq_read_fn read, void *out);
int sq_collect_sql(struct sqlite_store *s, const char *sql, const char *op,
    const struct sq_arg *a, struct sq_rows *rows, sq_read_fn read);

/* Columns into fixed fields; KMS_EINTERNAL when the row does not fit. */
int sq_col_text(sqlite3_stmt *st, int col, char *dst, size_t len);
int sq_col_uint(sqlite3_stmt *st, int col, uint64_t max, uint64_t *out);
int sq_col_fixed(sqlite3_stmt *st, int col, void *out, size_t len);
int sq_col_blob(sqlite3_stmt *st, int col, void *out, size_t max,
    size_t *len);
int sq_col_id(sqlite3_stmt *st, int col, uint8_t out[16]);
/* Row readers: an id (uint8_t[16]) or a count (uint64_t) in column 0. */
int sq_read_id(sqlite3_stmt *st, void *out);
int sq_read_count(sqlite3_stmt *st, void *out);

/* ---- sqlite_keys.c: versions, shared with the key's life ---- */

/* One row of VERSION_COLS into a struct store_version. */
int sq_read_version(sqlite3_stmt *st, void *out);
/* Bump a key's row_version in the caller's transaction; KMS_ENOTFOUND
 * when the key is gone. */
int sq_bump_key(struct sqlite_store *s, const uint8_t id[16],
    const char *op);
/* Insert v, in the caller's transaction. */
int sq_insert_version(struct sqlite_store *s, const struct store_version *v,
    const char *op);

/* ---- the store.h methods, by file ---- */

/* store_sqlite.c */
void sq_close(store *sto);

/* sqlite_keys.c */
int sq_create_key(store *sto, const struct store_key *k,
    const struct store_version *v, const struct store_tag *tags, size_t ntags);
int sq_get_key(store *sto, const uint8_t id[16], struct store_key *out);
int sq_update_key(store *sto, const struct store_key *k,
    uint64_t *row_version);
int sq_list_keys(store *sto, const uint8_t *after, size_t max,
    uint8_t (*ids)[16], size_t *n, int *more);
int sq_add_version(store *sto, const struct store_version *v);
int sq_get_versions(store *sto, const uint8_t id[16],
    struct store_version **out, size_t *n);
int sq_reserve_encryptions(store *sto, const uint8_t id[16], uint32_t version,
    uint64_t reserved);
int sq_for_each_version(store *sto, int (*fn)(const struct store_version *v,
    void *arg), void *arg);
int sq_delete_key(store *sto, const uint8_t id[16]);
uint64_t sq_count_keys(store *sto);

/* sqlite_authz.c */
int sq_get_tags(store *sto, const uint8_t id[16], struct store_tag **out,
    size_t *n);
int sq_put_tags(store *sto, const uint8_t id[16], const struct store_tag *tags,
    size_t n);
int sq_delete_tags(store *sto, const uint8_t id[16], const char *const *keys,
    size_t n);
int sq_create_alias(store *sto, const struct store_alias *a);
int sq_update_alias(store *sto, const char *name, const uint8_t id[16],
    int64_t update_ms);
int sq_delete_alias(store *sto, const char *name);
int sq_get_alias(store *sto, const char *name, struct store_alias *out);
int sq_list_aliases(store *sto, const uint8_t *key_id, const char *after,
    size_t max, struct store_alias *out, size_t *n, int *more);
int sq_count_aliases(store *sto, const uint8_t id[16], size_t *n);
int sq_put_policy(store *sto, const uint8_t id[16], const char *doc,
    uint64_t *policy_version);
int sq_get_policy(store *sto, const uint8_t id[16], char **doc,
    uint64_t *policy_version);
int sq_create_grant(store *sto, const struct store_grant *g);
int sq_delete_grant(store *sto, const uint8_t id[16], const char *grant_id);
int sq_get_grants(store *sto, const uint8_t id[16], struct store_grant **out,
    size_t *n);
int sq_find_grant_by_token(store *sto, const uint8_t hash[32],
    struct store_grant *out);
int sq_list_retirable(store *sto, const char *p, const char *after, size_t max,
    struct store_grant **out, size_t *n, int *more);

/* sqlite_lifecycle.c */
int sq_rotate_key(store *sto, const struct store_version *v, int kind,
    uint64_t *row_version);
int sq_set_rotation_schedule(store *sto, const uint8_t id[16],
    const struct store_rotation_schedule *rs);
int sq_get_rotation_schedule(store *sto, const uint8_t id[16],
    struct store_rotation_schedule *out);
int sq_list_rotations(store *sto, const uint8_t id[16], uint32_t after,
    size_t max, struct store_rotation *out, size_t *n, int *more);
int sq_count_rotations(store *sto, const uint8_t id[16], int kind, size_t *n);
int sq_due_rotations(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n);
int sq_due_deletions(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n);
int sq_claim_lease(store *sto, const char *name, const char *holder,
    int64_t now, int64_t ttl_ms);
int sq_release_lease(store *sto, const char *name, const char *holder);
int sq_get_lease(store *sto, const char *name, int64_t now,
    char holder[STORE_LEASE_HOLDER_MAX], int64_t *since_ms);
int sq_shred_key(store *sto, const uint8_t id[16]);
int sq_put_import_token(store *sto, const struct store_import_token *t);
int sq_get_import_token(store *sto, const uint8_t hash[32],
    struct store_import_token *out);
int sq_delete_import_token(store *sto, const uint8_t hash[32]);
int sq_due_import_tokens(store *sto, int64_t now, size_t max,
    struct store_import_token *out, size_t *n);
int sq_import_material(store *sto, const struct store_version *v,
    const struct store_import *im, uint64_t *row_version);
int sq_set_import_expiry(store *sto, const uint8_t id[16],
    const struct store_import *im);
int sq_get_import(store *sto, const uint8_t id[16], struct store_import *out);
int sq_delete_material(store *sto, const uint8_t id[16],
    uint64_t *row_version);
int sq_due_expirations(store *sto, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n);
int sq_get_domain_rotation(store *sto, struct store_domain_rotation *out);
int sq_put_domain_rotation(store *sto, const struct store_domain_rotation *d);
int sq_next_wrapped_versions(store *sto, const struct store_domain_rotation *d,
    size_t max, struct store_version *out, size_t *n);
uint64_t sq_count_wrapped_versions(store *sto);
int sq_rewrap_versions(store *sto, const struct store_version *v, size_t n,
    const struct store_domain_rotation *d);

/* sqlite_backup.c */
int sq_backup(store *sto, const char *path, uint64_t *nkeys);

#endif
