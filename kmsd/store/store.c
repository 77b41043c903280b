/*
 * store.c — the store interface's argument checks (store.h).
 *
 * A handle's ops are the functions below: each checks what its caller
 * passed (pointers, string fields terminated in place, values in range)
 * and returns KMS_EINVAL, or calls the back end's method (impl) with the
 * same arguments.  Checking here, once, is what lets a second back end
 * (PostgreSQL) leave the checks out: back ends assert what this file
 * guarantees.  No state; as thread-safe as the back end it calls.
 */
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "kmsd/store/store.h"

/* A fixed-size string field is valid when it is NUL-terminated in place. */
#define FIELD_OK(f) (strnlen((f), sizeof(f)) < sizeof(f))

static int
key_ok(const struct store_key *k)
{
	return k != NULL && k->state >= KEY_ENABLED &&
	    k->state <= KEY_UNAVAILABLE && FIELD_OK(k->key_usage) &&
	    FIELD_OK(k->key_spec) && FIELD_OK(k->origin) &&
	    FIELD_OK(k->description) && FIELD_OK(k->creator) &&
	    k->row_version <= INT64_MAX;
}

static int
version_ok(const struct store_version *v)
{
	return v != NULL && v->version >= 1 &&
	    v->material_len <= STORE_MATERIAL_MAX &&
	    (v->resident == 0 || v->resident == 1) &&
	    v->enc_reserved <= INT64_MAX;
}

/* n tags, each with a non-empty key. */
static int
tags_ok(const struct store_tag *t, size_t n)
{
	size_t i;

	if (n > 0 && t == NULL) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (!FIELD_OK(t[i].key) || t[i].key[0] == '\0' ||
		    !FIELD_OK(t[i].value)) {
			return 0;
		}
	}
	return 1;
}

/* A page: where to put it, how many, and whether more follow. */
static int
page_ok(const void *out, size_t max, const size_t *n, const int *more)
{
	return n != NULL && more != NULL && (max == 0 || out != NULL) &&
	    max <= STORE_LIST_MAX;
}

/* Up to max rows into out (the due_* and next_* methods). */
static int
batch_ok(const void *out, size_t max, const size_t *n)
{
	return out != NULL && n != NULL && max <= STORE_LIST_MAX;
}

static int
lease_ok(const char *name, const char *holder)
{
	return name != NULL && holder != NULL && *name != '\0' &&
	    *holder != '\0' && strlen(name) < STORE_LEASE_NAME_MAX &&
	    strlen(holder) < STORE_LEASE_HOLDER_MAX;
}

static void
chk_close(store *s)
{
	s->impl->close(s);
}

static int
chk_create_key(store *s, const struct store_key *k,
    const struct store_version *v, const struct store_tag *tags,
    size_t ntags)
{
	if (!key_ok(k) || !tags_ok(tags, ntags) || (v != NULL &&
	    (!version_ok(v) || memcmp(v->key_id, k->id, 16) != 0))) {
		return KMS_EINVAL;
	}
	return s->impl->create_key(s, k, v, tags, ntags);
}

static int
chk_get_key(store *s, const uint8_t id[16], struct store_key *out)
{
	return id == NULL || out == NULL ? KMS_EINVAL :
	    s->impl->get_key(s, id, out);
}

static int
chk_update_key(store *s, const struct store_key *k, uint64_t *row_version)
{
	return !key_ok(k) ? KMS_EINVAL :
	    s->impl->update_key(s, k, row_version);
}

static int
chk_list_keys(store *s, const uint8_t *after, size_t max,
    uint8_t (*ids)[16], size_t *n, int *more)
{
	return !page_ok(ids, max, n, more) ? KMS_EINVAL :
	    s->impl->list_keys(s, after, max, ids, n, more);
}

static int
chk_add_version(store *s, const struct store_version *v)
{
	return !version_ok(v) ? KMS_EINVAL :
	    s->impl->add_version(s, v);
}

static int
chk_get_versions(store *s, const uint8_t id[16],
    struct store_version **out, size_t *n)
{
	return id == NULL || out == NULL || n == NULL ? KMS_EINVAL :
	    s->impl->get_versions(s, id, out, n);
}

static int
chk_reserve_encryptions(store *s, const uint8_t id[16], uint32_t version,
    uint64_t reserved)
{
	return id == NULL || reserved > INT64_MAX ? KMS_EINVAL :
	    s->impl->reserve_encryptions(s, id, version, reserved);
}

static int
chk_get_tags(store *s, const uint8_t id[16], struct store_tag **out,
    size_t *n)
{
	return id == NULL || out == NULL || n == NULL ? KMS_EINVAL :
	    s->impl->get_tags(s, id, out, n);
}

