/*
 * keycache.c — keys in memory: the metadata the request path needs and the
 * HSM handles of their versions.
 *
 * Entries are loaded from the store on first use and kept (about 200 bytes
 * a key, so 100k keys fit easily); HSM handles are bounded by
 * key_cache_handles and evicted by a clock sweep, since every unwrapped
 * version is a session object inside the HSM.  One mutex guards the table;
 * a version in use is pinned so it cannot be evicted under a worker.  HSM
 * calls made under the lock are the cold ones only (unwrap or load on a
 * miss, release on eviction or shred); HSM key generation and durable
 * store writes never run under it (asserted).  Functions named *_locked
 * require kc->mu held (common/mutex.h); get_and_lock and
 * get_info_and_lock return with it held.
 *
 * Encryption counting (docs/design.md §4): each version counts its encryptions and
 * reserves them durably in blocks before use; after a restart the count
 * resumes at the reservation, so a crash can only waste IVs, never reuse
 * the 2^32 budget.  A spent version makes the key rotate automatically.
 *
 * Rotation (keycache_rotate, and the budget rotation inside
 * keycache_pin_encrypt) marks the key as rotating under the lock, then
 * releases it for the HSM's generation of the new version and the durable
 * store write, and takes it again only to install the version as current:
 * other keys are served meanwhile, and this key's encryptions go on with
 * their version (or, if it is spent, wait on kc->cv for the new one).
 * Deletion marks an entry deleted (lookups answer NotFound from then on),
 * waits for its pins to drain and drops its HSM handles.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/be.h"
#include "common/blob.h"
#include "common/ctx.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mutex.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"

#define KC_BUCKETS 65536	/* power of two */
#define KC_RESERVE_BLOCK (1ULL << 20)	/* encryptions reserved per write */
#define KEYCACHE_KEY_ID_MAX 2048	/* AWS KeyId length, characters */

struct kentry;

struct kver {
	struct kentry *e;
	uint32_t version;
	uint8_t material[STORE_MATERIAL_MAX];
	uint8_t material_len;
	uint8_t resident;
	uint8_t referenced;		/* clock bit */
	uint8_t unavailable;		/* material could not be loaded */
	int pins;
	hsm_key handle;			/* 0: not loaded */
	uint64_t gen;			/* hsm generation of handle */
	hsm_resident_ref tok;		/* resident: the token object */
	size_t slot;			/* index in the clock ring */
	uint64_t enc_count;
	uint64_t enc_reserved;
};

struct kentry {
	struct kentry *next;
	uint8_t id[16];
	int state;
	int64_t creation_ms;
	int64_t deletion_ms;
	uint32_t current_version;
	uint64_t row_version;
	uint8_t rotating;		/* a rotation is making a version */
	uint8_t deleted;		/* shredded: NotFound from now on */
	char key_usage[24];
	char key_spec[24];
	char origin[12];
	struct kver **versions;		/* index version - 1 */
	uint32_t nversions;
};

struct keycache {
	struct kmsd *d;
	struct kms_mutex mu;		/* the table, every entry and version */
	pthread_cond_t cv;		/* a rotation finished */
	struct kentry *buckets[KC_BUCKETS];
	size_t nentries;
	struct kver **ring;		/* versions holding an HSM handle */
	size_t ring_len, ring_cap, hand;
};

void
key_arn(const struct kmsd *d, const char *id_str, char *out, size_t len)
{
	snprintf(out, len, "%s%s", d->key_arn_prefix, id_str);
}

void
alias_arn(const struct kmsd *d, const char *name, char *out, size_t len)
{
	/* The prefix ends in "alias/"; name starts with it. */
	snprintf(out, len, "%.*s%s", (int)(d->alias_arn_prefix_len - 6),
	    d->alias_arn_prefix, name);
}

