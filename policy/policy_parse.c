/*
 * policy_parse.c — key policy document → compiled form.
 *
 * Everything that can be decided once is decided here: action patterns
 * become a bitset over the operation table, operator names become a base
 * comparison plus flags, numbers, dates and CIDR blocks are parsed, so
 * evaluation only compares.  Anything not understood is an error naming
 * the element, because a policy that silently ignores a clause grants or
 * denies something its author did not mean.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/json.h"
#include "policy/policy_int.h"

#define NAME_QUOTE_MAX 64	/* bytes of a document name in a message */

struct perr {
	char *buf;
	size_t len;
};

static int
fail(struct perr *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct perr *e, const char *path, const char *fmt, ...)
{
	char msg[POLICY_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->buf != NULL && e->len > 0) {
		if (path != NULL && *path != '\0') {
			snprintf(e->buf, e->len, "%s: %s", path, msg);
		} else {
			snprintf(e->buf, e->len, "%s", msg);
		}
	}
	return -1;
}

/* A name from the document, made safe to quote: printable ASCII, cut. */
static const char *
quote(char *dst, size_t dstsz, const char *src)
{
	size_t i, n = 0;

	for (i = 0; src[i] != '\0' && n + 4 < dstsz; i++) {
		unsigned char c = (unsigned char)src[i];

		if (n >= NAME_QUOTE_MAX) {
			memcpy(dst + n, "...", 3);
			n += 3;
			break;
		}
		dst[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[n] = '\0';
	return dst;
}
#define Q(s) quote((char[NAME_QUOTE_MAX + 8]){ 0 }, NAME_QUOTE_MAX + 8, (s))

static char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);

	if (p != NULL) {
		memcpy(p, s, n);
	}
	return p;
}

/*
 * A string or a non-empty list of strings (IAM's single-or-list rule) into
 * out[] (borrowed from the JSON tree).  Returns the count or -1.
 */
static int
get_strings(const json_t *v, const char *path, const char *elem,
    const char **out, struct perr *e)
{
	size_t i, n;

	if (json_is_string(v)) {
		out[0] = json_string_value(v);
		n = 1;
	} else if (json_is_array(v)) {
		if ((n = json_array_size(v)) == 0) {
			return fail(e, path, "%s must not be empty", elem);
		}
		if (n > POLICY_MAX_VALUES) {
			return fail(e, path, "%s has more than %d entries",
			    elem, POLICY_MAX_VALUES);
		}
		for (i = 0; i < n; i++) {
			const json_t *x = json_array_get(v, i);

			if (!json_is_string(x)) {
				return fail(e, path, "%s[%zu] must be a string",
				    elem, i);
			}
			out[i] = json_string_value(x);
		}
	} else {
		return fail(e, path, "%s must be a string or a list of strings",
		    elem);
	}
	for (i = 0; i < n; i++) {
		if (strlen(out[i]) > POLICY_MAX_STRING) {
			return fail(e, path, "%s entry longer than %d bytes",
			    elem, POLICY_MAX_STRING);
		}
	}
	return (int)n;
}

static int
name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 256) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			return 0;
		}
	}
	return 1;
}

int
principal_parse(const char *s, enum principal_kind *kind, const char **name,
    int64_t *uid)
{
	static const struct {
		const char *prefix;
		enum principal_kind kind;
	} kinds[] = {
		{ "user:", PK_USER },
		{ "group:", PK_GROUP },
		{ "cert:", PK_CERT },
		{ "access-key:", PK_ACCESS_KEY },
	};
	size_t i, n;

	*name = NULL;
	*uid = -1;
	if (s == NULL) {
		return -1;
	}
	if (strcmp(s, "*") == 0) {
		*kind = PK_ANY;
		return 0;
	}
	if (strncmp(s, "uid:", 4) == 0) {
		s += 4;
		n = strspn(s, "0123456789");
		if (n == 0 || n > 10 || s[n] != '\0' ||
		    (n > 1 && s[0] == '0')) {
			return -1;
		}
		*uid = strtoll(s, NULL, 10);
		if (*uid > 4294967295LL) {
			return -1;
		}
		*kind = PK_UID;
		return 0;
	}
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		n = strlen(kinds[i].prefix);
		if (strncmp(s, kinds[i].prefix, n) == 0) {
			if (!name_ok(s + n)) {
				return -1;
			}
			*kind = kinds[i].kind;
			*name = s + n;
			return 0;
		}
	}
	return -1;
}

