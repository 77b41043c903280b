/*
 * test_store.c — the SQLite metadata store (kmsd/store/): round
 * trips, errors, paging, durability across reopen, migrations, several
 * connections, cascading deletion, the interface's argument checks, and
 * a printed (not asserted) CreateKey rate.  Each test works in its own temp dir.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/err.h"
#include "kmsd/store/store.h"

struct fx {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/kms-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/kmsd.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char p[160];

	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static store *
open_store(const struct fx *f)
{
	char err[512] = "";
	store *s = NULL;
	int r = store_sqlite_open(f->path, &s, err, sizeof(err));

	if (r != 0) {
		fail_msg("store_sqlite_open: %d: %s", r, err);
	}
	assert_non_null(s);
	return s;
}

/* An id that sorts by its seed: big-endian seed, then filler. */
static void
seq_id(uint8_t id[16], uint32_t seed)
{
	int i;

	id[0] = (uint8_t)(seed >> 24);
	id[1] = (uint8_t)(seed >> 16);
	id[2] = (uint8_t)(seed >> 8);
	id[3] = (uint8_t)seed;
	for (i = 4; i < 16; i++) {
		id[i] = (uint8_t)(seed * 31 + (uint32_t)i);
	}
}

static struct store_key *
new_key(uint32_t seed)
{
	struct store_key *k = calloc(1, sizeof(*k));

	assert_non_null(k);
	seq_id(k->id, seed);
	k->creation_ms = 1700000000000LL + seed;
	k->state = KEY_ENABLED;
	snprintf(k->key_usage, sizeof(k->key_usage), "ENCRYPT_DECRYPT");
	snprintf(k->key_spec, sizeof(k->key_spec), "SYMMETRIC_DEFAULT");
	snprintf(k->origin, sizeof(k->origin), "AWS_KMS");
	snprintf(k->description, sizeof(k->description), "key %u", seed);
	k->current_version = 1;
	snprintf(k->creator, sizeof(k->creator), "uid:%u", 1000 + seed);
	k->row_version = 1;
	return k;
}

static void
make_version(struct store_version *v, const uint8_t id[16], uint32_t ver,
    size_t len)
{
	size_t i;

	memset(v, 0, sizeof(*v));
	memcpy(v->key_id, id, 16);
	v->version = ver;
	v->creation_ms = 1700000001000LL + ver;
	for (i = 0; i < len; i++) {
		v->material[i] = (uint8_t)(0xa5 ^ ver * 17 ^ i * 29 ^
		    id[i % 16]);
	}
	v->material_len = len;
	v->enc_reserved = 0;
}

/* Key with version 1 (40-byte wrapped blob) and no tags. */
static void
create_simple(store *s, uint32_t seed)
{
	struct store_key *k = new_key(seed);
	struct store_version v;

	make_version(&v, k->id, 1, 40);
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), 0);
	free(k);
}

/* create_simple for threads: the error is returned, not asserted. */
static void
create_simple_r(store *s, uint32_t seed, int *err)
{
	struct store_key *k = new_key(seed);
	struct store_version v;

	make_version(&v, k->id, 1, 40);
	*err = s->ops->create_key(s, k, &v, NULL, 0);
	free(k);
}

/* One integer from a direct SQLite connection, to look under the store. */
static int64_t
raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
	    SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_store_round_trips_every_key_field(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(7), *got = calloc(1, sizeof(*got));
	struct store_version v;
	size_t i;

	assert_non_null(got);
	k->state = KEY_PENDING_DELETION;
	k->deletion_ms = 1800000000123LL;
	k->current_version = 3;
	k->row_version = 42;
	snprintf(k->origin, sizeof(k->origin), "EXTERNAL");
	snprintf(k->creator, sizeof(k->creator),
	    "arn:aws:iam::111122223333:user/\xc3\xa9lodie");
	/* A maximal description: 8192 four-byte characters. */
	for (i = 0; i < STORE_DESC_MAX; i++) {
		memcpy(k->description + i * 4, "\xf0\x9f\x94\x91", 4);
	}
	k->description[STORE_DESC_MAX * 4] = '\0';
	make_version(&v, k->id, 1, 40);
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), 0);
	assert_int_equal(s->ops->get_key(s, k->id, got), 0);
	assert_memory_equal(got->id, k->id, 16);
	assert_int_equal(got->creation_ms, k->creation_ms);
	assert_int_equal(got->state, KEY_PENDING_DELETION);
	assert_string_equal(got->key_usage, "ENCRYPT_DECRYPT");
	assert_string_equal(got->key_spec, "SYMMETRIC_DEFAULT");
	assert_string_equal(got->origin, "EXTERNAL");
	assert_string_equal(got->description, k->description);
	assert_int_equal(got->current_version, 3);
	assert_int_equal(got->deletion_ms, 1800000000123LL);
	assert_string_equal(got->creator, k->creator);
	assert_int_equal(got->row_version, 42);
	free(got);
	free(k);
	s->ops->close(s);
}

