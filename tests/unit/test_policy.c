/*
 * test_policy.c — key policies and grants, driven by the vectors in
 * tests/vectors/policy/, one JSON file per group (run from the repository
 * root).
 *
 * Each vector file is data: a policy document, a request, the expected
 * decision or the expected compile error.  The C tests around them cover
 * what data cannot: size limits, every prefix of a document, mutations,
 * the default policy, concurrent evaluation, and a printed speed figure.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "policy/policy.h"
#include "policy/policy_int.h"

#define VEC_DIR "tests/vectors/policy/"
#define KEY_ARN "arn:aws:kms:local:111122223333:key/" \
	"1234abcd-12ab-34cd-56ef-1234567890ab"
#define DEFAULT_TIME 1700000000	/* 2023-11-14T22:13:20Z */
#define MAXV 64

/* Storage behind one policy_request built from a vector. */
struct reqbuf {
	struct policy_request r;
	const char *groups[MAXV];
	kms_context_pair pairs[MAXV];
	const char *ops[MAXV];
};

static json_t *
load_vectors(const char *file)
{
	char path[256];
	json_error_t e;
	json_t *root;

	snprintf(path, sizeof(path), VEC_DIR "%s", file);
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
	if (root == NULL) {
		fail_msg("%s: line %d: %s", path, e.line, e.text);
	}
	return root;
}

static int
string_list(const json_t *v, const char **out, size_t *n)
{
	size_t i;

	if (!json_is_array(v) || json_array_size(v) > MAXV) {
		return -1;
	}
	for (i = 0; i < json_array_size(v); i++) {
		out[i] = json_string_value(json_array_get(v, i));
		if (out[i] == NULL) {
			return -1;
		}
	}
	*n = i;
	return 0;
}

static int
pair_list(const json_t *v, kms_context_pair *out, size_t *n)
{
	const char *k;
	json_t *x;
	size_t i = 0;

	if (!json_is_object(v) || json_object_size(v) > MAXV) {
		return -1;
	}
	json_object_foreach((json_t *)v, k, x) {
		if (!json_is_string(x)) {
			return -1;
		}
		out[i].key = k;
		out[i].value = json_string_value(x);
		i++;
	}
	*n = i;
	return 0;
}

/* A vector request into b; every field named, unknown fields refused. */
static int
build_request(const json_t *j, struct reqbuf *b)
{
	static const struct {
		const char *name;
		size_t off;
	} strs[] = {
		{ "action", offsetof(struct policy_request, action) },
		{ "resource", offsetof(struct policy_request, resource) },
		{ "principal", offsetof(struct policy_request, principal) },
		{ "user", offsetof(struct policy_request, user) },
		{ "cert", offsetof(struct policy_request, cert) },
		{ "access_key", offsetof(struct policy_request, access_key) },
		{ "alias", offsetof(struct policy_request, request_alias) },
		{ "grantee", offsetof(struct policy_request,
		    grantee_principal) },
		{ "retiring", offsetof(struct policy_request,
		    retiring_principal) },
		{ "key_spec", offsetof(struct policy_request, key_spec) },
		{ "key_usage", offsetof(struct policy_request, key_usage) },
		{ "key_origin", offsetof(struct policy_request, key_origin) },
		{ "algorithm", offsetof(struct policy_request,
		    encryption_algorithm) },
		{ "source_ip", offsetof(struct policy_request, source_ip) },
	};
	const char *k;
	json_t *v;
	size_t i;

	memset(b, 0, sizeof(*b));
	b->r.resource = KEY_ARN;
	b->r.uid = -1;
	b->r.current_time = DEFAULT_TIME;
	b->r.bypass_lockout = -1;
	json_object_foreach((json_t *)j, k, v) {
		for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
			if (strcmp(k, strs[i].name) == 0) {
				break;
			}
		}
		if (i < sizeof(strs) / sizeof(strs[0])) {
			if (!json_is_string(v) && !json_is_null(v)) {
				return -1;
			}
			*(const char **)((char *)&b->r + strs[i].off) =
			    json_string_value(v);
		} else if (strcmp(k, "uid") == 0) {
			b->r.uid = json_is_null(v) ? -1 : json_integer_value(v);
		} else if (strcmp(k, "time") == 0) {
			b->r.current_time = json_integer_value(v);
		} else if (strcmp(k, "bypass") == 0) {
			b->r.bypass_lockout = json_is_true(v) ? 1 : 0;
		} else if (strcmp(k, "groups") == 0) {
			if (string_list(v, b->groups, &b->r.ngroups) != 0) {
				return -1;
			}
			b->r.groups = b->groups;
		} else if (strcmp(k, "grant_operations") == 0) {
			if (string_list(v, b->ops,
			    &b->r.ngrant_operations) != 0) {
				return -1;
			}
			b->r.grant_operations = b->ops;
		} else if (strcmp(k, "context") == 0) {
			if (pair_list(v, b->pairs, &b->r.ncontext) != 0) {
				return -1;
			}
			b->r.context = b->pairs;
		} else {
			print_error("unknown request field %s\n", k);
			return -1;
		}
	}
	return b->r.action != NULL ? 0 : -1;
}

