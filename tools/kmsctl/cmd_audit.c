/*
 * cmd_audit.c — `kmsctl audit ...`: the audit log's tools.
 *
 *   kmsctl audit verify [--public-key FILE] [--json] FILE...
 *	Checks the hash chain and every checkpoint signature offline (OpenSSL
 *	only: no daemon, no HSM) and says what is wrong and where: a line
 *	edited, deleted, inserted or reordered, a file missing from the
 *	middle, a truncated tail, a forged or missing signature, a signature
 *	by another key.  Records after the last checkpoint are an unsigned
 *	tail: a warning.  Exit 0 only when everything verifies, 1 otherwise.
 *   kmsctl audit query [--key-id ID] [--principal P] [--operation OP]
 *	[--result success|error|denied] [--since T] [--until T] [--json]
 *	[--follow] [DIR]
 *	Prints the records that match, across rotated files, as a table or
 *	as JSON lines; --follow prints new records as they come.
 *   kmsctl audit public-key
 *	Prints the audit signing key's public half as PEM (from kmsd).
 *
 * The format (kmsd/audit/audit.h): one JSON object per line; each ends
 * with "sequence" (1, 2, ... across files) and "previousHash", the hex
 * SHA-256 of the previous line's bytes without its newline (64 zeros
 * before the first).  Files are kmsd-audit-NNNNNNNN.jsonl; the first
 * line of each (AuditLogFileOpened) gives its number.  An AuditCheckpoint
 * line's serviceEventDetails carry chainHead (the hash of a line before
 * it, usually the one just before), recordCount (that line's sequence),
 * signedAt, keyFingerprint
 * ("SHA256:" base64 of the SubjectPublicKeyInfo's SHA-256) and a
 * signature over the statement
 *	kmsd-audit-checkpoint-v1\nchainHead=H\nrecordCount=N\nsignedAt=T\n
 *	keyFingerprint=F\n
 * by Ed25519, or ECDSA P-256 over its SHA-256 (r ‖ s).
 *
 * Diagnosis of a broken link between a line P and the next line C (with
 * N after C and PP before P): N chains to P → C was inserted; C chains to
 * N → C and N are swapped; C chains to PP → P was inserted; C's sequence
 * skips → records were deleted; it goes back → reordered; else P was
 * edited.  After each finding the check carries on from where the chain
 * holds again, so one change is reported once.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "kms.h"
#include "common/b64.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 252
#define EXIT_OTHER 255
#define AUDIT_FILE_MAX (4ULL << 30)	/* a file we read whole */
#define STATEMENT "kmsd-audit-checkpoint-v1"
/* Lines that may come between a signed record and its checkpoint. */
#define CHECKPOINT_LAG 100000

struct rec {
	int valid;			/* parsed as a record */
	int resync;			/* do not check its link (a gap before) */
	uint64_t seq;
	uint8_t hash[32], prev[32];
	int file;			/* index into files */
	size_t line;			/* 1-based */
	const char *text;		/* the line, in its file's buffer */
	size_t textlen;
	json_t *j;			/* parsed, while it is looked at */
};

struct afile {
	const char *path;
	char *buf;
	size_t len;
	long long no;			/* from its first line; -1: unknown */
};

struct verifier {
	int json;
	json_t *errors, *warnings;
	struct afile *files;
	int nfiles;
	EVP_PKEY *key;			/* pinned or from the log */
	char key_fp[64];
	int key_pinned;
	/* the chain */
	struct rec *recs;
	size_t nrecs, p, pp;		/* p: the last record accepted */
	uint64_t records, checkpoints;
	uint64_t signed_seq;		/* covered by the last good checkpoint */
	int signed_file;
	size_t signed_line;
	int have_signed;
	int resync;			/* skip the next link check */
};

static void
say(struct verifier *v, int error, const char *kind, const struct rec *r,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
say(struct verifier *v, int error, const char *kind, const struct rec *r,
    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s, s:s}", "kind", kind, "message", msg);
	if (r != NULL) {
		json_object_set_new(o, "file",
		    json_string(v->files[r->file].path));
		json_object_set_new(o, "line", json_integer((json_int_t)
		    r->line));
		if (r->valid) {
			json_object_set_new(o, "sequence",
			    json_integer((json_int_t)r->seq));
		}
	}
	json_array_append_new(error ? v->errors : v->warnings, o);
	if (!v->json) {
		if (r != NULL) {
			printf("%s:%zu: %s: %s\n", v->files[r->file].path,
			    r->line, error ? "error" : "warning", msg);
		} else {
			printf("%s: %s\n", error ? "error" : "warning", msg);
		}
	}
}