static void
test_store_rejects_duplicate_key_id(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(1), *got = calloc(1, sizeof(*got));
	struct store_version v;

	assert_non_null(got);
	make_version(&v, k->id, 1, 40);
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), 0);
	snprintf(k->description, sizeof(k->description), "second");
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0),
	    KMS_EALREADYEXISTS);
	/* The first row is untouched and the store still works. */
	assert_int_equal(s->ops->get_key(s, k->id, got), 0);
	assert_string_equal(got->description, "key 1");
	assert_int_equal(s->ops->count_keys(s), 1);
	create_simple(s, 2);
	assert_int_equal(s->ops->count_keys(s), 2);
	free(got);
	free(k);
	s->ops->close(s);
}

static void
test_store_unknown_key_is_not_found(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(99), *got = calloc(1, sizeof(*got));
	struct store_version v, *vs = NULL;
	uint64_t rv = 12345;
	size_t n = 7;

	assert_non_null(got);
	create_simple(s, 1);
	assert_int_equal(s->ops->get_key(s, k->id, got), KMS_ENOTFOUND);
	assert_int_equal(s->ops->update_key(s, k, &rv), KMS_ENOTFOUND);
	assert_int_equal(rv, 12345);
	assert_int_equal(s->ops->delete_key(s, k->id), KMS_ENOTFOUND);
	assert_int_equal(s->ops->reserve_encryptions(s, k->id, 1, 10),
	    KMS_ENOTFOUND);
	make_version(&v, k->id, 2, 40);
	assert_int_equal(s->ops->add_version(s, &v), KMS_ENOTFOUND);
	/* Listing the versions or tags of an unknown key is just empty. */
	assert_int_equal(s->ops->get_versions(s, k->id, &vs, &n), 0);
	assert_int_equal(n, 0);
	free(vs);
	free(got);
	free(k);
	s->ops->close(s);
}

static void
test_store_update_bumps_row_version_and_persists(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(5), *got = calloc(1, sizeof(*got));
	struct store_version v;
	uint64_t rv = 0;

	assert_non_null(got);
	make_version(&v, k->id, 1, 40);
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), 0);
	k->state = KEY_DISABLED;
	snprintf(k->description, sizeof(k->description), "changed");
	k->current_version = 2;
	k->deletion_ms = 99;
	/* Immutable columns are not touched by update_key. */
	snprintf(k->key_usage, sizeof(k->key_usage), "SIGN_VERIFY");
	k->row_version = 1000;
	assert_int_equal(s->ops->update_key(s, k, &rv), 0);
	assert_int_equal(rv, 2);
	assert_int_equal(s->ops->update_key(s, k, &rv), 0);
	assert_int_equal(rv, 3);
	s->ops->close(s);

	s = open_store(f);
	assert_int_equal(s->ops->get_key(s, k->id, got), 0);
	assert_int_equal(got->state, KEY_DISABLED);
	assert_string_equal(got->description, "changed");
	assert_int_equal(got->current_version, 2);
	assert_int_equal(got->deletion_ms, 99);
	assert_string_equal(got->key_usage, "ENCRYPT_DECRYPT");
	assert_int_equal(got->row_version, 3);
	free(got);
	free(k);
	s->ops->close(s);
}

static void
test_store_versions_ascend_with_exact_material(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(3), *got = calloc(1, sizeof(*got));
	struct store_version v1, v2, v3, *vs = NULL;
	size_t n = 0;

	assert_non_null(got);
	make_version(&v1, k->id, 1, 40);
	assert_int_equal(s->ops->create_key(s, k, &v1, NULL, 0), 0);
	/* Resident: a 20-byte CKA_ID; the maximal 64-byte blob; an empty
	 * one is kept as empty, not NULL. */
	make_version(&v3, k->id, 3, STORE_MATERIAL_MAX);
	v3.enc_reserved = 1ULL << 40;
	make_version(&v2, k->id, 2, 20);
	v2.resident = 1;
	assert_int_equal(s->ops->add_version(s, &v3), 0);
	assert_int_equal(s->ops->add_version(s, &v2), 0);
	assert_int_equal(s->ops->add_version(s, &v2), KMS_EALREADYEXISTS);
	/* Each add_version is a mutation of the key. */
	assert_int_equal(s->ops->get_key(s, k->id, got), 0);
	assert_int_equal(got->row_version, 3);

	assert_int_equal(s->ops->get_versions(s, k->id, &vs, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(vs[0].version, 1);
	assert_int_equal(vs[1].version, 2);
	assert_int_equal(vs[2].version, 3);
	assert_int_equal(vs[0].material_len, 40);
	assert_memory_equal(vs[0].material, v1.material, 40);
	assert_int_equal(vs[0].resident, 0);
	assert_int_equal(vs[1].material_len, 20);
	assert_memory_equal(vs[1].material, v2.material, 20);
	assert_int_equal(vs[1].resident, 1);
	assert_int_equal(vs[1].creation_ms, v2.creation_ms);
	assert_int_equal(vs[2].material_len, STORE_MATERIAL_MAX);
	assert_memory_equal(vs[2].material, v3.material, STORE_MATERIAL_MAX);
	assert_int_equal(vs[2].enc_reserved, 1ULL << 40);
	assert_memory_equal(vs[2].key_id, k->id, 16);
	free(vs);
	free(got);
	free(k);
	s->ops->close(s);
}

static void
test_store_rejects_malformed_arguments(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(4);
	struct store_version v;
	struct store_tag t;

	make_version(&v, k->id, 1, 40);
	v.material_len = STORE_MATERIAL_MAX + 1;
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), KMS_EINVAL);
	make_version(&v, k->id, 0, 40);
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), KMS_EINVAL);
	make_version(&v, k->id, 1, 40);
	v.key_id[0] ^= 1;	/* version of another key */
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), KMS_EINVAL);
	make_version(&v, k->id, 1, 40);
	memset(k->key_usage, 'A', sizeof(k->key_usage));	/* no NUL */
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), KMS_EINVAL);
	snprintf(k->key_usage, sizeof(k->key_usage), "ENCRYPT_DECRYPT");
	k->state = 0;
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), KMS_EINVAL);
	k->state = KEY_ENABLED;
	memset(&t, 0, sizeof(t));	/* empty tag key */
	assert_int_equal(s->ops->create_key(s, k, &v, &t, 1), KMS_EINVAL);
	assert_int_equal(s->ops->reserve_encryptions(s, k->id, 1,
	    (uint64_t)INT64_MAX + 1), KMS_EINVAL);
	assert_int_equal(s->ops->count_keys(s), 0);
	free(k);
	s->ops->close(s);
}

