/*
 * principal.c — a peer's uid, gid and pid as the transport proved them,
 * resolved into the names policies speak of (user:, uid:, group:).
 *
 * passwd and group are read once per caller a minute, not per request: a
 * small cache of recent callers, guarded by its own mutex (held only over
 * the table, never over the passwd/group look-ups).  The cache is
 * process-wide by nature (names are the system's, not one daemon's).
 */
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/mutex.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/frontend/principal.h"

#define PRINCIPAL_CACHE 64		/* callers remembered */
#define PRINCIPAL_TTL_MS 60000		/* re-read passwd/group after */

/* Names of recent callers, so passwd and group are not read per request:
 * one per process, as the names are the system's, with its mutex in it. */
static struct {
	struct kms_mutex mu;		/* the slots */
	struct {
		struct principal p;
		int64_t at;
		int used;
	} slot[PRINCIPAL_CACHE];
} pcache = { .mu = KMS_MUTEX_INITIALIZER };

static void
resolve(struct principal *p)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	gid_t gids[PRINCIPAL_GROUPS_MAX];
	int ngids = PRINCIPAL_GROUPS_MAX, i;
	char buf[16384];

	snprintf(p->uid_name, sizeof(p->uid_name), "uid:%u", (unsigned)p->uid);
	snprintf(p->name, sizeof(p->name), "%s", p->uid_name);
	p->ngroups = 0;
	if (getpwuid_r(p->uid, &pw, buf, sizeof(buf), &pwp) != 0 ||
	    pwp == NULL) {
		return;
	}
	snprintf(p->name, sizeof(p->name), "user:%s", pw.pw_name);
	if (getgrouplist(pw.pw_name, p->gid, gids, &ngids) < 0) {
		ngids = PRINCIPAL_GROUPS_MAX;	/* truncated: keep the first */
	}
	for (i = 0; i < ngids && p->ngroups < PRINCIPAL_GROUPS_MAX; i++) {
		if (getgrgid_r(gids[i], &gr, buf, sizeof(buf), &grp) == 0 &&
		    grp != NULL) {
			snprintf(p->groups[p->ngroups++], sizeof(p->groups[0]),
			    "group:%s", gr.gr_name);
		}
	}
}

void
principal_from_uid(struct principal *p, uid_t uid, gid_t gid, pid_t pid)
{
	int64_t t = now_ms();
	int i, slot = -1, oldest = 0;

	kms_mutex_lock(&pcache.mu);
	for (i = 0; i < PRINCIPAL_CACHE; i++) {
		if (pcache.slot[i].used && pcache.slot[i].p.uid == uid &&
		    pcache.slot[i].p.gid == gid &&
		    t - pcache.slot[i].at < PRINCIPAL_TTL_MS) {
			*p = pcache.slot[i].p;
			kms_mutex_unlock(&pcache.mu);
			p->pid = pid;
			return;
		}
		if (!pcache.slot[i].used && slot < 0) {
			slot = i;
		}
		if (pcache.slot[i].at < pcache.slot[oldest].at) {
			oldest = i;
		}
	}
	kms_mutex_unlock(&pcache.mu);
	memset(p, 0, sizeof(*p));
	p->uid = uid;
	p->gid = gid;
	snprintf(p->source, sizeof(p->source), "ipc");
	resolve(p);
	kms_mutex_lock(&pcache.mu);
	if (slot < 0) {
		slot = oldest;
	}
	pcache.slot[slot].p = *p;
	pcache.slot[slot].at = t;
	pcache.slot[slot].used = 1;
	kms_mutex_unlock(&pcache.mu);
	p->pid = pid;
}
