/*
 * kmsctl — the command line of kmsd, shaped like `aws kms`: the same
 * command and option names, the same inputs (a plain blob value is base64
 * as in AWS CLI v2, fileb://PATH is raw bytes, file://PATH is text), the
 * same JSON output (4-space indent, binary fields base64), --output text,
 * --query, and the same error line and exit statuses (254 for a service
 * error, 252 for a usage error, 255 for anything else).
 *
 * Key and crypto operations go through the typed API of libkmsclient; the
 * policy, grant, alias and tag commands are built as JSON from a table of
 * option → request field (cmd_json); `call` sends any raw JSON request.
 * Plaintexts are read into
 * and returned in locked memory and wiped; JSON strings are wiped on free
 * (secure_json_allocator).  There is no state beyond the parsed options.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "kms.h"
#include "common/err.h"
#include "common/b64.h"
#include "common/json.h"
#include "common/secmem.h"
#include "tools/kmsctl/kmsctl.h"
#include "tools/kmsctl/cmd_envelope.h"

/* ------------------------------------------------------------ usage */

static void
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\nusage: kmsctl [options] <command> [parameters]\n"
	    "To see help text, you can run:\n\n"
	    "  kmsctl help\n  kmsctl <command> help\n\n"
	    "kmsctl: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------ inputs */

/* Read a whole file (at most INPUT_MAX bytes) into secure memory. */
static int
read_file(const char *path, kms_secret *out, const char *opt)
{
	struct stat st;
	size_t cap, n = 0;
	uint8_t *buf;
	ssize_t got;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		usage_error("argument --%s: cannot read %s: %s", opt, path,
		    strerror(errno));
		return EXIT_USAGE;
	}
	cap = INPUT_MAX + 1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uintmax_t)st.st_size < cap) {
		cap = (size_t)st.st_size + 1;
	}
	if ((buf = secure_alloc(cap)) == NULL) {
		close(fd);
		fprintf(stderr, "kmsctl: out of locked memory\n");
		return EXIT_OTHER;
	}
	while (n < cap && (got = read(fd, buf + n, cap - n)) != 0) {
		if (got < 0) {
			if (errno == EINTR) {
				continue;
			}
			usage_error("argument --%s: cannot read %s: %s", opt,
			    path, strerror(errno));
			secure_free(buf, cap);
			close(fd);
			return EXIT_USAGE;
		}
		n += (size_t)got;
	}
	close(fd);
	if (n > INPUT_MAX) {
		usage_error("argument --%s: %s is larger than %d bytes", opt,
		    path, INPUT_MAX);
		secure_free(buf, cap);
		return EXIT_USAGE;
	}
	buf[n] = '\0';		/* text users may rely on it */
	out->data = buf;
	out->len = n;
	return 0;
}

/* Free what read_file or load_blob produced (wipes). */
static void
input_free(kms_secret *s)
{
	kms_secret_free(s);
}

static int
decode_b64(const char *text, size_t len, kms_secret *out, const char *opt)
{
	size_t max = B64_DECODED_MAX(len), n = 0;
	uint8_t *buf = NULL;

	if (max > 0 && (buf = secure_alloc(max)) == NULL) {
		fprintf(stderr, "kmsctl: out of locked memory\n");
		return EXIT_OTHER;
	}
	if (b64_decode(text, len, buf, max, &n) != 0) {
		secure_free(buf, max);
		usage_error("argument --%s: Invalid base64 (a plain value is "
		    "base64, as in AWS CLI v2; use fileb://PATH for raw bytes)",
		    opt);
		return EXIT_USAGE;
	}
	out->data = buf;
	out->len = n;
	return 0;
}

/* A blob parameter as AWS CLI v2 reads it. */
int
load_blob(const char *arg, kms_secret *out, const char *opt)
{
	kms_secret file = { NULL, 0 };
	size_t n;
	int r;

	if (strncmp(arg, "fileb://", 8) == 0) {
		return read_file(arg + 8, out, opt);
	}
	if (strncmp(arg, "file://", 7) == 0) {
		if ((r = read_file(arg + 7, &file, opt)) != 0) {
			return r;
		}
		n = file.len;
		while (n > 0 && isspace(file.data[n - 1])) {
			n--;
		}
		r = decode_b64((const char *)file.data, n, out, opt);
		input_free(&file);
		return r;
	}
	return decode_b64(arg, strlen(arg), out, opt);
}

/* A string parameter: file://PATH (or fileb://PATH) reads text into
 * *hold, freed by the caller with free(). */
static int
load_text(const char *arg, const char **out, char **hold, const char *opt)
{
	kms_secret file = { NULL, 0 };
	size_t skip;
	int r;

	*hold = NULL;
	if (strncmp(arg, "file://", 7) == 0) {
		skip = 7;
	} else if (strncmp(arg, "fileb://", 8) == 0) {
		skip = 8;
	} else {
		*out = arg;
		return 0;
	}
	if ((r = read_file(arg + skip, &file, opt)) != 0) {
		return r;
	}
	if (memchr(file.data, '\0', file.len) != NULL) {
		usage_error("argument --%s: %s is not text", opt, arg + skip);
		input_free(&file);
		return EXIT_USAGE;
	}
	if ((*hold = strndup((const char *)file.data, file.len)) == NULL) {
		input_free(&file);
		return EXIT_OTHER;
	}
	input_free(&file);
	*out = *hold;
	return 0;
}

/* An encryption context: its pairs point into j or into text. */
struct ctxarg {
	kms_context ctx;
	kms_context_pair *pairs;
	json_t *j;
	char *text;
};

static void
ctxarg_free(struct ctxarg *a)
{
	free(a->pairs);
	json_decref(a->j);
	free(a->text);
	memset(a, 0, sizeof(*a));
}

static int
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

/* Tags: TagKey=k,TagValue=v ... or a JSON array of such objects. */
struct tagarg {
	kms_tag *tags;
	size_t ntags;
	json_t *j;
	char **texts;
	size_t ntexts;
};

static void
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

static int
parse_tags(const struct optval *v, struct tagarg *a)
{
	char msg[128], *save = NULL, *tok;
	int err, i;

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
			if (tk == NULL || tv == NULL) {
				usage_error("argument --tags: each tag needs "
				    "TagKey and TagValue");
				tagarg_free(a);
				return EXIT_USAGE;
			}
			a->tags[a->ntags].key = tk;
			a->tags[a->ntags++].value = tv;
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
		if (tk == NULL || tv == NULL) {
			usage_error("argument --tags: expected "
			    "TagKey=key,TagValue=value");
			tagarg_free(a);
			return EXIT_USAGE;
		}
		a->tags[a->ntags].key = tk;
		a->tags[a->ntags++].value = tv;
	}
	return 0;
}

/* ------------------------------------------------------------ options */

static int
opt_index(const struct command *cmd, const char *name)
{
	int i;

	for (i = 0; i < MAX_OPTS && cmd->opts[i].name != NULL; i++) {
		if (strcmp(cmd->opts[i].name, name) == 0) {
			return i;
		}
	}
	return -1;
}

const struct optval *
opt(const struct run *R, const char *name)
{
	int i = opt_index(R->cmd, name);

	return (i >= 0 && R->v[i].set) ? &R->v[i] : NULL;
}

const char *
opt_str(const struct run *R, const char *name)
{
	const struct optval *v = opt(R, name);

	return v != NULL ? v->val : NULL;
}

static int
parse_long(const char *s, long lo, long hi, long *out, const char *opt_name)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		usage_error("argument --%s: invalid int value: '%s'", opt_name,
		    s);
		return EXIT_USAGE;
	}
	*out = v;
	return 0;
}

/* ------------------------------------------------------------ output */

/*
 * --query, the JMESPath subset the AWS CLI's users type: Name.Sub,
 * Name[0] (negative from the end), and the projection Name[].Sub or
 * Name[*].Sub, which applies the rest to every element and keeps the
 * non-null results.  Returns a new reference, NULL when absent; *bad is
 * set when the expression cannot be parsed (checked even when the data
 * runs out early).
 */