static void
test_store_tags_are_stored_with_the_key(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(8), *got = calloc(1, sizeof(*got));
	struct store_version v, *vs = NULL;
	struct store_tag tags[3], *out = NULL;
	size_t n = 0;

	assert_non_null(got);
	memset(tags, 0, sizeof(tags));
	snprintf(tags[0].key, sizeof(tags[0].key), "team");
	snprintf(tags[0].value, sizeof(tags[0].value), "payments");
	snprintf(tags[1].key, sizeof(tags[1].key), "env");
	snprintf(tags[1].value, sizeof(tags[1].value), "%s", "");
	memset(tags[2].key, 'k', 128);
	memset(tags[2].value, 'v', 256);
	make_version(&v, k->id, 1, 40);
	assert_int_equal(s->ops->create_key(s, k, &v, tags, 3), 0);
	assert_int_equal(s->ops->get_tags(s, k->id, &out, &n), 0);
	assert_int_equal(n, 3);
	/* Ordered by tag key. */
	assert_string_equal(out[0].key, "env");
	assert_string_equal(out[0].value, "");
	assert_string_equal(out[1].key, tags[2].key);
	assert_string_equal(out[1].value, tags[2].value);
	assert_string_equal(out[2].key, "team");
	assert_string_equal(out[2].value, "payments");
	free(out);

	/* A duplicate tag fails the whole creation: no key, no version. */
	free(k);
	k = new_key(9);
	make_version(&v, k->id, 1, 40);
	snprintf(tags[1].key, sizeof(tags[1].key), "team");
	assert_int_equal(s->ops->create_key(s, k, &v, tags, 3), KMS_EINVAL);
	assert_int_equal(s->ops->get_key(s, k->id, got), KMS_ENOTFOUND);
	assert_int_equal(s->ops->get_versions(s, k->id, &vs, &n), 0);
	assert_int_equal(n, 0);
	free(vs);
	assert_int_equal(s->ops->get_tags(s, k->id, &out, &n), 0);
	assert_int_equal(n, 0);
	free(out);
	assert_int_equal(s->ops->count_keys(s), 1);
	free(got);
	free(k);
	s->ops->close(s);
}

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static void
test_store_list_keys_pages_in_id_order(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	uint8_t (*want)[16] = calloc(250, 16), (*page)[16] = calloc(251, 16);
	uint8_t (*seen)[16] = calloc(250, 16), mid[16];
	struct store_key *k;
	struct store_version v;
	size_t n, total = 0, i;
	int more, pages = 0;
	uint32_t seed;

	assert_non_null(want);
	assert_non_null(page);
	assert_non_null(seen);
	/* Seeds scrambled so creation order is not id order; byte 0 spans
	 * the full range so signed comparison would misorder. */
	for (i = 0; i < 250; i++) {
		seed = (uint32_t)((i * 7919) % 250) * 0x01010101u;
		seed ^= (uint32_t)i << 8;
		k = new_key(seed);
		make_version(&v, k->id, 1, 40);
		assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), 0);
		memcpy(want[i], k->id, 16);
		free(k);
	}
	qsort(want, 250, 16, cmp_id);
	for (;;) {
		assert_int_equal(s->ops->list_keys(s, total ? seen[total - 1] :
		    NULL, 100, page, &n, &more), 0);
		pages++;
		assert_true(total + n <= 250);
		memcpy(seen[total], page, n * 16);
		total += n;
		if (!more) {
			break;
		}
		assert_int_equal(n, 100);
	}
	assert_int_equal(pages, 3);
	assert_int_equal(total, 250);
	/* No duplicates, no gaps, in memcmp order. */
	assert_memory_equal(seen, want, 250 * 16);

	/* The more flag at the boundary. */
	assert_int_equal(s->ops->list_keys(s, NULL, 250, page, &n, &more), 0);
	assert_int_equal(n, 250);
	assert_false(more);
	assert_int_equal(s->ops->list_keys(s, NULL, 249, page, &n, &more), 0);
	assert_int_equal(n, 249);
	assert_true(more);
	assert_int_equal(s->ops->list_keys(s, want[249], 10, page, &n, &more),
	    0);
	assert_int_equal(n, 0);
	assert_false(more);
	/* "after" itself is excluded, and need not exist. */
	assert_int_equal(s->ops->list_keys(s, want[100], 1, page, &n, &more),
	    0);
	assert_int_equal(n, 1);
	assert_memory_equal(page[0], want[101], 16);
	assert_true(more);
	memcpy(mid, want[100], 16);
	assert_int_not_equal(mid[15], 0xff);
	mid[15]++;
	assert_true(memcmp(mid, want[101], 16) < 0);
	assert_int_equal(s->ops->list_keys(s, mid, 1, page, &n, &more), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(page[0], want[101], 16);
	free(want);
	free(page);
	free(seen);
	s->ops->close(s);
}

