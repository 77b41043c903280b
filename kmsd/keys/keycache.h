/*
 * keycache.h — keys in memory: each key's metadata and the HSM handles of
 * its versions, loaded from the store on first use (keycache.c).
 *
 * Thread safety: every function may be called from any worker; the cache
 * takes its own mutex (never held by a caller: none of these is a
 * _locked function) and never holds it over HSM key generation or a
 * durable store write.  Ownership: the cache belongs to struct kmsd
 * (keycache_create/destroy); a struct key_info is the caller's copy; a
 * struct key_use pins a version until keycache_unpin.
 */
#ifndef KMSD_KEYS_KEYCACHE_H
#define KMSD_KEYS_KEYCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"
#include "kmsd/kmsd.h"
#include "kmsd/store/store.h"

#define KEY_ARN_MAX 128

/* A key as the handlers see it: a snapshot copied out under the lock. */
struct key_info {
	uint8_t id[16];
	char id_str[37];
	char arn[KEY_ARN_MAX];
	int state;			/* enum key_state */
	int64_t creation_ms;
	int64_t deletion_ms;
	uint32_t current_version;
	char key_usage[32];
	char key_spec[32];
	char origin[16];
	char creator[STORE_NAME_MAX];
	uint64_t row_version;
	/* The cache's record of the key (records live as long as the daemon):
	 * lets pinning skip a second hash lookup.  NULL: look it up. */
	const void *entry;
};

/* A version pinned for one operation; release with keycache_unpin. */
struct key_use {
	void *v;			/* the cache's version record */
	hsm_key handle;
	uint32_t version;
	uint32_t rotated;		/* the version this pin's budget
					 * rotation made (0: none), for the
					 * caller to record */
};

int keycache_create(struct kmsd *d, struct keycache **out);
void keycache_destroy(struct keycache *kc, hsm_session *hs);
/* Load metadata (and, in resident mode, HSM copies) at start-up. */
int keycache_startup(struct worker *w, char *err, size_t errlen);

/*
 * Resolve a KeyId (id or key ARN) to a snapshot.  KMS_ENOTFOUND or
 * KMS_EVALIDATION (malformed).  Loads from the store on a miss.
 */
int keycache_lookup(struct worker *w, const char *key_id, struct key_info *out,
    char *msg, size_t msglen);
int keycache_lookup_id(struct worker *w, const uint8_t id[16],
    struct key_info *out);
/* Pin the current version of ki's key for encryption (counts the
 * encryption, rotates when the version is spent) or a given version for
 * decryption; ki comes from a lookup. */
int keycache_pin_encrypt(struct worker *w, const struct key_info *ki,
    struct key_use *u);
int keycache_pin_decrypt(struct worker *w, const struct key_info *ki,
    uint32_t version, struct key_use *u);
void keycache_unpin(struct worker *w, struct key_use *u);
/* Rotate ki's key now: a new version made in the HSM becomes current
 * (recorded as kind, enum rotation_kind); *made gets its number.
 * KMS_ECONFLICT while another rotation of the key is under way.  The
 * cache's lock is not held over the HSM or the store. */
int keycache_rotate(struct worker *w, const struct key_info *ki, int kind,
    uint32_t *made);
/* The key is being shredded: NotFound from now on; waits for requests
 * using it to finish and drops its HSM handles. */
int keycache_forget(struct worker *w, const uint8_t id[16]);
/* Imported material goes (deleted, expired): the key is PendingImport
 * from now on; waits for requests using it and drops its versions. */
int keycache_drop_material(struct worker *w, const uint8_t id[16]);
/* A resident version's token object, as kept by the cache (so that
 * loading or destroying it never searches). */
void keycache_set_resident_ref(struct worker *w, const uint8_t id[16],
    uint32_t version, const hsm_resident_ref *ref);
int keycache_resident_ref(struct worker *w, const uint8_t id[16],
    uint32_t version, hsm_resident_ref *out);
/* A domain-key rotation re-wrapped (id, version): the cached blob too. */
void keycache_set_material(struct worker *w, const uint8_t id[16],
    uint32_t version, const uint8_t *m, size_t len);
/* Create a key of origin EXTERNAL: no material, PendingImport. */
int keycache_create_external(struct worker *w, struct store_key *k,
    const struct store_tag *tags, size_t ntags);
/* A mutation was committed to the store: refresh this key's entry. */
int keycache_refresh(struct worker *w, const uint8_t id[16]);
/* Key versions holding an HSM object now (for metrics). */
size_t keycache_handles(struct keycache *kc);
/* After an HSM outage: every handle is stale. */
void keycache_invalidate_handles(struct keycache *kc);
/* Resident mode, after a recovery or re-initialisation: find every cached
 * version's token object again with one search, so that loading one
 * copies it by handle instead of searching (docs/design.md §3).  No-op when
 * wrapped. */
int keycache_refind_resident(struct keycache *kc, hsm_session *hs);
/* Create a key: material in the HSM, row committed, entry cached. */
int keycache_create_key(struct worker *w, struct store_key *k,
    const struct store_tag *tags, size_t ntags);
void key_arn(const struct kmsd *d, const char *id_str, char *out, size_t len);
/* arn:<partition>:kms:<region>:<account>:<name> for "alias/<...>". */
void alias_arn(const struct kmsd *d, const char *name, char *out, size_t len);

#endif
