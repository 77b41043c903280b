/*
 * envelope_cache.c — the data-key cache, as the AWS Encryption SDK's
 * caching cryptographic materials manager with its local cache.
 *
 * Encryption entries are found by SHA-512 of (key id, algorithm suite,
 * serialized context) and reused while younger than max_age and under
 * max_messages and max_bytes; a message is counted before it is
 * encrypted, so an entry that a message would carry past a limit is
 * evicted and a fresh data key fetched instead.  Decryption entries are
 * found by SHA-512 of (suite, every EDK, serialized context) and live
 * decrypt_ttl.  Least recently used goes first when full.
 *
 * Data keys are in locked memory (secure_alloc) and wiped when an entry
 * goes, whatever the reason.  One mutex guards everything; the work under
 * it is a scan of at most capacity entries and a 32-byte copy.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/err.h"
#include "common/secmem.h"
#include "libkmsclient/client.h"
#include "libkmsclient/envelope.h"

#define CACHE_DEFAULT_CAPACITY 1000
#define CACHE_MAX_CAPACITY 100000
#define CACHE_DEFAULT_MAX_MESSAGES (1ull << 32)	/* as the SDK */
#define CACHE_DEFAULT_MAX_BYTES ((1ull << 63) - 1)
#define CACHE_ID_LEN 64

enum { CE_FREE, CE_ENC, CE_DEC };

struct centry {
	int kind;
	uint8_t id[CACHE_ID_LEN];
	uint8_t *dk;			/* locked, ENV_KEY_LEN */
	struct env_edk edk;		/* encryption entries */
	char arn[KMS_ARN_MAX];		/* decryption entries */
	uint64_t born_ms;
	uint64_t used;			/* LRU tick */
	uint64_t messages, bytes;
};