static json_t *
qeval(json_t *cur, const char *p, int *bad)
{
	char name[256];
	size_t n = 0;

	if (*p == '\0') {
		return cur != NULL ? json_incref(cur) : NULL;
	}
	if (*p == '.') {
		if (p[1] == '\0' || p[1] == '.' || p[1] == '[') {
			*bad = 1;
			return NULL;
		}
		p++;
	}
	if (*p == '[') {
		char *end;
		long i;
		json_t *out, *e, *r;
		size_t k;
		if (p[1] == ']' || (p[1] == '*' && p[2] == ']')) {
			p += p[1] == ']' ? 2 : 3;
			if (*p != '\0' && *p != '.' && *p != '[') {
				*bad = 1;
				return NULL;
			}
			/* Check the rest's syntax once, on nothing. */
			json_decref(qeval(NULL, p, bad));
			if (*bad || cur == NULL || !json_is_array(cur)) {
				return NULL;
			}
			out = json_array();
			json_array_foreach(cur, k, e) {
				if ((r = qeval(e, p, bad)) != NULL &&
				    !json_is_null(r)) {
					json_array_append(out, r);
				}
				json_decref(r);
			}
			return out;
		}
		i = strtol(p + 1, &end, 10);
		if (end == p + 1 || *end != ']') {
			*bad = 1;
			return NULL;
		}
		p = end + 1;
		if (*p != '\0' && *p != '.' && *p != '[') {
			*bad = 1;
			return NULL;
		}
		if (cur != NULL && json_is_array(cur)) {
			if (i < 0) {
				i += (long)json_array_size(cur);
			}
			cur = i >= 0 ? json_array_get(cur, (size_t)i) : NULL;
		} else {
			cur = NULL;
		}
		return qeval(cur, p, bad);
	}
	while (*p != '\0' && *p != '.' && *p != '[') {
		if (n + 1 >= sizeof(name)) {
			*bad = 1;
			return NULL;
		}
		name[n++] = *p++;
	}
	name[n] = '\0';
	if (n == 0) {
		*bad = 1;
		return NULL;
	}
	cur = (cur != NULL && json_is_object(cur)) ? json_object_get(cur,
	    name) : NULL;
	return qeval(cur, p, bad);
}

static json_t *
query(json_t *root, const char *path, int *bad)
{
	*bad = 0;
	if (*path == '.' || *path == '\0') {
		*bad = 1;
		return NULL;
	}
	return qeval(root, path, bad);
}

static void
text_scalar(const json_t *v)
{
	if (json_is_string(v)) {
		fputs(json_string_value(v), stdout);
	} else if (json_is_integer(v)) {
		printf("%lld", (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		printf("%.17g", json_real_value(v));
	} else if (json_is_true(v)) {
		fputs("True", stdout);
	} else if (json_is_false(v)) {
		fputs("False", stdout);
	} else {
		fputs("None", stdout);
	}
}

static int
is_scalar(const json_t *v)
{
	return !json_is_object(v) && !json_is_array(v);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* AWS CLI text: scalars of an object on one line (keys sorted), nested
 * objects and lists on their own lines headed by the upper-cased key. */
static void
text_out(const json_t *v, const char *label)
{
	const char **keys;
	const char *k;
	json_t *m;
	size_t i, n, first = 1;
	char up[128];

	if (is_scalar(v)) {
		if (label != NULL) {
			printf("%s\t", label);
		}
		text_scalar(v);
		putchar('\n');
		return;
	}
	if (json_is_array(v)) {
		int all_scalar = 1;
		json_array_foreach(v, i, m) {
			all_scalar &= is_scalar(m);
		}
		if (all_scalar) {
			if (json_array_size(v) == 0) {
				return;
			}
			if (label != NULL) {
				printf("%s\t", label);
			}
			json_array_foreach(v, i, m) {
				if (i > 0) {
					putchar('\t');
				}
				text_scalar(m);
			}
			putchar('\n');
			return;
		}
		json_array_foreach(v, i, m) {
			text_out(m, label);
		}
		return;
	}
	n = json_object_size(v);
	if ((keys = calloc(n + 1, sizeof(*keys))) == NULL) {
		return;
	}
	i = 0;
	json_object_foreach((json_t *)v, k, m) {
		keys[i++] = k;
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	for (i = 0; i < n; i++) {
		m = json_object_get(v, keys[i]);
		if (!is_scalar(m)) {
			continue;
		}
		if (first && label != NULL) {
			printf("%s\t", label);
		}
		if (!first) {
			putchar('\t');
		}
		first = 0;
		text_scalar(m);
	}
	if (!first) {
		putchar('\n');
	}
	for (i = 0; i < n; i++) {
		size_t j;
		m = json_object_get(v, keys[i]);
		if (is_scalar(m)) {
			continue;
		}
		for (j = 0; keys[i][j] != '\0' && j + 1 < sizeof(up); j++) {
			up[j] = (char)toupper((unsigned char)keys[i][j]);
		}
		up[j] = '\0';
		text_out(m, up);
	}
	free(keys);
}

static void
print_json(const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(4) | JSON_ENCODE_ANY);

	if (s != NULL) {
		puts(s);
		secure_wipe(s, strlen(s));
		free(s);
	}
}

static int
write_outfile(const char *path, const uint8_t *p, size_t n)
{
	size_t off = 0;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "kmsctl: cannot write %s: %s\n", path,
		    strerror(errno));
		return EXIT_OTHER;
	}
	(void)fchmod(fd, 0600);
	while (off < n) {
		ssize_t w = write(fd, p + off, n - off);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			fprintf(stderr, "kmsctl: cannot write %s: %s\n", path,
			    strerror(errno));
			close(fd);
			return EXIT_OTHER;
		}
		off += (size_t)w;
	}
	if (close(fd) != 0) {
		fprintf(stderr, "kmsctl: cannot write %s: %s\n", path,
		    strerror(errno));
		return EXIT_OTHER;
	}
	return 0;
}

/* Put bytes into o as base64 (NULL p with n 0 is the empty string). */
static int
put_b64(json_t *o, const char *name, const uint8_t *p, size_t n)
{
	size_t sz = B64_ENCODED_LEN(n) + 1;
	char *s = secure_alloc(sz);
	int r = -1;

	if (s != NULL && b64_encode(p != NULL ? p : (const uint8_t *)"", n, s,
	    sz) == 0) {
		r = json_object_set_new(o, name, json_string(s));
	}
	secure_free(s, sz);
	return r;
}

/*
 * Print a response.  bin names its main binary field (Plaintext, else
 * CiphertextBlob): with --outfile it is written raw and left out of what
 * is printed.  Takes o over.
 */
int
emit(struct run *R, json_t *o, const char *bin, const uint8_t *p, size_t n)
{
	json_t *sel;
	int r = 0, bad = 0;

	if (R->outfile != NULL) {
		if (bin == NULL) {
			fprintf(stderr, "kmsctl: --outfile: %s returns no "
			    "binary field\n", R->cmd->name);
			json_decref(o);
			return EXIT_USAGE;
		}
		if ((r = write_outfile(R->outfile, p, n)) != 0) {
			json_decref(o);
			return r;
		}
		json_object_del(o, bin);
	}
	sel = json_incref(o);
	if (R->query != NULL) {
		json_decref(sel);
		sel = query(o, R->query, &bad);
		if (bad) {
			usage_error("argument --query: Bad value for --query "
			    "%s", R->query);
			json_decref(sel);
			json_decref(o);
			return EXIT_USAGE;
		}
	} else if (json_object_size(o) == 0) {
		json_decref(sel);
		/* AWS prints nothing for an empty response. */
		json_decref(o);
		return 0;
	}
	if (strcmp(R->output, "text") == 0) {
		if (sel == NULL) {
			puts("None");
		} else {
			text_out(sel, NULL);
		}
	} else if (sel == NULL) {
		puts("null");
	} else {
		print_json(sel);
	}
	fflush(stdout);
	json_decref(sel);
	json_decref(o);
	return 0;
}

/* The AWS CLI's error line for service errors; others say what broke. */
static int
fail(const struct run *R, int r, const kms_error_info *ei)
{
	const char *msg = ei->message[0] != '\0' ? ei->message :
	    kms_strerror(r);

	if (r > 0 && r < KMS_ERR_MAX && !err_is_client_side(r)) {
		fprintf(stderr, "\nAn error occurred (%s) when calling the %s "
		    "operation: %s\n", ei->name[0] != '\0' ? ei->name :
		    kms_error_name(r), R->cmd->op, msg);
		return EXIT_SERVICE;
	}
	fprintf(stderr, "\n%s\n", msg);
	return EXIT_OTHER;
}

/* ------------------------------------------------------------ commands */

static char *
iso8601(double t, char *buf, size_t len)
{
	time_t s = (time_t)t;
	struct tm tm;
	long us = (long)((t - (double)s) * 1e6 + 0.5);

	if (us >= 1000000) {
		s++;
		us -= 1000000;
	}

	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, us < 0 ? 0 : us);
	return buf;
}