static void
test_store_reserve_encryptions_never_lowers(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_version *vs = NULL;
	uint8_t id[16];
	size_t n;

	create_simple(s, 11);
	seq_id(id, 11);
	assert_int_equal(s->ops->reserve_encryptions(s, id, 1, 1 << 20), 0);
	assert_int_equal(s->ops->reserve_encryptions(s, id, 1, 1000), 0);
	assert_int_equal(s->ops->reserve_encryptions(s, id, 1, 0), 0);
	assert_int_equal(s->ops->reserve_encryptions(s, id, 2, 1 << 21),
	    KMS_ENOTFOUND);
	s->ops->close(s);
	s = open_store(f);
	assert_int_equal(s->ops->get_versions(s, id, &vs, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(vs[0].enc_reserved, 1 << 20);
	free(vs);
	assert_int_equal(s->ops->reserve_encryptions(s, id, 1, 3ULL << 32), 0);
	assert_int_equal(s->ops->get_versions(s, id, &vs, &n), 0);
	assert_int_equal(vs[0].enc_reserved, 3ULL << 32);
	free(vs);
	s->ops->close(s);
}

static void
test_store_data_survives_reopen(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *got = calloc(1, sizeof(*got));
	struct store_version *vs = NULL;
	struct store_tag t, *tags = NULL;
	struct store_key *k = new_key(500);
	struct store_version v;
	uint32_t i;
	size_t n;
	uint8_t id[16];

	assert_non_null(got);
	for (i = 0; i < 20; i++) {
		create_simple(s, i);
	}
	memset(&t, 0, sizeof(t));
	snprintf(t.key, sizeof(t.key), "owner");
	snprintf(t.value, sizeof(t.value), "ops");
	make_version(&v, k->id, 1, 33);
	assert_int_equal(s->ops->create_key(s, k, &v, &t, 1), 0);
	s->ops->close(s);

	s = open_store(f);
	assert_int_equal(s->ops->count_keys(s), 21);
	for (i = 0; i < 20; i++) {
		seq_id(id, i);
		assert_int_equal(s->ops->get_key(s, id, got), 0);
	}
	assert_int_equal(s->ops->get_key(s, k->id, got), 0);
	assert_string_equal(got->description, "key 500");
	assert_int_equal(s->ops->get_versions(s, k->id, &vs, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(vs[0].material_len, 33);
	assert_memory_equal(vs[0].material, v.material, 33);
	assert_int_equal(s->ops->get_tags(s, k->id, &tags, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(tags[0].value, "ops");
	free(tags);
	free(vs);
	free(got);
	free(k);
	s->ops->close(s);
}

static void
test_store_migrations_are_idempotent_on_reopen(void **state)
{
	struct fx *f = *state;
	store *s;
	int i;

	for (i = 0; i < 3; i++) {
		s = open_store(f);
		if (i == 0) {
			create_simple(s, 1);
		}
		s->ops->close(s);
	}
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
	    "schema_migrations"), 6);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
	    "schema_migrations WHERE version IN (1, 2) AND applied_ms > 0"),
	    2);
	/* Migration 2's tables exist and are empty; the key survived. */
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM aliases"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM policies"),
	    0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM grants"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM keys"), 1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
	    "pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
}

static void
test_store_refuses_a_newer_schema(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	char err[512] = "";

	s->ops->close(s);
	(void)raw_int(f->path, "INSERT INTO schema_migrations VALUES (99, 1)");
	s = NULL;
	assert_int_not_equal(store_sqlite_open(f->path, &s, err, sizeof(err)),
	    0);
	assert_null(s);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "99"));
}

