/*
 * audit.h — the audit log: one CloudTrail-shaped JSON line per request
 * (one per item of a Batch), allowed or denied, succeeded or failed, and
 * one per service event (start, stop, HSM lost and back, module recycles,
 * automatic rotations, deletions at the end of their window, imported
 * material expiring, the domain key's rotation begun and completed),
 * written before the reply is sent.
 *
 * Tamper evidence: every line ends with "sequence" (counting every line
 * ever written, across files) and "previousHash", the SHA-256 (hex) of the
 * previous line's bytes without its newline, so the chain runs across
 * rotated files.  Every audit_checkpoint_records lines or
 * audit_checkpoint_seconds, at every rotation, at start-up and at
 * shutdown, an AuditCheckpoint line carries the chain head, the sequence
 * it covers and the time, signed inside the HSM by the audit signing key
 * (Ed25519, or ECDSA P-256; hsm/sign.c).  `kmsctl audit verify` checks it
 * all offline (tools/kmsctl/cmd_audit.c; the format is described there and
 * in README).
 *
 * Never written: plaintexts, data keys, ciphertext blobs, grant tokens
 * (their grants' ids instead), PINs, policy bodies (their SHA-256
 * instead).  Request parameters and response elements are taken from an
 * allow-list of fields, so a field nobody listed is never logged.
 *
 * Files: <audit_dir>/kmsd-audit-NNNNNNNN.jsonl, a new one at every start
 * and when one reaches audit_rotate_bytes or audit_rotate_seconds; a file
 * is only ever appended to, except that at start-up a partial last line
 * (a write cut short by a crash) is cut off, and that is recorded.
 *
 * Durability (audit_sync): every record is written (write(2)) before the
 * reply leaves, so a killed kmsd loses none that was answered; an
 * fdatasync makes them durable every audit_sync_ms for all records
 * written meanwhile (group), or before each reply (request, one fdatasync
 * shared by every record written meanwhile).  When a record cannot be
 * written (disk full, I/O error) and audit_required is set, requests are
 * refused with DependencyTimeoutException until the log can be written
 * again, which kmsd finds out by itself (and records).
 *
 * Thread-safe: any thread may call any function; records are chained
 * under one mutex, and one thread of the log's own syncs, signs and
 * rotates.  Lock order: the HSM turn (kmsd.h) before the log's mutex;
 * callers of audit_calls must not hold the turn (with audit_sync =
 * request it waits for the log's thread, which takes the turn to sign;
 * dispatch writes after releasing it).
 */
#ifndef KMSD_AUDIT_H
#define KMSD_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"

struct audit;

/* A request's origin beyond its principal; NULL fields are left out. */
struct audit_origin {
	const char *transport;		/* "ipc" (the default), "https" */
	const char *address;		/* the peer's address */
	const char *access_key;		/* SigV4 access key id */
	const char *user_agent;
};

/* What dispatch learns while one request (or Batch item) runs: the keys
 * it was authorised against, in order, and the grant that allowed it. */
#define AUDIT_NOTE_KEYS 2
struct audit_note {
	char arn[AUDIT_NOTE_KEYS][KEY_ARN_MAX];
	int narn;
	char grant_id[72];
};

struct audit_call {
	const struct principal *p;	/* NULL: the caller is unknown */
	const struct audit_origin *o;	/* NULL: IPC, from p */
	const char *request_id;
	store *st;			/* names grants from tokens; may be NULL */
};

struct audit_item {
	json_t *req;			/* the request (NULL: unparseable) */
	json_t *resp;			/* its reply (NULL: none) */
	const struct audit_note *note;	/* may be NULL */
	size_t index, count;		/* in a Batch of count; 0: not */
	/* A Batch item's text as it came (NULL: not known): items of the
	 * same text that succeeded alike share most of their record. */
	const char *raw;
	size_t rawlen;
};

