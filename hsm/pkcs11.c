/*
 * pkcs11.c — kmsd's one PKCS#11 client (see hsm.h for the contract).
 *
 * Sessions: the hsm owns one long-lived "internal" session, logged in,
 * guarded by a mutex; every shared object (the domain key's session copy,
 * unwrapped versions, resident copies) is created in it, so a worker's
 * session can be reopened without destroying keys other workers use.
 * PKCS#11 makes session objects visible to every session of the
 * application, so workers use those handles from their own sessions.
 *
 * Outage: a CK_RV that means the token went away marks the hsm down (an
 * atomic); while down every call fails at once with
 * KMS_EDEPENDENCYTIMEOUT.  hsm_recover() rebuilds the internal session and
 * login and bumps the generation; worker sessions reopen when they see a
 * newer generation.
 *
 * Recycling: SoftHSM2 2.6.1 keeps every destroyed session object in memory
 * until C_Finalize (SessionObjectStore::deleteObject only invalidates it),
 * so the hsm counts the session objects it creates and hsm_reinit()
 * finalises and initialises the module again when the daemon asks.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "common/cause.h"
#include "common/err.h"
#include "common/secmem.h"
#include "common/log.h"
#include "hsm/hsm.h"
#include "hsm/internal.h"

#define PIN_MAX 256		/* bytes of a PIN file we accept */
#define FIND_BATCH 64		/* objects per C_FindObjects call */

static const char *
rv_name(CK_RV rv)
{
	switch (rv) {
	case CKR_OK: return "CKR_OK";
	case CKR_HOST_MEMORY: return "CKR_HOST_MEMORY";
	case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
	case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
	case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
	case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
	case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
	case CKR_DEVICE_MEMORY: return "CKR_DEVICE_MEMORY";
	case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
	case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
	case CKR_ENCRYPTED_DATA_LEN_RANGE:
		return "CKR_ENCRYPTED_DATA_LEN_RANGE";
	case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
	case CKR_KEY_UNEXTRACTABLE: return "CKR_KEY_UNEXTRACTABLE";
	case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
	case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
	case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
	case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
	case CKR_SESSION_CLOSED: return "CKR_SESSION_CLOSED";
	case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
	case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
	case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
	case CKR_TOKEN_NOT_RECOGNIZED: return "CKR_TOKEN_NOT_RECOGNIZED";
	case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
	case CKR_WRAPPED_KEY_INVALID: return "CKR_WRAPPED_KEY_INVALID";
	case CKR_WRAPPED_KEY_LEN_RANGE: return "CKR_WRAPPED_KEY_LEN_RANGE";
	case CKR_CRYPTOKI_NOT_INITIALIZED:
		return "CKR_CRYPTOKI_NOT_INITIALIZED";
	case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
	case CKR_FUNCTION_REJECTED: return "CKR_FUNCTION_REJECTED";
	case CKR_FUNCTION_NOT_SUPPORTED: return "CKR_FUNCTION_NOT_SUPPORTED";
	case CKR_FUNCTION_CANCELED: return "CKR_FUNCTION_CANCELED";
	case CKR_OPERATION_ACTIVE: return "CKR_OPERATION_ACTIVE";
	case CKR_OPERATION_NOT_INITIALIZED:
		return "CKR_OPERATION_NOT_INITIALIZED";
	case CKR_DATA_LEN_RANGE: return "CKR_DATA_LEN_RANGE";
	case CKR_BUFFER_TOO_SMALL: return "CKR_BUFFER_TOO_SMALL";
	case CKR_KEY_SIZE_RANGE: return "CKR_KEY_SIZE_RANGE";
	case CKR_KEY_TYPE_INCONSISTENT: return "CKR_KEY_TYPE_INCONSISTENT";
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
		return "CKR_KEY_FUNCTION_NOT_PERMITTED";
	case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
	case CKR_TEMPLATE_INCOMPLETE: return "CKR_TEMPLATE_INCOMPLETE";
	case CKR_RANDOM_NO_RNG: return "CKR_RANDOM_NO_RNG";
	default: return "CKR_?";
	}
}

/*
 * THE mapping of CK_RV to the error space.  The CK_RV is logged, never
 * sent; a vanished token marks the hsm down.
 */
int
hsm_rv_err(hsm *h, CK_RV rv, const char *what)
{
	switch (rv) {
	case CKR_OK:
		return 0;
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_DEVICE_ERROR:
	case CKR_DEVICE_MEMORY:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_KEY_HANDLE_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
		if (h != NULL && atomic_exchange(&h->down, 1) == 0) {
			log_warn("hsm: %s: %s (0x%lx): token "
			    "unavailable", what, rv_name(rv),
			    (unsigned long)rv);
		}
		cause_note("the HSM is unavailable (%s in %s)", rv_name(rv),
		    what);
		return KMS_EDEPENDENCYTIMEOUT;
	case CKR_ENCRYPTED_DATA_INVALID:
	case CKR_ENCRYPTED_DATA_LEN_RANGE:
	case CKR_WRAPPED_KEY_INVALID:
	case CKR_WRAPPED_KEY_LEN_RANGE:
		return KMS_EINVALIDCIPHERTEXT;
	case CKR_HOST_MEMORY:
		log_warn("hsm: %s: %s", what, rv_name(rv));
		cause_note("the HSM module ran out of memory (%s)", what);
		return KMS_ENOMEM;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_LOCKED:
	case CKR_PIN_LEN_RANGE:
		log_warn("hsm: %s: %s", what, rv_name(rv));
		return KMS_EACCESSDENIED;
	default:
		log_warn("hsm: %s: %s (0x%lx)", what,
		    rv_name(rv), (unsigned long)rv);
		cause_note("the HSM refused the operation (%s in %s, 0x%lx)",
		    rv_name(rv), what, (unsigned long)rv);
		return KMS_EINTERNAL;
	}
}

