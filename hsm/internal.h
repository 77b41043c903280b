/*
 * internal.h — what the files of hsm/ share and nothing else sees: the
 * module and session structures, the CK_RV mapping and session readiness.
 */
#ifndef KMS_HSM_INTERNAL_H
#define KMS_HSM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <p11-kit/pkcs11.h>

#include "hsm/hsm.h"

struct hsm {
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	CK_SLOT_ID slot;
	char label[33];
	char pin_file[1024];
	pthread_mutex_t mu;		/* internal session and object life */
	/* Held for reading by every call that creates or destroys a token
	 * object, for writing by hsm_token_freeze (a backup copying the
	 * token's files). */
	pthread_rwlock_t token_turn;
	CK_SESSION_HANDLE sess;		/* internal session, logged in */
	CK_OBJECT_HANDLE domain;	/* session copy of the domain key */
	/* Session copy of the next domain key while a domain-key rotation
	 * runs (hsm/domain.c), else CK_INVALID_HANDLE.  New material is
	 * wrapped under it; unwrap tries it when the domain key fails. */
	CK_OBJECT_HANDLE domain_next;
	atomic_uint_fast64_t gen;
	atomic_int down;
	int finalize;			/* we initialised the module */
	int need_init;			/* hsm_reinit finalised, C_Initialize
					 * failed: recovery initialises first */
	/* Session objects created since the module's last C_Initialize
	 * (SoftHSM2 frees destroyed ones only at C_Finalize). */
	atomic_uint_fast64_t made;
};

struct hsm_session {
	hsm *h;
	CK_SESSION_HANDLE s;
	uint64_t gen;
	int open;
};

/* THE mapping of CK_RV to the error space (pkcs11.c). */
int hsm_rv_err(hsm *h, CK_RV rv, const char *what);

/* Make s usable: fail fast while down, reopen after a recovery. */
int hsm_ready(hsm_session *s);
/* The first object matching t on the internal session, or
 * CK_INVALID_HANDLE (h->mu held; never on a request path). */
CK_RV hsm_find_one(hsm *h, CK_ATTRIBUTE *t, CK_ULONG nt,
    CK_OBJECT_HANDLE *out);
/* hsm/domain.c, from attach (h->mu held): no domain key but a next one
 * (a rotation died between destroying the old key and relabelling):
 * the next one becomes the domain key (*tok).  Then: find the next
 * domain key, if any, into h->domain_next. */
/* A domain key labelled label in the token: AES-256, wraps and unwraps
 * only, never leaves it; made on h->sess (h->mu held, or at start-up). */
CK_RV hsm_domain_generate(hsm *h, const char *label, CK_OBJECT_HANDLE *out);
CK_RV hsm_domain_adopt_next(hsm *h, CK_OBJECT_HANDLE *tok);
CK_RV hsm_domain_find_next(hsm *h);

#endif
