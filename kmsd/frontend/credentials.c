/*
 * credentials.c — SigV4 access keys (credentials.h).
 *
 * The whole file is read into locked memory and parsed there: the secrets
 * stay in that one region, each entry pointing into it.  A reload builds
 * a new set and swaps it in under the write lock.  Each key's SigV4
 * signing key for the scope last used (it changes once a day) is kept
 * beside it, in locked memory too, so that a request costs one HMAC.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/log.h"
#include "common/secmem.h"
#include "common/sp.h"
#include "kmsd/frontend/credentials.h"
#include "kmsd/frontend/sigv4.h"

#define CREDS_RECHECK_MS 1000	/* how often the file's stamp is looked at */
#define AKID_PREFIX "KMSD"	/* generated ids: KMSD + 16 of [A-Z2-7] */
#define GEN_AKID_LEN 20
#define GEN_SECRET_LEN 40	/* as AWS's: 40 of [A-Za-z0-9+/] */

struct cred {
	const char *akid;		/* into set->text */
	const uint8_t *secret;
	size_t secretlen;
	char principal[CREDS_PRINCIPAL_MAX + 1];
};

/* A signing key and the scope it is for ("" when none yet). */
struct skey {
	char scope[8 + 1 + SIGV4_SCOPE_FIELD_MAX + 1 + SIGV4_SCOPE_FIELD_MAX +
	    1];
	uint8_t key[SIGV4_KEY_LEN];
};

struct cset {
	char *text;			/* locked copy of the file */
	size_t textlen;
	struct cred *v;
	size_t n;
	struct skey *sk;		/* n of them, locked */
	pthread_mutex_t sk_mu;
};

struct creds {
	char path[1024];
	pthread_rwlock_t lock;
	struct cset *set;
	pthread_mutex_t check_mu;
	atomic_uint_fast64_t next_check;	/* mono_ms */
	/* the file as last read */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;	/* ctime: a chmod or chown too */
	int present;
};

static void
cset_free(struct cset *s)
{
	if (s == NULL) {
		return;
	}
	secure_free(s->text, s->textlen + 1);
	if (s->sk != NULL) {
		secure_free(s->sk, s->n * sizeof(*s->sk));
	}
	pthread_mutex_destroy(&s->sk_mu);
	free(s->v);
	free(s);
}

static struct cset *
cset_new(void)
{
	struct cset *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return NULL;
	}
	pthread_mutex_init(&s->sk_mu, NULL);
	return s;
}

static int
akid_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= CREDS_AKID_MIN && n <= CREDS_AKID_MAX && strspn(s,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
	    == n;
}

/* Open path safely and read it into locked memory; ENOENT is reported
 * as *present = 0. */
static int
read_file(const char *path, char **textp, size_t *lenp, struct stat *stp,
    int *present, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	int fd, r = -1;

	*present = 0;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		if (errno == ENOENT) {
			*textp = NULL;
			*lenp = 0;
			memset(stp, 0, sizeof(*stp));
			return 0;
		}
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: readable by others (mode %03o); "
		    "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: owned by uid %u, not kmsd's (%u)",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_size > CREDS_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path,
		    CREDS_FILE_MAX);
		goto out;
	}
	if ((text = secure_alloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of locked memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			snprintf(err, errlen, "%s: short read", path);
			goto out;
		}
		got += (size_t)n;
	}
	text[got] = '\0';
	*textp = text;
	*lenp = got;
	*stp = st;
	*present = 1;
	text = NULL;
	r = 0;
 out:
	if (text != NULL) {
		secure_free(text, (size_t)st.st_size + 1);
	}
	close(fd);
	return r;
}

