/*
 * test_hostile.c — the hostile-input table against a real kmsd.
 *
 * The table is data: every tests/vectors/hostile/ (each NAME.json) holds
 *   { "comment": "...", "cases": [ CASE, ... ] }
 * and a CASE is
 *   "name"     unique, what the input is
 *   "request"  a JSON object, sent as its compact text, or
 *   "raw"      the exact text sent (it need not be JSON), or
 *   "batch_of" {"count": N, "item": ITEM}: a Batch of N copies of ITEM
 *   "expect"   the AWS error name ("__type") the reply must carry, or
 *              "ok" for a success reply
 *   "message"  (optional) a fragment the error's message must contain
 *   "message_is" (optional) the whole message, exactly (placeholders
 *              expanded as in "request"): AWS's text where it is on
 *              record
 *   "items"    (optional) for a Batch: [{"expect", "message"}, ...], one
 *              per response, in order
 *   "each"     (optional) for a Batch: {"expect", "message"} for every
 *              response
 * Before sending, placeholders in the text are replaced (in "request",
 * inside its strings):
 *   ${KEY} ${KEY2} ${KEY_ARN} ${DISABLED} ${ALIAS} ${ALIAS_ARN}
 *                        an enabled key, a second one, a disabled key and
 *                        an alias of KEY, made before the first case
 *   ${BLOB}              base64 of a ciphertext of KEY (empty context);
 *   ${BLOB_FORMAT2} ${BLOB_VERSION0} ${BLOB_VERSION99} ${BLOB_TAMPERED}
 *   ${BLOB_TRUNCATED} ${BLOB_UNKNOWN_KEY}   that ciphertext damaged so
 *   ${rep:N:TEXT}        TEXT (up to the next '}') N times
 *   ${reph:N:HEX}        the bytes HEX N times (any byte, '}' and NUL too)
 *   ${hex:HEX}           the bytes HEX once (invalid UTF-8, NULs)
 *   ${members:N}         "m0":0,"m1":0,... N object members
 *   ${pad_to:N}          as many 'a' as make the whole text N bytes
 * Cases run in file order, files in name order, all on one connection;
 * after each, the daemon must still run and a second client must be
 * served.  KMS_TEST_FILTER=<substring> runs only the cases whose name
 * holds it.  Adding a row needs no code: an operation added later adds its
 * own rows (every field missing, of the wrong type, at and past its
 * limits) to the file of their kind.
 */
#include <errno.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/b64.h"
#include "kms.h"
#include "tests/testutil.h"

#define HOSTILE_GLOB "tests/vectors/hostile/*.json"
#define HOSTILE_MIN_CASES 150	/* the table must not shrink unnoticed */
#define PLACEHOLDERS_MAX 32

static struct tu_env env;
static kms_client *hostile, *bystander;

static struct {
	char name[32];
	char *value;
} ph[PLACEHOLDERS_MAX];
static size_t nph;

/* A growing byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1) {
			cap *= 2;
		}
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
set_ph(const char *name, const char *value)
{
	assert_true(nph < PLACEHOLDERS_MAX);
	snprintf(ph[nph].name, sizeof(ph[nph].name), "%s", name);
	ph[nph].value = strdup(value);
	assert_non_null(ph[nph].value);
	nph++;
}

static int
hex_bytes(const char *h, size_t n, struct buf *out)
{
	unsigned int v;
	char two[3] = { 0 };
	size_t i;

	if (n % 2 != 0) {
		return -1;
	}
	for (i = 0; i < n; i += 2) {
		two[0] = h[i];
		two[1] = h[i + 1];
		if (sscanf(two, "%2x", &v) != 1) {
			return -1;
		}
		buf_add(out, &(unsigned char){ (unsigned char)v }, 1);
	}
	return 0;
}

/*
 * Expand the placeholders of in[0..n) into out; -1 (with why) on a
 * malformed or unknown one.  The position of ${pad_to:N} is remembered
 * and filled once the rest is known.
 */
