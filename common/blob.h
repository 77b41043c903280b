/*
 * blob.h — ciphertext blob, format 1 (docs/design.md §4).
 *
 *   0  1   format 0x01
 *   1  16  key id (UUID bytes)
 *   17 4   key version, big-endian
 *   21 12  GCM IV
 *   33 n   AES-256-GCM ciphertext
 *   33+n 16 GCM tag
 *
 * AAD = bytes 0..20 ‖ canonical encryption context.  Parsing is bounded and
 * allocation-free: the parsed view points into the caller's buffer.
 */
#ifndef KMS_COMMON_BLOB_H
#define KMS_COMMON_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define BLOB_FORMAT_1 0x01
#define BLOB_HEADER_LEN 21	/* format + key id + version: the AAD prefix */
#define BLOB_IV_LEN 12		/* GCM IV, NIST SP 800-38D 96-bit */
#define BLOB_TAG_LEN 16		/* full GCM tag */
#define BLOB_OVERHEAD (BLOB_HEADER_LEN + BLOB_IV_LEN + BLOB_TAG_LEN)
#define BLOB_KEY_ID_LEN 16

struct blob_view {
	const uint8_t *header;	/* BLOB_HEADER_LEN bytes: the AAD prefix */
	uint8_t key_id[BLOB_KEY_ID_LEN];
	uint32_t version;
	const uint8_t *iv;	/* BLOB_IV_LEN bytes */
	const uint8_t *ct;	/* ciphertext followed by the tag */
	size_t ct_len;		/* ciphertext only, without the tag */
	const uint8_t *tag;
};

/* Returns 0 or KMS_EINVALIDCIPHERTEXT (wrong format, too short, version 0).
 * An empty ciphertext (n = 0) is rejected: every KMS plaintext is ≥ 1 byte. */
int blob_parse(const uint8_t *buf, size_t len, struct blob_view *out);
/* Writes the BLOB_HEADER_LEN-byte header into out. */
void blob_write_header(uint8_t *out, const uint8_t key_id[BLOB_KEY_ID_LEN],
    uint32_t version);

/* UUID helpers: 36-char canonical lower-case text ↔ 16 bytes. */
#define UUID_STR_LEN 36
int blob_uuid_parse(const char *s, size_t len, uint8_t out[16]); /* 0 or KMS_EVALIDATION */
void blob_uuid_format(const uint8_t id[16], char out[UUID_STR_LEN + 1]);

#endif