int
policy_principal_valid(const char *s)
{
	enum principal_kind k;
	const char *name;
	int64_t uid;

	return principal_parse(s, &k, &name, &uid) == 0;
}

static int
add_principals(struct statement *st, const json_t *v, const char *path,
    const char *elem, struct perr *e)
{
	const char *list[POLICY_MAX_VALUES];
	struct principal *np;
	const char *name;
	enum principal_kind kind;
	int64_t uid;
	int i, n;

	if ((n = get_strings(v, path, elem, list, e)) < 0) {
		return -1;
	}
	if (st->nprincipals + (size_t)n > POLICY_MAX_VALUES) {
		return fail(e, path, "%s has more than %d entries", elem,
		    POLICY_MAX_VALUES);
	}
	np = realloc(st->principals,
	    (st->nprincipals + (size_t)n) * sizeof(*np));
	if (np == NULL) {
		return fail(e, path, "out of memory");
	}
	st->principals = np;
	for (i = 0; i < n; i++) {
		struct principal *p = &st->principals[st->nprincipals];

		if (principal_parse(list[i], &kind, &name, &uid) != 0) {
			return fail(e, path, "%s: invalid principal %s (use "
			    "uid:, user:, group:, cert:, access-key: or *)",
			    elem, Q(list[i]));
		}
		memset(p, 0, sizeof(*p));
		p->kind = kind;
		p->uid = uid;
		if (name != NULL && (p->name = xstrdup(name)) == NULL) {
			return fail(e, path, "out of memory");
		}
		st->nprincipals++;
	}
	return 0;
}

static int
parse_principal(struct statement *st, const json_t *v, const char *path,
    const char *elem, struct perr *e)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v)) {
		return add_principals(st, v, path, elem, e);
	}
	if (json_object_size(v) == 0) {
		return fail(e, path, "%s must not be empty", elem);
	}
	json_object_foreach((json_t *)v, k, x) {
		/* "AWS" so documents written for AWS KMS read naturally. */
		if (strcmp(k, "KMS") != 0 && strcmp(k, "AWS") != 0) {
			return fail(e, path, "%s: unknown principal type %s "
			    "(use KMS)", elem, Q(k));
		}
		if (add_principals(st, x, path, elem, e) != 0) {
			return -1;
		}
	}
	return 0;
}

static int
parse_action(struct statement *st, const json_t *v, const char *path,
    const char *elem, struct perr *e)
{
	const char *list[POLICY_MAX_VALUES];
	size_t a;
	int i, n, hit;

	if ((n = get_strings(v, path, elem, list, e)) < 0) {
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *pat = list[i];

		if (strcmp(pat, "*") == 0) {
			memset(&st->actions, 0xff, sizeof(st->actions));
			continue;
		}
		if (strncasecmp(pat, "kms:", 4) != 0 || pat[4] == '\0') {
			return fail(e, path, "unknown action %s (actions are "
			    "kms:<Operation>)", Q(pat));
		}
		for (a = 0, hit = 0; a < action_count(); a++) {
			if (glob_match(pat + 4, action_at(a), 1)) {
				st->actions.w[a / 64] |= 1ull << (a % 64);
				hit = 1;
			}
		}
		if (!hit) {
			return fail(e, path, "unknown action %s", Q(pat));
		}
	}
	return 0;
}

