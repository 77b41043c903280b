/*
 * test_shorthand.c — kmsctl's AWS CLI shorthand parsers (shorthand.c):
 * the encryption context, tags, list options and grant constraints.
 * Valid forms give what the AWS CLI would send; every malformed form is
 * refused with EXIT_USAGE and a usage message naming the option; every
 * truncation of a valid input either parses or is refused that way (run
 * under ASan, nothing leaks and nothing is read past the end).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

/* Before cmocka.h, whose fail() macro would take kmsctl.h's fail(). */
#include "tools/kmsctl/kmsctl.h"
#include "tools/kmsctl/shorthand.h"

#include <cmocka.h>

static char last_msg[USAGE_MSG_MAX];
static int nmsgs;

static void
sink(const char *msg)
{
	snprintf(last_msg, sizeof(last_msg), "%s", msg);
	nmsgs++;
}

static void
reset(void)
{
	last_msg[0] = '\0';
	nmsgs = 0;
}

static int
setup(void **state)
{
	(void)state;
	usage_error_sink(sink);
	return 0;
}

/* An optval of words, as the option parser leaves it (into argv). */
static struct optval
words(char **w, int n)
{
	struct optval v;

	memset(&v, 0, sizeof(v));
	v.set = 1;
	v.list = w;
	v.nlist = n;
	v.val = n > 0 ? w[0] : NULL;
	return v;
}

/* The value of key k in a parsed context, or NULL. */
static const char *
ctx_get(const struct ctxarg *a, const char *k)
{
	size_t i;

	for (i = 0; i < a->ctx.npairs; i++) {
		if (strcmp(a->ctx.pairs[i].key, k) == 0) {
			return a->ctx.pairs[i].value;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------ context */

static void
test_context_shorthand(void **state)
{
	struct ctxarg a;

	(void)state;
	reset();
	assert_int_equal(parse_context("Dept=IT,Purpose=test", &a,
	    "encryption-context"), 0);
	assert_int_equal(a.ctx.npairs, 2);
	assert_string_equal(ctx_get(&a, "Dept"), "IT");
	assert_string_equal(ctx_get(&a, "Purpose"), "test");
	ctxarg_free(&a);
	/* A value may hold '='; an empty value is a value. */
	assert_int_equal(parse_context("k=a=b,e=", &a, "x"), 0);
	assert_string_equal(ctx_get(&a, "k"), "a=b");
	assert_string_equal(ctx_get(&a, "e"), "");
	ctxarg_free(&a);
	/* Leading blanks before JSON are skipped. */
	assert_int_equal(parse_context("  {\"a\":\"1\",\"b\":\"2\"}", &a,
	    "x"), 0);
	assert_int_equal(a.ctx.npairs, 2);
	assert_string_equal(ctx_get(&a, "b"), "2");
	ctxarg_free(&a);
	assert_int_equal(parse_context("{}", &a, "x"), 0);
	assert_int_equal(a.ctx.npairs, 0);
	ctxarg_free(&a);
	assert_int_equal(nmsgs, 0);
}

static void
test_context_malformed(void **state)
{
	static const struct {
		const char *in;
		const char *msg;
	} bad[] = {
		{ "", "expected key=value pairs" },
		{ ",", "expected key=value pairs" },
		{ "novalue", "expected key=value pairs separated by commas" },
		{ "=v", "expected key=value pairs separated by commas" },
		{ "a=1,=2", "expected key=value pairs separated by commas" },
		{ "a=1,b", "expected key=value pairs separated by commas" },
		{ "{", "invalid JSON" },
		{ "{\"a\":1}", "the value of \"a\" is not a string" },
		{ "{\"a\":{\"b\":\"c\"}}", "the value of \"a\" is not a "
		    "string" },
		{ "{\"a\":\"1\",\"a\":\"2\"}", "invalid JSON" },
		{ "{\"a\":\"1\"} trailing", "invalid JSON" },
	};
	struct ctxarg a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reset();
		assert_int_equal(parse_context(bad[i].in, &a,
		    "encryption-context"), EXIT_USAGE);
		assert_int_equal(nmsgs, 1);
		if (strstr(last_msg, bad[i].msg) == NULL ||
		    strstr(last_msg, "--encryption-context") == NULL) {
			fail_msg("\"%s\": message \"%s\"", bad[i].in,
			    last_msg);
		}
		/* Nothing is left to free. */
		assert_null(a.pairs);
		assert_null(a.j);
		assert_null(a.text);
	}
}

static void
test_context_file(void **state)
{
	char path[] = "/tmp/test_shorthand_XXXXXX", arg[64];
	struct ctxarg a;
	int fd;

	(void)state;
	reset();
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, "{\"f\":\"v\"}", 9), 9);
	close(fd);
	snprintf(arg, sizeof(arg), "file://%s", path);
	assert_int_equal(parse_context(arg, &a, "x"), 0);
	assert_string_equal(ctx_get(&a, "f"), "v");
	ctxarg_free(&a);
	unlink(path);
	/* A missing file is an error of its own, not an empty context. */
	assert_int_not_equal(parse_context(arg, &a, "x"), 0);
	assert_int_equal(nmsgs, 1);
}

