/*
 * cmd_envelope.h — kmsctl encrypt-file / decrypt-file: files and streams
 * in the AWS Encryption SDK's message format (cmd_envelope.c), their
 * options modelled on the AWS Encryption CLI's.
 */
#ifndef KMSCTL_CMD_ENVELOPE_H
#define KMSCTL_CMD_ENVELOPE_H

#include "kms.h"

struct envelope_args {
	int encrypt;			/* 1 encrypt-file, 0 decrypt-file */
	const char *input;		/* path, directory or "-" */
	const char *output;		/* path, directory or "-" */
	const char *key_id;		/* encrypt-file */
	const char *algorithm;		/* NULL = 0x0478 */
	const char *suffix;		/* NULL = ".encrypted"/".decrypted" */
	char **context;			/* "k=v" items */
	int ncontext;
	long frame_length;		/* 0 = 4096 */
	int recursive;
	int quiet;			/* no progress bar */
	kms_grant_tokens grant_tokens;
};

/* Runs the command; returns kmsctl's exit status (0, 252 usage, 254 a
 * service or message error, 255 anything else), errors on stderr. */
int envelope_run(kms_client *c, const struct envelope_args *a);

#endif