/* A valid document padded with trailing spaces to exactly n bytes. */
static char *
padded_document(size_t n)
{
	static const char base[] = "{\"Version\": \"2012-10-17\", "
	    "\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", "
	    "\"Action\": \"kms:Encrypt\", \"Resource\": \"*\"}]}";
	char *d;

	assert_true(n >= sizeof(base) - 1);
	d = malloc(n + 1);
	assert_non_null(d);
	memcpy(d, base, sizeof(base) - 1);
	memset(d + sizeof(base) - 1, ' ', n - (sizeof(base) - 1));
	d[n] = '\0';
	return d;
}

static char *
case_document(const json_t *c, size_t *len)
{
	const json_t *v;
	char *d;

	if ((v = json_object_get(c, "policy")) != NULL) {
		d = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	} else if ((v = json_object_get(c, "policy_text")) != NULL) {
		d = strdup(json_string_value(v));
	} else if ((v = json_object_get(c, "policy_oversize")) != NULL) {
		d = padded_document((size_t)json_integer_value(v));
	} else {
		return NULL;
	}
	*len = d != NULL ? strlen(d) : 0;
	return d;
}

static const char *
decision_name(enum policy_decision d)
{
	switch (d) {
	case POLICY_ALLOW:
		return "Allow";
	case POLICY_DENY_EXPLICIT:
		return "ExplicitDeny";
	case POLICY_DENY_IMPLICIT:
		return "ImplicitDeny";
	}
	return "?";
}

/* Run one policy case; returns 1 if it failed (and says why). */
static int
run_policy_case(const char *file, const json_t *c)
{
	const char *name = json_string_value(json_object_get(c, "name"));
	const char *want = json_string_value(json_object_get(c, "expect"));
	const char *werr = json_string_value(json_object_get(c, "error"));
	char err[POLICY_ERR_MAX];
	struct policy *p;
	struct reqbuf b;
	enum policy_decision d;
	size_t len;
	char *doc;
	int bad = 0;

	if (name == NULL || (want == NULL) == (werr == NULL) ||
	    (doc = case_document(c, &len)) == NULL) {
		print_error("%s: malformed vector %s\n", file,
		    name ? name : "?");
		return 1;
	}
	err[0] = '\0';
	p = policy_compile(doc, len, err, sizeof(err));
	if (werr != NULL) {
		if (p != NULL) {
			print_error("%s: \"%s\": compiled, expected error "
			    "\"%s\"\n", file, name, werr);
			bad = 1;
		} else if (strstr(err, werr) == NULL) {
			print_error("%s: \"%s\": error \"%s\" lacks \"%s\"\n",
			    file, name, err, werr);
			bad = 1;
		}
	} else if (p == NULL) {
		print_error("%s: \"%s\": did not compile: %s\n", file, name,
		    err);
		bad = 1;
	} else if (build_request(json_object_get(c, "request"), &b) != 0) {
		print_error("%s: \"%s\": bad request in vector\n", file, name);
		bad = 1;
	} else if (strcmp(decision_name(d = policy_evaluate(p, &b.r)),
	    want) != 0) {
		print_error("%s: \"%s\": got %s, expected %s\n", file, name,
		    decision_name(d), want);
		bad = 1;
	}
	policy_free(p);
	free(doc);
	return bad;
}

static size_t
run_policy_file(const char *file, size_t *ncases)
{
	json_t *root = load_vectors(file), *cases, *c;
	size_t i, failed = 0;

	cases = json_object_get(root, "cases");
	assert_true(json_array_size(cases) > 0);
	json_array_foreach(cases, i, c) {
		failed += (size_t)run_policy_case(file, c);
	}
	*ncases = json_array_size(cases);
	json_decref(root);
	return failed;
}

