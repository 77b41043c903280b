/*
 * test_paging.c — the List operations page as AWS KMS's do, on a real
 * kmsd over IPC: Limit 1-1000 (a page holds at most the operation's own
 * maximum), Truncated true and NextMarker set only while more remain,
 * markers opaque and good only for the list that issued them
 * (InvalidMarkerException otherwise), ListAliases filtered by KeyId.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kms.h"
#include "tests/testutil.h"

static struct tu_env env;
static kms_client *cli;

/* Send the request made from fmt; the reply object (caller decrefs).
 * want is the AWS error name expected, or "" for success. */
static json_t *
call(const char *want, const char *fmt, ...)
{
	char req[4096], *reply = NULL, got[KMS_ERROR_NAME_MAX];
	kms_error_info ei;
	size_t n = 0;
	va_list ap;
	json_t *j;
	int r;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	r = kms_call_json(cli, req, strlen(req), &reply, &n, &ei);
	snprintf(got, sizeof(got), "%s", r == 0 ? "" : ei.name);
	j = reply != NULL ? json_loadb(reply, n, 0, NULL) : NULL;
	kms_free(reply);
	if (strcmp(got, want) != 0) {
		fail_msg("%s: got %s %s, wanted %s", req, got[0] ? got :
		    "success", r == 0 ? "" : ei.message, want[0] ? want :
		    "success");
	}
	return j;
}

static char *
new_key(void)
{
	json_t *j = call("", "{\"Action\":\"CreateKey\"}");
	char *id = strdup(json_string_value(json_object_get(json_object_get(j,
	    "KeyMetadata"), "KeyId")));

	json_decref(j);
	return id;
}

/*
 * Page through action (extra request members in extra, e.g. ",\"KeyId\":
 * \"...\"") with Limit limit, collecting each item's member field into
 * all (a JSON array).  Checks every page: at most limit items, Truncated
 * true exactly when NextMarker is there, the last page not truncated.
 * Returns the number of pages.
 */
static int
page_all(const char *action, const char *extra, const char *items,
    const char *field, int limit, json_t *all)
{
	char marker[1100] = "";
	json_t *j, *it;
	size_t i;
	int pages = 0, truncated;

	do {
		if (marker[0] != '\0') {
			j = call("", "{\"Action\":\"%s\"%s,\"Limit\":%d,"
			    "\"Marker\":\"%s\"}", action, extra, limit, marker);
		} else {
			j = call("", "{\"Action\":\"%s\"%s,\"Limit\":%d}",
			    action, extra, limit);
		}
		pages++;
		assert_true(json_array_size(json_object_get(j, items)) <=
		    (size_t)limit);
		json_array_foreach(json_object_get(j, items), i, it) {
			json_array_append(all, json_object_get(it, field));
		}
		truncated = json_is_true(json_object_get(j, "Truncated"));
		assert_true(json_is_boolean(json_object_get(j, "Truncated")));
		assert_int_equal(truncated,
		    json_object_get(j, "NextMarker") != NULL);
		marker[0] = '\0';
		if (truncated) {
			/* A truncated page is never empty. */
			assert_true(json_array_size(json_object_get(j,
			    items)) > 0);
			snprintf(marker, sizeof(marker), "%s",
			    json_string_value(json_object_get(j,
			    "NextMarker")));
		}
		json_decref(j);
		assert_true(pages < 1000);
	} while (marker[0] != '\0');
	return pages;
}

/* Is every string of a in b, and both the same size with no repeats? */
static void
assert_same_set(json_t *a, json_t *b)
{
	json_t *v, *w;
	size_t i, k, seen;

	assert_int_equal(json_array_size(a), json_array_size(b));
	json_array_foreach(a, i, v) {
		seen = 0;
		json_array_foreach(b, k, w) {
			seen += json_equal(v, w);
		}
		assert_int_equal(seen, 1);
	}
}

static void
test_paging_list_keys_pages_every_key_once(void **state)
{
	json_t *all = json_array(), *whole, *paged = json_array(), *j, *it;
	size_t n, k;
	int i;

	for (i = 0; i < 5; i++) {
		free(new_key());
	}
	j = call("", "{\"Action\":\"ListKeys\"}");
	whole = json_array();
	json_array_foreach(json_object_get(j, "Keys"), k, it) {
		json_array_append(whole, json_object_get(it, "KeyId"));
	}
	assert_false(json_is_true(json_object_get(j, "Truncated")));
	assert_null(json_object_get(j, "NextMarker"));
	json_decref(j);
	n = json_array_size(whole);
	assert_true(n >= 5);
	/* Two at a time: ceil(n / 2) pages, every key once. */
	assert_int_equal(page_all("ListKeys", "", "Keys", "KeyId", 2, paged),
	    (int)((n + 1) / 2));
	assert_same_set(whole, paged);
	/* A page that holds exactly what is left is the last one. */
	assert_int_equal(page_all("ListKeys", "", "Keys", "KeyId", (int)n,
	    all), 1);
	assert_same_set(whole, all);
	json_decref(all);
	json_decref(whole);
	json_decref(paged);
}

