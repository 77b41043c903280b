/*
 * validate.c — the constraints of AWS KMS's API model for the operations
 * kmsd serves, checked before the operation runs (validate.h).
 *
 * The table holds what the model (the AWS SDKs' service definition for
 * kms, 2014-11-01) says of each member: required, length or value range,
 * pattern, enum.  The texts are AWS's, as its service answers them (the
 * AWS CLI and SDKs show them; LocalStack's snapshot tests record them
 * against AWS): "Value '<v>' at '<member>' failed to satisfy constraint:
 * Member must ...", blobs without their value ("Value at 'plaintext'"),
 * several joined with "; " under "N validation errors detected: ".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/b64.h"
#include "common/ctx.h"
#include "common/err.h"
#include "kmsd/dispatch/validate.h"

enum vkind {
	V_STR = 1,	/* string: length in characters, pattern */
	V_INT,		/* integer: value range */
	V_BLOB,		/* base64 blob: decoded length; value never shown */
	V_ENUM,		/* string from a set */
	V_STRLIST,	/* list of strings: list length, each one's length */
	V_ENUMLIST,	/* list of strings from a set */
	V_TAGS,		/* list of {TagKey, TagValue} */
	V_BOOL,		/* boolean: type only */
	V_MAP,		/* map of strings: type only */
};

/* Patterns of the model (Java regular expressions; \w is [a-zA-Z0-9_]). */
enum vpattern {
	P_NONE = 0,
	P_ALIAS,	/* ^[a-zA-Z0-9:/_-]+$ (alias and grant names) */
	P_PRINCIPAL,	/* ^[\w+=,.@:/-]+$ */
	P_WORD,		/* [\w]+ */
	P_LATIN1,	/* [\u0020-\u00FF]* (markers) */
	P_POLICY,	/* [\u0009\u000A\u000D\u0020-\u00FF]+ */
	P_HEX,		/* ^[a-f0-9]+$ */
	P_MATDESC,	/* ^[a-zA-Z0-9:/_\s.-]+$ */
};

static const char *const pattern_text[] = {
	[P_ALIAS] = "^[a-zA-Z0-9:/_-]+$",
	[P_PRINCIPAL] = "^[\\w+=,.@:/-]+$",
	[P_WORD] = "[\\w]+",
	[P_LATIN1] = "[\\u0020-\\u00FF]*",
	[P_POLICY] = "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
	[P_HEX] = "^[a-f0-9]+$",
	[P_MATDESC] = "^[a-zA-Z0-9:/_\\s.-]+$",
};

/*
 * Enum sets, in the order AWS lists them in its message where that was
 * recorded (keySpec and keyUsage, by LocalStack's snapshots against AWS,
 * with the values the model has gained since at the end), else in the
 * model's order.
 */
static const char *const key_usages[] = { "ENCRYPT_DECRYPT", "SIGN_VERIFY",
	"GENERATE_VERIFY_MAC", "KEY_AGREEMENT", NULL };
static const char *const key_specs[] = { "RSA_2048", "ECC_NIST_P384",
	"ECC_NIST_P256", "ECC_NIST_P521", "HMAC_384", "RSA_3072",
	"ECC_SECG_P256K1", "RSA_4096", "SYMMETRIC_DEFAULT", "HMAC_256",
	"HMAC_224", "HMAC_512", "SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87",
	"ECC_NIST_EDWARDS25519", NULL };
static const char *const cmk_specs[] = { "RSA_2048", "ECC_NIST_P384",
	"ECC_NIST_P256", "ECC_NIST_P521", "HMAC_384", "RSA_3072",
	"ECC_SECG_P256K1", "RSA_4096", "SYMMETRIC_DEFAULT", "HMAC_256",
	"HMAC_224", "HMAC_512", "SM2", NULL };
static const char *const origins[] = { "AWS_KMS", "EXTERNAL",
	"AWS_CLOUDHSM", "EXTERNAL_KEY_STORE", NULL };
static const char *const enc_algs[] = { "SYMMETRIC_DEFAULT",
	"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE", NULL };
static const char *const data_key_specs[] = { "AES_256", "AES_128", NULL };
static const char *const grant_ops[] = { "Decrypt", "Encrypt",
	"GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
	"ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant",
	"RetireGrant", "DescribeKey", "GenerateDataKeyPair",
	"GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
	"DeriveSharedSecret", NULL };