static void
test_policy_core_vectors(void **state)
{
	size_t n;

	(void)state;
	assert_int_equal(run_policy_file("core.json", &n), 0);
}

static void
test_policy_condition_vectors(void **state)
{
	size_t n;

	(void)state;
	assert_int_equal(run_policy_file("conditions.json", &n), 0);
}

static void
test_policy_malformed_documents_are_rejected_with_where(void **state)
{
	size_t n;

	(void)state;
	assert_int_equal(run_policy_file("malformed.json", &n), 0);
}

static void
test_policy_vectors_number_at_least_80(void **state)
{
	size_t a, b, c, total;

	(void)state;
	run_policy_file("core.json", &a);
	run_policy_file("conditions.json", &b);
	run_policy_file("malformed.json", &c);
	total = a + b + c;
	print_message("policy vectors: %zu (core %zu, conditions %zu, "
	    "malformed %zu)\n", total, a, b, c);
	assert_true(total >= 80);
}

/* A vector grant into g (pairs stored in eq/sub). */
static int
build_grant(const json_t *j, struct policy_grant *g, kms_context_pair *eq,
    kms_context_pair *sub)
{
	const json_t *v;
	size_t i;
	uint32_t bit;

	memset(g, 0, sizeof(*g));
	g->grantee = json_string_value(json_object_get(j, "grantee"));
	json_array_foreach(json_object_get(j, "operations"), i, v) {
		if ((bit = policy_grant_op_parse(json_string_value(v))) == 0) {
			return -1;
		}
		g->operations |= bit;
	}
	if ((v = json_object_get(j, "equals")) != NULL) {
		if (pair_list(v, eq, &g->n_equals) != 0) {
			return -1;
		}
		g->has_equals = 1;
		g->ec_equals = eq;
	}
	if ((v = json_object_get(j, "subset")) != NULL) {
		if (pair_list(v, sub, &g->n_subset) != 0) {
			return -1;
		}
		g->has_subset = 1;
		g->ec_subset = sub;
	}
	return g->grantee != NULL ? 0 : -1;
}

static void
test_policy_grant_vectors(void **state)
{
	kms_context_pair eq[2][MAXV], sub[2][MAXV];
	json_t *root = load_vectors("grants.json"), *c;
	struct policy_grant g, parent;
	struct reqbuf b;
	const char *name;
	size_t i, failed = 0, total = 0;
	int got, want;

	(void)state;
	json_array_foreach(json_object_get(root, "allows"), i, c) {
		name = json_string_value(json_object_get(c, "name"));
		want = json_is_true(json_object_get(c, "expect"));
		assert_int_equal(build_grant(json_object_get(c, "grant"), &g,
		    eq[0], sub[0]), 0);
		assert_int_equal(build_request(json_object_get(c, "request"),
		    &b), 0);
		if ((got = policy_grant_allows(&g, &b.r)) != want) {
			print_error("grants.json: \"%s\": got %d\n", name, got);
			failed++;
		}
		total++;
	}
	json_array_foreach(json_object_get(root, "narrowing"), i, c) {
		name = json_string_value(json_object_get(c, "name"));
		want = json_is_true(json_object_get(c, "expect"));
		assert_int_equal(build_grant(json_object_get(c, "child"), &g,
		    eq[0], sub[0]), 0);
		assert_int_equal(build_grant(json_object_get(c, "parent"),
		    &parent, eq[1], sub[1]), 0);
		if ((got = policy_grant_narrower(&g, &parent)) != want) {
			print_error("grants.json: \"%s\": got %d\n", name, got);
			failed++;
		}
		total++;
	}
	json_array_foreach(json_object_get(root, "operations"), i, c) {
		uint32_t bit;

		name = json_string_value(json_object_get(c, "name"));
		want = json_is_true(json_object_get(c, "valid"));
		bit = policy_grant_op_parse(name);
		if ((bit != 0) != want || (bit != 0 &&
		    strcmp(policy_grant_op_name(bit), name) != 0)) {
			print_error("grants.json: operation \"%s\"\n", name);
			failed++;
		}
		total++;
	}
	print_message("grant vectors: %zu\n", total);
	json_decref(root);
	assert_true(total >= 40);
	assert_int_equal(failed, 0);
}