static json_t *
metadata_json(const kms_key_metadata *m)
{
	json_t *o = json_object(), *km = json_object(), *algs = json_array();
	char t[64];
	size_t i;

	json_object_set_new(km, "AWSAccountId",
	    json_string(m->aws_account_id));
	json_object_set_new(km, "KeyId", json_string(m->key_id));
	json_object_set_new(km, "Arn", json_string(m->arn));
	json_object_set_new(km, "CreationDate",
	    json_string(iso8601(m->creation_date, t, sizeof(t))));
	json_object_set_new(km, "Enabled", json_boolean(m->enabled));
	json_object_set_new(km, "Description", json_string(m->description ?
	    m->description : ""));
	json_object_set_new(km, "KeyUsage", json_string(m->key_usage));
	json_object_set_new(km, "KeyState", json_string(m->key_state));
	if (m->deletion_date > 0) {
		json_object_set_new(km, "DeletionDate",
		    json_string(iso8601(m->deletion_date, t, sizeof(t))));
	}
	json_object_set_new(km, "Origin", json_string(m->origin));
	json_object_set_new(km, "KeyManager", json_string(m->key_manager));
	json_object_set_new(km, "CustomerMasterKeySpec",
	    json_string(m->customer_master_key_spec));
	json_object_set_new(km, "KeySpec", json_string(m->key_spec));
	for (i = 0; i < m->nencryption_algorithms; i++) {
		json_array_append_new(algs,
		    json_string(m->encryption_algorithms[i]));
	}
	json_object_set_new(km, "EncryptionAlgorithms", algs);
	json_object_set_new(km, "MultiRegion", json_boolean(m->multi_region));
	json_object_set_new(o, "KeyMetadata", km);
	return o;
}

static int
cmd_create_key(struct run *R)
{
	kms_create_key_req req = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	struct tagarg tags = { 0 };
	const struct optval *v;
	char *hold_policy = NULL, *hold_desc = NULL;
	int r;

	if ((v = opt(R, "description")) != NULL &&
	    (r = load_text(v->val, &req.description, &hold_desc,
	    "description")) != 0) {
		return r;
	}
	if ((v = opt(R, "policy")) != NULL &&
	    (r = load_text(v->val, &req.policy, &hold_policy, "policy")) !=
	    0) {
		free(hold_desc);
		return r;
	}
	req.key_usage = opt_str(R, "key-usage");
	req.key_spec = opt_str(R, "key-spec");
	req.origin = opt_str(R, "origin");
	if ((v = opt(R, "bypass-policy-lockout-safety-check")) != NULL) {
		req.bypass_policy_lockout_safety_check = v->flag;
	}
	if ((v = opt(R, "tags")) != NULL && (r = parse_tags(v, &tags)) != 0) {
		free(hold_desc);
		free(hold_policy);
		return r;
	}
	req.tags = tags.tags;
	req.ntags = tags.ntags;
	r = kms_create_key(R->c, &req, &m, &ei);
	free(hold_desc);
	free(hold_policy);
	tagarg_free(&tags);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	r = emit(R, metadata_json(&m), NULL, NULL, 0);
	kms_key_metadata_free(&m);
	return r;
}

static int
cmd_describe_key(struct run *R)
{
	const struct optval *gv = opt(R, "grant-tokens");
	kms_grant_tokens gt = { 0 };
	kms_key_metadata m;
	kms_error_info ei;
	int r;

	if (gv != NULL) {
		gt.tokens = (const char *const *)gv->list;
		gt.ntokens = (size_t)gv->nlist;
	}
	if ((r = kms_describe_key(R->c, opt_str(R, "key-id"), &gt, &m,
	    &ei)) != 0) {
		return fail(R, r, &ei);
	}
	r = emit(R, metadata_json(&m), NULL, NULL, 0);
	kms_key_metadata_free(&m);
	return r;
}

static int
cmd_list_keys(struct run *R)
{
	const char *marker = opt_str(R, "starting-token");
	json_t *o = json_object(), *keys = json_array();
	kms_key_list l;
	kms_error_info ei;
	char *next = NULL;
	long limit = 0;
	size_t i;
	int r, paginate;

	if (marker == NULL) {
		marker = opt_str(R, "marker");
	}
	if (opt(R, "limit") != NULL && (r = parse_long(opt_str(R, "limit"),
	    1, 1000, &limit, "limit")) != 0) {
		json_decref(o);
		json_decref(keys);
		return r;
	}
	/* As the AWS CLI: all pages, unless one page was asked for. */
	paginate = limit == 0;
	for (;;) {
		if ((r = kms_list_keys(R->c, (int)limit, marker, &l,
		    &ei)) != 0) {
			free(next);
			json_decref(o);
			json_decref(keys);
			return fail(R, r, &ei);
		}
		for (i = 0; i < l.nkeys; i++) {
			json_t *k = json_object();
			json_object_set_new(k, "KeyId",
			    json_string(l.keys[i].key_id));
			json_object_set_new(k, "KeyArn",
			    json_string(l.keys[i].key_arn));
			json_array_append_new(keys, k);
		}
		free(next);
		next = l.next_marker != NULL ? strdup(l.next_marker) : NULL;
		if (!paginate || !l.truncated || next == NULL) {
			break;
		}
		kms_key_list_free(&l);
		marker = next;
	}
	json_object_set_new(o, "Keys", keys);
	if (!paginate) {
		json_object_set_new(o, "Truncated", json_boolean(l.truncated));
		if (l.next_marker != NULL) {
			json_object_set_new(o, "NextMarker",
			    json_string(l.next_marker));
		}
	}
	kms_key_list_free(&l);
	free(next);
	return emit(R, o, NULL, NULL, 0);
}

static int
cmd_update_key_description(struct run *R)
{
	const char *desc;
	char *hold = NULL;
	kms_error_info ei;
	int r;

	if ((r = load_text(opt_str(R, "description"), &desc, &hold,
	    "description")) != 0) {
		return r;
	}
	r = kms_update_key_description(R->c, opt_str(R, "key-id"), desc, &ei);
	free(hold);
	return r != 0 ? fail(R, r, &ei) : 0;
}

/* enable-key and disable-key: the command's operation says which. */
static int
cmd_enable_disable(struct run *R)
{
	kms_error_info ei;
	const char *id = opt_str(R, "key-id");
	int r;

	r = strcmp(R->cmd->op, "EnableKey") == 0 ?
	    kms_enable_key(R->c, id, &ei) : kms_disable_key(R->c, id, &ei);
	return r != 0 ? fail(R, r, &ei) : 0;
}

/* Context and grant tokens shared by the crypto commands. */
static int
get_context(const struct run *R, const char *name, struct ctxarg *a)
{
	const char *s = opt_str(R, name);

	memset(a, 0, sizeof(*a));
	return s != NULL ? parse_context(s, a, name) : 0;
}

static kms_grant_tokens
get_grant_tokens(const struct run *R)
{
	const struct optval *gv = opt(R, "grant-tokens");
	kms_grant_tokens gt = { 0 };

	if (gv != NULL) {
		gt.tokens = (const char *const *)gv->list;
		gt.ntokens = (size_t)gv->nlist;
	}
	return gt;
}

/* encrypt-file / decrypt-file: the options, then cmd_envelope.c. */
static int
cmd_envelope(struct run *R)
{
	struct envelope_args a;
	const struct optval *v;
	int r;

	memset(&a, 0, sizeof(a));
	a.encrypt = strcmp(R->cmd->name, "encrypt-file") == 0;
	a.input = opt_str(R, "input");
	a.output = opt_str(R, "output");
	a.key_id = opt_str(R, "key-id");
	a.algorithm = opt_str(R, "algorithm");
	a.suffix = opt_str(R, "suffix");
	if ((v = opt(R, "encryption-context")) != NULL) {
		a.context = v->list;
		a.ncontext = v->nlist;
	}
	if ((v = opt(R, "frame-length")) != NULL &&
	    (r = parse_long(v->val, 1, KMS_FRAME_LENGTH_MAX, &a.frame_length,
	    "frame-length")) != 0) {
		return r;
	}
	a.recursive = (v = opt(R, "recursive")) != NULL && v->flag;
	a.quiet = (v = opt(R, "quiet")) != NULL && v->flag;
	a.grant_tokens = get_grant_tokens(R);
	return envelope_run(R->c, &a);
}

