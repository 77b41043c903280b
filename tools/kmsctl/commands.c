/*
 * commands.c — kmsctl's command table (name, AWS operation, function,
 * summary, options and the request field of each) and the help it prints.
 */
#include <stdio.h>
#include <string.h>

#include "tools/kmsctl/kmsctl.h"

/* `audit` reached through the option parser: it must come first. */
static int
cmd_audit_first(struct run *R)
{
	(void)R;
	usage_error("audit takes its own options: kmsctl audit verify "
	    "[--public-key FILE] [--json] FILE... | kmsctl audit public-key "
	    "[--endpoint URL]");
	return EXIT_USAGE;
}

/* ------------------------------------------------------------ table */

#define KEY_ID(req) { "key-id", O_STR, req, \
	"Key id, key ARN, alias name (alias/...) or alias ARN.", "KeyId" }
#define KEY_ID_ONLY { "key-id", O_STR, 1, "Key id or key ARN.", "KeyId" }
#define GRANTS { "grant-tokens", O_LIST, 0, \
	"Grant tokens, separated by spaces (at most 10).", "GrantTokens" }
#define PAGING \
	{ "limit", O_INT, 0, "Items per page (1-1000; at most 100 for " \
	    "grants): fetch one page and show Truncated and NextMarker.", \
	    "Limit" }, \
	{ "starting-token", O_STR, 0, "Start from this NextMarker.", \
	    "Marker" }, \
	{ "marker", O_STR, 0, "Same as --starting-token.", "Marker" }
#define TARGET_KEY_ID { "target-key-id", O_STR, 1, "Key id or key ARN.", \
	"TargetKeyId" }
#define ALIAS_NAME { "alias-name", O_STR, 1, \
	"alias/NAME: 1-256 characters of a-zA-Z0-9/_-, not alias/aws/.", \
	"AliasName" }
#define CONTEXT(name) { name, O_CTX, 0, \
	"Encryption context: key=value,key2=value2 or a JSON object " \
	"'{\"key\":\"value\"}' (file://PATH reads it from a file)." }

#define POLICY_NAME { "policy-name", O_STR, 0, "default (the only name).", \
	"PolicyName" }

/* encrypt-file and decrypt-file: what they read and how a tree is named. */
#define ENVELOPE_INPUT { "input", O_STR, 1, "File, directory (with " \
	"--recursive) or - for stdin." }
#define ENVELOPE_TREE(verb, suffix) \
	{ "recursive", O_FLAG, 0, verb " every file under the --input " \
	    "directory." }, \
	{ "suffix", O_STR, 0, "Added to names made in an output directory " \
	    "(default " suffix ")." }, \
	{ "quiet", O_FLAG, 0, "No progress bar." }