static void
test_policy_takes_32_KB_refuses_one_byte_more(void **state)
{
	char err[POLICY_ERR_MAX];
	struct policy *p;
	char *d;

	(void)state;
	d = padded_document(POLICY_MAX_DOC);
	p = policy_compile(d, POLICY_MAX_DOC, err, sizeof(err));
	assert_non_null(p);
	policy_free(p);
	free(d);
	d = padded_document(POLICY_MAX_DOC + 1);
	assert_null(policy_compile(d, POLICY_MAX_DOC + 1, err, sizeof(err)));
	assert_non_null(strstr(err, "exceeds 32768 bytes"));
	free(d);
}

static void
test_policy_default_document_allows_its_principals(void **state)
{
	const char *principals[] = { "uid:1000", "group:kmsadmin",
	    "uid:1000" };
	const char *groups[] = { "kmsadmin" };
	struct policy_request r;
	char doc[2048], err[POLICY_ERR_MAX];
	struct policy *p;
	json_t *j;

	(void)state;
	assert_int_equal(policy_default_document(principals, 3, doc,
	    sizeof(doc)), 0);
	j = json_loads(doc, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "Id")),
	    "key-default-1");
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(json_object_get(j, "Statement"), 0), "Sid")),
	    POLICY_DEFAULT_SID);
	/* The creator named twice appears once. */
	assert_int_equal(json_array_size(json_object_get(json_object_get(
	    json_array_get(json_object_get(j, "Statement"), 0), "Principal"),
	    "KMS")), 2);
	json_decref(j);

	p = policy_compile(doc, strlen(doc), err, sizeof(err));
	assert_non_null(p);
	memset(&r, 0, sizeof(r));
	r.resource = KEY_ARN;
	r.bypass_lockout = -1;
	r.action = "PutKeyPolicy";
	r.uid = 1000;
	assert_int_equal(policy_evaluate(p, &r), POLICY_ALLOW);
	r.uid = 1001;
	assert_int_equal(policy_evaluate(p, &r), POLICY_DENY_IMPLICIT);
	r.groups = groups;
	r.ngroups = 1;
	r.action = "ScheduleKeyDeletion";
	assert_int_equal(policy_evaluate(p, &r), POLICY_ALLOW);
	policy_free(p);
}

static void
test_policy_default_document_refuses_bad_input(void **state)
{
	const char *bad[] = { "*" };
	const char *bad2[] = { "root" };
	const char *ok[] = { "uid:0" };
	char small[16], doc[1024];

	(void)state;
	assert_int_equal(policy_default_document(bad, 1, doc, sizeof(doc)),
	    KMS_EINVAL);
	assert_int_equal(policy_default_document(bad2, 1, doc, sizeof(doc)),
	    KMS_EINVAL);
	assert_int_equal(policy_default_document(ok, 0, doc, sizeof(doc)),
	    KMS_EINVAL);
	assert_int_equal(policy_default_document(ok, 1, small, sizeof(small)),
	    KMS_ELIMITEXCEEDED);
}

static const char rich_doc[] =
    "{\"Version\":\"2012-10-17\",\"Id\":\"k\",\"Statement\":["
    "{\"Sid\":\"a\",\"Effect\":\"Allow\",\"Principal\":{\"KMS\":"
    "[\"uid:1000\",\"group:ops\"]},\"Action\":[\"kms:Encrypt\","
    "\"kms:GenerateDataKey*\"],\"Resource\":\"*\",\"Condition\":{"
    "\"StringEquals\":{\"kms:EncryptionContext:app\":\"web\"},"
    "\"ForAllValues:StringLike\":{\"kms:EncryptionContextKeys\":"
    "[\"app\",\"tenant*\"]},\"DateLessThan\":{\"kms:CurrentTime\":"
    "\"2030-01-01T00:00:00Z\"},\"IpAddressIfExists\":{\"kms:SourceIp\":"
    "[\"10.0.0.0/8\",\"2001:db8::/32\"]},\"NumericGreaterThan\":"
    "{\"kms:CallerUid\":99}}},"
    "{\"Sid\":\"b\",\"Effect\":\"Deny\",\"NotPrincipal\":\"uid:0\","
    "\"NotAction\":\"kms:Describe*\",\"NotResource\":"
    "\"arn:aws:kms:local:111122223333:key/*\",\"Condition\":{\"Null\":"
    "{\"kms:RequestAlias\":\"false\"},\"Bool\":"
    "{\"kms:BypassPolicyLockoutSafetyCheck\":true}}}]}";