static int
parse_resource(struct statement *st, const json_t *v, const char *path,
    const char *elem, struct perr *e)
{
	const char *list[POLICY_MAX_VALUES];
	int i, n;

	if ((n = get_strings(v, path, elem, list, e)) < 0) {
		return -1;
	}
	if ((st->resources = calloc((size_t)n, sizeof(char *))) == NULL) {
		return fail(e, path, "out of memory");
	}
	for (i = 0; i < n; i++) {
		if (strcmp(list[i], "*") == 0) {
			st->any_resource = 1;
		} else if (strncmp(list[i], "arn:", 4) != 0) {
			return fail(e, path, "%s: invalid resource %s (use * "
			    "or a key ARN)", elem, Q(list[i]));
		}
		if ((st->resources[i] = xstrdup(list[i])) == NULL) {
			return fail(e, path, "out of memory");
		}
		st->nresources++;
	}
	return 0;
}

static const struct {
	const char *name;
	enum cond_base base;
	int negate;
	int icase;
} operators[] = {
	{ "StringEquals", CB_STR_EQ, 0, 0 },
	{ "StringNotEquals", CB_STR_EQ, 1, 0 },
	{ "StringEqualsIgnoreCase", CB_STR_EQ, 0, 1 },
	{ "StringNotEqualsIgnoreCase", CB_STR_EQ, 1, 1 },
	{ "StringLike", CB_STR_LIKE, 0, 0 },
	{ "StringNotLike", CB_STR_LIKE, 1, 0 },
	{ "NumericEquals", CB_NUM_EQ, 0, 0 },
	{ "NumericNotEquals", CB_NUM_EQ, 1, 0 },
	{ "NumericLessThan", CB_NUM_LT, 0, 0 },
	{ "NumericLessThanEquals", CB_NUM_LE, 0, 0 },
	{ "NumericGreaterThan", CB_NUM_GT, 0, 0 },
	{ "NumericGreaterThanEquals", CB_NUM_GE, 0, 0 },
	{ "DateEquals", CB_DATE_EQ, 0, 0 },
	{ "DateNotEquals", CB_DATE_EQ, 1, 0 },
	{ "DateLessThan", CB_DATE_LT, 0, 0 },
	{ "DateLessThanEquals", CB_DATE_LE, 0, 0 },
	{ "DateGreaterThan", CB_DATE_GT, 0, 0 },
	{ "DateGreaterThanEquals", CB_DATE_GE, 0, 0 },
	{ "Bool", CB_BOOL, 0, 0 },
	{ "Null", CB_NULL, 0, 0 },
	{ "IpAddress", CB_IP, 0, 0 },
	{ "NotIpAddress", CB_IP, 1, 0 },
};

/* "ForAnyValue:StringLikeIfExists" → base, flags.  0 or -1. */
static int
parse_operator(const char *name, struct condition *c)
{
	char buf[64];
	size_t i, n;

	if (strlen(name) >= sizeof(buf)) {
		return -1;
	}
	c->set = CS_NONE;
	if (strncasecmp(name, "ForAnyValue:", 12) == 0) {
		c->set = CS_ANY;
		name += 12;
	} else if (strncasecmp(name, "ForAllValues:", 13) == 0) {
		c->set = CS_ALL;
		name += 13;
	}
	snprintf(buf, sizeof(buf), "%s", name);
	n = strlen(buf);
	c->ifexists = 0;
	if (n > 8 && ascii_casecmp(buf + n - 8, "IfExists") == 0) {
		c->ifexists = 1;
		buf[n - 8] = '\0';
	}
	for (i = 0; i < sizeof(operators) / sizeof(operators[0]); i++) {
		if (ascii_casecmp(buf, operators[i].name) == 0) {
			c->base = operators[i].base;
			c->negate = operators[i].negate;
			c->icase = operators[i].icase;
			/* Null tests existence itself: no set or IfExists. */
			if (c->base == CB_NULL &&
			    (c->ifexists || c->set != CS_NONE)) {
				return -1;
			}
			return 0;
		}
	}
	return -1;
}

