/*
 * op_backup.c — CreateBackup, kmsd's own administrative operation (no AWS
 * counterpart): an online, consistent backup of the store and the token
 * into a directory on kmsd's machine (kmsd/daemon/backup.c).  Only the
 * administrators named in the configuration may call it; policies and
 * grants cannot allow it, since a backup holds every key.
 */
#include <limits.h>
#include <stdio.h>

#include "common/err.h"
#include "kmsd/authz/authz.h"
#include "kmsd/daemon/backup.h"
#include "kmsd/ops/op.h"

int
op_create_backup(struct opctx *c, json_t **resp)
{
	struct backup_result res;
	const char *dir;
	char err[512];
	int pins = 0, r;

	if (!authz_is_admin(c->w->d, c->p)) {
		return op_fail(c, KMS_EACCESSDENIED, "User: %s is not "
		    "authorized to perform: kms:CreateBackup because only the "
		    "administrators named in kmsd's configuration may",
		    c->p->name);
	}
	if ((r = req_string(c, "Directory", 1, 2, PATH_MAX / 2, &dir)) != 0 ||
	    (r = req_bool(c, "IncludePins", &pins)) != 0) {
		return r;
	}
	err[0] = '\0';
	if ((r = backup_take(c->w, dir, pins, &res, err, sizeof(err))) != 0) {
		return op_fail(c, r, "%s", err[0] != '\0' ? err :
		    "The backup failed");
	}
	*resp = json_pack("{s:s, s:I, s:I, s:I, s:b, s:b}", "Directory", dir,
	    "KeyCount", (json_int_t)res.keys, "FileCount",
	    (json_int_t)res.files, "Bytes", (json_int_t)res.bytes,
	    "TokenIncluded", res.token_included, "PinsIncluded", pins);
	return *resp != NULL ? 0 : op_fail(c, KMS_EINTERNAL, "out of memory");
}
