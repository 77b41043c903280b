/*
 * policy_actions.c — the AWS KMS operation names a policy may name, and
 * the subset AWS allows in grants.
 *
 * The table is sorted case-insensitively so lookups are a binary search
 * (a test checks the order).  Policies may name operations kmsd does not
 * implement (custom key stores, multi-Region keys): AWS accepts them in a
 * key policy and so do we; they simply never match a request.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/policy_int.h"

#define TAKES_CONTEXT 1		/* grant constraints apply (AWS) */

struct action_row {
	const char *name;
	uint32_t grant_bit;	/* POLICY_GOP_*, 0 if not a grant operation */
	int flags;
};

static const struct action_row actions[] = {
	{ "CancelKeyDeletion", 0, 0 },
	{ "ConnectCustomKeyStore", 0, 0 },
	{ "CreateAlias", 0, 0 },
	{ "CreateCustomKeyStore", 0, 0 },
	{ "CreateGrant", POLICY_GOP_CREATE_GRANT, 0 },
	{ "CreateKey", 0, 0 },
	{ "Decrypt", POLICY_GOP_DECRYPT, TAKES_CONTEXT },
	{ "DeleteAlias", 0, 0 },
	{ "DeleteCustomKeyStore", 0, 0 },
	{ "DeleteImportedKeyMaterial", 0, 0 },
	{ "DeriveSharedSecret", POLICY_GOP_DERIVE_SHARED_SECRET, 0 },
	{ "DescribeCustomKeyStores", 0, 0 },
	{ "DescribeKey", POLICY_GOP_DESCRIBE_KEY, 0 },
	{ "DisableKey", 0, 0 },
	{ "DisableKeyRotation", 0, 0 },
	{ "DisconnectCustomKeyStore", 0, 0 },
	{ "EnableKey", 0, 0 },
	{ "EnableKeyRotation", 0, 0 },
	{ "Encrypt", POLICY_GOP_ENCRYPT, TAKES_CONTEXT },
	{ "GenerateDataKey", POLICY_GOP_GENERATE_DATA_KEY, TAKES_CONTEXT },
	{ "GenerateDataKeyPair", POLICY_GOP_GENERATE_DATA_KEY_PAIR,
	    TAKES_CONTEXT },
	{ "GenerateDataKeyPairWithoutPlaintext",
	    POLICY_GOP_GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT,
	    TAKES_CONTEXT },
	{ "GenerateDataKeyWithoutPlaintext",
	    POLICY_GOP_GENERATE_DATA_KEY_WITHOUT_PLAINTEXT, TAKES_CONTEXT },
	{ "GenerateMac", POLICY_GOP_GENERATE_MAC, 0 },
	{ "GenerateRandom", 0, 0 },
	{ "GetKeyLastUsage", 0, 0 },
	{ "GetKeyPolicy", 0, 0 },
	{ "GetKeyRotationStatus", 0, 0 },
	{ "GetParametersForImport", 0, 0 },
	{ "GetPublicKey", POLICY_GOP_GET_PUBLIC_KEY, 0 },
	{ "ImportKeyMaterial", 0, 0 },
	{ "ListAliases", 0, 0 },
	{ "ListGrants", 0, 0 },
	{ "ListKeyPolicies", 0, 0 },
	{ "ListKeyRotations", 0, 0 },
	{ "ListKeys", 0, 0 },
	{ "ListResourceTags", 0, 0 },
	{ "ListRetirableGrants", 0, 0 },
	{ "PutKeyPolicy", 0, 0 },
	{ "ReEncryptFrom", POLICY_GOP_REENCRYPT_FROM, TAKES_CONTEXT },
	{ "ReEncryptTo", POLICY_GOP_REENCRYPT_TO, TAKES_CONTEXT },
	{ "ReplicateKey", 0, 0 },
	{ "RetireGrant", POLICY_GOP_RETIRE_GRANT, 0 },
	{ "RevokeGrant", 0, 0 },
	{ "RotateKeyOnDemand", 0, 0 },
	{ "ScheduleKeyDeletion", 0, 0 },
	{ "Sign", POLICY_GOP_SIGN, 0 },
	{ "SynchronizeMultiRegionKey", 0, 0 },
	{ "TagResource", 0, 0 },
	{ "UntagResource", 0, 0 },
	{ "UpdateAlias", 0, 0 },
	{ "UpdateCustomKeyStore", 0, 0 },
	{ "UpdateKeyDescription", 0, 0 },
	{ "UpdatePrimaryRegion", 0, 0 },
	{ "Verify", POLICY_GOP_VERIFY, 0 },
	{ "VerifyMac", POLICY_GOP_VERIFY_MAC, 0 },
};
#define NACTIONS (sizeof(actions) / sizeof(actions[0]))
_Static_assert(NACTIONS <= ACTION_WORDS * 64, "actset too small");

/* AWS's grant operations in AWS's order (bit order). */
static const char *const grant_ops[] = {
	"Decrypt", "Encrypt", "GenerateDataKey",
	"GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
	"Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant",
	"DescribeKey", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
	"DeriveSharedSecret",
};
_Static_assert(sizeof(grant_ops) / sizeof(grant_ops[0]) == 17,
    "grant operation table");

size_t
action_count(void)
{
	return NACTIONS;
}

const char *
action_at(size_t i)
{
	return i < NACTIONS ? actions[i].name : NULL;
}

int
action_index(const char *name)
{
	size_t lo = 0, hi = NACTIONS, mid;
	int c;

	if (name == NULL) {
		return -1;
	}
	if (strncasecmp(name, "kms:", 4) == 0) {
		name += 4;
	}
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = ascii_casecmp(name, actions[mid].name);
		if (c == 0) {
			return (int)mid;
		}
		if (c < 0) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	return -1;
}

uint32_t
action_grant_bit(size_t i)
{
	return i < NACTIONS ? actions[i].grant_bit : 0;
}

int
action_takes_context(size_t i)
{
	return i < NACTIONS && (actions[i].flags & TAKES_CONTEXT) != 0;
}

const char *
policy_action_name(const char *action)
{
	int i = action_index(action);

	return i < 0 ? NULL : actions[i].name;
}

uint32_t
policy_grant_op_parse(const char *name)
{
	size_t i;

	if (name == NULL) {
		return 0;
	}
	for (i = 0; i < sizeof(grant_ops) / sizeof(grant_ops[0]); i++) {
		if (strcmp(name, grant_ops[i]) == 0) {
			return 1u << i;
		}
	}
	return 0;
}

const char *
policy_grant_op_name(uint32_t bit)
{
	size_t i;

	for (i = 0; i < sizeof(grant_ops) / sizeof(grant_ops[0]); i++) {
		if (bit == (1u << i)) {
			return grant_ops[i];
		}
	}
	return NULL;
}
