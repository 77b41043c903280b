/*
 * store.h — the metadata store interface (DESIGN §7).
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
	char key[129];			/* 1..128 characters */
	char value[257 * 4];		/* 0..256 characters, UTF-8 */
};

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
};

struct store {
	const struct store_ops *ops;
};

/* SQLite: opens (creating) the database at path, WAL, synchronous=FULL,
 * runs numbered migrations, prepares statements. */
int store_sqlite_open(const char *path, store **out, char *errbuf,
    size_t errlen);

#endif
