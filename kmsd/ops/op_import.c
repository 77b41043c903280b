/*
 * op_import.c — imported key material (bring your own key):
 * GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial.
 *
 * A key of origin EXTERNAL is created PendingImport, with no material.
 * GetParametersForImport makes an RSA key pair in the HSM (the private
 * half a non-extractable token object) and gives out its public key and
 * an import token, both valid 24 hours.  ImportKeyMaterial has the HSM
 * unwrap the material (RSAES_OAEP_SHA_1; C_UnwrapKey, never in kmsd's
 * memory) into the key's version 1, as resident object or wrapped under
 * the domain key like generated material.  A key's material is its own
 * for good: a later import must bring the same bytes (checked inside the
 * HSM by a check value), as AWS requires.  When material expires
 * (ExpirationModel KEY_MATERIAL_EXPIRES, ValidTo) or is deleted, it is
 * destroyed and the key is PendingImport again; its ciphertexts decrypt
 * once the same material is imported again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "common/be.h"
#include "common/err.h"
#include "common/log.h"
#include "common/secmem.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/daemon/lifecycle.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/ops/op.h"

#define IMPORT_VALID_MS (24LL * 3600 * 1000)	/* AWS: 24 hours */
#define IMPORT_TOKEN_LEN 32
#define IMPORT_BLOB_MAX 4096		/* EncryptedKeyMaterial, ImportToken */
#define VALID_TO_MAX_MS (365LL * 86400 * 1000)	/* AWS: a year ahead */
#define SPKI_MAX 1024			/* DER of a 4096-bit public key */
static const char wrap_id_prefix[] = "kmsd-import:";

/*
 * The import private keys' handles, so that ImportKeyMaterial never
 * searches the token for its key (one made before a restart is found
 * once).  Small: a key pair lives a day, and a miss only costs a search.
 */
#define PRIV_REFS 64
static struct {
	uint8_t id[32];
	size_t idlen;
	hsm_resident_ref ref;
} priv_refs[PRIV_REFS];
static size_t priv_next;
static pthread_mutex_t priv_mu = PTHREAD_MUTEX_INITIALIZER;

static void
priv_ref_get(const uint8_t *id, size_t idlen, hsm_resident_ref *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&priv_mu);
	for (i = 0; i < PRIV_REFS; i++) {
		if (priv_refs[i].idlen == idlen &&
		    memcmp(priv_refs[i].id, id, idlen) == 0) {
			*out = priv_refs[i].ref;
			break;
		}
	}
	pthread_mutex_unlock(&priv_mu);
}

static void
priv_ref_put(const uint8_t *id, size_t idlen, const hsm_resident_ref *ref)
{
	size_t i, slot;

	if (idlen > sizeof(priv_refs[0].id)) {
		return;
	}
	pthread_mutex_lock(&priv_mu);
	for (i = 0, slot = priv_next; i < PRIV_REFS; i++) {
		if (priv_refs[i].idlen == idlen &&
		    memcmp(priv_refs[i].id, id, idlen) == 0) {
			slot = i;
			break;
		}
	}
	if (slot == priv_next) {
		priv_next = (priv_next + 1) % PRIV_REFS;
	}
	memcpy(priv_refs[slot].id, id, idlen);
	priv_refs[slot].idlen = idlen;
	priv_refs[slot].ref = *ref;
	pthread_mutex_unlock(&priv_mu);
}

static int
need_external(struct opctx *c, const struct key_info *ki)
{
	if (strcmp(ki->origin, "EXTERNAL") != 0) {
		/* AWS's text (LocalStack's snapshot of AWS). */
		return op_fail(c, KMS_EUNSUPPORTED, "%s origin is %s which is "
		    "not valid for this operation.", ki->arn, ki->origin);
	}
	if (ki->state == KEY_PENDING_DELETION ||
	    ki->state == KEY_UNAVAILABLE) {
		return op_state_error(c, KMS_EINVALIDSTATE, ki);
	}
	return 0;
}

