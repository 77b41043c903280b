/*
 * cmd_envelope.c — kmsctl encrypt-file / decrypt-file.
 *
 * Options follow the AWS Encryption CLI where they fit: --input and
 * --output ("-" for stdin/stdout), --encryption-context k=v ... (on
 * decrypt: pairs the message must hold), --algorithm, --frame-length,
 * --recursive for a directory tree, --suffix for names made in an output
 * directory.  Each output is written to a temporary file (mode 0600)
 * beside its target and renamed over it only when the whole message has
 * been processed and verified, so a failed or tampered decrypt never
 * leaves partial plaintext under the target name.  On a terminal, inputs
 * of 1 MiB or more show a progress bar on stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/io.h"
#include "tools/kmsctl/cmd_envelope.h"

#define EXIT_USAGE 252
#define EXIT_SERVICE 254
#define EXIT_OTHER 255
#define CHUNK (256 * 1024)
#define PROGRESS_MIN (1024 * 1024)	/* smaller inputs finish at once */
#define MAX_CONTEXT 64

struct job {
	const struct envelope_args *a;
	kms_client *c;
	kms_context ctx;
	uint16_t suite;
};

static int
usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\nusage: kmsctl [options] <command> [parameters]\n"
	    "kmsctl: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

static int
failed(const struct job *j, const char *path, int r, const kms_error_info *ei)
{
	const char *msg = ei->message[0] != '\0' ? ei->message :
	    kms_strerror(r);

	fprintf(stderr, "\nAn error occurred (%s) when calling the %s "
	    "operation on %s: %s\n", ei->name[0] != '\0' ? ei->name :
	    kms_error_name(r), j->a->encrypt ? "EncryptFile" : "DecryptFile",
	    path, msg);
	return (r > 0 && r < KMS_ERR_MAX && !err_is_client_side(r)) ||
	    r == KMS_EIO ? EXIT_SERVICE : EXIT_OTHER;
}

/* --------------------------------------------------------- progress */

struct progress {
	int on;
	uint64_t total, done;
	double start, last;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
progress_show(struct progress *p, int final)
{
	double t = now_s(), rate;
	int i, w = 30, fill;

	if (!p->on || (!final && t - p->last < 0.2)) {
		return;
	}
	p->last = t;
	fill = p->total > 0 ? (int)((double)w * (double)p->done /
	    (double)p->total) : w;
	if (fill > w) {
		fill = w;
	}
	rate = t > p->start ? (double)p->done / (t - p->start) / 1048576.0 :
	    0;
	fputs("\r[", stderr);
	for (i = 0; i < w; i++) {
		fputc(i < fill ? '#' : '.', stderr);
	}
	fprintf(stderr, "] %3d%%  %.0f MiB  %.0f MiB/s%s",
	    p->total > 0 ? (int)(100.0 * (double)p->done /
	    (double)p->total) : 100, (double)p->done / 1048576.0, rate,
	    final ? "\n" : "");
}

/* ------------------------------------------------------------ streams */

static int
write_all(void *arg, const uint8_t *p, size_t n)
{
	return io_write_all(*(int *)arg, p, n);
}

/* in_fd → out_fd through a new encryptor or decryptor. */
static int
process(const struct job *j, int in, int out, uint64_t size,
    const char *path)
{
	const struct envelope_args *a = j->a;
	kms_envelope_encrypt_opts eo;
	kms_envelope_decrypt_opts dopt;
	kms_encryptor *e = NULL;
	kms_decryptor *d = NULL;
	kms_error_info ei;
	struct progress pg;
	uint8_t *buf = NULL;
	ssize_t n;
	int r;

	memset(&ei, 0, sizeof(ei));
	memset(&pg, 0, sizeof(pg));
	pg.on = !a->quiet && isatty(2) && size >= PROGRESS_MIN;
	pg.total = size;
	pg.start = now_s();
	if ((buf = malloc(CHUNK)) == NULL) {
		fprintf(stderr, "kmsctl: out of memory\n");
		return EXIT_OTHER;
	}
	if (a->encrypt) {
		memset(&eo, 0, sizeof(eo));
		eo.algorithm = j->suite;
		eo.frame_length = (uint32_t)a->frame_length;
		eo.context = j->ctx;
		eo.grant_tokens = a->grant_tokens;
		eo.plaintext_length = size;
		r = kms_encryptor_new(j->c, a->key_id, &eo, write_all, &out,
		    &e, &ei);
	} else {
		memset(&dopt, 0, sizeof(dopt));
		dopt.required = j->ctx;
		dopt.grant_tokens = a->grant_tokens;
		r = kms_decryptor_new(j->c, &dopt, write_all, &out, &d, &ei);
	}
	while (r == 0) {
		if ((n = read(in, buf, CHUNK)) < 0) {
			if (errno == EINTR) {
				continue;
			}
			snprintf(ei.message, sizeof(ei.message), "reading: %s",
			    strerror(errno));
			r = KMS_EIO;
			break;
		}
		if (n == 0) {
			r = a->encrypt ? kms_encryptor_final(e, &ei) :
			    kms_decryptor_final(d, NULL, &ei);
			break;
		}
		r = a->encrypt ? kms_encryptor_update(e, buf, (size_t)n, &ei) :
		    kms_decryptor_update(d, buf, (size_t)n, &ei);
		pg.done += (uint64_t)n;
		progress_show(&pg, 0);
	}
	if (pg.on) {
		progress_show(&pg, 1);
	}
	kms_encryptor_free(e);
	kms_decryptor_free(d);
	free(buf);
	return r == 0 ? 0 : failed(j, path, r, &ei);
}

/* One input file (or "-") to one output path (or "-"). */
static int
one_file(const struct job *j, const char *in_path, const char *out_path)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	struct stat st;
	uint64_t size = 0;
	int in = 0, out = 1, r;