/* dst (of dstsz) = NUL-terminated src of at most srcsz bytes, cut to fit. */
static void
copy_field(char *dst, size_t dstsz, const char *src, size_t srcsz)
{
	size_t n = strnlen(src, srcsz);

	if (n >= dstsz) {
		n = dstsz - 1;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static size_t
bucket_of(const uint8_t id[16])
{
	uint64_t h;

	/* Ids are random UUIDs: their bytes are already uniform. */
	memcpy(&h, id + 8, sizeof(h));
	return (size_t)(h & (KC_BUCKETS - 1));
}

int
keycache_create(struct kmsd *d, struct keycache **out)
{
	struct keycache *kc;

	if ((kc = calloc(1, sizeof(*kc))) == NULL) {
		return KMS_ENOMEM;
	}
	kc->d = d;
	kc->ring_cap = d->cfg.key_cache_handles;
	if ((kc->ring = calloc(kc->ring_cap, sizeof(*kc->ring))) == NULL) {
		free(kc);
		return KMS_ENOMEM;
	}
	kms_mutex_init(&kc->mu);
	pthread_cond_init(&kc->cv, NULL);
	*out = kc;
	return 0;
}

static void
entry_free(struct kentry *e)
{
	uint32_t i;

	for (i = 0; i < e->nversions; i++) {
		free(e->versions[i]);
	}
	free(e->versions);
	free(e);
}

void
keycache_destroy(struct keycache *kc, hsm_session *hs)
{
	size_t i;

	if (kc == NULL) {
		return;
	}
	for (i = 0; i < kc->ring_len; i++) {
		struct kver *v = kc->ring[i];
		if (v != NULL && v->handle != 0 && hs != NULL &&
		    v->gen == hsm_generation(kc->d->hsm)) {
			hsm_key_release(hs, v->handle);
		}
	}
	for (i = 0; i < KC_BUCKETS; i++) {
		struct kentry *e = kc->buckets[i], *n;
		for (; e != NULL; e = n) {
			n = e->next;
			entry_free(e);
		}
	}
	free(kc->ring);
	pthread_cond_destroy(&kc->cv);
	kms_mutex_destroy(&kc->mu);
	free(kc);
}

static struct kentry *
find_locked(struct keycache *kc, const uint8_t id[16])
{
	struct kentry *e;

	kms_mutex_assert_held(&kc->mu);
	for (e = kc->buckets[bucket_of(id)]; e != NULL; e = e->next) {
		if (memcmp(e->id, id, 16) == 0) {
			return e;
		}
	}
	return NULL;
}

static void
info_from_entry(const struct kmsd *d, const struct kentry *e,
    struct key_info *out)
{
	size_t plen = d->key_arn_prefix_len;

	/* On every request: copies, not printf. */
	memcpy(out->id, e->id, 16);
	blob_uuid_format(e->id, out->id_str);
	memcpy(out->arn, d->key_arn_prefix, plen);
	memcpy(out->arn + plen, out->id_str, sizeof(out->id_str));
	out->state = e->state;
	out->creation_ms = e->creation_ms;
	out->deletion_ms = e->deletion_ms;
	out->current_version = e->current_version;
	copy_field(out->key_usage, sizeof(out->key_usage), e->key_usage,
	    sizeof(e->key_usage));
	copy_field(out->key_spec, sizeof(out->key_spec), e->key_spec,
	    sizeof(e->key_spec));
	copy_field(out->origin, sizeof(out->origin), e->origin,
	    sizeof(e->origin));
	out->creator[0] = '\0';
	out->row_version = e->row_version;
	out->entry = e;
}

static int
add_version(struct kentry *e, const struct store_version *sv)
{
	struct kver *v, **nv;

	if (sv->version != e->nversions + 1 ||
	    sv->material_len > STORE_MATERIAL_MAX) {
		return KMS_EINTERNAL;	/* versions are dense from 1 */
	}
	if ((v = calloc(1, sizeof(*v))) == NULL) {
		return KMS_ENOMEM;
	}
	if ((nv = realloc(e->versions, (e->nversions + 1) *
	    sizeof(*nv))) == NULL) {
		free(v);
		return KMS_ENOMEM;
	}
	e->versions = nv;
	v->e = e;
	v->version = sv->version;
	memcpy(v->material, sv->material, sv->material_len);
	v->material_len = (uint8_t)sv->material_len;
	v->resident = (uint8_t)(sv->resident != 0);
	v->slot = SIZE_MAX;
	v->enc_reserved = sv->enc_reserved;
	v->enc_count = sv->enc_reserved;	/* assume the block was spent */
	e->versions[e->nversions++] = v;
	return 0;
}

static void
entry_set_meta(struct kentry *e, const struct store_key *k)
{
	e->state = k->state;
	e->creation_ms = k->creation_ms;
	e->deletion_ms = k->deletion_ms;
	e->current_version = k->current_version;
	e->row_version = k->row_version;
	snprintf(e->key_usage, sizeof(e->key_usage), "%s", k->key_usage);
	snprintf(e->key_spec, sizeof(e->key_spec), "%s", k->key_spec);
	snprintf(e->origin, sizeof(e->origin), "%s", k->origin);
}

/* Read a key and its versions from the store into a new, unlinked entry. */
static int
load_entry(struct worker *w, const uint8_t id[16], struct kentry **out)
{
	struct store_key *k = NULL;
	struct store_version *vs = NULL;
	struct kentry *e = NULL;
	size_t n = 0, i;
	int r;

	if ((k = malloc(sizeof(*k))) == NULL) {
		return KMS_ENOMEM;
	}
	if ((r = w->st->ops->get_key(w->st, id, k)) != 0) {
		goto out;
	}
	if ((r = w->st->ops->get_versions(w->st, id, &vs, &n)) != 0) {
		goto out;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		r = KMS_ENOMEM;
		goto out;
	}
	memcpy(e->id, id, 16);
	entry_set_meta(e, k);
	for (i = 0; i < n; i++) {
		if ((r = add_version(e, &vs[i])) != 0) {
			goto out;
		}
	}
	if (e->current_version == 0 && e->nversions == 0 &&
	    e->state == KEY_PENDING_IMPORT) {
		/* Imported material not (or no longer) there: fine. */
	} else if (e->current_version == 0 ||
	    e->current_version > e->nversions) {
		log_warn("key %s: current version %u of %u; "
		    "marking Unavailable", "?", e->current_version,
		    e->nversions);
		e->state = KEY_UNAVAILABLE;
	}
	*out = e;
	e = NULL;
	r = 0;
 out:
	if (e != NULL) {
		entry_free(e);
	}
	free(vs);
	free(k);
	return r;
}

/* The entry ki was looked up from (records are never freed while the
 * daemon runs), with kc->mu held; or find or load it as get_and_lock. */
static int get_and_lock(struct worker *w, const uint8_t id[16],
    struct kentry **ep);

static int
get_info_and_lock(struct worker *w, const struct key_info *ki,
    struct kentry **ep)
{
	struct keycache *kc = w->d->keys;
	struct kentry *e = (struct kentry *)ki->entry;

	if (e != NULL) {
		kms_mutex_lock(&kc->mu);
		if (memcmp(e->id, ki->id, 16) == 0) {
			if (e->deleted) {
				kms_mutex_unlock(&kc->mu);
				return KMS_ENOTFOUND;
			}
			*ep = e;
			return 0;
		}
		kms_mutex_unlock(&kc->mu);
	}
	return get_and_lock(w, ki->id, ep);
}

/* Find or load; returns with kc->mu held and *ep set on success. */
static int
get_and_lock(struct worker *w, const uint8_t id[16], struct kentry **ep)
{
	struct keycache *kc = w->d->keys;
	struct kentry *e, *loaded = NULL;
	int r;

	kms_mutex_lock(&kc->mu);
	if ((e = find_locked(kc, id)) != NULL) {
		if (e->deleted) {
			kms_mutex_unlock(&kc->mu);
			return KMS_ENOTFOUND;
		}
		*ep = e;
		return 0;
	}
	kms_mutex_unlock(&kc->mu);
	if ((r = load_entry(w, id, &loaded)) != 0) {
		return r;
	}
	kms_mutex_lock(&kc->mu);
	if ((e = find_locked(kc, id)) != NULL) {
		entry_free(loaded);	/* another worker won the race */
		if (e->deleted) {
			kms_mutex_unlock(&kc->mu);
			return KMS_ENOTFOUND;
		}
	} else {
		size_t b = bucket_of(id);
		loaded->next = kc->buckets[b];
		kc->buckets[b] = loaded;
		kc->nentries++;
		e = loaded;
	}
	*ep = e;
	return 0;
}

int
keycache_lookup_id(struct worker *w, const uint8_t id[16],
    struct key_info *out)
{
	struct keycache *kc = w->d->keys;
	struct kentry *e;
	int r;

	if ((r = get_and_lock(w, id, &e)) != 0) {
		return r;
	}
	info_from_entry(w->d, e, out);
	kms_mutex_unlock(&kc->mu);
	return 0;
}

int
keycache_lookup(struct worker *w, const char *key_id, struct key_info *out,
    char *msg, size_t msglen)
{
	const char *s = key_id;
	uint8_t id[16];
	size_t plen;
	int r;

	/* AWS counts characters (the caller's reader already did). */
	if (key_id == NULL || *key_id == '\0' ||
	    ctx_utf8_chars(key_id, strlen(key_id)) > KEYCACHE_KEY_ID_MAX) {
		snprintf(msg, msglen, "KeyId must be 1-%d characters",
		    KEYCACHE_KEY_ID_MAX);
		return KMS_EVALIDATION;
	}
	plen = w->d->key_arn_prefix_len;
	if (strncmp(s, "arn:", 4) == 0) {
		if (strncmp(s, w->d->key_arn_prefix, plen) != 0) {
			snprintf(msg, msglen, "Invalid keyId %s", key_id);
			return KMS_ENOTFOUND;
		}
		s += plen;
	} else if (strncmp(s, "alias/", 6) == 0) {
		snprintf(msg, msglen, "Alias %s is not found.", key_id);
		return KMS_ENOTFOUND;
	}
	if (blob_uuid_parse(s, strlen(s), id) != 0) {
		/* AWS quotes a bare key id (LocalStack's snapshot of AWS:
		 * "Invalid keyId 'fake-key-id'"). */
		snprintf(msg, msglen, s == key_id ? "Invalid keyId '%s'" :
		    "Invalid keyId %s", key_id);
		return KMS_ENOTFOUND;
	}
	if ((r = keycache_lookup_id(w, id, out)) == KMS_ENOTFOUND) {
		char arn[KEY_ARN_MAX], idstr[37];
		blob_uuid_format(id, idstr);
		key_arn(w->d, idstr, arn, sizeof(arn));
		snprintf(msg, msglen, "Key '%s' does not exist", arn);
	}
	return r;
}

/* Drop a version's handle (lock held). */
static void
unload_locked(struct keycache *kc, struct worker *w, struct kver *v)
{
	kms_mutex_assert_held(&kc->mu);
	if (v->handle != 0 && v->gen == hsm_generation(kc->d->hsm)) {
		hsm_key_release(w->hs, v->handle);
	}
	v->handle = 0;
	if (v->slot != SIZE_MAX) {
		kc->ring[v->slot] = NULL;
		v->slot = SIZE_MAX;
	}
}

/* Find a ring slot for a newly loaded version, evicting if full. */
static int
ring_place_locked(struct keycache *kc, struct worker *w, struct kver *v)
{
	size_t i, tries;

	kms_mutex_assert_held(&kc->mu);
	if (kc->ring_len < kc->ring_cap) {
		v->slot = kc->ring_len;
		kc->ring[kc->ring_len++] = v;
		return 0;
	}
	for (tries = 0; tries < 2 * kc->ring_cap; tries++) {
		i = kc->hand;
		kc->hand = (kc->hand + 1) % kc->ring_cap;
		if (kc->ring[i] == NULL) {
			v->slot = i;
			kc->ring[i] = v;
			return 0;
		}
		if (kc->ring[i]->pins > 0) {
			continue;
		}
		if (kc->ring[i]->referenced) {
			kc->ring[i]->referenced = 0;
			continue;
		}
		unload_locked(kc, w, kc->ring[i]);
		v->slot = i;
		kc->ring[i] = v;
		return 0;
	}
	return KMS_ELIMITEXCEEDED;	/* every cached handle is pinned */
}

static struct kver *find_version_locked(struct keycache *kc,
    const uint8_t id[16], uint32_t version);

/* The store's blob of wrapped version v, if it differs from the cached
 * one (lock held; a cold path: a domain-key rotation raced the load of
 * this entry).  1 when v->material changed. */
static int
reread_material_locked(struct worker *w, struct kver *v)
{
	struct store_version *vs = NULL;
	size_t n = 0;
	int changed = 0;

	kms_mutex_assert_held(&w->d->keys->mu);
	if (w->st->ops->get_versions(w->st, v->e->id, &vs, &n) == 0 &&
	    v->version <= n && vs[v->version - 1].version == v->version &&
	    vs[v->version - 1].material_len <= STORE_MATERIAL_MAX &&
	    (vs[v->version - 1].material_len != v->material_len ||
	    memcmp(vs[v->version - 1].material, v->material,
	    v->material_len) != 0)) {
		memcpy(v->material, vs[v->version - 1].material,
		    vs[v->version - 1].material_len);
		v->material_len = (uint8_t)vs[v->version - 1].material_len;
		changed = 1;
	}
	free(vs);
	return changed;
}

void
keycache_set_material(struct worker *w, const uint8_t id[16],
    uint32_t version, const uint8_t *m, size_t len)
{
	struct keycache *kc = w->d->keys;
	struct kver *v;

	if (len > STORE_MATERIAL_MAX) {
		return;
	}
	kms_mutex_lock(&kc->mu);
	if ((v = find_version_locked(kc, id, version)) != NULL && !v->resident) {
		memcpy(v->material, m, len);
		v->material_len = (uint8_t)len;
	}
	kms_mutex_unlock(&kc->mu);
}

/* Make sure v has a live HSM handle (lock held). */
static int
ensure_loaded_locked(struct keycache *kc, struct worker *w, struct kver *v)
{
	uint64_t gen = hsm_generation(kc->d->hsm);
	hsm_key h = 0;
	int r;

	kms_mutex_assert_held(&kc->mu);
	if (v->handle != 0 && v->gen == gen) {
		v->referenced = 1;
		return 0;
	}
	if (v->handle != 0) {
		v->handle = 0;	/* stale: vanished with the old sessions */
	}
	if (v->resident) {
		r = hsm_load_resident(w->hs, v->material, v->material_len,
		    &v->tok, &h);
	} else {
		r = hsm_unwrap(w->hs, v->material, v->material_len, &h);
		if (r == KMS_EINVALIDCIPHERTEXT && reread_material_locked(w, v)) {
			/* Re-wrapped by a domain-key rotation since it was
			 * cached: the store has the new blob. */
			r = hsm_unwrap(w->hs, v->material, v->material_len,
			    &h);
		}
	}
	if (r == KMS_ENOTFOUND || r == KMS_EINVALIDCIPHERTEXT ||
	    r == KMS_EVALIDATION) {
		/* The material is gone or corrupt: Unavailable, not a loop
		 * (and not retried until the key is reloaded). */
		char idstr[37];
		blob_uuid_format(v->e->id, idstr);
		log_warn("key %s version %u: HSM material missing "
		    "or corrupt; key Unavailable", idstr, v->version);
		v->unavailable = 1;
		if (v->version == v->e->current_version) {
			v->e->state = KEY_UNAVAILABLE;
		}
		return KMS_EKEYUNAVAILABLE;
	}
	if (r != 0) {
		return r;
	}
	if (v->slot == SIZE_MAX && (r = ring_place_locked(kc, w, v)) != 0) {
		hsm_key_release(w->hs, h);
		return r;
	}
	v->handle = h;
	v->gen = gen;
	v->referenced = 1;
	return 0;
}

/* Load v's handle if needed and pin it for the caller (lock held). */
static int
pin_locked(struct keycache *kc, struct worker *w, struct kver *v,
    struct key_use *u)
{
	int r;

	kms_mutex_assert_held(&kc->mu);
	if (v->unavailable) {
		return KMS_EKEYUNAVAILABLE;
	}
	if ((r = ensure_loaded_locked(kc, w, v)) != 0) {
		return r;
	}
	v->pins++;
	u->v = v;
	u->handle = v->handle;
	u->version = v->version;
	return 0;
}

static int
state_error(int state)
{
	switch (state) {
	case KEY_ENABLED:
		return 0;
	case KEY_DISABLED:
		return KMS_EDISABLED;
	case KEY_UNAVAILABLE:
		return KMS_EKEYUNAVAILABLE;
	default:
		return KMS_EINVALIDSTATE;
	}
}

/*
 * Make version e->nversions + 1 in the HSM and commit it as e's current
 * version, recorded as kind.  Called and returns with kc->mu held and
 * e->rotating set by the caller; releases the lock over the HSM
 * generation and the store write (e->rotating keeps the entry's versions
 * as they are meanwhile).  *made gets the new version.
 */
static int
rotate_locked(struct worker *w, struct kentry *e, int kind, uint32_t *made)
{
	struct keycache *kc = w->d->keys;
	struct store_version sv;
	hsm_resident_ref ref = { 0, 0 };
	uint64_t rv = 0;
	int r, resident = w->d->cfg.key_storage == STORAGE_RESIDENT;

	kms_mutex_assert_held(&kc->mu);
	KMS_ASSERT(e->rotating);
	if (strcmp(e->origin, "EXTERNAL") == 0) {
		/* Imported material is the owner's: kmsd makes none. */
		return KMS_EUNSUPPORTED;
	}
	memset(&sv, 0, sizeof(sv));
	memcpy(sv.key_id, e->id, 16);
	sv.version = e->nversions + 1;
	/* The new version's first block of encryptions, reserved with it. */
	sv.enc_reserved = w->d->cfg.max_encryptions < KC_RESERVE_BLOCK ?
	    w->d->cfg.max_encryptions : KC_RESERVE_BLOCK;
	kms_mutex_unlock(&kc->mu);
	/* Neither the HSM's generation nor the durable write under the
	 * cache's mutex: every worker's lookups would wait on them. */
	kms_mutex_assert_not_held(&kc->mu);
	sv.creation_ms = now_ms();
	if (resident) {
		memcpy(sv.material, e->id, 16);
		put_u32_be(sv.material + 16, sv.version);
		sv.material_len = 20;
		sv.resident = 1;
		r = hsm_generate_resident_ref(w->hs, sv.material, 20, &ref);
	} else {
		r = hsm_generate_wrapped(w->hs, sv.material,
		    sizeof(sv.material), &sv.material_len);
	}
	/* Crash order as for CreateKey: material, then the row. */
	if (r == 0 && (r = w->st->ops->rotate_key(w->st, &sv, kind,
	    &rv)) != 0 && resident) {
		(void)hsm_destroy_resident(w->hs, sv.material, 20);
	}
	kms_mutex_lock(&kc->mu);
	if (r != 0) {
		return r;
	}
	if (e->nversions + 1 == sv.version) {
		if ((r = add_version(e, &sv)) != 0) {
			return r;
		}
		e->versions[sv.version - 1]->enc_count = 0;
		e->versions[sv.version - 1]->tok = ref;
	}
	/* (A refresh may have loaded it meanwhile: it is committed.) */
	if (e->current_version < sv.version) {
		e->current_version = sv.version;
	}
	if (e->row_version < rv) {
		e->row_version = rv;
	}
	*made = sv.version;
	return 0;
}

int
keycache_rotate(struct worker *w, const struct key_info *ki, int kind,
    uint32_t *made)
{
	struct keycache *kc = w->d->keys;
	struct kentry *e;
	int r;

	if ((r = get_info_and_lock(w, ki, &e)) != 0) {
		return r;
	}
	if (e->rotating) {
		r = KMS_ECONFLICT;
		goto out;
	}
	e->rotating = 1;
	r = rotate_locked(w, e, kind, made);
	e->rotating = 0;
	pthread_cond_broadcast(&kc->cv);
 out:
	kms_mutex_unlock(&kc->mu);
	return r;
}

int
keycache_pin_encrypt(struct worker *w, const struct key_info *ki,
    struct key_use *u)
{
	struct keycache *kc = w->d->keys;
	struct kentry *e;
	struct kver *v;
	int r;

	if ((r = get_info_and_lock(w, ki, &e)) != 0) {
		return r;
	}
	if ((r = state_error(e->state)) != 0) {
		goto out;
	}
	v = e->versions[e->current_version - 1];
	while (v->enc_count >= w->d->cfg.max_encryptions) {
		uint32_t made;
		/* Spent: one request rotates (without the lock), the others
		 * with this key wait for its new version. */
		if (e->rotating) {
			kms_cond_wait(&kc->cv, &kc->mu);
		} else {
			e->rotating = 1;
			r = rotate_locked(w, e, ROTATION_BUDGET, &made);
			e->rotating = 0;
			pthread_cond_broadcast(&kc->cv);
			if (r != 0) {
				goto out;
			}
			u->rotated = made;
		}
		if (e->deleted) {
			r = KMS_ENOTFOUND;
			goto out;
		}
		if ((r = state_error(e->state)) != 0) {
			goto out;
		}
		v = e->versions[e->current_version - 1];
	}
	while (v->enc_count >= v->enc_reserved) {
		uint64_t want = v->enc_reserved + KC_RESERVE_BLOCK;
		if (want > w->d->cfg.max_encryptions) {
			want = w->d->cfg.max_encryptions;
		}
		/* A durable write: made without the lock, so other keys are
		 * served meanwhile.  Entries and versions are never freed
		 * while the daemon runs, so v stays valid; a concurrent
		 * reservation of the same block is harmless (the store only
		 * raises it). */
		kms_mutex_unlock(&kc->mu);
		kms_mutex_assert_not_held(&kc->mu);
		r = w->st->ops->reserve_encryptions(w->st, e->id, v->version,
		    want);
		kms_mutex_lock(&kc->mu);
		if (r != 0) {
			goto out;
		}
		if (v->enc_reserved < want) {
			v->enc_reserved = want;
		}
		if (v != e->versions[e->current_version - 1]) {
			/* Rotated meanwhile: use the new current version. */
			v = e->versions[e->current_version - 1];
		}
	}
	if ((r = pin_locked(kc, w, v, u)) == 0) {
		v->enc_count++;
	}
 out:
	kms_mutex_unlock(&kc->mu);
	return r;
}

int
keycache_pin_decrypt(struct worker *w, const struct key_info *ki,
    uint32_t version, struct key_use *u)
{
	struct keycache *kc = w->d->keys;
	struct kentry *e;
	int r;

	if ((r = get_info_and_lock(w, ki, &e)) != 0) {
		return r;
	}
	if ((r = state_error(e->state)) != 0) {
		goto out;
	}
	if (version == 0 || version > e->nversions) {
		r = KMS_EINVALIDCIPHERTEXT;	/* unknown version: no hint */
		goto out;
	}
	r = pin_locked(kc, w, e->versions[version - 1], u);
 out:
	kms_mutex_unlock(&kc->mu);
	return r;
}

void
keycache_unpin(struct worker *w, struct key_use *u)
{
	struct keycache *kc = w->d->keys;
	struct kver *v = u->v;

	if (v == NULL) {
		return;
	}
	kms_mutex_lock(&kc->mu);
	KMS_ASSERT(v->pins > 0);
	v->pins--;
	kms_mutex_unlock(&kc->mu);
	u->v = NULL;
}

int
keycache_refresh(struct worker *w, const uint8_t id[16])
{
	struct keycache *kc = w->d->keys;
	struct kentry *fresh = NULL, *e;
	uint32_t i;
	int r;

	if ((r = load_entry(w, id, &fresh)) != 0) {
		return r;
	}
	kms_mutex_lock(&kc->mu);
	if ((e = find_locked(kc, id)) == NULL) {
		size_t b = bucket_of(id);
		fresh->next = kc->buckets[b];
		kc->buckets[b] = fresh;
		kc->nentries++;
		fresh = NULL;
	} else {
		for (i = e->nversions; i < fresh->nversions; i++) {
			struct store_version sv;
			struct kver *fv = fresh->versions[i];
			memset(&sv, 0, sizeof(sv));
			sv.version = fv->version;
			memcpy(sv.material, fv->material, fv->material_len);
			sv.material_len = fv->material_len;
			sv.resident = fv->resident;
			sv.enc_reserved = fv->enc_reserved;
			if ((r = add_version(e, &sv)) != 0) {
				break;
			}
		}
		e->state = fresh->state;
		e->current_version = fresh->current_version;
		e->deletion_ms = fresh->deletion_ms;
		e->row_version = fresh->row_version;
	}
	kms_mutex_unlock(&kc->mu);
	if (fresh != NULL) {
		entry_free(fresh);
	}
	return r;
}

#define KC_DRAIN_SLEEP_US 1000	/* between looks at a deleted key's pins */

/* Wait (lock held, let go while waiting) until no rotation of e is under
 * way and no request holds a pin on any of its versions; the caller has
 * already made sure no new pin is taken. */
static void
drain_locked(struct keycache *kc, struct kentry *e)
{
	uint32_t i;
	int pinned;

	kms_mutex_assert_held(&kc->mu);
	for (;;) {
		while (e->rotating) {
			kms_cond_wait(&kc->cv, &kc->mu);
		}
		for (i = 0, pinned = 0; i < e->nversions; i++) {
			pinned |= e->versions[i]->pins > 0;
		}
		if (!pinned) {
			return;
		}
		kms_mutex_unlock(&kc->mu);
		usleep(KC_DRAIN_SLEEP_US);
		kms_mutex_lock(&kc->mu);
	}
}

int
keycache_forget(struct worker *w, const uint8_t id[16])
{
	struct keycache *kc = w->d->keys;
	struct kentry *e;
	uint32_t i;

	kms_mutex_lock(&kc->mu);
	if ((e = find_locked(kc, id)) == NULL) {
		kms_mutex_unlock(&kc->mu);
		return 0;
	}
	/* From here no request pins a version of it: the ones in flight
	 * (one HSM call each) are let finish. */
	e->deleted = 1;
	drain_locked(kc, e);
	for (i = 0; i < e->nversions; i++) {
		unload_locked(kc, w, e->versions[i]);
		e->versions[i]->unavailable = 1;
	}
	kms_mutex_unlock(&kc->mu);
	return 0;
}

/* The cached version record of (id, version), lock held; NULL if none. */
static struct kver *
find_version_locked(struct keycache *kc, const uint8_t id[16],
    uint32_t version)
{
	struct kentry *e;

	kms_mutex_assert_held(&kc->mu);
	e = find_locked(kc, id);
	if (e == NULL || version < 1 || version > e->nversions) {
		return NULL;
	}
	return e->versions[version - 1];
}

void
keycache_set_resident_ref(struct worker *w, const uint8_t id[16],
    uint32_t version, const hsm_resident_ref *ref)
{
	struct keycache *kc = w->d->keys;
	struct kver *v;

	kms_mutex_lock(&kc->mu);
	if ((v = find_version_locked(kc, id, version)) != NULL && v->resident) {
		v->tok = *ref;
	}
	kms_mutex_unlock(&kc->mu);
}

int
keycache_resident_ref(struct worker *w, const uint8_t id[16],
    uint32_t version, hsm_resident_ref *out)
{
	struct keycache *kc = w->d->keys;
	struct kver *v;
	int r = KMS_ENOTFOUND;

	kms_mutex_lock(&kc->mu);
	if ((v = find_version_locked(kc, id, version)) != NULL && v->resident) {
		*out = v->tok;
		r = 0;
	}
	kms_mutex_unlock(&kc->mu);
	return r;
}

int
keycache_drop_material(struct worker *w, const uint8_t id[16])
{
	struct keycache *kc = w->d->keys;
	struct kentry *e;
	uint32_t i;

	kms_mutex_lock(&kc->mu);
	if ((e = find_locked(kc, id)) == NULL) {
		kms_mutex_unlock(&kc->mu);
		return 0;
	}
	/* No new pins: a key without material is PendingImport. */
	e->state = KEY_PENDING_IMPORT;
	drain_locked(kc, e);
	for (i = 0; i < e->nversions; i++) {
		unload_locked(kc, w, e->versions[i]);
		free(e->versions[i]);
	}
	free(e->versions);
	e->versions = NULL;
	e->nversions = 0;
	e->current_version = 0;
	kms_mutex_unlock(&kc->mu);
	return 0;
}

int
keycache_create_external(struct worker *w, struct store_key *k,
    const struct store_tag *tags, size_t ntags)
{
	uint8_t rnd[16];
	int r;

	if ((r = hsm_random(w->hs, rnd, sizeof(rnd))) != 0) {
		return r;
	}
	rnd[6] = (uint8_t)((rnd[6] & 0x0f) | 0x40);
	rnd[8] = (uint8_t)((rnd[8] & 0x3f) | 0x80);
	memcpy(k->id, rnd, 16);
	k->state = KEY_PENDING_IMPORT;
	k->current_version = 0;
	k->row_version = 1;
	kms_mutex_assert_not_held(&w->d->keys->mu);
	if ((r = w->st->ops->create_key(w->st, k, NULL, tags, ntags)) != 0) {
		return r;
	}
	return keycache_refresh(w, k->id);
}

size_t
keycache_handles(struct keycache *kc)
{
	size_t i, n = 0;

	kms_mutex_lock(&kc->mu);
	for (i = 0; i < kc->ring_len; i++) {
		n += kc->ring[i] != NULL && kc->ring[i]->handle != 0;
	}
	kms_mutex_unlock(&kc->mu);
	return n;
}

void
keycache_invalidate_handles(struct keycache *kc)
{
	size_t i;

	/* The sessions that held them are gone: forget, don't release. */
	kms_mutex_lock(&kc->mu);
	for (i = 0; i < kc->ring_len; i++) {
		if (kc->ring[i] != NULL && kc->ring[i]->pins == 0) {
			kc->ring[i]->handle = 0;
			kc->ring[i]->slot = SIZE_MAX;
			kc->ring[i] = NULL;
		}
	}
	kms_mutex_unlock(&kc->mu);
}

/* kc->mu held: if resident object id (key id ‖ version) is a version of e,
 * that version keeps ref (so loading it never searches); 1 if it was. */
static int
adopt_object_locked(struct kentry *e, const uint8_t *id, size_t idlen,
    const hsm_resident_ref *ref)
{
	uint32_t ver = get_u32_be(id + 16);
	struct kver *v;

	if (ver < 1 || ver > e->nversions) {
		return 0;
	}
	v = e->versions[ver - 1];
	if (!v->resident || v->material_len != idlen ||
	    memcmp(v->material, id, idlen) != 0) {
		return 0;
	}
	v->tok = *ref;
	return 1;
}

/* One resident object from the search: a cached version it is keeps its
 * handle. */
static void
refind_object(const uint8_t *id, size_t idlen, const hsm_resident_ref *ref,
    void *arg)
{
	struct keycache *kc = arg;
	struct kentry *e;

	if (idlen != 20) {
		return;		/* not one of ours */
	}
	kms_mutex_lock(&kc->mu);
	if ((e = find_locked(kc, id)) != NULL) {
		(void)adopt_object_locked(e, id, idlen, ref);
	}
	kms_mutex_unlock(&kc->mu);
}

int
keycache_refind_resident(struct keycache *kc, hsm_session *hs)
{
	if (kc->d->cfg.key_storage != STORAGE_RESIDENT) {
		return 0;
	}
	return hsm_list_resident(hs, refind_object, kc);
}

int
keycache_create_key(struct worker *w, struct store_key *k,
    const struct store_tag *tags, size_t ntags)
{
	struct store_version sv;
	uint8_t rnd[16];
	int r, resident = w->d->cfg.key_storage == STORAGE_RESIDENT;

	memset(&sv, 0, sizeof(sv));
	/* A version-4 UUID from the HSM's generator. */
	if ((r = hsm_random(w->hs, rnd, sizeof(rnd))) != 0) {
		return r;
	}
	rnd[6] = (uint8_t)((rnd[6] & 0x0f) | 0x40);
	rnd[8] = (uint8_t)((rnd[8] & 0x3f) | 0x80);
	memcpy(k->id, rnd, 16);
	memcpy(sv.key_id, rnd, 16);
	sv.version = 1;
	sv.creation_ms = k->creation_ms;
	/* The first block of encryptions is reserved with the key itself. */
	sv.enc_reserved = w->d->cfg.max_encryptions < KC_RESERVE_BLOCK ?
	    w->d->cfg.max_encryptions : KC_RESERVE_BLOCK;
	/* Crash order (docs/design.md §8): material in the HSM, then the row;
	 * neither under the cache's mutex. */
	kms_mutex_assert_not_held(&w->d->keys->mu);
	if (resident) {
		memcpy(sv.material, rnd, 16);
		sv.material[19] = 1;
		sv.material_len = 20;
		sv.resident = 1;
		r = hsm_generate_resident(w->hs, sv.material, 20);
	} else {
		r = hsm_generate_wrapped(w->hs, sv.material,
		    sizeof(sv.material), &sv.material_len);
	}
	if (r != 0) {
		return r;
	}
	k->current_version = 1;
	k->row_version = 1;
	if ((r = w->st->ops->create_key(w->st, k, &sv, tags, ntags)) != 0) {
		if (resident) {
			(void)hsm_destroy_resident(w->hs, sv.material, 20);
		}
		return r;
	}
	if ((r = keycache_refresh(w, k->id)) == 0) {
		struct kentry *e;
		/* Created here: none of its reserved block is spent yet. */
		kms_mutex_lock(&w->d->keys->mu);
		if ((e = find_locked(w->d->keys, k->id)) != NULL &&
		    e->nversions == 1) {
			e->versions[0]->enc_count = 0;
		}
		kms_mutex_unlock(&w->d->keys->mu);
	}
	return r;
}

struct startup_arg {
	struct worker *w;
	int loaded, missing;
};

static int
startup_version(const struct store_version *sv, void *arg)
{
	struct startup_arg *a = arg;
	struct keycache *kc = a->w->d->keys;
	struct kentry *e;
	int r;

	if (!sv->resident) {
		return 0;
	}
	if ((r = get_and_lock(a->w, sv->key_id, &e)) != 0) {
		return r;
	}
	if (sv->version >= 1 && sv->version <= e->nversions) {
		struct kver *v = e->versions[sv->version - 1];
		if (ensure_loaded_locked(kc, a->w, v) == 0) {
			a->loaded++;
		} else {
			char idstr[37];
			blob_uuid_format(sv->key_id, idstr);
			log_warn("key %s version %u: HSM object "
			    "missing; key Unavailable", idstr, sv->version);
			e->state = KEY_UNAVAILABLE;
			a->missing++;
		}
	}
	kms_mutex_unlock(&kc->mu);
	return 0;
}

struct reconcile_arg {
	struct worker *w;
	int destroyed;
};

/*
 * Each resident object on the token, from the one start-up search: a
 * version the store knows keeps the object's handle (so loading it never
 * searches); an object no stored version names was made before a crash and
 * never committed, and is destroyed.
 */
static void
reconcile_object(const uint8_t *id, size_t idlen, const hsm_resident_ref *ref,
    void *arg)
{
	struct reconcile_arg *a = arg;
	struct keycache *kc = a->w->d->keys;
	struct kentry *e;
	int known = 0;

	if (idlen != 20) {
		return;		/* not one of ours */
	}
	if (get_and_lock(a->w, id, &e) == 0) {
		known = adopt_object_locked(e, id, idlen, ref);
		kms_mutex_unlock(&kc->mu);
	}
	if (!known && hsm_destroy_resident(a->w->hs, id, idlen) == 0) {
		a->destroyed++;
	}
}

int
keycache_startup(struct worker *w, char *err, size_t errlen)
{
	struct startup_arg a = { w, 0, 0 };
	struct reconcile_arg ra = { w, 0 };
	int r;

	if (w->d->cfg.key_storage != STORAGE_RESIDENT) {
		/* Wrapped versions are unwrapped on first use. */
		return 0;
	}
	if ((r = hsm_list_resident(w->hs, reconcile_object, &ra)) != 0) {
		snprintf(err, errlen, "listing resident keys: %s",
		    kms_strerror(r));
		return r;
	}
	if ((r = w->st->ops->for_each_version(w->st, startup_version,
	    &a)) != 0) {
		snprintf(err, errlen, "loading resident keys: %s",
		    kms_strerror(r));
		return r;
	}
	log_info("resident mode: %d versions loaded, %d missing, "
	    "%d orphan objects destroyed", a.loaded, a.missing,
	    ra.destroyed);
	return 0;
}