static int
unhex32(const char *s, uint8_t out[32])
{
	int i;

	if (s == NULL || strlen(s) != 64) {
		return -1;
	}
	for (i = 0; i < 32; i++) {
		unsigned x;
		if (sscanf(s + 2 * i, "%2x", &x) != 1) {
			return -1;
		}
		out[i] = (uint8_t)x;
	}
	return 0;
}

static void
hex32(const uint8_t h[32], char out[65])
{
	static const char hx[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = hx[h[i] >> 4];
		out[2 * i + 1] = hx[h[i] & 15];
	}
	out[64] = '\0';
}

static int
read_whole(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL, *nb;
	size_t cap = 0, n = 0, got;

	if (f == NULL) {
		return -1;
	}
	for (;;) {
		if (cap - n < 65536) {
			if (cap > AUDIT_FILE_MAX ||
			    (nb = realloc(buf, cap + (cap < 65536 ? 65536 :
			    cap))) == NULL) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return -1;
			}
			buf = nb;
			cap += cap < 65536 ? 65536 : cap;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			break;
		}
	}
	fclose(f);
	*out = buf;
	*len = n;
	return 0;
}

static int
fingerprint(EVP_PKEY *k, char out[64])
{
	unsigned char *der = NULL;
	uint8_t h[32];
	char b64[64];
	int n = i2d_PUBKEY(k, &der);
	size_t l;

	if (n <= 0) {
		return -1;
	}
	SHA256(der, (size_t)n, h);
	OPENSSL_free(der);
	b64_encode(h, sizeof(h), b64, sizeof(b64));
	l = strlen(b64);
	while (l > 0 && b64[l - 1] == '=') {
		b64[--l] = '\0';
	}
	snprintf(out, 64, "SHA256:%s", b64);
	return 0;
}

static EVP_PKEY *
key_from_b64(const char *s)
{
	uint8_t der[256];
	const unsigned char *p = der;
	size_t n = 0;

	if (s == NULL || b64_decode(s, strlen(s), der, sizeof(der), &n) != 0) {
		return NULL;
	}
	return d2i_PUBKEY(NULL, &p, (long)n);
}

/* 1 when sig (64 bytes) is a signature of msg by k. */
static int
sig_ok(EVP_PKEY *k, const uint8_t *sig, size_t siglen, const char *msg,
    size_t len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	ECDSA_SIG *es = NULL;
	int ok = 0, dlen;

	if (ctx == NULL || siglen != 64) {
		goto out;
	}
	if (EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519) {
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
		    EVP_DigestVerify(ctx, sig, siglen, (const uint8_t *)msg,
		    len) == 1;
		goto out;
	}
	/* ECDSA: r ‖ s as the HSM gives it, DER as OpenSSL wants it. */
	if ((es = ECDSA_SIG_new()) == NULL || ECDSA_SIG_set0(es,
	    BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)) != 1 ||
	    (dlen = i2d_ECDSA_SIG(es, &der)) <= 0) {
		goto out;
	}
	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k) == 1 &&
	    EVP_DigestVerify(ctx, der, (size_t)dlen, (const uint8_t *)msg,
	    len) == 1;
 out:
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return ok;
}

static const char *
event_name(const struct rec *r)
{
	json_t *e = json_object_get(r->j, "eventName");

	return json_is_string(e) ? json_string_value(e) : "";
}

static json_t *
details(const struct rec *r)
{
	return json_object_get(r->j, "serviceEventDetails");
}

/* A KmsdStart record names the key; the first one is used when none is
 * pinned. */
static void
note_start(struct verifier *v, const struct rec *r)
{
	json_t *k = json_object_get(details(r), "auditKey");
	EVP_PKEY *pk;

	if (v->key != NULL || !json_is_object(k)) {
		return;
	}
	if ((pk = key_from_b64(json_string_value(json_object_get(k,
	    "publicKey")))) == NULL) {
		say(v, 1, "malformed", r, "the start record's public key "
		    "cannot be read");
		return;
	}
	v->key = pk;
	fingerprint(pk, v->key_fp);
	say(v, 0, "key-not-pinned", r, "signatures are checked against the "
	    "key this start record names (%s); pin it with --public-key "
	    "(kmsctl audit public-key)", v->key_fp);
}