	if (strcmp(in_path, "-") != 0) {
		if ((in = open(in_path, O_RDONLY | O_CLOEXEC)) < 0) {
			fprintf(stderr, "kmsctl: %s: %s\n", in_path,
			    strerror(errno));
			return EXIT_OTHER;
		}
	}
	if (fstat(in, &st) == 0 && S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	}
	if (strcmp(out_path, "-") == 0) {
		r = process(j, in, 1, size, in_path);
		goto out;
	}
	/* The temporary file sits beside the target, so the rename is
	 * atomic on the same file system. */
	snprintf(dir, sizeof(dir), "%s", out_path);
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		snprintf(tmp, sizeof(tmp), ".%s.kmsctl-XXXXXX", out_path);
	} else {
		*slash = '\0';
		if (snprintf(tmp, sizeof(tmp), "%s/.%s.kmsctl-XXXXXX", dir,
		    slash + 1) >= (int)sizeof(tmp)) {
			r = usage("argument --output: path too long: %s",
			    out_path);
			goto out;
		}
	}
	if ((out = mkostemp(tmp, O_CLOEXEC)) < 0) {
		fprintf(stderr, "kmsctl: %s: %s\n", out_path, strerror(errno));
		r = EXIT_OTHER;
		goto out;
	}
	r = process(j, in, out, size, in_path);
	if (r == 0 && fsync(out) != 0) {
		fprintf(stderr, "kmsctl: %s: %s\n", out_path, strerror(errno));
		r = EXIT_OTHER;
	}
	if (close(out) != 0 && r == 0) {
		fprintf(stderr, "kmsctl: %s: %s\n", out_path, strerror(errno));
		r = EXIT_OTHER;
	}
	if (r == 0 && rename(tmp, out_path) != 0) {
		fprintf(stderr, "kmsctl: %s: %s\n", out_path, strerror(errno));
		r = EXIT_OTHER;
	}
	if (r != 0) {
		unlink(tmp);
	}
 out:
	if (in != 0) {
		close(in);
	}
	return r;
}

static int
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *
suffix(const struct envelope_args *a)
{
	if (a->suffix != NULL) {
		return a->suffix;
	}
	return a->encrypt ? ".encrypted" : ".decrypted";
}

