/*
 * store.h — the metadata store interface (docs/design.md §8).
 *
 * Keys, versions (wrapped blobs or resident CKA_IDs), tags, aliases,
 * policies and grants.  The daemon uses only this interface; SQLite
 * (store_sqlite.c) is the embedded implementation, PostgreSQL can follow.
 *
 * A store handle is one connection: not thread-safe; each worker opens its
 * own.  Every mutation is durable (SQLite: WAL, synchronous=FULL) before
 * the call returns.  Every mutation of a key bumps its row_version, which
 * the daemon's caches compare to know what is stale.  Strings in returned
 * structures are fixed-size fields, so nothing needs freeing except where
 * a function says so.
 */
#ifndef KMSD_STORE_H
#define KMSD_STORE_H

#include <stddef.h>
#include <stdint.h>

enum key_state {
	KEY_ENABLED = 1,
	KEY_DISABLED,
	KEY_PENDING_DELETION,
	KEY_PENDING_IMPORT,
	KEY_UNAVAILABLE,
};

#define STORE_DESC_MAX 8192	/* AWS Description limit, characters */
#define STORE_NAME_MAX 256	/* principals, alias names */
#define STORE_MATERIAL_MAX 64	/* wrapped blob or CKA_ID */

struct store_key {
	uint8_t id[16];
	int64_t creation_ms;
	int state;			/* enum key_state */
	char key_usage[32];		/* ENCRYPT_DECRYPT */
	char key_spec[32];		/* SYMMETRIC_DEFAULT */
	char origin[16];		/* AWS_KMS */
	char description[STORE_DESC_MAX * 4 + 1];	/* UTF-8 */
	uint32_t current_version;
	int64_t deletion_ms;		/* 0 unless PendingDeletion */
	char creator[STORE_NAME_MAX];	/* principal that created it */
	uint64_t row_version;		/* bumped by every mutation */
};

struct store_version {
	uint8_t key_id[16];
	uint32_t version;
	int64_t creation_ms;
	uint8_t material[STORE_MATERIAL_MAX];	/* wrapped blob / CKA_ID */
	size_t material_len;
	int resident;			/* 1: material is a CKA_ID */
	uint64_t enc_reserved;		/* encryptions reserved (see below) */
};

struct store_tag {
	char key[128 * 4 + 1];		/* 1..128 characters, UTF-8 */
	char value[256 * 4 + 1];	/* 0..256 characters, UTF-8 */
};

/* An alias: alias/<name> → key. */
struct store_alias {
	char name[STORE_NAME_MAX + 1];
	uint8_t key_id[16];
	int64_t creation_ms;
	int64_t update_ms;
};

#define STORE_GRANT_ID_MAX 64
#define STORE_GRANT_OPS_MAX 1024	/* JSON array of operation names */
#define STORE_GRANT_CONSTRAINTS_MAX 16384	/* JSON constraints object */

struct store_grant {
	char grant_id[STORE_GRANT_ID_MAX + 1];
	uint8_t key_id[16];
	char name[STORE_NAME_MAX + 1];		/* "" when none */
	char grantee[STORE_NAME_MAX];
	char retiring[STORE_NAME_MAX];		/* "" when none */
	char operations[STORE_GRANT_OPS_MAX];
	char constraints[STORE_GRANT_CONSTRAINTS_MAX];	/* "" when none */
	uint8_t token_hash[32];			/* SHA-256 of the token */
	int64_t creation_ms;
	char issuer[STORE_NAME_MAX];
};

/* Why a version was added (the rotation history, ListKeyRotations). */
enum rotation_kind {
	ROTATION_AUTOMATIC = 1,		/* the rotation schedule */
	ROTATION_ON_DEMAND,		/* RotateKeyOnDemand */
	ROTATION_BUDGET,		/* a version's GCM budget was spent */
};

/* A key's automatic rotation, while enabled. */
struct store_rotation_schedule {
	uint32_t period_days;		/* 90-2560 */
	int64_t base_ms;		/* counted from: enable or last rotation */
	int64_t next_ms;		/* base_ms + period */
};

struct store_rotation {
	uint32_t version;		/* the version the rotation made */
	int kind;			/* enum rotation_kind */
	int64_t rotation_ms;
};

/* Imported key material (origin EXTERNAL): what was imported, and until
 * when.  The check value recognises the same material again. */
struct store_import {
	uint8_t kcv[16];
	int expires;			/* KEY_MATERIAL_EXPIRES */
	int64_t valid_to_ms;		/* when expires */
	int present;			/* material in place now */
};

/* An import token (GetParametersForImport), by the SHA-256 of the token;
 * the HSM's private key that unwraps material for it has CKA_ID
 * wrapping_key_id. */
struct store_import_token {
	uint8_t hash[32];
	uint8_t key_id[16];
	uint8_t wrapping_key_id[32];
	size_t wrapping_key_id_len;
	char algorithm[32];
	int64_t expires_ms;
};

