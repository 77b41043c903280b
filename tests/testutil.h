/*
 * testutil.h — helpers shared by the test binaries: a throwaway SoftHSM2
 * token in a temp dir, and a real kmsd started on it.  Binaries come from
 * $KMS_BIN_DIR (set by tests/run-all; default ./bin).
 */
#ifndef KMS_TESTUTIL_H
#define KMS_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "kms.h"

struct tu_env {
	char dir[256];		/* temp state dir, removed by tu_env_destroy */
	char conf[300];		/* dir/kmsd.conf */
	char endpoint[300];	/* ipc://dir/kmsd.sock */
	char module[256];	/* PKCS#11 module kmsd loads */
	pid_t kmsd;		/* 0 when not running */
};

/* Make a temp dir with a token (scripts/hsm-init) and a kmsd.conf; extra
 * is appended to kmsd.conf (may be NULL).  Returns 0 or -1. */
int tu_env_init(struct tu_env *e, const char *extra_conf);
/* Start kmsd -c conf and wait until the socket answers; 0 or -1. */
int tu_kmsd_start(struct tu_env *e);
/* SIGTERM, wait; returns kmsd's exit status (0 for a clean stop). */
int tu_kmsd_stop(struct tu_env *e);
/* Stop kmsd, remove the dir; returns kmsd's exit status (0: clean, no
 * sanitizer or leak report). */
int tu_env_destroy(struct tu_env *e);
/* Path of a binary in KMS_BIN_DIR. */
const char *tu_bin(const char *name);
/* Run a shell command, capture stdout (NUL-terminated, malloc'd) and exit
 * status; stderr captured too if err is not NULL. */
int tu_run(const char *cmd, char **out, char **err);
/* Strip trailing newlines in place (command output); returns s. */
char *tu_trimnl(char *s);
/* Seconds on CLOCK_MONOTONIC. */
double tu_now_s(void);
/* Descriptors process pid holds (0: this one); -1 if it cannot be read. */
int tu_open_fds(pid_t pid);
/* 1 when kmsd's log (dir/kmsd.log) holds the text what. */
int tu_log_says(const struct tu_env *e, const char *what);
/* Lines of e's kmsd.log holding what (a plain string), or -1. */
int tu_log_count(const struct tu_env *e, const char *what);
/* Records of e's audit log (dir/audit, every file) holding the plain
 * string a and, unless NULL, b; -1 when the directory cannot be read. */
int tu_audit_count(const struct tu_env *e, const char *a, const char *b);
/* kmsctl audit verify over e's audit files: its exit status (0: the
 * chain and every checkpoint verify). */
int tu_audit_verify(const struct tu_env *e);

/* Fail the test (cmocka) naming what, the code and kmsd's error, unless
 * r is 0. */
void tu_must(int r, const kms_error_info *ei, const char *what);
/* CreateKey through c with Description desc (may be NULL); the key id in
 * id, and its ARN in arn (KMS_ARN_MAX bytes) unless arn is NULL. */
void tu_new_key(kms_client *c, const char *desc, char id[KMS_KEY_ID_LEN + 1],
    char *arn);

#endif
