/*
 * principal.h — who is calling, as the transport proved it (never from the
 * request), and the resolution of a peer's uid into names (principal.c).
 *
 * Thread safety: principal_from_uid may be called from any thread; its
 * cache of recent callers' names is guarded by the cache's own mutex.
 * Ownership: a struct principal is a value the caller fills and keeps.
 */
#ifndef KMSD_FRONTEND_PRINCIPAL_H
#define KMSD_FRONTEND_PRINCIPAL_H

#include <sys/types.h>

#define PRINCIPAL_MAX 160
#define PRINCIPAL_GROUPS_MAX 32

/* Who is calling, as the transport proved it (never from the request). */
struct principal {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char name[PRINCIPAL_MAX];	/* preferred form: user:<name> */
	char uid_name[32];		/* uid:<n> */
	char groups[PRINCIPAL_GROUPS_MAX][80];	/* group:<name> */
	int ngroups;
	char source[64];		/* "ipc" or a peer address */
};

/* Fill a principal for a uid/gid/pid (names resolved, cached). */
void principal_from_uid(struct principal *p, uid_t uid, gid_t gid,
    pid_t pid);

#endif
