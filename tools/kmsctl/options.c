/*
 * options.c — kmsctl's command line: global options (before or after the
 * command), a command's own options (--x, --no-x, lists), positional
 * parameters, `help`, and the two-word commands (`admin backup`).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms.h"
#include "tools/kmsctl/kmsctl.h"

/* ------------------------------------------------------------ options */

int
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

	/* A name the command does not declare is kmsctl's own bug: it must
	 * not read as "not given". */
	if (i < 0) {
		fprintf(stderr, "kmsctl: internal error: %s has no option "
		    "--%s\n", R->cmd->name, name);
		abort();
	}
	return (i >= 0 && R->v[i].set) ? &R->v[i] : NULL;
}

const char *
opt_str(const struct run *R, const char *name)
{
	const struct optval *v = opt(R, name);

	return v != NULL ? v->val : NULL;
}

kms_grant_tokens
opt_grant_tokens(const struct run *R)
{
	const struct optval *gv = opt(R, "grant-tokens");
	kms_grant_tokens gt = { 0 };

	if (gv != NULL) {
		gt.tokens = (const char *const *)gv->list;
		gt.ntokens = (size_t)gv->nlist;
	}
	return gt;
}

int
opt_flag(const struct run *R, const char *name)
{
	const struct optval *v = opt(R, name);

	return v != NULL && v->flag;
}

int
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

/* A global option at argv[*i]?  1 when consumed, -1 on error. */
int
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

/* The whole command line into R; 0 or EXIT_USAGE. */
int
parse_command_line(struct run *R, int argc, char **argv, int *help,
    const char **help_topic, int *want_help_cmd)
{
	int i, k, r;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		/* After the command, its own options come first (--output is
		 * encrypt-file's path, not the output format). */
		if (strncmp(a, "--", 2) == 0 && R->cmd != NULL &&
		    opt_index(R->cmd, a + 2) >= 0) {
			if (command_option(R, argc, argv, &i) != 0) {
				return EXIT_USAGE;
			}
			continue;
		}
		if ((r = global_option(R, argc, argv, &i, help)) < 0) {
			return EXIT_USAGE;
		}
		if (r > 0) {
			continue;
		}
		if (strncmp(a, "--", 2) == 0 && R->cmd != NULL) {
			if (command_option(R, argc, argv, &i) != 0) {
				return EXIT_USAGE;
			}
			continue;
		}
		if (strncmp(a, "-", 1) == 0 && a[1] != '\0' && (R->cmd == NULL ||
		    opt_index(R->cmd, "request") < 0)) {
			usage_error("Unknown options: %s", a);
			return EXIT_USAGE;
		}
		if (R->cmd == NULL && !*want_help_cmd) {
			if (strcmp(a, "help") == 0) {
				*want_help_cmd = 1;
				continue;
			}
			/* Two-word commands: "admin backup". */
			if (find_command(a) == NULL && i + 1 < argc) {
				char two[64];
				snprintf(two, sizeof(two), "%s %s", a,
				    argv[i + 1]);
				if ((R->cmd = find_command(two)) != NULL) {
					i++;
					continue;
				}
			}
			if ((R->cmd = find_command(a)) == NULL) {
				usage_error("argument command: Invalid choice: "
				    "'%s' (kmsctl help lists the commands)", a);
				return EXIT_USAGE;
			}
			continue;
		}
		if (*want_help_cmd && *help_topic == NULL && R->cmd == NULL) {
			*help_topic = a;
			continue;
		}
		if (strcmp(a, "help") == 0 && R->cmd != NULL) {
			*help = 1;
			continue;
		}
		/* A positional argument. */
		if (R->cmd != NULL && (k = first_positional(R->cmd, R)) >= 0) {
			R->v[k].set = 1;
			R->v[k].val = a;
			continue;
		}
		usage_error("Unknown options: %s", a);
		return EXIT_USAGE;
	}
	return 0;
}
