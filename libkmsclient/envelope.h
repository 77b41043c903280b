/*
 * envelope.h — internals of envelope messages in the AWS Encryption SDK's
 * message format, version 2 (PROTOCOL.md, "Envelope messages").
 *
 * The work is split the way the format is:
 *   envelope_header.c  the header codec (body, encryption context, EDKs)
 *   envelope_frame.c   the frame codec (body AAD, IVs, AES-256-GCM)
 *   envelope_kdf.c     HKDF-SHA512 key derivation and the commitment
 *   envelope_sig.c     the ECDSA P-384 footer signature
 *   envelope.c         the encryptor and decryptor state machines and
 *                      the public kms_encryptor / kms_decryptor calls
 *   envelope_kms.c     materials from kmsd (GenerateDataKey / Decrypt)
 *   envelope_io.c      one-shot buffers and file descriptors
 *   envelope_cache.c   the data-key cache
 *
 * Nothing here is exported.  Thread safety: an encryptor or decryptor is
 * used by one thread at a time; the codecs keep no state.
 */
#ifndef KMS_ENVELOPE_H
#define KMS_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "kms.h"

#define ENV_VERSION 0x02		/* message format version 2.0 */
#define ENV_CONTENT_FRAMED 0x02		/* the only content type written */
#define ENV_CONTENT_NONFRAMED 0x01
#define ENV_MESSAGE_ID_LEN 32
#define ENV_KEY_LEN 32			/* data key, derived key: AES-256 */
#define ENV_COMMIT_LEN 32		/* algorithm suite data: commit key */
#define ENV_IV_LEN 12
#define ENV_TAG_LEN 16
#define ENV_FINAL_MARK 0xFFFFFFFFu	/* "sequence number end" */
#define ENV_MAX_SEQ 0xFFFFFFFEu		/* frames per message */
/* Reading: a header larger than this is refused before it is buffered
 * (the encryption context and EDK fields are each ≤ 64 KiB). */
#define ENV_MAX_HEADER (256u * 1024)
#define ENV_MAX_EDKS 16			/* EDKs tried per message */
#define ENV_MAX_PAIRS 1024		/* context pairs read */
/* DER ECDSA-Sig-Value for P-384: ≤ 2 + 2 * (2 + 49) bytes. */
#define ENV_MAX_SIG 128
#define ENV_PUBKEY_KEY "aws-crypto-public-key"
#define ENV_RESERVED_PREFIX "aws-crypto-"
#define ENV_PROVIDER_KMS "aws-kms"
/* Regular frame: seq, IV, content, tag.  Final frame adds the end mark
 * and the content length. */
#define ENV_FRAME_OVERHEAD (4 + ENV_IV_LEN + ENV_TAG_LEN)
#define ENV_FINAL_OVERHEAD (4 + 4 + ENV_IV_LEN + 4 + ENV_TAG_LEN)

/* A parse that needs more bytes than it was given (streaming). */
#define ENV_NEED_MORE (-1)

int env_suite_known(uint16_t suite);
int env_suite_signed(uint16_t suite);

struct env_edk {
	char *provider_id;	/* NUL-terminated copy */
	uint8_t *info;
	size_t info_len;
	uint8_t *blob;
	size_t blob_len;
};

struct env_header {
	uint16_t suite;
	uint8_t message_id[ENV_MESSAGE_ID_LEN];
	kms_context_pair *pairs;	/* owned strings, sorted by key */
	size_t npairs;
	struct env_edk *edks;
	size_t nedks;
	uint8_t content_type;
	uint32_t frame_len;
	uint8_t commitment[ENV_COMMIT_LEN];
	uint8_t *body;			/* the serialized header body */
	size_t body_len;
	uint8_t tag[ENV_TAG_LEN];	/* header authentication tag */
};

/* ----------------------------------------------------- header codec */

/*
 * The AWS serialization of an encryption context: u16 count, then the
 * pairs sorted by key bytes, each u16 length + UTF-8.  The empty context
 * serializes to no bytes (*lenp = 0).  *outp is malloc'd (NULL when
 * empty).  KMS_EVALIDATION with a message for bad pairs.
 */
int env_context_serialize(const kms_context_pair *pairs, size_t n,
    uint8_t **outp, size_t *lenp, kms_error_info *ei);

/*
 * Serialize h's body (all fields before the authentication tag) into a
 * new h->body.  The context is serialized from h->pairs.
 */
int env_header_write_body(struct env_header *h, kms_error_info *ei);

/*
 * Parse a header (body and tag) from p[0..len).  Returns 0 with *h filled
 * and *used its size; ENV_NEED_MORE when len is too short to hold it all;
 * KMS_EINVALIDCIPHERTEXT (ei says which field) when it is malformed.
 * Bounded: every length is checked against what remains.
 */
int env_header_parse(const uint8_t *p, size_t len, struct env_header *h,
    size_t *used, kms_error_info *ei);
void env_header_clear(struct env_header *h);
/* The value of a context key in h, or NULL. */
const char *env_header_get(const struct env_header *h, const char *key);

/* ------------------------------------------------------ frame codec */

void env_frame_iv(uint32_t seq, uint8_t iv[ENV_IV_LEN]);
/* Message body AAD: message id ‖ content string ‖ u32 seq ‖ u64 len. */
size_t env_body_aad(const uint8_t msgid[ENV_MESSAGE_ID_LEN], int final,
    uint32_t seq, uint64_t len, uint8_t *out);
#define ENV_BODY_AAD_MAX (ENV_MESSAGE_ID_LEN + 34 + 4 + 8)

