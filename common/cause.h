/*
 * cause.h — why a request failed inside, for the one who must fix it.
 *
 * AWS's error names say little about a dependency that failed
 * (KMSInternalException covers a full disk and an HSM that refused), so
 * the code that talks to a dependency (the store, the HSM) notes here, per
 * thread, which one failed and how, in words fit for a client: no
 * secrets, no paths, no SQL, only the dependency and its error's name.
 * The dispatcher clears the note when a request (or a Batch item) starts
 * and appends it, with the request id, to the message of an internal or
 * dependency error.  The first note of a request wins: it is the cause,
 * later ones are consequences.  Thread-safe (thread-local).
 */
#ifndef COMMON_CAUSE_H
#define COMMON_CAUSE_H

#include <stddef.h>

#define CAUSE_MAX 160

/* Note why this thread's request is failing, unless a note is there. */
void cause_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* This thread's note, or "" when none. */
const char *cause_get(void);
void cause_clear(void);

#endif
