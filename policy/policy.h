/*
 * policy.h — key policies and grants: compile once, evaluate per request.
 *
 * A pure module (docs/design.md §6): no I/O, no global state.  policy_compile()
 * turns a key policy document (IAM grammar, ≤ POLICY_MAX_DOC bytes) into a
 * read-only compiled form; policy_evaluate() decides one request against
 * it without allocating, so many threads may evaluate one compiled policy
 * at once.  Grants are plain structs of borrowed pointers.
 *
 * Document grammar (errors name the element, e.g. "Statement[2].Condition:
 * unknown operator StringEqualz"; statement indexes count from 0):
 *   Version    "2012-10-17" or "2008-10-17" (optional)
 *   Id         string (optional)
 *   Statement  one statement object or a non-empty array of them, each with
 *     Sid        string, unique within the document (optional)
 *     Effect     "Allow" | "Deny" (required)
 *     Principal | NotPrincipal  (exactly one) — "*", a principal string, a
 *                list of them, or {"KMS": <string or list>} ("AWS" is
 *                accepted as a synonym of "KMS").  Principal strings:
 *                uid:<n>, user:<name>, group:<name>, cert:<CN>,
 *                access-key:<id>, or "*".  Matched exactly, no wildcards.
 *     Action | NotAction  (exactly one) — "*" or kms:<Operation> with '*'
 *                and '?' wildcards, case-insensitive; each pattern must
 *                match at least one AWS KMS operation.
 *     Resource | NotResource  (exactly one) — "*" or ARN patterns
 *                (arn:kms:local:<account>:key/<id>) with wildcards,
 *                case-sensitive.
 *     Condition  {"<op>": {"<key>": <value or list>}} — operators String*,
 *                Numeric*, Date*, Bool, Null, IpAddress, NotIpAddress, with
 *                ForAnyValue: / ForAllValues: and the IfExists suffix.
 *
 * Condition semantics follow IAM: values ORed, keys within an operator
 * ANDed, operators ANDed; a key missing from the request makes a positive
 * operator false and a negated one (String/Numeric/DateNotEquals,
 * StringNot*, NotIpAddress) true; ...IfExists is true when the key is
 * missing; ForAllValues over a missing or empty key is true, ForAnyValue
 * false.  Condition key names are case-insensitive, including the <k> of
 * kms:EncryptionContext:<k>; values compare as the operator says.
 */
#ifndef KMS_POLICY_H
#define KMS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "kms.h"

#define POLICY_MAX_DOC 32768		/* AWS key policy size limit, bytes */
#define POLICY_MAX_STATEMENTS 256	/* statements in one document */
#define POLICY_MAX_VALUES 256		/* entries in one list element */
#define POLICY_MAX_STRING 2048		/* one principal/action/value */
#define POLICY_ERR_MAX 256		/* suggested errbuf size */

enum policy_decision {
	POLICY_DENY_IMPLICIT = 0,	/* no statement allowed it */
	POLICY_ALLOW,			/* an Allow matched, no Deny did */
	POLICY_DENY_EXPLICIT		/* a Deny statement matched */
};

/*
 * One request, as the daemon knows it.  Every pointer is borrowed for the
 * duration of the call; NULL (or n == 0) means "absent from the request".
 */
struct policy_request {
	const char *action;		/* "Decrypt" or "kms:Decrypt" */
	const char *resource;		/* key ARN, NULL when none */

	/* Who calls (from the transport, never the request body). */
	const char *principal;		/* kms:CallerPrincipal, e.g. uid:1000 */
	int64_t uid;			/* < 0: no uid identity */
	const char *user;		/* user name */
	const char *const *groups;	/* group names, primary first */
	size_t ngroups;
	const char *cert;		/* TLS client certificate CN */
	const char *access_key;		/* SigV4 access key id */

	const kms_context_pair *context;	/* encryption context */
	size_t ncontext;

	const char *request_alias;	/* alias/..., when the KeyId was one */
	const char *const *grant_operations;	/* CreateGrant Operations */
	size_t ngrant_operations;
	const char *grantee_principal;	/* CreateGrant */
	const char *retiring_principal;	/* CreateGrant */
	const char *key_spec;		/* of the key, or CreateKey's */
	const char *key_usage;
	const char *key_origin;
	const char *encryption_algorithm;
	int64_t current_time;		/* seconds since the epoch, UTC */
	const char *source_ip;		/* network front ends; NULL on IPC */
	int bypass_lockout;		/* < 0 absent, 0 false, 1 true */
};

struct policy;