static void
check_checkpoint(struct verifier *v, const struct rec *r)
{
	json_t *d = details(r);
	const char *head = json_string_value(json_object_get(d, "chainHead"));
	const char *when = json_string_value(json_object_get(d, "signedAt"));
	const char *fp = json_string_value(json_object_get(d,
	    "keyFingerprint"));
	const char *sig = json_string_value(json_object_get(d, "signature"));
	json_t *cnt = json_object_get(d, "recordCount");
	uint8_t h[32], sb[128];
	char st[512], hx[65];
	size_t sl = 0;
	int n;

	if (head == NULL || when == NULL || fp == NULL ||
	    !json_is_integer(cnt) || unhex32(head, h) != 0) {
		say(v, 1, "malformed", r, "checkpoint without chainHead, "
		    "recordCount, signedAt or keyFingerprint");
		return;
	}
	if (sig == NULL || sig[0] == '\0') {
		say(v, 1, "missing-signature", r, "checkpoint of record %lld "
		    "has no signature", (long long)json_integer_value(cnt));
		return;
	}
	/* The record it signs: the line before it, or one a little before
	 * (records written while the HSM signed come in between). */
	{
		const struct rec *t = NULL;
		size_t k = (size_t)(r - v->recs), back;
		for (back = 1; back <= CHECKPOINT_LAG && back <= k; back++) {
			if (v->recs[k - back].seq ==
			    (uint64_t)json_integer_value(cnt)) {
				t = &v->recs[k - back];
				break;
			}
		}
		if (t == NULL || memcmp(h, t->hash, 32) != 0) {
			say(v, 1, "edited", r, "checkpoint names chain head "
			    "%.16s... of record %lld, which %s", head,
			    (long long)json_integer_value(cnt), t == NULL ?
			    "is not among the lines before it" : "has "
			    "another hash (edited)");
			return;
		}
	}
	if (v->key == NULL) {
		say(v, 1, "missing-key", r, "no public key to check the "
		    "signature with (give --public-key)");
		return;
	}
	if (strcmp(fp, v->key_fp) != 0) {
		say(v, 1, "wrong-key", r, "checkpoint signed by another key "
		    "(%s), not %s", fp, v->key_fp);
		return;
	}
	hex32(h, hx);
	n = snprintf(st, sizeof(st), STATEMENT "\nchainHead=%s\n"
	    "recordCount=%lld\nsignedAt=%s\nkeyFingerprint=%s\n", hx,
	    (long long)json_integer_value(cnt), when, fp);
	if (n <= 0 || (size_t)n >= sizeof(st) ||
	    b64_decode(sig, strlen(sig), sb, sizeof(sb), &sl) != 0 ||
	    !sig_ok(v->key, sb, sl, st, (size_t)n)) {
		say(v, 1, "forged-signature", r, "the checkpoint's signature "
		    "does not verify (forged, or the checkpoint edited)");
		return;
	}
	v->checkpoints++;
	v->signed_seq = r->seq;
	v->signed_file = r->file;
	v->signed_line = r->line;
	v->have_signed = 1;
}

/* Parse one line into r (r->valid 0: not a record); r->j is parsed
 * again on demand (checkpoints, start records). */
static void
parse_line(struct rec *r, const char *s, size_t n, int file, size_t line)
{
	json_t *j, *seq, *prev;

	memset(r, 0, sizeof(*r));
	r->file = file;
	r->line = line;
	r->text = s;
	r->textlen = n;
	SHA256((const uint8_t *)s, n, r->hash);
	j = json_loadb(s, n, 0, NULL);
	seq = json_object_get(j, "sequence");
	prev = json_object_get(j, "previousHash");
	if (json_is_integer(seq) && json_integer_value(seq) >= 1 &&
	    unhex32(json_string_value(prev), r->prev) == 0) {
		r->seq = (uint64_t)json_integer_value(seq);
		r->valid = 1;
	}
	json_decref(j);
}

static void
loc(const struct verifier *v, const struct rec *r, char *out, size_t len)
{
	snprintf(out, len, "%s:%zu", v->files[r->file].path, r->line);
}

/* Record k is part of the chain now. */
static void
accept(struct verifier *v, size_t k)
{
	struct rec *r = &v->recs[k];

	r->j = json_loadb(r->text, r->textlen, 0, NULL);
	if (strcmp(event_name(r), "KmsdStart") == 0) {
		note_start(v, r);
	}
	if (strcmp(event_name(r), "AuditCheckpoint") == 0) {
		check_checkpoint(v, r);
	}
	json_decref(r->j);
	r->j = NULL;
	v->records++;
	v->pp = v->p;
	v->p = k;
}