static int
cmd_encrypt(struct run *R)
{
	kms_encrypt_req req = { 0 };
	kms_encrypt_resp out;
	kms_secret pt = { NULL, 0 };
	kms_error_info ei;
	struct ctxarg ctx;
	json_t *o;
	int r;

	if ((r = load_blob(opt_str(R, "plaintext"), &pt, "plaintext")) != 0) {
		return r;
	}
	if ((r = get_context(R, "encryption-context", &ctx)) != 0) {
		input_free(&pt);
		return r;
	}
	req.key_id = opt_str(R, "key-id");
	req.plaintext = pt.data;
	req.plaintext_len = pt.len;
	req.context = ctx.ctx;
	req.grant_tokens = get_grant_tokens(R);
	r = kms_encrypt(R->c, &req, &out, &ei);
	input_free(&pt);
	ctxarg_free(&ctx);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	json_object_set_new(o, "KeyId", json_string(out.key_id));
	json_object_set_new(o, "EncryptionAlgorithm",
	    json_string(out.encryption_algorithm));
	r = emit(R, o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	kms_encrypt_resp_free(&out);
	return r;
}

static int
cmd_decrypt(struct run *R)
{
	kms_decrypt_req req = { 0 };
	kms_decrypt_resp out;
	kms_secret ct = { NULL, 0 };
	kms_error_info ei;
	struct ctxarg ctx;
	json_t *o;
	int r;

	if ((r = load_blob(opt_str(R, "ciphertext-blob"), &ct,
	    "ciphertext-blob")) != 0) {
		return r;
	}
	if ((r = get_context(R, "encryption-context", &ctx)) != 0) {
		input_free(&ct);
		return r;
	}
	req.ciphertext_blob = ct.data;
	req.ciphertext_len = ct.len;
	req.key_id = opt_str(R, "key-id");
	req.context = ctx.ctx;
	req.grant_tokens = get_grant_tokens(R);
	r = kms_decrypt(R->c, &req, &out, &ei);
	input_free(&ct);
	ctxarg_free(&ctx);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	json_object_set_new(o, "KeyId", json_string(out.key_id));
	put_b64(o, "Plaintext", out.plaintext.data, out.plaintext.len);
	json_object_set_new(o, "EncryptionAlgorithm",
	    json_string(out.encryption_algorithm));
	r = emit(R, o, "Plaintext", out.plaintext.data, out.plaintext.len);
	kms_decrypt_resp_free(&out);
	return r;
}

static int
cmd_re_encrypt(struct run *R)
{
	kms_re_encrypt_req req = { 0 };
	kms_re_encrypt_resp out;
	kms_secret ct = { NULL, 0 };
	kms_error_info ei;
	struct ctxarg sctx, dctx;
	json_t *o;
	int r;

	if ((r = load_blob(opt_str(R, "ciphertext-blob"), &ct,
	    "ciphertext-blob")) != 0) {
		return r;
	}
	if ((r = get_context(R, "source-encryption-context", &sctx)) != 0) {
		input_free(&ct);
		return r;
	}
	if ((r = get_context(R, "destination-encryption-context", &dctx)) !=
	    0) {
		input_free(&ct);
		ctxarg_free(&sctx);
		return r;
	}
	req.ciphertext_blob = ct.data;
	req.ciphertext_len = ct.len;
	req.source_key_id = opt_str(R, "source-key-id");
	req.source_context = sctx.ctx;
	req.destination_key_id = opt_str(R, "destination-key-id");
	req.destination_context = dctx.ctx;
	req.grant_tokens = get_grant_tokens(R);
	r = kms_re_encrypt(R->c, &req, &out, &ei);
	input_free(&ct);
	ctxarg_free(&sctx);
	ctxarg_free(&dctx);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	json_object_set_new(o, "SourceKeyId", json_string(out.source_key_id));
	json_object_set_new(o, "KeyId", json_string(out.key_id));
	json_object_set_new(o, "SourceEncryptionAlgorithm",
	    json_string(out.source_encryption_algorithm));
	json_object_set_new(o, "DestinationEncryptionAlgorithm",
	    json_string(out.destination_encryption_algorithm));
	r = emit(R, o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	kms_re_encrypt_resp_free(&out);
	return r;
}

static int
generate_data_key(struct run *R, int with_plaintext)
{
	kms_generate_data_key_req req = { 0 };
	kms_generate_data_key_resp out;
	kms_error_info ei;
	struct ctxarg ctx;
	long n = 0;
	json_t *o;
	int r;

	if (opt(R, "number-of-bytes") != NULL &&
	    (r = parse_long(opt_str(R, "number-of-bytes"), 0, INT_MAX, &n,
	    "number-of-bytes")) != 0) {
		return r;
	}
	if ((r = get_context(R, "encryption-context", &ctx)) != 0) {
		return r;
	}
	req.key_id = opt_str(R, "key-id");
	req.key_spec = opt_str(R, "key-spec");
	req.number_of_bytes = (size_t)n;
	req.context = ctx.ctx;
	req.grant_tokens = get_grant_tokens(R);
	r = with_plaintext ? kms_generate_data_key(R->c, &req, &out, &ei) :
	    kms_generate_data_key_without_plaintext(R->c, &req, &out, &ei);
	ctxarg_free(&ctx);
	if (r != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	put_b64(o, "CiphertextBlob", out.ciphertext_blob.data,
	    out.ciphertext_blob.len);
	if (with_plaintext) {
		put_b64(o, "Plaintext", out.plaintext.data,
		    out.plaintext.len);
	}
	json_object_set_new(o, "KeyId", json_string(out.key_id));
	if (with_plaintext) {
		r = emit(R, o, "Plaintext", out.plaintext.data,
		    out.plaintext.len);
	} else {
		r = emit(R, o, "CiphertextBlob", out.ciphertext_blob.data,
		    out.ciphertext_blob.len);
	}
	kms_generate_data_key_resp_free(&out);
	return r;
}

static int
cmd_generate_data_key(struct run *R)
{
	return generate_data_key(R, 1);
}

static int
cmd_generate_data_key_without_plaintext(struct run *R)
{
	return generate_data_key(R, 0);
}

static int
cmd_generate_random(struct run *R)
{
	kms_secret s;
	kms_error_info ei;
	long n = 0;
	json_t *o;
	int r;

	if ((r = parse_long(opt_str(R, "number-of-bytes"), 0, INT_MAX, &n,
	    "number-of-bytes")) != 0) {
		return r;
	}
	if ((r = kms_generate_random(R->c, (size_t)n, &s, &ei)) != 0) {
		return fail(R, r, &ei);
	}
	o = json_object();
	put_b64(o, "Plaintext", s.data, s.len);
	r = emit(R, o, "Plaintext", s.data, s.len);
	kms_secret_free(&s);
	return r;
}

static int
cmd_call(struct run *R)
{
	kms_error_info ei;
	kms_secret file = { NULL, 0 };
	const char *req = opt_str(R, "request");
	char *reply = NULL, msg[128], action[64] = "raw";
	size_t n = 0, len;
	json_t *j;
	int r, err;

	if (strncmp(req, "file://", 7) == 0) {
		if ((r = read_file(req + 7, &file, "request")) != 0) {
			return r;
		}
		req = (const char *)file.data;
		len = file.len;
	} else {
		len = strlen(req);
	}
	/* The operation's name, for the error line. */
	if ((j = json_loadb(req, len, 0, NULL)) != NULL &&
	    json_is_string(json_object_get(j, "Action"))) {
		snprintf(action, sizeof(action), "%s",
		    json_string_value(json_object_get(j, "Action")));
	}
	json_decref(j);
	r = kms_call_json(R->c, req, len, &reply, &n, &ei);
	input_free(&file);
	if (r != 0) {
		struct run E = *R;
		struct command c = *R->cmd;
		c.op = action;
		E.cmd = &c;
		kms_free(reply);
		return fail(&E, r, &ei);
	}
	j = kjson_read_bounded(reply, n, JSON_MAX_REPLY, &err, msg,
	    sizeof(msg));
	kms_free(reply);
	if (j == NULL) {
		fprintf(stderr, "kmsctl: unreadable reply: %s\n", msg);
		return EXIT_OTHER;
	}
	return emit(R, j, NULL, NULL, 0);
}

/* ------------------------------------------------- commands sent as JSON */

/*
 * The policy, grant, alias and tag commands have no typed call in
 * libkmsclient: each option names its request field, the request is built
 * as JSON and sent with kms_call_json, and the reply (already shaped as
 * AWS's) is printed with its dates made ISO 8601 as the AWS CLI shows them.
 */

/* A list option: several words, "a,b" or a JSON array of strings. */
static int
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
static int
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

/* Set one option's request field. */
static int
put_field(json_t *req, const struct optspec *s, const struct optval *v)
{
	struct tagarg tags;
	const char *text;
	char *hold = NULL;
	json_t *x = NULL;
	long n;
	size_t i;
	int r;

	switch (s->kind) {
	case O_POS:
	case O_STR:
		if ((r = load_text(v->val, &text, &hold, s->name)) != 0) {
			return r;
		}
		x = json_string(text);
		free(hold);
		break;
	case O_INT:
		if ((r = parse_long(v->val, 0, INT_MAX, &n, s->name)) != 0) {
			return r;
		}
		x = json_integer(n);
		break;
	case O_FLAG:
		x = json_boolean(v->flag);
		break;
	case O_BLOB: {
		kms_secret b = { NULL, 0 };
		size_t bn;
		char *t;
		if ((r = load_blob(v->val, &b, s->name)) != 0) {
			return r;
		}
		bn = B64_ENCODED_LEN(b.len) + 1;
		if ((t = malloc(bn)) != NULL &&
		    b64_encode(b.data, b.len, t, bn) == 0) {
			x = json_string(t);
		}
		free(t);
		kms_secret_free(&b);
		break;
	}
	case O_LIST:
		if ((r = list_json(v, s->name, &x)) != 0) {
			return r;
		}
		break;
	case O_CONSTRAINTS:
		if ((r = constraints_json(v->val, &x)) != 0) {
			return r;
		}
		break;
	case O_TAGS:
		if ((r = parse_tags(v, &tags)) != 0) {
			return r;
		}
		x = json_array();
		for (i = 0; i < tags.ntags; i++) {
			json_array_append_new(x, json_pack("{ssss}", "TagKey",
			    tags.tags[i].key, "TagValue", tags.tags[i].value));
		}
		tagarg_free(&tags);
		break;
	default:
		return EXIT_OTHER;
	}
	if (x == NULL || json_object_set_new(req, s->field, x) != 0) {
		fprintf(stderr, "kmsctl: out of memory\n");
		return EXIT_OTHER;
	}
	return 0;
}

/* Dates come as seconds since the epoch; the AWS CLI prints ISO 8601. */
static void
iso_dates(json_t *v)
{
	const char *k;
	json_t *m;
	size_t i;
	char t[64];

	if (json_is_array(v)) {
		json_array_foreach(v, i, m) {
			iso_dates(m);
		}
		return;
	}
	json_object_foreach(v, k, m) {
		if (json_is_number(m) && (strcmp(k, "CreationDate") == 0 ||
		    strcmp(k, "LastUpdatedDate") == 0 ||
		    strcmp(k, "DeletionDate") == 0 ||
		    strcmp(k, "NextRotationDate") == 0 ||
		    strcmp(k, "RotationDate") == 0 ||
		    strcmp(k, "OnDemandRotationStartDate") == 0 ||
		    strcmp(k, "ParametersValidTo") == 0 ||
		    strcmp(k, "StartedDate") == 0 ||
		    strcmp(k, "FinishedDate") == 0 ||
		    strcmp(k, "ValidTo") == 0)) {
			json_object_set_new(v, k, json_string(iso8601(
			    json_number_value(m), t, sizeof(t))));
		} else {
			iso_dates(m);
		}
	}
}

/* Send req; the parsed reply in *out, or an exit status. */
int
send_json(const struct run *R, const json_t *req, json_t **out)
{
	kms_error_info ei;
	char *text, *reply = NULL, msg[128];
	size_t n = 0;
	int r, err;

	if ((text = json_dumps(req, JSON_COMPACT)) == NULL) {
		return EXIT_OTHER;
	}
	r = kms_call_json(R->c, text, strlen(text), &reply, &n, &ei);
	secure_wipe(text, strlen(text));
	free(text);
	if (r != 0) {
		kms_free(reply);
		return fail(R, r, &ei);
	}
	*out = kjson_read_bounded(reply, n, JSON_MAX_REPLY, &err, msg,
	    sizeof(msg));
	kms_free(reply);
	if (*out == NULL) {
		fprintf(stderr, "kmsctl: unreadable reply: %s\n", msg);
		return EXIT_OTHER;
	}
	return 0;
}

static int
cmd_json(struct run *R)
{
	json_t *req, *reply = NULL, *all = NULL, *page;
	const char *next;
	int i, r, paginate;

	if ((req = json_pack("{ss}", "Action", R->cmd->op)) == NULL) {
		return EXIT_OTHER;
	}
	for (i = 0; i < MAX_OPTS && R->cmd->opts[i].name != NULL; i++) {
		if (R->v[i].set && R->cmd->opts[i].field != NULL &&
		    (r = put_field(req, &R->cmd->opts[i], &R->v[i])) != 0) {
			json_decref(req);
			return r;
		}
	}
	/* As the AWS CLI: every page, unless one page was asked for. */
	paginate = R->cmd->pages != NULL && opt(R, "limit") == NULL;
	for (;;) {
		if ((r = send_json(R, req, &reply)) != 0) {
			json_decref(req);
			json_decref(all);
			return r;
		}
		if (!paginate) {
			break;
		}
		page = json_object_get(reply, R->cmd->pages);
		if (all == NULL) {
			all = json_array();
		}
		if (json_is_array(page)) {
			json_array_extend(all, page);
		}
		next = json_string_value(json_object_get(reply,
		    "NextMarker"));
		if (!json_is_true(json_object_get(reply, "Truncated")) ||
		    next == NULL) {
			json_object_set_new(reply, R->cmd->pages, all);
			json_object_del(reply, "Truncated");
			json_object_del(reply, "NextMarker");
			break;
		}
		json_object_set_new(req, "Marker", json_string(next));
		json_decref(reply);
	}
	json_decref(req);
	iso_dates(reply);
	return emit(R, reply, NULL, NULL, 0);
}

/* ------------------------------------------------------------ table */

#define KEY_ID(req) { "key-id", O_STR, req, \
	"Key id, key ARN, alias name (alias/...) or alias ARN.", "KeyId" }
#define KEY_ID_ONLY { "key-id", O_STR, 1, "Key id or key ARN.", "KeyId" }
#define GRANTS { "grant-tokens", O_LIST, 0, \
	"Grant tokens, separated by spaces (at most 10).", "GrantTokens" }
#define PAGING \
	{ "limit", O_INT, 0, "Items per page (1-1000; at most 100 for " \
	    "grants): fetch one page and show Truncated and NextMarker.", \
	    "Limit" }, \
	{ "starting-token", O_STR, 0, "Start from this NextMarker.", \
	    "Marker" }, \
	{ "marker", O_STR, 0, "Same as --starting-token.", "Marker" }
#define TARGET_KEY_ID { "target-key-id", O_STR, 1, "Key id or key ARN.", \
	"TargetKeyId" }