uint64_t
hsm_generation(const hsm *h)
{
	return atomic_load(&((hsm *)h)->gen);
}

int
hsm_is_down(const hsm *h)
{
	return atomic_load(&((hsm *)h)->down);
}

/* Find the slot whose token has our label. */
static CK_RV
find_slot(hsm *h, CK_SLOT_ID *out)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	size_t ll = strlen(h->label);

	if ((rv = h->f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		return rv;
	}
	for (i = 0; i < n; i++) {
		if (h->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) {
			continue;
		}
		/* Labels are blank-padded to 32 bytes. */
		if (memcmp(ti.label, h->label, ll) == 0 &&
		    (ll == 32 || ti.label[ll] == ' ')) {
			*out = slots[i];
			return CKR_OK;
		}
	}
	return CKR_TOKEN_NOT_PRESENT;
}

/* Read the PIN into locked memory; the caller wipes it. */
static int
read_pin(const char *path, char *pin, size_t pinsz, size_t *len)
{
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return -1;
	}
	n = read(fd, pin, pinsz - 1);
	close(fd);
	if (n <= 0) {
		return -1;
	}
	while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r')) {
		n--;
	}
	pin[n] = '\0';
	*len = (size_t)n;
	return n > 0 ? 0 : -1;
}

static CK_RV
login(hsm *h)
{
	char *pin = secure_alloc(PIN_MAX);
	size_t len = 0;
	CK_RV rv;

	if (pin == NULL) {
		return CKR_HOST_MEMORY;
	}
	if (read_pin(h->pin_file, pin, PIN_MAX, &len) != 0) {
		secure_free(pin, PIN_MAX);
		return CKR_PIN_INCORRECT;
	}
	rv = h->f->C_Login(h->sess, CKU_USER, (CK_UTF8CHAR_PTR)pin, len);
	/* The PIN is gone as soon as the token has it. */
	secure_free(pin, PIN_MAX);
	if (rv == CKR_USER_ALREADY_LOGGED_IN) {
		rv = CKR_OK;
	}
	return rv;
}

/* The first object matching t, or CK_INVALID_HANDLE (internal session;
 * start-up and set-up paths only: C_FindObjects scans every object). */
CK_RV
hsm_find_one(hsm *h, CK_ATTRIBUTE *t, CK_ULONG nt, CK_OBJECT_HANDLE *out)
{
	CK_ULONG n = 0;
	CK_RV rv;

	*out = CK_INVALID_HANDLE;
	if ((rv = h->f->C_FindObjectsInit(h->sess, t, nt)) != CKR_OK) {
		return rv;
	}
	rv = h->f->C_FindObjects(h->sess, out, 1, &n);
	(void)h->f->C_FindObjectsFinal(h->sess);
	if (rv == CKR_OK && n == 0) {
		*out = CK_INVALID_HANDLE;
	}
	return rv;
}

static CK_RV
find_domain(hsm *h, CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)HSM_DOMAIN_LABEL,
		    sizeof(HSM_DOMAIN_LABEL) - 1 },
	};

	return hsm_find_one(h, t, 2, out);
}

CK_RV
hsm_domain_generate(hsm *h, const char *label, CK_OBJECT_HANDLE *out)
{
	CK_MECHANISM m = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_ULONG len = 32;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[] = {
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_WRAP, &yes, sizeof(yes) },
		{ CKA_UNWRAP, &yes, sizeof(yes) },
		{ CKA_ENCRYPT, &no, sizeof(no) },
		{ CKA_DECRYPT, &no, sizeof(no) },
		{ CKA_SIGN, &no, sizeof(no) },
		{ CKA_VERIFY, &no, sizeof(no) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};

	return h->f->C_GenerateKey(h->sess, &m, t, sizeof(t) / sizeof(t[0]),
	    out);
}

