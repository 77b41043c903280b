/*
 * authz.h — who may do what to a key (docs/design.md §6), on every request.
 *
 * Each key's policy is compiled once (policy/) and kept with its grants in
 * a cache keyed by key id and validated by the key's row_version: every
 * change to a key's policy or grants bumps it, so a stale entry is never
 * used.  A key without a stored policy has the default one (its creator
 * and the configured administrators get kms:*).  Evaluation runs under
 * the cache's mutex and allocates nothing.  Thread-safe.
 */
#ifndef KMSD_AUTHZ_H
#define KMSD_AUTHZ_H

#include <stddef.h>
#include <stdint.h>

#include "kms.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"

struct authz;

/* What a request asks, beyond who asks (the principal). */
struct authz_req {
	const char *action;			/* "Decrypt" */
	const kms_context_pair *ctx;		/* encryption context */
	size_t nctx;
	const char *request_alias;		/* alias/... used, or NULL */
	const char *const *grant_ops;		/* CreateGrant Operations */
	size_t ngrant_ops;
	const char *grantee;			/* CreateGrant */
	const char *retiring;			/* CreateGrant */
	int bypass_lockout;			/* -1 absent */
	const char *const *grant_tokens;
	size_t ngrant_tokens;
};

int authz_create(struct kmsd *d, struct authz **out);
void authz_destroy(struct authz *a);

/*
 * Allow or refuse p doing r->action on key ki.  Returns 0 (and, when a
 * grant allowed it, its id in grant_id), KMS_EACCESSDENIED with an AWS-style
 * message naming caller, operation and key (never the policy), or
 * KMS_EINVALIDGRANTTOKEN for a forged, malformed or retired token.
 */
int authz_check(struct worker *w, const struct principal *p,
    const struct key_info *ki, const struct authz_req *r, char *grant_id,
    size_t grant_id_len, char *msg, size_t msglen);

/* The document in force for a key (stored or default); malloc'd. */
int authz_policy_document(struct worker *w, const struct key_info *ki,
    char **doc);
/* The default policy for a creator (NUL-terminated, malloc'd). */
int authz_default_document(const struct kmsd *d, const char *creator,
    char **doc);
/* Would p still be allowed PutKeyPolicy under doc?  (lockout check) */
int authz_lockout_safe(struct worker *w, const struct principal *p,
    const struct key_info *ki, const char *doc, size_t len);
/* Is p a configured administrator (any of its identities)? */
int authz_is_admin(const struct kmsd *d, const struct principal *p);
/* Does p hold the principal string s (uid:, user:, group:, "*")? */
int authz_principal_is(const struct principal *p, const char *s);
struct policy_grant;
/* Is child no wider than the key's grant parent_id (delegation)? */
int authz_grant_narrower(struct worker *w, const struct key_info *ki,
    const char *parent_id, const struct policy_grant *child);
/* Hash of a grant token as stored. */
void authz_token_hash(const char *token, uint8_t out[32]);

#endif