static void
test_store_second_connection_sees_writes(void **state)
{
	struct fx *f = *state;
	store *a = open_store(f), *b = open_store(f);
	struct store_key *k = new_key(21), *got = calloc(1, sizeof(*got));
	struct store_version v;
	uint64_t rv;

	assert_non_null(got);
	make_version(&v, k->id, 1, 40);
	assert_int_equal(a->ops->create_key(a, k, &v, NULL, 0), 0);
	assert_int_equal(b->ops->get_key(b, k->id, got), 0);
	assert_int_equal(got->row_version, 1);
	got->state = KEY_DISABLED;
	assert_int_equal(b->ops->update_key(b, got, &rv), 0);
	assert_int_equal(a->ops->get_key(a, k->id, got), 0);
	assert_int_equal(got->state, KEY_DISABLED);
	assert_int_equal(got->row_version, rv);
	assert_int_equal(b->ops->count_keys(b), 1);
	free(got);
	free(k);
	a->ops->close(a);
	b->ops->close(b);
}

/* Whether the file at path contains the bytes p[0..len). */
static int
file_contains(const char *path, const uint8_t *p, size_t len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	size_t n, i;
	long sz;
	int found = 0;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	sz = ftell(fp);
	assert_true(sz >= 0);
	rewind(fp);
	buf = malloc((size_t)sz + 1);
	assert_non_null(buf);
	n = fread(buf, 1, (size_t)sz, fp);
	fclose(fp);
	for (i = 0; i + len <= n && !found; i++) {
		found = memcmp(buf + i, p, len) == 0;
	}
	free(buf);
	return found;
}

static void
test_store_delete_cascades_versions_and_tags(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(31), *got = calloc(1, sizeof(*got));
	struct store_version v, v2, *vs = NULL;
	struct store_tag t, *tags = NULL;
	size_t n = 9;

	assert_non_null(got);
	memset(&t, 0, sizeof(t));
	snprintf(t.key, sizeof(t.key), "a");
	make_version(&v, k->id, 1, 64);
	make_version(&v2, k->id, 2, 64);
	assert_int_equal(s->ops->create_key(s, k, &v, &t, 1), 0);
	assert_int_equal(s->ops->add_version(s, &v2), 0);
	create_simple(s, 32);
	s->ops->close(s);	/* checkpoint: the blob is in the file */
	assert_true(file_contains(f->path, v2.material, 64));

	s = open_store(f);
	assert_int_equal(s->ops->delete_key(s, k->id), 0);
	assert_int_equal(s->ops->get_key(s, k->id, got), KMS_ENOTFOUND);
	assert_int_equal(s->ops->get_versions(s, k->id, &vs, &n), 0);
	assert_int_equal(n, 0);
	free(vs);
	assert_int_equal(s->ops->get_tags(s, k->id, &tags, &n), 0);
	assert_int_equal(n, 0);
	free(tags);
	assert_int_equal(s->ops->delete_key(s, k->id), KMS_ENOTFOUND);
	assert_int_equal(s->ops->count_keys(s), 1);
	s->ops->close(s);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM versions"),
	    1);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM tags"), 0);
	/* secure_delete: the deleted wrapped blobs are overwritten. */
	assert_false(file_contains(f->path, v.material, 64));
	assert_false(file_contains(f->path, v2.material, 64));
	free(got);
	free(k);
}

static void
test_store_open_fails_cleanly_on_a_non_database(void **state)
{
	struct fx *f = *state;
	char err[512] = "";
	store *s = NULL;
	FILE *fp = fopen(f->path, "w");
	int i;

	assert_non_null(fp);
	for (i = 0; i < 200; i++) {
		fputs("this is not an SQLite database, just text\n", fp);
	}
	fclose(fp);
	assert_int_not_equal(store_sqlite_open(f->path, &s, err, sizeof(err)),
	    0);
	assert_null(s);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "not a database"));

	/* A directory where the file should be. */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(mkdir(f->path, 0700), 0);
	err[0] = '\0';
	assert_int_not_equal(store_sqlite_open(f->path, &s, err, sizeof(err)),
	    0);
	assert_null(s);
	assert_non_null(strstr(err, f->path));
	assert_int_equal(rmdir(f->path), 0);
}

static void
test_store_new_database_is_private(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	char wal[160];
	struct stat sb;

	create_simple(s, 1);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	s->ops->close(s);
}

struct visit {
	store *s;
	size_t count;
	uint8_t last_id[16];
	uint32_t last_ver;
	int ordered;
	size_t stop_at;
};

static int
visit_version(const struct store_version *v, void *arg)
{
	struct visit *a = arg;
	struct store_version *vs = NULL;
	size_t n = 0;
	int c;

	if (a->count > 0) {
		c = memcmp(v->key_id, a->last_id, 16);
		if (c < 0 || (c == 0 && v->version <= a->last_ver)) {
			a->ordered = 0;
		}
	}
	memcpy(a->last_id, v->key_id, 16);
	a->last_ver = v->version;
	a->count++;
	/* The callback may use the same store, as the key cache does. */
	if (a->s->ops->get_versions(a->s, v->key_id, &vs, &n) != 0 ||
	    n < v->version) {
		a->ordered = 0;
	}
	free(vs);
	if (a->stop_at != 0 && a->count == a->stop_at) {
		return KMS_ENOTFOUND;
	}
	return 0;
}