#define NONE ((size_t)-1)

/* The chain over every record, in order; see the top for the diagnosis. */
static void
chain(struct verifier *v)
{
	struct rec *R = v->recs, *c, *nx, *nn, *p;
	size_t i = 0, n = v->nrecs;
	char a[600], b[600];

	v->p = v->pp = NONE;
	while (i < n) {
		c = &R[i];
		if (v->p == NONE && !c->resync) {
			static const uint8_t zero[32];
			if (c->seq != 1 || memcmp(c->prev, zero, 32) != 0) {
				say(v, 1, "deleted", c, "the log does not begin "
				    "with record 1: records 1-%llu are missing "
				    "(deleted)", (unsigned long long)(c->seq -
				    1));
			}
		}
		if (v->p == NONE || c->resync) {
			accept(v, i++);
			continue;
		}
		p = &R[v->p];
		if (memcmp(c->prev, p->hash, 32) == 0) {
			if (c->seq != p->seq + 1) {
				say(v, 1, "edited", c, "record numbered %llu "
				    "follows record %llu with a good hash link "
				    "(its sequence was edited)",
				    (unsigned long long)c->seq,
				    (unsigned long long)p->seq);
			}
			accept(v, i++);
			continue;
		}
		nx = i + 1 < n && !R[i + 1].resync ? &R[i + 1] : NULL;
		nn = i + 2 < n && !R[i + 2].resync ? &R[i + 2] : NULL;
		loc(v, p, a, sizeof(a));
		if (nx != NULL && memcmp(c->prev, nx->hash, 32) == 0 &&
		    memcmp(nx->prev, p->hash, 32) == 0 && (nn == NULL ||
		    memcmp(nn->prev, c->hash, 32) == 0)) {
			say(v, 1, "reordered", c, "this line (record %llu) and "
			    "the next (record %llu) are in the wrong order",
			    (unsigned long long)c->seq,
			    (unsigned long long)nx->seq);
			accept(v, i + 1);
			accept(v, i);
			i += 2;
			continue;
		}
		if (nx != NULL && memcmp(nx->prev, p->hash, 32) == 0) {
			say(v, 1, "inserted", c, "this line was inserted: the "
			    "next line chains to %s", a);
			v->records++;
			i++;
			continue;
		}
		loc(v, c, b, sizeof(b));
		if (v->pp != NONE && memcmp(c->prev, R[v->pp].hash, 32) == 0) {
			say(v, 1, "inserted", p, "this line was inserted: the "
			    "next line (%s) chains to the one before it", b);
		} else if (c->seq > p->seq + 1) {
			if (c->seq - p->seq > 2) {
				say(v, 1, "deleted", c, "records %llu-%llu are "
				    "missing before this line (deleted): the "
				    "line before it (%s) is record %llu",
				    (unsigned long long)(p->seq + 1),
				    (unsigned long long)(c->seq - 1), a,
				    (unsigned long long)p->seq);
			} else {
				say(v, 1, "deleted", c, "record %llu is "
				    "missing before this line (deleted): the "
				    "line before it (%s) is record %llu",
				    (unsigned long long)(p->seq + 1), a,
				    (unsigned long long)p->seq);
			}
		} else if (c->seq <= p->seq) {
			say(v, 1, "reordered", c, "record %llu comes after "
			    "record %llu (%s): lines out of order or repeated",
			    (unsigned long long)c->seq,
			    (unsigned long long)p->seq, a);
		} else {
			say(v, 1, "edited", p, "this line (record %llu) was "
			    "edited: its hash is not the one the next line "
			    "(%s) records", (unsigned long long)p->seq, b);
		}
		accept(v, i++);
	}
}

static long long
file_number(const char *buf, size_t len)
{
	const char *nl = memchr(buf, '\n', len);
	json_t *j, *d, *no;
	long long r = -1;

	if ((j = json_loadb(buf, nl != NULL ? (size_t)(nl - buf) : len, 0,
	    NULL)) == NULL) {
		return -1;
	}
	d = json_object_get(j, "serviceEventDetails");
	no = json_object_get(d, "fileNumber");
	if (json_is_integer(no)) {
		r = json_integer_value(no);
	}
	json_decref(j);
	return r;
}

static int
cmp_files(const void *x, const void *y)
{
	const struct afile *a = x, *b = y;

	return a->no < b->no ? -1 : a->no > b->no;
}