static void
test_policy_rejects_every_prefix_of_a_valid_document(void **state)
{
	char err[POLICY_ERR_MAX];
	struct policy *p;
	size_t n, len = strlen(rich_doc);

	(void)state;
	p = policy_compile(rich_doc, len, err, sizeof(err));
	assert_non_null(p);
	assert_int_equal(policy_statement_count(p), 2);
	policy_free(p);
	for (n = 0; n < len; n++) {
		err[0] = '\0';
		p = policy_compile(rich_doc, n, err, sizeof(err));
		if (p != NULL) {
			fail_msg("prefix of %zu bytes compiled", n);
		}
		assert_true(err[0] != '\0');
	}
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
test_policy_survives_mutations(void **state)
{
	const char *groups[] = { "ops" };
	kms_context_pair ctx[] = { { "app", "web" } };
	char buf[sizeof(rich_doc)], err[POLICY_ERR_MAX];
	struct policy_request r;
	struct policy *p;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	size_t i, j, len = strlen(rich_doc), compiled = 0;
	unsigned char *e;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.action = "Encrypt";
	r.resource = KEY_ARN;
	r.uid = 1000;
	r.groups = groups;
	r.ngroups = 1;
	r.context = ctx;
	r.ncontext = 1;
	r.source_ip = "10.1.1.1";
	r.bypass_lockout = -1;
	for (i = 0; i < 20000; i++) {
		memcpy(buf, rich_doc, len);
		for (j = 0; j < 1 + i % 3; j++) {
			buf[xorshift(&seed) % len] = (char)xorshift(&seed);
		}
		err[0] = '\0';
		p = policy_compile(buf, len, err, sizeof(err));
		if (p != NULL) {
			compiled++;
			(void)policy_evaluate(p, &r);
			policy_free(p);
			continue;
		}
		/* Messages are printable ASCII, whatever the input. */
		assert_true(err[0] != '\0');
		for (e = (unsigned char *)err; *e != '\0'; e++) {
			assert_true(*e >= 0x20 && *e < 0x7f);
		}
	}
	print_message("mutations: %zu of 20000 still compiled\n", compiled);
}

static void
test_policy_action_table_sorted_and_complete(void **state)
{
	static const char *const required[] = { "Encrypt", "Decrypt",
	    "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
	    "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
	    "GenerateDataKeyPairWithoutPlaintext", "GenerateRandom",
	    "CreateKey", "DescribeKey", "ListKeys", "EnableKey", "DisableKey",
	    "UpdateKeyDescription", "CreateGrant", "ListGrants",
	    "ListRetirableGrants", "RetireGrant", "RevokeGrant",
	    "CreateAlias", "UpdateAlias", "DeleteAlias", "ListAliases",
	    "PutKeyPolicy", "GetKeyPolicy", "ListKeyPolicies", "TagResource",
	    "UntagResource", "ListResourceTags", "ScheduleKeyDeletion",
	    "CancelKeyDeletion", "EnableKeyRotation", "DisableKeyRotation",
	    "GetKeyRotationStatus", "RotateKeyOnDemand", "ListKeyRotations",
	    "Sign", "Verify", "GenerateMac", "VerifyMac", "GetPublicKey",
	    "DeriveSharedSecret" };
	size_t i;

	(void)state;
	for (i = 1; i < action_count(); i++) {
		assert_true(ascii_casecmp(action_at(i - 1), action_at(i)) < 0);
	}
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		assert_string_equal(policy_action_name(required[i]),
		    required[i]);
	}
	assert_string_equal(policy_action_name("kms:reencryptfrom"),
	    "ReEncryptFrom");
	assert_null(policy_action_name("ReEncrypt"));
	assert_null(policy_action_name("kms:"));
	for (i = 0; i < 17; i++) {
		const char *n = policy_grant_op_name(1u << i);

		assert_non_null(n);
		assert_int_equal(policy_grant_op_parse(n), 1u << i);
		assert_true(action_grant_bit((size_t)action_index(n)) ==
		    1u << i);
	}
	assert_null(policy_grant_op_name(1u << 17));
}