/* Internal session, login, domain key copy (mu held). */
static int
attach(hsm *h, int create_domain_key, char *errbuf, size_t errlen)
{
	CK_OBJECT_HANDLE tok = CK_INVALID_HANDLE;
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE copy[] = { { CKA_TOKEN, &no, sizeof(no) } };
	CK_RV rv;

	if ((rv = find_slot(h, &h->slot)) != CKR_OK) {
		snprintf(errbuf, errlen, "no token labelled \"%s\" (%s); run "
		    "scripts/hsm-init", h->label, rv_name(rv));
		return hsm_rv_err(NULL, rv, "find token");
	}
	if ((rv = h->f->C_OpenSession(h->slot, CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &h->sess)) != CKR_OK) {
		snprintf(errbuf, errlen, "C_OpenSession: %s", rv_name(rv));
		return hsm_rv_err(NULL, rv, "open session");
	}
	if ((rv = login(h)) != CKR_OK) {
		snprintf(errbuf, errlen, "login to token \"%s\" with %s: %s",
		    h->label, h->pin_file, rv_name(rv));
		goto fail;
	}
	if ((rv = find_domain(h, &tok)) != CKR_OK) {
		snprintf(errbuf, errlen, "finding the domain key: %s",
		    rv_name(rv));
		goto fail;
	}
	if (tok == CK_INVALID_HANDLE && (rv = hsm_domain_adopt_next(h,
	    &tok)) != CKR_OK) {
		snprintf(errbuf, errlen, "finishing a domain-key rotation: %s",
		    rv_name(rv));
		goto fail;
	}
	if (tok == CK_INVALID_HANDLE) {
		if (!create_domain_key) {
			snprintf(errbuf, errlen, "domain key \"%s\" not found "
			    "in token \"%s\"; run scripts/hsm-init",
			    HSM_DOMAIN_LABEL, h->label);
			rv = CKR_GENERAL_ERROR;
			goto fail;
		}
		if ((rv = hsm_domain_generate(h, HSM_DOMAIN_LABEL, &tok)) != CKR_OK) {
			snprintf(errbuf, errlen, "creating the domain key: %s",
			    rv_name(rv));
			goto fail;
		}
		log_info("domain key created in token \"%s\"",
		    h->label);
	}
	/* Token objects are ~3x slower to use in SoftHSM2 than session
	 * objects; the copy stays sensitive and non-extractable. */
	if ((rv = h->f->C_CopyObject(h->sess, tok, copy, 1, &h->domain)) !=
	    CKR_OK) {
		snprintf(errbuf, errlen, "copying the domain key: %s",
		    rv_name(rv));
		goto fail;
	}
	atomic_fetch_add(&h->made, 1);
	if ((rv = hsm_domain_find_next(h)) != CKR_OK) {
		snprintf(errbuf, errlen, "finding the next domain key: %s",
		    rv_name(rv));
		goto fail;
	}
	return 0;
 fail:
	(void)h->f->C_CloseSession(h->sess);
	h->sess = CK_INVALID_HANDLE;
	return rv == CKR_GENERAL_ERROR ? KMS_ENOTFOUND :
	    hsm_rv_err(NULL, rv, "attach");
}

static int
probe_mechanisms(hsm *h, char *errbuf, size_t errlen)
{
	static const struct {
		CK_MECHANISM_TYPE m;
		CK_FLAGS need;
		const char *name;
	} need[] = {
		{ CKM_AES_GCM, CKF_ENCRYPT | CKF_DECRYPT, "CKM_AES_GCM" },
		{ CKM_AES_KEY_WRAP, CKF_WRAP | CKF_UNWRAP,
		    "CKM_AES_KEY_WRAP (0x2109)" },
		{ CKM_AES_KEY_GEN, CKF_GENERATE, "CKM_AES_KEY_GEN" },
	};
	CK_MECHANISM_INFO mi;
	size_t i;

	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (h->f->C_GetMechanismInfo(h->slot, need[i].m, &mi) !=
		    CKR_OK || (mi.flags & need[i].need) != need[i].need) {
			snprintf(errbuf, errlen, "the HSM lacks %s, which kmsd "
			    "needs", need[i].name);
			return KMS_EUNSUPPORTED;
		}
	}
	return 0;
}

/*
 * The module's locks.  PKCS#11 lets the application supply them; ours are
 * adaptive mutexes, which spin briefly before sleeping.  A token library
 * holds its locks for a few hundred nanoseconds (SoftHSM2 takes several
 * per operation, some shared by every session), so with many workers on
 * few cores a lock is often busy for less time than a futex sleep and
 * wake-up cost; plain mutexes turned that into context switches.
 */
