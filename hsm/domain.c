/*
 * domain.c — domain-key rotation inside the HSM.
 *
 * The next domain key is made like the first (a private, sensitive,
 * non-extractable token object usable only to wrap and unwrap) under a
 * label of its own.  While it exists, new material is wrapped under it
 * and unwrapping falls back to it, so a rotation runs online: the
 * daemon re-wraps stored versions one by one (hsm_rewrap) while requests
 * go on, then commits: the old key is destroyed and the next one takes
 * the domain key's label.  Every step is idempotent, and attach()
 * finishes a commit that a crash cut in two, so a rotation resumes from
 * wherever kmsd died.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/secmem.h"
#include "hsm/hsm.h"
#include "hsm/internal.h"

static CK_RV
find_label(hsm *h, const char *label, CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};

	return hsm_find_one(h, t, 3, out);
}

static CK_RV
set_label(hsm *h, CK_OBJECT_HANDLE k, const char *label)
{
	CK_ATTRIBUTE t[] = { { CKA_LABEL, (void *)label, strlen(label) } };

	return h->f->C_SetAttributeValue(h->sess, k, t, 1);
}

CK_RV
hsm_domain_adopt_next(hsm *h, CK_OBJECT_HANDLE *tok)
{
	CK_OBJECT_HANDLE next = CK_INVALID_HANDLE;
	CK_RV rv;

	*tok = CK_INVALID_HANDLE;
	if ((rv = find_label(h, HSM_DOMAIN_NEXT_LABEL, &next)) != CKR_OK ||
	    next == CK_INVALID_HANDLE) {
		return rv;
	}
	if ((rv = set_label(h, next, HSM_DOMAIN_LABEL)) == CKR_OK) {
		log_info("domain-key rotation: the new domain key takes over "
		    "(the old one was already destroyed)");
		*tok = next;
	}
	return rv;
}

CK_RV
hsm_domain_find_next(hsm *h)
{
	CK_OBJECT_HANDLE next = CK_INVALID_HANDLE;
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE copy[] = { { CKA_TOKEN, &no, sizeof(no) } };
	CK_RV rv;

	h->domain_next = CK_INVALID_HANDLE;
	if ((rv = find_label(h, HSM_DOMAIN_NEXT_LABEL, &next)) != CKR_OK ||
	    next == CK_INVALID_HANDLE) {
		return rv;
	}
	if ((rv = h->f->C_CopyObject(h->sess, next, copy, 1,
	    &h->domain_next)) == CKR_OK) {
		atomic_fetch_add(&h->made, 1);
	}
	return rv;
}

int
hsm_domain_rotating(const hsm *h)
{
	return h->domain_next != CK_INVALID_HANDLE;
}

int
hsm_domain_begin(hsm_session *s)
{
	CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
	hsm *h = s->h;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if (h->domain_next != CK_INVALID_HANDLE) {
		return 0;	/* begun already */
	}
	pthread_mutex_lock(&h->mu);
	if ((rv = find_label(h, HSM_DOMAIN_NEXT_LABEL, &k)) == CKR_OK &&
	    k == CK_INVALID_HANDLE) {
		rv = hsm_domain_generate(h, HSM_DOMAIN_NEXT_LABEL, &k);
	}
	if (rv == CKR_OK) {
		rv = hsm_domain_find_next(h);
	}
	pthread_mutex_unlock(&h->mu);
	return hsm_rv_err(h, rv, "making the next domain key");
}