static const struct {
	const char *name;
	enum cond_key key;
} cond_keys[] = {
	{ "kms:EncryptionContextKeys", CK_EC_KEYS },
	{ "kms:CallerPrincipal", CK_CALLER_PRINCIPAL },
	{ "kms:CallerUid", CK_CALLER_UID },
	{ "kms:CallerGroups", CK_CALLER_GROUPS },
	{ "kms:RequestAlias", CK_REQUEST_ALIAS },
	{ "kms:GrantOperations", CK_GRANT_OPS },
	{ "kms:GranteePrincipal", CK_GRANTEE },
	{ "kms:RetiringPrincipal", CK_RETIRING },
	{ "kms:KeySpec", CK_KEY_SPEC },
	{ "kms:KeyUsage", CK_KEY_USAGE },
	{ "kms:KeyOrigin", CK_KEY_ORIGIN },
	{ "kms:EncryptionAlgorithm", CK_ENC_ALG },
	{ "kms:CurrentTime", CK_CURRENT_TIME },
	{ "aws:CurrentTime", CK_CURRENT_TIME },
	{ "kms:SourceIp", CK_SOURCE_IP },
	{ "aws:SourceIp", CK_SOURCE_IP },
	{ "kms:BypassPolicyLockoutSafetyCheck", CK_BYPASS },
};

#define EC_PREFIX "kms:EncryptionContext:"

static int
parse_key(const char *name, struct condition *c)
{
	size_t i, n = strlen(EC_PREFIX);

	if (strncasecmp(name, EC_PREFIX, n) == 0) {
		if (name[n] == '\0' || strlen(name + n) > POLICY_MAX_STRING) {
			return -1;
		}
		c->key = CK_EC;
		return (c->ctxkey = xstrdup(name + n)) == NULL ? -1 : 0;
	}
	for (i = 0; i < sizeof(cond_keys) / sizeof(cond_keys[0]); i++) {
		if (ascii_casecmp(name, cond_keys[i].name) == 0) {
			c->key = cond_keys[i].key;
			return 0;
		}
	}
	return -1;
}

/* One condition value as text; IAM lets numbers and booleans be bare. */
static int
value_text(const json_t *x, char *buf, size_t bufsz, const char **out)
{
	if (json_is_string(x)) {
		*out = json_string_value(x);
	} else if (json_is_integer(x)) {
		snprintf(buf, bufsz, "%lld", (long long)json_integer_value(x));
		*out = buf;
	} else if (json_is_real(x)) {
		snprintf(buf, bufsz, "%.17g", json_real_value(x));
		*out = buf;
	} else if (json_is_boolean(x)) {
		*out = json_is_true(x) ? "true" : "false";
	} else {
		return -1;
	}
	return strlen(*out) > POLICY_MAX_STRING ? -1 : 0;
}

static int
bool_text(const char *s, int *b)
{
	if (ascii_casecmp(s, "true") == 0) {
		*b = 1;
	} else if (ascii_casecmp(s, "false") == 0) {
		*b = 0;
	} else {
		return -1;
	}
	return 0;
}

static int
convert_value(struct condition *c, struct cond_value *cv, const char *s)
{
	switch (c->base) {
	case CB_STR_EQ:
	case CB_STR_LIKE:
		return 0;
	case CB_NUM_EQ:
	case CB_NUM_LT:
	case CB_NUM_LE:
	case CB_NUM_GT:
	case CB_NUM_GE:
		return num_parse(s, &cv->num);
	case CB_DATE_EQ:
	case CB_DATE_LT:
	case CB_DATE_LE:
	case CB_DATE_GT:
	case CB_DATE_GE:
		return date_parse(s, &cv->date);
	case CB_BOOL:
	case CB_NULL:
		return bool_text(s, &cv->boolean);
	case CB_IP:
		return cidr_parse(s, &cv->ip);
	}
	return -1;
}

