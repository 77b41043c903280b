/*
 * hsm.h — the only code that calls PKCS#11.
 *
 * An hsm is one loaded module, one token found by label, logged in as the
 * user (the PIN is read from a file and wiped right after C_Login).  Each
 * worker thread opens its own hsm_session; a session is not thread-safe,
 * the hsm is.  Keys are used through object handles (hsm_key) only; no
 * function here ever returns key material, and no request-path function
 * calls C_FindObjects.
 *
 * Custody (docs/design.md §3):
 *  - the domain key is an AES-256 token object (label HSM_DOMAIN_LABEL),
 *    private, sensitive, not extractable, CKA_WRAP/CKA_UNWRAP only;
 *  - wrapped mode: hsm_generate_wrapped() makes a transient sensitive
 *    session key, wraps it under the domain key with CKM_AES_KEY_WRAP
 *    (0x2109) and destroys it; hsm_unwrap() turns the blob into a
 *    sensitive, non-extractable session object for use;
 *  - resident mode: hsm_generate_resident() makes a private, sensitive,
 *    non-extractable token object with a CKA_ID; hsm_load_resident()
 *    returns a C_CopyObject session copy of it (found once, then by handle).
 *
 * Failure: any CK_RV meaning the token went away (session handle invalid,
 * device error/removed/memory, token not present, not logged in...) maps to
 * KMS_EDEPENDENCYTIMEOUT and marks the hsm down.  hsm_recover() (called by
 * the daemon's scheduler) closes every session, logs in again and bumps the
 * generation; sessions reopen themselves on next use when their generation
 * is old, and handles from an older generation must be reloaded by the
 * caller (hsm_generation()).
 *
 * Recycling: SoftHSM2 2.6.1 frees a destroyed session object only at
 * C_Finalize, so every unwrap costs memory for good.  hsm_objects_made()
 * counts the session objects created since the module was last
 * initialised; hsm_reinit() finalises and initialises it again (which
 * frees them), logs in again and bumps the generation.  After it the
 * module may give an old handle's number to another object, so the caller
 * must make sure no thread uses the hsm, or holds a handle it is about to
 * use, while hsm_reinit() or hsm_recover() runs (kmsd: struct kmsd's
 * hsm_turn).
 */
#ifndef KMS_HSM_H
#define KMS_HSM_H

#include <stddef.h>
#include <stdint.h>

#define HSM_DOMAIN_LABEL "kmsd-domain-key"
/* The domain key a rotation is moving to, until it takes the label. */
#define HSM_DOMAIN_NEXT_LABEL "kmsd-domain-key-next"
#define HSM_WRAPPED_LEN 40	/* AES-256 key under RFC 3394 key wrap */
#define HSM_GCM_IV_LEN 12
#define HSM_GCM_TAG_LEN 16
#define HSM_RESIDENT_ID_MAX 32	/* CKA_ID bytes (we use key id ‖ version) */

typedef struct hsm hsm;
typedef struct hsm_session hsm_session;
typedef unsigned long hsm_key;	/* CK_OBJECT_HANDLE; 0 is never valid */

struct hsm_config {
	const char *module;	/* path of the PKCS#11 .so */
	const char *token_label;
	const char *pin_file;	/* user PIN, read then wiped */
	int create_domain_key;	/* token set-up only: create it if absent */
};

/*
 * Load, C_Initialize (OS locking), find the token, log in, probe the
 * mechanisms (CKM_AES_GCM, CKM_AES_KEY_WRAP) and find the domain key.
 * On failure returns an error and a sentence in errbuf naming what is
 * missing (module, token, PIN file, mechanism, domain key).
 */
int hsm_open(const struct hsm_config *cfg, hsm **out, char *errbuf,
    size_t errlen);
void hsm_close(hsm *h);

/*
 * Token set-up (scripts/hsm-init): initialise the first uninitialised token
 * of the module as `label`, with the SO PIN and user PIN read from files
 * (never from a command line).  Returns 0, or KMS_EALREADYEXISTS when a
 * token with that label already exists.
 */
int hsm_init_token(const char *module, const char *label,
    const char *so_pin_file, const char *user_pin_file, char *errbuf,
    size_t errlen);

int hsm_session_open(hsm *h, hsm_session **out);
void hsm_session_close(hsm_session *s);

/* Current generation; bumped by every successful hsm_recover() and by
 * every hsm_reinit(). */
uint64_t hsm_generation(const hsm *h);
/* 1 when the last call saw the token go away and no recovery has run. */
int hsm_is_down(const hsm *h);
/* Re-open the token and log in again; 0 when the token is back.  Not
 * concurrent with any other use of h (see above). */
int hsm_recover(hsm *h);
/*
 * Session objects created since the module was last initialised: unwrapped
 * versions, resident copies, the transient keys of hsm_generate_wrapped
 * and the domain key's copy, destroyed or not.
 */