static int
expand(const char *in, size_t n, struct buf *out, const char **why)
{
	size_t i = 0, k, pad_at = (size_t)-1, pad_to = 0;

	while (i < n) {
		const char *s = in + i, *end, *arg;
		size_t len, alen;
		long cnt;

		if (n - i < 2 || s[0] != '$' || s[1] != '{') {
			buf_add(out, s, 1);
			i++;
			continue;
		}
		if ((end = memchr(s, '}', n - i)) == NULL) {
			*why = "unterminated placeholder";
			return -1;
		}
		len = (size_t)(end - s) - 2;	/* between "${" and "}" */
		i += len + 3;
		s += 2;
		if ((arg = memchr(s, ':', len)) == NULL) {
			for (k = 0; k < nph; k++) {
				if (strlen(ph[k].name) == len &&
				    memcmp(ph[k].name, s, len) == 0) {
					buf_add(out, ph[k].value,
					    strlen(ph[k].value));
					break;
				}
			}
			if (k == nph) {
				*why = "unknown placeholder";
				return -1;
			}
			continue;
		}
		arg++;
		alen = len - (size_t)(arg - s);
		cnt = strtol(arg, NULL, 10);
		if (strncmp(s, "hex:", 4) == 0) {
			if (hex_bytes(arg, alen, out) != 0) {
				*why = "bad ${hex:...}";
				return -1;
			}
		} else if (strncmp(s, "rep:", 4) == 0 ||
		    strncmp(s, "reph:", 5) == 0) {
			const char *text = memchr(arg, ':', alen);
			struct buf one = { 0 };
			size_t tlen;
			if (text == NULL || cnt < 0) {
				*why = "bad ${rep:N:TEXT}";
				return -1;
			}
			text++;
			tlen = alen - (size_t)(text - arg);
			if (s[3] == 'h') {
				if (hex_bytes(text, tlen, &one) != 0) {
					*why = "bad ${reph:N:HEX}";
					return -1;
				}
			} else {
				buf_add(&one, text, tlen);
			}
			for (; cnt > 0; cnt--) {
				buf_add(out, one.p ? one.p : "", one.len);
			}
			free(one.p);
		} else if (strncmp(s, "members:", 8) == 0) {
			char m[32];
			long j;
			for (j = 0; j < cnt; j++) {
				int w = snprintf(m, sizeof(m), "%s\"m%ld\":0",
				    j ? "," : "", j);
				buf_add(out, m, (size_t)w);
			}
		} else if (strncmp(s, "pad_to:", 7) == 0) {
			if (pad_at != (size_t)-1 || cnt <= 0) {
				*why = "bad or second ${pad_to:N}";
				return -1;
			}
			pad_at = out->len;
			pad_to = (size_t)cnt;
		} else {
			*why = "unknown placeholder";
			return -1;
		}
	}
	if (pad_at != (size_t)-1) {
		size_t fill, tail = out->len - pad_at;
		char *rest;
		if (out->len > pad_to) {
			*why = "${pad_to:N}: the text is already longer";
			return -1;
		}
		fill = pad_to - out->len;
		rest = malloc(tail + 1);
		assert_non_null(rest);
		memcpy(rest, out->p + pad_at, tail);
		out->len = pad_at;
		for (k = 0; k < fill; k++) {
			buf_add(out, "a", 1);
		}
		buf_add(out, rest, tail);
		free(rest);
	}
	if (out->p == NULL) {
		buf_add(out, "", 0);
	}
	return 0;
}

/* The bytes a case sends. */
static int
case_text(json_t *c, struct buf *out, const char **why)
{
	json_t *raw = json_object_get(c, "raw");
	json_t *req = json_object_get(c, "request");
	json_t *bo = json_object_get(c, "batch_of");
	char *s = NULL;
	int r;

	if (json_is_string(raw)) {
		return expand(json_string_value(raw), json_string_length(raw),
		    out, why);
	}
	if (json_is_object(bo)) {
		json_t *item = json_object_get(bo, "item");
		json_int_t n = json_integer_value(json_object_get(bo,
		    "count")), i;
		json_t *b = json_pack("{s:s, s:[]}", "Action", "Batch",
		    "Requests");
		json_t *arr = json_object_get(b, "Requests");
		for (i = 0; i < n; i++) {
			json_array_append(arr, item);
		}
		s = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(b);
	} else if (json_is_object(req)) {
		s = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
	} else {
		*why = "a case needs \"raw\", \"request\" or \"batch_of\"";
		return -1;
	}
	assert_non_null(s);
	r = expand(s, strlen(s), out, why);
	free(s);
	return r;
}