/* ------------------------------------------------------------ tags */

static void
test_tags(void **state)
{
	char *w[] = { "TagKey=Dept,TagValue=IT", "TagValue=x,TagKey=Env",
	    "TagKey=Empty,TagValue=" };
	char *j[] = { "[{\"TagKey\":\"a\",\"TagValue\":\"1\"},"
	    "{\"TagKey\":\"b\",\"TagValue\":\"2\"}]" };
	struct optval v;
	struct tagarg a;

	(void)state;
	reset();
	v = words(w, 3);
	assert_int_equal(parse_tags(&v, &a), 0);
	assert_int_equal(a.ntags, 3);
	assert_string_equal(a.tags[0].key, "Dept");
	assert_string_equal(a.tags[0].value, "IT");
	assert_string_equal(a.tags[1].key, "Env");
	assert_string_equal(a.tags[1].value, "x");
	assert_string_equal(a.tags[2].value, "");
	tagarg_free(&a);
	v = words(j, 1);
	assert_int_equal(parse_tags(&v, &a), 0);
	assert_int_equal(a.ntags, 2);
	assert_string_equal(a.tags[1].key, "b");
	assert_string_equal(a.tags[1].value, "2");
	tagarg_free(&a);
	/* The option's words are not written to. */
	assert_string_equal(w[0], "TagKey=Dept,TagValue=IT");
	assert_int_equal(nmsgs, 0);
}

static void
test_tags_malformed(void **state)
{
	static const struct {
		const char *in;
		const char *msg;
	} bad[] = {
		{ "", "expected TagKey=key,TagValue=value" },
		{ "TagKey=a", "expected TagKey=key,TagValue=value" },
		{ "TagValue=a", "expected TagKey=key,TagValue=value" },
		{ "Key=a,Value=b", "expected TagKey=key,TagValue=value" },
		{ "tagkey=a,tagvalue=b", "expected TagKey=key,TagValue=value" },
		{ "[", "expected a JSON array" },
		{ "[1,2", "expected a JSON array" },
		{ "[{\"TagKey\":\"a\"}]", "each tag needs TagKey and "
		    "TagValue" },
		{ "[{\"TagKey\":\"a\",\"TagValue\":1}]", "each tag needs "
		    "TagKey and TagValue" },
		{ "[\"TagKey=a,TagValue=b\"]", "each tag needs TagKey and "
		    "TagValue" },
	};
	struct optval v;
	struct tagarg a;
	char *w[1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reset();
		w[0] = (char *)bad[i].in;
		v = words(w, 1);
		assert_int_equal(parse_tags(&v, &a), EXIT_USAGE);
		assert_int_equal(nmsgs, 1);
		if (strstr(last_msg, bad[i].msg) == NULL ||
		    strstr(last_msg, "--tags") == NULL) {
			fail_msg("\"%s\": message \"%s\"", bad[i].in,
			    last_msg);
		}
		assert_null(a.tags);
		assert_null(a.j);
	}
	/* One bad word among good ones. */
	reset();
	{
		char *m[] = { "TagKey=a,TagValue=b", "TagKey=c" };
		v = words(m, 2);
		assert_int_equal(parse_tags(&v, &a), EXIT_USAGE);
		assert_int_equal(nmsgs, 1);
	}
}