/* Every line of every file, in order, into v->recs. */
static int
collect(struct verifier *v)
{
	struct rec r, *nr;
	size_t off, line, cap = 0;
	int f, gap = v->resync;

	for (f = 0; f < v->nfiles; f++) {
		struct afile *af = &v->files[f];
		if (f > 0 && af->no >= 0 && v->files[f - 1].no >= 0 &&
		    af->no > v->files[f - 1].no + 1) {
			char name[64];
			snprintf(name, sizeof(name), "kmsd-audit-%08lld.jsonl",
			    v->files[f - 1].no + 1);
			say(v, 1, "file-missing", NULL, "file %s%s is missing "
			    "between %s and %s", name, af->no -
			    v->files[f - 1].no > 2 ? " (and more)" : "",
			    v->files[f - 1].path, af->path);
			gap = 1;	/* not a deletion of records, too */
		}
		for (off = 0, line = 1; off < af->len; line++) {
			const char *s = af->buf + off;
			const char *nl = memchr(s, '\n', af->len - off);
			size_t n = nl != NULL ? (size_t)(nl - s) :
			    af->len - off;
			if (nl == NULL) {
				memset(&r, 0, sizeof(r));
				r.file = f;
				r.line = line;
				say(v, 1, "truncated", &r, "the last line is "
				    "cut short (%zu bytes, no newline): the "
				    "log was truncated", n);
				break;
			}
			off += n + 1;
			parse_line(&r, s, n, f, line);
			if (!r.valid) {
				say(v, 1, "edited", &r, "not an audit record "
				    "(no sequence and previousHash): edited "
				    "or damaged");
				continue;
			}
			r.resync = gap;
			gap = 0;
			if (v->nrecs == cap) {
				cap = cap == 0 ? 1024 : cap * 2;
				if ((nr = realloc(v->recs, cap *
				    sizeof(*nr))) == NULL) {
					return -1;
				}
				v->recs = nr;
			}
			v->recs[v->nrecs++] = r;
		}
	}
	return 0;
}

static int
verify_usage(void)
{
	fprintf(stderr, "usage: kmsctl audit verify [--public-key FILE] "
	    "[--json] FILE...\n"
	    "       kmsctl audit query [--key-id ID] [--principal P] "
	    "[--operation OP]\n"
	    "             [--result success|error|denied] [--since TIME] "
	    "[--until TIME]\n"
	    "             [--json] [--follow] [DIR (default var/audit)]\n"
	    "       kmsctl audit public-key [--endpoint URL]\n");
	return EXIT_USAGE;
}