static void
test_store_for_each_version_visits_all(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct visit a;
	struct store_version v;
	uint8_t id[16];
	uint32_t i;

	/* 150 keys with 2 versions each: 300 rows, several pages. */
	for (i = 0; i < 150; i++) {
		create_simple(s, i * 0x01000193u);
		seq_id(id, i * 0x01000193u);
		make_version(&v, id, 2, 20);
		v.resident = 1;
		assert_int_equal(s->ops->add_version(s, &v), 0);
	}
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.ordered = 1;
	assert_int_equal(s->ops->for_each_version(s, visit_version, &a), 0);
	assert_int_equal(a.count, 300);
	assert_true(a.ordered);

	/* A callback's error stops the walk and is returned. */
	memset(&a, 0, sizeof(a));
	a.s = s;
	a.ordered = 1;
	a.stop_at = 200;
	assert_int_equal(s->ops->for_each_version(s, visit_version, &a),
	    KMS_ENOTFOUND);
	assert_int_equal(a.count, 200);
	s->ops->close(s);
}

static void
test_store_count_keys(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	uint8_t id[16];
	uint32_t i;

	assert_int_equal(s->ops->count_keys(s), 0);
	for (i = 0; i < 37; i++) {
		create_simple(s, i);
	}
	assert_int_equal(s->ops->count_keys(s), 37);
	seq_id(id, 3);
	assert_int_equal(s->ops->delete_key(s, id), 0);
	assert_int_equal(s->ops->count_keys(s), 36);
	s->ops->close(s);
}

static void
test_store_busy_writer_times_out_as_dependency_timeout(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	struct store_key *k = new_key(1);
	struct store_version v;
	sqlite3 *db = NULL;
	double t0;

	make_version(&v, k->id, 1, 40);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	t0 = now_s();
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0),
	    KMS_EDEPENDENCYTIMEOUT);
	assert_true(now_s() - t0 >= 4.0);	/* it waited, then gave up */
	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	/* Once the lock is gone, the same handle works. */
	assert_int_equal(s->ops->create_key(s, k, &v, NULL, 0), 0);
	free(k);
	s->ops->close(s);
}

struct writer {
	const char *path;
	uint32_t base;
	int count;
	int err;
	/* The i-th write(s); sets w->err on a failure. */
	void (*step)(store *s, struct writer *w, int i);
};

static void
create_step(store *s, struct writer *w, int i)
{
	create_simple_r(s, w->base + (uint32_t)i, &w->err);
}

/* Opens its own connection (as a worker does) and makes count steps. */
static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	char err[512];
	store *s = NULL;
	int i, r;

	if ((r = store_sqlite_open(w->path, &s, err, sizeof(err))) != 0) {
		fprintf(stderr, "writer: %s\n", err);
		w->err = r;
		return NULL;
	}
	for (i = 0; i < w->count && w->err == 0; i++) {
		w->step(s, w, i);
	}
	s->ops->close(s);
	return NULL;
}

/* Four workers open a fresh database at once and write; returns the
 * seconds it took. */
static double
run_writers(const char *path, uint32_t base, int per,
    void (*step)(store *, struct writer *, int))
{
	pthread_t th[4];
	struct writer w[4];
	double t0 = now_s();
	int i;

	for (i = 0; i < 4; i++) {
		w[i].path = path;
		w[i].base = base + (uint32_t)i * 1000000u;
		w[i].count = per;
		w[i].err = 0;
		w[i].step = step;
		assert_int_equal(pthread_create(&th[i], NULL, writer_main,
		    &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(w[i].err, 0);
	}
	return now_s() - t0;
}

static void
test_store_concurrent_connections_open_and_write(void **state)
{
	struct fx *f = *state;
	store *s;

	(void)run_writers(f->path, 0x10000000u, 50, create_step);
	s = open_store(f);
	assert_int_equal(s->ops->count_keys(s), 200);
	s->ops->close(s);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
	    "schema_migrations"), 6);
}

/*
 * Every kind of write, and the failures of each, from several connections
 * at once: writers queue on one turn, and every path out of a write (a
 * commit, a rollback after a constraint, a key or alias not found) gives
 * the turn back.  A path that kept it would stall the other writers into
 * KMS_EDEPENDENCYTIMEOUT, and its own next write would trip an assertion.
 */
