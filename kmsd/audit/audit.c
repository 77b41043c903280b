/*
 * audit.c — the audit log (see audit.h): the hash chain, files and their
 * rotation, group commit, signed checkpoints, the log's own thread, and
 * the last-usage table; the records themselves are formatted in
 * record.c.
 *
 * A record is formatted outside any lock, without its last two fields,
 * and copied under the log's mutex into the staging ring (a mapped file
 * beside the log, so it outlives a crash of kmsd); then the reply may
 * go.  One writer at a time (a request alone in flight, else the log's
 * thread) appends each staged record's "sequence" and "previousHash",
 * hashes it and writes what the ring held with one write(2), the mutex
 * let go (see commit).
 * The log's thread makes them durable (fdatasync), signs checkpoints
 * (with the HSM turn held for reading: the module may be re-initialised
 * otherwise) and rotates files; it also finds out when a log that could
 * not be written can be again.  Start-up writes what a crash left staged
 * (ring_recover).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* SHA256_CTX: a record's hash, the chain's, without OpenSSL 3's fetch of
 * the digest on each call; it keeps the low-level API, deprecated. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <sodium.h>

#include "common/b64.h"
#include "common/err.h"
#include "common/io.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "common/strhash.h"
#include "kmsd/audit/audit.h"
#include "kmsd/audit/record.h"
#include "kmsd/daemon/clock.h"
#include "kmsd/frontend/principal.h"
#include "kmsd/keys/keycache.h"

#define AUDIT_FILE_PREFIX "kmsd-audit-"
#define AUDIT_FILE_SUFFIX ".jsonl"
#define AUDIT_LINE_MAX (1024 * 1024)	/* a record; the tail read at start */
#define AUDIT_SUFFIX_MAX 128		/* ,"sequence":N,"previousHash":"…"}\n */
#define AUDIT_TICK_MS 20		/* the log thread's longest sleep */
#define AUDIT_RETRY_MS 1000		/* a failed log is tried this often */
#define AUDIT_WRITER_ROUNDS 4		/* writes a writer makes for others */
#define AUDIT_WRITE_MAX (256 * 1024)	/* about the most one write(2) takes */
#define AUDIT_HASH_BLOCKS 12		/* leading blocks a line may share */
#define AUDIT_LINGER_US 1000		/* the log thread gathers records */
#define AUDIT_LINGER_BATCH_US 3000	/* ... when Batches are among them */
#define CHECKPOINT_STATEMENT "kmsd-audit-checkpoint-v1"
/* GetKeyLastUsage's table, saved beside the log: at most this often
 * when it changed, and at shutdown; what the log recorded after the
 * previous save is read again at start-up. */
#define USAGE_FILE "key-last-usage"
#define USAGE_SAVE_MS 5000

/*
 * The staging ring: records are copied here under the mutex, before their
 * reply, and written to the log file from here.  It is a file of the
 * audit directory, mapped shared, so what was staged outlives a crash of
 * kmsd; its blocks are allocated when it is made (no SIGBUS on a full
 * disk).  staged and written count bytes since start-up; start-up writes
 * [written, staged) to the log where the chain shows it missing.
 */
#define RING_FILE "staging-ring"
#define RING_MAGIC "kmsd-audit-ring1"	/* 16 bytes */
#define RING_HDR 4096
#define RING_MAX ((uint64_t)4 << 20)
#define RING_MIN ((uint64_t)64 << 10)

struct ring_hdr {
	char magic[16];
	uint64_t size;			/* of the ring after the header */
	uint64_t staged;		/* bytes ever staged (atomic) */
	uint64_t gen;			/* slot[gen & 1] holds (atomic): */
	struct {
		uint64_t written;	/* bytes ever written to the log, */
		uint64_t seq;		/* the last of them's sequence */
	} slot[2];
};

struct audit {
	struct kmsd *d;
	struct kms_mutex mu;		/* the file, the chain, the counters */
	pthread_cond_t wake;		/* the log thread's */
	pthread_cond_t synced;		/* records became durable */
	pthread_t thr;
	int thr_started, stop;
	/* Under mu: */
	int fd;
	uint64_t file_no, size;
	uint64_t file_born_ms;		/* mono_ms */
	uint64_t seq;			/* of the last record written */
	uint8_t head[32];		/* its hash */
	uint64_t cp_seq;		/* last line a checkpoint covered */
	uint64_t cp_ms;			/* mono_ms of that checkpoint */
	uint64_t wtotal, stotal;	/* bytes written / known durable */
	int waiters, want_work;
	int batches;			/* a Batch's records were staged since
					 * the log thread's last write */
	atomic_int failed;		/* read without mu by audit_admit */
	atomic_int inflight;		/* requests admitted, not yet done */
	int fail_errno;
	int64_t failed_at;
	uint64_t refused, unaudited;
	/* Records are staged in the ring, a line each, in file order,
	 * before their reply; one writer at a time (writing) chains what it
	 * holds (into wbuf, seq and head moving on) and writes it to the
	 * file (see commit). */
	char *wbuf;
	/* The writer's: the previous line's first blocks and SHA-256's
	 * state after each (see line_hash). */
	SHA256_CTX hmid[AUDIT_HASH_BLOCKS];
	char hprev[AUDIT_HASH_BLOCKS * 64];
	int hprevk;
	size_t wcap;
	struct ring_hdr *rh;		/* the ring file, mapped: its header */
	char *ring;			/* and its rsize bytes of records */
	uint64_t rsize, rs, rw;		/* bytes ever staged / written */
	int writing, movewait;
	pthread_cond_t moved;		/* writing went back to 0 */
	/* GetKeyLastUsage: per key, the last successful crypto record. */
	pthread_mutex_t umu;
	struct usage **ubuckets;
	int64_t started_ms;
	int udirty;			/* umu: changed since saved */
	/* The log thread's: where the next save says replay starts (the
	 * log's end at the previous save), and when it saved. */
	uint64_t usave_no, usave_off, usave_ms;
	/* The log thread's (and start-up's and shutdown's) own: */
	hsm_session *hs;
	struct hsm_signing_key key;
	char fp[64];			/* SHA256:<base64> */
	char *cfg_json;			/* configuration, for each start */
	uint64_t retry_ms;
	int cp_warned;
};

static void usage_save(struct audit *a, uint64_t end_no, uint64_t end_off,
    int force);

/* ---- files and the chain ---- */

static void
file_name(uint64_t no, char *out, size_t len)
{
	snprintf(out, len, AUDIT_FILE_PREFIX "%08" PRIu64 AUDIT_FILE_SUFFIX,
	    no);
}

static void
fail_locked(struct audit *a, int e)
{
	kms_mutex_assert_held(&a->mu);
	if (!a->failed) {
		a->failed = 1;
		a->failed_at = now_ms();
		a->fail_errno = e;
		log_error("the audit log %s cannot be written: %s%s",
		    a->d->cfg.audit_dir, strerror(e), a->d->cfg.audit_required ?
		    "; refusing requests until it can" : "; requests are "
		    "served unaudited (audit_required = no)");
	}
	a->retry_ms = mono_ms() + AUDIT_RETRY_MS;
}

/*
 * Stage n record bodies (b->p at offs[i], each without its closing
 * brace) in the ring, a line each, mu held; the caller made room.  From
 * here they outlive a crash of kmsd.
 */
static void
stage_locked(struct audit *a, const struct rec_buf *b, const size_t *offs,
    size_t n)
{
	size_t i;

	kms_mutex_assert_held(&a->mu);
	for (i = 0; i < n; i++) {
		const char *p = b->p + offs[i];
		size_t len = (i + 1 < n ? offs[i + 1] : b->len) - offs[i];
		uint64_t pos = a->rs & (a->rsize - 1);
		size_t n1 = len < a->rsize - pos ? len : (size_t)(a->rsize -
		    pos);

		memcpy(a->ring + pos, p, n1);
		memcpy(a->ring, p + n1, len - n1);
		a->rs += len;
		a->ring[a->rs & (a->rsize - 1)] = '\n';
		a->rs++;
	}
	/* After the bytes: start-up trusts what staged covers. */
	__atomic_store_n(&a->rh->staged, a->rs, __ATOMIC_RELEASE);
}

/*
 * SHA-256 of one line, writer only.  Lines in a row often begin alike
 * (a Batch's items share the caller, the time, the operation and, of one
 * key, all but their eventID's end and their index: about 650 of 800
 * bytes; record.c puts those last), so SHA-256's state after each of the
 * previous line's first blocks is kept and a line that begins with the
 * same blocks starts from it.  The digest is the same as hashing the line
 * whole.
 */
static void
line_hash(struct audit *a, const char *p, size_t len, uint8_t out[32])
{
	SHA256_CTX sc;
	int k = 0, j;

	while (k < a->hprevk && (size_t)(k + 1) * 64 <= len &&
	    memcmp(a->hprev + k * 64, p + k * 64, 64) == 0) {
		k++;
	}
	if (k > 0) {
		sc = a->hmid[k - 1];
	} else {
		SHA256_Init(&sc);
	}
	for (j = k; j < AUDIT_HASH_BLOCKS && (size_t)(j + 1) * 64 <= len;
	    j++) {
		SHA256_Update(&sc, p + j * 64, 64);
		a->hmid[j] = sc;
		memcpy(a->hprev + j * 64, p + j * 64, 64);
	}
	a->hprevk = j;
	SHA256_Update(&sc, p + j * 64, len - (size_t)j * 64);
	SHA256_Final(out, &sc);
}