static void
test_paging_list_aliases_by_key_and_markers_stay_in_their_list(void **state)
{
	char *a = new_key(), *b = new_key(), extra[128], marker[1100];
	json_t *of_a = json_array(), *want = json_array(), *j;
	int i;

	for (i = 0; i < 3; i++) {
		json_decref(call("", "{\"Action\":\"CreateAlias\",\"AliasName\":"
		    "\"alias/page-a%d\",\"TargetKeyId\":\"%s\"}", i, a));
		json_array_append_new(want, json_sprintf("alias/page-a%d", i));
	}
	for (i = 0; i < 2; i++) {
		json_decref(call("", "{\"Action\":\"CreateAlias\",\"AliasName\":"
		    "\"alias/page-b%d\",\"TargetKeyId\":\"%s\"}", i, b));
	}
	/* Only a's aliases, two pages of at most 2. */
	snprintf(extra, sizeof(extra), ",\"KeyId\":\"%s\"", a);
	assert_int_equal(page_all("ListAliases", extra, "Aliases",
	    "AliasName", 2, of_a), 2);
	assert_same_set(want, of_a);

	/* A ListAliases marker pages ListAliases only; a marker kmsd never
	 * issued (a raw alias name, AWS's markers being opaque) is
	 * refused. */
	j = call("", "{\"Action\":\"ListAliases\",\"KeyId\":\"%s\","
	    "\"Limit\":1}", a);
	snprintf(marker, sizeof(marker), "%s", json_string_value(
	    json_object_get(j, "NextMarker")));
	json_decref(j);
	json_decref(call("InvalidMarkerException", "{\"Action\":\"ListKeys\","
	    "\"Marker\":\"%s\"}", marker));
	json_decref(call("InvalidMarkerException", "{\"Action\":"
	    "\"ListAliases\",\"Marker\":\"alias/page-a0\"}"));
	json_decref(call("", "{\"Action\":\"ListAliases\",\"Marker\":"
	    "\"%s\"}", marker));
	/* Limit up to 1000 is AWS's; a page holds at most 100. */
	json_decref(call("", "{\"Action\":\"ListAliases\",\"Limit\":1000}"));
	json_decref(call("ValidationException", "{\"Action\":\"ListAliases\","
	    "\"Limit\":1001}"));
	json_decref(of_a);
	json_decref(want);
	free(a);
	free(b);
}

static void
test_paging_tags_and_grants_page_like_aws(void **state)
{
	char *k = new_key(), extra[128];
	json_t *got = json_array(), *want = json_array(), *j;
	int i;

	for (i = 0; i < 5; i++) {
		json_decref(call("", "{\"Action\":\"TagResource\",\"KeyId\":"
		    "\"%s\",\"Tags\":[{\"TagKey\":\"t%d\",\"TagValue\":\"v\"}]}",
		    k, i));
		json_array_append_new(want, json_sprintf("t%d", i));
	}
	snprintf(extra, sizeof(extra), ",\"KeyId\":\"%s\"", k);
	assert_int_equal(page_all("ListResourceTags", extra, "Tags", "TagKey",
	    2, got), 3);
	assert_same_set(want, got);
	/* Limit 1000 is accepted; a page holds at most 50. */
	j = call("", "{\"Action\":\"ListResourceTags\",\"KeyId\":\"%s\","
	    "\"Limit\":1000}", k);
	assert_int_equal(json_array_size(json_object_get(j, "Tags")), 5);
	assert_false(json_is_true(json_object_get(j, "Truncated")));
	json_decref(j);
	json_decref(call("InvalidMarkerException", "{\"Action\":"
	    "\"ListResourceTags\",\"KeyId\":\"%s\",\"Marker\":\"t1\"}", k));

	json_decref(got);
	json_decref(want);
	got = json_array();
	want = json_array();
	for (i = 0; i < 3; i++) {
		j = call("", "{\"Action\":\"CreateGrant\",\"KeyId\":\"%s\","
		    "\"GranteePrincipal\":\"uid:%d\",\"Operations\":"
		    "[\"Encrypt\"]}", k, 1000 + i);
		json_array_append(want, json_object_get(j, "GrantId"));
		json_decref(j);
	}
	assert_int_equal(page_all("ListGrants", extra, "Grants", "GrantId", 1,
	    got), 3);
	assert_same_set(want, got);
	json_decref(got);
	json_decref(want);
	free(k);
}

static int
setup(void **state)
{
	if (tu_env_init(&env, NULL) != 0 || tu_kmsd_start(&env) != 0 ||
	    kms_client_open(&cli, env.endpoint) != 0) {
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	kms_client_close(cli);
	return tu_env_destroy(&env) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paging_list_keys_pages_every_key_once),
		cmocka_unit_test(test_paging_list_aliases_by_key_and_markers_stay_in_their_list),
		cmocka_unit_test(test_paging_tags_and_grants_page_like_aws),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
