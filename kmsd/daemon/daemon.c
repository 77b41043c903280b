/*
 * daemon.c — the daemon's life cycle: open the HSM, the key cache and each
 * worker's HSM session and store connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "kmsd/audit/audit.h"
#include "kmsd/authz/authz.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/daemon/daemon.h"
#include "kmsd/daemon/lifecycle.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"
#include "kmsd/ops/op.h"

/*
 * libsodium locks secret memory only as far as RLIMIT_MEMLOCK allows and
 * does not fail beyond it: say so at start-up rather than let plaintexts
 * be swappable without a word.
 */
static void
warn_memlock(const struct kmsd *d)
{
	struct rlimit rl;
	unsigned long long need = (unsigned long long)d->cfg.workers *
	    OP_SCRATCH_CAP + (4ULL << 20);

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur !=
	    RLIM_INFINITY && (unsigned long long)rl.rlim_cur < need) {
		log_warn("RLIMIT_MEMLOCK is %llu KiB but %d workers' locked "
		    "memory needs about %llu KiB: secrets beyond it may be "
		    "swapped out; raise it (LimitMEMLOCK= in the unit, "
		    "ulimit -l, /etc/security/limits.conf) or lower workers",
		    (unsigned long long)rl.rlim_cur / 1024, d->cfg.workers,
		    need / 1024);
	}
}

/*
 * One kmsd per state directory: a second one started on it (by mistake,
 * or while the first is still stopping) would append to the same audit
 * log from another chain head and claim leases under another name before
 * it found the socket taken.  The lock is released when the process ends,
 * however it ends.
 */
static int
lock_state_dir(struct kmsd *d, char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX + 16];
	int fd;

	snprintf(path, sizeof(path), "%s/kmsd.lock", d->cfg.state_dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return KMS_EINTERNAL;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "another kmsd is running on state "
		    "directory %s (it holds %s); stop it first",
		    d->cfg.state_dir, path);
		close(fd);
		return KMS_EALREADYEXISTS;
	}
	d->state_lock_fd = fd;
	d->have_state_lock = 1;
	return 0;
}

int
kmsd_open(struct kmsd *d, char *err, size_t errlen)
{
	struct hsm_config hc;
	pthread_mutexattr_t ma;
	pthread_rwlockattr_t ra;
	int r;

	d->have_state_lock = 0;
	if ((r = lock_state_dir(d, err, errlen)) != 0) {
		return r;
	}
	warn_memlock(d);
	/* Adaptive: a Batch of 100 holds it for about a millisecond, and
	 * the next one is usually running on the other core. */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&d->batch_turn, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&d->hsm_turn, &ra);
	pthread_rwlockattr_destroy(&ra);
	d->hsm_retry_at = 0;
	d->recycle_off = 0;
	d->hsm_down_told = 0;
	d->audit = NULL;
	d->tend_hs = NULL;
	if (d->cfg.softhsm2_conf[0] != '\0') {
		setenv("SOFTHSM2_CONF", d->cfg.softhsm2_conf, 1);
	}
	{
		char host[64];
		if (gethostname(host, sizeof(host)) != 0) {
			snprintf(host, sizeof(host), "localhost");
		}
		host[sizeof(host) - 1] = '\0';
		snprintf(d->node_id, sizeof(d->node_id), "%s:%ld", host,
		    (long)getpid());
	}
	d->key_arn_prefix_len = (size_t)snprintf(d->key_arn_prefix,
	    sizeof(d->key_arn_prefix), "arn:%s:kms:%s:%s:key/",
	    d->cfg.arn_partition, d->cfg.region, d->cfg.account_id);
	KMS_ASSERT(d->key_arn_prefix_len + 37 <= KEY_ARN_MAX &&
	    d->key_arn_prefix_len < sizeof(d->key_arn_prefix));
	d->alias_arn_prefix_len = (size_t)snprintf(d->alias_arn_prefix,
	    sizeof(d->alias_arn_prefix), "arn:%s:kms:%s:%s:alias/",
	    d->cfg.arn_partition, d->cfg.region, d->cfg.account_id);
	KMS_ASSERT(d->alias_arn_prefix_len < sizeof(d->alias_arn_prefix));
	memset(&hc, 0, sizeof(hc));
	hc.module = d->cfg.pkcs11_module;
	hc.token_label = d->cfg.token_label;
	hc.pin_file = d->cfg.pin_file;
	if ((r = hsm_open(&hc, &d->hsm, err, errlen)) != 0) {
		return r;
	}
	if ((r = authz_create(d, &d->authz)) != 0 ||
	    (r = keycache_create(d, &d->keys)) != 0) {
		snprintf(err, errlen, "key cache: %s", kms_strerror(r));
		goto fail;
	}
	/* Before any request: the log's start-up records come first. */
	if ((r = audit_open(d, err, errlen)) != 0) {
		goto fail;
	}
	return 0;
 fail:
	if (d->keys != NULL) {
		keycache_destroy(d->keys, NULL);
		d->keys = NULL;
	}
	authz_destroy(d->authz);
	d->authz = NULL;
	hsm_close(d->hsm);
	d->hsm = NULL;
	return r;
}