/*
 * Chain the bodies of ring[from, to) into a->wbuf, up to about max bytes
 * of it: each gets its "sequence" and "previousHash" and its closing
 * brace; *seq and head move on, and *stop says where in the ring the
 * next body starts.  Only the writer at work calls this (writing set, or
 * mu held throughout), mu let go or not: the chain is the writer's.
 */
static int
chain(struct audit *a, uint64_t from, uint64_t to, size_t max,
    uint64_t *seq, uint8_t head[32], size_t *outlen, uint64_t *stop)
{
	uint64_t p = from, mask = a->rsize - 1;
	size_t len = 0, start, cap;
	char *np, *q;

	while (p < to && len < max) {
		uint64_t body = p;
		const char *e = NULL;

		start = len;
		/* The body: up to its newline, perhaps across the ring's
		 * end. */
		while (e == NULL && p < to) {
			uint64_t pos = p & mask;
			size_t avail = (size_t)(a->rsize - pos), blen;
			const char *s = a->ring + pos;

			if (avail > to - p) {
				avail = (size_t)(to - p);
			}
			e = memchr(s, '\n', avail);
			blen = e != NULL ? (size_t)(e - s) : avail;
			if (len + blen + AUDIT_SUFFIX_MAX > a->wcap) {
				cap = a->wcap < 65536 ? 65536 : a->wcap;
				while (cap < len + blen + AUDIT_SUFFIX_MAX) {
					cap *= 2;
				}
				if ((np = realloc(a->wbuf, cap)) == NULL) {
					return KMS_EINTERNAL;
				}
				a->wbuf = np;
				a->wcap = cap;
			}
			memcpy(a->wbuf + len, s, blen);
			len += blen;
			p += blen;
		}
		if (e == NULL) {
			/* No newline: not a whole body (start-up's reading of
			 * a damaged ring); it is left out. */
			len = start;
			p = body;
			break;
		}
		p++;				/* its newline */
		q = a->wbuf;
		memcpy(q + len, ",\"sequence\":", 12);
		len += 12;
		len += rec_u64_dec(++*seq, q + len);
		memcpy(q + len, ",\"previousHash\":\"", 17);
		len += 17;
		rec_hex32(head, q + len);	/* its NUL overwritten next */
		len += 64;
		memcpy(q + len, "\"}", 2);
		len += 2;
		/* Not SHA256(): OpenSSL 3's one-shot fetches the digest on
		 * every call. */
		line_hash(a, q + start, len - start, head);
		q[len++] = '\n';
	}
	*outlen = len;
	*stop = p;
	return 0;
}

/* Bytes went into the file: ask the log's thread for a checkpoint or a
 * rotation when one is due. */
static void
written_locked(struct audit *a, size_t len)
{
	a->size += len;
	a->wtotal += len;
	if (a->seq - a->cp_seq >= a->d->cfg.audit_checkpoint_records ||
	    a->size >= a->d->cfg.audit_rotate_bytes) {
		if (!a->want_work) {
			a->want_work = 1;
			pthread_cond_signal(&a->wake);
		}
	}
}

/*
 * Chain what the ring holds and write it to the file, mu held and
 * writing set by the caller (or mu never let go); with let_go, mu is let
 * go while the records are chained and written: the part taken is not
 * overwritten meanwhile (room_locked never passes rw) and callers go on
 * staging behind it.  The chain moves on only once they are in the file.
 * On failure what part went in is cut, the records stay in the ring
 * (they are written when the log can be again) and the log is marked
 * failed.
 */
static int
move_locked(struct audit *a, int let_go)
{
	uint64_t from = a->rw, to = a->rs, seq = a->seq;
	uint8_t head[32];
	size_t len = 0;
	int fd = a->fd, e = 0, r, slot;

	kms_mutex_assert_held(&a->mu);
	if (from == to) {
		return 0;
	}
	if (fd < 0) {
		fail_locked(a, EBADF);
		return KMS_EDEPENDENCYTIMEOUT;
	}
	memcpy(head, a->head, sizeof(head));
	if (let_go) {
		kms_mutex_unlock(&a->mu);
	}
	if ((r = chain(a, from, to, AUDIT_WRITE_MAX, &seq, head, &len,
	    &to)) == 0 &&
	    io_write_all(fd, a->wbuf, len) != 0) {
		e = errno;
	}
	if (let_go) {
		kms_mutex_lock(&a->mu);
	}
	if (r != 0) {
		return r;
	}
	if (e != 0) {
		/* Cut what part of it went in: the file stays a chain. */
		if (ftruncate(fd, (off_t)a->size) != 0) {
			log_error("cutting a partial audit record: %s",
			    strerror(errno));
		}
		fail_locked(a, e);
		return KMS_EDEPENDENCYTIMEOUT;
	}
	a->seq = seq;
	memcpy(a->head, head, sizeof(head));
	a->rw = to;
	/* The other slot, then the switch: start-up reads a pair that
	 * belongs together whenever kmsd dies. */
	slot = (int)((a->rh->gen + 1) & 1);
	a->rh->slot[slot].written = to;
	a->rh->slot[slot].seq = seq;
	__atomic_store_n(&a->rh->gen, a->rh->gen + 1, __ATOMIC_RELEASE);
	written_locked(a, len);
	return 0;
}

/* Be the writer for up to rounds writes, mu held and no writer at work;
 * callers waiting for room or for their records are woken after. */
static void
write_out_locked(struct audit *a, int rounds)
{
	kms_mutex_assert_held(&a->mu);
	KMS_ASSERT(!a->writing);
	a->writing = 1;
	while (rounds-- > 0 && a->rs != a->rw && !a->failed) {
		if (move_locked(a, 1) != 0) {
			break;
		}
	}
	a->writing = 0;
	if (a->movewait > 0) {
		pthread_cond_broadcast(&a->moved);
	}
}

/* Wait for the writer at work and write what the ring holds, mu held
 * throughout the write: then everything staged is chained and in the
 * file (or the log failed).  0 or an error. */
static int
drain_locked(struct audit *a)
{
	int r;

	kms_mutex_assert_held(&a->mu);
	while (a->writing) {
		a->movewait++;
		kms_cond_wait(&a->moved, &a->mu);
		a->movewait--;
	}
	do {
		r = move_locked(a, 0);
	} while (r == 0 && a->rs != a->rw);
	if (a->movewait > 0) {
		pthread_cond_broadcast(&a->moved);
	}
	return r;
}

/* Wait, mu held, until the ring has room for need bytes: by writing, or
 * for the writer at work.  An error when the log cannot be written and
 * the ring is full. */
static int
room_locked(struct audit *a, size_t need)
{
	kms_mutex_assert_held(&a->mu);
	while (a->rsize - (a->rs - a->rw) < need) {
		if (a->failed || a->fd < 0) {
			return KMS_EDEPENDENCYTIMEOUT;
		}
		if (!a->writing) {
			write_out_locked(a, 1);
			continue;
		}
		a->movewait++;
		kms_cond_wait(&a->moved, &a->mu);
		a->movewait--;
	}
	return 0;
}

/*
 * Stage n records, mu held.  A message's records always fit in the ring
 * (a message is at most JSON_MAX_MESSAGE, and a record at most about a
 * kilobyte more than its request item), unless the file system left room
 * for only a small ring: then they are refused, as when it is full.
 */
static int
put_locked(struct audit *a, const struct rec_buf *b, const size_t *offs,
    size_t n)
{
	int r;

	kms_mutex_assert_held(&a->mu);
	if (b->oom) {
		return KMS_EINTERNAL;
	}
	if (a->fd < 0) {
		fail_locked(a, EBADF);
		return KMS_EDEPENDENCYTIMEOUT;
	}
	if (b->len + n > a->rsize) {
		log_warn("audit: %zu records of %zu bytes do not fit in the "
		    "staging ring (%" PRIu64 " bytes: little room in %s)", n,
		    b->len, a->rsize, a->d->cfg.audit_dir);
		return KMS_EDEPENDENCYTIMEOUT;
	}
	if ((r = room_locked(a, b->len + n)) != 0) {
		return r;
	}
	stage_locked(a, b, offs, n);
	return 0;
}

/* One service record, mu held: staged after what callers staged and in
 * the file before this returns (unless the log cannot be written: then
 * it waits in the ring with the rest). */
static int
event_locked(struct audit *a, const char *name, const char *arn,
    json_t *details)
{
	struct rec_buf b = { 0 };
	char when[32];
	size_t off = 0;
	int r;

	kms_mutex_assert_held(&a->mu);
	rec_utc_now(when);
	rec_service_record(&b, a->d, name, arn, details, when);
	if ((r = put_locked(a, &b, &off, 1)) == 0) {
		r = drain_locked(a);
	}
	free(b.p);
	return r;
}

/* The statement a checkpoint signs. */
static int
statement(char *out, size_t len, const char *head_hex, uint64_t seq,
    const char *when, const char *fp)
{
	return snprintf(out, len, CHECKPOINT_STATEMENT "\nchainHead=%s\n"
	    "recordCount=%" PRIu64 "\nsignedAt=%s\nkeyFingerprint=%s\n",
	    head_hex, seq, when, fp);
}