uint64_t hsm_objects_made(const hsm *h);
/*
 * C_Finalize, C_Initialize (same arguments), log in again (the PIN file is
 * read again), find the domain key; bumps the generation whatever the
 * outcome, so every handle and session from before is stale.  0 on
 * success; on failure the hsm is down and hsm_recover() finishes the job.
 * KMS_EUNSUPPORTED, with nothing done, when this hsm did not initialise
 * the module (another part of the process did).  Not concurrent with any
 * other use of h (see above).
 */
int hsm_reinit(hsm *h);

/* Random bytes from the token (C_GenerateRandom, one call). */
int hsm_random(hsm_session *s, uint8_t *buf, size_t n);

/* Wrapped mode. */
int hsm_generate_wrapped(hsm_session *s, uint8_t *wrapped, size_t wrapsz,
    size_t *wrappedlen);
int hsm_unwrap(hsm_session *s, const uint8_t *wrapped, size_t len,
    hsm_key *out);

/*
 * Resident mode: id is the CKA_ID.  A version's token object is searched
 * for once (hsm_list_resident at start-up, or the first load) and its
 * handle kept in a hsm_resident_ref with the HSM generation it belongs to;
 * later loads copy it by handle, so no C_FindObjects runs on a request
 * path.  A ref from an older generation, or whose copy does not carry the
 * expected CKA_ID, is searched for again.
 */
typedef struct hsm_resident_ref {
	hsm_key obj;		/* 0: not found yet */
	uint64_t gen;
} hsm_resident_ref;

/*
 * Keep the token's objects as they are: no token object is created or
 * destroyed through this hsm until hsm_token_thaw (calls that would wait).
 * For copying a file-backed token's files consistently.  Not recursive.
 */
void hsm_token_freeze(hsm *h);
void hsm_token_thaw(hsm *h);
int hsm_generate_resident(hsm_session *s, const uint8_t *id, size_t idlen);
/* The same, keeping the new object's handle in ref (a rotation's new
 * version is then loaded without a search). */
int hsm_generate_resident_ref(hsm_session *s, const uint8_t *id,
    size_t idlen, hsm_resident_ref *ref);
/* ref may be NULL (always search); KMS_ENOTFOUND when absent. */
int hsm_load_resident(hsm_session *s, const uint8_t *id, size_t idlen,
    hsm_resident_ref *ref, hsm_key *out);
int hsm_destroy_resident(hsm_session *s, const uint8_t *id, size_t idlen);
/* The same by ref when it is current and still names id (no search);
 * else as hsm_destroy_resident. */
int hsm_destroy_resident_ref(hsm_session *s, const uint8_t *id,
    size_t idlen, const hsm_resident_ref *ref);
/* Start-up reconciliation: one search; fn for each resident object. */
int hsm_list_resident(hsm_session *s, void (*fn)(const uint8_t *id,
    size_t idlen, const hsm_resident_ref *ref, void *arg), void *arg);

/* Destroy a session object made by hsm_unwrap/hsm_load_resident. */
void hsm_key_release(hsm_session *s, hsm_key k);

/*
 * AES-256-GCM with a 12-byte IV and 16-byte tag.  Encrypt writes
 * ptlen + HSM_GCM_TAG_LEN bytes (ciphertext ‖ tag) to out.  Decrypt takes
 * ciphertext ‖ tag; a bad tag returns KMS_EINVALIDCIPHERTEXT and leaves
 * pt zeroed.
 */
int hsm_gcm_encrypt(hsm_session *s, hsm_key k, const uint8_t *iv,
    const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen,
    uint8_t *out);
int hsm_gcm_decrypt(hsm_session *s, hsm_key k, const uint8_t *iv,
    const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t ctlen,
    uint8_t *pt, size_t *ptlen);

/*
 * Imported key material (bring your own key, hsm/import.c).
 *
 * hsm_import_keypair: an RSA key pair of bits (2048, 3072 or 4096) to
 * receive key material: the private half a token object with CKA_ID id,
 * private, sensitive, not extractable, usable only to unwrap; the public
 * half given out as DER SubjectPublicKeyInfo (spki, cap bytes) and not
 * kept.
 *
 * hsm_import_unwrap: RSAES-OAEP with SHA-1 (what SoftHSM2 2.6.1 does) of
 * enc with private key id, inside the HSM (C_UnwrapKey), into a 32-byte
 * AES key that becomes version material: res_id non-NULL makes it a
 * resident token object with that CKA_ID; otherwise it is wrapped under
 * the domain key into wrapped (HSM_WRAPPED_LEN) and destroyed.  kcv gets
 * a check value (the first 16 bytes of AES-GCM of a zero block under a
 * zero IV), which recognises the same material on a re-import.
 * KMS_EINVALIDCIPHERTEXT when enc does not unwrap to a 32-byte key;
 * KMS_ENOTFOUND when the private key is gone.
 *
 * hsm_destroy_import_key: destroy private key id (KMS_ENOTFOUND if none).
 *
 * As for resident keys, the private key's handle is kept in a ref (priv:
 * set by hsm_import_keypair, used by hsm_import_unwrap, searched for only
 * when it is stale), and a resident unwrap's new object is given in
 * res_ref: no request searches the token.
 */
