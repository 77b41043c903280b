/*
 * shorthand.c — the AWS CLI's shorthand syntaxes kmsctl accepts beside
 * JSON: the encryption context (k=v,k2=v2 or {"k":"v"}), tags
 * (TagKey=k,TagValue=v ... or a JSON array), list options (words, "a,b"
 * or a JSON array of strings) and grant constraints
 * (EncryptionContextSubset={k=v,...},EncryptionContextEquals={...} or
 * JSON).  Each parser is bounded by its input, prints the AWS CLI's usage
 * error line for malformed input and returns EXIT_USAGE; what it built is
 * freed before it returns an error.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/json.h"
#include "tools/kmsctl/kmsctl.h"
#include "tools/kmsctl/shorthand.h"

void
ctxarg_free(struct ctxarg *a)
{
	free(a->pairs);
	json_decref(a->j);
	free(a->text);
	memset(a, 0, sizeof(*a));
}

int
parse_context(const char *arg, struct ctxarg *a, const char *opt)
{
	const char *src;
	char *hold = NULL, *p, *save = NULL, *tok, msg[128];
	size_t n = 1, i = 0;
	int err, r;

	memset(a, 0, sizeof(*a));
	if ((r = load_text(arg, &src, &hold, opt)) != 0) {
		return r;
	}
	while (isspace((unsigned char)*src)) {
		src++;
	}
	if (*src == '{') {
		const char *k;
		json_t *v;
		a->j = kjson_read_bounded(src, strlen(src), JSON_MAX_REQUEST,
		    &err, msg, sizeof(msg));
		free(hold);
		if (a->j == NULL) {
			usage_error("argument --%s: invalid JSON: %s", opt,
			    msg);
			return EXIT_USAGE;
		}
		a->pairs = calloc(json_object_size(a->j) + 1,
		    sizeof(*a->pairs));
		if (a->pairs == NULL) {
			ctxarg_free(a);
			return EXIT_OTHER;
		}
		json_object_foreach(a->j, k, v) {
			if (!json_is_string(v)) {
				usage_error("argument --%s: the value of "
				    "\"%s\" is not a string", opt, k);
				ctxarg_free(a);
				return EXIT_USAGE;
			}
			a->pairs[i].key = k;
			a->pairs[i].value = json_string_value(v);
			i++;
		}
		a->ctx.pairs = a->pairs;
		a->ctx.npairs = i;
		return 0;
	}
	/* Shorthand: k=v,k2=v2 (a value may hold '='; use JSON for ','). */
	a->text = hold != NULL ? hold : strdup(src);
	if (a->text == NULL) {
		return EXIT_OTHER;
	}
	for (p = a->text; *p != '\0'; p++) {
		n += *p == ',';
	}
	if ((a->pairs = calloc(n, sizeof(*a->pairs))) == NULL) {
		ctxarg_free(a);
		return EXIT_OTHER;
	}
	for (tok = strtok_r(a->text, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (eq == NULL || eq == tok) {
			usage_error("argument --%s: expected key=value pairs "
			    "separated by commas, or a JSON object", opt);
			ctxarg_free(a);
			return EXIT_USAGE;
		}
		*eq = '\0';
		a->pairs[i].key = tok;
		a->pairs[i].value = eq + 1;
		i++;
	}
	if (i == 0) {
		usage_error("argument --%s: expected key=value pairs", opt);
		ctxarg_free(a);
		return EXIT_USAGE;
	}
	a->ctx.pairs = a->pairs;
	a->ctx.npairs = i;
	return 0;
}

void
tagarg_free(struct tagarg *a)
{
	size_t i;

	for (i = 0; i < a->ntexts; i++) {
		free(a->texts[i]);
	}
	free(a->texts);
	free(a->tags);
	json_decref(a->j);
	memset(a, 0, sizeof(*a));
}

/* One tag into a (sized for it), or the option refused with msg when a
 * half is missing (a freed). */
static int
tag_add(struct tagarg *a, const char *tk, const char *tv, const char *msg)
{
	if (tk == NULL || tv == NULL) {
		usage_error("argument --tags: %s", msg);
		tagarg_free(a);
		return EXIT_USAGE;
	}
	a->tags[a->ntags].key = tk;
	a->tags[a->ntags++].value = tv;
	return 0;
}