static int
cmd_verify(int argc, char **argv)
{
	struct verifier v;
	const char *keyfile = NULL;
	char head[65];
	int i, r = EXIT_FAIL, first = 1;
	json_t *out;

	memset(&v, 0, sizeof(v));
	v.p = v.pp = (size_t)-1;
	v.errors = json_array();
	v.warnings = json_array();
	if ((v.files = calloc((size_t)argc + 1, sizeof(*v.files))) == NULL) {
		return EXIT_OTHER;
	}
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--public-key") == 0 && i + 1 < argc) {
			keyfile = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			v.json = 1;
		} else if (strncmp(argv[i], "--", 2) == 0) {
			free(v.files);
			return verify_usage();
		} else {
			v.files[v.nfiles++].path = argv[i];
		}
	}
	if (v.nfiles == 0) {
		free(v.files);
		return verify_usage();
	}
	if (keyfile != NULL) {
		FILE *f = fopen(keyfile, "r");
		if (f == NULL || (v.key = PEM_read_PUBKEY(f, NULL, NULL,
		    NULL)) == NULL) {
			fprintf(stderr, "kmsctl: %s: not a PEM public key\n",
			    keyfile);
			if (f != NULL) {
				fclose(f);
			}
			r = EXIT_USAGE;
			goto out;
		}
		fclose(f);
		fingerprint(v.key, v.key_fp);
		v.key_pinned = 1;
	}
	for (i = 0; i < v.nfiles; i++) {
		if (read_whole(v.files[i].path, &v.files[i].buf,
		    &v.files[i].len) != 0) {
			fprintf(stderr, "kmsctl: %s: %s\n", v.files[i].path,
			    strerror(errno));
			r = EXIT_OTHER;
			goto out;
		}
		v.files[i].no = file_number(v.files[i].buf, v.files[i].len);
		if (v.files[i].no < 0) {
			first = 0;
		}
	}
	/* Files in the order kmsd wrote them, whatever the command line's. */
	if (first) {
		qsort(v.files, (size_t)v.nfiles, sizeof(*v.files), cmp_files);
		for (i = 1; i < v.nfiles; i++) {
			if (v.files[i].no == v.files[i - 1].no) {
				say(&v, 1, "duplicate-file", NULL, "%s and %s "
				    "both say they are file %lld",
				    v.files[i - 1].path, v.files[i].path,
				    v.files[i].no);
			}
		}
		if (v.files[0].no > 1) {
			say(&v, 0, "partial-log", NULL, "the log given starts "
			    "at file %lld: earlier files are not checked",
			    v.files[0].no);
			v.resync = 1;
		}
	} else {
		say(&v, 0, "file-order", NULL, "a file does not begin with "
		    "its number (AuditLogFileOpened); checked in the order "
		    "given");
	}
	if (collect(&v) != 0) {
		fprintf(stderr, "kmsctl: out of memory\n");
		r = EXIT_OTHER;
		goto out;
	}
	chain(&v);
	head[0] = '\0';
	if (v.p != NONE) {
		struct rec *last = &v.recs[v.p];
		hex32(last->hash, head);
		if (last->seq > v.signed_seq) {
			say(&v, 0, "unsigned-tail", last, "the %llu record%s "
			    "after the last checkpoint %s not signed: an "
			    "unsigned tail (kmsd running or stopped "
			    "uncleanly, which its next start signs; or lines "
			    "cut from the end)", (unsigned long long)
			    (last->seq - v.signed_seq), last->seq -
			    v.signed_seq > 1 ? "s" : "", last->seq -
			    v.signed_seq > 1 ? "are" : "is");
		}
	}
	r = json_array_size(v.errors) == 0 ? EXIT_OK : EXIT_FAIL;
	if (v.json) {
		out = json_pack("{s:b, s:I, s:i, s:I, s:s, s:s?, s:O, s:O}",
		    "ok", r == EXIT_OK, "records", (json_int_t)v.records,
		    "files", v.nfiles, "checkpoints",
		    (json_int_t)v.checkpoints, "chainHead", head,
		    "keyFingerprint", v.key != NULL ? v.key_fp : NULL,
		    "errors", v.errors, "warnings", v.warnings);
		json_dumpf(out, stdout, JSON_INDENT(4));
		printf("\n");
		json_decref(out);
	} else if (r == EXIT_OK) {
		printf("OK: %llu records in %d file%s, %llu checkpoint%s "
		    "verified (key %s), chain head %s\n",
		    (unsigned long long)v.records, v.nfiles, v.nfiles > 1 ?
		    "s" : "", (unsigned long long)v.checkpoints,
		    v.checkpoints == 1 ? "" : "s", v.key != NULL ? v.key_fp :
		    "none", head);
	} else {
		printf("FAILED: %zu error%s in %llu records\n",
		    json_array_size(v.errors), json_array_size(v.errors) > 1 ?
		    "s" : "", (unsigned long long)v.records);
	}
 out:
	free(v.recs);
	for (i = 0; i < v.nfiles; i++) {
		free(v.files[i].buf);
	}
	free(v.files);
	EVP_PKEY_free(v.key);
	json_decref(v.errors);
	json_decref(v.warnings);
	return r;
}

static int
cmd_public_key(int argc, char **argv)
{
	const char *endpoint = NULL, *req = "{\"Action\":\"GetAuditPublicKey\"}";
	kms_client *c = NULL;
	kms_error_info ei;
	char *reply = NULL;
	size_t rlen = 0;
	json_t *j = NULL, *pem;
	int i, r;

	for (i = 0; i < argc; i++) {
		if ((strcmp(argv[i], "--endpoint") == 0 ||
		    strcmp(argv[i], "--endpoint-url") == 0) && i + 1 < argc) {
			endpoint = argv[++i];
		} else {
			return verify_usage();
		}
	}
	if ((r = kms_client_open(&c, endpoint)) != 0) {
		fprintf(stderr, "\nInvalid endpoint: %s (%s)\n",
		    endpoint != NULL ? endpoint : "(default)", kms_strerror(r));
		return EXIT_OTHER;
	}
	memset(&ei, 0, sizeof(ei));
	r = kms_call_json(c, req, strlen(req), &reply, &rlen, &ei);
	kms_client_close(c);
	if (r != 0) {
		fprintf(stderr, "\nAn error occurred (%s) when calling the "
		    "GetAuditPublicKey operation: %s\n", ei.name, ei.message);
		kms_free(reply);
		return 254;
	}
	j = json_loadb(reply, rlen, 0, NULL);
	kms_free(reply);
	pem = json_object_get(j, "PublicKey");
	if (!json_is_string(pem)) {
		json_decref(j);
		fprintf(stderr, "kmsctl: a reply without PublicKey\n");
		return EXIT_OTHER;
	}
	fputs(json_string_value(pem), stdout);
	json_decref(j);
	return EXIT_OK;
}