/*
 * Sign the chain head and append the checkpoint, mu held (and the HSM
 * turn for reading, when workers run).  With unlocked, mu is let go while
 * the HSM signs, so requests are not held up: records written meanwhile
 * come between the record signed (recordCount, chainHead) and the
 * checkpoint line, and the next checkpoint covers them.  A failure to
 * sign (the HSM away) leaves the records for the next checkpoint.
 */
static int
checkpoint_locked(struct audit *a, const char *reason, int unlocked)
{
	uint8_t sig[HSM_SIG_LEN];
	char hx[65], when[32], st[512], sigb64[B64_ENCODED_LEN(HSM_SIG_LEN) +
	    1];
	uint64_t seq;
	json_t *det;
	int r, n;

	kms_mutex_assert_held(&a->mu);
	/* The head of everything staged so far. */
	if ((r = drain_locked(a)) != 0) {
		return r;
	}
	seq = a->seq;
	rec_hex32(a->head, hx);
	rec_utc_now(when);
	n = statement(st, sizeof(st), hx, seq, when, a->fp);
	if (unlocked) {
		kms_mutex_unlock(&a->mu);
	}
	r = hsm_sign(a->hs, &a->key, (const uint8_t *)st, (size_t)n, sig);
	if (unlocked) {
		kms_mutex_lock(&a->mu);
	}
	if (r != 0) {
		if (!a->cp_warned) {
			log_warn("cannot sign an audit checkpoint: %s; "
			    "retrying", kms_strerror(r));
			a->cp_warned = 1;
		}
		return r;
	}
	a->cp_warned = 0;
	b64_encode(sig, sizeof(sig), sigb64, sizeof(sigb64));
	det = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "chainHead",
	    hx, "recordCount", (json_int_t)seq, "signedAt", when,
	    "algorithm", a->key.alg == HSM_SIGN_ED25519 ? "Ed25519" :
	    "ECDSA_P256_SHA256", "keyFingerprint", a->fp, "reason", reason,
	    "signature", sigb64);
	if (det == NULL) {
		return KMS_EINTERNAL;
	}
	r = event_locked(a, "AuditCheckpoint", NULL, det);
	json_decref(det);
	if (r == 0) {
		/* Nothing came in between: everything up to this line is
		 * signed (the line signs itself). */
		a->cp_seq = a->seq == seq + 1 ? a->seq : seq;
		a->cp_ms = mono_ms();
	}
	return r;
}

/* Sign with the HSM turn held (kmsd.h's lock order: turn, then mu). */
static int
checkpoint(struct audit *a, const char *reason)
{
	int r;

	pthread_rwlock_rdlock(&a->d->hsm_turn);
	kms_mutex_lock(&a->mu);
	r = a->seq == a->cp_seq ? 0 : checkpoint_locked(a, reason, 1);
	kms_mutex_unlock(&a->mu);
	pthread_rwlock_unlock(&a->d->hsm_turn);
	return r;
}

static int
sync_dir(struct audit *a)
{
	int fd = open(a->d->cfg.audit_dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC), r;

	if (fd < 0) {
		return -1;
	}
	r = fsync(fd);
	close(fd);
	return r;
}

/* Start file no, mu held; its first record names the one before. */
static int
new_file_locked(struct audit *a, uint64_t no, const char *prev)
{
	char name[64], path[CONFIG_PATH_MAX + 64];
	json_t *det;
	int fd, r;

	kms_mutex_assert_held(&a->mu);
	KMS_ASSERT(!a->writing && a->rs == a->rw);
	file_name(no, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", a->d->cfg.audit_dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND |
	    O_CLOEXEC, 0640)) < 0) {
		fail_locked(a, errno);
		return KMS_EDEPENDENCYTIMEOUT;
	}
	(void)sync_dir(a);
	a->fd = fd;
	a->file_no = no;
	a->size = 0;
	a->file_born_ms = mono_ms();
	det = json_pack("{s:s, s:I, s:s?, s:I, s:I}", "file", name,
	    "fileNumber", (json_int_t)no, "previousFile", prev,
	    "checkpointRecords",
	    (json_int_t)a->d->cfg.audit_checkpoint_records,
	    "checkpointSeconds", (json_int_t)a->d->cfg.audit_checkpoint_seconds);
	r = det != NULL ? event_locked(a, "AuditLogFileOpened", NULL, det) :
	    KMS_EINTERNAL;
	json_decref(det);
	return r;
}

/* Make everything written durable, mu held (dropped meanwhile). */
static int
sync_locked(struct audit *a)
{
	uint64_t target = a->wtotal, size = a->size;
	int fd = a->fd, r = 0;

	kms_mutex_assert_held(&a->mu);
	if (target == a->stotal || fd < 0) {
		return 0;
	}
	kms_mutex_unlock(&a->mu);
	if (fdatasync(fd) != 0) {
		r = errno;
	} else {
		/* What is on disk need not stay in the page cache: an
		 * append-only log would otherwise push out what is read
		 * again (the key store), and each record would take a page
		 * never used before. */
		(void)posix_fadvise(fd, 0, (off_t)(size & ~(uint64_t)4095),
		    POSIX_FADV_DONTNEED);
	}
	kms_mutex_lock(&a->mu);
	if (r != 0) {
		fail_locked(a, r);
		pthread_cond_broadcast(&a->synced);
		return KMS_EDEPENDENCYTIMEOUT;
	}
	if (target > a->stotal) {
		a->stotal = target;
	}
	pthread_cond_broadcast(&a->synced);
	return 0;
}

/* Close the current file signed and synced and open the next (log
 * thread, with the turn and mu held). */
static void
rotate_locked(struct audit *a)
{
	char prev[64];

	kms_mutex_assert_held(&a->mu);
	(void)checkpoint_locked(a, "rotate", 0);
	if (sync_locked(a) != 0) {
		return;
	}
	/* Records written while the file was synced: in, and durable,
	 * before it is closed, with mu held from here to the next file's
	 * first line (no writer can be at work on the old one). */
	if (drain_locked(a) != 0) {
		return;
	}
	if (a->wtotal != a->stotal) {
		if (fdatasync(a->fd) != 0) {
			fail_locked(a, errno);
			pthread_cond_broadcast(&a->synced);
			return;
		}
		a->stotal = a->wtotal;
		pthread_cond_broadcast(&a->synced);
	}
	file_name(a->file_no, prev, sizeof(prev));
	close(a->fd);
	a->fd = -1;
	if (new_file_locked(a, a->file_no + 1, prev) == 0) {
		log_info("audit log rotated to file %" PRIu64, a->file_no);
	}
}

/* ---- the log's thread ---- */

static void
try_resume_locked(struct audit *a)
{
	char prev[64];
	json_t *det;

	kms_mutex_assert_held(&a->mu);
	a->retry_ms = mono_ms() + AUDIT_RETRY_MS;
	if (drain_locked(a) != 0) {
		return;
	}
	if (a->fd < 0) {
		/* A rotation failed half-way: start the next file. */
		file_name(a->file_no, prev, sizeof(prev));
		if (new_file_locked(a, a->file_no + 1, prev) != 0) {
			return;
		}
	}
	det = json_pack("{s:s, s:I, s:I, s:I}", "error",
	    strerror(a->fail_errno), "failedAtMs", (json_int_t)a->failed_at,
	    "requestsRefused", (json_int_t)a->refused, "requestsUnaudited",
	    (json_int_t)a->unaudited);
	if (det == NULL || event_locked(a, "AuditLogResumed", NULL, det) != 0 ||
	    sync_locked(a) != 0) {
		json_decref(det);
		return;
	}
	json_decref(det);
	log_info("the audit log can be written again (%" PRIu64 " requests "
	    "refused, %" PRIu64 " unaudited meanwhile)", a->refused,
	    a->unaudited);
	a->failed = 0;
	a->refused = 0;
	a->unaudited = 0;
}

