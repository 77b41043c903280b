/*
 * kmsd.h — the daemon's shared state, its workers, and the interfaces
 * between its layers:
 *
 *   daemon/    main, config, open/close, HSM tending, heap wiping
 *   frontend/  IPC listener (req0/rep0), worker threads, peer credentials
 *   dispatch/  request bytes + principal → reply JSON (knows no transport)
 *   ops/       one handler per AWS operation, one file per family
 *   keys/      key metadata and HSM handles in memory, loaded from the store
 *   authz/     key policies and grants applied to a request
 *   store/     the metadata store interface and its SQLite back end
 *
 * struct kmsd is shared by all workers: its config is read-only after
 * start-up and its key cache is internally locked.  struct worker belongs to
 * one thread: its HSM session and store connection are used by it alone.
 *
 * The HSM's turn (hsm_turn): every request holds it for reading from start
 * to end (dispatch), and the scheduler holds it for writing while it
 * recovers or re-initialises the PKCS#11 module (kmsd_hsm_tend), so no
 * request is ever between finding a cached handle and using it while the
 * module may give that handle's number to another object.
 */
#ifndef KMSD_KMSD_H
#define KMSD_KMSD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "hsm/hsm.h"
#include "kmsd/daemon/config.h"
#include "kmsd/store/store.h"

#define PRINCIPAL_MAX 160
#define PRINCIPAL_GROUPS_MAX 32

/* Who is calling, as the transport proved it (never from the request). */
struct principal {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char name[PRINCIPAL_MAX];	/* preferred form: user:<name> */
	char uid_name[32];		/* uid:<n> */
	char groups[PRINCIPAL_GROUPS_MAX][80];	/* group:<name> */
	int ngroups;
	char source[64];		/* "ipc" or a peer address */
};

struct keycache;
struct authz;
struct audit;

#define KEY_ARN_PREFIX_MAX 80

struct kmsd {
	struct config cfg;
	hsm *hsm;
	struct keycache *keys;
	struct authz *authz;
	struct audit *audit;		/* NULL: auditing off (audit.h) */
	atomic_int stopping;
	atomic_uint_fast64_t requests;
	/* Set when lifecycle work may have come due (the test clock moved,
	 * a key was enabled): the scheduler looks at once. */
	atomic_int lifecycle_kick;
	/* Held by a Batch while it makes its recorded HSM calls, when
	 * cfg.batch_hsm_exclusive (dispatch.c, run_hsm_jobs). */
	pthread_mutex_t batch_turn;
	/* See above.  Writer-preferring: a steady stream of requests cannot
	 * starve the scheduler.  Never taken twice by one thread (a reader
	 * waiting behind a waiting writer would deadlock). */
	pthread_rwlock_t hsm_turn;
	/* kmsd_hsm_tend's own, scheduler thread only: */
	uint64_t hsm_retry_at;		/* next recovery attempt (mono_ms) */
	int recycle_off;		/* the module cannot be re-initialised */
	int hsm_down_told;		/* the audit log knows it is down */
	hsm_session *tend_hs;		/* to find resident objects again */
	/* This node's name in the store's leases: host:pid. */
	char node_id[80];
	/* The scheduler's lifecycle work (daemon/lifecycle.c), its thread
	 * only: its own HSM session and store connection, and when it last
	 * looked for due work (mono_ms). */
	struct worker *life_w;
	uint64_t life_at;
	/* "arn:<partition>:kms:<region>:<account>:key/" and ":alias/",
	 * made once by kmsd_open (the fields' lengths are bounded, so a key
	 * ARN always fits KEY_ARN_MAX). */
	char key_arn_prefix[KEY_ARN_PREFIX_MAX];
	size_t key_arn_prefix_len;
	char alias_arn_prefix[KEY_ARN_PREFIX_MAX];
	size_t alias_arn_prefix_len;
	/* For the metrics endpoint (frontend/metrics.c). */
	atomic_uint_fast64_t hsm_recoveries;
	atomic_uint_fast64_t hsm_recycles;
	atomic_int ipc_connections;
	atomic_int http_connections;
};