/* Parse text (modified in place: fields NUL-terminated) into s. */
static int
parse(struct cset *s, const char *path, char *err, size_t errlen)
{
	char *line, *next;
	int lineno = 0;

	if ((s->v = calloc(CREDS_MAX, sizeof(*s->v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (line = s->text; line != NULL && *line != '\0'; line = next) {
		char *f[4], *save = NULL, *hash;
		int nf = 0;
		size_t i;

		lineno++;
		if ((next = strchr(line, '\n')) != NULL) {
			*next++ = '\0';
		}
		if ((hash = strchr(line, '#')) != NULL) {
			*hash = '\0';
		}
		for (f[nf] = strtok_r(line, " \t\r", &save); f[nf] != NULL &&
		    nf < 4; f[nf] = strtok_r(NULL, " \t\r", &save)) {
			if (++nf == 4) {
				break;
			}
		}
		if (nf == 0) {
			continue;
		}
		if (nf < 2 || nf > 3) {
			snprintf(err, errlen, "%s:%d: expected ACCESS_KEY_ID "
			    "SECRET [PRINCIPAL]", path, lineno);
			return -1;
		}
		if (!akid_ok(f[0])) {
			snprintf(err, errlen, "%s:%d: an access key id is "
			    "16-128 letters and digits", path, lineno);
			return -1;
		}
		if (strlen(f[1]) > CREDS_SECRET_MAX) {
			snprintf(err, errlen, "%s:%d: secret longer than %d",
			    path, lineno, CREDS_SECRET_MAX);
			return -1;
		}
		if (nf == 3 && (strlen(f[2]) > CREDS_PRINCIPAL_MAX ||
		    strchr(f[2], ':') == NULL)) {
			snprintf(err, errlen, "%s:%d: a principal is TYPE:NAME "
			    "(e.g. user:alice), at most %d characters", path,
			    lineno, CREDS_PRINCIPAL_MAX);
			return -1;
		}
		for (i = 0; i < s->n; i++) {
			if (strcmp(s->v[i].akid, f[0]) == 0) {
				snprintf(err, errlen, "%s:%d: access key id %s "
				    "given twice", path, lineno, f[0]);
				return -1;
			}
		}
		if (s->n == CREDS_MAX) {
			snprintf(err, errlen, "%s: more than %d keys", path,
			    CREDS_MAX);
			return -1;
		}
		s->v[s->n].akid = f[0];
		s->v[s->n].secret = (const uint8_t *)f[1];
		s->v[s->n].secretlen = strlen(f[1]);
		if (nf == 3) {
			snprintf(s->v[s->n].principal, sizeof(s->v[0].principal),
			    "%s", f[2]);
		} else {
			snprintf(s->v[s->n].principal, sizeof(s->v[0].principal),
			    "access-key:%s", f[0]);
		}
		s->n++;
	}
	return 0;
}

static int
load(const char *path, struct cset **out, struct stat *st, int *present,
    char *err, size_t errlen)
{
	struct cset *s;

	if ((s = cset_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (read_file(path, &s->text, &s->textlen, st, present, err,
	    errlen) != 0 || (s->text != NULL && parse(s, path, err,
	    errlen) != 0)) {
		cset_free(s);
		return -1;
	}
	if (s->n > 0 && (s->sk = secure_alloc(s->n * sizeof(*s->sk))) ==
	    NULL) {
		snprintf(err, errlen, "out of locked memory");
		cset_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

int
creds_open(const char *path, struct creds **out, char *err, size_t errlen)
{
	struct creds *c;
	struct stat st;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	if (load(path, &c->set, &st, &c->present, err, errlen) != 0) {
		free(c);
		return -1;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->size = st.st_size;
	c->mtime = st.st_mtim;
	c->ctime = st.st_ctim;
	pthread_rwlock_init(&c->lock, NULL);
	pthread_mutex_init(&c->check_mu, NULL);
	atomic_store(&c->next_check, mono_ms() + CREDS_RECHECK_MS);
	*out = c;
	return 0;
}

void
creds_close(struct creds *c)
{
	if (c == NULL) {
		return;
	}
	cset_free(c->set);
	pthread_rwlock_destroy(&c->lock);
	pthread_mutex_destroy(&c->check_mu);
	free(c);
}

/* At most once a second, by one thread: has the file changed? */
static void
maybe_reload(struct creds *c)
{
	struct cset *s = NULL, *old;
	struct stat st;
	char err[512];
	int present, gone;
	uint64_t now = mono_ms();

	if (now < atomic_load(&c->next_check) ||
	    pthread_mutex_trylock(&c->check_mu) != 0) {
		return;
	}
	atomic_store(&c->next_check, now + CREDS_RECHECK_MS);
	gone = stat(c->path, &st) != 0;
	if ((gone && !c->present) || (!gone && c->present &&
	    st.st_dev == c->dev && st.st_ino == c->ino &&
	    st.st_size == c->size && st.st_mtim.tv_sec == c->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == c->mtime.tv_nsec &&
	    st.st_ctim.tv_sec == c->ctime.tv_sec &&
	    st.st_ctim.tv_nsec == c->ctime.tv_nsec)) {
		pthread_mutex_unlock(&c->check_mu);
		return;
	}
	if (load(c->path, &s, &st, &present, err, sizeof(err)) != 0) {
		/* Fail closed: an unsafe or broken file serves no one.  The
		 * stamp is the file's, so that it is read again once fixed. */
		log_error("credentials: %s; no access key is accepted until "
		    "it is fixed", err);
		s = cset_new();
		if (stat(c->path, &st) != 0) {
			memset(&st, 0, sizeof(st));
		}
		present = 1;
	} else {
		log_info("credentials: %s read again: %zu access keys",
		    c->path, s->n);
	}
	if (s != NULL) {
		pthread_rwlock_wrlock(&c->lock);
		old = c->set;
		c->set = s;
		pthread_rwlock_unlock(&c->lock);
		cset_free(old);
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->size = st.st_size;
	c->mtime = st.st_mtim;
	c->ctime = st.st_ctim;
	c->present = present;
	pthread_mutex_unlock(&c->check_mu);
}

int
creds_signing_key(struct creds *c, const char *akid, const char *date,
    const char *region, const char *service, uint8_t key[SIGV4_KEY_LEN],
    char *principal, size_t plen)
{
	struct skey *k;
	struct cset *s;
	char scope[sizeof(k->scope)];
	size_t i;
	int n, r = -1;

	n = snprintf(scope, sizeof(scope), "%s/%s/%s", date, region, service);
	if (n < 0 || (size_t)n >= sizeof(scope)) {
		return -1;
	}
	maybe_reload(c);
	pthread_rwlock_rdlock(&c->lock);
	s = c->set;
	for (i = 0; s != NULL && i < s->n; i++) {
		if (strcmp(s->v[i].akid, akid) != 0) {
			continue;
		}
		r = 0;
		if (key != NULL) {
			k = &s->sk[i];
			pthread_mutex_lock(&s->sk_mu);
			if (strcmp(k->scope, scope) != 0) {
				k->scope[0] = '\0';
				if (sigv4_signing_key(s->v[i].secret,
				    s->v[i].secretlen, date, region, service,
				    k->key) == 0) {
					memcpy(k->scope, scope, (size_t)n + 1);
				} else {
					r = -2;
				}
			}
			if (r == 0) {
				memcpy(key, k->key, SIGV4_KEY_LEN);
			}
			pthread_mutex_unlock(&s->sk_mu);
		}
		snprintf(principal, plen, "%s", s->v[i].principal);
		break;
	}
	pthread_rwlock_unlock(&c->lock);
	return r;
}

/* ---- kmsd credentials ... ---- */

static void
random_chars(char *out, size_t n, const char *alphabet)
{
	size_t m = strlen(alphabet), i;

	for (i = 0; i < n; i++) {
		out[i] = alphabet[randombytes_uniform((uint32_t)m)];
	}
	out[n] = '\0';
}

/* Write text[0..len) to path through a fresh 0600 file renamed over it. */
static int
write_file(const char *path, const char *text, size_t len)
{
	char tmp[1100];
	size_t off = 0;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) < 0) {
		fprintf(stderr, "kmsd: %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		off += (size_t)n;
	}
	if (off != len || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(tmp, path) != 0) {
		fprintf(stderr, "kmsd: writing %s: %s\n", path,
		    strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void
cmd_usage(void)
{
	fprintf(stderr,
	    "usage: kmsd [-c FILE] credentials add [--principal P] "
	    "[--secret-stdin]\n"
	    "       kmsd [-c FILE] credentials list\n"
	    "       kmsd [-c FILE] credentials remove ACCESS_KEY_ID\n"
	    "A generated secret is printed once; --secret-stdin reads one "
	    "line from standard input instead.\n");
}

int
creds_command(const char *path, int argc, char **argv)
{
	struct cset *s = NULL;
	struct stat st;
	char err[1024], akid[GEN_AKID_LEN + 1], *secret = NULL, *out = NULL;
	char *text = NULL;
	const char *principal = NULL;
	size_t i, outcap = 0, outlen = 0, secretcap = CREDS_SECRET_MAX + 2;
	size_t tlen = 0;
	int present, from_stdin = 0, rc = 1;

	if (argc < 1) {
		cmd_usage();
		return 2;
	}
	if (load(path, &s, &st, &present, err, sizeof(err)) != 0) {
		fprintf(stderr, "kmsd: %s\n", err);
		return 1;
	}
	if (strcmp(argv[0], "list") == 0 && argc == 1) {
		for (i = 0; i < s->n; i++) {
			printf("%s\t%s\n", s->v[i].akid, s->v[i].principal);
		}
		rc = 0;
		goto out;
	}
	/* The new file: the old one's text, a line added or one left out;
	 * the secrets pass through locked memory only. */
	outcap = s->textlen + CREDS_AKID_MAX + CREDS_SECRET_MAX +
	    CREDS_PRINCIPAL_MAX + 8;
	if ((out = secure_alloc(outcap)) == NULL ||
	    (secret = secure_alloc(secretcap)) == NULL) {
		fprintf(stderr, "kmsd: out of locked memory\n");
		goto out;
	}
	if (strcmp(argv[0], "add") == 0) {
		for (i = 1; i < (size_t)argc; i++) {
			if (strcmp(argv[i], "--principal") == 0 &&
			    i + 1 < (size_t)argc) {
				principal = argv[++i];
			} else if (strcmp(argv[i], "--secret-stdin") == 0) {
				from_stdin = 1;
			} else {
				cmd_usage();
				rc = 2;
				goto out;
			}
		}
		if (principal != NULL && (strlen(principal) >
		    CREDS_PRINCIPAL_MAX || strchr(principal, ':') == NULL ||
		    strpbrk(principal, " \t\r\n#") != NULL)) {
			fprintf(stderr, "kmsd: a principal is TYPE:NAME (e.g. "
			    "user:alice), without blanks or '#'\n");
			goto out;
		}
		random_chars(akid + 4, GEN_AKID_LEN - 4,
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
		memcpy(akid, AKID_PREFIX, 4);
		if (from_stdin) {
			size_t n;
			if (fgets(secret, (int)secretcap, stdin) == NULL) {
				fprintf(stderr, "kmsd: no secret on standard "
				    "input\n");
				goto out;
			}
			n = strcspn(secret, "\r\n");
			secret[n] = '\0';
			if (n == 0 || n > CREDS_SECRET_MAX ||
			    strpbrk(secret, " \t#") != NULL) {
				fprintf(stderr, "kmsd: a secret is 1-%d "
				    "characters without blanks or '#'\n",
				    CREDS_SECRET_MAX);
				goto out;
			}
		} else {
			random_chars(secret, GEN_SECRET_LEN,
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789+/");
		}
		/* The parse cut the text into fields: read it again. */
		if (read_file(path, &text, &tlen, &st, &present, err,
		    sizeof(err)) != 0) {
			fprintf(stderr, "kmsd: %s\n", err);
			goto out;
		}
		outlen = (size_t)snprintf(out, outcap, "%s%s%s %s%s%s\n",
		    text != NULL ? text : "", tlen > 0 && text[tlen - 1] !=
		    '\n' ? "\n" : "", akid, secret, principal != NULL ? " " :
		    "", principal != NULL ? principal : "");
		secure_free(text, tlen + 1);
		text = NULL;
		if (outlen >= outcap || write_file(path, out, outlen) != 0) {
			goto out;
		}
		printf("[kmsd]\naws_access_key_id = %s\n", akid);
		if (!from_stdin) {
			printf("aws_secret_access_key = %s\n", secret);
		}
		fflush(stdout);
		rc = 0;
	} else if (strcmp(argv[0], "remove") == 0 && argc == 2) {
		char *line, *next;
		int found = 0;
		for (i = 0; i < s->n && !found; i++) {
			found = strcmp(s->v[i].akid, argv[1]) == 0;
		}
		if (!found) {
			fprintf(stderr, "kmsd: no access key %s in %s\n",
			    argv[1], path);
			goto out;
		}
		/* Again, uncut, and copy every line but that key's. */
		if (read_file(path, &text, &tlen, &st, &present, err,
		    sizeof(err)) != 0 || text == NULL) {
			fprintf(stderr, "kmsd: %s\n", err);
			goto out;
		}
		for (line = text; *line != '\0'; line = next) {
			size_t n = strcspn(line, "\n"), k = strlen(argv[1]);
			next = line[n] == '\n' ? line + n + 1 : line + n;
			if (n > k && strncmp(line, argv[1], k) == 0 &&
			    (line[k] == ' ' || line[k] == '\t')) {
				continue;
			}
			if (outlen + (size_t)(next - line) < outcap) {
				memcpy(out + outlen, line,
				    (size_t)(next - line));
				outlen += (size_t)(next - line);
			}
		}
		if (write_file(path, out, outlen) != 0) {
			goto out;
		}
		rc = 0;
	} else {
		cmd_usage();
		rc = 2;
	}
 out:
	if (text != NULL) {
		secure_free(text, tlen + 1);
	}
	secure_free(out, outcap);
	secure_free(secret, secretcap);
	cset_free(s);
	return rc;
}