static const char *
value_kind(enum cond_base b)
{
	switch (b) {
	case CB_NUM_EQ:
	case CB_NUM_LT:
	case CB_NUM_LE:
	case CB_NUM_GT:
	case CB_NUM_GE:
		return "a number";
	case CB_DATE_EQ:
	case CB_DATE_LT:
	case CB_DATE_LE:
	case CB_DATE_GT:
	case CB_DATE_GE:
		return "a date (ISO 8601 or epoch seconds)";
	case CB_BOOL:
	case CB_NULL:
		return "true or false";
	case CB_IP:
		return "an IP address or CIDR block";
	default:
		return "a string";
	}
}

static int
parse_values(struct condition *c, const json_t *v, const char *path,
    const char *op, const char *key, struct perr *e)
{
	char buf[64];
	const char *s;
	size_t i, n;

	n = json_is_array(v) ? json_array_size(v) : 1;
	if (n == 0) {
		return fail(e, path, "%s: %s has no values", op, Q(key));
	}
	if (n > POLICY_MAX_VALUES) {
		return fail(e, path, "%s: %s has more than %d values", op,
		    Q(key), POLICY_MAX_VALUES);
	}
	if ((c->vals = calloc(n, sizeof(*c->vals))) == NULL) {
		return fail(e, path, "out of memory");
	}
	for (i = 0; i < n; i++) {
		const json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
		struct cond_value *cv = &c->vals[i];

		if (value_text(x, buf, sizeof(buf), &s) != 0) {
			return fail(e, path, "%s: %s values must be strings, "
			    "numbers or booleans", op, Q(key));
		}
		if (convert_value(c, cv, s) != 0) {
			return fail(e, path, "%s: %s value %s is not %s", op,
			    Q(key), Q(s), value_kind(c->base));
		}
		if ((cv->s = xstrdup(s)) == NULL) {
			return fail(e, path, "out of memory");
		}
		c->nvals++;
	}
	return 0;
}

static int
parse_condition(struct statement *st, const json_t *v, const char *spath,
    struct perr *e)
{
	char path[64];
	const char *op, *key;
	json_t *block, *x;
	size_t total = 0;

	snprintf(path, sizeof(path), "%s.Condition", spath);
	if (!json_is_object(v)) {
		return fail(e, path, "must be an object");
	}
	json_object_foreach((json_t *)v, op, block) {
		if (!json_is_object(block) || json_object_size(block) == 0) {
			return fail(e, path, "%s must be a non-empty object of "
			    "condition keys", Q(op));
		}
		total += json_object_size(block);
	}
	if (total > POLICY_MAX_VALUES) {
		return fail(e, path, "more than %d conditions",
		    POLICY_MAX_VALUES);
	}
	if (total == 0) {
		return 0;
	}
	if ((st->conds = calloc(total, sizeof(*st->conds))) == NULL) {
		return fail(e, path, "out of memory");
	}
	json_object_foreach((json_t *)v, op, block) {
		json_object_foreach(block, key, x) {
			struct condition *c = &st->conds[st->nconds];

			if (parse_operator(op, c) != 0) {
				return fail(e, path, "unknown operator %s",
				    Q(op));
			}
			if (parse_key(key, c) != 0) {
				st->nconds++;	/* free ctxkey */
				return fail(e, path, "%s: unknown condition "
				    "key %s", Q(op), Q(key));
			}
			st->nconds++;
			if (parse_values(c, x, path, op, key, e) != 0) {
				return -1;
			}
		}
	}
	return 0;
}

static const char *const statement_elems[] = {
	"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
	"Resource", "NotResource", "Condition",
};

/* Exactly one of a / b present; returns which (0 for a, 1 for b). */
static int
one_of(const json_t *obj, const char *a, const char *b, const char *path,
    struct perr *e, const json_t **v)
{
	const json_t *va = json_object_get(obj, a);
	const json_t *vb = json_object_get(obj, b);