static int
chk_for_each_version(store *s,
    int (*fn)(const struct store_version *v, void *arg), void *arg)
{
	return fn == NULL ? KMS_EINVAL :
	    s->impl->for_each_version(s, fn, arg);
}

static int
chk_delete_key(store *s, const uint8_t id[16])
{
	return id == NULL ? KMS_EINVAL : s->impl->delete_key(s, id);
}

static uint64_t
chk_count_keys(store *s)
{
	return s->impl->count_keys(s);
}

static int
chk_put_tags(store *s, const uint8_t id[16], const struct store_tag *tags,
    size_t n)
{
	return id == NULL || !tags_ok(tags, n) ? KMS_EINVAL :
	    s->impl->put_tags(s, id, tags, n);
}

static int
chk_delete_tags(store *s, const uint8_t id[16], const char *const *keys,
    size_t n)
{
	return id == NULL || (n > 0 && keys == NULL) ? KMS_EINVAL :
	    s->impl->delete_tags(s, id, keys, n);
}

static int
chk_create_alias(store *s, const struct store_alias *a)
{
	return a == NULL || !FIELD_OK(a->name) ? KMS_EINVAL :
	    s->impl->create_alias(s, a);
}

static int
chk_update_alias(store *s, const char *name, const uint8_t id[16],
    int64_t update_ms)
{
	return name == NULL || id == NULL ? KMS_EINVAL :
	    s->impl->update_alias(s, name, id, update_ms);
}

static int
chk_delete_alias(store *s, const char *name)
{
	return name == NULL ? KMS_EINVAL : s->impl->delete_alias(s, name);
}

static int
chk_get_alias(store *s, const char *name, struct store_alias *out)
{
	return name == NULL || out == NULL ? KMS_EINVAL :
	    s->impl->get_alias(s, name, out);
}

static int
chk_list_aliases(store *s, const uint8_t *key_id, const char *after,
    size_t max, struct store_alias *out, size_t *n, int *more)
{
	return !page_ok(out, max, n, more) ? KMS_EINVAL :
	    s->impl->list_aliases(s, key_id, after, max, out, n, more);
}

static int
chk_count_aliases(store *s, const uint8_t id[16], size_t *n)
{
	return id == NULL || n == NULL ? KMS_EINVAL :
	    s->impl->count_aliases(s, id, n);
}

static int
chk_put_policy(store *s, const uint8_t id[16], const char *doc,
    uint64_t *policy_version)
{
	return id == NULL || doc == NULL ? KMS_EINVAL :
	    s->impl->put_policy(s, id, doc, policy_version);
}

static int
chk_get_policy(store *s, const uint8_t id[16], char **doc,
    uint64_t *policy_version)
{
	return id == NULL || doc == NULL ? KMS_EINVAL :
	    s->impl->get_policy(s, id, doc, policy_version);
}

static int
chk_create_grant(store *s, const struct store_grant *g)
{
	if (g == NULL || !FIELD_OK(g->grant_id) || !FIELD_OK(g->name) ||
	    !FIELD_OK(g->grantee) || !FIELD_OK(g->retiring) ||
	    !FIELD_OK(g->operations) || !FIELD_OK(g->constraints) ||
	    !FIELD_OK(g->issuer)) {
		return KMS_EINVAL;
	}
	return s->impl->create_grant(s, g);
}

static int
chk_delete_grant(store *s, const uint8_t id[16], const char *grant_id)
{
	return id == NULL || grant_id == NULL ? KMS_EINVAL :
	    s->impl->delete_grant(s, id, grant_id);
}

static int
chk_get_grants(store *s, const uint8_t id[16], struct store_grant **out,
    size_t *n)
{
	return id == NULL || out == NULL || n == NULL ? KMS_EINVAL :
	    s->impl->get_grants(s, id, out, n);
}

static int
chk_find_grant_by_token(store *s, const uint8_t hash[32],
    struct store_grant *out)
{
	return hash == NULL || out == NULL ? KMS_EINVAL :
	    s->impl->find_grant_by_token(s, hash, out);
}

static int
chk_list_retirable(store *s, const char *p, const char *after, size_t max,
    struct store_grant **out, size_t *n, int *more)
{
	return p == NULL || out == NULL || !page_ok(out, max, n, more) ?
	    KMS_EINVAL :
	    s->impl->list_retirable(s, p, after, max, out, n, more);
}