static const char *const wrap_algs[] = { "RSAES_PKCS1_V1_5",
	"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
	"RSA_AES_KEY_WRAP_SHA_256", "SM2PKE", NULL };
static const char *const wrap_specs[] = { "RSA_2048", "RSA_3072",
	"RSA_4096", "SM2", NULL };
static const char *const expiration_models[] = { "KEY_MATERIAL_EXPIRES",
	"KEY_MATERIAL_DOES_NOT_EXPIRE", NULL };
static const char *const import_types[] = { "NEW_KEY_MATERIAL",
	"EXISTING_KEY_MATERIAL", NULL };
static const char *const include_key_material[] = { "ALL_KEY_MATERIAL",
	"ROTATIONS_ONLY", NULL };
static const char *const dry_run_modifiers[] = { "IGNORE_CIPHERTEXT",
	NULL };

/*
 * Values never quoted: AWS's sensitive members (not even "null"), and
 * those kmsd's audit log must never hold (grant tokens and key policies,
 * DESIGN §8: an error's message is recorded), whose absence still reads
 * "Value null".
 */
enum { HIDE_NONE = 0, HIDE_SENSITIVE, HIDE_VALUE };

struct vmember {
	const char *op;
	const char *name;		/* JSON member name */
	unsigned char kind;		/* enum vkind */
	unsigned char required;
	unsigned char hide;		/* HIDE_* */
	unsigned char pattern;		/* enum vpattern */
	long long min, max;		/* length, value or list length */
	const char *const *set;		/* V_ENUM, V_ENUMLIST */
	long long emin, emax;		/* V_STRLIST: each string's length */
};

#define KEYID_MAX 2048
#define NOMAX (-1)

#define STR(o, n, r, lo, hi, p)	{ o, n, V_STR, r, 0, p, lo, hi, NULL, 0, 0 }
#define HSTR(o, n, r, lo, hi, p)					\
	{ o, n, V_STR, r, HIDE_VALUE, p, lo, hi, NULL, 0, 0 }
#define INT(o, n, r, lo, hi)	{ o, n, V_INT, r, 0, 0, lo, hi, NULL, 0, 0 }
#define BLOB(o, n, r, lo, hi)	{ o, n, V_BLOB, r, 0, 0, lo, hi, NULL, 0, 0 }
#define SBLOB(o, n, r, lo, hi)						\
	{ o, n, V_BLOB, r, HIDE_SENSITIVE, 0, lo, hi, NULL, 0, 0 }
#define ENUM(o, n, r, s)	{ o, n, V_ENUM, r, 0, 0, 0, 0, s, 0, 0 }
#define ENUMS(o, n, r, s)	{ o, n, V_ENUMLIST, r, 0, 0, 0, NOMAX, s, 0, 0 }
#define BOOL(o, n)		{ o, n, V_BOOL, 0, 0, 0, 0, 0, NULL, 0, 0 }
#define MAP(o, n)		{ o, n, V_MAP, 0, 0, 0, 0, 0, NULL, 0, 0 }
#define KEYID(o, r)		STR(o, "KeyId", r, 1, KEYID_MAX, P_NONE)
#define TOKENS(o)							\
	{ o, "GrantTokens", V_STRLIST, 0, HIDE_VALUE, 0, 0, 10, NULL, 1, 8192 }
#define LIMIT(o)		INT(o, "Limit", 0, 1, 1000)
#define MARKER(o)		STR(o, "Marker", 0, 1, 1024, P_LATIN1)

/* Grouped by operation; within one, in the model's member order (AWS
 * lists the violations in that order). */