static CK_RV
p11_mutex_create(CK_VOID_PTR_PTR mp)
{
	pthread_mutexattr_t a;
	pthread_mutex_t *m;

	if (mp == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if ((m = malloc(sizeof(*m))) == NULL) {
		return CKR_HOST_MEMORY;
	}
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
	if (pthread_mutex_init(m, &a) != 0) {
		pthread_mutexattr_destroy(&a);
		free(m);
		return CKR_GENERAL_ERROR;
	}
	pthread_mutexattr_destroy(&a);
	*mp = m;
	return CKR_OK;
}

static CK_RV
p11_mutex_destroy(CK_VOID_PTR m)
{
	if (m == NULL) {
		return CKR_MUTEX_BAD;
	}
	pthread_mutex_destroy(m);
	free(m);
	return CKR_OK;
}

static CK_RV
p11_mutex_lock(CK_VOID_PTR m)
{
	if (m == NULL || pthread_mutex_lock(m) != 0) {
		return CKR_MUTEX_BAD;
	}
	return CKR_OK;
}

static CK_RV
p11_mutex_unlock(CK_VOID_PTR m)
{
	if (m == NULL || pthread_mutex_unlock(m) != 0) {
		return CKR_MUTEX_NOT_LOCKED;
	}
	return CKR_OK;
}

/* C_Initialize's arguments: our locks, or the OS's where allowed. */
static void
p11_init_args(CK_C_INITIALIZE_ARGS *ia)
{
	memset(ia, 0, sizeof(*ia));
	ia->CreateMutex = p11_mutex_create;
	ia->DestroyMutex = p11_mutex_destroy;
	ia->LockMutex = p11_mutex_lock;
	ia->UnlockMutex = p11_mutex_unlock;
	ia->flags = CKF_OS_LOCKING_OK;
}

int
hsm_open(const struct hsm_config *cfg, hsm **out, char *errbuf,
    size_t errlen)
{
	CK_C_GetFunctionList gfl;
	CK_C_INITIALIZE_ARGS ia;
	hsm *h;
	CK_RV rv;
	int r = KMS_EINTERNAL;

	if (cfg == NULL || cfg->module == NULL || cfg->token_label == NULL ||
	    cfg->pin_file == NULL || strlen(cfg->token_label) > 32 ||
	    strlen(cfg->pin_file) >= sizeof(h->pin_file)) {
		snprintf(errbuf, errlen, "bad HSM configuration");
		return KMS_EINVAL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		return KMS_ENOMEM;
	}
	pthread_mutex_init(&h->mu, NULL);
	pthread_rwlock_init(&h->token_turn, NULL);
	snprintf(h->label, sizeof(h->label), "%s", cfg->token_label);
	snprintf(h->pin_file, sizeof(h->pin_file), "%s", cfg->pin_file);
	atomic_init(&h->gen, 1);
	atomic_init(&h->down, 0);
	atomic_init(&h->made, 0);
	if ((h->dl = dlopen(cfg->module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(errbuf, errlen, "cannot load PKCS#11 module %s: %s",
		    cfg->module, dlerror());
		goto fail;
	}
	if ((gfl = (CK_C_GetFunctionList)dlsym(h->dl,
	    "C_GetFunctionList")) == NULL || gfl(&h->f) != CKR_OK) {
		snprintf(errbuf, errlen, "%s is not a PKCS#11 module",
		    cfg->module);
		goto fail;
	}
	p11_init_args(&ia);
	if ((rv = h->f->C_Initialize(&ia)) != CKR_OK &&
	    rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		snprintf(errbuf, errlen, "C_Initialize: %s", rv_name(rv));
		h->f = NULL;
		goto fail;
	}
	/* Finalising is process-wide: only the one who initialised may. */
	h->finalize = rv == CKR_OK;
	if ((r = attach(h, cfg->create_domain_key, errbuf, errlen)) != 0 ||
	    (r = probe_mechanisms(h, errbuf, errlen)) != 0) {
		goto fail;
	}
	*out = h;
	return 0;
 fail:
	hsm_close(h);
	return r != 0 ? r : KMS_EINTERNAL;
}

void
hsm_close(hsm *h)
{
	if (h == NULL) {
		return;
	}
	if (h->f != NULL) {
		if (h->sess != CK_INVALID_HANDLE) {
			(void)h->f->C_Logout(h->sess);
			(void)h->f->C_CloseSession(h->sess);
		}
		if (h->finalize) {
			(void)h->f->C_Finalize(NULL);
		}
	}
	if (h->dl != NULL) {
		dlclose(h->dl);
	}
	pthread_mutex_destroy(&h->mu);
	pthread_rwlock_destroy(&h->token_turn);
	free(h);
}

int
hsm_init_token(const char *module, const char *label,
    const char *so_pin_file, const char *user_pin_file, char *errbuf,
    size_t errlen)
{
	CK_C_GetFunctionList gfl;
	CK_C_INITIALIZE_ARGS ia;
	CK_SLOT_ID slots[64], slot = 0, found;
	CK_ULONG n = 64, i;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE sess = CK_INVALID_HANDLE;
	CK_UTF8CHAR padded[32];
	char *so = NULL, *user = NULL;
	size_t solen = 0, userlen = 0;
	hsm tmp;
	CK_RV rv = CKR_OK;
	int r = KMS_EINTERNAL, have_slot = 0, inited = 0;
	void *dl;

	memset(&tmp, 0, sizeof(tmp));
	if (strlen(label) > 32) {
		snprintf(errbuf, errlen, "token label longer than 32");
		return KMS_EINVAL;
	}
	snprintf(tmp.label, sizeof(tmp.label), "%s", label);
	if ((dl = dlopen(module, RTLD_NOW | RTLD_LOCAL)) == NULL ||
	    (gfl = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList")) ==
	    NULL || gfl(&tmp.f) != CKR_OK) {
		snprintf(errbuf, errlen, "cannot load PKCS#11 module %s",
		    module);
		goto out;
	}
	p11_init_args(&ia);
	if ((rv = tmp.f->C_Initialize(&ia)) != CKR_OK) {
		snprintf(errbuf, errlen, "C_Initialize: %s", rv_name(rv));
		goto out;
	}
	inited = 1;
	if (find_slot(&tmp, &found) == CKR_OK) {
		r = KMS_EALREADYEXISTS;
		goto out;
	}
	if ((rv = tmp.f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK) {
		snprintf(errbuf, errlen, "C_GetSlotList: %s", rv_name(rv));
		goto out;
	}
	for (i = 0; i < n && !have_slot; i++) {
		if (tmp.f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    !(ti.flags & CKF_TOKEN_INITIALIZED)) {
			slot = slots[i];
			have_slot = 1;
		}
	}
	if (!have_slot) {
		snprintf(errbuf, errlen, "no uninitialised token in %s",
		    module);
		goto out;
	}
	if ((so = secure_alloc(PIN_MAX)) == NULL ||
	    (user = secure_alloc(PIN_MAX)) == NULL ||
	    read_pin(so_pin_file, so, PIN_MAX, &solen) != 0 ||
	    read_pin(user_pin_file, user, PIN_MAX, &userlen) != 0) {
		snprintf(errbuf, errlen, "cannot read %s or %s", so_pin_file,
		    user_pin_file);
		goto out;
	}
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, strlen(label));
	if ((rv = tmp.f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so, solen,
	    padded)) != CKR_OK) {
		snprintf(errbuf, errlen, "C_InitToken: %s", rv_name(rv));
		goto out;
	}
	/* SoftHSM2 moves an initialised token to a new slot id. */
	if ((rv = find_slot(&tmp, &slot)) != CKR_OK ||
	    (rv = tmp.f->C_OpenSession(slot, CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &sess)) != CKR_OK ||
	    (rv = tmp.f->C_Login(sess, CKU_SO, (CK_UTF8CHAR_PTR)so,
	    solen)) != CKR_OK ||
	    (rv = tmp.f->C_InitPIN(sess, (CK_UTF8CHAR_PTR)user, userlen)) !=
	    CKR_OK) {
		snprintf(errbuf, errlen, "setting the user PIN: %s",
		    rv_name(rv));
		goto out;
	}
	(void)tmp.f->C_Logout(sess);
	r = 0;
 out:
	secure_free(so, PIN_MAX);
	secure_free(user, PIN_MAX);
	if (sess != CK_INVALID_HANDLE) {
		(void)tmp.f->C_CloseSession(sess);
	}
	if (inited) {
		(void)tmp.f->C_Finalize(NULL);
	}
	if (dl != NULL) {
		dlclose(dl);
	}
	return r;
}

uint64_t
hsm_objects_made(const hsm *h)
{
	return atomic_load(&((hsm *)h)->made);
}

/* h->mu held, the module finalised: initialise it again (same arguments),
 * with no session, object or count of objects left from before. */
static CK_RV
module_init(hsm *h)
{
	CK_C_INITIALIZE_ARGS ia;
	CK_RV rv;

	p11_init_args(&ia);
	if ((rv = h->f->C_Initialize(&ia)) == CKR_OK) {
		h->need_init = 0;
		h->slot = 0;
		h->sess = CK_INVALID_HANDLE;
		h->domain = CK_INVALID_HANDLE;
		h->domain_next = CK_INVALID_HANDLE;
		atomic_store(&h->made, 0);
	}
	return rv;
}

int
hsm_recover(hsm *h)
{
	char err[256];
	CK_RV rv;
	int r;

	pthread_mutex_lock(&h->mu);
	if (!atomic_load(&h->down)) {
		pthread_mutex_unlock(&h->mu);
		return 0;
	}
	/* A re-initialisation stopped between C_Finalize and a successful
	 * C_Initialize: finish it first. */
	if (h->need_init && (rv = module_init(h)) != CKR_OK) {
		pthread_mutex_unlock(&h->mu);
		return hsm_rv_err(NULL, rv, "C_Initialize");
	}
	/* Whatever survived the outage is unusable: start afresh. */
	if (h->slot != 0 || h->sess != CK_INVALID_HANDLE) {
		(void)h->f->C_CloseAllSessions(h->slot);
	}
	h->sess = CK_INVALID_HANDLE;
	h->domain = CK_INVALID_HANDLE;
	h->domain_next = CK_INVALID_HANDLE;
	if ((r = attach(h, 0, err, sizeof(err))) == 0) {
		atomic_fetch_add(&h->gen, 1);
		atomic_store(&h->down, 0);
	}
	pthread_mutex_unlock(&h->mu);
	return r;
}

int
hsm_reinit(hsm *h)
{
	char err[256];
	CK_RV rv;
	int r;

	if (h == NULL) {
		return KMS_EINVAL;
	}
	if (!h->finalize) {
		/* Someone else in this process initialised the module; a
		 * C_Finalize would pull it from under them. */
		return KMS_EUNSUPPORTED;
	}
	pthread_mutex_lock(&h->mu);
	/* Callers fail fast until the token is back (they should not be
	 * calling at all: see hsm.h). */
	atomic_store(&h->down, 1);
	(void)h->f->C_Finalize(NULL);
	/* Every session and session object is gone, and the numbers of the
	 * handles and sessions of this generation may name others after
	 * C_Initialize: make them all stale whatever happens next. */
	atomic_fetch_add(&h->gen, 1);
	h->sess = CK_INVALID_HANDLE;
	h->domain = CK_INVALID_HANDLE;
	h->domain_next = CK_INVALID_HANDLE;
	h->slot = 0;
	h->need_init = 1;
	if ((rv = module_init(h)) != CKR_OK) {
		r = hsm_rv_err(NULL, rv, "re-initialising: C_Initialize");
		log_warn("hsm: re-initialising the module failed "
		    "(C_Initialize: %s); retrying as after an outage",
		    rv_name(rv));
		goto out;
	}
	if ((r = attach(h, 0, err, sizeof(err))) != 0) {
		log_warn("hsm: re-initialising the module failed "
		    "(%s); retrying as after an outage", err);
		goto out;
	}
	atomic_fetch_add(&h->gen, 1);
	atomic_store(&h->down, 0);
	r = 0;
 out:
	pthread_mutex_unlock(&h->mu);
	return r;
}

int
hsm_session_open(hsm *h, hsm_session **out)
{
	hsm_session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return KMS_ENOMEM;
	}
	s->h = h;
	*out = s;
	return 0;
}

void
hsm_session_close(hsm_session *s)
{
	if (s == NULL) {
		return;
	}
	/* A session of an older generation was closed with all the others
	 * (hsm_recover, hsm_reinit); its number may now be someone else's. */
	if (s->open && !atomic_load(&s->h->down) &&
	    s->gen == atomic_load(&s->h->gen)) {
		(void)s->h->f->C_CloseSession(s->s);
	}
	free(s);
}

/* Make s usable: fail fast while down, reopen after a recovery. */
int
hsm_ready(hsm_session *s)
{
	uint64_t gen;
	CK_RV rv;

	if (atomic_load(&s->h->down)) {
		cause_note("the HSM is unavailable (the token went away; "
		    "kmsd retries)");
		return KMS_EDEPENDENCYTIMEOUT;
	}
	gen = atomic_load(&s->h->gen);
	if (s->open && s->gen == gen) {
		return 0;
	}
	/*
	 * A newer generation: the session was closed with all the others
	 * (C_CloseAllSessions in hsm_recover, C_Finalize in hsm_reinit).  Do
	 * not close its number again: the module reuses numbers, and it may
	 * now be another worker's new session, or the internal one.
	 */
	s->open = 0;
	if ((rv = s->h->f->C_OpenSession(s->h->slot, CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &s->s)) != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_OpenSession");
	}
	s->open = 1;
	s->gen = gen;
	return 0;
}

int
hsm_random(hsm_session *s, uint8_t *buf, size_t n)
{
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	return hsm_rv_err(s->h, s->h->f->C_GenerateRandom(s->s, buf, n),
	    "C_GenerateRandom");
}

int
hsm_generate_wrapped(hsm_session *s, uint8_t *wrapped, size_t wrapsz,
    size_t *wrappedlen)
{
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 };
	CK_ULONG len = 32, wl = wrapsz;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	/* Transient: extractable only so that it can be wrapped (SoftHSM2
	 * refuses to wrap otherwise); destroyed right after. */
	CK_ATTRIBUTE t[] = {
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
	};
	CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if ((rv = s->h->f->C_GenerateKey(s->s, &gen, t, sizeof(t) /
	    sizeof(t[0]), &k)) != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_GenerateKey");
	}
	atomic_fetch_add(&s->h->made, 1);
	/* During a domain-key rotation, new material goes under the new
	 * key at once, so the rotation's sweep never misses it. */
	rv = s->h->f->C_WrapKey(s->s, &kw, s->h->domain_next !=
	    CK_INVALID_HANDLE ? s->h->domain_next : s->h->domain, k, wrapped,
	    &wl);
	(void)s->h->f->C_DestroyObject(s->s, k);
	if (rv != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_WrapKey");
	}
	*wrappedlen = wl;
	return 0;
}

static const CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY;
static const CK_KEY_TYPE aes_type = CKK_AES;

int
hsm_unwrap(hsm_session *s, const uint8_t *wrapped, size_t len, hsm_key *out)
{
	CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, (void *)&secret_class, sizeof(secret_class) },
		{ CKA_KEY_TYPE, (void *)&aes_type, sizeof(aes_type) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
	};
	CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
	CK_RV rv;
	int r;

	if (len != HSM_WRAPPED_LEN) {
		return KMS_EINVALIDCIPHERTEXT;
	}
	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	pthread_mutex_lock(&s->h->mu);
	rv = s->h->f->C_UnwrapKey(s->h->sess, &kw, s->h->domain,
	    (CK_BYTE_PTR)wrapped, len, t, sizeof(t) / sizeof(t[0]), &k);
	if (rv == CKR_GENERAL_ERROR && s->h->domain_next !=
	    CK_INVALID_HANDLE) {
		/* Re-wrapped already by a domain-key rotation under way. */
		rv = s->h->f->C_UnwrapKey(s->h->sess, &kw,
		    s->h->domain_next, (CK_BYTE_PTR)wrapped, len, t,
		    sizeof(t) / sizeof(t[0]), &k);
	}
	pthread_mutex_unlock(&s->h->mu);
	if (rv == CKR_GENERAL_ERROR) {
		/* SoftHSM2's answer to a blob failing the RFC 3394 check. */
		return KMS_EINVALIDCIPHERTEXT;
	}
	if (rv != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_UnwrapKey");
	}
	atomic_fetch_add(&s->h->made, 1);
	*out = k;
	return 0;
}