int
hsm_rewrap(hsm_session *s, const uint8_t *in, size_t len, uint8_t *out,
    size_t outsz, size_t *outlen)
{
	CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 };
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	/* Transient, extractable only to be wrapped again at once. */
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },
		{ CKA_ENCRYPT, &no, sizeof(no) },
		{ CKA_DECRYPT, &no, sizeof(no) },
	};
	CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
	CK_ULONG wl = outsz;
	hsm *h = s->h;
	CK_RV rv;
	int r;

	if (len != HSM_WRAPPED_LEN) {
		return KMS_EINVALIDCIPHERTEXT;
	}
	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if (h->domain_next == CK_INVALID_HANDLE) {
		return KMS_EINVAL;	/* no rotation begun */
	}
	pthread_mutex_lock(&h->mu);
	rv = h->f->C_UnwrapKey(h->sess, &kw, h->domain, (CK_BYTE_PTR)in, len,
	    t, sizeof(t) / sizeof(t[0]), &k);
	if (rv == CKR_GENERAL_ERROR) {
		/* Not under the old key: under the new one already? */
		rv = h->f->C_UnwrapKey(h->sess, &kw, h->domain_next,
		    (CK_BYTE_PTR)in, len, t, sizeof(t) / sizeof(t[0]), &k);
		if (rv == CKR_OK) {
			(void)h->f->C_DestroyObject(h->sess, k);
			atomic_fetch_add(&h->made, 1);
			pthread_mutex_unlock(&h->mu);
			return KMS_EALREADYEXISTS;
		}
		pthread_mutex_unlock(&h->mu);
		return rv == CKR_GENERAL_ERROR ? KMS_EINVALIDCIPHERTEXT :
		    hsm_rv_err(h, rv, "C_UnwrapKey (rewrap)");
	}
	if (rv == CKR_OK) {
		atomic_fetch_add(&h->made, 1);
		rv = h->f->C_WrapKey(h->sess, &kw, h->domain_next, k, out,
		    &wl);
		(void)h->f->C_DestroyObject(h->sess, k);
	}
	pthread_mutex_unlock(&h->mu);
	if (rv != CKR_OK) {
		return hsm_rv_err(h, rv, "rewrap");
	}
	*outlen = wl;
	return 0;
}

int
hsm_domain_destroy_old(hsm_session *s)
{
	CK_OBJECT_HANDLE old = CK_INVALID_HANDLE, next = CK_INVALID_HANDLE;
	hsm *h = s->h;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	pthread_mutex_lock(&h->mu);
	if ((rv = find_label(h, HSM_DOMAIN_NEXT_LABEL, &next)) == CKR_OK &&
	    next != CK_INVALID_HANDLE &&
	    (rv = find_label(h, HSM_DOMAIN_LABEL, &old)) == CKR_OK &&
	    old != CK_INVALID_HANDLE) {
		/* Destroy first: a crash after this leaves only the next
		 * key, which attach() adopts; the other order could leave
		 * two keys under one label. */
		rv = h->f->C_DestroyObject(h->sess, old);
	}
	pthread_mutex_unlock(&h->mu);
	if (rv == CKR_OK && next == CK_INVALID_HANDLE) {
		return KMS_ENOTFOUND;
	}
	return hsm_rv_err(h, rv, "destroying the old domain key");
}

int
hsm_domain_promote(hsm_session *s)
{
	CK_OBJECT_HANDLE next = CK_INVALID_HANDLE;
	hsm *h = s->h;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	pthread_mutex_lock(&h->mu);
	if ((rv = find_label(h, HSM_DOMAIN_NEXT_LABEL, &next)) != CKR_OK ||
	    next == CK_INVALID_HANDLE) {
		pthread_mutex_unlock(&h->mu);
		return rv != CKR_OK ? hsm_rv_err(h, rv, "domain promote") :
		    KMS_ENOTFOUND;
	}
	if ((rv = set_label(h, next, HSM_DOMAIN_LABEL)) == CKR_OK) {
		(void)h->f->C_DestroyObject(h->sess, h->domain);
		h->domain = h->domain_next;
		h->domain_next = CK_INVALID_HANDLE;
	}
	pthread_mutex_unlock(&h->mu);
	return hsm_rv_err(h, rv, "relabelling the new domain key");
}

int
hsm_count_label(hsm_session *s, const char *label, int *n)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE objs[16];
	CK_ULONG got = 0;
	hsm *h = s->h;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	pthread_mutex_lock(&h->mu);
	if ((rv = h->f->C_FindObjectsInit(h->sess, t, 3)) == CKR_OK) {
		rv = h->f->C_FindObjects(h->sess, objs, 16, &got);
		(void)h->f->C_FindObjectsFinal(h->sess);
	}
	pthread_mutex_unlock(&h->mu);
	*n = (int)got;
	return hsm_rv_err(h, rv, "count label");
}
