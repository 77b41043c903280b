/*
 * validate.h — AWS's request validation, before an operation runs.
 *
 * AWS KMS checks every member of a request against the constraints of its
 * API model (required, length, value range, pattern, enum) before the
 * operation looks at it, and answers all the violations at once:
 *
 *   2 validation errors detected: Value null at 'keyId' failed to satisfy
 *   constraint: Member must not be null; Value at 'plaintext' failed to
 *   satisfy constraint: Member must have length less than or equal to 4096
 *
 * naming each member in lowerCamelCase ("keyId", "tags.1.member.tagKey").
 * validate_request does the same for the AWS operations kmsd serves, from
 * a table of the model's constraints (validate.c); the operations' own
 * readers (op.h) stay as the second line.  Pure: no globals, thread-safe.
 */
#ifndef KMSD_DISPATCH_VALIDATE_H
#define KMSD_DISPATCH_VALIDATE_H

#include <stddef.h>

#include <jansson.h>

/*
 * Check req (a request object) against operation op's constraints.
 * 0 when it satisfies them, when op has none here, or when a member has
 * the wrong JSON type (a SerializationException, which the operation's
 * reader of that member reports); else KMS_EVALIDATION with AWS's message
 * in msg (cut to msgsz).
 */
int validate_request(const char *op, json_t *req, char *msg, size_t msgsz);

/*
 * How a refused value is quoted: whole up to VALIDATE_QUOTE_WHOLE bytes
 * (AWS quotes every value whole; LocalStack's snapshots of AWS quote a
 * 257-character tag value), else its first VALIDATE_QUOTE_CUT bytes (cut
 * at a character boundary) and "...", so that the member's name and the
 * constraint after it still fit an error message (OP_MSG_MAX).
 * validate_quote_len gives the bytes to quote and whether "..." follows.
 */
#define VALIDATE_QUOTE_WHOLE 512
#define VALIDATE_QUOTE_CUT 256
int validate_quote_len(const char *s, int *cut);

/* name with its first letter lowered, as AWS names members in messages
 * ("KeyId" -> "keyId"), into buf. */
const char *validate_member_name(const char *name, char *buf, size_t bufsz);

#endif