int
hsm_generate_resident(hsm_session *s, const uint8_t *id, size_t idlen)
{
	return hsm_generate_resident_ref(s, id, idlen, NULL);
}

int
hsm_generate_resident_ref(hsm_session *s, const uint8_t *id, size_t idlen,
    hsm_resident_ref *ref)
{
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_ULONG len = 32;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[] = {
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
		{ CKA_ID, (void *)id, idlen },
	};
	CK_OBJECT_HANDLE k;
	int r;

	if (idlen == 0 || idlen > HSM_RESIDENT_ID_MAX) {
		return KMS_EINVAL;
	}
	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	pthread_rwlock_rdlock(&s->h->token_turn);
	r = hsm_rv_err(s->h, s->h->f->C_GenerateKey(s->s, &gen, t,
	    sizeof(t) / sizeof(t[0]), &k), "C_GenerateKey (resident)");
	pthread_rwlock_unlock(&s->h->token_turn);
	if (r != 0) {
		return r;
	}
	if (ref != NULL) {
		/* A token object's handle outlives the session that made
		 * it: the first load copies it without a search. */
		ref->obj = k;
		ref->gen = hsm_generation(s->h);
	}
	return 0;
}

void
hsm_token_freeze(hsm *h)
{
	pthread_rwlock_wrlock(&h->token_turn);
}

