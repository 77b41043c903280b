/*
 * lifecycle.c — the scheduler's work on keys' lives: automatic rotations
 * that have come due, and deletions whose date has come (the shred).
 *
 * Runs on the scheduler thread only, with a worker of its own (an HSM
 * session and a store connection), holding hsm_turn for reading like any
 * request.  Every piece of work is claimed through the store's lease on
 * the key first ("key:<id>", LEASE_TTL_MS), and re-checked once claimed,
 * so that kmsd nodes sharing one store rotate or shred a key once, and a
 * request cancelling a deletion (which takes the same lease) never races
 * a shred.  Times come from now_ms(), so the test clock drives it.
 *
 * Imported key material whose ValidTo has passed is destroyed the same
 * way (the key becomes PendingImport), and import tokens past their 24
 * hours lose their HSM wrapping keys.
 *
 * The shred: the key cache forgets the key (NotFound from then on, its
 * HSM session objects destroyed once requests in flight are done);
 * resident versions' token objects are destroyed (C_DestroyObject);
 * then the store deletes the key with everything hanging from it
 * (versions with their wrapped material, aliases, grants, tags, policy,
 * rotation history) and truncates its WAL, so the material's bytes are
 * in neither database file.  A crash between the steps leaves the key
 * PendingDeletion and due, and the next pass finishes the job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/blob.h"
#include "common/err.h"
#include "common/log.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "kmsd/kmsd.h"

#define LIFE_PERIOD_MS 1000	/* look for due work this often */
#define LIFE_BATCH 64		/* keys taken per pass and kind */

void
lease_name(const uint8_t id[16], char *out, size_t len)
{
	char s[37];

	uuid_format(id, s);
	snprintf(out, len, "key:%s", s);
}

static int
rotate_due(struct worker *w, const uint8_t id[16], const char *holder)
{
	struct store_rotation_schedule rs;
	struct key_info ki;
	char lease[STORE_LEASE_NAME_MAX], idstr[37];
	uint32_t made = 0;
	int r;

	lease_name(id, lease, sizeof(lease));
	if ((r = w->st->ops->claim_lease(w->st, lease, holder, now_ms(),
	    LEASE_TTL_MS)) != 0) {
		return r == KMS_ECONFLICT ? 0 : r;	/* someone else's */
	}
	/* Claimed: is it still due (another node may have rotated it)? */
	if ((r = w->st->ops->get_rotation_schedule(w->st, id, &rs)) != 0 ||
	    rs.next_ms > now_ms() ||
	    (r = keycache_refresh(w, id)) != 0 ||
	    (r = keycache_lookup_id(w, id, &ki)) != 0 ||
	    ki.state != KEY_ENABLED) {
		r = r == KMS_ENOTFOUND ? 0 : r;
		goto out;
	}
	uuid_format(id, idstr);
	if ((r = keycache_rotate(w, &ki, ROTATION_AUTOMATIC, &made)) == 0) {
		log_info("key %s rotated on schedule (every %u days): "
		    "version %u", idstr, rs.period_days, made);
	} else if (r == KMS_ECONFLICT) {
		r = 0;		/* rotating already: it counts */
	}
 out:
	(void)w->st->ops->release_lease(w->st, lease, holder);
	return r;
}

int
lifecycle_shred(struct worker *w, const uint8_t id[16])
{
	struct store_version *vs = NULL;
	size_t n = 0, i;
	int r, destroyed = 0;
	char idstr[37];

	uuid_format(id, idstr);
	if ((r = w->st->ops->get_versions(w->st, id, &vs, &n)) != 0) {
		return r;
	}
	(void)keycache_forget(w, id);
	for (i = 0; i < n; i++) {
		if (!vs[i].resident) {
			continue;	/* wrapped: the blob goes with the row */
		}
		r = hsm_destroy_resident(w->hs, vs[i].material,
		    vs[i].material_len);
		if (r == 0) {
			destroyed++;
		} else if (r != KMS_ENOTFOUND) {
			/* The row stays: the next pass tries again. */
			log_warn("key %s version %u: destroying its HSM "
			    "object failed: %s", idstr, vs[i].version,
			    kms_strerror(r));
			goto out;
		}
	}
	if ((r = w->st->ops->shred_key(w->st, id)) != 0 &&
	    r != KMS_ENOTFOUND) {
		goto out;
	}
	log_info("key %s deleted: %zu versions shredded (%d HSM objects "
	    "destroyed)", idstr, n, destroyed);
	r = 0;
 out:
	if (vs != NULL) {
		secure_wipe(vs, n * sizeof(*vs));
		free(vs);
	}
	return r;
}

static int
delete_due(struct worker *w, const uint8_t id[16], const char *holder)
{
	struct store_key *k = NULL;
	char lease[STORE_LEASE_NAME_MAX];
	int r;

	lease_name(id, lease, sizeof(lease));
	if ((r = w->st->ops->claim_lease(w->st, lease, holder, now_ms(),
	    LEASE_TTL_MS)) != 0) {
		return r == KMS_ECONFLICT ? 0 : r;
	}
	/* Claimed: still pending and due (not cancelled meanwhile)? */
	if ((k = malloc(sizeof(*k))) == NULL) {
		r = KMS_ENOMEM;
		goto out;
	}
	if ((r = w->st->ops->get_key(w->st, id, k)) != 0 ||
	    k->state != KEY_PENDING_DELETION || k->deletion_ms > now_ms()) {
		r = r == KMS_ENOTFOUND ? 0 : r;
		goto out;
	}
	r = lifecycle_shred(w, id);
 out:
	free(k);
	(void)w->st->ops->release_lease(w->st, lease, holder);
	return r;
}