/* ------------------------------------------------------------ lists */

static void
test_list(void **state)
{
	char *w[] = { "a", "b,c", "d" };
	char *j[] = { "[\"x\",\"y,z\"]" };
	struct optval v;
	json_t *o = NULL;

	(void)state;
	reset();
	v = words(w, 3);
	assert_int_equal(list_json(&v, "operations", &o), 0);
	assert_int_equal(json_array_size(o), 4);
	assert_string_equal(json_string_value(json_array_get(o, 1)), "b");
	assert_string_equal(json_string_value(json_array_get(o, 2)), "c");
	json_decref(o);
	v = words(j, 1);
	assert_int_equal(list_json(&v, "operations", &o), 0);
	assert_int_equal(json_array_size(o), 2);
	assert_string_equal(json_string_value(json_array_get(o, 1)), "y,z");
	json_decref(o);
	/* The option's words are not written to. */
	assert_string_equal(w[1], "b,c");
	assert_int_equal(nmsgs, 0);
}

static void
test_list_malformed(void **state)
{
	static const char *const bad[] = { "[", "[\"a\"", "[1]",
	    "[\"a\",null]", "[[\"a\"]]", "[{}]" };
	struct optval v;
	json_t *o;
	char *w[1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reset();
		o = NULL;
		w[0] = (char *)bad[i];
		v = words(w, 1);
		assert_int_equal(list_json(&v, "operations", &o), EXIT_USAGE);
		assert_null(o);
		assert_int_equal(nmsgs, 1);
		if (strstr(last_msg, "argument --operations: expected a JSON "
		    "array of strings") == NULL) {
			fail_msg("\"%s\": message \"%s\"", bad[i], last_msg);
		}
	}
}

/* ------------------------------------------------------ constraints */

static void
test_constraints(void **state)
{
	json_t *o = NULL, *m;

	(void)state;
	reset();
	assert_int_equal(constraints_json("EncryptionContextSubset={Dept=IT,"
	    "Env=prod}", &o), 0);
	m = json_object_get(o, "EncryptionContextSubset");
	assert_true(json_is_object(m));
	assert_int_equal(json_object_size(m), 2);
	assert_string_equal(json_string_value(json_object_get(m, "Env")),
	    "prod");
	json_decref(o);
	assert_int_equal(constraints_json("EncryptionContextSubset={a=1},"
	    "EncryptionContextEquals={b=2=3}", &o), 0);
	assert_int_equal(json_object_size(o), 2);
	m = json_object_get(o, "EncryptionContextEquals");
	assert_string_equal(json_string_value(json_object_get(m, "b")),
	    "2=3");
	json_decref(o);
	assert_int_equal(constraints_json("EncryptionContextEquals={}", &o),
	    0);
	assert_int_equal(json_object_size(json_object_get(o,
	    "EncryptionContextEquals")), 0);
	json_decref(o);
	assert_int_equal(constraints_json(" {\"EncryptionContextSubset\":"
	    "{\"k\":\"v\"}}", &o), 0);
	m = json_object_get(o, "EncryptionContextSubset");
	assert_string_equal(json_string_value(json_object_get(m, "k")), "v");
	json_decref(o);
	assert_int_equal(nmsgs, 0);
}