static void *
audit_main(void *arg)
{
	struct audit *a = arg;
	const struct config *cfg = &a->d->cfg;
	uint64_t last_sync = mono_ms(), now;
	struct timespec ts;
	struct sched_param sp = { 0 };
	int e;

	/*
	 * With group commit no reply waits for this thread, so it runs as
	 * SCHED_BATCH: the same share of the CPUs as any thread, but woken
	 * it waits for its turn instead of preempting a worker (perhaps one
	 * in the middle of a Batch's turn at the HSM).  Batches of 100 at 4
	 * clients on 2 cores: about 2% more, in 12 rounds of 15; 16 clients:
	 * the same.  With audit_sync = request, callers wait for its syncs:
	 * it stays as it is.
	 */
	if (cfg->audit_sync == AUDIT_SYNC_GROUP &&
	    (e = pthread_setschedparam(pthread_self(), SCHED_BATCH,
	    &sp)) != 0) {
		log_debug("audit: the log's thread stays SCHED_OTHER: %s",
		    strerror(e));
	}
	kms_mutex_lock(&a->mu);
	while (!a->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)AUDIT_TICK_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (!a->want_work && (a->waiters == 0 ||
		    a->wtotal == a->stotal)) {
			kms_cond_timedwait(&a->wake, &a->mu, &ts);
		}
		a->want_work = 0;
		if (a->stop) {
			break;
		}
		if (a->rs != a->rw && a->rs - a->rw < a->rsize / 4 &&
		    a->waiters == 0 && !a->failed) {
			/*
			 * Let the records of a burst gather: one write for
			 * them all (see commit).  Longer when Batches are
			 * among them: their records come a hundred at a
			 * time (3 ms: the log thread's CPU a record 0.75 ->
			 * 0.70 us), while single requests at 16 clients ran
			 * 4% slower with 3 ms than with 1.
			 */
			int us = a->batches ? AUDIT_LINGER_BATCH_US :
			    AUDIT_LINGER_US;

			a->batches = 0;
			kms_mutex_unlock(&a->mu);
			usleep(us);
			kms_mutex_lock(&a->mu);
		}
		now = mono_ms();
		if (a->rs != a->rw && !a->writing && !a->failed) {
			/* What the last writer left, and what was
			 * gathered (Batches' too). */
			write_out_locked(a, (int)(a->rsize / AUDIT_WRITE_MAX) +
			    1);
		}
		if (a->failed) {
			if (now >= a->retry_ms) {
				try_resume_locked(a);
			}
			continue;
		}
		if (a->wtotal != a->stotal && (a->waiters > 0 ||
		    now - last_sync >= (uint64_t)cfg->audit_sync_ms)) {
			(void)sync_locked(a);
			last_sync = now;
		}
		if (a->seq != a->cp_seq && (a->seq - a->cp_seq >=
		    cfg->audit_checkpoint_records || now - a->cp_ms >=
		    (uint64_t)cfg->audit_checkpoint_seconds * 1000)) {
			kms_mutex_unlock(&a->mu);
			(void)checkpoint(a, "interval");
			kms_mutex_lock(&a->mu);
		}
		if (now - a->usave_ms >= USAGE_SAVE_MS) {
			uint64_t end_no = a->file_no, end_off = a->size;

			a->usave_ms = now;
			kms_mutex_unlock(&a->mu);
			usage_save(a, end_no, end_off, 0);
			kms_mutex_lock(&a->mu);
		}
		if (a->size >= cfg->audit_rotate_bytes ||
		    (cfg->audit_rotate_seconds > 0 && now - a->file_born_ms >=
		    (uint64_t)cfg->audit_rotate_seconds * 1000)) {
			kms_mutex_unlock(&a->mu);
			pthread_rwlock_rdlock(&a->d->hsm_turn);
			kms_mutex_lock(&a->mu);
			rotate_locked(a);
			kms_mutex_unlock(&a->mu);
			pthread_rwlock_unlock(&a->d->hsm_turn);
			kms_mutex_lock(&a->mu);
		}
	}
	kms_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- last usage ---- */

/* Chains stay short for a store of 100,000 keys used (512 KiB of
 * pointers, touched only as keys are used). */
#define USAGE_BUCKETS 65536

struct usage {
	struct usage *next;
	char key[37];
	struct audit_usage u;
};

static unsigned
usage_hash(const char *key)
{
	return str_hash(key) % USAGE_BUCKETS;
}

/* s into out (len bytes), cut to fit; no printf per record. */
static void
copy_str(char *out, size_t len, const char *s)
{
	size_t n = strnlen(s, len - 1);

	memcpy(out, s, n);
	out[n] = '\0';
}

/* One key's last use, umu held: always for a record just written, for
 * one read back (saved or replayed) only when it is the latest known. */
static void
usage_set(struct audit *a, const char *key, const char *op, int64_t at,
    const char *event_id, const char *request_id, int always)
{
	struct usage *e;
	unsigned h;

	if (strlen(key) != 36 || strlen(event_id) != 36) {
		return;
	}
	h = usage_hash(key);
	for (e = a->ubuckets[h]; e != NULL; e = e->next) {
		if (memcmp(e->key, key, 37) == 0) {
			break;
		}
	}
	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL) {
			return;
		}
		memcpy(e->key, key, 37);
		e->next = a->ubuckets[h];
		a->ubuckets[h] = e;
	} else if (!always && e->u.at_ms > at) {
		return;
	}
	copy_str(e->u.op, sizeof(e->u.op), op);
	e->u.at_ms = at;
	memcpy(e->u.event_id, event_id, 37);
	copy_str(e->u.request_id, sizeof(e->u.request_id), request_id);
}

/* Records were written: remember them for their keys. */
static void
usage_note(struct audit *a, const struct rec_use *un, size_t n,
    const char *request_id)
{
	int64_t at = now_ms();
	size_t i;

	if (a->ubuckets == NULL || n == 0) {
		return;
	}
	pthread_mutex_lock(&a->umu);
	for (i = 0; i < n; i++) {
		/* A Batch's items often name one key: its last use is the
		 * one kept. */
		if (i + 1 < n && memcmp(un[i].key, un[i + 1].key, 37) == 0) {
			continue;
		}
		usage_set(a, un[i].key, un[i].op, at, un[i].id,
		    request_id != NULL ? request_id : "", 1);
	}
	a->udirty = 1;
	pthread_mutex_unlock(&a->umu);
}

int
audit_last_usage(struct audit *a, const char *key_id,
    struct audit_usage *out, int64_t *tracking_ms)
{
	struct usage *e;
	int r = 0;

	if (a == NULL || a->ubuckets == NULL || strlen(key_id) != 36) {
		return 0;
	}
	*tracking_ms = a->started_ms;
	pthread_mutex_lock(&a->umu);
	for (e = a->ubuckets[usage_hash(key_id)]; e != NULL; e = e->next) {
		if (memcmp(e->key, key_id, 37) == 0) {
			*out = e->u;
			r = 1;
			break;
		}
	}
	pthread_mutex_unlock(&a->umu);
	return r;
}

static void
usage_free(struct audit *a)
{
	struct usage *e, *n;
	size_t i;

	if (a->ubuckets == NULL) {
		return;
	}
	for (i = 0; i < USAGE_BUCKETS; i++) {
		for (e = a->ubuckets[i]; e != NULL; e = n) {
			n = e->next;
			free(e);
		}
	}
	free(a->ubuckets);
	a->ubuckets = NULL;
	pthread_mutex_destroy(&a->umu);
}

/*
 * Save the table when it changed: a header line (tracking start, and
 * where in the log a reader must start again: the log's end at the
 * previous save, so that a record written before this save but noted
 * after its copy is read again) and a line per key, written to a new
 * file renamed over the old.  end_no/end_off: the log's end now.
 */
static void
usage_save(struct audit *a, uint64_t end_no, uint64_t end_off, int force)
{
	char path[CONFIG_PATH_MAX + 64], tmp[CONFIG_PATH_MAX + 80];
	struct usage *e, *v = NULL;
	size_t n = 0, cap = 0, i;
	json_t *j;
	FILE *f = NULL;
	int fd, ok = 0;

	pthread_mutex_lock(&a->umu);
	if (a->ubuckets == NULL || (!a->udirty && !force)) {
		/* Nothing noted since the last save: the saved table stands,
		 * and the next save's readers may start here (a record written
		 * before now and noted later marks the table, and that save
		 * copies it). */
		pthread_mutex_unlock(&a->umu);
		a->usave_no = end_no;
		a->usave_off = end_off;
		return;
	}
	a->udirty = 0;
	pthread_mutex_unlock(&a->umu);
	/* Bucket by bucket, so that a request noting a use waits for one
	 * bucket's copy at most; a use noted meanwhile marks the table again
	 * for the next save, and its record lies after this save's replay
	 * start. */
	for (i = 0; i < USAGE_BUCKETS; i++) {
		pthread_mutex_lock(&a->umu);
		for (e = a->ubuckets[i]; e != NULL; e = e->next) {
			if (n == cap) {
				struct usage *nv;
				cap = cap == 0 ? 256 : 2 * cap;
				if ((nv = realloc(v, cap * sizeof(*v))) ==
				    NULL) {
					a->udirty = 1;
					pthread_mutex_unlock(&a->umu);
					free(v);
					return;
				}
				v = nv;
			}
			v[n++] = *e;
		}
		pthread_mutex_unlock(&a->umu);
	}

	snprintf(path, sizeof(path), "%s/%s", a->d->cfg.audit_dir,
	    USAGE_FILE);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (fd >= 0) {
			close(fd);
		}
		goto out;
	}
	fprintf(f, "{\"trackingStartMs\":%lld,\"file\":%llu,\"offset\":%llu}"
	    "\n", (long long)a->started_ms, (unsigned long long)a->usave_no,
	    (unsigned long long)a->usave_off);
	for (i = 0; i < n; i++) {
		j = json_pack("{s:s, s:s, s:I, s:s, s:s}", "keyId", v[i].key,
		    "operation", v[i].u.op, "at", (json_int_t)v[i].u.at_ms,
		    "eventID", v[i].u.event_id, "requestID",
		    v[i].u.request_id);
		if (j == NULL || json_dumpf(j, f, JSON_COMPACT) != 0) {
			json_decref(j);
			goto out;
		}
		json_decref(j);
		fputc('\n', f);
	}
	ok = fflush(f) == 0 && fdatasync(fileno(f)) == 0;
 out:
	if (f != NULL && fclose(f) != 0) {
		ok = 0;
	}
	if (ok && rename(tmp, path) == 0) {
		(void)sync_dir(a);
		a->usave_no = end_no;
		a->usave_off = end_off;
	} else {
		log_warn("audit: cannot save the key usage table to %s: %s",
		    path, strerror(errno));
		(void)unlink(tmp);
		pthread_mutex_lock(&a->umu);
		a->udirty = 1;
		pthread_mutex_unlock(&a->umu);
	}
	free(v);
}

