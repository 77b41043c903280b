/*
 * envelope_frame.c — the framed message body (data-format/message-body.md
 * and message-body-aad.md): each frame AES-256-GCM under the derived key,
 * its IV the sequence number left-padded with zeros to 12 bytes, its AAD
 * the message id ‖ "AWSKMSEncryptionClient Frame" (or "… Final Frame") ‖
 * u32 sequence number ‖ u64 plaintext length.
 *
 * Regular frame: u32 seq ‖ IV ‖ content (frame length) ‖ tag.
 * Final frame:   u32 0xFFFFFFFF ‖ u32 seq ‖ IV ‖ u32 length ‖ content ‖ tag.
 *
 * One EVP_CIPHER_CTX per message, keyed once; each frame sets only its IV.
 */
#include <string.h>

#include <openssl/evp.h>

#include "common/be.h"
#include "common/err.h"
#include "common/secmem.h"
#include "libkmsclient/envelope.h"

static const char aad_frame[] = "AWSKMSEncryptionClient Frame";
static const char aad_final[] = "AWSKMSEncryptionClient Final Frame";

void
env_frame_iv(uint32_t seq, uint8_t iv[ENV_IV_LEN])
{
	memset(iv, 0, ENV_IV_LEN - 4);
	put_u32_be(iv + ENV_IV_LEN - 4, seq);
}

size_t
env_body_aad(const uint8_t msgid[ENV_MESSAGE_ID_LEN], int final,
    uint32_t seq, uint64_t len, uint8_t *out)
{
	const char *s = final ? aad_final : aad_frame;
	size_t sl = final ? sizeof(aad_final) - 1 : sizeof(aad_frame) - 1;
	uint8_t *p = out;

	memcpy(p, msgid, ENV_MESSAGE_ID_LEN);
	p += ENV_MESSAGE_ID_LEN;
	memcpy(p, s, sl);
	p += sl;
	put_u32_be(p, seq);
	p += 4;
	put_u64_be(p, len);
	p += 8;
	return (size_t)(p - out);
}

EVP_CIPHER_CTX *
env_gcm_new(const uint8_t key[ENV_KEY_LEN])
{
	EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();

	if (cx == NULL) {
		return NULL;
	}
	/* Encrypt and decrypt share the GCM key schedule; the direction is
	 * chosen per frame. */
	if (EVP_CipherInit_ex(cx, EVP_aes_256_gcm(), NULL, NULL, NULL, 1) != 1 ||
	    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_IVLEN, ENV_IV_LEN,
	    NULL) != 1 ||
	    EVP_CipherInit_ex(cx, NULL, NULL, key, NULL, -1) != 1) {
		EVP_CIPHER_CTX_free(cx);
		return NULL;
	}
	return cx;
}

int
env_gcm_seal(EVP_CIPHER_CTX *cx, const uint8_t iv[ENV_IV_LEN],
    const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t n,
    uint8_t *ct, uint8_t tag[ENV_TAG_LEN])
{
	uint8_t fin[ENV_TAG_LEN];
	int outl;

	if (EVP_CipherInit_ex(cx, NULL, NULL, NULL, iv, 1) != 1 ||
	    EVP_CipherUpdate(cx, NULL, &outl, aad, (int)aadlen) != 1) {
		return KMS_EINTERNAL;
	}
	if (n > 0 && (EVP_CipherUpdate(cx, ct, &outl, pt, (int)n) != 1 ||
	    (size_t)outl != n)) {
		return KMS_EINTERNAL;
	}
	if (EVP_CipherFinal_ex(cx, ct != NULL ? ct + n : fin, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_GET_TAG, ENV_TAG_LEN,
	    tag) != 1) {
		return KMS_EINTERNAL;
	}
	return 0;
}

int
env_gcm_open(EVP_CIPHER_CTX *cx, const uint8_t iv[ENV_IV_LEN],
    const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t n,
    const uint8_t tag[ENV_TAG_LEN], uint8_t *pt)
{
	int outl;

	if (EVP_CipherInit_ex(cx, NULL, NULL, NULL, iv, 0) != 1 ||
	    EVP_CipherUpdate(cx, NULL, &outl, aad, (int)aadlen) != 1) {
		return KMS_EINTERNAL;
	}
	if (n > 0 && (EVP_CipherUpdate(cx, pt, &outl, ct, (int)n) != 1 ||
	    (size_t)outl != n)) {
		secure_wipe(pt, n);
		return KMS_EINTERNAL;
	}
	if (EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_TAG, ENV_TAG_LEN,
	    (void *)tag) != 1 || EVP_CipherFinal_ex(cx, pt + n, &outl) != 1) {
		/* libsodium's rule: nothing of a forgery survives. */
		if (n > 0) {
			secure_wipe(pt, n);
		}
		return KMS_EINVALIDCIPHERTEXT;
	}
	return 0;
}

size_t
env_frame_seal(EVP_CIPHER_CTX *cx, const uint8_t *msgid, uint32_t seq,
    int final, const uint8_t *pt, size_t n, uint8_t *out)
{
	uint8_t aad[ENV_BODY_AAD_MAX], iv[ENV_IV_LEN], *p = out, *ct;
	size_t aadlen = env_body_aad(msgid, final, seq, n, aad);

	env_frame_iv(seq, iv);
	if (final) {
		put_u32_be(p, ENV_FINAL_MARK);
		p += 4;
	}
	put_u32_be(p, seq);
	p += 4;
	memcpy(p, iv, ENV_IV_LEN);
	p += ENV_IV_LEN;
	if (final) {
		put_u32_be(p, (uint32_t)n);
		p += 4;
	}
	ct = p;
	if (env_gcm_seal(cx, iv, aad, aadlen, pt, n, ct, ct + n) != 0) {
		return 0;
	}
	p += n + ENV_TAG_LEN;
	return (size_t)(p - out);
}
