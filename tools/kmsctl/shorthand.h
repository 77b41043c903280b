/*
 * shorthand.h — the AWS CLI shorthand parsers of kmsctl (shorthand.c):
 * encryption context, tags, list options and grant constraints.  Each
 * returns 0, or EXIT_USAGE with the usage error line printed (EXIT_OTHER
 * when memory runs out); on error nothing is left to free.
 */
#ifndef KMSCTL_SHORTHAND_H
#define KMSCTL_SHORTHAND_H

#include <jansson.h>

#include "kms.h"
#include "tools/kmsctl/kmsctl.h"

/* An encryption context: its pairs point into j or into text. */
struct ctxarg {
	kms_context ctx;
	kms_context_pair *pairs;
	json_t *j;
	char *text;
};

/* arg: k=v,k2=v2, a JSON object, or file://PATH holding either; opt
 * names the option in error lines.  Free with ctxarg_free. */
int parse_context(const char *arg, struct ctxarg *a, const char *opt);
void ctxarg_free(struct ctxarg *a);

/* Tags: TagKey=k,TagValue=v ... or a JSON array of such objects. */
struct tagarg {
	kms_tag *tags;
	size_t ntags;
	json_t *j;
	char **texts;
	size_t ntexts;
};

/* v: one TagKey=k,TagValue=v per word, or one JSON array.  Free with
 * tagarg_free. */
int parse_tags(const struct optval *v, struct tagarg *a);
void tagarg_free(struct tagarg *a);

/* v: words, "a,b", or one JSON array of strings: a JSON array in *out. */
int list_json(const struct optval *v, const char *opt, json_t **out);

/* arg: EncryptionContextSubset={k=v,...},EncryptionContextEquals={...},
 * a JSON object, or file://PATH: a JSON object in *out. */
int constraints_json(const char *arg, json_t **out);

#endif