int
op_get_parameters_for_import(struct opctx *c, json_t **resp)
{
	struct store_import_token t;
	struct key_info ki;
	hsm_resident_ref pref;
	const char *alg, *spec;
	uint8_t rnd[IMPORT_TOKEN_LEN + 16], spki[SPKI_MAX];
	size_t spkilen = 0, plen = sizeof(wrap_id_prefix) - 1;
	unsigned bits;
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_string(c, "WrappingAlgorithm", 1, 1, 64, &alg)) != 0 ||
	    (r = req_string(c, "WrappingKeySpec", 1, 1, 64, &spec)) != 0 ||
	    (r = op_authorize(c, &ki, "GetParametersForImport", NULL)) != 0 ||
	    (r = need_external(c, &ki)) != 0) {
		return r;
	}
	if (strcmp(spec, "RSA_2048") == 0) {
		bits = 2048;
	} else if (strcmp(spec, "RSA_3072") == 0) {
		bits = 3072;
	} else if (strcmp(spec, "RSA_4096") == 0) {
		bits = 4096;
	} else if (strcmp(spec, "SM2") == 0) {
		return op_fail(c, KMS_EUNSUPPORTED, "WrappingKeySpec SM2 is "
		    "not supported by this kmsd");
	} else {
		return op_fail(c, KMS_EVALIDATION, "1 validation error "
		    "detected: Value '%.64s' at 'wrappingKeySpec' failed to "
		    "satisfy constraint: Member must satisfy enum value set: "
		    "[RSA_2048, RSA_3072, RSA_4096, SM2]", spec);
	}
	if (strcmp(alg, "RSAES_OAEP_SHA_256") == 0 &&
	    !atomic_load(&c->w->d->oaep_sha256)) {
		return op_fail(c, KMS_EUNSUPPORTED, "WrappingAlgorithm "
		    "RSAES_OAEP_SHA_256 is not offered: this HSM failed "
		    "kmsd's start-up check of RSA-OAEP unwrapping with "
		    "SHA-256 (SoftHSM2 2.6.1 unwraps with SHA-1 only), and "
		    "kmsd never unwraps in software. Use RSAES_OAEP_SHA_1.");
	}
	if (strcmp(alg, "RSAES_PKCS1_V1_5") == 0 ||
	    strcmp(alg, "RSA_AES_KEY_WRAP_SHA_1") == 0 ||
	    strcmp(alg, "RSA_AES_KEY_WRAP_SHA_256") == 0 ||
	    strcmp(alg, "SM2PKE") == 0) {
		return op_fail(c, KMS_EUNSUPPORTED, "WrappingAlgorithm %s is "
		    "not supported by this kmsd; use RSAES_OAEP_SHA_1", alg);
	}
	if (strcmp(alg, "RSAES_OAEP_SHA_1") != 0 &&
	    strcmp(alg, "RSAES_OAEP_SHA_256") != 0) {
		return op_fail(c, KMS_EVALIDATION, "1 validation error "
		    "detected: Value '%.64s' at 'wrappingAlgorithm' failed to "
		    "satisfy constraint: Member must satisfy enum value set",
		    alg);
	}
	if ((r = hsm_random(c->w->hs, rnd, sizeof(rnd))) != 0) {
		return op_state_error(c, r, &ki);
	}
	memset(&t, 0, sizeof(t));
	memcpy(t.wrapping_key_id, wrap_id_prefix, plen);
	memcpy(t.wrapping_key_id + plen, rnd + IMPORT_TOKEN_LEN, 16);
	t.wrapping_key_id_len = plen + 16;
	if ((r = hsm_import_keypair(c->w->hs, bits, t.wrapping_key_id,
	    t.wrapping_key_id_len, spki, sizeof(spki), &spkilen,
	    &pref)) != 0) {
		secure_wipe(rnd, sizeof(rnd));
		if (r == KMS_EUNSUPPORTED) {
			return op_fail(c, r, "The HSM does not offer "
			    "CKM_RSA_PKCS_KEY_PAIR_GEN: for SoftHSM2, add "
			    "CKM_RSA_PKCS_KEY_PAIR_GEN,CKM_RSA_PKCS_OAEP to "
			    "slots.mechanisms in softhsm2.conf (scripts/hsm-init "
			    "does for tokens it made) and restart kmsd");
		}
		return op_state_error(c, r, &ki);
	}
	priv_ref_put(t.wrapping_key_id, t.wrapping_key_id_len, &pref);
	SHA256(rnd, IMPORT_TOKEN_LEN, t.hash);
	memcpy(t.key_id, ki.id, 16);
	snprintf(t.algorithm, sizeof(t.algorithm), "%s", alg);
	t.expires_ms = now_ms() + IMPORT_VALID_MS;
	if ((r = c->w->st->ops->put_import_token(c->w->st, &t)) != 0) {
		(void)hsm_destroy_import_key(c->w->hs, t.wrapping_key_id,
		    t.wrapping_key_id_len);
		secure_wipe(rnd, sizeof(rnd));
		return op_fail(c, r, "The key store failed");
	}
	if ((*resp = json_pack("{s:s, s:f}", "KeyId", ki.arn,
	    "ParametersValidTo", (double)t.expires_ms / 1000.0)) == NULL ||
	    (r = resp_blob(*resp, "ImportToken", rnd, IMPORT_TOKEN_LEN,
	    c)) != 0 ||
	    (r = resp_blob(*resp, "PublicKey", spki, spkilen, c)) != 0) {
		secure_wipe(rnd, sizeof(rnd));
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	secure_wipe(rnd, sizeof(rnd));
	return 0;
}

