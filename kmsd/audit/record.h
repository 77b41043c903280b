/*
 * record.h — the audit log's records, formatted (record.c): what
 * audit.c chains and writes.  A record is CloudTrail-shaped JSON without
 * its closing brace: audit.c appends "sequence" and "previousHash" as it
 * chains it.  Request parameters and response elements come from an
 * allow-list of fields (see audit.h for what is never written).
 *
 * Thread safety: any thread; the only state is per thread (the base of
 * the ids it draws, the text of the current second).  Ownership: the
 * buffers are the caller's.
 */
#ifndef KMSD_AUDIT_RECORD_H
#define KMSD_AUDIT_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kmsd/audit/audit.h"
#include "kmsd/keys/keycache.h"
#include "kmsd/kmsd.h"

/* A growing text buffer: p is malloc'd (the owner frees it); oom is set,
 * and later puts ignored, when it could not grow. */
struct rec_buf {
	char *p;
	size_t len, cap;
	int oom;
};

void rec_put(struct rec_buf *b, const char *s, size_t n);
void rec_puts(struct rec_buf *b, const char *s);

/* What a successful record of a cryptographic operation tells
 * GetKeyLastUsage (the table is audit.c's): a key (36-character id), the
 * operation (the request's string: valid while the request lives) and
 * the record's eventID.  A record gives at most REC_USES_PER_ITEM. */
#define REC_USES_PER_ITEM 2		/* ReEncrypt's two keys */
/* Whether GetKeyLastUsage tracks the operation named op. */
int rec_tracked_op(const char *op);
struct rec_use {
	char key[37];
	const char *op;
	char id[37];
};

/* The fields every record of one message shares, up to "eventName":
 * (version, caller, time, source); a Batch formats them once. */
void rec_api_prefix(struct rec_buf *b, const struct kmsd *d,
    const struct audit_call *call, const char *when);
/* A key a record names in "resources", with the version a ciphertext
 * names (0: none). */
#define REC_RES_MAX 4
struct rec_res {
	char arn[KEY_ARN_MAX];
	size_t len;
	uint32_t version;
};

/*
 * What the record of a message's previous item lends the next: a Batch's
 * items are often the same request (one key, one context), and the
 * record of an item whose text is the previous one's, when both
 * succeeded and name the same keys, is the previous record up to its
 * eventID, copied instead of formatted again.  Zeroed for each message.
 */
struct rec_memo {
	const char *raw;		/* the previous item's text */
	size_t rawlen;
	size_t start, mid;		/* its record is b->p + start; the
					 * first mid bytes are shared */
	const char *op;			/* its operation (its request's) */
	unsigned opc;
	struct rec_res rq;		/* its request's ciphertext's key */
	int has_rq;
	struct rec_res res[REC_RES_MAX];	/* its resources */
	int nres;
	int ok;				/* the next may share it */
};

/*
 * The record of one request or Batch item, appended to b: it begins with
 * prefix when that is not empty (else with rec_api_prefix's fields).
 * When it is a successful cryptographic operation, uses[*nuses...] get
 * what it tells GetKeyLastUsage (uses may be NULL).  memo (may be NULL)
 * carries what the message's previous record lends (see rec_memo).
 */
void rec_api_record(struct rec_buf *b, const struct kmsd *d,
    const struct audit_call *call, const struct audit_item *it,
    const char *when, const struct rec_buf *prefix, struct rec_memo *memo,
    struct rec_use *uses, size_t *nuses);
/* A service event's record (eventType AwsServiceEvent), appended to b;
 * resource_arn and details (borrowed) may be NULL. */
void rec_service_record(struct rec_buf *b, const struct kmsd *d,
    const char *name, const char *resource_arn, json_t *details,
    const char *when);

/* The decimal digits of v into out (at least 21 bytes); their number. */
size_t rec_u64_dec(uint64_t v, char *out);
/* A SHA-256 in hex, NUL-terminated. */
void rec_hex32(const uint8_t h[32], char out[65]);
/* Now in UTC with milliseconds, as "2026-12-05T17:00:00.000Z". */
void rec_utc_now(char out[32]);

#endif