static void
mixed_step(store *s, struct writer *w, int i)
{
	char name[64];
	struct store_key *k = new_key(w->base + (uint32_t)i);
	struct store_version v;
	struct store_alias a;
	struct store_tag t;
	uint64_t rv;
	int r;

	make_version(&v, k->id, 1, 40);
	memset(&a, 0, sizeof(a));
	snprintf(a.name, sizeof(a.name), "alias/w%u-%d", w->base, i);
	snprintf(name, sizeof(name), "alias/none-%u-%d", w->base, i);
	memcpy(a.key_id, k->id, 16);
	memset(&t, 0, sizeof(t));
	snprintf(t.key, sizeof(t.key), "team");
	snprintf(t.value, sizeof(t.value), "w%u", w->base);
#define EXPECT(call, want) do { \
	if ((r = (call)) != (want)) { \
		fprintf(stderr, "writer %u, %d: %s = %d, want %d\n", \
		    w->base, i, #call, r, (want)); \
		w->err = r != 0 ? r : -1; \
	} \
} while (0)
	EXPECT(s->ops->create_key(s, k, &v, NULL, 0), 0);
	/* A constraint failure inside a transaction: rolled back. */
	EXPECT(s->ops->create_key(s, k, &v, NULL, 0), KMS_EALREADYEXISTS);
	k->state = KEY_DISABLED;
	EXPECT(s->ops->update_key(s, k, &rv), 0);
	EXPECT(s->ops->reserve_encryptions(s, k->id, 1, 1u << 20), 0);
	EXPECT(s->ops->reserve_encryptions(s, k->id, 9, 1), KMS_ENOTFOUND);
	EXPECT(s->ops->put_tags(s, k->id, &t, 1), 0);
	EXPECT(s->ops->create_alias(s, &a), 0);
	EXPECT(s->ops->update_alias(s, a.name, k->id, 1), 0);
	EXPECT(s->ops->update_alias(s, name, k->id, 1), KMS_ENOTFOUND);
	EXPECT(s->ops->delete_alias(s, a.name), 0);
	EXPECT(s->ops->delete_alias(s, name), KMS_ENOTFOUND);
	if (i % 2 == 0) {
		EXPECT(s->ops->delete_key(s, k->id), 0);
		EXPECT(s->ops->delete_key(s, k->id), KMS_ENOTFOUND);
		/* An update of a key that is gone. */
		EXPECT(s->ops->update_key(s, k, &rv), KMS_ENOTFOUND);
	}
#undef EXPECT
	free(k);
}

static void
test_store_every_write_and_its_failures_from_many_connections(void **state)
{
	struct fx *f = *state;
	store *s;
	char sql[96];

	(void)run_writers(f->path, 0x20000000u, 40, mixed_step);
	s = open_store(f);
	assert_int_equal(s->ops->count_keys(s), 4 * 20);	/* half deleted */
	s->ops->close(s);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM aliases"), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM keys WHERE "
	    "state = %d", KEY_DISABLED);
	assert_int_equal(raw_int(f->path, sql), 4 * 20);
}

/*
 * Writers checkpoint the WAL themselves once it passes 1,000 pages (after
 * letting the next writer in), so it stops growing: without checkpoints,
 * 3,000 keys leave a WAL of every page they wrote.
 */
static void
test_store_writers_checkpoint_the_wal(void **state)
{
	struct fx *f = *state;
	store *s = open_store(f);
	char wal[sizeof(f->path) + 8];
	struct stat st;
	int64_t page;
	uint32_t i;

	for (i = 0; i < 3000; i++) {
		create_simple(s, 0x30000000u + i);
	}
	page = raw_int(f->path, "PRAGMA page_size");
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &st), 0);
	/* A checkpoint once past 1,000 pages; the WAL restarts from its
	 * start after one completes, so it never holds much more. */
	assert_true(st.st_size <= 1300 * (page + 24) + 32);
	s->ops->close(s);
}

struct opener {
	const char *path;
	pthread_barrier_t *go;
	int err;
};

static void *
opener_main(void *arg)
{
	struct opener *o = arg;
	char err[512];
	store *s = NULL;

	pthread_barrier_wait(o->go);
	if ((o->err = store_sqlite_open(o->path, &s, err, sizeof(err))) !=
	    0) {
		fprintf(stderr, "opener: %s\n", err);
		return NULL;
	}
	if (s->ops->count_keys(s) != 0) {
		o->err = -1;
	}
	s->ops->close(s);
	return NULL;
}

/* Workers start together on a file that does not exist yet: each must
 * open (WAL switch and migrations race), none may fail. */
static void
test_store_simultaneous_opens_of_a_new_file_succeed(void **state)
{
	struct fx *f = *state;
	pthread_barrier_t go;
	pthread_t th[8];
	struct opener o[8];
	char p[160];
	int round, i;

	for (round = 0; round < 40; round++) {
		assert_int_equal(pthread_barrier_init(&go, NULL, 8), 0);
		for (i = 0; i < 8; i++) {
			o[i].path = f->path;
			o[i].go = &go;
			o[i].err = 0;
			assert_int_equal(pthread_create(&th[i], NULL,
			    opener_main, &o[i]), 0);
		}
		for (i = 0; i < 8; i++) {
			assert_int_equal(pthread_join(th[i], NULL), 0);
		}
		pthread_barrier_destroy(&go);
		for (i = 0; i < 8; i++) {
			assert_int_equal(o[i].err, 0);
		}
		assert_int_equal(raw_int(f->path, "SELECT count(*) FROM "
		    "schema_migrations"), 6);
		assert_int_equal(unlink(f->path), 0);
		snprintf(p, sizeof(p), "%s-wal", f->path);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", f->path);
		unlink(p);
	}
}