struct kms_dk_cache {
	pthread_mutex_t mu;
	kms_dk_cache_opts o;
	struct centry *e;
	uint64_t tick;
	kms_dk_cache_stats st;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

KMS_API int
kms_dk_cache_new(const kms_dk_cache_opts *opts, kms_dk_cache **cp)
{
	kms_dk_cache *c;

	if (opts == NULL || cp == NULL || opts->max_age_ms == 0 ||
	    opts->capacity > CACHE_MAX_CAPACITY) {
		return KMS_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return KMS_ENOMEM;
	}
	c->o = *opts;
	if (c->o.capacity == 0) {
		c->o.capacity = CACHE_DEFAULT_CAPACITY;
	}
	if (c->o.max_messages == 0) {
		c->o.max_messages = CACHE_DEFAULT_MAX_MESSAGES;
	}
	if (c->o.max_bytes == 0) {
		c->o.max_bytes = CACHE_DEFAULT_MAX_BYTES;
	}
	if (c->o.decrypt_ttl_ms == 0) {
		c->o.decrypt_ttl_ms = c->o.max_age_ms;
	}
	if ((c->e = calloc(c->o.capacity, sizeof(*c->e))) == NULL) {
		free(c);
		return KMS_ENOMEM;
	}
	pthread_mutex_init(&c->mu, NULL);
	*cp = c;
	return 0;
}

/* Under mu. */
static void
drop(kms_dk_cache *c, struct centry *e)
{
	secure_free(e->dk, ENV_KEY_LEN);
	env_edk_clear(&e->edk);
	memset(e, 0, sizeof(*e));
	c->st.evictions++;
	c->st.entries--;
}

KMS_API void
kms_dk_cache_clear(kms_dk_cache *c)
{
	size_t i;

	if (c == NULL) {
		return;
	}
	pthread_mutex_lock(&c->mu);
	for (i = 0; i < c->o.capacity; i++) {
		if (c->e[i].kind != CE_FREE) {
			drop(c, &c->e[i]);
		}
	}
	pthread_mutex_unlock(&c->mu);
}

KMS_API void
kms_dk_cache_free(kms_dk_cache *c)
{
	if (c == NULL) {
		return;
	}
	kms_dk_cache_clear(c);
	pthread_mutex_destroy(&c->mu);
	free(c->e);
	free(c);
}

KMS_API void
kms_dk_cache_stats_get(kms_dk_cache *c, kms_dk_cache_stats *s)
{
	if (c == NULL || s == NULL) {
		return;
	}
	pthread_mutex_lock(&c->mu);
	*s = c->st;
	pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------ ids */

static void
hash_field(EVP_MD_CTX *md, const void *p, size_t n)
{
	uint8_t l[8];
	size_t i;

	/* Length-prefixed, so no two field lists hash alike. */
	for (i = 0; i < 8; i++) {
		l[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	}
	EVP_DigestUpdate(md, l, sizeof(l));
	EVP_DigestUpdate(md, p, n);
}

static int
make_id(int kind, const char *key_id, uint16_t suite,
    const kms_context_pair *pairs, size_t npairs, const struct env_edk *edks,
    size_t nedks, uint8_t id[CACHE_ID_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *ctx = NULL, hdr[3];
	size_t ctxlen = 0, i;
	unsigned int n = 0;
	int r = -1;

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha512(), NULL) != 1 ||
	    env_context_serialize(pairs, npairs, &ctx, &ctxlen, NULL) != 0) {
		goto out;
	}
	hdr[0] = (uint8_t)kind;
	hdr[1] = (uint8_t)(suite >> 8);
	hdr[2] = (uint8_t)suite;
	hash_field(md, hdr, sizeof(hdr));
	if (key_id != NULL) {
		hash_field(md, key_id, strlen(key_id));
	}
	for (i = 0; i < nedks; i++) {
		hash_field(md, edks[i].provider_id,
		    strlen(edks[i].provider_id));
		hash_field(md, edks[i].info, edks[i].info_len);
		hash_field(md, edks[i].blob, edks[i].blob_len);
	}
	hash_field(md, ctx, ctxlen);
	if (EVP_DigestFinal_ex(md, id, &n) != 1 || n != CACHE_ID_LEN) {
		goto out;
	}
	r = 0;
 out:
	free(ctx);
	EVP_MD_CTX_free(md);
	return r;
}

/* Under mu. */
static struct centry *
find(kms_dk_cache *c, int kind, const uint8_t id[CACHE_ID_LEN])
{
	size_t i;

	for (i = 0; i < c->o.capacity; i++) {
		if (c->e[i].kind == kind &&
		    memcmp(c->e[i].id, id, CACHE_ID_LEN) == 0) {
			return &c->e[i];
		}
	}
	return NULL;
}

/* A free slot, evicting the least recently used entry if need be. */
static struct centry *
slot(kms_dk_cache *c)
{
	struct centry *lru = NULL;
	size_t i;

	for (i = 0; i < c->o.capacity; i++) {
		if (c->e[i].kind == CE_FREE) {
			return &c->e[i];
		}
		if (lru == NULL || c->e[i].used < lru->used) {
			lru = &c->e[i];
		}
	}
	drop(c, lru);
	return lru;
}

static int
edk_copy(struct env_edk *d, const struct env_edk *s)
{
	memset(d, 0, sizeof(*d));
	if ((d->provider_id = strdup(s->provider_id)) == NULL ||
	    (d->info = malloc(s->info_len + 1)) == NULL ||
	    (d->blob = malloc(s->blob_len + 1)) == NULL) {
		env_edk_clear(d);
		return -1;
	}
	memcpy(d->info, s->info, s->info_len);
	d->info_len = s->info_len;
	memcpy(d->blob, s->blob, s->blob_len);
	d->blob_len = s->blob_len;
	return 0;
}

int
env_cache_get_enc(kms_dk_cache *c, const char *key_id, uint16_t suite,
    const kms_context_pair *pairs, size_t npairs, uint64_t bytes,
    uint8_t *dk, struct env_edk *edk)
{
	uint8_t id[CACHE_ID_LEN];
	struct centry *e;
	int hit = 0;

	if (make_id(CE_ENC, key_id, suite, pairs, npairs, NULL, 0, id) != 0) {
		return 0;
	}
	pthread_mutex_lock(&c->mu);
	if ((e = find(c, CE_ENC, id)) != NULL) {
		if (now_ms() - e->born_ms >= c->o.max_age_ms ||
		    e->messages + 1 > c->o.max_messages ||
		    bytes > c->o.max_bytes - e->bytes) {
			drop(c, e);
		} else if (edk_copy(edk, &e->edk) == 0) {
			e->messages++;
			e->bytes += bytes;
			e->used = ++c->tick;
			memcpy(dk, e->dk, ENV_KEY_LEN);
			hit = 1;
		}
	}
	if (hit) {
		c->st.hits++;
	} else {
		c->st.misses++;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void
env_cache_put_enc(kms_dk_cache *c, const char *key_id, uint16_t suite,
    const kms_context_pair *pairs, size_t npairs, uint64_t bytes,
    const uint8_t *dk, const struct env_edk *edk)
{
	uint8_t id[CACHE_ID_LEN];
	struct centry *e;
	uint8_t *k;

	/* A message larger than the limit never shares its key. */
	if (bytes > c->o.max_bytes || c->o.max_messages < 1 ||
	    make_id(CE_ENC, key_id, suite, pairs, npairs, NULL, 0, id) != 0) {
		return;
	}
	if ((k = secure_alloc(ENV_KEY_LEN)) == NULL) {
		return;
	}
	memcpy(k, dk, ENV_KEY_LEN);
	pthread_mutex_lock(&c->mu);
	if ((e = find(c, CE_ENC, id)) != NULL) {
		drop(c, e);	/* another thread's, from the same miss */
	}
	e = slot(c);
	if (edk_copy(&e->edk, edk) != 0) {
		pthread_mutex_unlock(&c->mu);
		secure_free(k, ENV_KEY_LEN);
		return;
	}
	e->kind = CE_ENC;
	memcpy(e->id, id, CACHE_ID_LEN);
	e->dk = k;
	e->born_ms = now_ms();
	e->used = ++c->tick;
	e->messages = 1;
	e->bytes = bytes;
	c->st.entries++;
	pthread_mutex_unlock(&c->mu);
}

int
env_cache_get_dec(kms_dk_cache *c, const struct env_header *h, uint8_t *dk,
    char *arn, size_t arnsz)
{
	uint8_t id[CACHE_ID_LEN];
	struct centry *e;
	int hit = 0;

	if (make_id(CE_DEC, NULL, h->suite, h->pairs, h->npairs, h->edks,
	    h->nedks, id) != 0) {
		return 0;
	}
	pthread_mutex_lock(&c->mu);
	if ((e = find(c, CE_DEC, id)) != NULL) {
		if (now_ms() - e->born_ms >= c->o.decrypt_ttl_ms) {
			drop(c, e);
		} else {
			e->used = ++c->tick;
			memcpy(dk, e->dk, ENV_KEY_LEN);
			snprintf(arn, arnsz, "%s", e->arn);
			hit = 1;
		}
	}
	if (hit) {
		c->st.hits++;
	} else {
		c->st.misses++;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void
env_cache_put_dec(kms_dk_cache *c, const struct env_header *h,
    const uint8_t *dk, const char *arn)
{
	uint8_t id[CACHE_ID_LEN];
	struct centry *e;
	uint8_t *k;

	if (make_id(CE_DEC, NULL, h->suite, h->pairs, h->npairs, h->edks,
	    h->nedks, id) != 0 || (k = secure_alloc(ENV_KEY_LEN)) == NULL) {
		return;
	}
	memcpy(k, dk, ENV_KEY_LEN);
	pthread_mutex_lock(&c->mu);
	if ((e = find(c, CE_DEC, id)) != NULL) {
		drop(c, e);
	}
	e = slot(c);
	e->kind = CE_DEC;
	memcpy(e->id, id, CACHE_ID_LEN);
	e->dk = k;
	snprintf(e->arn, sizeof(e->arn), "%s", arn);
	e->born_ms = now_ms();
	e->used = ++c->tick;
	c->st.entries++;
	pthread_mutex_unlock(&c->mu);
}
