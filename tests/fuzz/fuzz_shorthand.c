/*
 * fuzz_shorthand.c — libFuzzer harness for kmsctl's AWS CLI shorthand
 * parsers (tools/kmsctl/shorthand.c).
 *
 * The first byte picks the parser (encryption context, tags, list,
 * constraints); the rest, cut into words at NUL bytes, is the option's
 * value as the option parser leaves it.  Each parser must either succeed
 * with a result that holds together (every context pair and tag has a key
 * and a value, a list is an array of strings, constraints are an object)
 * or fail with EXIT_USAGE and exactly one usage message; nothing may
 * leak.  Inputs naming a file (file://, fileb://) are skipped: the harness
 * reads no files.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tools/kmsctl/kmsctl.h"
#include "tools/kmsctl/shorthand.h"

#define FUZZ_WORDS_MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int nmsgs;

static void
sink(const char *msg)
{
	if (msg == NULL || msg[0] == '\0') {
		abort();
	}
	nmsgs++;
}

/* A failure must say why, once; success must say nothing. */
static void
check_status(int r)
{
	if (r == 0 && nmsgs != 0) {
		abort();
	}
	if (r == EXIT_USAGE && nmsgs != 1) {
		abort();
	}
	if (r != 0 && r != EXIT_USAGE && r != EXIT_OTHER) {
		abort();
	}
}

static void
run_context(const char *arg)
{
	struct ctxarg a;
	size_t i;
	int r;

	r = parse_context(arg, &a, "encryption-context");
	check_status(r);
	if (r != 0) {
		return;
	}
	for (i = 0; i < a.ctx.npairs; i++) {
		if (a.ctx.pairs[i].key == NULL ||
		    a.ctx.pairs[i].value == NULL) {
			abort();
		}
	}
	ctxarg_free(&a);
}

static void
run_tags(struct optval *v)
{
	struct tagarg a;
	size_t i;
	int r;

	r = parse_tags(v, &a);
	check_status(r);
	if (r != 0) {
		return;
	}
	for (i = 0; i < a.ntags; i++) {
		if (a.tags[i].key == NULL || a.tags[i].value == NULL) {
			abort();
		}
	}
	tagarg_free(&a);
}

static void
run_list(struct optval *v)
{
	json_t *o = NULL, *e;
	size_t i;
	int r;

	r = list_json(v, "operations", &o);
	check_status(r);
	if (r != 0) {
		if (o != NULL) {
			abort();
		}
		return;
	}
	if (!json_is_array(o)) {
		abort();
	}
	json_array_foreach(o, i, e) {
		if (!json_is_string(e)) {
			abort();
		}
	}
	json_decref(o);
}

static void
run_constraints(const char *arg)
{
	json_t *o = NULL;
	int r;

	r = constraints_json(arg, &o);
	check_status(r);
	if ((r == 0) != (o != NULL) || (o != NULL && !json_is_object(o))) {
		abort();
	}
	json_decref(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *words[FUZZ_WORDS_MAX], *p, *end;
	struct optval v;
	int n = 0, i;

	if (size < 1) {
		return 0;
	}
	usage_error_sink(sink);
	nmsgs = 0;
	if ((buf = malloc(size)) == NULL) {
		return 0;
	}
	/* The value and its words, each NUL-terminated. */
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	end = buf + size - 1;
	for (p = buf; n < FUZZ_WORDS_MAX; p += strlen(p) + 1) {
		words[n++] = p;
		if (p + strlen(p) >= end) {
			break;
		}
	}
	for (i = 0; i < n; i++) {
		if (strncmp(words[i], "file://", 7) == 0 ||
		    strncmp(words[i], "fileb://", 8) == 0) {
			free(buf);
			return 0;
		}
	}
	memset(&v, 0, sizeof(v));
	v.set = 1;
	v.val = words[0];
	v.list = words;
	v.nlist = n;
	switch (data[0] & 3) {
	case 0:
		run_context(words[0]);
		break;
	case 1:
		run_tags(&v);
		break;
	case 2:
		run_list(&v);
		break;
	default:
		run_constraints(words[0]);
		break;
	}
	free(buf);
	return 0;
}