/* A back end that only counts the calls that reach it: what store.c
 * refuses must never get this far, and what it passes must. */
static int fake_calls;

static int
fake_get_key(store *s, const uint8_t id[16], struct store_key *out)
{
	(void)s;
	(void)id;
	(void)out;
	fake_calls++;
	return KMS_ENOTFOUND;
}

static int
fake_list_keys(store *s, const uint8_t *after, size_t max,
    uint8_t (*ids)[16], size_t *n, int *more)
{
	(void)s;
	(void)after;
	(void)max;
	(void)ids;
	*n = 0;
	*more = 0;
	fake_calls++;
	return 0;
}

static int
fake_claim_lease(store *s, const char *name, const char *holder,
    int64_t now, int64_t ttl_ms)
{
	(void)s;
	(void)name;
	(void)holder;
	(void)now;
	(void)ttl_ms;
	fake_calls++;
	return 0;
}

static int
fake_rewrap_versions(store *s, const struct store_version *v, size_t n,
    const struct store_domain_rotation *r)
{
	(void)s;
	(void)v;
	(void)n;
	(void)r;
	fake_calls++;
	return 0;
}

static void
test_store_interface_checks_arguments_before_the_back_end(void **state)
{
	static const struct store_ops fake_ops = {
		.get_key = fake_get_key,
		.list_keys = fake_list_keys,
		.claim_lease = fake_claim_lease,
		.rewrap_versions = fake_rewrap_versions,
	};
	struct store fake;
	struct store_key k;
	struct store_version v[2];
	struct store_domain_rotation dr;
	uint8_t id[16] = { 0 }, ids[4][16];
	size_t n;
	int more;

	(void)state;
	fake_calls = 0;
	store_init(&fake, &fake_ops);
	memset(v, 0, sizeof(v));
	memset(&dr, 0, sizeof(dr));
	/* Refused at the interface: the back end sees none of these. */
	assert_int_equal(fake.ops->get_key(&fake, NULL, &k), KMS_EINVAL);
	assert_int_equal(fake.ops->get_key(&fake, id, NULL), KMS_EINVAL);
	assert_int_equal(fake.ops->list_keys(&fake, NULL, STORE_LIST_MAX + 1,
	    ids, &n, &more), KMS_EINVAL);
	assert_int_equal(fake.ops->list_keys(&fake, NULL, 4, NULL, &n,
	    &more), KMS_EINVAL);
	assert_int_equal(fake.ops->claim_lease(&fake, "", "me", 0, 1000),
	    KMS_EINVAL);
	assert_int_equal(fake.ops->claim_lease(&fake, "lease", "me", 0, 0),
	    KMS_EINVAL);
	v[1].material_len = STORE_MATERIAL_MAX + 1;
	assert_int_equal(fake.ops->rewrap_versions(&fake, v, 2, &dr),
	    KMS_EINVAL);
	assert_int_equal(fake_calls, 0);
	/* Passed on, once each. */
	assert_int_equal(fake.ops->get_key(&fake, id, &k), KMS_ENOTFOUND);
	assert_int_equal(fake.ops->list_keys(&fake, NULL, 4, ids, &n, &more),
	    0);
	assert_int_equal(fake.ops->claim_lease(&fake, "lease", "me", 0, 1000),
	    0);
	assert_int_equal(fake.ops->rewrap_versions(&fake, v, 1, &dr), 0);
	assert_int_equal(fake_calls, 4);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_store_round_trips_every_key_field),
		T(test_store_rejects_duplicate_key_id),
		T(test_store_unknown_key_is_not_found),
		T(test_store_update_bumps_row_version_and_persists),
		T(test_store_versions_ascend_with_exact_material),
		T(test_store_rejects_malformed_arguments),
		T(test_store_tags_are_stored_with_the_key),
		T(test_store_list_keys_pages_in_id_order),
		T(test_store_reserve_encryptions_never_lowers),
		T(test_store_data_survives_reopen),
		T(test_store_migrations_are_idempotent_on_reopen),
		T(test_store_refuses_a_newer_schema),
		T(test_store_second_connection_sees_writes),
		T(test_store_delete_cascades_versions_and_tags),
		T(test_store_open_fails_cleanly_on_a_non_database),
		T(test_store_new_database_is_private),
		T(test_store_for_each_version_visits_all),
		T(test_store_count_keys),
		T(test_store_busy_writer_times_out_as_dependency_timeout),
		T(test_store_concurrent_connections_open_and_write),
		T(test_store_every_write_and_its_failures_from_many_connections),
		T(test_store_writers_checkpoint_the_wal),
		T(test_store_simultaneous_opens_of_a_new_file_succeed),
		T(test_store_interface_checks_arguments_before_the_back_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