/* "2026-12-05T17:00:00.000Z" as milliseconds since the epoch, or -1. */
static int64_t
parse_event_time(const char *s)
{
	struct tm tm;
	const char *p;
	int ms = 0;

	memset(&tm, 0, sizeof(tm));
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL) {
		return -1;
	}
	if (*p == '.' && sscanf(p + 1, "%3d", &ms) != 1) {
		return -1;
	}
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* A record of the log, umu held: a successful cryptographic operation
 * tells the table about its keys, as usage_note did when it was
 * written. */
static void
usage_replay_line(struct audit *a, const char *line, size_t len)
{
	const char *op, *ev, *rq, *arn, *k;
	json_t *j, *res, *r;
	int64_t at;
	size_t i;

	if (memmem(line, len, "\"eventType\":\"AwsApiCall\"", 24) == NULL ||
	    memmem(line, len, "\"errorCode\"", 11) != NULL) {
		return;
	}
	if ((j = json_loadb(line, len, 0, NULL)) == NULL) {
		return;
	}
	op = json_string_value(json_object_get(j, "eventName"));
	ev = json_string_value(json_object_get(j, "eventID"));
	rq = json_string_value(json_object_get(j, "requestID"));
	at = json_is_string(json_object_get(j, "eventTime")) ?
	    parse_event_time(json_string_value(json_object_get(j,
	    "eventTime"))) : -1;
	res = json_object_get(j, "resources");
	if (op != NULL && ev != NULL && at >= 0 && json_is_array(res) &&
	    rec_tracked_op(op)) {
		for (i = 0; i < json_array_size(res) && i < 2; i++) {
			r = json_array_get(res, i);
			if ((arn = json_string_value(json_object_get(r,
			    "ARN"))) != NULL && (k = strrchr(arn, '/')) !=
			    NULL) {
				usage_set(a, k + 1, op, at, ev,
				    rq != NULL ? rq : "", 0);
			}
		}
	}
	json_decref(j);
}

/*
 * At start-up, before the log's new file: the saved table, then what
 * the log recorded after the save's position up to its last file.
 * Without a saved table, tracking starts now.
 */
static void
usage_load(struct audit *a, uint64_t last)
{
	char path[CONFIG_PATH_MAX + 64], name[64], *line = NULL;
	size_t cap = 0, nkeys = 0, nrec = 0;
	uint64_t no, from_no = last + 1, from_off = 0;
	ssize_t len;
	json_t *j;
	FILE *f;

	a->usave_no = last + 1;
	a->usave_off = 0;
	snprintf(path, sizeof(path), "%s/%s", a->d->cfg.audit_dir,
	    USAGE_FILE);
	if ((f = fopen(path, "re")) == NULL) {
		return;
	}
	pthread_mutex_lock(&a->umu);
	if ((len = getline(&line, &cap, f)) > 0 &&
	    (j = json_loadb(line, (size_t)len, 0, NULL)) != NULL) {
		if (json_integer_value(json_object_get(j,
		    "trackingStartMs")) > 0) {
			a->started_ms = json_integer_value(json_object_get(j,
			    "trackingStartMs"));
		}
		from_no = (uint64_t)json_integer_value(json_object_get(j,
		    "file"));
		from_off = (uint64_t)json_integer_value(json_object_get(j,
		    "offset"));
		json_decref(j);
		while ((len = getline(&line, &cap, f)) > 0) {
			const char *k, *op, *ev, *rq;

			if ((j = json_loadb(line, (size_t)len, 0, NULL)) ==
			    NULL) {
				continue;
			}
			k = json_string_value(json_object_get(j, "keyId"));
			op = json_string_value(json_object_get(j,
			    "operation"));
			ev = json_string_value(json_object_get(j, "eventID"));
			rq = json_string_value(json_object_get(j,
			    "requestID"));
			if (k != NULL && op != NULL && ev != NULL) {
				usage_set(a, k, op, json_integer_value(
				    json_object_get(j, "at")), ev,
				    rq != NULL ? rq : "", 0);
				nkeys++;
			}
			json_decref(j);
		}
	}
	fclose(f);
	for (no = from_no; no >= 1 && no <= last; no++) {
		file_name(no, name, sizeof(name));
		snprintf(path, sizeof(path), "%s/%s", a->d->cfg.audit_dir,
		    name);
		if ((f = fopen(path, "re")) == NULL) {
			continue;
		}
		if (no == from_no && from_off > 0 &&
		    fseeko(f, (off_t)from_off, SEEK_SET) != 0) {
			fclose(f);
			continue;
		}
		while ((len = getline(&line, &cap, f)) > 0) {
			if (len <= AUDIT_LINE_MAX) {
				usage_replay_line(a, line, (size_t)len);
				nrec++;
			}
		}
		fclose(f);
	}
	pthread_mutex_unlock(&a->umu);
	free(line);
	log_info("audit: key usage of %zu keys read back, %zu records after "
	    "it read again", nkeys, nrec);
}

/* ---- the API ---- */

int
audit_admit(struct audit *a, char *msg, size_t msglen)
{
	int failed = 0;

	if (a == NULL) {
		return 0;
	}
	if (atomic_load_explicit(&a->failed, memory_order_relaxed) &&
	    a->d->cfg.audit_required) {
		kms_mutex_lock(&a->mu);
		if ((failed = a->failed) != 0) {
			a->refused++;
			snprintf(msg, msglen, "The audit log cannot be written "
			    "(%s); kmsd refuses requests until it can. Retry "
			    "later.", strerror(a->fail_errno));
		}
		kms_mutex_unlock(&a->mu);
	}
	if (failed) {
		return KMS_EDEPENDENCYTIMEOUT;
	}
	atomic_fetch_add_explicit(&a->inflight, 1, memory_order_relaxed);
	return 0;
}

void
audit_done(struct audit *a)
{
	if (a != NULL) {
		atomic_fetch_sub_explicit(&a->inflight, 1,
		    memory_order_relaxed);
	}
}

/* The log whose staged records this thread is to write after its reply
 * (commit, audit_after_reply). */
static __thread struct audit *owed;

/*
 * Stage a message's records and see them written; with wait_sync and
 * audit_sync = request, wait until they are in the file and durable too.
 *
 * Under the mutex a caller only copies its records into the staging
 * ring: a file of the audit directory, mapped, so records staged outlive
 * a crash of kmsd (start-up chains and writes those a crash left
 * unwritten; see ring_recover).  Who then chains and writes them depends
 * on the load.  A request alone in flight writes its own record (and any
 * other staged) once its reply is sent (audit_after_reply), mu let go:
 * nothing to gather, and waking another thread would cost more than the
 * write.  Otherwise (other requests in flight, or a Batch) the caller
 * replies at once and the log's thread, woken by
 * the first record after it went to sleep (a signal costs nothing while
 * it is at work), gathers records for AUDIT_LINGER_US (longer when
 * Batches are among them) and writes them
 * all with one write(2): one write for tens of records instead of one
 * each, and no reply waits for one.  (It runs at normal priority: a
 * writer at idle priority made Batches about 5% faster, but starved by
 * other programs it held the writer's role and stalled callers for
 * seconds.)  Rotation, checkpoints and service
 * records wait for the writer at work (drain_locked), so a file is never
 * switched or closed under it and a checkpoint signs the head of
 * everything staged before it.
 */
static int
commit(struct audit *a, const struct rec_buf *b, const size_t *offs, size_t n,
    int wait_sync)
{
	uint64_t end, target;
	int r, alone;

	kms_mutex_lock(&a->mu);
	/* Its own request the only one in flight (or none: a service
	 * record, a refusal before dispatch). */
	alone = n == 1 && atomic_load_explicit(&a->inflight,
	    memory_order_relaxed) <= 1;
	if ((r = put_locked(a, b, offs, n)) != 0) {
		goto out;
	}
	end = a->rs;
	a->batches |= n > 1;
	if (alone && !a->writing && !a->failed) {
		if (wait_sync) {
			/* A request's record, staged (in a file): written
			 * once its reply is on its way (audit_after_reply),
			 * off the path its caller waits on. */
			owed = a;
		} else {
			write_out_locked(a, 1);
		}
	} else if (!a->want_work) {
		a->want_work = 1;
		pthread_cond_signal(&a->wake);
	}
	if (!wait_sync || a->d->cfg.audit_sync != AUDIT_SYNC_REQUEST) {
		goto out;
	}
	/* In the file, then durable. */
	while (a->rw < end && !a->failed) {
		if (!a->writing) {
			write_out_locked(a, AUDIT_WRITER_ROUNDS);
			continue;
		}
		a->movewait++;
		kms_cond_wait(&a->moved, &a->mu);
		a->movewait--;
	}
	target = a->wtotal;
	a->waiters++;
	pthread_cond_signal(&a->wake);
	while (a->stotal < target && !a->failed) {
		kms_cond_wait(&a->synced, &a->mu);
	}
	a->waiters--;
	if (a->rw < end || a->stotal < target) {
		r = KMS_EDEPENDENCYTIMEOUT;
	}
 out:
	if (r != 0 && !a->d->cfg.audit_required) {
		a->unaudited += n;
		r = 0;
	}
	kms_mutex_unlock(&a->mu);
	return r;
}