#define ALIAS_NAME { "alias-name", O_STR, 1, \
	"alias/NAME: 1-256 characters of a-zA-Z0-9:/_-, not alias/aws/.", \
	"AliasName" }
#define CONTEXT(name) { name, O_CTX, 0, \
	"Encryption context: key=value,key2=value2 or a JSON object " \
	"'{\"key\":\"value\"}' (file://PATH reads it from a file)." }

/* Options without a request field and commands without pages leave them
 * out: zero is their meaning. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct command commands[] = {
	{ "create-key", "CreateKey", cmd_create_key,
	    "Create a customer master key in the HSM.", {
		{ "description", O_STR, 0, "Description (file://PATH "
		    "reads it)." },
		{ "key-usage", O_STR, 0, "ENCRYPT_DECRYPT (the default)." },
		{ "key-spec", O_STR, 0, "SYMMETRIC_DEFAULT (the default)." },
		{ "origin", O_STR, 0, "AWS_KMS (the default: material made "
		    "in the HSM) or EXTERNAL (imported later)." },
		{ "policy", O_STR, 0, "Key policy document, JSON "
		    "(file://PATH reads it)." },
		{ "bypass-policy-lockout-safety-check", O_FLAG, 0,
		    "Skip the lockout safety check." },
		{ "tags", O_TAGS, 0, "Tags: TagKey=key,TagValue=value ..." },
	} },
	{ "describe-key", "DescribeKey", cmd_describe_key,
	    "Show a key's metadata.", {
		KEY_ID(1), GRANTS,
	} },
	{ "list-keys", "ListKeys", cmd_list_keys,
	    "List the keys (all pages unless --limit is given).", {
		{ "limit", O_INT, 0, "Keys per page, 1-1000: fetch one page "
		    "and show Truncated and NextMarker." },
		{ "starting-token", O_STR, 0, "Start from this NextMarker." },
		{ "marker", O_STR, 0, "Same as --starting-token." },
	} },
	{ "update-key-description", "UpdateKeyDescription",
	    cmd_update_key_description, "Replace a key's description.", {
		KEY_ID(1),
		{ "description", O_STR, 1, "New description (file://PATH "
		    "reads it)." },
	} },
	{ "enable-key", "EnableKey", cmd_enable_disable, "Enable a key.", {
		KEY_ID(1),
	} },
	{ "disable-key", "DisableKey", cmd_enable_disable,
	    "Disable a key: it refuses every cryptographic operation.", {
		KEY_ID(1),
	} },
	{ "encrypt", "Encrypt", cmd_encrypt,
	    "Encrypt up to 4096 bytes under a key.", {
		KEY_ID(1),
		{ "plaintext", O_BLOB, 1, "Data: base64, or fileb://PATH for "
		    "raw bytes." },
		CONTEXT("encryption-context"), GRANTS,
	} },
	{ "decrypt", "Decrypt", cmd_decrypt,
	    "Decrypt a ciphertext blob (the blob names its key).", {
		{ "ciphertext-blob", O_BLOB, 1, "Blob: base64, or "
		    "fileb://PATH for raw bytes." },
		KEY_ID(0),
		CONTEXT("encryption-context"), GRANTS,
	} },
	{ "re-encrypt", "ReEncrypt", cmd_re_encrypt,
	    "Decrypt and encrypt again under another key, inside kmsd.", {
		{ "ciphertext-blob", O_BLOB, 1, "Blob: base64, or "
		    "fileb://PATH for raw bytes." },
		{ "destination-key-id", O_STR, 1, "Key to encrypt under." },
		{ "source-key-id", O_STR, 0, "Key the blob must name." },
		CONTEXT("source-encryption-context"),
		CONTEXT("destination-encryption-context"),
		GRANTS,
	} },
	{ "generate-data-key", "GenerateDataKey", cmd_generate_data_key,
	    "A data key: its plaintext and its blob under a key.", {
		KEY_ID(1),
		{ "key-spec", O_STR, 0, "AES_256 or AES_128." },
		{ "number-of-bytes", O_INT, 0, "Length, 1-1024 (instead of "
		    "--key-spec)." },
		CONTEXT("encryption-context"), GRANTS,
	} },
	{ "generate-data-key-without-plaintext",
	    "GenerateDataKeyWithoutPlaintext",
	    cmd_generate_data_key_without_plaintext,
	    "A data key's blob only.", {
		KEY_ID(1),
		{ "key-spec", O_STR, 0, "AES_256 or AES_128." },
		{ "number-of-bytes", O_INT, 0, "Length, 1-1024 (instead of "
		    "--key-spec)." },
		CONTEXT("encryption-context"), GRANTS,
	} },
	{ "generate-random", "GenerateRandom", cmd_generate_random,
	    "Random bytes from the HSM.", {
		{ "number-of-bytes", O_INT, 1, "How many, 1-1024." },
	} },
	{ "get-key-policy", "GetKeyPolicy", cmd_json,
	    "Show a key's policy document.", {
		KEY_ID(1),
		{ "policy-name", O_STR, 0, "default (the only name).",
		    "PolicyName" },
	} },
	{ "put-key-policy", "PutKeyPolicy", cmd_json,
	    "Replace a key's policy.", {
		KEY_ID(1),
		{ "policy-name", O_STR, 0, "default (the only name).",
		    "PolicyName" },
		{ "policy", O_STR, 1, "Policy document, JSON (file://PATH or "
		    "fileb://PATH reads it).", "Policy" },
		{ "bypass-policy-lockout-safety-check", O_FLAG, 0,
		    "Accept a policy under which you could no longer call "
		    "PutKeyPolicy.", "BypassPolicyLockoutSafetyCheck" },
	} },
	{ "list-key-policies", "ListKeyPolicies", cmd_json,
	    "List a key's policy names (always default).", {
		KEY_ID(1), PAGING,
	}, "PolicyNames" },
	{ "create-grant", "CreateGrant", cmd_json,
	    "Let a principal use a key for some operations.", {
		KEY_ID(1),
		{ "grantee-principal", O_STR, 1, "Who may use the grant: "
		    "uid:N, user:NAME, group:NAME, ...", "GranteePrincipal" },
		{ "operations", O_LIST, 1, "Operations, separated by spaces: "
		    "Encrypt Decrypt GenerateDataKey ...", "Operations" },
		{ "retiring-principal", O_STR, 0, "Who may retire the grant.",
		    "RetiringPrincipal" },
		{ "constraints", O_CONSTRAINTS, 0, "EncryptionContextSubset="
		    "{k=v,...} or EncryptionContextEquals={k=v,...}, or "
		    "JSON.", "Constraints" },
		{ "name", O_STR, 0, "A name: the same request with the same "
		    "name returns the same grant.", "Name" },
		GRANTS,
	} },
	{ "list-grants", "ListGrants", cmd_json,
	    "List a key's grants.", {
		KEY_ID(1),
		{ "grant-id", O_STR, 0, "Only this grant.", "GrantId" },
		{ "grantee-principal", O_STR, 0, "Only grants to this "
		    "principal.", "GranteePrincipal" },
		PAGING,
	}, "Grants" },
	{ "list-retirable-grants", "ListRetirableGrants", cmd_json,
	    "List the grants a principal may retire.", {
		{ "retiring-principal", O_STR, 1, "The retiring principal.",
		    "RetiringPrincipal" },
		PAGING,
	}, "Grants" },
	{ "retire-grant", "RetireGrant", cmd_json,
	    "Retire a grant: by its token, or by key and grant id.", {
		{ "grant-token", O_STR, 0, "The grant's token.",
		    "GrantToken" },
		KEY_ID(0),
		{ "grant-id", O_STR, 0, "The grant's id (with --key-id).",
		    "GrantId" },
	} },
	{ "revoke-grant", "RevokeGrant", cmd_json,
	    "Revoke a grant.", {
		KEY_ID(1),
		{ "grant-id", O_STR, 1, "The grant's id.", "GrantId" },
	} },
	{ "create-alias", "CreateAlias", cmd_json,
	    "Give a key a name.", {
		ALIAS_NAME, TARGET_KEY_ID,
	} },
	{ "update-alias", "UpdateAlias", cmd_json,
	    "Point an alias at another key.", {
		ALIAS_NAME, TARGET_KEY_ID,
	} },
	{ "delete-alias", "DeleteAlias", cmd_json,
	    "Delete an alias (the key stays).", {
		ALIAS_NAME,
	} },
	{ "list-aliases", "ListAliases", cmd_json,
	    "List the aliases, or a key's aliases.", {
		{ "key-id", O_STR, 0, "Only this key's aliases (key id or "
		    "ARN).", "KeyId" },
		PAGING,
	}, "Aliases" },
	{ "tag-resource", "TagResource", cmd_json,
	    "Add or replace tags on a key.", {
		KEY_ID(1),
		{ "tags", O_TAGS, 1, "Tags: TagKey=key,TagValue=value ...",
		    "Tags" },
	} },
	{ "untag-resource", "UntagResource", cmd_json,
	    "Remove tags from a key.", {
		KEY_ID(1),
		{ "tag-keys", O_LIST, 1, "Tag keys, separated by spaces.",
		    "TagKeys" },
	} },
	{ "list-resource-tags", "ListResourceTags", cmd_json,
	    "List a key's tags.", {
		KEY_ID(1), PAGING,
	}, "Tags" },
	{ "admin backup", "CreateBackup", cmd_json,
	    "Administrators: back up the store and token into a directory "
	    "on kmsd's machine, online.", {
		{ "directory", O_POS, 1, "Absolute path of a new or empty "
		    "directory.", "Directory" },
		{ "include-pins", O_FLAG, 0, "Copy the PIN files too (the "
		    "directory must be mode 0700).", "IncludePins" },
	} },
	{ "encrypt-file", "EncryptFile", cmd_envelope,
	    "Encrypt a file, stream or directory into AWS Encryption SDK "
	    "messages.", {
		KEY_ID(1),
		{ "input", O_STR, 1, "File, directory (with --recursive) or - "
		    "for stdin." },
		{ "output", O_STR, 1, "File, directory or - for stdout; "
		    "written only when the whole input succeeded." },
		{ "encryption-context", O_LIST, 0, "Pairs key=value ... "
		    "(authenticated, not secret)." },
		{ "algorithm", O_STR, 0, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY "
		    "(default) or ..._COMMIT_KEY_ECDSA_P384." },
		{ "frame-length", O_INT, 0, "Plaintext bytes per frame, "
		    "1-4194304 (default 4096)." },
		{ "recursive", O_FLAG, 0, "Encrypt every file under the "
		    "--input directory." },
		{ "suffix", O_STR, 0, "Added to names made in an output "
		    "directory (default .encrypted)." },
		{ "quiet", O_FLAG, 0, "No progress bar." },
		GRANTS } },
	{ "decrypt-file", "DecryptFile", cmd_envelope,
	    "Decrypt AWS Encryption SDK messages (a file, stream or "
	    "directory).", {
		{ "input", O_STR, 1, "File, directory (with --recursive) or - "
		    "for stdin." },
		{ "output", O_STR, 1, "File, directory or - for stdout; a "
		    "file appears only when the message verified." },
		{ "encryption-context", O_LIST, 0, "Pairs key=value ... the "
		    "message's context must hold." },
		{ "recursive", O_FLAG, 0, "Decrypt every file under the "
		    "--input directory." },
		{ "suffix", O_STR, 0, "Added to names made in an output "
		    "directory (default .decrypted)." },
		{ "quiet", O_FLAG, 0, "No progress bar." },
		GRANTS } },
	{ "enable-key-rotation", "EnableKeyRotation", cmd_json,
	    "Rotate a key automatically, every 90-2560 days.", {
		KEY_ID_ONLY,
		{ "rotation-period-in-days", O_INT, 0, "Days between "
		    "rotations, 90-2560 (default 365).",
		    "RotationPeriodInDays" },
	} },
	{ "disable-key-rotation", "DisableKeyRotation", cmd_json,
	    "Stop rotating a key automatically.", {
		KEY_ID_ONLY,
	} },
	{ "get-key-rotation-status", "GetKeyRotationStatus", cmd_json,
	    "Show whether and when a key rotates.", {
		KEY_ID_ONLY,
	} },
	{ "rotate-key-on-demand", "RotateKeyOnDemand", cmd_json,
	    "Rotate a key now (at most 25 times per key).", {
		KEY_ID_ONLY,
	} },
	{ "list-key-rotations", "ListKeyRotations", cmd_json,
	    "List a key's rotations.", {
		KEY_ID_ONLY, PAGING,
	}, "Rotations" },
	{ "schedule-key-deletion", "ScheduleKeyDeletion", cmd_json,
	    "Delete a key, with its material, after 7-30 days.", {
		KEY_ID_ONLY,
		{ "pending-window-in-days", O_INT, 0, "Days to wait, 7-30 "
		    "(default 30).", "PendingWindowInDays" },
	} },
	{ "cancel-key-deletion", "CancelKeyDeletion", cmd_json,
	    "Keep a key scheduled for deletion (it comes back Disabled).", {
		KEY_ID_ONLY,
	} },
	{ "get-parameters-for-import", "GetParametersForImport", cmd_json,
	    "Get a public key (made in the HSM) and an import token, valid "
	    "24 hours, to wrap key material for a key of origin EXTERNAL.", {
		KEY_ID_ONLY,
		{ "wrapping-algorithm", O_STR, 1, "RSAES_OAEP_SHA_1 (what this "
		    "HSM unwraps).", "WrappingAlgorithm" },
		{ "wrapping-key-spec", O_STR, 1, "RSA_2048, RSA_3072 or "
		    "RSA_4096.", "WrappingKeySpec" },
	} },
	{ "import-key-material", "ImportKeyMaterial", cmd_json,
	    "Import 256-bit key material wrapped with "
	    "get-parameters-for-import's public key (RSAES-OAEP, SHA-1), "
	    "e.g. openssl pkeyutl -encrypt -pubin -keyform DER -inkey "
	    "pub.der -pkeyopt rsa_padding_mode:oaep -pkeyopt "
	    "rsa_oaep_md:sha1 -in key.bin -out wrapped.bin.", {
		KEY_ID_ONLY,
		{ "import-token", O_BLOB, 1, "The import token: base64 or "
		    "fileb://PATH.", "ImportToken" },
		{ "encrypted-key-material", O_BLOB, 1, "The wrapped "
		    "material: base64 or fileb://PATH.",
		    "EncryptedKeyMaterial" },
		{ "expiration-model", O_STR, 0, "KEY_MATERIAL_EXPIRES or "
		    "KEY_MATERIAL_DOES_NOT_EXPIRE (the default).",
		    "ExpirationModel" },
		{ "valid-to", O_STR, 0, "With KEY_MATERIAL_EXPIRES: when, "
		    "YYYY-MM-DDTHH:MM:SSZ.", "ValidTo" },
	} },
	{ "wrap-key-material", "WrapKeyMaterial", cmd_wrap_key_material,
	    "Wrap a 32-byte key file for import-key-material under "
	    "get-parameters-for-import's PublicKey, here with OpenSSL.", {
		{ "public-key", O_BLOB, 1, "The PublicKey: base64 or "
		    "fileb://PATH (DER)." },
		{ "key-material", O_BLOB, 1, "The 32-byte key: fileb://PATH "
		    "(or base64)." },
		{ "wrapping-algorithm", O_STR, 0, "RSAES_OAEP_SHA_1 (the "
		    "default) or RSAES_OAEP_SHA_256." },
	} },
	{ "delete-imported-key-material", "DeleteImportedKeyMaterial",
	    cmd_json, "Destroy a key's imported material (the key becomes "
	    "PendingImport).", {
		KEY_ID_ONLY,
	} },
	{ "admin rotate-domain-key", "RotateDomainKey",
	    cmd_rotate_domain_key, "Make a new domain key in the HSM and "
	    "re-wrap every stored key version under it, online; shows "
	    "progress (administrators only).", {
		{ "no-wait", O_FLAG, 0, "Start it and return at once." },
	} },
	{ "admin status", "GetDomainKeyStatus", cmd_json,
	    "Show the domain-key rotation's state (administrators only).", {
	} },
	{ "admin advance-clock", "AdvanceTestClock", cmd_json,
	    "TEST ONLY: move kmsd's clock forward (needs test_clock = yes "
	    "in kmsd.conf; administrators only).", {
		{ "days", O_INT, 0, "Days to move forward.", "Days" },
		{ "seconds", O_INT, 0, "Seconds to move forward.",
		    "Seconds" },
	} },
	{ "call", "raw", cmd_call,
	    "Send a raw JSON request ({\"Action\": ...}) and print the "
	    "reply.", {
		{ "request", O_POS, 1, "The request: JSON text or "
		    "file://PATH." },
	} },
};
#pragma GCC diagnostic pop
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The first positional parameter of cmd not yet given, or -1. */
static int
first_positional(const struct command *cmd, const struct run *R)
{
	int i;

	for (i = 0; i < MAX_OPTS && cmd->opts[i].name != NULL; i++) {
		if (cmd->opts[i].kind == O_POS && !R->v[i].set) {
			return i;
		}
	}
	return -1;
}