static int
chk_backup(store *s, const char *path, uint64_t *nkeys)
{
	return path == NULL || nkeys == NULL ? KMS_EINVAL :
	    s->impl->backup(s, path, nkeys);
}

static int
chk_rotate_key(store *s, const struct store_version *v, int kind,
    uint64_t *row_version)
{
	if (!version_ok(v) || kind < ROTATION_AUTOMATIC ||
	    kind > ROTATION_BUDGET) {
		return KMS_EINVAL;
	}
	return s->impl->rotate_key(s, v, kind, row_version);
}

static int
chk_set_rotation_schedule(store *s, const uint8_t id[16],
    const struct store_rotation_schedule *rs)
{
	return id == NULL ? KMS_EINVAL :
	    s->impl->set_rotation_schedule(s, id, rs);
}

static int
chk_get_rotation_schedule(store *s, const uint8_t id[16],
    struct store_rotation_schedule *out)
{
	return id == NULL || out == NULL ? KMS_EINVAL :
	    s->impl->get_rotation_schedule(s, id, out);
}

static int
chk_list_rotations(store *s, const uint8_t id[16], uint32_t after,
    size_t max, struct store_rotation *out, size_t *n, int *more)
{
	return id == NULL || !page_ok(out, max, n, more) ? KMS_EINVAL :
	    s->impl->list_rotations(s, id, after, max, out, n, more);
}

static int
chk_count_rotations(store *s, const uint8_t id[16], int kind, size_t *n)
{
	return id == NULL || n == NULL ? KMS_EINVAL :
	    s->impl->count_rotations(s, id, kind, n);
}

static int
chk_due_rotations(store *s, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	return !batch_ok(ids, max, n) ? KMS_EINVAL :
	    s->impl->due_rotations(s, now, max, ids, n);
}

static int
chk_due_deletions(store *s, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	return !batch_ok(ids, max, n) ? KMS_EINVAL :
	    s->impl->due_deletions(s, now, max, ids, n);
}

static int
chk_claim_lease(store *s, const char *name, const char *holder,
    int64_t now, int64_t ttl_ms)
{
	return !lease_ok(name, holder) || ttl_ms <= 0 ? KMS_EINVAL :
	    s->impl->claim_lease(s, name, holder, now, ttl_ms);
}

static int
chk_release_lease(store *s, const char *name, const char *holder)
{
	return !lease_ok(name, holder) ? KMS_EINVAL :
	    s->impl->release_lease(s, name, holder);
}

static int
chk_get_lease(store *s, const char *name, int64_t now,
    char holder[STORE_LEASE_HOLDER_MAX], int64_t *since_ms)
{
	return name == NULL || holder == NULL || since_ms == NULL ? KMS_EINVAL
	    :
	    s->impl->get_lease(s, name, now, holder, since_ms);
}

static int
chk_shred_key(store *s, const uint8_t id[16])
{
	return id == NULL ? KMS_EINVAL : s->impl->shred_key(s, id);
}

static int
chk_put_import_token(store *s, const struct store_import_token *t)
{
	if (t == NULL || t->wrapping_key_id_len == 0 ||
	    t->wrapping_key_id_len > sizeof(t->wrapping_key_id) ||
	    !FIELD_OK(t->algorithm)) {
		return KMS_EINVAL;
	}
	return s->impl->put_import_token(s, t);
}

static int
chk_get_import_token(store *s, const uint8_t hash[32],
    struct store_import_token *out)
{
	return hash == NULL || out == NULL ? KMS_EINVAL :
	    s->impl->get_import_token(s, hash, out);
}

static int
chk_delete_import_token(store *s, const uint8_t hash[32])
{
	return hash == NULL ? KMS_EINVAL :
	    s->impl->delete_import_token(s, hash);
}

static int
chk_due_import_tokens(store *s, int64_t now, size_t max,
    struct store_import_token *out, size_t *n)
{
	return !batch_ok(out, max, n) ? KMS_EINVAL :
	    s->impl->due_import_tokens(s, now, max, out, n);
}

static int
chk_import_material(store *s, const struct store_version *v,
    const struct store_import *im, uint64_t *row_version)
{
	return !version_ok(v) || im == NULL ? KMS_EINVAL :
	    s->impl->import_material(s, v, im, row_version);
}

static int
chk_set_import_expiry(store *s, const uint8_t id[16],
    const struct store_import *im)
{
	return id == NULL || im == NULL ? KMS_EINVAL :
	    s->impl->set_import_expiry(s, id, im);
}

static int
chk_get_import(store *s, const uint8_t id[16], struct store_import *out)
{
	return id == NULL || out == NULL ? KMS_EINVAL :
	    s->impl->get_import(s, id, out);
}

