/*
 * policy_int.h — the compiled form of a key policy and the matchers the
 * parser and evaluator share.  Internal to policy/; everything here is
 * pure and reentrant.
 */
#ifndef KMS_POLICY_INT_H
#define KMS_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

/* Actions: indexes into the sorted table in policy_actions.c. */
#define ACTION_WORDS 2			/* room for 128 operations */
struct actset {
	uint64_t w[ACTION_WORDS];
};
size_t action_count(void);
const char *action_at(size_t i);
/* Index of an operation name ("kms:" prefix optional, any case), or -1. */
int action_index(const char *name);
/* Grant-operation bit of action i, 0 when it is not a grant operation. */
uint32_t action_grant_bit(size_t i);
/* Does action i take an encryption context (grant constraints apply)? */
int action_takes_context(size_t i);

enum principal_kind {
	PK_ANY,
	PK_UID,
	PK_USER,
	PK_GROUP,
	PK_CERT,
	PK_ACCESS_KEY
};
/* Parse "uid:1", "user:x", ... into kind and name (pointer into s) or
 * uid.  0 on success, -1 if malformed. */
int principal_parse(const char *s, enum principal_kind *kind,
    const char **name, int64_t *uid);
int principal_kind_matches(enum principal_kind kind, const char *name,
    int64_t uid, const struct policy_request *req);

struct principal {
	enum principal_kind kind;
	int64_t uid;
	char *name;			/* owned; NULL for PK_ANY and PK_UID */
};

/* Condition operators, reduced to a base comparison and flags. */
enum cond_base {
	CB_STR_EQ,
	CB_STR_LIKE,
	CB_NUM_EQ,
	CB_NUM_LT,
	CB_NUM_LE,
	CB_NUM_GT,
	CB_NUM_GE,
	CB_DATE_EQ,
	CB_DATE_LT,
	CB_DATE_LE,
	CB_DATE_GT,
	CB_DATE_GE,
	CB_BOOL,
	CB_NULL,
	CB_IP
};
enum cond_set {
	CS_NONE,
	CS_ANY,				/* ForAnyValue: */
	CS_ALL				/* ForAllValues: */
};
enum cond_key {
	CK_EC,				/* kms:EncryptionContext:<k> */
	CK_EC_KEYS,
	CK_CALLER_PRINCIPAL,
	CK_CALLER_UID,
	CK_CALLER_GROUPS,
	CK_REQUEST_ALIAS,
	CK_GRANT_OPS,
	CK_GRANTEE,
	CK_RETIRING,
	CK_KEY_SPEC,
	CK_KEY_USAGE,
	CK_KEY_ORIGIN,
	CK_ENC_ALG,
	CK_CURRENT_TIME,
	CK_SOURCE_IP,
	CK_BYPASS
};

struct cidr {
	int family;			/* 4 or 6 */
	uint8_t addr[16];
	unsigned int prefix;		/* bits */
};

struct cond_value {
	char *s;			/* owned; as written */
	double num;			/* Numeric* */
	int64_t date;			/* Date*, seconds since the epoch */
	int boolean;			/* Bool, Null */
	struct cidr ip;			/* IpAddress */
};

struct condition {
	enum cond_base base;
	int negate;
	int icase;			/* ...IgnoreCase */
	int ifexists;
	enum cond_set set;
	enum cond_key key;
	char *ctxkey;			/* owned; CK_EC only */
	size_t nvals;
	struct cond_value *vals;
};

struct statement {
	int deny;
	int not_principal;
	size_t nprincipals;
	struct principal *principals;
	int not_action;
	struct actset actions;
	int not_resource;
	int any_resource;		/* "*" among the resources */
	size_t nresources;
	char **resources;
	size_t nconds;
	struct condition *conds;
};

struct policy {
	size_t n;
	struct statement *st;
};

/* Matchers (policy_match.c). */
int glob_match(const char *pat, const char *s, int icase);
int ascii_casecmp(const char *a, const char *b);
int cidr_parse(const char *s, struct cidr *out);
int ip_parse(const char *s, struct cidr *out);	/* prefix = full width */
int cidr_contains(const struct cidr *net, const struct cidr *ip);
int date_parse(const char *s, int64_t *out);
void date_format(int64_t t, char *buf, size_t bufsz);
int num_parse(const char *s, double *out);

/* Condition evaluation (policy_eval.c). */
int condition_holds(const struct condition *c,
    const struct policy_request *req);

#endif