static const struct vmember members[] = {
	KEYID("CancelKeyDeletion", 1),

	STR("CreateAlias", "AliasName", 1, 1, 256, P_ALIAS),
	STR("CreateAlias", "TargetKeyId", 1, 1, KEYID_MAX, P_NONE),

	KEYID("CreateGrant", 1),
	STR("CreateGrant", "GranteePrincipal", 1, 1, 256, P_PRINCIPAL),
	STR("CreateGrant", "RetiringPrincipal", 0, 1, 256, P_PRINCIPAL),
	ENUMS("CreateGrant", "Operations", 1, grant_ops),
	TOKENS("CreateGrant"),
	STR("CreateGrant", "Name", 0, 1, 256, P_ALIAS),
	BOOL("CreateGrant", "DryRun"),

	HSTR("CreateKey", "Policy", 0, 1, 131072, P_POLICY),
	STR("CreateKey", "Description", 0, 0, 8192, P_NONE),
	ENUM("CreateKey", "KeyUsage", 0, key_usages),
	ENUM("CreateKey", "CustomerMasterKeySpec", 0, cmk_specs),
	ENUM("CreateKey", "KeySpec", 0, key_specs),
	ENUM("CreateKey", "Origin", 0, origins),
	STR("CreateKey", "CustomKeyStoreId", 0, 1, 64, P_NONE),
	BOOL("CreateKey", "BypassPolicyLockoutSafetyCheck"),
	{ "CreateKey", "Tags", V_TAGS, 0, 0, 0, 0, NOMAX, NULL, 0, 0 },
	BOOL("CreateKey", "MultiRegion"),

	/* Not required in the model (the operation requires it). */
	BLOB("Decrypt", "CiphertextBlob", 0, 1, 6144),
	MAP("Decrypt", "EncryptionContext"),
	TOKENS("Decrypt"),
	KEYID("Decrypt", 0),
	ENUM("Decrypt", "EncryptionAlgorithm", 0, enc_algs),
	BOOL("Decrypt", "DryRun"),
	ENUMS("Decrypt", "DryRunModifiers", 0, dry_run_modifiers),

	STR("DeleteAlias", "AliasName", 1, 1, 256, P_ALIAS),

	KEYID("DeleteImportedKeyMaterial", 1),
	STR("DeleteImportedKeyMaterial", "KeyMaterialId", 0, 64, 64, P_HEX),

	KEYID("DescribeKey", 1),
	TOKENS("DescribeKey"),

	KEYID("DisableKey", 1),
	KEYID("DisableKeyRotation", 1),
	KEYID("EnableKey", 1),
	KEYID("EnableKeyRotation", 1),
	INT("EnableKeyRotation", "RotationPeriodInDays", 0, 90, 2560),

	KEYID("Encrypt", 1),
	SBLOB("Encrypt", "Plaintext", 1, 1, 4096),
	MAP("Encrypt", "EncryptionContext"),
	TOKENS("Encrypt"),
	ENUM("Encrypt", "EncryptionAlgorithm", 0, enc_algs),
	BOOL("Encrypt", "DryRun"),

	KEYID("GenerateDataKey", 1),
	MAP("GenerateDataKey", "EncryptionContext"),
	INT("GenerateDataKey", "NumberOfBytes", 0, 1, 1024),
	ENUM("GenerateDataKey", "KeySpec", 0, data_key_specs),
	TOKENS("GenerateDataKey"),
	BOOL("GenerateDataKey", "DryRun"),

	KEYID("GenerateDataKeyWithoutPlaintext", 1),
	MAP("GenerateDataKeyWithoutPlaintext", "EncryptionContext"),
	ENUM("GenerateDataKeyWithoutPlaintext", "KeySpec", 0, data_key_specs),
	INT("GenerateDataKeyWithoutPlaintext", "NumberOfBytes", 0, 1, 1024),
	TOKENS("GenerateDataKeyWithoutPlaintext"),
	BOOL("GenerateDataKeyWithoutPlaintext", "DryRun"),

	/* Not required in the model: AWS answers its absence in the
	 * operation ("NumberOfBytes is required."). */
	INT("GenerateRandom", "NumberOfBytes", 0, 1, 1024),
	STR("GenerateRandom", "CustomKeyStoreId", 0, 1, 64, P_NONE),

	KEYID("GetKeyPolicy", 1),
	STR("GetKeyPolicy", "PolicyName", 0, 1, 128, P_WORD),

	KEYID("GetKeyRotationStatus", 1),

	KEYID("GetParametersForImport", 1),
	ENUM("GetParametersForImport", "WrappingAlgorithm", 1, wrap_algs),
	ENUM("GetParametersForImport", "WrappingKeySpec", 1, wrap_specs),

	KEYID("ImportKeyMaterial", 1),
	BLOB("ImportKeyMaterial", "ImportToken", 1, 1, 6144),
	BLOB("ImportKeyMaterial", "EncryptedKeyMaterial", 1, 1, 6144),
	ENUM("ImportKeyMaterial", "ExpirationModel", 0, expiration_models),
	ENUM("ImportKeyMaterial", "ImportType", 0, import_types),
	STR("ImportKeyMaterial", "KeyMaterialDescription", 0, 0, 256,
	    P_MATDESC),
	STR("ImportKeyMaterial", "KeyMaterialId", 0, 64, 64, P_HEX),

	KEYID("ListAliases", 0),
	LIMIT("ListAliases"),
	MARKER("ListAliases"),

	LIMIT("ListGrants"),
	MARKER("ListGrants"),
	KEYID("ListGrants", 1),
	STR("ListGrants", "GrantId", 0, 1, 128, P_NONE),
	STR("ListGrants", "GranteePrincipal", 0, 1, 256, P_PRINCIPAL),

	KEYID("ListKeyPolicies", 1),
	LIMIT("ListKeyPolicies"),
	MARKER("ListKeyPolicies"),

	KEYID("ListKeyRotations", 1),
	ENUM("ListKeyRotations", "IncludeKeyMaterial", 0,
	    include_key_material),
	LIMIT("ListKeyRotations"),
	MARKER("ListKeyRotations"),

	LIMIT("ListKeys"),
	MARKER("ListKeys"),

	KEYID("ListResourceTags", 1),
	LIMIT("ListResourceTags"),
	MARKER("ListResourceTags"),

	LIMIT("ListRetirableGrants"),
	MARKER("ListRetirableGrants"),
	STR("ListRetirableGrants", "RetiringPrincipal", 1, 1, 256,
	    P_PRINCIPAL),

	KEYID("PutKeyPolicy", 1),
	STR("PutKeyPolicy", "PolicyName", 0, 1, 128, P_WORD),
	HSTR("PutKeyPolicy", "Policy", 1, 1, 131072, P_POLICY),
	BOOL("PutKeyPolicy", "BypassPolicyLockoutSafetyCheck"),

	BLOB("ReEncrypt", "CiphertextBlob", 0, 1, 6144),
	MAP("ReEncrypt", "SourceEncryptionContext"),
	STR("ReEncrypt", "SourceKeyId", 0, 1, KEYID_MAX, P_NONE),
	STR("ReEncrypt", "DestinationKeyId", 1, 1, KEYID_MAX, P_NONE),
	MAP("ReEncrypt", "DestinationEncryptionContext"),
	ENUM("ReEncrypt", "SourceEncryptionAlgorithm", 0, enc_algs),
	ENUM("ReEncrypt", "DestinationEncryptionAlgorithm", 0, enc_algs),
	TOKENS("ReEncrypt"),
	BOOL("ReEncrypt", "DryRun"),
	ENUMS("ReEncrypt", "DryRunModifiers", 0, dry_run_modifiers),

	HSTR("RetireGrant", "GrantToken", 0, 1, 8192, P_NONE),
	KEYID("RetireGrant", 0),
	STR("RetireGrant", "GrantId", 0, 1, 128, P_NONE),
	BOOL("RetireGrant", "DryRun"),

	KEYID("RevokeGrant", 1),
	STR("RevokeGrant", "GrantId", 1, 1, 128, P_NONE),
	BOOL("RevokeGrant", "DryRun"),

	KEYID("RotateKeyOnDemand", 1),

	KEYID("ScheduleKeyDeletion", 1),
	INT("ScheduleKeyDeletion", "PendingWindowInDays", 0, 1, 365),

	KEYID("TagResource", 1),
	{ "TagResource", "Tags", V_TAGS, 1, 0, 0, 0, NOMAX, NULL, 0, 0 },

	KEYID("UntagResource", 1),
	{ "UntagResource", "TagKeys", V_STRLIST, 1, 0, 0, 0, NOMAX, NULL, 1,
	    128 },

	STR("UpdateAlias", "AliasName", 1, 1, 256, P_ALIAS),
	STR("UpdateAlias", "TargetKeyId", 1, 1, KEYID_MAX, P_NONE),

	KEYID("UpdateKeyDescription", 1),
	STR("UpdateKeyDescription", "Description", 1, 0, 8192, P_NONE),
};