void
hsm_token_thaw(hsm *h)
{
	pthread_rwlock_unlock(&h->token_turn);
}

/* Find a resident token object by CKA_ID (mu held). */
static CK_RV
find_resident(hsm *h, const uint8_t *id, size_t idlen, CK_OBJECT_HANDLE *out)
{
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, (void *)&secret_class, sizeof(secret_class) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_ID, (void *)id, idlen },
	};

	return hsm_find_one(h, t, 3, out);
}

/* Copy the token object tok into a session object if it is still the
 * version id; CK_INVALID_HANDLE in *out when it is not (mu held). */
static CK_RV
copy_resident(hsm *h, CK_OBJECT_HANDLE tok, const uint8_t *id, size_t idlen,
    CK_OBJECT_HANDLE *out)
{
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE copy[] = { { CKA_TOKEN, &no, sizeof(no) } };
	uint8_t got[HSM_RESIDENT_ID_MAX];
	CK_ATTRIBUTE a = { CKA_ID, got, sizeof(got) };
	CK_OBJECT_HANDLE k;
	CK_RV rv;

	*out = CK_INVALID_HANDLE;
	if ((rv = h->f->C_CopyObject(h->sess, tok, copy, 1, &k)) != CKR_OK) {
		return rv == CKR_OBJECT_HANDLE_INVALID ? CKR_OK : rv;
	}
	atomic_fetch_add(&h->made, 1);
	if ((rv = h->f->C_GetAttributeValue(h->sess, k, &a, 1)) != CKR_OK ||
	    a.ulValueLen != idlen || memcmp(got, id, idlen) != 0) {
		(void)h->f->C_DestroyObject(h->sess, k);
		return rv == CKR_OK || rv == CKR_ATTRIBUTE_TYPE_INVALID ?
		    CKR_OK : rv;
	}
	*out = k;
	return CKR_OK;
}