	if (va != NULL && vb != NULL) {
		return fail(e, path, "%s and %s cannot both be given", a, b);
	}
	if (va == NULL && vb == NULL) {
		return fail(e, path, "missing %s", a);
	}
	*v = va != NULL ? va : vb;
	return va != NULL ? 0 : 1;
}

static int
parse_statement(struct statement *st, const json_t *obj, const char *path,
    struct perr *e)
{
	const json_t *v;
	const char *k, *eff;
	json_t *x;
	size_t i;
	int w;

	if (!json_is_object(obj)) {
		return fail(e, path, "must be an object");
	}
	json_object_foreach((json_t *)obj, k, x) {
		for (i = 0; i < sizeof(statement_elems) /
		    sizeof(statement_elems[0]); i++) {
			if (strcmp(k, statement_elems[i]) == 0) {
				break;
			}
		}
		if (i == sizeof(statement_elems) / sizeof(statement_elems[0])) {
			return fail(e, path, "unknown element %s", Q(k));
		}
	}
	if ((v = json_object_get(obj, "Sid")) != NULL && !json_is_string(v)) {
		return fail(e, path, "Sid must be a string");
	}
	if ((v = json_object_get(obj, "Effect")) == NULL) {
		return fail(e, path, "missing Effect");
	}
	eff = json_is_string(v) ? json_string_value(v) : "";
	if (strcmp(eff, "Allow") == 0) {
		st->deny = 0;
	} else if (strcmp(eff, "Deny") == 0) {
		st->deny = 1;
	} else {
		return fail(e, path, "Effect must be Allow or Deny");
	}
	if ((w = one_of(obj, "Principal", "NotPrincipal", path, e, &v)) < 0) {
		return -1;
	}
	st->not_principal = w;
	if (parse_principal(st, v, path, w ? "NotPrincipal" : "Principal",
	    e) != 0) {
		return -1;
	}
	if ((w = one_of(obj, "Action", "NotAction", path, e, &v)) < 0) {
		return -1;
	}
	st->not_action = w;
	if (parse_action(st, v, path, w ? "NotAction" : "Action", e) != 0) {
		return -1;
	}
	if ((w = one_of(obj, "Resource", "NotResource", path, e, &v)) < 0) {
		return -1;
	}
	st->not_resource = w;
	if (parse_resource(st, v, path, w ? "NotResource" : "Resource",
	    e) != 0) {
		return -1;
	}
	if ((v = json_object_get(obj, "Condition")) != NULL &&
	    parse_condition(st, v, path, e) != 0) {
		return -1;
	}
	return 0;
}

static int
check_sids(const json_t *stmts, size_t n, struct perr *e)
{
	const char *a, *b;
	char path[32];
	size_t i, j;

	for (i = 1; i < n; i++) {
		a = json_string_value(json_object_get(json_array_get(stmts, i),
		    "Sid"));
		if (a == NULL || *a == '\0') {
			continue;
		}
		for (j = 0; j < i; j++) {
			b = json_string_value(json_object_get(
			    json_array_get(stmts, j), "Sid"));
			if (b != NULL && strcmp(a, b) == 0) {
				snprintf(path, sizeof(path), "Statement[%zu]",
				    i);
				return fail(e, path, "duplicate Sid %s", Q(a));
			}
		}
	}
	return 0;
}