struct worker {
	struct kmsd *d;
	int id;
	hsm_session *hs;
	store *st;
	/* Locked scratch for the secrets of one request, sized from the
	 * limits (OP_SCRATCH_CAP, ops/op.h). */
	uint8_t *secret;
	size_t secret_cap;
};

/* ---- keys/keycache.c ---- */

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

/* ---- dispatch/dispatch.c ---- */

/*
 * Handle one message (a request or a Batch) from principal p and return
 * the reply object (never NULL unless out of memory; the caller
 * json_decref()s it).  Every failure is a typed error object.
 */
json_t *dispatch(struct worker *w, const struct principal *p,
    const void *buf, size_t len);
/* Same, serialised: malloc'd bytes (for tests and fuzzing). */
char *dispatch_bytes(struct worker *w, const struct principal *p,
    const void *buf, size_t len, size_t *outlen);

/* ---- daemon life cycle (daemon/daemon.c) ---- */

/* Open HSM, store, key cache; 0 or error with a sentence in err. */
int kmsd_open(struct kmsd *d, char *err, size_t errlen);
void kmsd_close(struct kmsd *d);
int worker_init(struct kmsd *d, int id, struct worker *w, char *err,
    size_t errlen);
void worker_fini(struct worker *w);
/*
 * The scheduler's HSM duties, called every tick: after an outage, try to
 * recover every cfg.hsm_retry_ms; once cfg.hsm_recycle_objects session
 * objects have been made, re-initialise the module (SoftHSM2 2.6.1 frees
 * destroyed session objects only at C_Finalize).  Both run with hsm_turn
 * held for writing and drop the cached handles; each logs one line.
 */
void kmsd_hsm_tend(struct kmsd *d);
/* Fill a principal for a uid/gid/pid (names resolved, cached). */
void principal_from_uid(struct principal *p, uid_t uid, gid_t gid,
    pid_t pid);

/* ---- daemon/lifecycle.c ---- */

/* A lease on a key's lifecycle work outlives a node that died holding it
 * by this much; then another node may take the work over. */
#define LEASE_TTL_MS 60000
/* The store lease covering key id's rotation and deletion: "key:<id>". */
void lease_name(const uint8_t id[16], char *out, size_t len);
/*
 * Claim lease name for holder (a name starting with this node's node_id)
 * for LEASE_TTL_MS.  A lease held by a kmsd of this host that no longer
 * runs (its pid is gone: killed, or restarted) is released first, so a
 * restarted node does not wait out the TTL of its own dead self.  0 or
 * KMS_ECONFLICT (another live holder) or the store's error.
 */
int lease_claim(struct worker *w, const char *name, const char *holder);
/*
 * The scheduler's lifecycle duties, called every tick (at most one pass a
 * second unless lifecycle_kick is set): automatic rotations that are due
 * (Enabled keys only: a disabled key catches up once enabled again) and
 * deletions whose date has come (the shred).  Each key's work is claimed
 * through the store's lease first.  Holds hsm_turn for reading.
 */
void kmsd_lifecycle_tend(struct kmsd *d);
/* Rotate due key ki (lease held); shred key id (lease held).  For the
 * scheduler and for tests. */
int lifecycle_shred(struct worker *w, const uint8_t id[16]);
void kmsd_lifecycle_fini(struct kmsd *d);
/* Imported material goes (deleted or expired; lease held): destroyed in
 * the HSM and erased from the store, the key PendingImport
 * (ops/op_import.c). */
int import_drop_material(struct worker *w, const uint8_t id[16]);

/* ---- frontend/ipc.c ---- */
int server_run(struct kmsd *d, char *err, size_t errlen);

/* ---- daemon/clock.c ---- */

/* kmsd's clock, milliseconds since the epoch: the time of day plus the
 * test clock's offset (0 unless test_clock = yes and a test moved it).
 * Every lifecycle date and every "is it due" reads this. */
int64_t now_ms(void);
/* Move the clock forward by ms (> 0); returns the new offset.  Callers
 * check cfg.test_clock first. */
int64_t clock_advance(int64_t ms);
int64_t clock_offset(void);

#endif