int
hsm_load_resident(hsm_session *s, const uint8_t *id, size_t idlen,
    hsm_resident_ref *ref, hsm_key *out)
{
	uint64_t gen = hsm_generation(s->h);
	CK_OBJECT_HANDLE tok, k = CK_INVALID_HANDLE;
	CK_RV rv = CKR_OK;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	pthread_mutex_lock(&s->h->mu);
	if (ref != NULL && ref->obj != 0 && ref->gen == gen) {
		rv = copy_resident(s->h, ref->obj, id, idlen, &k);
	}
	if (rv == CKR_OK && k == CK_INVALID_HANDLE) {
		/* First use, a new generation, or a stale handle: search. */
		if ((rv = find_resident(s->h, id, idlen, &tok)) == CKR_OK) {
			if (tok == CK_INVALID_HANDLE) {
				pthread_mutex_unlock(&s->h->mu);
				return KMS_ENOTFOUND;
			}
			if (ref != NULL) {
				ref->obj = tok;
				ref->gen = gen;
			}
			rv = copy_resident(s->h, tok, id, idlen, &k);
			if (rv == CKR_OK && k == CK_INVALID_HANDLE) {
				rv = CKR_OBJECT_HANDLE_INVALID;
			}
		}
	}
	pthread_mutex_unlock(&s->h->mu);
	if (rv != CKR_OK) {
		return hsm_rv_err(s->h, rv, "load resident key");
	}
	*out = k;
	return 0;
}

int
hsm_destroy_resident(hsm_session *s, const uint8_t *id, size_t idlen)
{
	CK_OBJECT_HANDLE tok;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	pthread_rwlock_rdlock(&s->h->token_turn);
	pthread_mutex_lock(&s->h->mu);
	if ((rv = find_resident(s->h, id, idlen, &tok)) == CKR_OK) {
		if (tok == CK_INVALID_HANDLE) {
			pthread_mutex_unlock(&s->h->mu);
			pthread_rwlock_unlock(&s->h->token_turn);
			return KMS_ENOTFOUND;
		}
		rv = s->h->f->C_DestroyObject(s->h->sess, tok);
	}
	pthread_mutex_unlock(&s->h->mu);
	pthread_rwlock_unlock(&s->h->token_turn);
	return hsm_rv_err(s->h, rv, "destroy resident key");
}

struct resident_id {
	uint8_t id[HSM_RESIDENT_ID_MAX];
	size_t len;
	hsm_resident_ref ref;
};

int
hsm_list_resident(hsm_session *s, void (*fn)(const uint8_t *id,
    size_t idlen, const hsm_resident_ref *ref, void *arg), void *arg)
{
	uint64_t gen = hsm_generation(s->h);
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, (void *)&secret_class, sizeof(secret_class) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
	};
	CK_OBJECT_HANDLE batch[FIND_BATCH];
	struct resident_id *ids = NULL, *na;
	size_t nids = 0, i;
	CK_ULONG n, j;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	/* Collect first, call back after: fn may destroy objects. */
	pthread_mutex_lock(&s->h->mu);
	if ((rv = s->h->f->C_FindObjectsInit(s->h->sess, t, 2)) == CKR_OK) {
		while ((rv = s->h->f->C_FindObjects(s->h->sess, batch,
		    FIND_BATCH, &n)) == CKR_OK && n > 0) {
			if ((na = realloc(ids, (nids + n) * sizeof(*ids))) ==
			    NULL) {
				rv = CKR_HOST_MEMORY;
				break;
			}
			ids = na;
			for (j = 0; j < n; j++) {
				CK_ATTRIBUTE a = { CKA_ID, ids[nids].id,
				    HSM_RESIDENT_ID_MAX };
				/* Objects without an id (the domain key) or
				 * with a longer one are not versions. */
				if (s->h->f->C_GetAttributeValue(s->h->sess,
				    batch[j], &a, 1) == CKR_OK &&
				    a.ulValueLen > 0 &&
				    a.ulValueLen <= HSM_RESIDENT_ID_MAX) {
					ids[nids].ref.obj = batch[j];
					ids[nids].ref.gen = gen;
					ids[nids++].len = a.ulValueLen;
				}
			}
		}
		(void)s->h->f->C_FindObjectsFinal(s->h->sess);
	}
	pthread_mutex_unlock(&s->h->mu);
	for (i = 0; rv == CKR_OK && i < nids; i++) {
		fn(ids[i].id, ids[i].len, &ids[i].ref, arg);
	}
	free(ids);
	return hsm_rv_err(s->h, rv, "list resident keys");
}

