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

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "common/err.h"
#include "kmsd/store/store.h"

#define STORE_PAGE 128		/* for_each_version rows read per query */
#define STORE_LIST_MAX (1u << 20)	/* list_keys page cap (sanity) */
#define SHRED_CHECKPOINT_TRIES 20	/* 100 ms each: readers finish */

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

/* A shred's WAL truncation that has not succeeded yet (a reader was in
 * the way): the next writer of this process tries again. */
extern atomic_int sq_truncate_due;

static inline struct sqlite_store *
to_sqlite(store *st)
{
	KMS_ASSERT(st != NULL && st->ops == &sq_ops);
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
/* Checkpoint everything and cut the WAL to nothing, waiting at most
 * busy_ms for readers; 0 or an SQLite code. */
int sq_truncate_wal(struct sqlite_store *s, int busy_ms);
/* One statement returning at most one integer (0 for NULL or no row). */
int sq_exec_int(sqlite3 *db, const char *sql, int64_t *out);

/* ---- sqlite_stmt.c: errors, binding, stepping, columns ---- */

/* An SQLite result in the KMS error space; unexpected ones are logged. */
int sq_map_err(struct sqlite_store *s, int rc, const char *op);
/* Reset a statement for its next use and drop pointers to caller memory. */
void sq_finish(sqlite3_stmt *st);
/* Step a statement that returns no rows. */
int sq_step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *op);
/* Prepare a statement for one call (cold paths); finalized by the caller. */
int sq_prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **st,
    const char *op);
int sq_bind_id(sqlite3_stmt *st, int idx, const uint8_t id[16]);
int sq_bind_text(sqlite3_stmt *st, int idx, const char *p);
/* A fixed-size string field is valid when it is NUL-terminated in place. */
int sq_field_ok(const char *p, size_t len);
int sq_check_key(const struct store_key *k);
int sq_check_version(const struct store_version *v);
int sq_check_tag(const struct store_tag *t);
/* Columns into fixed fields; KMS_EINTERNAL when the row does not fit. */
int sq_col_text(sqlite3_stmt *st, int col, char *dst, size_t len);
int sq_col_uint(sqlite3_stmt *st, int col, uint64_t max, uint64_t *out);
int sq_col_id(sqlite3_stmt *st, int col, uint8_t out[16]);
/* Log a row that does not fit its structure (a corrupt database). */
int sq_corrupt(const char *op);
/* Grow *arr (of *cap elements of size sz) to hold one more; 0 or ENOMEM. */
int sq_grow(void **arr, size_t *cap, size_t used, size_t sz);

/* ---- sqlite_keys.c: versions, shared with the key's life ---- */

/* One row of VERSION_COLS into v. */
int sq_read_version(sqlite3_stmt *st, struct store_version *v);
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