/* ValidTo: seconds since the epoch (AWS JSON) or ISO 8601 UTC text. */
static int
req_valid_to(struct opctx *c, int64_t *out, int *present)
{
	json_t *v = json_object_get(c->req, "ValidTo");
	struct tm tm;
	const char *s, *end;

	*present = 0;
	if (v == NULL || json_is_null(v)) {
		return 0;
	}
	if (json_is_number(v)) {
		double d = json_number_value(v);
		if (d < 0 || d > 1e11) {
			return op_fail(c, KMS_EVALIDATION, "ValidTo is out of "
			    "range");
		}
		*out = (int64_t)(d * 1000.0);
	} else if (json_is_string(v)) {
		memset(&tm, 0, sizeof(tm));
		s = json_string_value(v);
		if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL ||
		    (*end != '\0' && strcmp(end, "Z") != 0)) {
			return op_fail(c, KMS_EVALIDATION, "ValidTo must be "
			    "seconds since the epoch or YYYY-MM-DDTHH:MM:SSZ");
		}
		*out = (int64_t)timegm(&tm) * 1000;
	} else {
		return op_fail(c, KMS_ESERIALIZATION, "ValidTo must be a "
		    "timestamp");
	}
	*present = 1;
	return 0;
}

int
op_import_key_material(struct opctx *c, json_t **resp)
{
	struct store_import_token t;
	struct store_import im, old;
	struct store_version sv;
	struct key_info ki;
	hsm_resident_ref pref, res_ref = { 0, 0 };
	uint8_t token[IMPORT_BLOB_MAX], enc[IMPORT_BLOB_MAX], hash[32];
	uint8_t wrapped[64];
	size_t tokenlen = 0, enclen = 0, wl = 0;
	const char *model;
	int64_t now = now_ms();
	uint64_t rv;
	int r, has_old, has_valid, resident;

	memset(&im, 0, sizeof(im));
	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = req_blob(c, "ImportToken", 1, 1, IMPORT_BLOB_MAX, token,
	    sizeof(token), &tokenlen)) != 0 ||
	    (r = req_blob(c, "EncryptedKeyMaterial", 1, 1, IMPORT_BLOB_MAX,
	    enc, sizeof(enc), &enclen)) != 0 ||
	    (r = req_string(c, "ExpirationModel", 0, 1, 64, &model)) != 0 ||
	    (r = req_valid_to(c, &im.valid_to_ms, &has_valid)) != 0 ||
	    (r = op_authorize(c, &ki, "ImportKeyMaterial", NULL)) != 0 ||
	    (r = need_external(c, &ki)) != 0) {
		return r;
	}
	if (model == NULL || strcmp(model, "KEY_MATERIAL_DOES_NOT_EXPIRE") ==
	    0) {
		if (has_valid) {
			return op_fail(c, KMS_EVALIDATION, "ValidTo is allowed "
			    "only with ExpirationModel KEY_MATERIAL_EXPIRES");
		}
		im.valid_to_ms = 0;
	} else if (strcmp(model, "KEY_MATERIAL_EXPIRES") == 0) {
		if (!has_valid) {
			/* AWS's text (LocalStack's snapshot of AWS). */
			return op_fail(c, KMS_EVALIDATION, "A validTo date must "
			    "be set if the ExpirationModel is "
			    "KEY_MATERIAL_EXPIRES");
		}
		if (im.valid_to_ms <= now || im.valid_to_ms > now +
		    VALID_TO_MAX_MS) {
			return op_fail(c, KMS_EVALIDATION, "ValidTo must be in "
			    "the future and at most 365 days away");
		}
		im.expires = 1;
	} else {
		return op_fail(c, KMS_EVALIDATION, "1 validation error "
		    "detected: Value '%.64s' at 'expirationModel' failed to "
		    "satisfy constraint: Member must satisfy enum value set: "
		    "[KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE]",
		    model);
	}
	SHA256(token, tokenlen, hash);
	if ((r = c->w->st->ops->get_import_token(c->w->st, hash, &t)) != 0 ||
	    memcmp(t.key_id, ki.id, 16) != 0) {
		return op_fail(c, r == 0 || r == KMS_ENOTFOUND ?
		    KMS_EINVALIDIMPORTTOKEN : r, "The import token is not one "
		    "kmsd gave for %s.", ki.arn);
	}
	if (t.expires_ms <= now) {
		return op_fail(c, KMS_EEXPIREDIMPORTTOKEN, "The import token "
		    "expired; call GetParametersForImport again.");
	}
	if ((r = c->w->st->ops->get_import(c->w->st, ki.id, &old)) != 0 &&
	    r != KMS_ENOTFOUND) {
		return op_fail(c, r, "The key store failed");
	}
	has_old = r == 0;
	/* The material is there already: only the same bytes may come,
	 * and then only the expiry changes (unwrapped, checked, dropped). */
	resident = c->w->d->cfg.key_storage == STORAGE_RESIDENT &&
	    !(has_old && old.present);
	memset(&sv, 0, sizeof(sv));
	memcpy(sv.key_id, ki.id, 16);
	sv.version = 1;
	sv.creation_ms = now;
	sv.enc_reserved = 0;
	if (resident) {
		memcpy(sv.material, ki.id, 16);
		put_u32_be(sv.material + 16, 1);
		sv.material_len = 20;
		sv.resident = 1;
	}
	priv_ref_get(t.wrapping_key_id, t.wrapping_key_id_len, &pref);
	r = hsm_import_unwrap(c->w->hs, t.wrapping_key_id,
	    t.wrapping_key_id_len, &pref,
	    strcmp(t.algorithm, "RSAES_OAEP_SHA_256") == 0, enc, enclen,
	    resident ? sv.material : NULL, resident ? 20 : 0, &res_ref,
	    wrapped, sizeof(wrapped), &wl, im.kcv);
	priv_ref_put(t.wrapping_key_id, t.wrapping_key_id_len, &pref);
	secure_wipe(enc, sizeof(enc));
	if (r == KMS_EINVALIDCIPHERTEXT) {
		return op_fail(c, r, "The EncryptedKeyMaterial does not "
		    "decrypt to a 256-bit key under this import token's "
		    "wrapping key (%s).", t.algorithm);
	}
	if (r == KMS_ENOTFOUND) {
		return op_fail(c, KMS_EEXPIREDIMPORTTOKEN, "The import token's "
		    "wrapping key is gone; call GetParametersForImport again.");
	}
	if (r != 0) {
		return op_state_error(c, r, &ki);
	}
	if (has_old && secure_memcmp(old.kcv, im.kcv, 16) != 0) {
		if (resident) {
			(void)hsm_destroy_resident_ref(c->w->hs, sv.material,
			    20, &res_ref);
		}
		return op_fail(c, KMS_EINCORRECTKEYMATERIAL, "%s had other "
		    "key material: only the same material can be imported "
		    "again.", ki.arn);
	}
	if (has_old && old.present) {
		if ((r = c->w->st->ops->set_import_expiry(c->w->st, ki.id,
		    &im)) != 0) {
			return op_fail(c, r, "The key store failed");
		}
	} else {
		if (!resident) {
			memcpy(sv.material, wrapped, wl);
			sv.material_len = wl;
		}
		/* The first encryption reserves a block durably, as after a
		 * restart; the same material back again goes on from what
		 * its earlier lives reserved (the 2^32 random-IV bound is
		 * the material's, not the version row's). */
		sv.enc_reserved = has_old ? old.enc_reserved : 0;
		if ((r = c->w->st->ops->import_material(c->w->st, &sv, &im,
		    &rv)) != 0) {
			if (resident) {
				(void)hsm_destroy_resident_ref(c->w->hs,
				    sv.material, 20, &res_ref);
			}
			return op_state_error(c, r, &ki);
		}
		(void)keycache_refresh(c->w, ki.id);
		if (resident) {
			keycache_set_resident_ref(c->w, ki.id, 1, &res_ref);
		}
	}
	if ((*resp = json_object()) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}