void
hsm_key_release(hsm_session *s, hsm_key k)
{
	if (k == CK_INVALID_HANDLE || hsm_ready(s) != 0) {
		return;
	}
	pthread_mutex_lock(&s->h->mu);
	(void)s->h->f->C_DestroyObject(s->h->sess, k);
	pthread_mutex_unlock(&s->h->mu);
}

int
hsm_gcm_encrypt(hsm_session *s, hsm_key k, const uint8_t *iv,
    const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen,
    uint8_t *out)
{
	CK_GCM_PARAMS gp = { (CK_BYTE_PTR)iv, HSM_GCM_IV_LEN,
		HSM_GCM_IV_LEN * 8, (CK_BYTE_PTR)aad, aadlen,
		HSM_GCM_TAG_LEN * 8 };
	CK_MECHANISM m = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_ULONG outlen = ptlen + HSM_GCM_TAG_LEN;
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if ((rv = s->h->f->C_EncryptInit(s->s, &m, k)) != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_EncryptInit");
	}
	if ((rv = s->h->f->C_Encrypt(s->s, (CK_BYTE_PTR)pt, ptlen, out,
	    &outlen)) != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_Encrypt");
	}
	if (outlen != ptlen + HSM_GCM_TAG_LEN) {
		return KMS_EINTERNAL;
	}
	return 0;
}

int
hsm_gcm_decrypt(hsm_session *s, hsm_key k, const uint8_t *iv,
    const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t ctlen,
    uint8_t *pt, size_t *ptlen)
{
	CK_GCM_PARAMS gp = { (CK_BYTE_PTR)iv, HSM_GCM_IV_LEN,
		HSM_GCM_IV_LEN * 8, (CK_BYTE_PTR)aad, aadlen,
		HSM_GCM_TAG_LEN * 8 };
	CK_MECHANISM m = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_ULONG outlen;
	CK_RV rv;
	int r;

	if (ctlen < HSM_GCM_TAG_LEN) {
		return KMS_EINVALIDCIPHERTEXT;
	}
	outlen = ctlen;		/* SoftHSM2 wants room for ct ‖ tag */
	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if ((rv = s->h->f->C_DecryptInit(s->s, &m, k)) != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_DecryptInit");
	}
	rv = s->h->f->C_Decrypt(s->s, (CK_BYTE_PTR)ct, ctlen, pt, &outlen);
	if (rv != CKR_OK) {
		/* No partial plaintext survives a failed tag check. */
		secure_wipe(pt, ctlen - HSM_GCM_TAG_LEN);
		/* SoftHSM2 2.6.1 reports a GCM tag mismatch as
		 * CKR_GENERAL_ERROR; the standard says
		 * CKR_ENCRYPTED_DATA_INVALID.  Both mean a bad ciphertext. */
		if (rv == CKR_GENERAL_ERROR) {
			return KMS_EINVALIDCIPHERTEXT;
		}
		return hsm_rv_err(s->h, rv, "C_Decrypt");
	}
	*ptlen = outlen;
	return 0;
}

int
hsm_inspect_key(hsm_session *s, hsm_key k, struct hsm_key_attrs *out)
{
	CK_BBOOL sens = 0, ext = 0, tok = 0, priv = 0;
	CK_ATTRIBUTE a[] = {
		{ CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_EXTRACTABLE, &ext, sizeof(ext) },
		{ CKA_TOKEN, &tok, sizeof(tok) },
		{ CKA_PRIVATE, &priv, sizeof(priv) },
	};
	uint8_t value[64], wrapped[64];
	CK_ATTRIBUTE v = { CKA_VALUE, value, sizeof(value) };
	CK_MECHANISM kw = { CKM_AES_KEY_WRAP, NULL, 0 };
	CK_ULONG wl = sizeof(wrapped);
	CK_RV rv;
	int r;

	if ((r = hsm_ready(s)) != 0) {
		return r;
	}
	if ((rv = s->h->f->C_GetAttributeValue(s->s, k, a, 4)) != CKR_OK) {
		return hsm_rv_err(s->h, rv, "C_GetAttributeValue");
	}
	out->sensitive = sens != 0;
	out->extractable = ext != 0;
	out->token = tok != 0;
	out->is_private = priv != 0;
	out->value_readable = s->h->f->C_GetAttributeValue(s->s, k, &v, 1) ==
	    CKR_OK && v.ulValueLen != CK_UNAVAILABLE_INFORMATION;
	out->wrap_refused = s->h->f->C_WrapKey(s->s, &kw, s->h->domain, k,
	    wrapped, &wl) != CKR_OK;
	secure_wipe(value, sizeof(value));
	secure_wipe(wrapped, sizeof(wrapped));
	return 0;
}