static const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0) {
			return &commands[i];
		}
	}
	return NULL;
}

static const char *const global_help =
    "Global options (before or after the command):\n"
    "  --endpoint URL          daemon endpoint (default: $KMS_ENDPOINT, "
    "else\n"
    "                          ipc://.../var/kmsd.sock found from the "
    "current\n"
    "                          directory upwards); --endpoint-url is the "
    "same\n"
    "  --output json|text      output format (default json)\n"
    "  --version               print kmsctl's version and exit\n"
    "  --query PATH            print only this part, e.g. "
    "KeyMetadata.KeyId\n"
    "                          or Keys[0].KeyId\n"
    "  --outfile PATH          write the Plaintext (else CiphertextBlob) "
    "raw to\n"
    "                          PATH (mode 0600) instead of printing it\n"
    "  --cli-connect-timeout S seconds to wait for the daemon (default "
    "10)\n"
    "  --cli-read-timeout S    seconds to wait for a reply (default 30; "
    "0 = none)\n";

static void
help_all(void)
{
	size_t i;

	printf("kmsctl — the kmsd command line, shaped like `aws kms`.\n\n"
	    "usage: kmsctl [options] <command> [parameters]\n\n"
	    "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++) {
		printf("  %-37s %s\n", commands[i].name, commands[i].summary);
	}
	printf("\n%s\nBlob parameters take base64, or fileb://PATH for raw "
	    "bytes (AWS CLI v2).\nErrors: exit 254 with the AWS CLI's error "
	    "line; usage errors exit 252.\n\nkmsctl <command> help shows a "
	    "command's options.\n", global_help);
}

