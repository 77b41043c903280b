/*
 * p11shim.c — a fault-injecting PKCS#11 module for tests.
 *
 * It forwards every call to the real module ($P11SHIM_MODULE, default
 * SoftHSM2), which does all the crypto: it is not a mock.  While the file
 * named by $P11SHIM_FAULT_FILE exists, the token is "pulled": on entering
 * the fault it really closes every session of the real module (session
 * objects and login vanish, as when a token is removed), and every call
 * fails with CKR_DEVICE_REMOVED / CKR_TOKEN_NOT_PRESENT.  When the file is
 * removed, calls go through again; old session handles then fail inside
 * the real module with CKR_SESSION_HANDLE_INVALID.
 *
 * With $P11SHIM_HIDE_MECH set to a mechanism number (e.g. 0x2109), the
 * token claims not to support it, as a weaker HSM would.
 *
 * While the file named by $P11SHIM_REFUSE_FILE exists, the token is there
 * but refuses its cryptographic work: key generation, wrapping,
 * encryption, decryption and random generation fail with
 * CKR_FUNCTION_FAILED (or the number in $P11SHIM_REFUSE_RV), as an HSM
 * does that has hit a policy or an internal fault; sessions stay open.
 *
 * While the file named by $P11SHIM_HOLD_FILE exists, C_GenerateKey
 * waits (a minute at most): a slow token, for showing what else is served
 * meanwhile.
 *
 * With $P11SHIM_FIND_LOG set, every C_FindObjectsInit appends one byte to
 * that file, so a test can show that no search runs on a request path.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST shim;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int pulled;

static void
pull_token(void)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, i;

	if (real->C_GetSlotList(CK_FALSE, slots, &n) == CKR_OK) {
		for (i = 0; i < n; i++) {
			(void)real->C_CloseAllSessions(slots[i]);
		}
	}
}

/* 1 while the token is pulled; handles the transitions. */
static int
faulted(void)
{
	const char *f = getenv("P11SHIM_FAULT_FILE");
	struct stat st;
	int now = f != NULL && stat(f, &st) == 0, r;

	pthread_mutex_lock(&mu);
	if (now && !pulled) {
		pull_token();
	}
	pulled = now;
	r = pulled;
	pthread_mutex_unlock(&mu);
	return r;
}

#define FWD(name, params, args, fault_rv)				\
	static CK_RV shim_##name params					\
	{								\
		if (faulted()) {					\
			return fault_rv;				\
		}							\
		return real->name args;					\
	}

/* The refusal to return while $P11SHIM_REFUSE_FILE exists, else CKR_OK. */
static CK_RV
refused(void)
{
	const char *f = getenv("P11SHIM_REFUSE_FILE");
	const char *rv = getenv("P11SHIM_REFUSE_RV");
	struct stat st;

	if (f == NULL || stat(f, &st) != 0) {
		return CKR_OK;
	}
	return rv != NULL ? (CK_RV)strtoul(rv, NULL, 0) : CKR_FUNCTION_FAILED;
}

/* What a call the token may refuse meets: fault_rv while it is pulled,
 * the refusal above, else CKR_OK. */
static CK_RV
gate(CK_RV fault_rv)
{
	return faulted() ? fault_rv : refused();
}

#define FWD_REFUSABLE(name, params, args, fault_rv)			\
	static CK_RV shim_##name params					\
	{								\
		CK_RV no;						\
		if ((no = gate(fault_rv)) != CKR_OK) {			\
			return no;					\
		}							\
		return real->name args;					\
	}

FWD(C_GetSlotList, (CK_BBOOL p, CK_SLOT_ID_PTR l, CK_ULONG_PTR n),
    (p, l, n), CKR_DEVICE_REMOVED)
FWD(C_GetTokenInfo, (CK_SLOT_ID s, CK_TOKEN_INFO_PTR i), (s, i),
    CKR_TOKEN_NOT_PRESENT)
static CK_RV
shim_C_GetMechanismInfo(CK_SLOT_ID s, CK_MECHANISM_TYPE t,
    CK_MECHANISM_INFO_PTR i)
{
	const char *hide = getenv("P11SHIM_HIDE_MECH");

	if (faulted()) {
		return CKR_TOKEN_NOT_PRESENT;
	}
	if (hide != NULL && strtoul(hide, NULL, 0) == t) {
		return CKR_MECHANISM_INVALID;
	}
	return real->C_GetMechanismInfo(s, t, i);
}
FWD(C_GetMechanismList, (CK_SLOT_ID s, CK_MECHANISM_TYPE_PTR l,
    CK_ULONG_PTR n), (s, l, n), CKR_TOKEN_NOT_PRESENT)
FWD(C_OpenSession, (CK_SLOT_ID s, CK_FLAGS f, CK_VOID_PTR a, CK_NOTIFY n,
    CK_SESSION_HANDLE_PTR h), (s, f, a, n, h), CKR_TOKEN_NOT_PRESENT)
FWD(C_CloseSession, (CK_SESSION_HANDLE h), (h), CKR_DEVICE_REMOVED)
FWD(C_CloseAllSessions, (CK_SLOT_ID s), (s), CKR_DEVICE_REMOVED)
FWD(C_Login, (CK_SESSION_HANDLE h, CK_USER_TYPE u, CK_UTF8CHAR_PTR p,
    CK_ULONG n), (h, u, p, n), CKR_DEVICE_REMOVED)