/* Does reply object o match what e ({"expect", "message"}) asks?  0, or
 * -1 with what was seen in got. */
static int
matches(json_t *o, const char *expect, const char *frag, char *got,
    size_t gotlen)
{
	json_t *type = json_object_get(o, "__type");
	const char *msg = json_string_value(json_object_get(o, "message"));

	if (!json_is_object(o)) {
		snprintf(got, gotlen, "a reply that is not an object");
		return -1;
	}
	if (strcmp(expect, "ok") == 0) {
		if (type == NULL) {
			return 0;
		}
		snprintf(got, gotlen, "%s: %.300s", json_string_value(type),
		    msg ? msg : "(no message)");
		return -1;
	}
	if (!json_is_string(type)) {
		snprintf(got, gotlen, "success");
		return -1;
	}
	if (strcmp(json_string_value(type), expect) != 0 ||
	    (frag != NULL && (msg == NULL || strstr(msg, frag) == NULL))) {
		snprintf(got, gotlen, "%s: %.300s", json_string_value(type),
		    msg ? msg : "(no message)");
		return -1;
	}
	return 0;
}

static int
check_items(json_t *c, json_t *reply, char *got, size_t gotlen)
{
	json_t *items = json_object_get(c, "items");
	json_t *each = json_object_get(c, "each");
	json_t *resps = json_object_get(reply, "Responses"), *e, *o;
	char sub[400];
	size_t i;

	if (items == NULL && each == NULL) {
		return 0;
	}
	if (!json_is_array(resps)) {
		snprintf(got, gotlen, "no Responses");
		return -1;
	}
	if (items != NULL && json_array_size(items) !=
	    json_array_size(resps)) {
		snprintf(got, gotlen, "%zu responses for %zu items",
		    json_array_size(resps), json_array_size(items));
		return -1;
	}
	json_array_foreach(resps, i, o) {
		e = items != NULL ? json_array_get(items, i) : each;
		if (matches(o, json_string_value(json_object_get(e, "expect")),
		    json_string_value(json_object_get(e, "message")), sub,
		    sizeof(sub)) != 0) {
			snprintf(got, gotlen, "Responses[%zu]: %s", i, sub);
			return -1;
		}
	}
	return 0;
}

/* Is the reply's message exactly want (placeholders expanded)?  0, or
 * -1 with what was seen in got. */
static int
message_is(json_t *c, const char *want, json_t *reply, char *got,
    size_t gotlen)
{
	const char *msg = json_string_value(json_object_get(reply, "message"));
	struct buf w = { 0 };
	const char *why = NULL;
	int r = -1;

	if (expand(want, strlen(want), &w, &why) != 0) {
		snprintf(got, gotlen, "message_is: %s", why);
	} else if (msg == NULL || strlen(msg) != w.len ||
	    memcmp(msg, w.p, w.len) != 0) {
		snprintf(got, gotlen, "message \"%.600s\", not \"%.*s\"",
		    msg ? msg : "(none)", (int)(w.len < 600 ? w.len : 600),
		    w.p ? w.p : "");
	} else {
		r = 0;
	}
	free(w.p);
	return r;
}

/* kmsd still runs, and a client other than the hostile one is served. */
static int
still_serving(char *got, size_t gotlen)
{
	kms_error_info ei;
	kms_secret s;
	int st;

	if (waitpid(env.kmsd, &st, WNOHANG) != 0) {
		snprintf(got, gotlen, "kmsd is gone");
		return -1;
	}
	if (kms_generate_random(bystander, 8, &s, &ei) != 0) {
		snprintf(got, gotlen, "the other client was not served: %s: "
		    "%s", ei.name, ei.message);
		return -1;
	}
	kms_secret_free(&s);
	return 0;
}