/* ---- query ---- */

struct qfilter {
	const char *key, *principal, *operation, *result, *since, *until;
	int json;
};

static int
rec_key_matches(json_t *j, const char *key)
{
	json_t *res = json_object_get(j, "resources"), *r, *p;
	size_t i;

	json_array_foreach(res, i, r) {
		const char *arn = json_string_value(json_object_get(r, "ARN"));
		if (arn != NULL && strstr(arn, key) != NULL) {
			return 1;
		}
	}
	p = json_object_get(json_object_get(j, "requestParameters"), "keyId");
	return json_is_string(p) && strstr(json_string_value(p), key) != NULL;
}

static int
rec_matches(json_t *j, const struct qfilter *f)
{
	const char *t = json_string_value(json_object_get(j, "eventTime"));
	const char *op = json_string_value(json_object_get(j, "eventName"));
	const char *who = json_string_value(json_object_get(json_object_get(j,
	    "userIdentity"), "principalId"));
	const char *err = json_string_value(json_object_get(j, "errorCode"));

	if (f->key != NULL && !rec_key_matches(j, f->key)) {
		return 0;
	}
	if (f->principal != NULL && (who == NULL ||
	    strcmp(who, f->principal) != 0)) {
		return 0;
	}
	if (f->operation != NULL && (op == NULL ||
	    strcmp(op, f->operation) != 0)) {
		return 0;
	}
	if (f->result != NULL && ((strcmp(f->result, "success") == 0 &&
	    err != NULL) || (strcmp(f->result, "error") == 0 && err == NULL) ||
	    (strcmp(f->result, "denied") == 0 && (err == NULL ||
	    strcmp(err, "AccessDeniedException") != 0)))) {
		return 0;
	}
	/* eventTime is fixed-width UTC: text order is time order, and a
	 * prefix ("2026-12-05") bounds by day. */
	if (f->since != NULL && (t == NULL || strcmp(t, f->since) < 0)) {
		return 0;
	}
	if (f->until != NULL && (t == NULL || strncmp(t, f->until,
	    strlen(f->until)) > 0)) {
		return 0;
	}
	return 1;
}

static void
print_rec(json_t *j, const char *line, size_t n, const struct qfilter *f)
{
	const char *t = json_string_value(json_object_get(j, "eventTime"));
	const char *op = json_string_value(json_object_get(j, "eventName"));
	json_t *ui = json_object_get(j, "userIdentity");
	const char *who = json_string_value(json_object_get(ui, "principalId"));
	const char *err = json_string_value(json_object_get(j, "errorCode"));
	json_t *res = json_array_get(json_object_get(j, "resources"), 0);
	const char *arn = json_string_value(json_object_get(res, "ARN"));
	const char *key = arn != NULL && strrchr(arn, '/') != NULL ?
	    strrchr(arn, '/') + 1 : "-";

	if (f->json) {
		fwrite(line, 1, n, stdout);
		fputc('\n', stdout);
		return;
	}
	if (who == NULL) {
		who = json_string_value(json_object_get(ui, "invokedBy"));
	}
	printf("%-24s  %-31s  %-20s  %-36s  %s\n", t != NULL ? t : "-",
	    op != NULL ? op : "-", who != NULL ? who : "-", key,
	    err != NULL ? err : "OK");
}

/* Print the matching records of buf[0..len); returns the bytes of
 * complete lines consumed (a partial last line waits for --follow). */