FWD(C_Logout, (CK_SESSION_HANDLE h), (h), CKR_DEVICE_REMOVED)
static CK_RV
shim_C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	const char *log = getenv("P11SHIM_FIND_LOG");
	int fd;

	if (faulted()) {
		return CKR_DEVICE_REMOVED;
	}
	if (log != NULL && (fd = open(log, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0600)) >= 0) {
		(void)!write(fd, "f", 1);
		close(fd);
	}
	return real->C_FindObjectsInit(h, t, n);
}
FWD(C_FindObjects, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR o,
    CK_ULONG m, CK_ULONG_PTR n), (h, o, m, n), CKR_DEVICE_REMOVED)
FWD(C_FindObjectsFinal, (CK_SESSION_HANDLE h), (h), CKR_DEVICE_REMOVED)
/* A slow token: C_GenerateKey waits while $P11SHIM_HOLD_FILE exists (a
 * minute at most), then goes on. */
static CK_RV
shim_C_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k)
{
	const char *hold = getenv("P11SHIM_HOLD_FILE");
	struct stat st;
	CK_RV no;
	int i;

	for (i = 0; hold != NULL && i < 6000 && stat(hold, &st) == 0; i++) {
		usleep(10000);
	}
	if ((no = gate(CKR_DEVICE_REMOVED)) != CKR_OK) {
		return no;
	}
	return real->C_GenerateKey(h, m, t, n, k);
}
FWD_REFUSABLE(C_WrapKey, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE w, CK_OBJECT_HANDLE k, CK_BYTE_PTR o, CK_ULONG_PTR n),
    (h, m, w, k, o, n), CKR_DEVICE_REMOVED)
FWD_REFUSABLE(C_UnwrapKey, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE u, CK_BYTE_PTR w, CK_ULONG wl, CK_ATTRIBUTE_PTR t,
    CK_ULONG n, CK_OBJECT_HANDLE_PTR k), (h, m, u, w, wl, t, n, k),
    CKR_DEVICE_REMOVED)
FWD(C_CopyObject, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k),
    (h, o, t, n, k), CKR_DEVICE_REMOVED)
FWD(C_DestroyObject, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o), (h, o),
    CKR_DEVICE_REMOVED)
FWD(C_GetAttributeValue, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_PTR t, CK_ULONG n), (h, o, t, n), CKR_DEVICE_REMOVED)
FWD_REFUSABLE(C_EncryptInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE k), (h, m, k), CKR_DEVICE_REMOVED)
FWD_REFUSABLE(C_Encrypt, (CK_SESSION_HANDLE h, CK_BYTE_PTR i, CK_ULONG il,
    CK_BYTE_PTR o, CK_ULONG_PTR ol), (h, i, il, o, ol), CKR_DEVICE_REMOVED)
FWD_REFUSABLE(C_DecryptInit, (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE k), (h, m, k), CKR_DEVICE_REMOVED)
FWD_REFUSABLE(C_Decrypt, (CK_SESSION_HANDLE h, CK_BYTE_PTR i, CK_ULONG il,
    CK_BYTE_PTR o, CK_ULONG_PTR ol), (h, i, il, o, ol), CKR_DEVICE_REMOVED)
FWD_REFUSABLE(C_GenerateRandom, (CK_SESSION_HANDLE h, CK_BYTE_PTR b,
    CK_ULONG n), (h, b, n), CKR_DEVICE_REMOVED)

SHIM_EXPORT CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	const char *path = getenv("P11SHIM_MODULE");
	CK_C_GetFunctionList gfl;
	void *dl;

	if (out == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if (real == NULL) {
		if (path == NULL) {
			path = "/usr/lib/softhsm/libsofthsm2.so";
		}
		if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL ||
		    (gfl = (CK_C_GetFunctionList)dlsym(dl,
		    "C_GetFunctionList")) == NULL || gfl(&real) != CKR_OK) {
			return CKR_GENERAL_ERROR;
		}
		/* Everything not overridden goes straight through. */
		shim = *real;
		shim.C_GetSlotList = shim_C_GetSlotList;
		shim.C_GetTokenInfo = shim_C_GetTokenInfo;
		shim.C_GetMechanismInfo = shim_C_GetMechanismInfo;
		shim.C_GetMechanismList = shim_C_GetMechanismList;
		shim.C_OpenSession = shim_C_OpenSession;
		shim.C_CloseSession = shim_C_CloseSession;
		shim.C_CloseAllSessions = shim_C_CloseAllSessions;
		shim.C_Login = shim_C_Login;
		shim.C_Logout = shim_C_Logout;
		shim.C_FindObjectsInit = shim_C_FindObjectsInit;
		shim.C_FindObjects = shim_C_FindObjects;
		shim.C_FindObjectsFinal = shim_C_FindObjectsFinal;
		shim.C_GenerateKey = shim_C_GenerateKey;
		shim.C_WrapKey = shim_C_WrapKey;
		shim.C_UnwrapKey = shim_C_UnwrapKey;
		shim.C_CopyObject = shim_C_CopyObject;
		shim.C_DestroyObject = shim_C_DestroyObject;
		shim.C_GetAttributeValue = shim_C_GetAttributeValue;
		shim.C_EncryptInit = shim_C_EncryptInit;
		shim.C_Encrypt = shim_C_Encrypt;
		shim.C_DecryptInit = shim_C_DecryptInit;
		shim.C_Decrypt = shim_C_Decrypt;
		shim.C_GenerateRandom = shim_C_GenerateRandom;
	}
	*out = &shim;
	return CKR_OK;
}
