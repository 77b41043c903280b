/*
 * kmsd.h — the daemon's shared state and its workers.  Each module
 * declares its own interface in its folder:
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
	/* <state_dir>/kmsd.lock, flock'd by kmsd_open: one kmsd per state
	 * directory (two would interleave the audit chain and the store's
	 * leases).  Valid while have_state_lock. */
	int state_lock_fd;
	int have_state_lock;
	/* The HSM passed the start-up check of RSA-OAEP unwrapping with
	 * SHA-256 (hsm_probe_oaep_sha256): RSAES_OAEP_SHA_256 is offered. */
	atomic_int oaep_sha256;
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
	atomic_int http_queued;		/* waiting for an http_workers thread */
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

#endif