static void
help_command(const struct command *c)
{
	int i;

	printf("%s\n\n%s\n\nSynopsis:\n  kmsctl %s", c->op, c->summary,
	    c->name);
	for (i = 0; i < MAX_OPTS && c->opts[i].name != NULL; i++) {
		const struct optspec *o = &c->opts[i];
		const char *meta = o->kind == O_FLAG ? "" :
		    o->kind == O_LIST || o->kind == O_TAGS ? " <value> ..." :
		    " <value>";
		if (o->kind == O_POS) {
			printf(" <%s>", o->name);
		} else {
			printf(o->required ? "\n    --%s%s" :
			    "\n    [--%s%s]", o->name, meta);
		}
	}
	printf("\n\nOptions:\n");
	for (i = 0; i < MAX_OPTS && c->opts[i].name != NULL; i++) {
		printf("  %s%s%s\n      %s\n",
		    c->opts[i].kind == O_POS ? "<" : "--", c->opts[i].name,
		    c->opts[i].kind == O_POS ? ">" : "", c->opts[i].help);
	}
	printf("\n%s", global_help);
}

/* ------------------------------------------------------------ main */

/* A global option at argv[*i]?  1 when consumed, -1 on error. */
static int
global_option(struct run *R, int argc, char **argv, int *i, int *help)
{
	const char *a = argv[*i];
	const char **dst = NULL;
	long *num = NULL;

	if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
		*help = 1;
		return 1;
	}
	if (strcmp(a, "--version") == 0) {
		printf("kmsctl %s\n", kms_version());
		exit(0);
	}
	if (strcmp(a, "--no-cli-pager") == 0 ||
	    strcmp(a, "--no-paginate") == 0) {
		return 1;
	}
	if (strcmp(a, "--endpoint") == 0 || strcmp(a, "--endpoint-url") ==
	    0) {
		dst = &R->endpoint;
	} else if (strcmp(a, "--output") == 0) {
		dst = &R->output;
	} else if (strcmp(a, "--query") == 0) {
		dst = &R->query;
	} else if (strcmp(a, "--outfile") == 0) {
		dst = &R->outfile;
	} else if (strcmp(a, "--cli-connect-timeout") == 0) {
		num = &R->connect_timeout_s;
	} else if (strcmp(a, "--cli-read-timeout") == 0) {
		num = &R->read_timeout_s;
	} else {
		return 0;
	}
	if (*i + 1 >= argc) {
		usage_error("argument %s: expected one argument", a);
		return -1;
	}
	(*i)++;
	if (num != NULL) {
		return parse_long(argv[*i], 0, 86400, num, a + 2) == 0 ? 1 :
		    -1;
	}
	*dst = argv[*i];
	if (dst == &R->output && strcmp(R->output, "json") != 0 &&
	    strcmp(R->output, "text") != 0) {
		usage_error("argument --output: Invalid choice, valid choices "
		    "are: json | text");
		return -1;
	}
	return 1;
}