void
kmsd_close(struct kmsd *d)
{
	/* Its last records, signed, while the HSM is still open. */
	audit_close(d);
	if (d->keys != NULL) {
		hsm_session *s = NULL;
		if (d->hsm != NULL && !hsm_is_down(d->hsm) &&
		    hsm_session_open(d->hsm, &s) != 0) {
			s = NULL;
		}
		keycache_destroy(d->keys, s);
		if (s != NULL) {
			hsm_session_close(s);
		}
		d->keys = NULL;
	}
	kmsd_lifecycle_fini(d);
	hsm_session_close(d->tend_hs);
	d->tend_hs = NULL;
	authz_destroy(d->authz);
	d->authz = NULL;
	if (d->hsm != NULL) {
		hsm_close(d->hsm);
		d->hsm = NULL;
	}
	pthread_mutex_destroy(&d->batch_turn);
	pthread_rwlock_destroy(&d->hsm_turn);
	if (d->have_state_lock) {
		close(d->state_lock_fd);	/* the flock goes with it */
		d->have_state_lock = 0;
	}
}

/* Resident mode: one search finds every version's token object again
 * (their handles are of the old generation).  With the turn held for
 * reading, like any other use of the HSM; a failure only costs searches
 * on later loads. */
static void
refind_resident(struct kmsd *d)
{
	int r;

	if (d->cfg.key_storage != STORAGE_RESIDENT) {
		return;
	}
	if (d->tend_hs == NULL && hsm_session_open(d->hsm, &d->tend_hs) != 0) {
		d->tend_hs = NULL;
		return;
	}
	pthread_rwlock_rdlock(&d->hsm_turn);
	r = keycache_refind_resident(d->keys, d->tend_hs);
	pthread_rwlock_unlock(&d->hsm_turn);
	if (r != 0) {
		log_info("finding resident keys again: %s",
		    kms_strerror(r));
	}
}

/*
 * Recovery and re-initialisation both run with the turn held for writing.
 * For re-initialisation that is the point: SoftHSM2 numbers handles from a
 * counter that C_Initialize restarts, so a request that had just read a
 * cached handle could use an old number that now names another key.
 * Recovery closes every session and makes new objects too (and, after a
 * re-initialisation that failed half-way, initialises the module), and a
 * module may reuse numbers there as well; while the token is away requests
 * fail at once, so the ones in flight drain quickly and the pause is the
 * length of one attempt.
 */