static int
chk_delete_material(store *s, const uint8_t id[16], uint64_t *row_version)
{
	return id == NULL ? KMS_EINVAL :
	    s->impl->delete_material(s, id, row_version);
}

static int
chk_due_expirations(store *s, int64_t now, size_t max, uint8_t (*ids)[16],
    size_t *n)
{
	return !batch_ok(ids, max, n) ? KMS_EINVAL :
	    s->impl->due_expirations(s, now, max, ids, n);
}

static int
chk_get_domain_rotation(store *s, struct store_domain_rotation *out)
{
	return out == NULL ? KMS_EINVAL : s->impl->get_domain_rotation(s, out);
}

static int
chk_put_domain_rotation(store *s, const struct store_domain_rotation *r)
{
	if (r == NULL || r->done > INT64_MAX || r->total > INT64_MAX ||
	    !FIELD_OK(r->requested_by)) {
		return KMS_EINVAL;
	}
	return s->impl->put_domain_rotation(s, r);
}

static int
chk_next_wrapped_versions(store *s, const struct store_domain_rotation *r,
    size_t max, struct store_version *out, size_t *n)
{
	return r == NULL || !batch_ok(out, max, n) ? KMS_EINVAL :
	    s->impl->next_wrapped_versions(s, r, max, out, n);
}

static uint64_t
chk_count_wrapped_versions(store *s)
{
	return s->impl->count_wrapped_versions(s);
}

static int
chk_rewrap_versions(store *s, const struct store_version *v, size_t n,
    const struct store_domain_rotation *r)
{
	size_t i;

	if ((n > 0 && v == NULL) || r == NULL) {
		return KMS_EINVAL;
	}
	for (i = 0; i < n; i++) {
		if (v[i].material_len > STORE_MATERIAL_MAX) {
			return KMS_EINVAL;
		}
	}
	return s->impl->rewrap_versions(s, v, n, r);
}

static const struct store_ops checked_ops = {
	.close = chk_close,
	.create_key = chk_create_key,
	.get_key = chk_get_key,
	.update_key = chk_update_key,
	.list_keys = chk_list_keys,
	.add_version = chk_add_version,
	.get_versions = chk_get_versions,
	.reserve_encryptions = chk_reserve_encryptions,
	.get_tags = chk_get_tags,
	.for_each_version = chk_for_each_version,
	.delete_key = chk_delete_key,
	.count_keys = chk_count_keys,
	.put_tags = chk_put_tags,
	.delete_tags = chk_delete_tags,
	.create_alias = chk_create_alias,
	.update_alias = chk_update_alias,
	.delete_alias = chk_delete_alias,
	.get_alias = chk_get_alias,
	.list_aliases = chk_list_aliases,
	.count_aliases = chk_count_aliases,
	.put_policy = chk_put_policy,
	.get_policy = chk_get_policy,
	.create_grant = chk_create_grant,
	.delete_grant = chk_delete_grant,
	.get_grants = chk_get_grants,
	.find_grant_by_token = chk_find_grant_by_token,
	.list_retirable = chk_list_retirable,
	.backup = chk_backup,
	.rotate_key = chk_rotate_key,
	.set_rotation_schedule = chk_set_rotation_schedule,
	.get_rotation_schedule = chk_get_rotation_schedule,
	.list_rotations = chk_list_rotations,
	.count_rotations = chk_count_rotations,
	.due_rotations = chk_due_rotations,
	.due_deletions = chk_due_deletions,
	.claim_lease = chk_claim_lease,
	.release_lease = chk_release_lease,
	.get_lease = chk_get_lease,
	.shred_key = chk_shred_key,
	.put_import_token = chk_put_import_token,
	.get_import_token = chk_get_import_token,
	.delete_import_token = chk_delete_import_token,
	.due_import_tokens = chk_due_import_tokens,
	.import_material = chk_import_material,
	.set_import_expiry = chk_set_import_expiry,
	.get_import = chk_get_import,
	.delete_material = chk_delete_material,
	.due_expirations = chk_due_expirations,
	.get_domain_rotation = chk_get_domain_rotation,
	.put_domain_rotation = chk_put_domain_rotation,
	.next_wrapped_versions = chk_next_wrapped_versions,
	.count_wrapped_versions = chk_count_wrapped_versions,
	.rewrap_versions = chk_rewrap_versions,
};

void
store_init(store *s, const struct store_ops *impl)
{
	KMS_ASSERT(s != NULL && impl != NULL);
	s->ops = &checked_ops;
	s->impl = impl;
}
