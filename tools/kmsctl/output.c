/*
 * output.c — kmsctl's replies as the AWS CLI prints them: --query (the
 * JMESPath subset), --output json (4-space indent) and text, --outfile,
 * dates in ISO 8601, and the error line of a failed call.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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
#include "common/io.h"
#include "common/b64.h"
#include "common/secmem.h"
#include "tools/kmsctl/kmsctl.h"

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

json_t *
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
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "kmsctl: cannot write %s: %s\n", path,
		    strerror(errno));
		return EXIT_OTHER;
	}
	(void)fchmod(fd, 0600);
	if (io_write_all(fd, p, n) != 0) {
		fprintf(stderr, "kmsctl: cannot write %s: %s\n", path,
		    strerror(errno));
		close(fd);
		return EXIT_OTHER;
	}
	if (close(fd) != 0) {
		fprintf(stderr, "kmsctl: cannot write %s: %s\n", path,
		    strerror(errno));
		return EXIT_OTHER;
	}
	return 0;
}

/* Put bytes into o as base64 (NULL p with n 0 is the empty string). */
int
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
int
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

char *
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

/* Dates come as seconds since the epoch; the AWS CLI prints ISO 8601. */
void
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