/* The message being built: the violations joined by "; ". */
struct vmsg {
	char *buf;
	size_t cap, len;
	int n;
};

static void
vadd(struct vmsg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
vadd(struct vmsg *m, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (m->n++ > 0 && m->len < m->cap) {
		w = snprintf(m->buf + m->len, m->cap - m->len, "; ");
		m->len += (size_t)w < m->cap - m->len ? (size_t)w :
		    m->cap - m->len - 1;
	}
	if (m->len >= m->cap - 1) {
		return;
	}
	va_start(ap, fmt);
	w = vsnprintf(m->buf + m->len, m->cap - m->len, fmt, ap);
	va_end(ap);
	if (w > 0) {
		m->len += (size_t)w < m->cap - m->len ? (size_t)w :
		    m->cap - m->len - 1;
	}
}

const char *
validate_member_name(const char *name, char *buf, size_t bufsz)
{
	size_t n = strnlen(name, bufsz - 1);

	memcpy(buf, name, n);
	buf[n] = '\0';
	if (buf[0] >= 'A' && buf[0] <= 'Z') {
		buf[0] = (char)(buf[0] - 'A' + 'a');
	}
	return buf;
}

int
validate_quote_len(const char *s, int *cut)
{
	size_t n = strlen(s);

	*cut = 0;
	if (n <= VALIDATE_QUOTE_WHOLE) {
		return (int)n;
	}
	n = VALIDATE_QUOTE_CUT;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
		n--;
	}
	*cut = 1;
	return (int)n;
}