static void
test_policy_matchers_handle_edges(void **state)
{
	char buf[40];
	int64_t t, back;
	size_t i;
	char *longs;

	(void)state;
	assert_true(glob_match("", "", 0));
	assert_false(glob_match("", "a", 0));
	assert_true(glob_match("**", "", 0));
	assert_true(glob_match("*a*b", "xxaxxb", 0));
	assert_false(glob_match("*a*b", "xxaxxbc", 0));
	assert_true(glob_match("a?c", "a\xc3\xa9" "c", 0));	/* one char */
	/* A pathological pattern finishes (no exponential backtracking). */
	longs = malloc(4097);
	assert_non_null(longs);
	memset(longs, 'a', 4096);
	longs[4096] = '\0';
	assert_false(glob_match("*a*a*a*a*a*a*a*a*b", longs, 0));
	free(longs);
	for (i = 0, t = -86400 * 800; i < 2000; i++, t += 86400 * 37 + 4321) {
		date_format(t, buf, sizeof(buf));
		assert_int_equal(date_parse(buf, &back), 0);
		assert_true(back == t);
	}
	assert_int_equal(date_parse("2024-02-29T12:00:00Z", &t), 0);
	assert_int_not_equal(date_parse("2023-13-01", &t), 0);
	assert_int_not_equal(date_parse("2023-01-01T25:00Z", &t), 0);
	assert_int_not_equal(date_parse("2023-01-01T10:00:00Zjunk", &t), 0);
}

struct thread_arg {
	const struct policy *p;
	int mismatches;
};

static void *
evaluate_many(void *v)
{
	struct thread_arg *a = v;
	kms_context_pair ok[] = { { "app", "web" } };
	kms_context_pair no[] = { { "app", "db" } };
	const char *groups[] = { "ops" };
	struct policy_request r;
	int i;

	memset(&r, 0, sizeof(r));
	r.action = "GenerateDataKey";
	r.resource = KEY_ARN;
	r.uid = 1000;
	r.groups = groups;
	r.ngroups = 1;
	r.current_time = DEFAULT_TIME;
	r.bypass_lockout = -1;
	for (i = 0; i < 50000; i++) {
		r.context = (i & 1) ? ok : no;
		r.ncontext = 1;
		if (policy_evaluate(a->p, &r) !=
		    ((i & 1) ? POLICY_ALLOW : POLICY_DENY_IMPLICIT)) {
			a->mismatches++;
		}
	}
	return NULL;
}

static void
test_policy_evaluates_concurrently(void **state)
{
	struct thread_arg args[4];
	pthread_t th[4];
	char err[POLICY_ERR_MAX];
	struct policy *p;
	int i;

	(void)state;
	p = policy_compile(rich_doc, strlen(rich_doc), err, sizeof(err));
	assert_non_null(p);
	for (i = 0; i < 4; i++) {
		args[i].p = p;
		args[i].mismatches = 0;
		assert_int_equal(pthread_create(&th[i], NULL, evaluate_many,
		    &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].mismatches, 0);
	}
	policy_free(p);
}

/* 20 statements with conditions; the caller matches only the last Allow. */
static char *
twenty_statement_document(void)
{
	char *d = malloc(POLICY_MAX_DOC);
	size_t off = 0;
	int i;

	assert_non_null(d);
	off += (size_t)snprintf(d + off, POLICY_MAX_DOC - off,
	    "{\"Version\":\"2012-10-17\",\"Statement\":[");
	for (i = 0; i < 19; i++) {
		off += (size_t)snprintf(d + off, POLICY_MAX_DOC - off,
		    "{\"Sid\":\"s%d\",\"Effect\":\"Allow\",\"Principal\":"
		    "{\"KMS\":[\"uid:%d\",\"group:g%d\"]},\"Action\":"
		    "[\"kms:Encrypt\",\"kms:Decrypt\","
		    "\"kms:GenerateDataKey*\"],"
		    "\"Resource\":\"*\",\"Condition\":{\"StringEquals\":"
		    "{\"kms:EncryptionContext:tenant\":\"t%d\"},"
		    "\"StringLikeIfExists\":{\"kms:RequestAlias\":"
		    "\"alias/app-*\"}}},", i, 2000 + i, i, i);
	}
	off += (size_t)snprintf(d + off, POLICY_MAX_DOC - off,
	    "{\"Sid\":\"deny\",\"Effect\":\"Deny\",\"Principal\":\"*\","
	    "\"Action\":\"kms:*\",\"Resource\":\"*\",\"Condition\":{"
	    "\"NotIpAddressIfExists\":{\"kms:SourceIp\":\"10.0.0.0/8\"},"
	    "\"DateGreaterThan\":{\"kms:CurrentTime\":\"2040-01-01\"}}}]}");
	assert_true(off < POLICY_MAX_DOC);
	return d;
}