/* cx must hold AES-256-GCM with the derived key set (env_gcm_new). */
EVP_CIPHER_CTX *env_gcm_new(const uint8_t key[ENV_KEY_LEN]);
/* Seal n bytes (n may be 0) with iv and aad into ct and tag. */
int env_gcm_seal(EVP_CIPHER_CTX *cx, const uint8_t iv[ENV_IV_LEN],
    const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t n,
    uint8_t *ct, uint8_t tag[ENV_TAG_LEN]);
/* Open; on a bad tag pt is wiped and KMS_EINVALIDCIPHERTEXT returned. */
int env_gcm_open(EVP_CIPHER_CTX *cx, const uint8_t iv[ENV_IV_LEN],
    const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t n,
    const uint8_t tag[ENV_TAG_LEN], uint8_t *pt);

/*
 * Write one frame (regular, or final when final != 0) of n plaintext
 * bytes into out, which holds n + ENV_FINAL_OVERHEAD.  Returns the bytes
 * written (> 0) or 0 on a cipher failure.
 */
size_t env_frame_seal(EVP_CIPHER_CTX *cx, const uint8_t *msgid,
    uint32_t seq, int final, const uint8_t *pt, size_t n, uint8_t *out);

/* -------------------------------------------------- key derivation */

/*
 * From the data key and message id: the AES-256 key for the header tag
 * and frames (info = suite id ‖ "DERIVEKEY") and the commit key (info =
 * "COMMITKEY"), one HKDF-SHA512 extract for both.  enc_key is locked
 * memory the caller owns.
 */
int env_derive(uint16_t suite, const uint8_t dk[ENV_KEY_LEN],
    const uint8_t msgid[ENV_MESSAGE_ID_LEN], uint8_t enc_key[ENV_KEY_LEN],
    uint8_t commit[ENV_COMMIT_LEN]);
/* The header authentication tag (IV zero, AAD the body, no plaintext). */
int env_header_tag(EVP_CIPHER_CTX *cx, const uint8_t *body, size_t len,
    uint8_t tag[ENV_TAG_LEN]);

/* ------------------------------------------------------- signature */

/* A fresh P-384 key pair. */
EVP_PKEY *env_sig_keygen(void);
/* Base64 of the compressed public point (SEC 1 §2.3.3), NUL-terminated,
 * into out (≥ 72 bytes). */
int env_sig_pubkey_b64(EVP_PKEY *k, char *out, size_t outsz);
/* The public key from its base64 compressed form; NULL if not one. */
EVP_PKEY *env_sig_pubkey_from_b64(const char *b64);
/* A SHA-384 signing (verify = 0) or verifying context over k. */
EVP_MD_CTX *env_sig_begin(EVP_PKEY *k, int verify);
int env_sig_update(EVP_MD_CTX *md, const uint8_t *p, size_t n);
/* DER signature into sig (ENV_MAX_SIG bytes), its length in *len. */
int env_sig_sign(EVP_MD_CTX *md, uint8_t *sig, size_t *len);
/* 0 when sig verifies, KMS_EINVALIDCIPHERTEXT otherwise. */
int env_sig_verify(EVP_MD_CTX *md, const uint8_t *sig, size_t len);

/* ------------------------------------------------------- materials */

/*
 * Where data keys come from: kmsd (envelope_kms.c), a cache in front of
 * it, or, in tests, a raw AES keyring.
 *
 * generate: a fresh data key (into dk, locked, ENV_KEY_LEN bytes) and its
 * one EDK for the given (final, public-key-included) context; the EDK's
 * strings and bytes are malloc'd and freed with env_edk_clear.
 * unwrap: the data key from one of h's EDKs for h's context.
 * plaintext_hint is the message size when known (UINT64_MAX if not).
 */
struct env_materials {
	int (*generate)(void *arg, uint16_t suite, const kms_context_pair *pairs,
	    size_t npairs, uint64_t plaintext_hint, uint8_t *dk,
	    struct env_edk *edk, kms_error_info *ei);
	int (*unwrap)(void *arg, const struct env_header *h, uint8_t *dk,
	    char *arn, size_t arnsz, kms_error_info *ei);
	void *arg;
};
void env_edk_clear(struct env_edk *e);

/* kmsd's materials; arg is a struct env_kms (envelope_kms.c). */
struct env_kms {
	kms_client *client;
	const char *key_id;
	kms_grant_tokens grant_tokens;
	kms_dk_cache *cache;
};
extern const struct env_materials env_kms_materials;	/* arg unset */

/* The cache's two sides (envelope_cache.c); 1 = hit (dk, edk filled). */
int env_cache_get_enc(kms_dk_cache *c, const char *key_id, uint16_t suite,
    const kms_context_pair *pairs, size_t npairs, uint64_t bytes,
    uint8_t *dk, struct env_edk *edk);
void env_cache_put_enc(kms_dk_cache *c, const char *key_id, uint16_t suite,
    const kms_context_pair *pairs, size_t npairs, uint64_t bytes,
    const uint8_t *dk, const struct env_edk *edk);
int env_cache_get_dec(kms_dk_cache *c, const struct env_header *h,
    uint8_t *dk, char *arn, size_t arnsz);
void env_cache_put_dec(kms_dk_cache *c, const struct env_header *h,
    const uint8_t *dk, const char *arn);

/* ------------------------------------------ encryptor / decryptor */

struct env_enc_params {
	uint16_t suite;
	uint32_t frame_len;
	kms_context context;
	uint64_t plaintext_hint;	/* UINT64_MAX: unknown */
};

int env_encryptor_new(const struct env_materials *m,
    const struct env_enc_params *p, kms_write_fn sink, void *sink_arg,
    kms_encryptor **ep, kms_error_info *ei);
int env_decryptor_new(const struct env_materials *m,
    const kms_context *required, kms_write_fn sink, void *sink_arg,
    kms_decryptor **dp, kms_error_info *ei);

#endif
