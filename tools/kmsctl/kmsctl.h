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
#define USAGE_MSG_MAX 1024	/* one usage error message */
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

/* input.c */
/* The AWS CLI's usage error line on stderr (the caller returns
 * EXIT_USAGE). */
void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Send usage errors' messages (without the usage lines, cut at
 * USAGE_MSG_MAX) to fn instead of stderr; NULL restores stderr.  For the
 * unit test and the fuzz harness. */
void usage_error_sink(void (*fn)(const char *msg));
/* A whole file (at most INPUT_MAX bytes) into locked memory. */
int read_file(const char *path, kms_secret *out, const char *opt);
void input_free(kms_secret *s);
/* A blob parameter (base64, fileb://PATH raw, file://PATH base64) into
 * locked memory; 0 or an exit status. */
int load_blob(const char *arg, kms_secret *out, const char *opt);
/* A text parameter: file://PATH reads it into *hold (caller frees). */
int load_text(const char *arg, const char **out, char **hold,
    const char *opt);

/* options.c */
/* A global option (--endpoint, --output, ...) at argv[*i]?  1 when
 * consumed (with its value), 0 when not one, -1 on a usage error. */
int global_option(struct run *R, int argc, char **argv, int *i, int *help);
/* The option's parsed value, or NULL when not given.  name must be one
 * the command declares: any other is a bug in kmsctl and aborts. */
const struct optval *opt(const struct run *R, const char *name);
const char *opt_str(const struct run *R, const char *name);
/* 1 when flag name was given as --name, 0 when not or as --no-name. */
int opt_flag(const struct run *R, const char *name);
/* --grant-tokens, empty when not given. */
kms_grant_tokens opt_grant_tokens(const struct run *R);
/* The index of option name in cmd's table, or -1. */
int opt_index(const struct command *cmd, const char *name);
int parse_long(const char *s, long lo, long hi, long *out,
    const char *opt_name);
/* The whole command line into R (help asked for in *help, `kmsctl help
 * TOPIC` in *help_topic / *want_help_cmd); 0 or EXIT_USAGE. */
int parse_command_line(struct run *R, int argc, char **argv, int *help,
    const char **help_topic, int *want_help_cmd);

/* commands.c */
const struct command *find_command(const char *name);
/* Every command's table entry in turn (i from 0), NULL after the last. */
const struct command *command_at(size_t i);
void help_all(void);
void help_command(const struct command *c);

/* output.c */
/* Print reply o (taken over) as --output/--query say; bin names the
 * binary field --outfile writes raw (p, n). */
int emit(struct run *R, json_t *o, const char *bin, const uint8_t *p,
    size_t n);
/* The --query expression path applied to root (new reference or NULL);
 * *bad set when path cannot be parsed. */
json_t *query(json_t *root, const char *path, int *bad);
int put_b64(json_t *o, const char *name, const uint8_t *p, size_t n);
/* The AWS CLI's error line for a failed call; the exit status. */
int fail(const struct run *R, int r, const kms_error_info *ei);
char *iso8601(double t, char *buf, size_t len);
/* Date fields (seconds since the epoch) of v made ISO 8601, recursively. */
void iso_dates(json_t *v);

/* cmd_json.c */
/* Send req; the parsed reply in *out (caller decrefs), or an exit status
 * with the AWS CLI's error line printed. */
int send_json(const struct run *R, const json_t *req, json_t **out);
int cmd_json(struct run *R);
int cmd_call(struct run *R);

/* cmd_keys.c */
int cmd_create_key(struct run *R);
int cmd_describe_key(struct run *R);
int cmd_list_keys(struct run *R);
int cmd_update_key_description(struct run *R);
int cmd_enable_disable(struct run *R);

/* cmd_crypto.c */
int cmd_envelope(struct run *R);
int cmd_encrypt(struct run *R);
int cmd_decrypt(struct run *R);
int cmd_re_encrypt(struct run *R);
int cmd_generate_data_key(struct run *R);
int cmd_generate_data_key_without_plaintext(struct run *R);
int cmd_generate_random(struct run *R);

/* cmd_lifecycle.c */
int cmd_wrap_key_material(struct run *R);
int cmd_rotate_domain_key(struct run *R);

/* cmd_audit.c */
int cmd_audit(int argc, char **argv);

#endif
