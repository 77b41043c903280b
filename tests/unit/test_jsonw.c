/*
 * test_jsonw.c — the compact reply writer agrees with jansson.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/json.h"

/* What we write must parse back to an equal value. */
static void
round_trips(json_t *j)
{
	char buf[4096];
	size_t n = kjson_write_compact(j, buf, sizeof(buf));
	json_t *back;

	assert_true(n > 0 && n < sizeof(buf));
	back = json_loadb(buf, n, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
	assert_non_null(back);
	assert_true(json_equal(j, back));
	json_decref(back);
	json_decref(j);
}

static void
test_jsonw_writes_every_type(void **state)
{
	round_trips(json_pack("{s:s, s:i, s:f, s:b, s:b, s:n, s:[i,s,{}], "
	    "s:{}}", "a", "text", "b", -42, "c", 1.5, "d", 1, "e", 0, "f",
	    "g", 1, "x", "h"));
	round_trips(json_real(1746000000.0));
	round_trips(json_integer(9007199254740993LL));
	round_trips(json_array());
}

static void
test_jsonw_escapes_strings(void **state)
{
	round_trips(json_pack("{s:s}", "q\"uote\\", "line\nbreak\ttab\r\x01"
	    "\x1f end"));
	round_trips(json_stringn("nul\0inside", 10));
	round_trips(json_string("UTF-8 \xc3\xa9\xe2\x82\xac"));
}

static void
test_jsonw_reports_the_size_it_needs(void **state)
{
	json_t *j = json_pack("{s:s}", "key", "a somewhat longer value");
	char small[8], big[128];
	size_t need = kjson_write_compact(j, small, sizeof(small));

	assert_true(need > sizeof(small));
	assert_int_equal(kjson_write_compact(j, big, sizeof(big)), need);
	assert_int_equal(need, json_dumpb(j, NULL, 0, JSON_COMPACT));
	json_decref(j);
}

static void
test_jsonw_refuses_too_deep(void **state)
{
	json_t *root = json_array(), *cur = root;
	char buf[256];
	int i;

	for (i = 0; i < JSON_MAX_DEPTH + 2; i++) {
		json_t *n = json_array();
		json_array_append_new(cur, n);
		cur = n;
	}
	assert_int_equal(kjson_write_compact(root, buf, sizeof(buf)), 0);
	json_decref(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jsonw_writes_every_type),
		cmocka_unit_test(test_jsonw_escapes_strings),
		cmocka_unit_test(test_jsonw_reports_the_size_it_needs),
		cmocka_unit_test(test_jsonw_refuses_too_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