/*
 * A thread's room for formatting a message's records, kept from one
 * message to the next: a Batch of 100 would otherwise allocate, and wipe
 * on freeing (heapwipe.c), 100 KB of records and 18 KB of uses each time.
 * Records hold no secret (test_audit's canaries); what grew past
 * SCRATCH_KEEP is given back after the message.
 */
#define SCRATCH_KEEP (256 * 1024)

struct scratch {
	struct rec_buf b;
	size_t *offs;
	struct rec_use *un;
	size_t nitems;			/* offs has room for, un twice */
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_ok;

static void
scratch_free(void *p)
{
	struct scratch *sc = p;

	if (sc != NULL) {
		free(sc->b.p);
		free(sc->offs);
		free(sc->un);
		free(sc);
	}
}

static void
scratch_init(void)
{
	scratch_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* The calling thread's scratch, with room for n items; NULL when out of
 * memory. */
static struct scratch *
scratch_get(size_t n)
{
	struct scratch *sc;
	size_t *no;
	struct rec_use *nu;

	if (pthread_once(&scratch_once, scratch_init) != 0 || !scratch_ok) {
		return NULL;
	}
	if ((sc = pthread_getspecific(scratch_key)) == NULL) {
		if ((sc = calloc(1, sizeof(*sc))) == NULL) {
			return NULL;
		}
		if (pthread_setspecific(scratch_key, sc) != 0) {
			free(sc);
			return NULL;
		}
	}
	if (n > sc->nitems) {
		if ((no = reallocarray(sc->offs, n, sizeof(*no))) == NULL) {
			return NULL;
		}
		sc->offs = no;
		if ((nu = reallocarray(sc->un, n, 2 * sizeof(*nu))) == NULL) {
			return NULL;
		}
		sc->un = nu;
		sc->nitems = n;
	}
	if (sc->b.p == NULL && (sc->b.p = malloc(n * 1024)) != NULL) {
		sc->b.cap = n * 1024;
	}
	sc->b.len = 0;
	sc->b.oom = 0;
	return sc;
}

/* After a message: what grew large goes back. */
static void
scratch_done(struct scratch *sc)
{
	if (sc->b.cap > SCRATCH_KEEP || sc->b.oom) {
		free(sc->b.p);
		sc->b.p = NULL;
		sc->b.cap = 0;
	}
	if (sc->nitems * sizeof(*sc->un) * 2 > SCRATCH_KEEP) {
		free(sc->offs);
		free(sc->un);
		sc->offs = NULL;
		sc->un = NULL;
		sc->nitems = 0;
	}
}

int
audit_calls(struct audit *a, const struct audit_call *call,
    const struct audit_item *items, size_t n)
{
	struct rec_buf prefix = { 0 };
	struct rec_memo memo;
	struct scratch *sc;
	struct rec_use *un;
	size_t nun = 0, *offs, i;
	char when[32];
	int r;

	if (a == NULL || n == 0) {
		return 0;
	}
	if ((sc = scratch_get(n)) == NULL) {
		return KMS_EINTERNAL;
	}
	offs = sc->offs;
	un = sc->un;
	rec_utc_now(when);
	if (n > 1) {
		rec_api_prefix(&prefix, a->d, call, when);
		if (prefix.oom) {
			prefix.len = 0;
		}
		memset(&memo, 0, sizeof(memo));
	}
	for (i = 0; i < n; i++) {
		offs[i] = sc->b.len;
		rec_api_record(&sc->b, a->d, call, &items[i], when, &prefix,
		    n > 1 ? &memo : NULL, un, &nun);
	}
	free(prefix.p);
	r = commit(a, &sc->b, offs, n, 1);
	if (r == 0) {
		usage_note(a, un, nun, call->request_id);
	}
	scratch_done(sc);
	return r;
}

void
audit_after_reply(void)
{
	struct audit *a = owed;

	if (a == NULL) {
		return;
	}
	owed = NULL;
	kms_mutex_lock(&a->mu);
	/* Unless the log's thread or another writer took them meanwhile. */
	if (a->rs != a->rw && !a->writing && !a->failed) {
		write_out_locked(a, 1);
	}
	kms_mutex_unlock(&a->mu);
}

int
audit_one(struct audit *a, const struct principal *p,
    const struct audit_origin *o, const char *request_id, json_t *req,
    json_t *reply)
{
	struct audit_call call;
	struct audit_item it;

	memset(&call, 0, sizeof(call));
	call.p = p;
	call.o = o;
	call.request_id = request_id;
	memset(&it, 0, sizeof(it));
	it.req = req;
	it.resp = reply;
	return audit_calls(a, &call, &it, 1);
}

int
audit_request(struct kmsd *d, const struct principal *p,
    const struct audit_origin *o, const void *req, size_t len,
    json_t *reply)
{
	char id[37], msg[128];
	json_t *j;
	int err = 0, r;

	if (d == NULL || d->audit == NULL) {
		return 0;
	}
	j = kjson_read_bounded(req, len, JSON_MAX_MESSAGE, &err, msg,
	    sizeof(msg));
	audit_new_id(id);
	r = audit_one(d->audit, p, o, id, j, reply);
	json_decref(j);
	return r;
}

int
audit_service_event(struct audit *a, const char *name,
    const char *resource_arn, json_t *details)
{
	struct rec_buf b = { 0 };
	char when[32];
	size_t off = 0;
	int r;

	if (a == NULL) {
		return 0;
	}
	rec_utc_now(when);
	rec_service_record(&b, a->d, name, resource_arn, details, when);
	/* No reply waits for it: the group's sync makes it durable, and
	 * the caller may hold the HSM turn (the log's thread takes it to
	 * sign before it syncs). */
	if ((r = commit(a, &b, &off, 1, 0)) != 0) {
		log_warn("audit: the %s event could not be recorded: %s", name,
		    kms_strerror(r));
	}
	free(b.p);
	return r;
}

void
audit_time_now(char out[32])
{
	rec_utc_now(out);
}

static void
fingerprint(const uint8_t *spki, size_t len, char out[64])
{
	uint8_t h[32];
	char b64[B64_ENCODED_LEN(32) + 1];
	size_t n;

	SHA256(spki, len, h);
	b64_encode(h, sizeof(h), b64, sizeof(b64));
	n = strlen(b64);
	while (n > 0 && b64[n - 1] == '=') {
		b64[--n] = '\0';
	}
	snprintf(out, 64, "SHA256:%s", b64);
}

int
audit_public_key(struct audit *a, char *pem, size_t pemlen, char *fp,
    size_t fplen, const char **alg)
{
	char b64[B64_ENCODED_LEN(HSM_SPKI_MAX) + 1];
	struct rec_buf b = { 0 };
	size_t n, i;

	if (a == NULL) {
		return KMS_EUNSUPPORTED;
	}
	b64_encode(a->key.spki, a->key.spkilen, b64, sizeof(b64));
	n = strlen(b64);
	rec_puts(&b, "-----BEGIN PUBLIC KEY-----\n");
	for (i = 0; i < n; i += 64) {
		rec_put(&b, b64 + i, n - i < 64 ? n - i : 64);
		rec_put(&b, "\n", 1);
	}
	rec_puts(&b, "-----END PUBLIC KEY-----\n");
	rec_put(&b, "", 1);
	if (b.oom || b.len > pemlen) {
		free(b.p);
		return KMS_EINTERNAL;
	}
	memcpy(pem, b.p, b.len);
	free(b.p);
	snprintf(fp, fplen, "%s", a->fp);
	*alg = a->key.alg == HSM_SIGN_ED25519 ? "Ed25519" :
	    "ECDSA_P256_SHA256";
	return 0;
}

/* ---- start-up ---- */

/* A JSON array of config's list of n strings, width bytes apart. */
static json_t *
str_array(const char *list, size_t width, int n)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < n; i++) {
		json_array_append_new(a, json_string(list + (size_t)i * width));
	}
	return a;
}