/* The next code point of valid UTF-8 at *s (advanced past it). */
static unsigned long
next_cp(const unsigned char **s)
{
	const unsigned char *p = *s;
	unsigned long cp;
	int n, i;

	if (p[0] < 0x80) {
		*s = p + 1;
		return p[0];
	}
	if (p[0] >= 0xf0) {
		cp = p[0] & 0x07;
		n = 3;
	} else if (p[0] >= 0xe0) {
		cp = p[0] & 0x0f;
		n = 2;
	} else {
		cp = p[0] & 0x1f;
		n = 1;
	}
	for (i = 1; i <= n; i++) {
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	*s = p + n + 1;
	return cp;
}

static int
is_word(unsigned long c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

static int
cp_ok(int pattern, unsigned long c)
{
	switch (pattern) {
	case P_ALIAS:
		return is_word(c) || c == ':' || c == '/' || c == '-';
	case P_PRINCIPAL:
		return is_word(c) || (c != '\0' && strchr("+=,.@:/-", (int)c)
		    != NULL && c < 0x80);
	case P_WORD:
		return is_word(c);
	case P_LATIN1:
		return c >= 0x20 && c <= 0xff;
	case P_POLICY:
		return c == 0x09 || c == 0x0a || c == 0x0d ||
		    (c >= 0x20 && c <= 0xff);
	case P_HEX:
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
	case P_MATDESC:
		return is_word(c) || (c != '\0' && c < 0x80 &&
		    strchr(":/_.- \t\n\v\f\r", (int)c) != NULL);
	default:
		return 1;
	}
}

/* Does s (valid UTF-8, len bytes) match the pattern?  The '+' patterns
 * need at least one character, the '*' one none. */
static int
matches(int pattern, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s,
	    *end = (const unsigned char *)s + len;

	if (pattern == P_NONE) {
		return 1;
	}
	if (len == 0) {
		return pattern == P_LATIN1;
	}
	while (p < end) {
		if (!cp_ok(pattern, next_cp(&p))) {
			return 0;
		}
	}
	return 1;
}

/* A string member's length and pattern (at is its name in messages). */
static void
check_string(struct vmsg *m, const char *at, json_t *v, long long min,
    long long max, int pattern, int hide)
{
	const char *s = json_string_value(v);
	size_t len = json_string_length(v), chars;
	char value[VALIDATE_QUOTE_WHOLE + 16];
	int q, cut, shortv, longv, badv;

	if (strlen(s) != len || !ctx_utf8_valid(s, len)) {
		return;		/* the operation's reader says what */
	}
	chars = ctx_utf8_chars(s, len);
	shortv = (long long)chars < min;
	longv = max != NOMAX && (long long)chars > max;
	badv = !matches(pattern, s, len);
	if (!shortv && !longv && !badv) {
		return;
	}
	q = validate_quote_len(s, &cut);
	/* "Value '<v>' at" or, hidden, "Value at". */
	if (hide) {
		snprintf(value, sizeof(value), "Value");
	} else {
		snprintf(value, sizeof(value), "Value '%.*s%s'", q, s,
		    cut ? "..." : "");
	}
	if (shortv) {
		vadd(m, "%s at '%s' failed to satisfy constraint: Member must "
		    "have length greater than or equal to %lld", value, at,
		    min);
	}
	if (longv) {
		vadd(m, "%s at '%s' failed to satisfy constraint: Member must "
		    "have length less than or equal to %lld", value, at, max);
	}
	if (badv) {
		vadd(m, "%s at '%s' failed to satisfy constraint: Member must "
		    "satisfy regular expression pattern: %s", value, at,
		    pattern_text[pattern]);
	}
}

static int
in_set(const char *v, const char *const *set)
{
	for (; *set != NULL; set++) {
		if (strcmp(v, *set) == 0) {
			return 1;
		}
	}
	return 0;
}

static void
check_enum(struct vmsg *m, const char *at, const char *v,
    const char *const *set)
{
	char list[1024];
	size_t len = 0;
	int w, q, cut;

	if (in_set(v, set)) {
		return;
	}
	q = validate_quote_len(v, &cut);
	list[0] = '\0';
	for (; *set != NULL && len < sizeof(list); set++) {
		w = snprintf(list + len, sizeof(list) - len, "%s%s",
		    len > 0 ? ", " : "", *set);
		len += w > 0 ? (size_t)w : 0;
	}
	vadd(m, "Value '%.*s%s' at '%s' failed to satisfy constraint: "
	    "Member must satisfy enum value set: [%s]", q, v, cut ? "..." : "",
	    at, list);
}

/* A list's value as AWS shows it (Java's List.toString: "[a, b]"). */
static void
list_text(json_t *v, char *buf, size_t bufsz)
{
	json_t *e;
	size_t i, len = 0;
	int w;

	w = snprintf(buf, bufsz, "[");
	len = (size_t)w;
	json_array_foreach(v, i, e) {
		if (len >= bufsz) {
			break;
		}
		w = snprintf(buf + len, bufsz - len, "%s%s", i > 0 ? ", " : "",
		    json_is_string(e) ? json_string_value(e) : "");
		len += w > 0 ? (size_t)w : 0;
	}
	if (len < bufsz) {
		snprintf(buf + len, bufsz - len, "]");
	}
}

/* Is s standard base64 (whole quads, '=' only to pad the last)?  Not
 * base64 is a SerializationException, answered before validation. */
static int
b64_shape_ok(const char *s, size_t len)
{
	size_t i, pad = 0;
	unsigned char ch;

	if (len % 4 != 0) {
		return 0;
	}
	while (pad < 2 && pad < len && s[len - 1 - pad] == '=') {
		pad++;
	}
	/* Every byte of a Batch's blobs passes here: no search per byte. */
	for (i = 0; i < len - pad; i++) {
		ch = (unsigned char)s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/')) {
			return 0;
		}
	}
	return 1;
}

/* Is v of the member's JSON type? */
static int
type_ok(const struct vmember *d, json_t *v)
{
	json_t *e, *k, *t;
	const char *key;
	size_t i;

	switch (d->kind) {
	case V_STR:
	case V_ENUM:
		return json_is_string(v);
	case V_BLOB:
		return json_is_string(v) && b64_shape_ok(json_string_value(v),
		    json_string_length(v));
	case V_INT:
		return json_is_integer(v);
	case V_BOOL:
		return json_is_boolean(v);
	case V_MAP:
		if (!json_is_object(v)) {
			return 0;
		}
		json_object_foreach(v, key, e) {
			if (!json_is_string(e)) {
				return 0;
			}
		}
		return 1;
	case V_STRLIST:
	case V_ENUMLIST:
		if (!json_is_array(v)) {
			return 0;
		}
		json_array_foreach(v, i, e) {
			if (!json_is_string(e)) {
				return 0;
			}
		}
		return 1;
	case V_TAGS:
		if (!json_is_array(v)) {
			return 0;
		}
		json_array_foreach(v, i, e) {
			k = json_object_get(e, "TagKey");
			t = json_object_get(e, "TagValue");
			if (!json_is_object(e) ||
			    (k != NULL && !json_is_null(k) &&
			    !json_is_string(k)) ||
			    (t != NULL && !json_is_null(t) &&
			    !json_is_string(t))) {
				return 0;
			}
		}
		return 1;
	default:
		return 0;
	}
}

static void
check_member(struct vmsg *m, const struct vmember *d, json_t *v)
{
	char at[96], elem[128], list[600];
	long long n;
	size_t i, len;
	json_t *e, *k, *t;

	validate_member_name(d->name, at, sizeof(at));
	if (v == NULL) {
		if (d->required) {
			vadd(m, "Value%s at '%s' failed to satisfy constraint: "
			    "Member must not be null", d->hide ==
			    HIDE_SENSITIVE ? "" : " null", at);
		}
		return;
	}
	switch (d->kind) {
	case V_STR:
		check_string(m, at, v, d->min, d->max, d->pattern, d->hide);
		break;
	case V_ENUM:
		check_enum(m, at, json_string_value(v), d->set);
		break;
	case V_INT:
		n = json_integer_value(v);
		if (n < d->min) {
			vadd(m, "Value '%lld' at '%s' failed to satisfy "
			    "constraint: Member must have value greater than or "
			    "equal to %lld", n, at, d->min);
		} else if (n > d->max) {
			vadd(m, "Value '%lld' at '%s' failed to satisfy "
			    "constraint: Member must have value less than or "
			    "equal to %lld", n, at, d->max);
		}
		break;
	case V_BLOB:
		len = json_string_length(v);
		n = (long long)b64_decoded_len(json_string_value(v), len);
		if (n < d->min) {
			vadd(m, "Value at '%s' failed to satisfy constraint: "
			    "Member must have length greater than or equal to "
			    "%lld", at, d->min);
		} else if (n > d->max) {
			vadd(m, "Value at '%s' failed to satisfy constraint: "
			    "Member must have length less than or equal to %lld",
			    at, d->max);
		}
		break;
	case V_STRLIST:
	case V_ENUMLIST:
		n = (long long)json_array_size(v);
		if (d->max != NOMAX && n > d->max && d->hide) {
			vadd(m, "Value at '%s' failed to satisfy constraint: "
			    "Member must have length less than or equal to %lld",
			    at, d->max);
		} else if (d->max != NOMAX && n > d->max) {
			list_text(v, list, sizeof(list));
			vadd(m, "Value '%s' at '%s' failed to satisfy "
			    "constraint: Member must have length less than or "
			    "equal to %lld", list, at, d->max);
		}
		json_array_foreach(v, i, e) {
			snprintf(elem, sizeof(elem), "%s.%zu.member", at,
			    i + 1);
			if (d->kind == V_ENUMLIST) {
				check_enum(m, elem, json_string_value(e),
				    d->set);
			} else {
				check_string(m, elem, e, d->emin, d->emax,
				    P_NONE, d->hide);
			}
		}
		break;
	case V_TAGS:
		json_array_foreach(v, i, e) {
			k = json_object_get(e, "TagKey");
			t = json_object_get(e, "TagValue");
			snprintf(elem, sizeof(elem), "%s.%zu.member.tagKey",
			    at, i + 1);
			if (k == NULL || json_is_null(k)) {
				vadd(m, "Value null at '%s' failed to satisfy "
				    "constraint: Member must not be null", elem);
			} else {
				check_string(m, elem, k, 1, 128, P_NONE, 0);
			}
			snprintf(elem, sizeof(elem), "%s.%zu.member.tagValue",
			    at, i + 1);
			if (t == NULL || json_is_null(t)) {
				vadd(m, "Value null at '%s' failed to satisfy "
				    "constraint: Member must not be null", elem);
			} else {
				check_string(m, elem, t, 0, 256, P_NONE, 0);
			}
		}
		break;
	default:
		break;
	}
}

int
validate_request(const char *op, json_t *req, char *msg, size_t msgsz)
{
	const size_t n = sizeof(members) / sizeof(members[0]);
	char text[4096];
	struct vmsg m = { text, sizeof(text), 0, 0 };
	json_t *v;
	size_t i, first;

	text[0] = '\0';
	for (first = 0; first < n && strcmp(members[first].op, op) != 0;
	    first++) {
	}
	/* A member of the wrong type is a SerializationException, which
	 * AWS answers before validating anything. */
	for (i = first; i < n && strcmp(members[i].op, op) == 0; i++) {
		v = json_object_get(req, members[i].name);
		if (v != NULL && !json_is_null(v) && !type_ok(&members[i], v)) {
			return 0;
		}
	}
	for (i = first; i < n && strcmp(members[i].op, op) == 0; i++) {
		v = json_object_get(req, members[i].name);
		check_member(&m, &members[i], json_is_null(v) ? NULL : v);
	}
	if (m.n == 0) {
		return 0;
	}
	snprintf(msg, msgsz, "%d validation error%s detected: %s", m.n,
	    m.n > 1 ? "s" : "", text);
	return KMS_EVALIDATION;
}
