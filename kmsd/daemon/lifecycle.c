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
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/blob.h"
#include "common/err.h"
#include "common/log.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "kmsd/audit/audit.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/daemon/daemon.h"
#include "kmsd/daemon/lifecycle.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"

#define LIFE_PERIOD_MS 1000	/* look for due work this often */
#define LIFE_BATCH 64		/* keys taken per pass and kind */

void
lease_name(const uint8_t id[16], char *out, size_t len)
{
	char s[37];

	blob_uuid_format(id, s);
	snprintf(out, len, "key:%s", s);
}

/* "host:pid:..." of a holder on this host whose process is gone. */
static int
holder_is_dead_here(const struct kmsd *d, const char *holder)
{
	const char *mine = d->node_id, *colon = strchr(mine, ':');
	size_t hostlen;
	char *end;
	long pid;

	if (colon == NULL) {
		return 0;
	}
	hostlen = (size_t)(colon - mine) + 1;	/* "host:" */
	if (strncmp(holder, mine, hostlen) != 0) {
		return 0;
	}
	pid = strtol(holder + hostlen, &end, 10);
	if (end == holder + hostlen || (*end != ':' && *end != '\0') ||
	    pid <= 0 || pid == (long)getpid()) {
		return 0;
	}
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int
lease_claim(struct worker *w, const char *name, const char *holder)
{
	char other[STORE_LEASE_HOLDER_MAX];
	int64_t since = 0;
	int r;

	r = w->st->ops->claim_lease(w->st, name, holder, now_ms(),
	    LEASE_TTL_MS);
	if (r != KMS_ECONFLICT ||
	    w->st->ops->get_lease(w->st, name, now_ms(), other, &since) != 0 ||
	    !holder_is_dead_here(w->d, other)) {
		return r;
	}
	log_info("lease %s: its holder %s no longer runs; released", name,
	    other);
	if ((r = w->st->ops->release_lease(w->st, name, other)) != 0) {
		return r;
	}
	return w->st->ops->claim_lease(w->st, name, holder, now_ms(),
	    LEASE_TTL_MS);
}

/* The audit log's record of a lifecycle step: a service event, as
 * CloudTrail writes for KMS's own rotations and deletions, about key
 * idstr (NULL: none); details (taken, may be NULL) its
 * serviceEventDetails.  It waits for no sync, so the HSM turn may be
 * held (audit.h). */
static void
life_event(struct worker *w, const char *name, const char *idstr,
    json_t *details)
{
	char arn[KEY_ARN_MAX];

	if (idstr != NULL) {
		key_arn(w->d, idstr, arn, sizeof(arn));
	}
	(void)audit_service_event(w->d->audit, name, idstr != NULL ? arn :
	    NULL, details);
	json_decref(details);
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
	if ((r = lease_claim(w, lease, holder)) != 0) {
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
	blob_uuid_format(id, idstr);
	if ((r = keycache_rotate(w, &ki, ROTATION_AUTOMATIC, &made)) == 0) {
		log_info("key %s rotated on schedule (every %u days): "
		    "version %u", idstr, rs.period_days, made);
		life_event(w, "RotateKey", idstr, json_pack("{s:s, s:I, s:I}",
		    "rotationType", "AUTOMATIC", "keyVersion", (json_int_t)made,
		    "rotationPeriodInDays", (json_int_t)rs.period_days));
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

	blob_uuid_format(id, idstr);
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
	life_event(w, "DeleteKey", idstr, json_pack("{s:I, s:i}",
	    "versionsShredded", (json_int_t)n, "hsmObjectsDestroyed",
	    destroyed));
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
	if ((r = lease_claim(w, lease, holder)) != 0) {
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
	if ((r = lease_claim(w, lease, holder)) != 0) {
		return r == KMS_ECONFLICT ? 0 : r;
	}
	if ((r = w->st->ops->get_import(w->st, id, &im)) != 0 ||
	    !im.present || !im.expires || im.valid_to_ms > now_ms()) {
		r = r == KMS_ENOTFOUND ? 0 : r;
		goto out;
	}
	if ((r = import_drop_material(w, id)) == 0) {
		blob_uuid_format(id, idstr);
		log_info("key %s: imported key material expired and was "
		    "destroyed; the key is PendingImport", idstr);
		life_event(w, "DeleteExpiredKeyMaterial", idstr, NULL);
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

#define REWRAP_BATCH 256	/* versions re-wrapped per store transaction */
#define REWRAP_SLICE_MS 100	/* then the scheduler does its other work */

/*
 * Test-only crash points of the domain-key rotation: with test_clock =
 * yes (and only then), KMSD_TEST_CRASH=<point> kills kmsd there, the way
 * kill -9 would, so that tests show the rotation resumes: requested,
 * after-begin, mid-sweep (after the first batch), before-commit,
 * after-destroy (the old key gone, the new one not yet relabelled).
 */
static void
crash_point(struct kmsd *d, const char *point)
{
	const char *want;

	if (d->cfg.test_clock && (want = getenv("KMSD_TEST_CRASH")) != NULL &&
	    strcmp(want, point) == 0) {
		log_warn("test crash point %s: killing kmsd", point);
		raise(SIGKILL);
	}
}

static void
domain_status_log(const struct store_domain_rotation *dr, const char *what)
{
	log_info("domain-key rotation %s: %llu of %llu wrapped versions "
	    "re-wrapped", what, (unsigned long long)dr->done,
	    (unsigned long long)dr->total);
}

/*
 * The domain-key rotation, a slice at a time: begin (the next key, with
 * the HSM to itself), re-wrap the stored versions in (key, version)
 * order with the cursor durable in each batch's transaction, then
 * commit (old key destroyed, the next one takes its label, the HSM to
 * itself again).  Requests go on between the turns; a kmsd killed at any
 * point finds the next key at start-up and the cursor in the store, and
 * goes on from there.
 */
static void
domain_tend(struct kmsd *d)
{
	struct store_domain_rotation dr;
	struct store_version *vs = NULL, *nv = NULL;
	struct worker *w = d->life_w;
	uint64_t t0 = mono_ms();
	size_t n = 0, i, k, batch = REWRAP_BATCH;
	int r, rotating = hsm_domain_rotating(d->hsm);

	if ((r = w->st->ops->get_domain_rotation(w->st, &dr)) != 0 &&
	    r != KMS_ENOTFOUND) {
		return;
	}
	if (r == KMS_ENOTFOUND || dr.state == DOMAIN_ROTATION_DONE) {
		if (!rotating) {
			return;
		}
		/* A next key with no rotation recorded: begun before a
		 * crash; go on with it. */
		memset(&dr, 0, sizeof(dr));
		dr.state = DOMAIN_ROTATION_REQUESTED;
		dr.started_ms = now_ms();
	}
	if (dr.state == DOMAIN_ROTATION_REQUESTED) {
		crash_point(d, "requested");
		pthread_rwlock_wrlock(&d->hsm_turn);
		r = hsm_domain_begin(w->hs);
		pthread_rwlock_unlock(&d->hsm_turn);
		if (r != 0) {
			log_warn("domain-key rotation: making the next domain "
			    "key failed: %s (retried)", kms_strerror(r));
			return;
		}
		crash_point(d, "after-begin");
		memset(dr.cursor_key, 0, sizeof(dr.cursor_key));
		dr.cursor_version = 0;
		dr.done = 0;
		dr.total = w->st->ops->count_wrapped_versions(w->st);
		dr.state = DOMAIN_ROTATION_REWRAPPING;
		if (w->st->ops->put_domain_rotation(w->st, &dr) != 0) {
			return;
		}
		domain_status_log(&dr, "begun");
		life_event(w, "DomainKeyRotationBegun", NULL, json_pack(
		    "{s:I}", "wrappedVersions", (json_int_t)dr.total));
	}
	if (!hsm_domain_rotating(d->hsm)) {
		/* Re-wrapping, yet no next key: kmsd died between destroying
		 * the old key and relabelling the new one, which start-up
		 * then adopted.  The sweep had finished (the old key goes
		 * only after it): the rotation is done. */
		goto done;
	}
	if (d->cfg.test_clock && getenv("KMSD_TEST_REWRAP_BATCH") != NULL) {
		/* Test-only, like the crash points: small batches, so that
		 * a crash can fall between two. */
		batch = (size_t)strtoul(getenv("KMSD_TEST_REWRAP_BATCH"),
		    NULL, 10);
		if (batch < 1 || batch > REWRAP_BATCH) {
			batch = REWRAP_BATCH;
		}
	}
	if ((vs = calloc(REWRAP_BATCH, sizeof(*vs))) == NULL ||
	    (nv = calloc(REWRAP_BATCH, sizeof(*nv))) == NULL) {
		goto out;
	}
	for (;;) {
		pthread_rwlock_rdlock(&d->hsm_turn);
		r = w->st->ops->next_wrapped_versions(w->st, &dr, batch, vs,
		    &n);
		for (i = 0, k = 0; r == 0 && i < n; i++) {
			nv[k] = vs[i];
			r = hsm_rewrap(w->hs, vs[i].material,
			    vs[i].material_len, nv[k].material,
			    sizeof(nv[k].material), &nv[k].material_len);
			if (r == 0) {
				k++;
			} else if (r == KMS_EALREADYEXISTS) {
				r = 0;	/* done before a crash */
			} else if (r == KMS_EINVALIDCIPHERTEXT) {
				char s[37];
				blob_uuid_format(vs[i].key_id, s);
				log_warn("domain-key rotation: key %s version "
				    "%u is under neither domain key; left as "
				    "it is (Unavailable)", s, vs[i].version);
				r = 0;
			}
		}
		if (r == 0 && n > 0) {
			memcpy(dr.cursor_key, vs[n - 1].key_id, 16);
			dr.cursor_version = vs[n - 1].version;
			dr.done += n;
			if (dr.done > dr.total) {
				dr.total = dr.done;	/* made meanwhile */
			}
			r = w->st->ops->rewrap_versions(w->st, nv, k, &dr);
		}
		if (r == 0) {
			for (i = 0; i < k; i++) {
				keycache_set_material(w, nv[i].key_id,
				    nv[i].version, nv[i].material,
				    nv[i].material_len);
			}
		}
		pthread_rwlock_unlock(&d->hsm_turn);
		secure_wipe(vs, REWRAP_BATCH * sizeof(*vs));
		if (r != 0) {
			log_warn("domain-key rotation: re-wrapping failed: %s "
			    "(retried)", kms_strerror(r));
			goto out;
		}
		if (n > 0) {
			crash_point(d, "mid-sweep");
		}
		if (n < batch) {
			break;		/* swept */
		}
		if (mono_ms() - t0 >= REWRAP_SLICE_MS) {
			atomic_store(&d->lifecycle_kick, 1);
			goto out;	/* more next tick */
		}
	}
	crash_point(d, "before-commit");
	pthread_rwlock_wrlock(&d->hsm_turn);
	if ((r = hsm_domain_destroy_old(w->hs)) == 0) {
		crash_point(d, "after-destroy");
		r = hsm_domain_promote(w->hs);
	}
	pthread_rwlock_unlock(&d->hsm_turn);
	if (r != 0) {
		log_warn("domain-key rotation: committing failed: %s "
		    "(retried)", kms_strerror(r));
		goto out;
	}
 done:
	dr.state = DOMAIN_ROTATION_DONE;
	dr.finished_ms = now_ms();
	if (w->st->ops->put_domain_rotation(w->st, &dr) == 0) {
		domain_status_log(&dr, "done, old domain key destroyed");
		life_event(w, "DomainKeyRotationCompleted", NULL, json_pack(
		    "{s:I, s:I}", "versionsRewrapped", (json_int_t)dr.done,
		    "wrappedVersions", (json_int_t)dr.total));
	}
 out:
	free(vs);
	free(nv);
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
	if (d->cfg.key_storage == STORAGE_WRAPPED) {
		domain_tend(d);		/* takes the HSM turn itself */
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
				blob_uuid_format(ids[i], s);
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
				blob_uuid_format(ids[i], s);
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
				blob_uuid_format(ids[i], s);
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