/* The configuration in force, for the start-up record. */
static json_t *
config_json(const struct config *c)
{
	json_t *o = json_object();

	json_object_set_new(o, "state_dir", json_string(c->state_dir));
	json_object_set_new(o, "pkcs11_module", json_string(c->pkcs11_module));
	json_object_set_new(o, "token_label", json_string(c->token_label));
	json_object_set_new(o, "pin_file", json_string(c->pin_file));
	json_object_set_new(o, "listen", json_string(c->listen));
	json_object_set_new(o, "store", json_string(c->store));
	json_object_set_new(o, "key_storage", json_string(c->key_storage ==
	    STORAGE_RESIDENT ? "resident" : "wrapped"));
	json_object_set_new(o, "workers", json_integer(c->workers));
	json_object_set_new(o, "administrators", str_array(
	    c->administrators[0], sizeof(c->administrators[0]),
	    c->nadministrators));
	json_object_set_new(o, "key_creators", str_array(c->key_creators[0],
	    sizeof(c->key_creators[0]), c->nkey_creators));
	json_object_set_new(o, "account_id", json_string(c->account_id));
	json_object_set_new(o, "arn_partition", json_string(c->arn_partition));
	json_object_set_new(o, "region", json_string(c->region));
	if (c->http_listen[0] != '\0') {
		json_object_set_new(o, "http", json_pack("{s:s, s:s, s:s, s:s, "
		    "s:o, s:i, s:i, s:i, s:i, s:i, s:i, s:i}",
		    "listen", c->http_listen, "tls_cert", c->http_tls_cert,
		    "tls_client_ca", c->http_tls_client_ca,
		    "credentials", c->http_credentials,
		    "regions", str_array(c->http_regions[0],
		    sizeof(c->http_regions[0]), c->nhttp_regions),
		    "threads", c->http_threads, "workers", c->http_workers,
		    "max_connections", c->http_max_connections,
		    "max_per_ip", c->http_max_per_ip,
		    "refusals_per_minute", c->http_refusals_per_minute,
		    "idle_timeout", c->http_idle_timeout_s,
		    "request_timeout", c->http_request_timeout_s));
	}
	json_object_set_new(o, "metrics_listen",
	    json_string(c->metrics_listen));
	json_object_set_new(o, "key_cache_handles",
	    json_integer((json_int_t)c->key_cache_handles));
	json_object_set_new(o, "max_encryptions_per_version",
	    json_integer((json_int_t)c->max_encryptions));
	json_object_set_new(o, "hsm_recycle_objects",
	    json_integer((json_int_t)c->hsm_recycle_objects));
	json_object_set_new(o, "batch_hsm_exclusive",
	    json_boolean(c->batch_hsm_exclusive));
	json_object_set_new(o, "audit_dir", json_string(c->audit_dir));
	json_object_set_new(o, "audit_required",
	    json_boolean(c->audit_required));
	json_object_set_new(o, "audit_sync", json_string(c->audit_sync ==
	    AUDIT_SYNC_REQUEST ? "request" : "group"));
	json_object_set_new(o, "audit_sync_ms", json_integer(c->audit_sync_ms));
	json_object_set_new(o, "audit_checkpoint_records",
	    json_integer((json_int_t)c->audit_checkpoint_records));
	json_object_set_new(o, "audit_checkpoint_seconds",
	    json_integer(c->audit_checkpoint_seconds));
	json_object_set_new(o, "audit_rotate_bytes",
	    json_integer((json_int_t)c->audit_rotate_bytes));
	json_object_set_new(o, "audit_rotate_seconds",
	    json_integer(c->audit_rotate_seconds));
	return o;
}

/* Highest file number in the directory (0: none). */
static uint64_t
last_file_no(const char *dir)
{
	struct dirent *e;
	uint64_t best = 0, no;
	DIR *dp;
	char *end;

	if ((dp = opendir(dir)) == NULL) {
		return 0;
	}
	while ((e = readdir(dp)) != NULL) {
		size_t n = strlen(e->d_name), pl = strlen(AUDIT_FILE_PREFIX),
		    sl = strlen(AUDIT_FILE_SUFFIX);
		if (n <= pl + sl || strncmp(e->d_name, AUDIT_FILE_PREFIX,
		    pl) != 0 || strcmp(e->d_name + n - sl,
		    AUDIT_FILE_SUFFIX) != 0) {
			continue;
		}
		no = strtoull(e->d_name + pl, &end, 10);
		if (end == e->d_name + n - sl && no > best) {
			best = no;
		}
	}
	closedir(dp);
	return best;
}

/*
 * The last complete line of file no: cut a partial one after it (a write
 * a crash cut short), and set seq, head and whether it was a checkpoint
 * or a clean stop.  1 when the file holds no complete line.
 */
static int
recover_tail(struct audit *a, uint64_t no, json_t *repairs, int *clean,
    char *err, size_t errlen)
{
	char name[64], path[CONFIG_PATH_MAX + 64], *buf = NULL;
	size_t want, got = 0, end, start;
	struct stat st;
	off_t from;
	ssize_t n;
	json_t *j = NULL, *seq, *ev;
	int fd, r = KMS_EVALIDATION;

	file_name(no, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", a->d->cfg.audit_dir, name);
	if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "audit file %s: %s", path,
		    strerror(errno));
		r = KMS_EINTERNAL;
		goto out;
	}
	want = (size_t)st.st_size < 2 * AUDIT_LINE_MAX ? (size_t)st.st_size :
	    2 * AUDIT_LINE_MAX;
	from = st.st_size - (off_t)want;
	if ((buf = malloc(want + 1)) == NULL) {
		r = KMS_ENOMEM;
		goto out;
	}
	while (got < want && (n = pread(fd, buf + got, want - got,
	    from + (off_t)got)) > 0) {
		got += (size_t)n;
	}
	if (got != want) {
		snprintf(err, errlen, "audit file %s: short read", path);
		r = KMS_EINTERNAL;
		goto out;
	}
	end = want;
	while (end > 0 && buf[end - 1] != '\n') {
		end--;
	}
	if (end < want) {
		/* A partial last line: never acknowledged (a record is
		 * written whole before its reply), so cut it, and say so. */
		if (end == 0 && from > 0) {
			snprintf(err, errlen, "audit file %s: its last line is "
			    "longer than %d bytes", path, 2 * AUDIT_LINE_MAX);
			goto out;
		}
		if (ftruncate(fd, from + (off_t)end) != 0 || fsync(fd) != 0) {
			snprintf(err, errlen, "cutting the partial last line of "
			    "%s: %s", path, strerror(errno));
			r = KMS_EINTERNAL;
			goto out;
		}
		log_warn("audit file %s ended in a partial line (%zu bytes, "
		    "a write cut short); cut it", name, want - end);
		json_array_append_new(repairs, json_pack("{s:s, s:I, s:I}",
		    "file", name, "offset", (json_int_t)(from + (off_t)end),
		    "bytesCut", (json_int_t)(want - end)));
	}
	if (end == 0) {
		r = 1;		/* nothing complete in it */
		goto out;
	}
	start = end - 1;
	while (start > 0 && buf[start - 1] != '\n') {
		start--;
	}
	if (start == 0 && from > 0) {
		snprintf(err, errlen, "audit file %s: its last line is longer "
		    "than %d bytes", path, 2 * AUDIT_LINE_MAX);
		goto out;
	}
	j = json_loadb(buf + start, end - 1 - start, 0, NULL);
	seq = json_object_get(j, "sequence");
	if (!json_is_integer(seq) || json_integer_value(seq) < 1) {
		snprintf(err, errlen, "the last line of audit file %s is not "
		    "an audit record; check the log with kmsctl audit verify "
		    "and move the file away", path);
		goto out;
	}
	a->seq = (uint64_t)json_integer_value(seq);
	SHA256((const uint8_t *)buf + start, end - 1 - start, a->head);
	ev = json_object_get(j, "eventName");
	*clean = json_is_string(ev) && strcmp(json_string_value(ev),
	    "AuditCheckpoint") == 0;
	r = 0;
 out:
	json_decref(j);
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
	return r;
}

/* ---- the staging ring ---- */

/*
 * Records a crash left in the ring, staged (so perhaps answered) but not
 * yet in the log: chained onto file no, whose last record is a->seq and
 * a->head.  The ring's header says how far it was written and the
 * sequence of the last record written; those of the records after it
 * that the file holds all the same (written just before the crash, the
 * header not yet told) are passed over.  Runs before the ring is made
 * again.
 */
static int
ring_recover(struct audit *a, uint64_t no, json_t *repairs, int *clean,
    char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX + 64], name[64], *out = NULL;
	struct ring_hdr h;
	struct stat st;
	uint64_t written, wseq, p, skip;
	size_t len = 0, added = 0, k;
	int fd, lfd = -1, r = 0;

	snprintf(path, sizeof(path), "%s/" RING_FILE, a->d->cfg.audit_dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		return 0;
	}
	if (fstat(fd, &st) != 0 || pread(fd, &h, sizeof(h), 0) !=
	    (ssize_t)sizeof(h) || memcmp(h.magic, RING_MAGIC, 16) != 0 ||
	    h.size < RING_MIN || h.size > RING_MAX || (h.size & (h.size - 1))
	    != 0 || (uint64_t)st.st_size <
	    RING_HDR + h.size || (written = h.slot[h.gen & 1].written) >
	    h.staged || h.staged - written > h.size) {
		log_warn("audit: %s is not a staging ring kmsd wrote; records "
		    "it may hold are not recovered", path);
		goto out;
	}
	wseq = h.slot[h.gen & 1].seq;
	if (h.staged == written) {
		goto out;
	}
	/* The ring mapped read-only, for chain() to read as it does. */
	a->rsize = h.size;
	a->ring = mmap(NULL, RING_HDR + h.size, PROT_READ, MAP_SHARED, fd, 0);
	if (a->ring == MAP_FAILED) {
		a->ring = NULL;
		snprintf(err, errlen, "audit staging ring %s: %s", path,
		    strerror(errno));
		r = KMS_EINTERNAL;
		goto out;
	}
	a->ring += RING_HDR;
	/* Records after wseq the file already holds. */
	skip = a->seq > wseq ? a->seq - wseq : 0;
	for (p = written; p < h.staged && skip > 0; p++) {
		skip -= a->ring[p & (h.size - 1)] == '\n';
	}
	if (p < h.staged) {
		uint64_t seq = a->seq, end;
		if ((r = chain(a, p, h.staged, SIZE_MAX, &seq, a->head, &len,
		    &end)) != 0) {
			goto out;
		}
		added = (size_t)(seq - a->seq);
		a->seq = seq;
		out = a->wbuf;
	}
	if (added == 0) {
		goto out;
	}
	file_name(no, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", a->d->cfg.audit_dir, name);
	if ((lfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0 ||
	    io_write_all(lfd, out, len) != 0 || fsync(lfd) != 0) {
		snprintf(err, errlen, "audit file %s: %s", path,
		    strerror(errno));
		r = KMS_EINTERNAL;
		goto out;
	}
	/* Whether the last is a checkpoint: the stop was clean after all. */
	for (k = len - 1; k > 0 && out[k - 1] != '\n'; k--) {
	}
	*clean = memmem(out + k, len - k, "\"eventName\":\"AuditCheckpoint\"",
	    29) != NULL;
	log_warn("audit: %zu records staged before an unclean stop were not "
	    "yet in %s; written", added, name);
	json_array_append_new(repairs, json_pack("{s:s, s:I}", "file", name,
	    "stagedRecordsWritten", (json_int_t)added));
 out:
	if (a->ring != NULL) {
		munmap(a->ring - RING_HDR, RING_HDR + h.size);
		a->ring = NULL;
	}
	if (lfd >= 0) {
		close(lfd);
	}
	close(fd);
	return r;
}

/* Make the ring (as large as the file system allows, up to RING_MAX),
 * its blocks allocated, and map it. */
static int
ring_open(struct audit *a, char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX + 64];
	uint64_t size;
	void *m;
	int fd, e = 0;

	snprintf(path, sizeof(path), "%s/" RING_FILE, a->d->cfg.audit_dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0) {
		snprintf(err, errlen, "audit staging ring %s: %s", path,
		    strerror(errno));
		return KMS_EINTERNAL;
	}
	for (size = RING_MAX; size >= RING_MIN; size /= 2) {
		if ((e = posix_fallocate(fd, 0, (off_t)(RING_HDR + size))) ==
		    0) {
			break;
		}
	}
	if (e != 0 || ftruncate(fd, (off_t)(RING_HDR + size)) != 0) {
		snprintf(err, errlen, "audit staging ring %s: %s", path,
		    strerror(e != 0 ? e : errno));
		close(fd);
		return KMS_EINTERNAL;
	}
	m = mmap(NULL, RING_HDR + size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(err, errlen, "audit staging ring %s: %s", path,
		    strerror(errno));
		return KMS_EINTERNAL;
	}
	a->rh = m;
	a->ring = (char *)m + RING_HDR;
	a->rsize = size;
	a->rs = a->rw = 0;
	a->rh->staged = 0;
	a->rh->gen = 0;
	a->rh->slot[0].written = 0;
	a->rh->slot[0].seq = a->seq;
	a->rh->size = size;
	memcpy(a->rh->magic, RING_MAGIC, 16);
	return 0;
}