void
kmsd_hsm_tend(struct kmsd *d)
{
	uint64_t made;
	uint64_t t0, t1, t2;
	int r;

	if (hsm_is_down(d->hsm)) {
		if (!d->hsm_down_told) {
			d->hsm_down_told = 1;
			(void)audit_service_event(d->audit, "HsmUnavailable",
			    NULL, NULL);
		}
		if (mono_ms() < d->hsm_retry_at) {
			return;
		}
		d->hsm_retry_at = mono_ms() + (uint64_t)d->cfg.hsm_retry_ms;
		pthread_rwlock_wrlock(&d->hsm_turn);
		if ((r = hsm_recover(d->hsm)) == 0) {
			keycache_invalidate_handles(d->keys);
		}
		pthread_rwlock_unlock(&d->hsm_turn);
		if (r == 0) {
			atomic_fetch_add(&d->hsm_recoveries, 1);
			log_info("HSM is back");
			d->hsm_down_told = 0;
			(void)audit_service_event(d->audit, "HsmRecovered", NULL,
			    NULL);
			refind_resident(d);
		}
		return;
	}
	if (d->cfg.hsm_recycle_objects == 0 || d->recycle_off ||
	    hsm_objects_made(d->hsm) < d->cfg.hsm_recycle_objects) {
		return;
	}
	t0 = mono_ms();
	pthread_rwlock_wrlock(&d->hsm_turn);
	t1 = mono_ms();
	made = hsm_objects_made(d->hsm);
	if ((r = hsm_reinit(d->hsm)) != KMS_EUNSUPPORTED) {
		/* Whatever the outcome, the generation moved on. */
		keycache_invalidate_handles(d->keys);
	}
	pthread_rwlock_unlock(&d->hsm_turn);
	t2 = mono_ms();
	if (r == 0) {
		/* What C_Finalize freed is free in malloc's heaps, in pages
		 * the next objects will not need all at once: give it back. */
		(void)malloc_trim(0);
	}
	if (r == KMS_EUNSUPPORTED) {
		d->recycle_off = 1;
		log_warn("the PKCS#11 module was initialised by "
		    "someone else in this process; hsm_recycle_objects is "
		    "ignored");
		return;
	}
	if (r != 0) {
		return;		/* hsm_reinit said why; recovery takes over */
	}
	atomic_fetch_add(&d->hsm_recycles, 1);
	log_info("HSM module re-initialised after %llu session "
	    "objects: requests paused %llu ms (%llu waiting for those in "
	    "flight)", (unsigned long long)made, (unsigned long long)
	    (t2 - t0), (unsigned long long)(t1 - t0));
	{
		json_t *det = json_pack("{s:I, s:I}", "sessionObjects",
		    (json_int_t)made, "pauseMs", (json_int_t)(t2 - t0));
		(void)audit_service_event(d->audit, "HsmModuleRecycled", NULL,
		    det);
		json_decref(det);
	}
	refind_resident(d);
}

int
worker_init(struct kmsd *d, int id, struct worker *w, char *err,
    size_t errlen)
{
	int r;

	memset(w, 0, sizeof(*w));
	w->d = d;
	w->id = id;
	if ((r = hsm_session_open(d->hsm, &w->hs)) != 0) {
		snprintf(err, errlen, "worker %d: HSM session: %s", id,
		    kms_strerror(r));
		goto fail;
	}
	if ((r = store_sqlite_open(d->cfg.store, &w->st, err, errlen)) != 0) {
		goto fail;
	}
	if ((w->secret = secure_alloc(OP_SCRATCH_CAP)) == NULL) {
		snprintf(err, errlen, "worker %d: cannot lock %zu bytes of "
		    "memory for secrets (RLIMIT_MEMLOCK?)", id,
		    (size_t)OP_SCRATCH_CAP);
		r = KMS_ENOMEM;
		goto fail;
	}
	w->secret_cap = OP_SCRATCH_CAP;
	return 0;
 fail:
	worker_fini(w);
	return r;
}

void
worker_fini(struct worker *w)
{
	if (w->secret != NULL) {
		secure_free(w->secret, w->secret_cap);
		w->secret = NULL;
	}
	if (w->st != NULL) {
		w->st->ops->close(w->st);
		w->st = NULL;
	}
	if (w->hs != NULL) {
		hsm_session_close(w->hs);
		w->hs = NULL;
	}
}
