/*
 * credentials.h — SigV4 access keys: access key id → secret and principal,
 * from a file only its owner may read (mode 0600, owned by kmsd's user).
 *
 * File format, one key a line, '#' comments:
 *
 *   <access key id> <secret access key> [<principal>]
 *
 * The principal (e.g. user:alice, so that one key policy serves a caller
 * over IPC and HTTP alike) defaults to access-key:<id>.
 *
 * Secrets live in locked, guard-paged memory and are handed out only to a
 * callback, under a read lock, never copied out.  The file is read again
 * when it changes (checked at most once a second), so `kmsd credentials`
 * takes effect without a restart; a file that becomes unsafe (mode, owner)
 * empties the set.  Thread-safe.
 */
#ifndef KMSD_FRONTEND_CREDENTIALS_H
#define KMSD_FRONTEND_CREDENTIALS_H

#include <stddef.h>
#include <stdint.h>

#define CREDS_MAX 4096			/* keys in one file */
#define CREDS_FILE_MAX (1024 * 1024)	/* bytes */
#define CREDS_SECRET_MAX 128
#define CREDS_AKID_MIN 16		/* AWS's bounds on an access key id */
#define CREDS_AKID_MAX 128
#define CREDS_PRINCIPAL_MAX 159

struct creds;

/* Load path (a missing file is an empty set).  0, or an error with a
 * sentence in err (unsafe mode or owner, a malformed line). */
int creds_open(const char *path, struct creds **out, char *err,
    size_t errlen);
void creds_close(struct creds *c);

/*
 * akid's principal, and when key is not NULL its SigV4 signing key for
 * the scope date/region/service (derived once per scope and kept, in
 * locked memory, until the file changes).  0; -1 when akid is unknown;
 * -2 when its secret is too long to sign with.
 */
int creds_signing_key(struct creds *c, const char *akid, const char *date,
    const char *region, const char *service, uint8_t key[32],
    char *principal, size_t plen);

/*
 * `kmsd credentials add [--principal P] [--secret-stdin]`, `list`,
 * `remove ID`: edits path in place (a new file renamed over the old).
 * A generated secret is printed once, to standard output; a given one is
 * read from standard input, never from the command line.  Returns the
 * process exit status.
 */
int creds_command(const char *path, int argc, char **argv);

#endif