static void
ring_close(struct audit *a)
{
	if (a->rh != NULL) {
		munmap(a->rh, RING_HDR + a->rsize);
		a->rh = NULL;
		a->ring = NULL;
	}
}

int
audit_open(struct kmsd *d, char *err, size_t errlen)
{
	struct audit *a;
	uint64_t last, no;
	json_t *repairs = NULL, *det = NULL, *cfgj = NULL;
	char prev[64], b64[B64_ENCODED_LEN(HSM_SPKI_MAX) + 1];
	int r = KMS_EINTERNAL, clean = 1, have = 0;

	d->audit = NULL;
	if (!d->cfg.audit) {
		log_warn("auditing is off (audit = no): requests leave no "
		    "record");
		return 0;
	}
	if (sodium_init() < 0 || (a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "audit: out of memory");
		return KMS_ENOMEM;
	}
	a->d = d;
	a->fd = -1;
	/* Adaptive: a record is chained and written in a few microseconds,
	 * less than a futex sleep and wake-up; with many workers a plain
	 * mutex turned each collision into two context switches. */
	{
		pthread_mutexattr_t ma;
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
		kms_mutex_init_attr(&a->mu, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	pthread_cond_init(&a->wake, NULL);
	pthread_cond_init(&a->synced, NULL);
	pthread_cond_init(&a->moved, NULL);
	pthread_mutex_init(&a->umu, NULL);
	a->ubuckets = calloc(USAGE_BUCKETS, sizeof(*a->ubuckets));
	a->started_ms = now_ms();
	if (mkdir(d->cfg.audit_dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "audit_dir %s: %s", d->cfg.audit_dir,
		    strerror(errno));
		goto fail;
	}
	if ((r = hsm_signing_key(d->hsm, HSM_AUDIT_KEY_LABEL, 1, &a->key, err,
	    errlen)) != 0 || (r = hsm_session_open(d->hsm, &a->hs)) != 0) {
		goto fail;
	}
	fingerprint(a->key.spki, a->key.spkilen, a->fp);
	log_info("audit signing key %s %s (pin it: kmsctl audit "
	    "public-key)", a->key.alg == HSM_SIGN_ED25519 ? "Ed25519" :
	    "ECDSA P-256", a->fp);
	/* Where the chain stands: the last complete line of the newest file
	 * that has one. */
	repairs = json_array();
	last = last_file_no(d->cfg.audit_dir);
	for (no = last; no > 0; no--) {
		if ((r = recover_tail(a, no, repairs, &clean, err, errlen)) ==
		    0) {
			have = 1;
			break;
		}
		if (r != 1) {
			goto fail;
		}
	}
	if (!have) {
		memset(a->head, 0, sizeof(a->head));
		a->seq = 0;
	}
	if (have && (r = ring_recover(a, no, repairs, &clean, err, errlen)) !=
	    0) {
		goto fail;
	}
	if ((r = ring_open(a, err, errlen)) != 0) {
		goto fail;
	}
	usage_load(a, last);
	a->usave_ms = mono_ms();
	file_name(no, prev, sizeof(prev));
	kms_mutex_lock(&a->mu);
	r = new_file_locked(a, last + 1, have ? prev : NULL);
	if (r == 0 && json_array_size(repairs) > 0) {
		det = json_pack("{s:O}", "repairs", repairs);
		r = event_locked(a, "AuditLogTailRepaired", NULL, det);
		json_decref(det);
	}
	b64_encode(a->key.spki, a->key.spkilen, b64, sizeof(b64));
	cfgj = config_json(&d->cfg);
	det = json_pack("{s:s, s:i, s:b, s:o, s:{s:s, s:s, s:s}}", "version",
	    "kmsd 0.1.0", "pid", (int)getpid(), "previousTailSigned", !have ||
	    clean, "configuration", cfgj, "auditKey", "algorithm",
	    a->key.alg == HSM_SIGN_ED25519 ? "Ed25519" : "ECDSA_P256_SHA256",
	    "fingerprint", a->fp, "publicKey", b64);
	if (r == 0) {
		r = det != NULL ? event_locked(a, "KmsdStart", NULL, det) :
		    KMS_EINTERNAL;
	}
	json_decref(det);
	/* Signs, with the rest, whatever an unclean stop left unsigned. */
	if (r == 0) {
		r = checkpoint_locked(a, have && !clean ? "startup-recovery" :
		    "startup", 0);
	}
	if (r == 0) {
		r = sync_locked(a);
	}
	kms_mutex_unlock(&a->mu);
	json_decref(repairs);
	repairs = NULL;
	if (r != 0) {
		snprintf(err, errlen, "cannot write the audit log in %s: %s",
		    d->cfg.audit_dir, a->failed ? strerror(a->fail_errno) :
		    kms_strerror(r));
		goto fail;
	}
	/* The log's thread takes no signal: SIGTERM and SIGINT are for the
	 * thread that waits for them (server_run), and a signal delivered
	 * here would kill kmsd without its shutdown records. */
	{
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		r = pthread_create(&a->thr, NULL, audit_main, a);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (r != 0) {
		snprintf(err, errlen, "cannot start the audit thread");
		r = KMS_EINTERNAL;
		goto fail;
	}
	a->thr_started = 1;
	(void)pthread_setname_np(a->thr, "kmsd-audit");
	d->audit = a;
	return 0;
 fail:
	json_decref(repairs);
	usage_free(a);
	if (a->fd >= 0) {
		close(a->fd);
	}
	hsm_session_close(a->hs);
	kms_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->wake);
	pthread_cond_destroy(&a->synced);
	pthread_cond_destroy(&a->moved);
	free(a->wbuf);
	ring_close(a);
	free(a);
	return r != 0 ? r : KMS_EINTERNAL;
}

void
audit_close(struct kmsd *d)
{
	struct audit *a = d->audit;
	json_t *det;

	if (a == NULL) {
		return;
	}
	kms_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->wake);
	kms_mutex_unlock(&a->mu);
	if (a->thr_started) {
		pthread_join(a->thr, NULL);
	}
	pthread_rwlock_rdlock(&d->hsm_turn);
	kms_mutex_lock(&a->mu);
	if (a->failed) {
		try_resume_locked(a);
	}
	det = json_pack("{s:I}", "requests", (json_int_t)atomic_load(
	    &d->requests));
	(void)event_locked(a, "KmsdStop", NULL, det);
	json_decref(det);
	(void)checkpoint_locked(a, "shutdown", 0);
	(void)sync_locked(a);
	kms_mutex_unlock(&a->mu);
	pthread_rwlock_unlock(&d->hsm_turn);
	if (a->fd >= 0) {
		close(a->fd);
	}
	usage_save(a, a->file_no, a->size, 1);
	usage_free(a);
	hsm_session_close(a->hs);
	kms_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->wake);
	pthread_cond_destroy(&a->synced);
	pthread_cond_destroy(&a->moved);
	free(a->wbuf);
	ring_close(a);
	free(a);
	d->audit = NULL;
}