/*
 * A 20-statement policy with conditions decides by the one statement that
 * matches, every time (the speed of this evaluation is kms-bench's to
 * measure, not a unit test's).
 */
static void
test_policy_twenty_statements_allow_only_through_the_matching_one(
    void **state)
{
	kms_context_pair ctx[] = { { "tenant", "t18" }, { "app", "x" } };
	kms_context_pair other[] = { { "tenant", "t17" } };
	struct policy_request r;
	char err[POLICY_ERR_MAX];
	struct policy *p;
	char *d;
	int i, allowed = 0, n = 1000;

	(void)state;
	d = twenty_statement_document();
	p = policy_compile(d, strlen(d), err, sizeof(err));
	if (p == NULL) {
		fail_msg("%s", err);
	}
	assert_int_equal(policy_statement_count(p), 20);
	memset(&r, 0, sizeof(r));
	r.action = "GenerateDataKey";
	r.resource = KEY_ARN;
	r.uid = 2018;
	r.context = ctx;
	r.ncontext = 2;
	r.request_alias = "alias/app-prod";
	r.current_time = DEFAULT_TIME;
	r.bypass_lockout = -1;
	for (i = 0; i < n; i++) {
		allowed += policy_evaluate(p, &r) == POLICY_ALLOW;
	}
	assert_int_equal(allowed, n);
	/* Another caller, another tenant, another alias, another action:
	 * no statement matches. */
	r.uid = 9999;
	assert_int_equal(policy_evaluate(p, &r), POLICY_DENY_IMPLICIT);
	r.uid = 2018;
	r.context = other;
	r.ncontext = 1;
	assert_int_equal(policy_evaluate(p, &r), POLICY_DENY_IMPLICIT);
	r.uid = 2017;
	assert_int_equal(policy_evaluate(p, &r), POLICY_ALLOW);
	r.request_alias = "alias/other";
	assert_int_equal(policy_evaluate(p, &r), POLICY_DENY_IMPLICIT);
	r.request_alias = "alias/app-prod";
	r.action = "CreateGrant";
	assert_int_equal(policy_evaluate(p, &r), POLICY_DENY_IMPLICIT);
	policy_free(p);
	free(d);
}

static void
test_policy_compile_errors_quote_names_safely(void **state)
{
	char doc[600], err[POLICY_ERR_MAX];
	char name[300];

	(void)state;
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	/* An escaped tab in an element name, then a long tail. */
	snprintf(doc, sizeof(doc), "{\"Statement\":[],\"xxx\\t%s\":1}",
	    name + 4);
	assert_null(policy_compile(doc, strlen(doc), err, sizeof(err)));
	assert_non_null(strstr(err, "unknown element xxx?xxx"));
	assert_non_null(strstr(err, "..."));
	assert_true(strlen(err) < 120);
	/* A NULL or tiny errbuf is fine. */
	assert_null(policy_compile(doc, strlen(doc), NULL, 0));
	assert_null(policy_compile(doc, strlen(doc), err, 1));
	assert_int_equal(err[0], '\0');
	assert_null(policy_compile(NULL, 0, err, sizeof(err)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_core_vectors),
		cmocka_unit_test(test_policy_condition_vectors),
		cmocka_unit_test(
		    test_policy_malformed_documents_are_rejected_with_where),
		cmocka_unit_test(test_policy_vectors_number_at_least_80),
		cmocka_unit_test(test_policy_grant_vectors),
		cmocka_unit_test(
		    test_policy_takes_32_KB_refuses_one_byte_more),
		cmocka_unit_test(
		    test_policy_default_document_allows_its_principals),
		cmocka_unit_test(
		    test_policy_default_document_refuses_bad_input),
		cmocka_unit_test(
		    test_policy_rejects_every_prefix_of_a_valid_document),
		cmocka_unit_test(test_policy_survives_mutations),
		cmocka_unit_test(test_policy_action_table_sorted_and_complete),
		cmocka_unit_test(test_policy_matchers_handle_edges),
		cmocka_unit_test(test_policy_evaluates_concurrently),
		cmocka_unit_test(
		    test_policy_twenty_statements_allow_only_through_the_matching_one),
		cmocka_unit_test(test_policy_compile_errors_quote_names_safely),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