/* The domain-key rotation (one at a time), durable so that it resumes. */
enum domain_rotation_state {
	DOMAIN_ROTATION_REQUESTED = 1,
	DOMAIN_ROTATION_REWRAPPING,
	DOMAIN_ROTATION_DONE,
};

struct store_domain_rotation {
	int state;			/* enum domain_rotation_state */
	uint8_t cursor_key[16];		/* last version re-wrapped */
	uint32_t cursor_version;	/* 0: from the start */
	uint64_t done, total;
	int64_t started_ms, finished_ms;
	char requested_by[STORE_NAME_MAX];
};

#define STORE_LEASE_NAME_MAX 64
#define STORE_LEASE_HOLDER_MAX 96

typedef struct store store;

struct store_ops {
	void (*close)(store *s);
	/* Key row, its first version and its tags, in one transaction.
	 * KMS_EALREADYEXISTS if the id exists. */
	int (*create_key)(store *s, const struct store_key *k,
	    const struct store_version *v, const struct store_tag *tags,
	    size_t ntags);
	int (*get_key)(store *s, const uint8_t id[16], struct store_key *out);
	/* Replaces the mutable columns (state, description, current_version,
	 * deletion_ms) and bumps row_version; out-param gets the new one. */
	int (*update_key)(store *s, const struct store_key *k,
	    uint64_t *row_version);
	/* Keys ordered by id, strictly after `after` (NULL: from the start);
	 * fills up to max ids and sets *more when others follow. */
	int (*list_keys)(store *s, const uint8_t *after, size_t max,
	    uint8_t (*ids)[16], size_t *n, int *more);
	int (*add_version)(store *s, const struct store_version *v);
	/* All versions of a key, ascending; *out malloc'd, caller frees. */
	int (*get_versions)(store *s, const uint8_t id[16],
	    struct store_version **out, size_t *n);
	/* Durably raise a version's reservation of GCM encryptions (never
	 * lowers it).  The daemon reserves in blocks so a crash can never
	 * let a version exceed the 2^32 random-IV bound. */
	int (*reserve_encryptions)(store *s, const uint8_t id[16],
	    uint32_t version, uint64_t reserved);
	/* Tags. */
	int (*get_tags)(store *s, const uint8_t id[16], struct store_tag **out,
	    size_t *n);
	/* Every version of every key, for start-up reconciliation. */
	int (*for_each_version)(store *s,
	    int (*fn)(const struct store_version *v, void *arg), void *arg);
	/* Destroy a key and everything that hangs from it (deletion). */
	int (*delete_key)(store *s, const uint8_t id[16]);
	uint64_t (*count_keys)(store *s);

	/* Tags: upsert / remove by key name (missing names are ignored). */
	int (*put_tags)(store *s, const uint8_t id[16],
	    const struct store_tag *tags, size_t n);
	int (*delete_tags)(store *s, const uint8_t id[16],
	    const char *const *keys, size_t n);

	/* Aliases.  create: KMS_EALREADYEXISTS if the name is taken. */
	int (*create_alias)(store *s, const struct store_alias *a);
	int (*update_alias)(store *s, const char *name, const uint8_t id[16],
	    int64_t update_ms);
	int (*delete_alias)(store *s, const char *name);
	int (*get_alias)(store *s, const char *name, struct store_alias *out);
	/* By name, strictly after `after` (NULL: start), optionally only
	 * one key's (key_id NULL: all). */
	int (*list_aliases)(store *s, const uint8_t *key_id, const char *after,
	    size_t max, struct store_alias *out, size_t *n, int *more);
	int (*count_aliases)(store *s, const uint8_t id[16], size_t *n);

	/* Key policy "default"; put bumps the key's row_version and returns
	 * the new policy version.  get: *doc malloc'd (caller frees);
	 * KMS_ENOTFOUND when the key has none. */
	int (*put_policy)(store *s, const uint8_t id[16], const char *doc,
	    uint64_t *policy_version);
	int (*get_policy)(store *s, const uint8_t id[16], char **doc,
	    uint64_t *policy_version);

	/* Grants; create and delete bump the key's row_version. */
	int (*create_grant)(store *s, const struct store_grant *g);
	int (*delete_grant)(store *s, const uint8_t id[16],
	    const char *grant_id);
	/* All grants of a key in creation order; *out malloc'd. */
	int (*get_grants)(store *s, const uint8_t id[16],
	    struct store_grant **out, size_t *n);
	int (*find_grant_by_token)(store *s, const uint8_t hash[32],
	    struct store_grant *out);
	/* Grants whose retiring principal is p, by grant id after `after`. */
	int (*list_retirable)(store *s, const char *p, const char *after,
	    size_t max, struct store_grant **out, size_t *n, int *more);

	/* ---- operations ---- */
	/* A consistent copy of the whole store, made online (writers keep
	 * going), into a new file at path (mode 0600); the number of keys in
	 * the copy in *nkeys. */
	int (*backup)(store *s, const char *path, uint64_t *nkeys);
	/* ---- the key's life: rotation, deletion, leases ---- */