/* One case; 0 when kmsd answered it as the table says. */
static int
run_case(const char *file, json_t *c)
{
	const char *name = json_string_value(json_object_get(c, "name"));
	const char *expect = json_string_value(json_object_get(c, "expect"));
	const char *frag = json_string_value(json_object_get(c, "message"));
	const char *exact = json_string_value(json_object_get(c,
	    "message_is"));
	const char *why = NULL;
	struct buf text = { 0 };
	char got[1024], *reply = NULL;
	size_t rlen = 0;
	json_t *rj = NULL;
	kms_error_info ei;
	int r, bad = 0;

	got[0] = '\0';
	if (name == NULL || expect == NULL) {
		fprintf(stderr, "%s: a case without \"name\" or \"expect\"\n",
		    file);
		return -1;
	}
	if (case_text(c, &text, &why) != 0) {
		fprintf(stderr, "%s: %s: %s\n", file, name, why);
		free(text.p);
		return -1;
	}
	r = kms_call_json(hostile, text.p, text.len, &reply, &rlen, &ei);
	if (reply == NULL) {
		snprintf(got, sizeof(got), "no reply (%d %s: %s)", r, ei.name,
		    ei.message);
		bad = 1;
	} else if ((rj = json_loadb(reply, rlen, 0, NULL)) == NULL) {
		snprintf(got, sizeof(got), "a reply that is not JSON");
		bad = 1;
	} else if (matches(rj, expect, frag, got, sizeof(got)) != 0 ||
	    check_items(c, rj, got, sizeof(got)) != 0) {
		bad = 1;
	} else if (exact != NULL && message_is(c, exact, rj, got,
	    sizeof(got)) != 0) {
		bad = 1;
	}
	if (!bad && still_serving(got, sizeof(got)) != 0) {
		bad = 1;
	}
	if (bad) {
		fprintf(stderr, "%s: %s (%zu bytes): expected %s%s%s%s, got "
		    "%s\n", file, name, text.len, expect, frag ? " \"" : "",
		    frag ? frag : "", frag ? "\"" : "", got);
	}
	json_decref(rj);
	kms_free(reply);
	free(text.p);
	return bad ? -1 : 0;
}

/* A raw call that must succeed; returns the reply object. */
static json_t *
call_ok(const char *fmt, ...)
{
	char req[4096], *reply = NULL;
	kms_error_info ei;
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	if (kms_call_json(hostile, req, strlen(req), &reply, NULL, &ei) != 0) {
		fail_msg("%s: %s: %s", req, ei.name, ei.message);
	}
	j = json_loads(reply, 0, NULL);
	assert_non_null(j);
	kms_free(reply);
	return j;
}

static void
make_key(const char *ph_id, const char *ph_arn)
{
	json_t *j = call_ok("{\"Action\":\"CreateKey\","
	    "\"Description\":\"hostile-table\"}");
	json_t *m = json_object_get(j, "KeyMetadata");

	set_ph(ph_id, json_string_value(json_object_get(m, "KeyId")));
	if (ph_arn != NULL) {
		set_ph(ph_arn, json_string_value(json_object_get(m, "Arn")));
	}
	json_decref(j);
}

static const char *
ph_get(const char *name)
{
	size_t k;

	for (k = 0; k < nph; k++) {
		if (strcmp(ph[k].name, name) == 0) {
			return ph[k].value;
		}
	}
	fail_msg("no placeholder %s", name);
	return NULL;
}

/* BLOB, damaged in one way, as a placeholder. */
static void
set_blob(const char *name, const uint8_t *blob, size_t len, size_t at,
    int value, int xor)
{
	uint8_t b[512];
	char s[B64_ENCODED_LEN(sizeof(b)) + 1];

	assert_true(len <= sizeof(b));
	memcpy(b, blob, len);
	if (at < len) {
		b[at] = xor ? (uint8_t)(b[at] ^ value) : (uint8_t)value;
	}
	assert_int_equal(b64_encode(b, len, s, sizeof(s)), 0);
	set_ph(name, s);
}