/* Options without a request field and commands without pages leave them
 * out: zero is their meaning. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct command commands[] = {
	{ "create-key", "CreateKey", cmd_create_key,
	    "Create a customer master key in the HSM.", {
		{ "description", O_STR, 0, "Description (file://PATH "
		    "reads it)." },
		{ "key-usage", O_STR, 0, "ENCRYPT_DECRYPT (the default)." },
		{ "key-spec", O_STR, 0, "SYMMETRIC_DEFAULT (the default)." },
		{ "origin", O_STR, 0, "AWS_KMS (the default: material made "
		    "in the HSM) or EXTERNAL (imported later)." },
		{ "policy", O_STR, 0, "Key policy document, JSON "
		    "(file://PATH reads it)." },
		{ "bypass-policy-lockout-safety-check", O_FLAG, 0,
		    "Skip the lockout safety check." },
		{ "tags", O_TAGS, 0, "Tags: TagKey=key,TagValue=value ..." },
	} },
	{ "describe-key", "DescribeKey", cmd_describe_key,
	    "Show a key's metadata.", {
		KEY_ID(1), GRANTS,
	} },
	{ "list-keys", "ListKeys", cmd_list_keys,
	    "List the keys (all pages unless --limit is given).", {
		{ "limit", O_INT, 0, "Keys per page, 1-1000: fetch one page "
		    "and show Truncated and NextMarker." },
		{ "starting-token", O_STR, 0, "Start from this NextMarker." },
		{ "marker", O_STR, 0, "Same as --starting-token." },
	} },
	{ "update-key-description", "UpdateKeyDescription",
	    cmd_update_key_description, "Replace a key's description.", {
		KEY_ID(1),
		{ "description", O_STR, 1, "New description (file://PATH "
		    "reads it)." },
	} },
	{ "enable-key", "EnableKey", cmd_enable_disable, "Enable a key.", {
		KEY_ID(1),
	} },
	{ "disable-key", "DisableKey", cmd_enable_disable,
	    "Disable a key: it refuses every cryptographic operation.", {
		KEY_ID(1),
	} },
	{ "encrypt", "Encrypt", cmd_encrypt,
	    "Encrypt up to 4096 bytes under a key.", {
		KEY_ID(1),
		{ "plaintext", O_BLOB, 1, "Data: base64, or fileb://PATH for "
		    "raw bytes." },
		CONTEXT("encryption-context"), GRANTS,
	} },
	{ "decrypt", "Decrypt", cmd_decrypt,
	    "Decrypt a ciphertext blob (the blob names its key).", {
		{ "ciphertext-blob", O_BLOB, 1, "Blob: base64, or "
		    "fileb://PATH for raw bytes." },
		KEY_ID(0),
		CONTEXT("encryption-context"), GRANTS,
	} },
	{ "re-encrypt", "ReEncrypt", cmd_re_encrypt,
	    "Decrypt and encrypt again under another key, inside kmsd.", {
		{ "ciphertext-blob", O_BLOB, 1, "Blob: base64, or "
		    "fileb://PATH for raw bytes." },
		{ "destination-key-id", O_STR, 1, "Key to encrypt under." },
		{ "source-key-id", O_STR, 0, "Key the blob must name." },
		CONTEXT("source-encryption-context"),
		CONTEXT("destination-encryption-context"),
		GRANTS,
	} },
	{ "generate-data-key", "GenerateDataKey", cmd_generate_data_key,
	    "A data key: its plaintext and its blob under a key.", {
		KEY_ID(1),
		{ "key-spec", O_STR, 0, "AES_256 or AES_128." },
		{ "number-of-bytes", O_INT, 0, "Length, 1-1024 (instead of "
		    "--key-spec)." },
		CONTEXT("encryption-context"), GRANTS,
	} },
	{ "generate-data-key-without-plaintext",
	    "GenerateDataKeyWithoutPlaintext",
	    cmd_generate_data_key_without_plaintext,
	    "A data key's blob only.", {
		KEY_ID(1),
		{ "key-spec", O_STR, 0, "AES_256 or AES_128." },
		{ "number-of-bytes", O_INT, 0, "Length, 1-1024 (instead of "
		    "--key-spec)." },
		CONTEXT("encryption-context"), GRANTS,
	} },
	{ "generate-random", "GenerateRandom", cmd_generate_random,
	    "Random bytes from the HSM.", {
		{ "number-of-bytes", O_INT, 1, "How many, 1-1024." },
	} },
	{ "get-key-policy", "GetKeyPolicy", cmd_json,
	    "Show a key's policy document.", {
		KEY_ID(1),
		POLICY_NAME,
	} },
	{ "put-key-policy", "PutKeyPolicy", cmd_json,
	    "Replace a key's policy.", {
		KEY_ID(1),
		POLICY_NAME,
		{ "policy", O_STR, 1, "Policy document, JSON (file://PATH or "
		    "fileb://PATH reads it).", "Policy" },
		{ "bypass-policy-lockout-safety-check", O_FLAG, 0,
		    "Accept a policy under which you could no longer call "
		    "PutKeyPolicy.", "BypassPolicyLockoutSafetyCheck" },
	} },
	{ "list-key-policies", "ListKeyPolicies", cmd_json,
	    "List a key's policy names (always default).", {
		KEY_ID(1), PAGING,
	}, "PolicyNames" },
	{ "create-grant", "CreateGrant", cmd_json,
	    "Let a principal use a key for some operations.", {
		KEY_ID(1),
		{ "grantee-principal", O_STR, 1, "Who may use the grant: "
		    "uid:N, user:NAME, group:NAME, ...", "GranteePrincipal" },
		{ "operations", O_LIST, 1, "Operations, separated by spaces: "
		    "Encrypt Decrypt GenerateDataKey ...", "Operations" },
		{ "retiring-principal", O_STR, 0, "Who may retire the grant.",
		    "RetiringPrincipal" },
		{ "constraints", O_CONSTRAINTS, 0, "EncryptionContextSubset="
		    "{k=v,...} or EncryptionContextEquals={k=v,...}, or "
		    "JSON.", "Constraints" },
		{ "name", O_STR, 0, "A name: the same request with the same "
		    "name returns the same grant.", "Name" },
		GRANTS,
	} },
	{ "list-grants", "ListGrants", cmd_json,
	    "List a key's grants.", {
		KEY_ID(1),
		{ "grant-id", O_STR, 0, "Only this grant.", "GrantId" },
		{ "grantee-principal", O_STR, 0, "Only grants to this "
		    "principal.", "GranteePrincipal" },
		PAGING,
	}, "Grants" },
	{ "list-retirable-grants", "ListRetirableGrants", cmd_json,
	    "List the grants a principal may retire.", {
		{ "retiring-principal", O_STR, 1, "The retiring principal.",
		    "RetiringPrincipal" },
		PAGING,
	}, "Grants" },
	{ "retire-grant", "RetireGrant", cmd_json,
	    "Retire a grant: by its token, or by key and grant id.", {
		{ "grant-token", O_STR, 0, "The grant's token.",
		    "GrantToken" },
		KEY_ID(0),
		{ "grant-id", O_STR, 0, "The grant's id (with --key-id).",
		    "GrantId" },
	} },
	{ "revoke-grant", "RevokeGrant", cmd_json,
	    "Revoke a grant.", {
		KEY_ID(1),
		{ "grant-id", O_STR, 1, "The grant's id.", "GrantId" },
	} },
	{ "create-alias", "CreateAlias", cmd_json,
	    "Give a key a name.", {
		ALIAS_NAME, TARGET_KEY_ID,
	} },
	{ "update-alias", "UpdateAlias", cmd_json,
	    "Point an alias at another key.", {
		ALIAS_NAME, TARGET_KEY_ID,
	} },
	{ "delete-alias", "DeleteAlias", cmd_json,
	    "Delete an alias (the key stays).", {
		ALIAS_NAME,
	} },
	{ "list-aliases", "ListAliases", cmd_json,
	    "List the aliases, or a key's aliases.", {
		{ "key-id", O_STR, 0, "Only this key's aliases (key id or "
		    "ARN).", "KeyId" },
		PAGING,
	}, "Aliases" },
	{ "tag-resource", "TagResource", cmd_json,
	    "Add or replace tags on a key.", {
		KEY_ID(1),
		{ "tags", O_TAGS, 1, "Tags: TagKey=key,TagValue=value ...",
		    "Tags" },
	} },
	{ "untag-resource", "UntagResource", cmd_json,
	    "Remove tags from a key.", {
		KEY_ID(1),
		{ "tag-keys", O_LIST, 1, "Tag keys, separated by spaces.",
		    "TagKeys" },
	} },
	{ "list-resource-tags", "ListResourceTags", cmd_json,
	    "List a key's tags.", {
		KEY_ID(1), PAGING,
	}, "Tags" },
	{ "admin backup", "CreateBackup", cmd_json,
	    "Administrators: back up the store and token into a directory "
	    "on kmsd's machine, online.", {
		{ "directory", O_POS, 1, "Absolute path of a new or empty "
		    "directory.", "Directory" },
		{ "include-pins", O_FLAG, 0, "Copy the PIN files too (the "
		    "directory must be mode 0700).", "IncludePins" },
	} },
	{ "encrypt-file", "EncryptFile", cmd_envelope,
	    "Encrypt a file, stream or directory into AWS Encryption SDK "
	    "messages.", {
		KEY_ID(1),
		ENVELOPE_INPUT,
		{ "output", O_STR, 1, "File, directory or - for stdout; "
		    "written only when the whole input succeeded." },
		{ "encryption-context", O_LIST, 0, "Pairs key=value ... "
		    "(authenticated, not secret)." },
		{ "algorithm", O_STR, 0, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY "
		    "(default) or ..._COMMIT_KEY_ECDSA_P384." },
		{ "frame-length", O_INT, 0, "Plaintext bytes per frame, "
		    "1-4194304 (default 4096)." },
		ENVELOPE_TREE("Encrypt", ".encrypted"),
		GRANTS } },
	{ "decrypt-file", "DecryptFile", cmd_envelope,
	    "Decrypt AWS Encryption SDK messages (a file, stream or "
	    "directory).", {
		ENVELOPE_INPUT,
		{ "output", O_STR, 1, "File, directory or - for stdout; a "
		    "file appears only when the message verified." },
		{ "encryption-context", O_LIST, 0, "Pairs key=value ... the "
		    "message's context must hold." },
		ENVELOPE_TREE("Decrypt", ".decrypted"),
		GRANTS } },
	{ "enable-key-rotation", "EnableKeyRotation", cmd_json,
	    "Rotate a key automatically, every 90-2560 days.", {
		KEY_ID_ONLY,
		{ "rotation-period-in-days", O_INT, 0, "Days between "
		    "rotations, 90-2560 (default 365).",
		    "RotationPeriodInDays" },
	} },
	{ "disable-key-rotation", "DisableKeyRotation", cmd_json,
	    "Stop rotating a key automatically.", {
		KEY_ID_ONLY,
	} },
	{ "get-key-rotation-status", "GetKeyRotationStatus", cmd_json,
	    "Show whether and when a key rotates.", {
		KEY_ID_ONLY,
	} },
	{ "rotate-key-on-demand", "RotateKeyOnDemand", cmd_json,
	    "Rotate a key now (at most 25 times per key).", {
		KEY_ID_ONLY,
	} },
	{ "list-key-rotations", "ListKeyRotations", cmd_json,
	    "List a key's rotations.", {
		KEY_ID_ONLY, PAGING,
	}, "Rotations" },
	{ "schedule-key-deletion", "ScheduleKeyDeletion", cmd_json,
	    "Delete a key, with its material, after 7-30 days.", {
		KEY_ID_ONLY,
		{ "pending-window-in-days", O_INT, 0, "Days to wait, 7-30 "
		    "(default 30).", "PendingWindowInDays" },
	} },
	{ "cancel-key-deletion", "CancelKeyDeletion", cmd_json,
	    "Keep a key scheduled for deletion (it comes back Disabled).", {
		KEY_ID_ONLY,
	} },
	{ "get-parameters-for-import", "GetParametersForImport", cmd_json,
	    "Get a public key (made in the HSM) and an import token, valid "
	    "24 hours, to wrap key material for a key of origin EXTERNAL.", {
		KEY_ID_ONLY,
		{ "wrapping-algorithm", O_STR, 1, "RSAES_OAEP_SHA_1 (what this "
		    "HSM unwraps).", "WrappingAlgorithm" },
		{ "wrapping-key-spec", O_STR, 1, "RSA_2048, RSA_3072 or "
		    "RSA_4096.", "WrappingKeySpec" },
	} },
	{ "import-key-material", "ImportKeyMaterial", cmd_json,
	    "Import 256-bit key material wrapped with "
	    "get-parameters-for-import's public key (RSAES-OAEP, SHA-1), "
	    "e.g. openssl pkeyutl -encrypt -pubin -keyform DER -inkey "
	    "pub.der -pkeyopt rsa_padding_mode:oaep -pkeyopt "
	    "rsa_oaep_md:sha1 -in key.bin -out wrapped.bin.", {
		KEY_ID_ONLY,
		{ "import-token", O_BLOB, 1, "The import token: base64 or "
		    "fileb://PATH.", "ImportToken" },
		{ "encrypted-key-material", O_BLOB, 1, "The wrapped "
		    "material: base64 or fileb://PATH.",
		    "EncryptedKeyMaterial" },
		{ "expiration-model", O_STR, 0, "KEY_MATERIAL_EXPIRES or "
		    "KEY_MATERIAL_DOES_NOT_EXPIRE (the default).",
		    "ExpirationModel" },
		{ "valid-to", O_STR, 0, "With KEY_MATERIAL_EXPIRES: when, "
		    "YYYY-MM-DDTHH:MM:SSZ.", "ValidTo" },
	} },
	{ "wrap-key-material", "WrapKeyMaterial", cmd_wrap_key_material,
	    "Wrap a 32-byte key file for import-key-material under "
	    "get-parameters-for-import's PublicKey, here with OpenSSL.", {
		{ "public-key", O_BLOB, 1, "The PublicKey: base64 or "
		    "fileb://PATH (DER)." },
		{ "key-material", O_BLOB, 1, "The 32-byte key: fileb://PATH "
		    "(or base64)." },
		{ "wrapping-algorithm", O_STR, 0, "RSAES_OAEP_SHA_1 (the "
		    "default) or RSAES_OAEP_SHA_256." },
	} },
	{ "delete-imported-key-material", "DeleteImportedKeyMaterial",
	    cmd_json, "Destroy a key's imported material (the key becomes "
	    "PendingImport).", {
		KEY_ID_ONLY,
	} },
	{ "admin rotate-domain-key", "RotateDomainKey",
	    cmd_rotate_domain_key, "Make a new domain key in the HSM and "
	    "re-wrap every stored key version under it, online; shows "
	    "progress (administrators only).", {
		{ "no-wait", O_FLAG, 0, "Start it and return at once." },
	} },
	{ "admin status", "GetDomainKeyStatus", cmd_json,
	    "Show the domain-key rotation's state (administrators only).", {
	} },
	{ "admin advance-clock", "AdvanceTestClock", cmd_json,
	    "TEST ONLY: move kmsd's clock forward (needs test_clock = yes "
	    "in kmsd.conf; administrators only).", {
		{ "days", O_INT, 0, "Days to move forward.", "Days" },
		{ "seconds", O_INT, 0, "Seconds to move forward.",
		    "Seconds" },
	} },
	{ "audit", "audit", cmd_audit_first,
	    "The audit log: `kmsctl audit verify [--public-key FILE] "
	    "[--json] FILE...`, `kmsctl audit public-key`.", { { NULL } } },
	{ "call", "raw", cmd_call,
	    "Send a raw JSON request ({\"Action\": ...}) and print the "
	    "reply.", {
		{ "request", O_POS, 1, "The request: JSON text or "
		    "file://PATH." },
	} },
};
#pragma GCC diagnostic pop
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

const struct command *
command_at(size_t i)
{
	return i < NCOMMANDS ? &commands[i] : NULL;
}

const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0) {
			return &commands[i];
		}
	}
	return NULL;
}

static const char *const global_help =
    "Global options (before or after the command):\n"
    "  --endpoint URL          daemon endpoint (default: $KMS_ENDPOINT, "
    "else\n"
    "                          ipc://.../var/kmsd.sock found from the "
    "current\n"
    "                          directory upwards); --endpoint-url is the "
    "same\n"
    "  --output json|text      output format (default json)\n"
    "  --version               print kmsctl's version and exit\n"
    "  --query PATH            print only this part, e.g. "
    "KeyMetadata.KeyId\n"
    "                          or Keys[0].KeyId\n"
    "  --outfile PATH          write the Plaintext (else CiphertextBlob) "
    "raw to\n"
    "                          PATH (mode 0600) instead of printing it\n"
    "  --cli-connect-timeout S seconds to wait for the daemon (default "
    "10)\n"
    "  --cli-read-timeout S    seconds to wait for a reply (default 30; "
    "0 = none)\n";

void
help_all(void)
{
	size_t i;

	printf("kmsctl — the kmsd command line, shaped like `aws kms`.\n\n"
	    "usage: kmsctl [options] <command> [parameters]\n\n"
	    "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++) {
		printf("  %-37s %s\n", commands[i].name, commands[i].summary);
	}
	printf("\n%s\nBlob parameters take base64, or fileb://PATH for raw "
	    "bytes (AWS CLI v2).\nErrors: exit 254 with the AWS CLI's error "
	    "line; usage errors exit 252.\n\nkmsctl <command> help shows a "
	    "command's options.\n", global_help);
}

void
help_command(const struct command *c)
{
	int i;

	printf("%s\n\n%s\n\nSynopsis:\n  kmsctl %s", c->op, c->summary,
	    c->name);
	for (i = 0; i < MAX_OPTS && c->opts[i].name != NULL; i++) {
		const struct optspec *o = &c->opts[i];
		const char *meta = o->kind == O_FLAG ? "" :
		    o->kind == O_LIST || o->kind == O_TAGS ? " <value> ..." :
		    " <value>";
		if (o->kind == O_POS) {
			printf(" <%s>", o->name);
		} else {
			printf(o->required ? "\n    --%s%s" :
			    "\n    [--%s%s]", o->name, meta);
		}
	}
	printf("\n\nOptions:\n");
	for (i = 0; i < MAX_OPTS && c->opts[i].name != NULL; i++) {
		printf("  %s%s%s\n      %s\n",
		    c->opts[i].kind == O_POS ? "<" : "--", c->opts[i].name,
		    c->opts[i].kind == O_POS ? ">" : "", c->opts[i].help);
	}
	printf("\n%s", global_help);
}
