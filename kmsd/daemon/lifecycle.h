/*
 * lifecycle.h — the scheduler's key lifecycle work (lifecycle.c):
 * automatic rotation and scheduled deletion, each claimed through a store
 * lease; and the drop of imported material (ops/op_import.c).
 *
 * Thread safety: kmsd_lifecycle_tend and kmsd_lifecycle_fini run on the
 * scheduler thread only; lifecycle_shred and import_drop_material on any
 * worker holding the key's lease.  Ownership: the scheduler's worker
 * (d->life_w) belongs to lifecycle.c.
 */
#ifndef KMSD_DAEMON_LIFECYCLE_H
#define KMSD_DAEMON_LIFECYCLE_H

#include <stdint.h>
#include <stddef.h>

#include "kmsd/kmsd.h"

/* A lease on a key's lifecycle work outlives a node that died holding it
 * by this much; then another node may take the work over. */
#define LEASE_TTL_MS 60000
/* The store lease covering key id's rotation and deletion: "key:<id>". */
void lease_name(const uint8_t id[16], char *out, size_t len);
/*
 * Claim lease name for holder (a name starting with this node's node_id)
 * for LEASE_TTL_MS.  A lease held by a kmsd of this host that no longer
 * runs (its pid is gone: killed, or restarted) is released first, so a
 * restarted node does not wait out the TTL of its own dead self.  0 or
 * KMS_ECONFLICT (another live holder) or the store's error.
 */
int lease_claim(struct worker *w, const char *name, const char *holder);
/*
 * The scheduler's lifecycle duties, called every tick (at most one pass a
 * second unless lifecycle_kick is set): automatic rotations that are due
 * (Enabled keys only: a disabled key catches up once enabled again) and
 * deletions whose date has come (the shred).  Each key's work is claimed
 * through the store's lease first.  Holds hsm_turn for reading.
 */
void kmsd_lifecycle_tend(struct kmsd *d);
/* Rotate due key ki (lease held); shred key id (lease held).  For the
 * scheduler and for tests. */
int lifecycle_shred(struct worker *w, const uint8_t id[16]);
void kmsd_lifecycle_fini(struct kmsd *d);
/* Imported material goes (deleted or expired; lease held): destroyed in
 * the HSM and erased from the store, the key PendingImport
 * (ops/op_import.c). */
int import_drop_material(struct worker *w, const uint8_t id[16]);

#endif