static size_t
query_buf(const char *buf, size_t len, const struct qfilter *f)
{
	size_t off = 0;
	const char *nl;
	json_t *j;

	while (off < len && (nl = memchr(buf + off, '\n', len - off)) !=
	    NULL) {
		size_t n = (size_t)(nl - (buf + off));
		if ((j = json_loadb(buf + off, n, 0, NULL)) != NULL) {
			if (rec_matches(j, f)) {
				print_rec(j, buf + off, n, f);
			}
			json_decref(j);
		}
		off += n + 1;
	}
	fflush(stdout);
	return off;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The audit files of dir, sorted (their names sort as kmsd wrote them). */
static int
list_dir(const char *dir, char ***out, int *n)
{
	struct dirent *de;
	char **v = NULL, **nv;
	int k = 0;
	DIR *d = opendir(dir);

	if (d == NULL) {
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (strncmp(de->d_name, "kmsd-audit-", 11) != 0 || l < 6 ||
		    strcmp(de->d_name + l - 6, ".jsonl") != 0) {
			continue;
		}
		if ((nv = realloc(v, (size_t)(k + 1) * sizeof(*v))) == NULL) {
			break;
		}
		v = nv;
		if (asprintf(&v[k], "%s/%s", dir, de->d_name) < 0) {
			break;
		}
		k++;
	}
	closedir(d);
	qsort(v, (size_t)k, sizeof(*v), cmp_names);
	*out = v;
	*n = k;
	return 0;
}

static int
cmd_query(int argc, char **argv)
{
	struct qfilter f;
	const char *dir = NULL;
	char **files = NULL, *buf = NULL;
	int nfiles = 0, follow = 0, i, r = EXIT_OK;
	size_t len = 0, used = 0;

	memset(&f, 0, sizeof(f));
	for (i = 0; i < argc; i++) {
		const char **dst = NULL;
		if (strcmp(argv[i], "--key-id") == 0) {
			dst = &f.key;
		} else if (strcmp(argv[i], "--principal") == 0) {
			dst = &f.principal;
		} else if (strcmp(argv[i], "--operation") == 0) {
			dst = &f.operation;
		} else if (strcmp(argv[i], "--result") == 0) {
			dst = &f.result;
		} else if (strcmp(argv[i], "--since") == 0) {
			dst = &f.since;
		} else if (strcmp(argv[i], "--until") == 0) {
			dst = &f.until;
		} else if (strcmp(argv[i], "--json") == 0) {
			f.json = 1;
			continue;
		} else if (strcmp(argv[i], "--follow") == 0) {
			follow = 1;
			continue;
		} else if (argv[i][0] == '-' || dir != NULL) {
			return verify_usage();
		} else {
			dir = argv[i];
			continue;
		}
		if (i + 1 >= argc) {
			return verify_usage();
		}
		*dst = argv[++i];
	}
	if (f.result != NULL && strcmp(f.result, "success") != 0 &&
	    strcmp(f.result, "error") != 0 && strcmp(f.result, "denied") != 0) {
		fprintf(stderr, "kmsctl: --result is success, error or denied\n");
		return EXIT_USAGE;
	}
	if (dir == NULL) {
		dir = "var/audit";
	}
	if (list_dir(dir, &files, &nfiles) != 0) {
		fprintf(stderr, "kmsctl: %s: %s\n", dir, strerror(errno));
		return EXIT_OTHER;
	}
	if (!f.json) {
		printf("%-24s  %-31s  %-20s  %-36s  %s\n", "TIME", "OPERATION",
		    "PRINCIPAL", "KEY", "RESULT");
	}
	for (i = 0; i < nfiles; i++) {
		free(buf);
		buf = NULL;
		if (read_whole(files[i], &buf, &len) != 0) {
			continue;
		}
		used = query_buf(buf, len, &f);
	}
	/* --follow: the newest file's new lines, and newer files. */
	while (follow) {
		char **now = NULL;
		int nn = 0;
		usleep(200000);
		if (nfiles > 0 && read_whole(files[nfiles - 1], &buf, &len) ==
		    0 && len > used) {
			used += query_buf(buf + used, len - used, &f);
		}
		if (list_dir(dir, &now, &nn) == 0 && nn > nfiles) {
			for (i = 0; i < nfiles; i++) {
				free(files[i]);
			}
			free(files);
			files = now;
			for (i = nfiles; i < nn; i++) {
				free(buf);
				buf = NULL;
				if (read_whole(files[i], &buf, &len) == 0) {
					used = query_buf(buf, len, &f);
				}
			}
			nfiles = nn;
		} else if (now != NULL) {
			for (i = 0; i < nn; i++) {
				free(now[i]);
			}
			free(now);
		}
	}
	free(buf);
	for (i = 0; i < nfiles; i++) {
		free(files[i]);
	}
	free(files);
	return r;
}

int
cmd_audit(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "verify") == 0) {
		return cmd_verify(argc - 2, argv + 2);
	}
	if (argc >= 2 && strcmp(argv[1], "query") == 0) {
		return cmd_query(argc - 2, argv + 2);
	}
	if (argc >= 2 && strcmp(argv[1], "public-key") == 0) {
		return cmd_public_key(argc - 2, argv + 2);
	}
	return verify_usage();
}
