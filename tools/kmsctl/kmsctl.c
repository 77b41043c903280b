/*
 * kmsctl — the command line of kmsd, shaped like `aws kms`: the same
 * command and option names, the same inputs (a plain blob value is base64
 * as in AWS CLI v2, fileb://PATH is raw bytes, file://PATH is text), the
 * same JSON output (4-space indent, binary fields base64), --output text,
 * --query, and the same error line and exit statuses (254 for a service
 * error, 252 for a usage error, 255 for anything else).
 *
 * This file is main(): the command line parsed, help or the command run.
 * The rest of tools/kmsctl/, by job:
 *   options.c      global and command options, positionals, two-word
 *                  commands (`admin backup`); opt() and its kin
 *   commands.c     the command table and the help printed from it
 *   input.c        the usage error line; files, blobs and text arguments
 *   shorthand.c    the AWS CLI shorthand: context, tags, lists, grant
 *                  constraints
 *   output.c       --query, --output json|text, --outfile, error lines
 *   cmd_keys.c     key commands through libkmsclient's typed calls
 *   cmd_crypto.c   the secret-carrying commands (encrypt, decrypt,
 *                  re-encrypt, generate-data-key, generate-random) and
 *                  encrypt-file / decrypt-file's options
 *   cmd_json.c     commands built as JSON from the table, and `call`
 *   cmd_envelope.c encrypt-file / decrypt-file (AWS Encryption SDK format)
 *   cmd_lifecycle.c, cmd_audit.c  key material, domain key, the audit log
 * Plaintexts are read into and returned in locked memory and wiped; JSON
 * strings are wiped on free (secure_json_allocator).  There is no state
 * beyond the parsed options.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kms.h"
#include "common/secmem.h"
#include "tools/kmsctl/kmsctl.h"

int
main(int argc, char **argv)
{
	struct run R;
	const char *help_topic = NULL;
	int k, r, help = 0, want_help_cmd = 0;

	secure_json_allocator();
	memset(&R, 0, sizeof(R));
	R.output = "json";
	R.connect_timeout_s = DEFAULT_CONNECT_TIMEOUT_S;
	R.read_timeout_s = 30;

	/* `kmsctl [global options] audit ...`: the audit log's tools
	 * (cmd_audit.c), with their own options; the endpoint given before
	 * the command reaches them as $KMS_ENDPOINT does. */
	for (k = 1, r = 0; k < argc && (r = global_option(&R, argc, argv,
	    &k, &help)) > 0; k++) {
	}
	if (r < 0) {
		return EXIT_USAGE;
	}
	if (k < argc && strcmp(argv[k], "audit") == 0) {
		if (R.endpoint != NULL && setenv("KMS_ENDPOINT", R.endpoint,
		    1) != 0) {
			return EXIT_OTHER;
		}
		return cmd_audit(argc - k, argv + k);
	}

	if (parse_command_line(&R, argc, argv, &help, &help_topic,
	    &want_help_cmd) != 0) {
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