static void
test_constraints_malformed(void **state)
{
	static const char *const bad[] = {
		"EncryptionContextSubset",
		"EncryptionContextSubset=",
		"EncryptionContextSubset=a=b",
		"EncryptionContextSubset={a=b",
		"EncryptionContextSubset={a}",
		"EncryptionContextSubset={=b}",
		"EncryptionContextSubset={a=b,c}",
		"EncryptionContextSubset={a=b}x",
		"EncryptionContextSubset={a=b};EncryptionContextEquals={c=d}",
		"={a=b}",
		"{a=b}",
		"AVeryLongConstraintNameThatDoesNotFitInTheNameBufferOfSixtyFour"
		    "Chars={a=b}",
	};
	json_t *o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		reset();
		o = NULL;
		assert_int_equal(constraints_json(bad[i], &o), EXIT_USAGE);
		assert_null(o);
		assert_int_equal(nmsgs, 1);
		if (strstr(last_msg, "argument --constraints:") == NULL) {
			fail_msg("\"%s\": message \"%s\"", bad[i], last_msg);
		}
	}
	reset();
	o = NULL;
	assert_int_equal(constraints_json("{\"EncryptionContextSubset\":",
	    &o), EXIT_USAGE);
	assert_non_null(strstr(last_msg, "argument --constraints: invalid "
	    "JSON"));
}

/* ------------------------------------------------------ truncations */

/* Every prefix of a valid input parses or is refused with one message. */
static void
test_truncations(void **state)
{
	static const char *const ctxs[] = { "Dept=IT,Purpose=test",
	    "{\"a\":\"1\",\"b\":\"2\"}" };
	static const char *const tags[] = { "TagKey=Dept,TagValue=IT",
	    "[{\"TagKey\":\"a\",\"TagValue\":\"1\"}]" };
	static const char *const cons[] = {
	    "EncryptionContextSubset={a=1,b=2},EncryptionContextEquals={c=3}",
	    "{\"EncryptionContextSubset\":{\"k\":\"v\"}}" };
	char buf[128], *w[1];
	struct ctxarg ca;
	struct tagarg ta;
	struct optval v;
	json_t *o;
	size_t i, n;
	int r;

	(void)state;
	for (i = 0; i < 2; i++) {
		for (n = 0; n <= strlen(ctxs[i]); n++) {
			reset();
			snprintf(buf, sizeof(buf), "%.*s", (int)n, ctxs[i]);
			r = parse_context(buf, &ca, "encryption-context");
			assert_true(r == 0 || (r == EXIT_USAGE && nmsgs == 1));
			if (r == 0) {
				ctxarg_free(&ca);
			}
		}
		for (n = 0; n <= strlen(tags[i]); n++) {
			reset();
			snprintf(buf, sizeof(buf), "%.*s", (int)n, tags[i]);
			w[0] = buf;
			v = words(w, 1);
			r = parse_tags(&v, &ta);
			assert_true(r == 0 || (r == EXIT_USAGE && nmsgs == 1));
			if (r == 0) {
				tagarg_free(&ta);
			}
		}
		for (n = 0; n <= strlen(cons[i]); n++) {
			reset();
			o = NULL;
			snprintf(buf, sizeof(buf), "%.*s", (int)n, cons[i]);
			r = constraints_json(buf, &o);
			assert_true(r == 0 || (r == EXIT_USAGE && nmsgs == 1));
			assert_true((r == 0) == (o != NULL));
			json_decref(o);
		}
	}
	/* The whole inputs parse. */
	reset();
	assert_int_equal(constraints_json(cons[0], &o), 0);
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_context_shorthand),
		cmocka_unit_test(test_context_malformed),
		cmocka_unit_test(test_context_file),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_tags_malformed),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_list_malformed),
		cmocka_unit_test(test_constraints),
		cmocka_unit_test(test_constraints_malformed),
		cmocka_unit_test(test_truncations),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