/*
 * Compile doc[0..len) (need not be NUL-terminated).  Returns the compiled
 * policy (free with policy_free) or NULL with a message in errbuf naming
 * the problem and where; the daemon sends it as
 * MalformedPolicyDocumentException.  Never quotes more than names from the
 * document.
 */
struct policy *policy_compile(const char *doc, size_t len, char *errbuf,
    size_t errlen);
void policy_free(struct policy *p);
/* Number of statements (for tests and diagnostics). */
size_t policy_statement_count(const struct policy *p);

/* Decide req against p.  No allocation; p is not modified. */
enum policy_decision policy_evaluate(const struct policy *p,
    const struct policy_request *req);

/* Does the caller in req hold principal (uid:1, user:x, group:g, cert:c,
 * access-key:k, or "*")?  1 or 0. */
int policy_principal_matches(const char *principal,
    const struct policy_request *req);
/* Is s a well-formed principal string?  1 or 0. */
int policy_principal_valid(const char *s);

/* AWS KMS operation names ("Decrypt"); case-insensitive, "kms:" prefix
 * optional.  Returns the canonical spelling or NULL if unknown. */
const char *policy_action_name(const char *action);

/*
 * Grants.  Operations are a bitmask of POLICY_GOP_*, AWS's list only.
 */
#define POLICY_GOP_DECRYPT		(1u << 0)
#define POLICY_GOP_ENCRYPT		(1u << 1)
#define POLICY_GOP_GENERATE_DATA_KEY	(1u << 2)
#define POLICY_GOP_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT (1u << 3)
#define POLICY_GOP_REENCRYPT_FROM	(1u << 4)
#define POLICY_GOP_REENCRYPT_TO		(1u << 5)
#define POLICY_GOP_SIGN			(1u << 6)
#define POLICY_GOP_VERIFY		(1u << 7)
#define POLICY_GOP_GET_PUBLIC_KEY	(1u << 8)
#define POLICY_GOP_CREATE_GRANT		(1u << 9)
#define POLICY_GOP_RETIRE_GRANT		(1u << 10)
#define POLICY_GOP_DESCRIBE_KEY		(1u << 11)
#define POLICY_GOP_GENERATE_DATA_KEY_PAIR (1u << 12)
#define POLICY_GOP_GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT (1u << 13)
#define POLICY_GOP_GENERATE_MAC		(1u << 14)
#define POLICY_GOP_VERIFY_MAC		(1u << 15)
#define POLICY_GOP_DERIVE_SHARED_SECRET	(1u << 16)
#define POLICY_GOP_ALL			((1u << 17) - 1)

/* Bit for an AWS grant operation name (exact spelling, as AWS), or 0. */
uint32_t policy_grant_op_parse(const char *name);
/* Name of a single bit, or NULL. */
const char *policy_grant_op_name(uint32_t bit);

struct policy_grant {
	const char *grantee;		/* principal string */
	uint32_t operations;		/* POLICY_GOP_* */
	int has_equals;			/* EncryptionContextEquals given */
	const kms_context_pair *ec_equals;
	size_t n_equals;
	int has_subset;			/* EncryptionContextSubset given */
	const kms_context_pair *ec_subset;
	size_t n_subset;
};

/*
 * Does grant g allow req?  The caller must hold g->grantee, the action
 * must be one of g's operations, and, for operations that take an
 * encryption context, req's context must satisfy the constraints (AWS's
 * rule: keys compare case-insensitively, values case-sensitively; Equals
 * means the same pairs, Subset means at least those pairs).  1 or 0.
 */
int policy_grant_allows(const struct policy_grant *g,
    const struct policy_request *req);
/*
 * May a grantee holding parent create child?  1 when child's operations
 * are a subset of parent's and every context child accepts parent accepts
 * too (constraints at least as tight), else 0.
 */
int policy_grant_narrower(const struct policy_grant *child,
    const struct policy_grant *parent);

/*
 * The default key policy: Id "key-default-1", one statement with Sid
 * POLICY_DEFAULT_SID allowing kms:* on "*" to the n principals.  Writes a
 * NUL-terminated document to out.  Returns 0, KMS_EINVAL for a bad
 * principal or n == 0, KMS_ELIMITEXCEEDED if outsz is too small.
 */
#define POLICY_DEFAULT_ID "key-default-1"
#define POLICY_DEFAULT_SID \
	"Enable kmsd permissions for the creator and administrators"
int policy_default_document(const char *const *principals, size_t n,
    char *out, size_t outsz);

#endif
