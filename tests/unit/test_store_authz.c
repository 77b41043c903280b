/*
 * test_store_authz.c — the store's tags, aliases, key policies and grants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "kmsd/store/store.h"

static char dir[64];
static store *st;
static const uint8_t k1[16] = { 1 }, k2[16] = { 2 };

static void
add_key(const uint8_t id[16])
{
	struct store_key *k = calloc(1, sizeof(*k));

	memcpy(k->id, id, 16);
	k->state = KEY_ENABLED;
	strcpy(k->key_usage, "ENCRYPT_DECRYPT");
	strcpy(k->key_spec, "SYMMETRIC_DEFAULT");
	strcpy(k->origin, "AWS_KMS");
	k->current_version = 1;
	k->row_version = 1;
	assert_int_equal(st->ops->create_key(st, k, NULL, NULL, 0), 0);
	free(k);
}

static uint64_t
row_version(const uint8_t id[16])
{
	struct store_key *k = calloc(1, sizeof(*k));
	uint64_t v;

	assert_int_equal(st->ops->get_key(st, id, k), 0);
	v = k->row_version;
	free(k);
	return v;
}

static int
setup(void **state)
{
	char path[128], err[256];

	snprintf(dir, sizeof(dir), "/tmp/kmsstore.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		return -1;
	}
	snprintf(path, sizeof(path), "%s/t.db", dir);
	if (store_sqlite_open(path, &st, err, sizeof(err)) != 0) {
		return -1;
	}
	add_key(k1);
	add_key(k2);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	st->ops->close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_store_tags_upsert_and_delete(void **state)
{
	struct store_tag t[2], *got = NULL;
	const char *del[] = { "a", "missing" };
	size_t n;

	memset(t, 0, sizeof(t));
	strcpy(t[0].key, "a");
	strcpy(t[0].value, "1");
	strcpy(t[1].key, "b");
	strcpy(t[1].value, "2");
	assert_int_equal(st->ops->put_tags(st, k1, t, 2), 0);
	strcpy(t[0].value, "one");
	assert_int_equal(st->ops->put_tags(st, k1, t, 1), 0);
	assert_int_equal(st->ops->get_tags(st, k1, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(got[0].value, "one");
	free(got);
	assert_int_equal(st->ops->delete_tags(st, k1, del, 2), 0);
	assert_int_equal(st->ops->get_tags(st, k1, &got, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].key, "b");
	free(got);
	assert_int_equal(st->ops->put_tags(st, (uint8_t[16]){ 9 }, t, 1),
	    KMS_ENOTFOUND);
}

static void
test_store_aliases_are_unique_and_page_by_name(void **state)
{
	struct store_alias a, out[3];
	size_t n, total = 0;
	int more, i;
	char after[300] = "";

	for (i = 0; i < 7; i++) {
		memset(&a, 0, sizeof(a));
		snprintf(a.name, sizeof(a.name), "alias/k%d", i);
		memcpy(a.key_id, i < 5 ? k1 : k2, 16);
		a.creation_ms = 1000 + i;
		assert_int_equal(st->ops->create_alias(st, &a), 0);
	}
	assert_int_equal(st->ops->create_alias(st, &a), KMS_EALREADYEXISTS);
	memcpy(a.key_id, (uint8_t[16]){ 9 }, 16);
	strcpy(a.name, "alias/orphan");
	assert_int_equal(st->ops->create_alias(st, &a), KMS_ENOTFOUND);
	do {
		assert_int_equal(st->ops->list_aliases(st, NULL,
		    after[0] ? after : NULL, 3, out, &n, &more), 0);
		total += n;
		if (n > 0) {
			strcpy(after, out[n - 1].name);
		}
	} while (more);
	assert_int_equal(total, 7);
	assert_int_equal(st->ops->list_aliases(st, k2, NULL, 3, out, &n,
	    &more), 0);
	assert_int_equal(n, 2);
	assert_false(more);
	assert_int_equal(st->ops->count_aliases(st, k1, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(st->ops->update_alias(st, "alias/k0", k2, 5), 0);
	assert_int_equal(st->ops->get_alias(st, "alias/k0", &a), 0);
	assert_memory_equal(a.key_id, k2, 16);
	assert_int_equal(st->ops->delete_alias(st, "alias/k0"), 0);
	assert_int_equal(st->ops->delete_alias(st, "alias/k0"), KMS_ENOTFOUND);
	assert_int_equal(st->ops->get_alias(st, "alias/k0", &a), KMS_ENOTFOUND);
	assert_int_equal(st->ops->update_alias(st, "alias/none", k2, 5),
	    KMS_ENOTFOUND);
}

static void
test_store_policy_versions_and_bumps_the_key(void **state)
{
	uint64_t v = 0, before = row_version(k1);
	char *doc = NULL;

	assert_int_equal(st->ops->get_policy(st, k1, &doc, &v), KMS_ENOTFOUND);
	assert_int_equal(st->ops->put_policy(st, k1, "{\"a\":1}", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(st->ops->put_policy(st, k1, "{\"a\":2}", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(st->ops->get_policy(st, k1, &doc, &v), 0);
	assert_string_equal(doc, "{\"a\":2}");
	assert_int_equal(v, 2);
	free(doc);
	assert_true(row_version(k1) > before);
}

static void
test_store_grants_by_key_token_and_retiring_principal(void **state)
{
	struct store_grant g, *arr = NULL, one;
	uint8_t h[32];
	size_t n;
	int more, i;

	for (i = 0; i < 3; i++) {
		memset(&g, 0, sizeof(g));
		snprintf(g.grant_id, sizeof(g.grant_id), "g%d", i);
		memcpy(g.key_id, k1, 16);
		strcpy(g.grantee, "user:bob");
		strcpy(g.retiring, i < 2 ? "user:carol" : "");
		strcpy(g.operations, "[\"Decrypt\"]");
		memset(g.token_hash, i + 1, 32);
		g.creation_ms = 10 + i;
		strcpy(g.issuer, "user:alice");
		assert_int_equal(st->ops->create_grant(st, &g), 0);
	}
	assert_int_equal(st->ops->create_grant(st, &g), KMS_EALREADYEXISTS);
	assert_int_equal(st->ops->get_grants(st, k1, &arr, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(arr[0].grant_id, "g0");
	assert_string_equal(arr[2].retiring, "");
	assert_string_equal(arr[1].constraints, "");
	free(arr);
	memset(h, 2, 32);
	assert_int_equal(st->ops->find_grant_by_token(st, h, &one), 0);
	assert_string_equal(one.grant_id, "g1");
	memset(h, 7, 32);
	assert_int_equal(st->ops->find_grant_by_token(st, h, &one),
	    KMS_ENOTFOUND);
	assert_int_equal(st->ops->list_retirable(st, "user:carol", NULL, 1,
	    &arr, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_true(more);
	free(arr);
	assert_int_equal(st->ops->delete_grant(st, k1, "g0"), 0);
	assert_int_equal(st->ops->delete_grant(st, k1, "g0"), KMS_ENOTFOUND);
	assert_int_equal(st->ops->delete_grant(st, k2, "g1"), KMS_ENOTFOUND);
	assert_int_equal(st->ops->get_grants(st, k1, &arr, &n), 0);
	assert_int_equal(n, 2);
	free(arr);
	/* Deleting the key takes its grants with it. */
	assert_int_equal(st->ops->delete_key(st, k1), 0);
	assert_int_equal(st->ops->get_grants(st, k1, &arr, &n), 0);
	assert_int_equal(n, 0);
	free(arr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_tags_upsert_and_delete),
		cmocka_unit_test(test_store_aliases_are_unique_and_page_by_name),
		cmocka_unit_test(test_store_policy_versions_and_bumps_the_key),
		cmocka_unit_test(test_store_grants_by_key_token_and_retiring_principal),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