int hsm_import_keypair(hsm_session *s, unsigned bits, const uint8_t *id,
    size_t idlen, uint8_t *spki, size_t cap, size_t *spkilen,
    hsm_resident_ref *priv);
int hsm_import_unwrap(hsm_session *s, const uint8_t *id, size_t idlen,
    hsm_resident_ref *priv, int sha256, const uint8_t *enc, size_t enclen,
    const uint8_t *res_id, size_t res_idlen, hsm_resident_ref *res_ref,
    uint8_t *wrapped, size_t wrapsz, size_t *wrappedlen, uint8_t kcv[16]);
int hsm_destroy_import_key(hsm_session *s, const uint8_t *id, size_t idlen);
/*
 * 1 when this HSM unwraps RSAES-OAEP with SHA-256 (and MGF1-SHA-256)
 * correctly: a known-answer test with a session key pair made for it
 * (sha256 in hsm_import_unwrap is offered only then).  SoftHSM2 2.6.1
 * refuses the parameters: 0.
 */
int hsm_probe_oaep_sha256(hsm_session *s);
/* The same check with SHA-1 (sha256 0) or SHA-256: for tests. */
int hsm_probe_oaep(hsm_session *s, int sha256);

/*
 * Domain-key rotation (hsm/domain.c).
 *
 * hsm_domain_begin: make the next domain key (a token object like the
 * domain key, labelled HSM_DOMAIN_NEXT_LABEL; found again if it exists):
 * from now on new material is wrapped under it, and unwrapping tries it
 * when the domain key fails.  hsm_rewrap: unwrap a version's blob with
 * the domain key and wrap it with the next one, inside the HSM (the key
 * exists unwrapped only as a transient session object); KMS_EALREADYEXISTS
 * when it is under the next key already, KMS_EINVALIDCIPHERTEXT under
 * neither.  The commit, in two steps: hsm_domain_destroy_old destroys
 * the old domain key, hsm_domain_promote gives the next one its label
 * and makes it the domain key; a crash in between is finished by the
 * next attach.  begin and the commit need the HSM to themselves
 * (hsm_turn for writing).  hsm_domain_rotating: 1 while a next key
 * exists.
 */
int hsm_domain_begin(hsm_session *s);
int hsm_domain_rotating(const hsm *h);
int hsm_rewrap(hsm_session *s, const uint8_t *in, size_t len, uint8_t *out,
    size_t outsz, size_t *outlen);
int hsm_domain_destroy_old(hsm_session *s);
int hsm_domain_promote(hsm_session *s);
/* For tests: how many token objects carry label (the domain keys). */
int hsm_count_label(hsm_session *s, const char *label, int *n);

/* For tests proving custody: read boolean attributes of an object. */
struct hsm_key_attrs {
	int sensitive, extractable, token, is_private;
	int value_readable;	/* 1 if C_GetAttributeValue(CKA_VALUE) worked */
	int wrap_refused;	/* 1 if C_WrapKey of it under the domain key fails */
};
int hsm_inspect_key(hsm_session *s, hsm_key k, struct hsm_key_attrs *out);

/*
 * The audit signing key pair (hsm/sign.c): a token key pair labelled
 * label, whose private half is private, sensitive, not extractable and may
 * only sign.  Ed25519 (CKM_EDDSA) where the token offers it, else ECDSA
 * P-256.  hsm_signing_key() finds it (one search: start-up only),
 * generating it when absent and create is set, and fills k with the
 * algorithm and the public key as a DER SubjectPublicKeyInfo.
 * hsm_sign() signs msg: Ed25519 over msg itself, ECDSA over its SHA-256
 * (r ‖ s, 32 bytes each); after a recovery or re-initialisation it finds
 * the key again.  k belongs to one thread at a time.
 */
#define HSM_AUDIT_KEY_LABEL "kmsd-audit-signing-key"
#define HSM_SPKI_MAX 96
#define HSM_SIG_LEN 64
enum { HSM_SIGN_ED25519 = 1, HSM_SIGN_ECDSA_P256 };

struct hsm_signing_key {
	int alg;
	hsm_key priv;
	uint64_t gen;
	char label[64];
	uint8_t spki[HSM_SPKI_MAX];
	size_t spkilen;
};

int hsm_signing_key(hsm *h, const char *label, int create,
    struct hsm_signing_key *k, char *err, size_t errlen);
int hsm_sign(hsm_session *s, struct hsm_signing_key *k, const uint8_t *msg,
    size_t len, uint8_t sig[HSM_SIG_LEN]);
/* For tests proving custody of the private half. */
int hsm_signing_key_inspect(hsm_session *s, struct hsm_signing_key *k,
    struct hsm_key_attrs *out);

#endif
