/*
 * err.h — the one error space (defined in include/kms.h) and its table.
 *
 * Every error maps to exactly one AWS KMS error name in common/err.c; the
 * daemon sends that name as "__type", the client maps it back.  Thread-safe
 * (static tables only).
 */
#ifndef KMS_COMMON_ERR_H
#define KMS_COMMON_ERR_H

#include "kms.h"

#include <assert.h>

/* Internal invariant: abort in every build, never a silent continue. */
#define KMS_ASSERT(x) do { if (!(x)) { kms_assert_fail(#x, __FILE__, __LINE__); } } while (0)
/* 1 for the codes of client-side conditions (KMS_EINVAL … KMS_EIO), which
 * never name a daemon's answer; since codes are only ever appended, the
 * AWS errors added later sit after them. */
int err_is_client_side(int err);
void kms_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

#endif