int
import_drop_material(struct worker *w, const uint8_t id[16])
{
	struct store_version *vs = NULL;
	hsm_resident_ref *refs = NULL;
	size_t n = 0, i;
	uint64_t rv;
	int r;

	if ((r = w->st->ops->get_versions(w->st, id, &vs, &n)) != 0) {
		return r;
	}
	/* Destroyed by the cache's handles: no search on a request path. */
	if (n > 0 && (refs = calloc(n, sizeof(*refs))) == NULL) {
		r = KMS_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		(void)keycache_resident_ref(w, id, vs[i].version, &refs[i]);
	}
	(void)keycache_drop_material(w, id);
	for (i = 0; i < n; i++) {
		if (vs[i].resident && (r = hsm_destroy_resident_ref(w->hs,
		    vs[i].material, vs[i].material_len, &refs[i])) != 0 &&
		    r != KMS_ENOTFOUND) {
			goto out;
		}
	}
	r = w->st->ops->delete_material(w->st, id, &rv);
	(void)keycache_refresh(w, id);
 out:
	free(refs);
	if (vs != NULL) {
		secure_wipe(vs, n * sizeof(*vs));
		free(vs);
	}
	return r;
}

int
op_delete_imported_key_material(struct opctx *c, json_t **resp)
{
	struct key_info ki;
	char lease[STORE_LEASE_NAME_MAX], holder[STORE_LEASE_HOLDER_MAX];
	int r;

	if ((r = op_mgmt_key(c, 0, &ki)) != 0 ||
	    (r = op_authorize(c, &ki, "DeleteImportedKeyMaterial",
	    NULL)) != 0 ||
	    (r = need_external(c, &ki)) != 0) {
		return r;
	}
	if (ki.state == KEY_PENDING_IMPORT) {
		return op_state_error(c, KMS_EINVALIDSTATE, &ki);
	}
	lease_name(ki.id, lease, sizeof(lease));
	snprintf(holder, sizeof(holder), "%s:delete-material:w%d",
	    c->w->d->node_id, c->w->id);
	if ((r = lease_claim(c->w, lease, holder)) != 0) {
		return op_fail(c, r == KMS_ECONFLICT ? KMS_ECONFLICT : r,
		    "%s is busy (a rotation or deletion); retry.", ki.arn);
	}
	r = import_drop_material(c->w, ki.id);
	(void)c->w->st->ops->release_lease(c->w->st, lease, holder);
	if (r != 0) {
		return op_state_error(c, r, &ki);
	}
	if ((*resp = json_object()) == NULL) {
		return op_fail(c, KMS_EINTERNAL, "out of memory");
	}
	return 0;
}