static int
expire_due(struct worker *w, const uint8_t id[16], const char *holder)
{
	struct store_import im;
	char lease[STORE_LEASE_NAME_MAX], idstr[37];
	int r;

	lease_name(id, lease, sizeof(lease));
	if ((r = w->st->ops->claim_lease(w->st, lease, holder, now_ms(),
	    LEASE_TTL_MS)) != 0) {
		return r == KMS_ECONFLICT ? 0 : r;
	}
	if ((r = w->st->ops->get_import(w->st, id, &im)) != 0 ||
	    !im.present || !im.expires || im.valid_to_ms > now_ms()) {
		r = r == KMS_ENOTFOUND ? 0 : r;
		goto out;
	}
	if ((r = import_drop_material(w, id)) == 0) {
		uuid_format(id, idstr);
		log_info("key %s: imported key material expired and was "
		    "destroyed; the key is PendingImport", idstr);
	}
 out:
	(void)w->st->ops->release_lease(w->st, lease, holder);
	return r;
}

/* Import tokens past their 24 hours: their HSM keys go. */
static void
expire_tokens(struct worker *w)
{
	struct store_import_token t[16];
	size_t n = 0, i;
	int r;

	if (w->st->ops->due_import_tokens(w->st, now_ms(), 16, t, &n) != 0) {
		return;
	}
	for (i = 0; i < n; i++) {
		r = hsm_destroy_import_key(w->hs, t[i].wrapping_key_id,
		    t[i].wrapping_key_id_len);
		if (r == 0 || r == KMS_ENOTFOUND) {
			(void)w->st->ops->delete_import_token(w->st,
			    t[i].hash);
		}
	}
}

void
kmsd_lifecycle_tend(struct kmsd *d)
{
	uint8_t (*ids)[16] = NULL;
	char holder[STORE_LEASE_HOLDER_MAX], err[256];
	size_t n = 0, i;
	uint64_t t = mono_ms();
	int r;

	if (!atomic_exchange(&d->lifecycle_kick, 0) &&
	    t - d->life_at < LIFE_PERIOD_MS) {
		return;
	}
	d->life_at = t;
	if (hsm_is_down(d->hsm)) {
		return;		/* recovery first */
	}
	if (d->life_w == NULL) {
		struct worker *w = calloc(1, sizeof(*w));
		if (w == NULL || worker_init(d, -1, w, err,
		    sizeof(err)) != 0) {
			log_warn("lifecycle scheduler: %s", w != NULL ? err :
			    "out of memory");
			free(w);
			return;
		}
		d->life_w = w;
	}
	if ((ids = calloc(LIFE_BATCH, sizeof(*ids))) == NULL) {
		return;
	}
	snprintf(holder, sizeof(holder), "%s:scheduler", d->node_id);
	pthread_rwlock_rdlock(&d->hsm_turn);
	if ((r = d->life_w->st->ops->due_rotations(d->life_w->st, now_ms(),
	    LIFE_BATCH, ids, &n)) == 0) {
		for (i = 0; i < n && !atomic_load(&d->stopping); i++) {
			if ((r = rotate_due(d->life_w, ids[i], holder)) != 0) {
				char s[37];
				uuid_format(ids[i], s);
				log_warn("key %s: automatic rotation failed: "
				    "%s (retried)", s, kms_strerror(r));
			}
		}
	}
	if ((r = d->life_w->st->ops->due_deletions(d->life_w->st, now_ms(),
	    LIFE_BATCH, ids, &n)) == 0) {
		for (i = 0; i < n && !atomic_load(&d->stopping); i++) {
			if ((r = delete_due(d->life_w, ids[i], holder)) != 0) {
				char s[37];
				uuid_format(ids[i], s);
				log_warn("key %s: deletion failed: %s "
				    "(retried)", s, kms_strerror(r));
			}
		}
	}
	if ((r = d->life_w->st->ops->due_expirations(d->life_w->st, now_ms(),
	    LIFE_BATCH, ids, &n)) == 0) {
		for (i = 0; i < n && !atomic_load(&d->stopping); i++) {
			if ((r = expire_due(d->life_w, ids[i], holder)) != 0) {
				char s[37];
				uuid_format(ids[i], s);
				log_warn("key %s: expiring imported material "
				    "failed: %s (retried)", s, kms_strerror(r));
			}
		}
	}
	expire_tokens(d->life_w);
	pthread_rwlock_unlock(&d->hsm_turn);
	free(ids);
}

void
kmsd_lifecycle_fini(struct kmsd *d)
{
	if (d->life_w != NULL) {
		worker_fini(d->life_w);
		free(d->life_w);
		d->life_w = NULL;
	}
}