static void
make_fixtures(void)
{
	json_t *j;
	const char *b64;
	uint8_t blob[512];
	size_t len;

	make_key("KEY", "KEY_ARN");
	make_key("KEY2", NULL);
	make_key("DISABLED", NULL);
	json_decref(call_ok("{\"Action\":\"DisableKey\",\"KeyId\":\"%s\"}",
	    ph_get("DISABLED")));
	json_decref(call_ok("{\"Action\":\"CreateAlias\",\"AliasName\":"
	    "\"alias/hostile\",\"TargetKeyId\":\"%s\"}", ph_get("KEY")));
	set_ph("ALIAS", "alias/hostile");
	set_ph("ALIAS_ARN", "arn:aws:kms:local:000000000000:alias/hostile");
	j = call_ok("{\"Action\":\"Encrypt\",\"KeyId\":\"%s\",\"Plaintext\":"
	    "\"aGVsbG8=\"}", ph_get("KEY"));
	b64 = json_string_value(json_object_get(j, "CiphertextBlob"));
	assert_non_null(b64);
	set_ph("BLOB", b64);
	assert_int_equal(b64_decode(b64, strlen(b64), blob, sizeof(blob),
	    &len), 0);
	json_decref(j);
	/* Format byte, key id 1..16, version 17..20, IV, ct, tag. */
	set_blob("BLOB_FORMAT2", blob, len, 0, 2, 0);
	set_blob("BLOB_VERSION0", blob, len, 20, 0, 0);
	set_blob("BLOB_VERSION99", blob, len, 20, 99, 0);
	set_blob("BLOB_TAMPERED", blob, len, len - 1, 1, 1);
	set_blob("BLOB_TRUNCATED", blob, len - 1, len, 0, 0);
	set_blob("BLOB_UNKNOWN_KEY", blob, len, 5, 0xff, 1);
}

static void
test_hostile_table(void **state)
{
	const char *filter = getenv("KMS_TEST_FILTER");
	glob_t g;
	size_t f, i, total = 0, failed = 0;

	assert_int_equal(tu_env_init(&env, NULL), 0);
	assert_int_equal(tu_kmsd_start(&env), 0);
	assert_int_equal(kms_client_open(&hostile, env.endpoint), 0);
	assert_int_equal(kms_client_open(&bystander, env.endpoint), 0);
	kms_client_set_timeout(hostile, 60000);
	kms_client_set_timeout(bystander, 60000);
	make_fixtures();

	assert_int_equal(glob(HOSTILE_GLOB, 0, NULL, &g), 0);
	for (f = 0; f < g.gl_pathc; f++) {
		json_error_t je;
		json_t *doc = json_load_file(g.gl_pathv[f],
		    JSON_REJECT_DUPLICATES, &je), *cases, *c;
		if (doc == NULL) {
			fail_msg("%s:%d: %s", g.gl_pathv[f], je.line, je.text);
		}
		cases = json_object_get(doc, "cases");
		assert_true(json_is_array(cases));
		json_array_foreach(cases, i, c) {
			const char *name = json_string_value(
			    json_object_get(c, "name"));
			total++;
			if (filter != NULL && (name == NULL ||
			    strstr(name, filter) == NULL)) {
				continue;
			}
			if (run_case(g.gl_pathv[f], c) != 0) {
				failed++;
			}
		}
		json_decref(doc);
	}
	globfree(&g);
	fprintf(stderr, "hostile table: %zu cases, %zu failed\n", total,
	    failed);
	assert_true(total >= HOSTILE_MIN_CASES);
	assert_int_equal(failed, 0);

	kms_client_close(hostile);
	kms_client_close(bystander);
	for (i = 0; i < nph; i++) {
		free(ph[i].value);
	}
	nph = 0;
	assert_int_equal(tu_env_destroy(&env), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