/* Every regular file under in_dir, mirrored under out_dir. */
static int
tree(const struct job *j, const char *in_dir, const char *out_dir)
{
	char ip[PATH_MAX], op[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0, r1;

	if ((d = opendir(in_dir)) == NULL) {
		fprintf(stderr, "kmsctl: %s: %s\n", in_dir, strerror(errno));
		return EXIT_OTHER;
	}
	if (mkdir(out_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "kmsctl: %s: %s\n", out_dir, strerror(errno));
		closedir(d);
		return EXIT_OTHER;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (snprintf(ip, sizeof(ip), "%s/%s", in_dir, de->d_name) >=
		    (int)sizeof(ip) || lstat(ip, &st) != 0) {
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			snprintf(op, sizeof(op), "%s/%s", out_dir, de->d_name);
			r1 = tree(j, ip, op);
		} else if (S_ISREG(st.st_mode)) {
			snprintf(op, sizeof(op), "%s/%s%s", out_dir,
			    de->d_name, suffix(j->a));
			r1 = one_file(j, ip, op);
		} else {
			continue;	/* links, devices: not followed */
		}
		/* Go on with the others; report the first failure. */
		if (r1 != 0 && r == 0) {
			r = r1;
		}
	}
	closedir(d);
	return r;
}

static int
parse_algorithm(const char *s, uint16_t *suite)
{
	if (s == NULL || strcmp(s, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY") == 0 ||
	    strcasecmp(s, "0x0478") == 0) {
		*suite = KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY;
		return 0;
	}
	if (strcmp(s, "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384") == 0 ||
	    strcasecmp(s, "0x0578") == 0) {
		*suite = KMS_ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384;
		return 0;
	}
	return -1;
}

int
envelope_run(kms_client *c, const struct envelope_args *a)
{
	kms_context_pair pairs[MAX_CONTEXT];
	char *hold[MAX_CONTEXT];
	char op[PATH_MAX];
	struct job j;
	const char *base;
	int i, r;

	memset(&j, 0, sizeof(j));
	memset(hold, 0, sizeof(hold));
	j.a = a;
	j.c = c;
	if (a->encrypt && parse_algorithm(a->algorithm, &j.suite) != 0) {
		return usage("argument --algorithm: %s is not "
		    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY or "
		    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
		    a->algorithm);
	}
	if (a->frame_length < 0 || a->frame_length > KMS_FRAME_LENGTH_MAX) {
		return usage("argument --frame-length: %s", "1 to 4194304");
	}
	if (a->ncontext > MAX_CONTEXT) {
		return usage("argument --encryption-context: %s",
		    "at most 64 pairs");
	}
	for (i = 0; i < a->ncontext; i++) {
		char *eq;
		if ((hold[i] = strdup(a->context[i])) == NULL ||
		    (eq = strchr(hold[i], '=')) == NULL || eq == hold[i]) {
			r = usage("argument --encryption-context: expected "
			    "key=value, got '%s'", a->context[i]);
			goto out;
		}
		*eq = '\0';
		pairs[i].key = hold[i];
		pairs[i].value = eq + 1;
	}
	j.ctx.pairs = pairs;
	j.ctx.npairs = (size_t)a->ncontext;
	if (strcmp(a->input, "-") != 0 && is_dir(a->input)) {
		if (!a->recursive) {
			r = usage("argument --input: %s is a directory (add "
			    "--recursive)", a->input);
			goto out;
		}
		if (strcmp(a->output, "-") == 0) {
			r = usage("argument --output: %s", "a directory input "
			    "needs an output directory");
			goto out;
		}
		r = tree(&j, a->input, a->output);
		goto out;
	}
	if (strcmp(a->output, "-") != 0 && is_dir(a->output)) {
		/* Into a directory: the input's name and the suffix. */
		if (strcmp(a->input, "-") == 0) {
			r = usage("argument --output: %s", "stdin needs an "
			    "output file name, not a directory");
			goto out;
		}
		base = strrchr(a->input, '/');
		base = base != NULL ? base + 1 : a->input;
		snprintf(op, sizeof(op), "%s/%s%s", a->output, base,
		    suffix(a));
		r = one_file(&j, a->input, op);
		goto out;
	}
	r = one_file(&j, a->input, a->output);
 out:
	for (i = 0; i < MAX_CONTEXT; i++) {
		free(hold[i]);
	}
	return r;
}