int
parse_tags(const struct optval *v, struct tagarg *a)
{
	char msg[128], *save = NULL, *tok;
	int err, i, r;

	memset(a, 0, sizeof(*a));
	if (v->nlist == 1 && v->list[0][0] == '[') {
		json_t *t;
		size_t k;
		a->j = kjson_read_bounded(v->list[0], strlen(v->list[0]),
		    JSON_MAX_REQUEST, &err, msg, sizeof(msg));
		/* The bounded reader wants an object at the top. */
		if (a->j == NULL) {
			json_error_t je;
			a->j = json_loads(v->list[0], JSON_REJECT_DUPLICATES,
			    &je);
		}
		if (!json_is_array(a->j) || (a->tags = calloc(
		    json_array_size(a->j) + 1, sizeof(*a->tags))) == NULL) {
			usage_error("argument --tags: expected a JSON array");
			tagarg_free(a);
			return EXIT_USAGE;
		}
		json_array_foreach(a->j, k, t) {
			const char *tk = json_string_value(json_object_get(t,
			    "TagKey"));
			const char *tv = json_string_value(json_object_get(t,
			    "TagValue"));
			if ((r = tag_add(a, tk, tv, "each tag needs TagKey "
			    "and TagValue")) != 0) {
				return r;
			}
		}
		return 0;
	}
	a->tags = calloc((size_t)v->nlist, sizeof(*a->tags));
	a->texts = calloc((size_t)v->nlist, sizeof(*a->texts));
	if (a->tags == NULL || a->texts == NULL) {
		tagarg_free(a);
		return EXIT_OTHER;
	}
	for (i = 0; i < v->nlist; i++) {
		const char *tk = NULL, *tv = NULL;
		if ((a->texts[i] = strdup(v->list[i])) == NULL) {
			tagarg_free(a);
			return EXIT_OTHER;
		}
		a->ntexts++;
		for (tok = strtok_r(a->texts[i], ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save)) {
			if (strncmp(tok, "TagKey=", 7) == 0) {
				tk = tok + 7;
			} else if (strncmp(tok, "TagValue=", 9) == 0) {
				tv = tok + 9;
			}
		}
		if ((r = tag_add(a, tk, tv, "expected "
		    "TagKey=key,TagValue=value")) != 0) {
			return r;
		}
	}
	return 0;
}

/* A list option: several words, "a,b" or a JSON array of strings. */
int
list_json(const struct optval *v, const char *opt, json_t **out)
{
	json_t *a = json_array();
	char *save = NULL, *tok, *copy;
	int i;

	if (v->nlist == 1 && v->list[0][0] == '[') {
		json_error_t je;
		size_t k;
		json_t *e;
		json_decref(a);
		a = json_loads(v->list[0], JSON_REJECT_DUPLICATES, &je);
		if (!json_is_array(a)) {
			json_decref(a);
			usage_error("argument --%s: expected a JSON array of "
			    "strings", opt);
			return EXIT_USAGE;
		}
		json_array_foreach(a, k, e) {
			if (!json_is_string(e)) {
				json_decref(a);
				usage_error("argument --%s: expected a JSON "
				    "array of strings", opt);
				return EXIT_USAGE;
			}
		}
		*out = a;
		return 0;
	}
	for (i = 0; i < v->nlist; i++) {
		if ((copy = strdup(v->list[i])) == NULL) {
			json_decref(a);
			return EXIT_OTHER;
		}
		for (tok = strtok_r(copy, ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save)) {
			json_array_append_new(a, json_string(tok));
		}
		free(copy);
	}
	*out = a;
	return 0;
}

/*
 * Grant constraints: JSON ({"EncryptionContextSubset": {"k": "v"}}) or the
 * AWS CLI shorthand EncryptionContextSubset={k=v,k2=v2},
 * EncryptionContextEquals={...}.
 */
int
constraints_json(const char *arg, json_t **out)
{
	const char *src, *p;
	char *hold = NULL, msg[128];
	json_t *o = NULL;
	int r, err;

	if ((r = load_text(arg, &src, &hold, "constraints")) != 0) {
		return r;
	}
	for (p = src; isspace((unsigned char)*p); p++) {
	}
	if (*p == '{') {
		o = kjson_read_bounded(p, strlen(p), JSON_MAX_REQUEST, &err,
		    msg, sizeof(msg));
		free(hold);
		if (o == NULL) {
			usage_error("argument --constraints: invalid JSON: %s",
			    msg);
			return EXIT_USAGE;
		}
		*out = o;
		return 0;
	}
	o = json_object();
	while (*p != '\0') {
		const char *name = p, *eq = strchr(p, '='), *end;
		json_t *m = json_object();
		char nbuf[64];
		if (eq == NULL || eq == name || eq[1] != '{' ||
		    (size_t)(eq - name) >= sizeof(nbuf) ||
		    (end = strchr(eq, '}')) == NULL) {
			json_decref(m);
			goto bad;
		}
		memcpy(nbuf, name, (size_t)(eq - name));
		nbuf[eq - name] = '\0';
		for (p = eq + 2; p < end;) {
			const char *pe = memchr(p, ',', (size_t)(end - p)), *kv;
			char *k, *v;
			if (pe == NULL) {
				pe = end;
			}
			if ((kv = memchr(p, '=', (size_t)(pe - p))) == NULL ||
			    kv == p) {
				json_decref(m);
				goto bad;
			}
			k = strndup(p, (size_t)(kv - p));
			v = strndup(kv + 1, (size_t)(pe - kv - 1));
			if (k != NULL && v != NULL) {
				json_object_set_new(m, k, json_string(v));
			}
			free(k);
			free(v);
			p = pe < end ? pe + 1 : end;
		}
		json_object_set_new(o, nbuf, m);
		p = end + 1;
		if (*p == ',') {
			p++;
		} else if (*p != '\0') {
			goto bad;
		}
	}
	free(hold);
	*out = o;
	return 0;
 bad:
	free(hold);
	json_decref(o);
	usage_error("argument --constraints: expected "
	    "EncryptionContextSubset={key=value,...} or "
	    "EncryptionContextEquals={key=value,...}, or a JSON object");
	return EXIT_USAGE;
}
