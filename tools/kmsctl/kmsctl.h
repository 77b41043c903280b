/*
 * kmsctl.h — what kmsctl's command files share: the command table's
 * shapes, the parsed command line, and the helpers that read inputs and
 * print replies as the AWS CLI does.  Single-threaded, one run per
 * process.
 */
#ifndef KMSCTL_H
#define KMSCTL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kms.h"

#define EXIT_USAGE 252		/* AWS CLI: bad command line */
#define EXIT_SERVICE 254	/* AWS CLI: the service returned an error */
#define EXIT_OTHER 255		/* AWS CLI: anything else */
#define INPUT_MAX (1024 * 1024)	/* a file argument: one message at most */
#define MAX_OPTS 12
#define DEFAULT_CONNECT_TIMEOUT_S 10

enum kind {
	O_STR,		/* one value; file://PATH reads text */
	O_INT,		/* one integer */
	O_BLOB,		/* base64, fileb://PATH raw, file://PATH base64 text */
	O_CTX,		/* k=v,k2=v2 or {"k":"v"} */
	O_LIST,		/* one or more values */
	O_TAGS,		/* TagKey=k,TagValue=v ... or JSON */
	O_FLAG,		/* --x / --no-x */
	O_POS,		/* positional argument */
	O_CONSTRAINTS,	/* EncryptionContextSubset={k=v},... or JSON */
};

struct optspec {
	const char *name;	/* without "--" */
	enum kind kind;
	int required;
	const char *help;
	const char *field;	/* request field, for commands sent as JSON */
};

struct optval {
	int set;
	const char *val;
	char **list;		/* into argv */
	int nlist;
	int flag;
};

struct run;
struct command {
	const char *name;
	const char *op;		/* AWS operation, for error lines */
	int (*fn)(struct run *);
	const char *summary;
	struct optspec opts[MAX_OPTS];
	const char *pages;	/* list field a paged reply accumulates */
};

struct run {
	const struct command *cmd;
	struct optval v[MAX_OPTS];
	const char *endpoint;
	const char *output;	/* "json" or "text" */
	const char *query;
	const char *outfile;
	long connect_timeout_s;
	long read_timeout_s;
	kms_client *c;
};

/* The option's parsed value, or NULL when not given. */
const struct optval *opt(const struct run *R, const char *name);
const char *opt_str(const struct run *R, const char *name);
/* A blob parameter (base64, fileb://PATH raw, file://PATH base64) into
 * locked memory; 0 or an exit status. */
int load_blob(const char *arg, kms_secret *out, const char *opt);
/* Print reply o (taken over) as --output/--query say; bin names the
 * binary field --outfile writes raw (p, n). */
int emit(struct run *R, json_t *o, const char *bin, const uint8_t *p,
    size_t n);

/* Send req; the parsed reply in *out (caller decrefs), or an exit status
 * with the AWS CLI's error line printed. */
int send_json(const struct run *R, const json_t *req, json_t **out);

/* cmd_lifecycle.c */
int cmd_wrap_key_material(struct run *R);
int cmd_rotate_domain_key(struct run *R);

#endif