/* A command option at argv[*i]; 0 or EXIT_USAGE. */
static int
command_option(struct run *R, int argc, char **argv, int *i)
{
	const char *a = argv[*i] + 2;
	struct optval *v;
	int k, neg = 0;

	if ((k = opt_index(R->cmd, a)) < 0 && strncmp(a, "no-", 3) == 0 &&
	    (k = opt_index(R->cmd, a + 3)) >= 0 &&
	    R->cmd->opts[k].kind == O_FLAG) {
		neg = 1;
	}
	if (k < 0 || R->cmd->opts[k].kind == O_POS) {
		usage_error("Unknown options: %s", argv[*i]);
		return EXIT_USAGE;
	}
	v = &R->v[k];
	v->set = 1;
	switch (R->cmd->opts[k].kind) {
	case O_FLAG:
		v->flag = !neg;
		return 0;
	case O_LIST:
	case O_TAGS:
		v->list = &argv[*i + 1];
		v->nlist = 0;
		while (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
			(*i)++;
			v->nlist++;
		}
		if (v->nlist == 0) {
			usage_error("argument %s: expected at least one "
			    "argument", argv[*i]);
			return EXIT_USAGE;
		}
		return 0;
	default:
		if (*i + 1 >= argc) {
			usage_error("argument %s: expected one argument",
			    argv[*i]);
			return EXIT_USAGE;
		}
		(*i)++;
		v->val = argv[*i];
		return 0;
	}
}

int
main(int argc, char **argv)
{
	struct run R;
	const char *help_topic = NULL;
	int i, k, r, help = 0, want_help_cmd = 0;

	secure_json_allocator();
	memset(&R, 0, sizeof(R));
	R.output = "json";
	R.connect_timeout_s = DEFAULT_CONNECT_TIMEOUT_S;
	R.read_timeout_s = 30;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		/* After the command, its own options come first (--output is
		 * encrypt-file's path, not the output format). */
		if (strncmp(a, "--", 2) == 0 && R.cmd != NULL &&
		    opt_index(R.cmd, a + 2) >= 0) {
			if (command_option(&R, argc, argv, &i) != 0) {
				return EXIT_USAGE;
			}
			continue;
		}
		if ((r = global_option(&R, argc, argv, &i, &help)) < 0) {
			return EXIT_USAGE;
		}
		if (r > 0) {
			continue;
		}
		if (strncmp(a, "--", 2) == 0 && R.cmd != NULL) {
			if (command_option(&R, argc, argv, &i) != 0) {
				return EXIT_USAGE;
			}
			continue;
		}
		if (strncmp(a, "-", 1) == 0 && a[1] != '\0' && (R.cmd == NULL ||
		    opt_index(R.cmd, "request") < 0)) {
			usage_error("Unknown options: %s", a);
			return EXIT_USAGE;
		}
		if (R.cmd == NULL && !want_help_cmd) {
			if (strcmp(a, "help") == 0) {
				want_help_cmd = 1;
				continue;
			}
			/* Two-word commands: "admin backup". */
			if (find_command(a) == NULL && i + 1 < argc) {
				char two[64];
				snprintf(two, sizeof(two), "%s %s", a,
				    argv[i + 1]);
				if ((R.cmd = find_command(two)) != NULL) {
					i++;
					continue;
				}
			}
			if ((R.cmd = find_command(a)) == NULL) {
				usage_error("argument command: Invalid choice: "
				    "'%s' (kmsctl help lists the commands)", a);
				return EXIT_USAGE;
			}
			continue;
		}
		if (want_help_cmd && help_topic == NULL && R.cmd == NULL) {
			help_topic = a;
			continue;
		}
		if (strcmp(a, "help") == 0 && R.cmd != NULL) {
			help = 1;
			continue;
		}
		/* A positional argument. */
		if (R.cmd != NULL && (k = first_positional(R.cmd, &R)) >= 0) {
			R.v[k].set = 1;
			R.v[k].val = a;
			continue;
		}
		usage_error("Unknown options: %s", a);
		return EXIT_USAGE;
	}

	if (want_help_cmd || (help && R.cmd == NULL)) {
		if (help_topic != NULL) {
			const struct command *c = find_command(help_topic);
			if (c == NULL) {
				usage_error("argument command: Invalid choice: "
				    "'%s'", help_topic);
				return EXIT_USAGE;
			}
			help_command(c);
		} else {
			help_all();
		}
		return 0;
	}
	if (help) {
		help_command(R.cmd);
		return 0;
	}
	if (R.cmd == NULL) {
		usage_error("the following arguments are required: command");
		return EXIT_USAGE;
	}
	for (k = 0; k < MAX_OPTS && R.cmd->opts[k].name != NULL; k++) {
		if (R.cmd->opts[k].required && !R.v[k].set) {
			usage_error("the following arguments are required: "
			    "%s%s", R.cmd->opts[k].kind == O_POS ? "" : "--",
			    R.cmd->opts[k].name);
			return EXIT_USAGE;
		}
	}

	if (R.query != NULL) {
		json_t *probe = json_object();
		int bad = 0;
		json_decref(query(probe, R.query, &bad));
		json_decref(probe);
		if (bad) {
			usage_error("argument --query: Bad value for --query "
			    "%s", R.query);
			return EXIT_USAGE;
		}
	}
	if ((r = kms_client_open(&R.c, R.endpoint)) != 0) {
		fprintf(stderr, "\nInvalid endpoint: %s (%s)\n",
		    R.endpoint != NULL ? R.endpoint : "(default)",
		    kms_strerror(r));
		return EXIT_OTHER;
	}
	kms_client_set_timeout(R.c, (int)(R.read_timeout_s * 1000));
	kms_client_set_connect_timeout(R.c, (int)(R.connect_timeout_s *
	    1000));
	r = R.cmd->fn(&R);
	kms_client_close(R.c);
	return r;
}
