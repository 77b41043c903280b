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

#include "kmsd/daemon/clock.h"
#include "kmsd/frontend/principal.h"

#define PRINCIPAL_CACHE 64		/* callers remembered */
#define PRINCIPAL_TTL_MS 60000		/* re-read passwd/group after */

/* Names of recent callers, so passwd and group are not read per request. */
static struct {
	struct principal p;
	int64_t at;
	int used;
} pcache[PRINCIPAL_CACHE];
static pthread_mutex_t pcache_mu = PTHREAD_MUTEX_INITIALIZER;

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

	pthread_mutex_lock(&pcache_mu);
	for (i = 0; i < PRINCIPAL_CACHE; i++) {
		if (pcache[i].used && pcache[i].p.uid == uid &&
		    pcache[i].p.gid == gid &&
		    t - pcache[i].at < PRINCIPAL_TTL_MS) {
			*p = pcache[i].p;
			pthread_mutex_unlock(&pcache_mu);
			p->pid = pid;
			return;
		}
		if (!pcache[i].used && slot < 0) {
			slot = i;
		}
		if (pcache[i].at < pcache[oldest].at) {
			oldest = i;
		}
	}
	pthread_mutex_unlock(&pcache_mu);
	memset(p, 0, sizeof(*p));
	p->uid = uid;
	p->gid = gid;
	snprintf(p->source, sizeof(p->source), "ipc");
	resolve(p);
	pthread_mutex_lock(&pcache_mu);
	if (slot < 0) {
		slot = oldest;
	}
	pcache[slot].p = *p;
	pcache[slot].at = t;
	pcache[slot].used = 1;
	pthread_mutex_unlock(&pcache_mu);
	p->pid = pid;
}