struct policy *
policy_compile(const char *doc, size_t len, char *errbuf, size_t errlen)
{
	struct perr e = { errbuf, errlen };
	struct policy *p = NULL, *ret = NULL;
	json_t *root = NULL, *stmts, *v;
	char msg[POLICY_ERR_MAX], path[32];
	const char *k, *s;
	size_t i, n;
	int err;

	if (errbuf != NULL && errlen > 0) {
		errbuf[0] = '\0';
	}
	if (doc == NULL) {
		fail(&e, NULL, "no policy document");
		goto out;
	}
	if (len > POLICY_MAX_DOC) {
		fail(&e, NULL, "policy document exceeds %d bytes",
		    POLICY_MAX_DOC);
		goto out;
	}
	/* kjson_read_bounded speaks of requests; say what a policy must be. */
	for (i = 0; i < len && strchr(" \t\r\n", doc[i]) != NULL; i++) {
		continue;
	}
	if (i < len && doc[i] != '{') {
		fail(&e, NULL, "policy document must be a JSON object");
		goto out;
	}
	msg[0] = '\0';
	if ((root = kjson_read_bounded(doc, len, POLICY_MAX_DOC, &err, msg,
	    sizeof(msg))) == NULL) {
		fail(&e, NULL, "%s", msg);
		goto out;
	}
	json_object_foreach(root, k, v) {
		if (strcmp(k, "Version") != 0 && strcmp(k, "Id") != 0 &&
		    strcmp(k, "Statement") != 0) {
			fail(&e, NULL, "unknown element %s", Q(k));
			goto out;
		}
	}
	if ((v = json_object_get(root, "Version")) != NULL) {
		s = json_is_string(v) ? json_string_value(v) : "";
		if (strcmp(s, "2012-10-17") != 0 &&
		    strcmp(s, "2008-10-17") != 0) {
			fail(&e, "Version", "unsupported version %s (use "
			    "2012-10-17)", Q(s));
			goto out;
		}
	}
	if ((v = json_object_get(root, "Id")) != NULL && !json_is_string(v)) {
		fail(&e, "Id", "must be a string");
		goto out;
	}
	if ((stmts = json_object_get(root, "Statement")) == NULL) {
		fail(&e, NULL, "missing Statement");
		goto out;
	}
	if (json_is_object(stmts)) {
		n = 1;
	} else if (json_is_array(stmts)) {
		if ((n = json_array_size(stmts)) == 0) {
			fail(&e, "Statement", "must not be empty");
			goto out;
		}
		if (n > POLICY_MAX_STATEMENTS) {
			fail(&e, "Statement", "more than %d statements",
			    POLICY_MAX_STATEMENTS);
			goto out;
		}
	} else {
		fail(&e, "Statement", "must be an object or a list");
		goto out;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->st = calloc(n, sizeof(*p->st))) == NULL) {
		fail(&e, NULL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		p->n++;
		if (json_is_object(stmts)) {
			snprintf(path, sizeof(path), "Statement");
			v = stmts;
		} else {
			snprintf(path, sizeof(path), "Statement[%zu]", i);
			v = json_array_get(stmts, i);
		}
		if (parse_statement(&p->st[i], v, path, &e) != 0) {
			goto out;
		}
	}
	if (json_is_array(stmts) && check_sids(stmts, n, &e) != 0) {
		goto out;
	}
	ret = p;
	p = NULL;	/* transferred */
 out:
	json_decref(root);
	policy_free(p);
	return ret;
}

static void
free_statement(struct statement *st)
{
	size_t i, j;

	for (i = 0; i < st->nprincipals; i++) {
		free(st->principals[i].name);
	}
	free(st->principals);
	for (i = 0; i < st->nresources; i++) {
		free(st->resources[i]);
	}
	free(st->resources);
	for (i = 0; i < st->nconds; i++) {
		for (j = 0; j < st->conds[i].nvals; j++) {
			free(st->conds[i].vals[j].s);
		}
		free(st->conds[i].vals);
		free(st->conds[i].ctxkey);
	}
	free(st->conds);
}

void
policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL) {
		return;
	}
	for (i = 0; i < p->n; i++) {
		free_statement(&p->st[i]);
	}
	free(p->st);
	free(p);
}

size_t
policy_statement_count(const struct policy *p)
{
	return p == NULL ? 0 : p->n;
}