	/* A rotation: v (the next version) becomes current, recorded in the
	 * history as kind, all in one transaction that bumps row_version
	 * (*row_version gets it); an AUTOMATIC one also moves the schedule
	 * on (base = v's creation).  KMS_EALREADYEXISTS when the version
	 * exists (another rotation won), KMS_ENOTFOUND when the key is
	 * gone. */
	int (*rotate_key)(store *s, const struct store_version *v, int kind,
	    uint64_t *row_version);
	/* Enable (upsert rs) or disable (rs NULL) automatic rotation. */
	int (*set_rotation_schedule)(store *s, const uint8_t id[16],
	    const struct store_rotation_schedule *rs);
	/* KMS_ENOTFOUND when automatic rotation is off. */
	int (*get_rotation_schedule)(store *s, const uint8_t id[16],
	    struct store_rotation_schedule *out);
	/* History by version, strictly after `after` (0: from the start). */
	int (*list_rotations)(store *s, const uint8_t id[16], uint32_t after,
	    size_t max, struct store_rotation *out, size_t *n, int *more);
	int (*count_rotations)(store *s, const uint8_t id[16], int kind,
	    size_t *n);
	/* Up to max Enabled keys whose automatic rotation is due at now. */
	int (*due_rotations)(store *s, int64_t now, size_t max,
	    uint8_t (*ids)[16], size_t *n);
	/* Up to max PendingDeletion keys whose deletion date is past. */
	int (*due_deletions)(store *s, int64_t now, size_t max,
	    uint8_t (*ids)[16], size_t *n);
	/*
	 * Leases: work claimed by one holder (one kmsd node, one request)
	 * until expires, so that several nodes sharing a store do it once.
	 * claim: 0 when holder now has name (free, expired, or its own),
	 * KMS_ECONFLICT when someone else holds it.  release: only the
	 * holder's.  get: KMS_ENOTFOUND when free or expired.
	 */
	int (*claim_lease)(store *s, const char *name, const char *holder,
	    int64_t now, int64_t ttl_ms);
	int (*release_lease)(store *s, const char *name, const char *holder);
	int (*get_lease)(store *s, const char *name, int64_t now,
	    char holder[STORE_LEASE_HOLDER_MAX], int64_t *since_ms);
	/* Delete a key and everything hanging from it, then checkpoint and
	 * truncate the WAL, so that the deleted bytes (secure_delete zeroes
	 * them in the database file) are in neither file. */
	int (*shred_key)(store *s, const uint8_t id[16]);

	/* ---- imported key material ---- */

	int (*put_import_token)(store *s, const struct store_import_token *t);
	/* KMS_ENOTFOUND when no such token. */
	int (*get_import_token)(store *s, const uint8_t hash[32],
	    struct store_import_token *out);
	/* Its HSM key destroyed: the row stays, without the key's id. */
	int (*delete_import_token)(store *s, const uint8_t hash[32]);
	/* Up to max tokens expired at now (their HSM keys to destroy). */
	int (*due_import_tokens)(store *s, int64_t now, size_t max,
	    struct store_import_token *out, size_t *n);
	/* The material arrives: version v (1) becomes current, the key
	 * Enabled, im recorded, in one transaction. */
	int (*import_material)(store *s, const struct store_version *v,
	    const struct store_import *im, uint64_t *row_version);
	/* Re-import of the same material: only its expiry changes. */
	int (*set_import_expiry)(store *s, const uint8_t id[16],
	    const struct store_import *im);
	/* KMS_ENOTFOUND when nothing was ever imported. */
	int (*get_import)(store *s, const uint8_t id[16],
	    struct store_import *out);
	/* The material goes (deleted or expired): versions erased (and the
	 * WAL truncated, as for shred_key), the key PendingImport. */
	int (*delete_material)(store *s, const uint8_t id[16],
	    uint64_t *row_version);
	/* Up to max keys whose imported material expired at now. */
	int (*due_expirations)(store *s, int64_t now, size_t max,
	    uint8_t (*ids)[16], size_t *n);

	/* ---- domain-key rotation ---- */

	/* KMS_ENOTFOUND when none ever ran. */
	int (*get_domain_rotation)(store *s,
	    struct store_domain_rotation *out);
	int (*put_domain_rotation)(store *s,
	    const struct store_domain_rotation *r);
	/* Wrapped versions in (key_id, version) order after the cursor of
	 * r (cursor_version 0: from the start), up to max. */
	int (*next_wrapped_versions)(store *s,
	    const struct store_domain_rotation *r, size_t max,
	    struct store_version *out, size_t *n);
	uint64_t (*count_wrapped_versions)(store *s);
	/* New material for n versions and the rotation's new cursor and
	 * count, in one transaction. */
	int (*rewrap_versions)(store *s, const struct store_version *v,
	    size_t n, const struct store_domain_rotation *r);
};

struct store {
	const struct store_ops *ops;
};

/* SQLite: opens (creating) the database at path, WAL, synchronous=FULL,
 * runs numbered migrations, prepares statements. */
int store_sqlite_open(const char *path, store **out, char *errbuf,
    size_t errlen);

#endif