/*
 * Open the log (d->cfg.audit_*): find the signing key pair in the HSM
 * (generated when absent), cut a partial last line, start a new file and
 * write the start-up records (configuration in force, the key's
 * fingerprint, also logged) and a checkpoint.  Sets d->audit; with
 * cfg.audit off does nothing.  0, or an error with a sentence in err.
 */
int audit_open(struct kmsd *d, char *err, size_t errlen);
/* Record the shutdown, sign, sync and close; d->audit becomes NULL. */
void audit_close(struct kmsd *d);

/* May a request be served?  0, or KMS_EDEPENDENCYTIMEOUT with a sentence
 * in msg when the log cannot be written and audit_required is set.  a may
 * be NULL (auditing off).  A request admitted counts as in flight until
 * audit_done: the log learns from it whether callers come one at a time
 * (each writes its own record) or together (the log's thread gathers
 * them into one write). */
int audit_admit(struct audit *a, char *msg, size_t msglen);
/* The request audit_admit let in has its records staged (or failed). */
void audit_done(struct audit *a);
/* Stage the records of n items of one message (a Batch: one per item);
 * returns once they are staged, where they outlive a crash of kmsd, and
 * written and synced with audit_sync = request.  0, or
 * KMS_EDEPENDENCYTIMEOUT when they could not be staged (or written, with
 * audit_sync = request) and audit_required is set: the reply must then
 * not be sent. */
int audit_calls(struct audit *a, const struct audit_call *call,
    const struct audit_item *items, size_t n);
/*
 * For front ends, once a reply is sent: a request alone in flight leaves
 * its staged record for its own thread to write now, off the path its
 * caller waited on (else the log's thread writes it at its next tick).
 * Cheap when nothing is owed.
 */
void audit_after_reply(void);
/*
 * For front ends, about one request they answered (or closed) without
 * dispatch, under the id they gave it: req is its parsed request (NULL:
 * none), reply the answer, as dispatch would record them.  p and o may
 * be NULL.
 */
int audit_one(struct audit *a, const struct principal *p,
    const struct audit_origin *o, const char *request_id, json_t *req,
    json_t *reply);
/*
 * The same for a raw message (parsed here, never logged as is: an
 * unknown caller on IPC), under a new id.
 */
int audit_request(struct kmsd *d, const struct principal *p,
    const struct audit_origin *o, const void *req, size_t len,
    json_t *reply);
/*
 * A service event (eventType AwsServiceEvent): name is its eventName
 * (e.g. "RotateKey", "DeleteKey", "HsmUnavailable"), details (borrowed,
 * may be NULL) its serviceEventDetails, resource_arn (may be NULL) the
 * key it concerns.  Returns once it is written, never waiting for a sync
 * (no reply depends on it), so the caller may hold the HSM turn.  0 or
 * an error (logged).
 */
int audit_service_event(struct audit *a, const char *name,
    const char *resource_arn, json_t *details);

/* The time now as records write it (UTC, milliseconds, "…Z"), for a
 * service event's details. */
void audit_time_now(char out[32]);

/*
 * GetKeyLastUsage: the last successful cryptographic operation recorded
 * for key id (36-character form) since tracking_ms (kmsd's start: the
 * table lives in memory).  1 and *out filled when there is one, else 0.
 */
struct audit_usage {
	char op[40];
	int64_t at_ms;
	char event_id[37];
	char request_id[37];
};
int audit_last_usage(struct audit *a, const char *key_id,
    struct audit_usage *out, int64_t *tracking_ms);

/* A fresh id (UUID version 4 in form: a random per-thread base plus a
 * counter) for a request; the HTTP front end gives it as x-amzn-RequestId. */
void audit_new_id(char out[37]);
/* The signing key's public half: PEM (SubjectPublicKeyInfo), fingerprint
 * ("SHA256:" base64) and algorithm name.  0 or KMS_EUNSUPPORTED (off). */
int audit_public_key(struct audit *a, char *pem, size_t pemlen, char *fp,
    size_t fplen, const char **alg);

#endif
