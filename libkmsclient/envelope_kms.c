/*
 * envelope_kms.c — data keys from kmsd, as the AWS Encryption SDK's KMS
 * keyring gets them from AWS KMS: GenerateDataKey (AES_256) under the
 * caller's key with the message's whole encryption context, one EDK with
 * provider id "aws-kms", the key ARN kmsd answered as provider info and
 * kmsd's ciphertext blob as the encrypted data key.  To decrypt, each
 * "aws-kms" EDK in turn goes to Decrypt with its ARN as KeyId and the
 * message's context, until one unwraps; kmsd's answer must name the same
 * key.  An optional cache (envelope_cache.c) sits in front of both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/secmem.h"
#include "libkmsclient/client.h"
#include "libkmsclient/envelope.h"

static int
kms_generate(void *arg, uint16_t suite, const kms_context_pair *pairs,
    size_t npairs, uint64_t hint, uint8_t *dk, struct env_edk *edk,
    kms_error_info *ei)
{
	struct env_kms *k = arg;
	kms_generate_data_key_req req;
	kms_generate_data_key_resp resp;
	struct env_edk e;
	/* As the SDK's caching CMM: no reuse when the size is unknown or
	 * the message is signed (its key pair is per message here). */
	int cacheable = k->cache != NULL && hint != UINT64_MAX &&
	    !env_suite_signed(suite);
	int r;

	if (cacheable && env_cache_get_enc(k->cache, k->key_id, suite, pairs,
	    npairs, hint, dk, edk)) {
		return 0;
	}
	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	memset(&e, 0, sizeof(e));
	req.key_id = k->key_id;
	req.key_spec = "AES_256";
	req.context.pairs = pairs;
	req.context.npairs = npairs;
	req.grant_tokens = k->grant_tokens;
	if ((r = kms_generate_data_key(k->client, &req, &resp, ei)) != 0) {
		return r;
	}
	if (resp.plaintext.len != ENV_KEY_LEN || resp.key_id[0] == '\0' ||
	    resp.ciphertext_blob.len == 0) {
		r = client_fail(ei, KMS_EPROTO, "GenerateDataKey did not "
		    "return a 32-byte data key and a key ARN");
		goto out;
	}
	if ((e.provider_id = strdup(ENV_PROVIDER_KMS)) == NULL ||
	    (e.info = (uint8_t *)strdup(resp.key_id)) == NULL) {
		r = client_fail(ei, KMS_ENOMEM, "Out of memory");
		goto out;
	}
	e.info_len = strlen(resp.key_id);
	e.blob = resp.ciphertext_blob.data;
	e.blob_len = resp.ciphertext_blob.len;
	resp.ciphertext_blob.data = NULL;	/* transferred */
	memcpy(dk, resp.plaintext.data, ENV_KEY_LEN);
	if (cacheable) {
		env_cache_put_enc(k->cache, k->key_id, suite, pairs, npairs,
		    hint, dk, &e);
	}
	*edk = e;
	memset(&e, 0, sizeof(e));
	r = 0;
 out:
	env_edk_clear(&e);
	kms_generate_data_key_resp_free(&resp);
	return r;
}

static int
kms_unwrap(void *arg, const struct env_header *h, uint8_t *dk, char *arn,
    size_t arnsz, kms_error_info *ei)
{
	struct env_kms *k = arg;
	kms_decrypt_req req;
	kms_decrypt_resp resp;
	char keyid[KMS_ARN_MAX];
	size_t i;
	int r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "The message has no "
	    "encrypted data key from provider \"%s\"", ENV_PROVIDER_KMS);

	if (k->cache != NULL && env_cache_get_dec(k->cache, h, dk, arn,
	    arnsz)) {
		client_ok(ei);
		return 0;
	}
	for (i = 0; i < h->nedks; i++) {
		const struct env_edk *e = &h->edks[i];
		if (strcmp(e->provider_id, ENV_PROVIDER_KMS) != 0) {
			continue;
		}
		if (e->info_len == 0 || e->info_len >= sizeof(keyid) ||
		    memchr(e->info, 0, e->info_len) != NULL) {
			r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "An "
			    "aws-kms encrypted data key's provider info is "
			    "not a key ARN");
			continue;
		}
		memcpy(keyid, e->info, e->info_len);
		keyid[e->info_len] = '\0';
		memset(&req, 0, sizeof(req));
		memset(&resp, 0, sizeof(resp));
		req.ciphertext_blob = e->blob;
		req.ciphertext_len = e->blob_len;
		req.key_id = keyid;
		req.context.pairs = h->pairs;
		req.context.npairs = h->npairs;
		req.grant_tokens = k->grant_tokens;
		if ((r = kms_decrypt(k->client, &req, &resp, ei)) != 0) {
			continue;
		}
		if (resp.plaintext.len != ENV_KEY_LEN ||
		    strcmp(resp.key_id, keyid) != 0) {
			kms_decrypt_resp_free(&resp);
			r = client_fail(ei, KMS_EINVALIDCIPHERTEXT, "kmsd's "
			    "Decrypt did not return a 32-byte data key from "
			    "%s", keyid);
			continue;
		}
		memcpy(dk, resp.plaintext.data, ENV_KEY_LEN);
		kms_decrypt_resp_free(&resp);
		snprintf(arn, arnsz, "%s", keyid);
		if (k->cache != NULL) {
			env_cache_put_dec(k->cache, h, dk, arn);
		}
		client_ok(ei);
		return 0;
	}
	return r;
}

const struct env_materials env_kms_materials = {
	kms_generate, kms_unwrap, NULL
};
