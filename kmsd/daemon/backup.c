/*
 * backup.c — see backup.h.
 *
 * Consistency: the token's files are copied and the store snapshot taken
 * while the HSM layer lets no token object be created or destroyed
 * (hsm_token_freeze), so a resident key in the snapshot has its object in
 * the copy and the copy has no object the snapshot lacks (which start-up
 * reconciliation would destroy anyway).  In wrapped mode the token holds
 * only the domain key; the wrapped versions are in the store.  Requests
 * go on meanwhile; only those creating a resident key wait.
 *
 * Paths in a manifest are untrusted on restore: relative, no "." or ".."
 * component, regular files only; anything else refuses the backup.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "kms.h"
#include "common/err.h"
#include "common/io.h"
#include "common/log.h"
#include "kmsd/daemon/backup.h"
#include "kmsd/kmsd.h"

#define BACKUP_MANIFEST_MAX (16u << 20)	/* bytes of manifest.json read */
#define BACKUP_FILES_MAX 1000000	/* files one backup may list */
#define COPY_BUF 65536

static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return KMS_EVALIDATION;
}

static int
join(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s/%s", a, b);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* SHA-256 of a file as hex, and its size. */
static int
hash_file(const char *path, char hex[65], uint64_t *size)
{
	unsigned char buf[COPY_BUF], md[32];
	EVP_MD_CTX *ctx = NULL;
	unsigned int mdlen = 0;
	uint64_t n = 0;
	ssize_t k;
	int fd = -1, r = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
	    (ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		goto out;
	}
	while ((k = read(fd, buf, sizeof(buf))) != 0) {
		if (k < 0) {
			if (errno == EINTR) {
				continue;
			}
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)k) != 1) {
			goto out;
		}
		n += (uint64_t)k;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		goto out;
	}
	for (unsigned int i = 0; i < 32; i++) {
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	}
	*size = n;
	r = 0;
 out:
	EVP_MD_CTX_free(ctx);
	if (fd >= 0) {
		close(fd);
	}
	return r;
}

/* Copy a regular file to a new file of the given mode, on disk. */
static int
copy_file(const char *src, const char *dst, mode_t mode)
{
	unsigned char buf[COPY_BUF];
	int in = -1, out = -1, r = -1;
	ssize_t k;

	if ((in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
	    (out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    mode)) < 0) {
		goto out;
	}
	while ((k = read(in, buf, sizeof(buf))) != 0) {
		if (k < 0) {
			if (errno == EINTR) {
				continue;
			}
			goto out;
		}
		if (io_write_all(out, buf, (size_t)k) != 0) {
			goto out;
		}
	}
	if (fsync(out) != 0) {
		goto out;
	}
	r = 0;
 out:
	if (in >= 0) {
		close(in);
	}
	if (out >= 0 && close(out) != 0) {
		r = -1;
	}
	return r;
}

/* Copy a tree of directories and regular files (no links) under dst. */
static int
copy_tree(const char *src, const char *dst, char *err, size_t errlen)
{
	char s[PATH_MAX], d[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int r = 0;

	if (mkdir(dst, 0700) != 0 && errno != EEXIST) {
		return fail(err, errlen, "%s: %s", dst, strerror(errno));
	}
	if ((dir = opendir(src)) == NULL) {
		return fail(err, errlen, "%s: %s", src, strerror(errno));
	}
	while (r == 0 && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (join(s, sizeof(s), src, de->d_name) != 0 ||
		    join(d, sizeof(d), dst, de->d_name) != 0) {
			r = fail(err, errlen, "%s: path too long", src);
		} else if (lstat(s, &st) != 0) {
			r = fail(err, errlen, "%s: %s", s, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			r = copy_tree(s, d, err, errlen);
		} else if (S_ISREG(st.st_mode)) {
			if (copy_file(s, d, 0600) != 0) {
				r = fail(err, errlen, "copying %s: %s", s,
				    strerror(errno));
			}
		} else {
			r = fail(err, errlen, "%s: not a file or directory", s);
		}
	}
	closedir(dir);
	return r;
}

/*
 * Every regular file under root/rel (manifest aside), as {"path", "bytes",
 * "sha256"} appended to files; anything else is an error.
 */
static int
list_tree(const char *root, const char *rel, json_t *files, uint64_t *bytes,
    char *err, size_t errlen)
{
	char dirpath[PATH_MAX], path[PATH_MAX], sub[PATH_MAX], hex[65];
	struct dirent *de;
	struct stat st;
	uint64_t size;
	DIR *dir;
	int r = 0;

	if ((rel[0] == '\0' ? snprintf(dirpath, sizeof(dirpath), "%s", root) :
	    snprintf(dirpath, sizeof(dirpath), "%s/%s", root, rel)) >=
	    (int)sizeof(dirpath) || (dir = opendir(dirpath)) == NULL) {
		return fail(err, errlen, "%s: cannot read", dirpath);
	}
	while (r == 0 && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    (rel[0] == '\0' && strcmp(de->d_name,
		    BACKUP_MANIFEST) == 0)) {
			continue;
		}
		if ((rel[0] == '\0' ? snprintf(sub, sizeof(sub), "%s",
		    de->d_name) : snprintf(sub, sizeof(sub), "%s/%s", rel,
		    de->d_name)) >= (int)sizeof(sub) ||
		    join(path, sizeof(path), root, sub) != 0) {
			r = fail(err, errlen, "%s: path too long", dirpath);
		} else if (lstat(path, &st) != 0) {
			r = fail(err, errlen, "%s: %s", sub, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			r = list_tree(root, sub, files, bytes, err, errlen);
		} else if (!S_ISREG(st.st_mode)) {
			r = fail(err, errlen, "%s: not a regular file", sub);
		} else if (json_array_size(files) >= BACKUP_FILES_MAX) {
			r = fail(err, errlen, "more than %d files",
			    BACKUP_FILES_MAX);
		} else if (hash_file(path, hex, &size) != 0) {
			r = fail(err, errlen, "%s: cannot read", sub);
		} else if (json_array_append_new(files, json_pack(
		    "{s:s, s:I, s:s}", "path", sub, "bytes", (json_int_t)size,
		    "sha256", hex)) != 0) {
			r = fail(err, errlen, "out of memory");
		} else {
			*bytes += size;
		}
	}
	closedir(dir);
	return r;
}

/* directories.tokendir from a SoftHSM2 configuration file, or -1. */
static int
token_dir(const char *conf, char *out, size_t len)
{
	char line[PATH_MAX + 64];
	FILE *f;
	int r = -1;

	if ((f = fopen(conf, "re")) == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *v, *e;
		while (*p == ' ' || *p == '\t') {
			p++;
		}
		if (strncmp(p, "directories.tokendir", 20) != 0 ||
		    (v = strchr(p, '=')) == NULL) {
			continue;
		}
		for (v++; *v == ' ' || *v == '\t'; v++) {
		}
		e = v + strcspn(v, "\r\n");
		while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
			e--;
		}
		if (e > v && (size_t)(e - v) < len) {
			memcpy(out, v, (size_t)(e - v));
			out[e - v] = '\0';
			r = 0;
		}
	}
	fclose(f);
	return r;
}

/* An absolute directory that does not exist (made 0700) or is empty. */
static int
fresh_dir(const char *dir, int need_private, char *err, size_t errlen)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int empty = 1;

	if (dir[0] != '/') {
		return fail(err, errlen, "%s: give an absolute path", dir);
	}
	if (mkdir(dir, 0700) == 0) {
		return 0;
	}
	if (errno != EEXIST) {
		return fail(err, errlen, "%s: %s", dir, strerror(errno));
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		return fail(err, errlen, "%s: not a directory", dir);
	}
	if ((d = opendir(dir)) == NULL) {
		return fail(err, errlen, "%s: %s", dir, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	if (!empty) {
		return fail(err, errlen, "%s: not empty; give a new or empty "
		    "directory", dir);
	}
	if (need_private && (st.st_mode & 077) != 0) {
		return fail(err, errlen, "%s: mode %03o; PINs go only into a "
		    "directory of mode 0700 (chmod 700 %s)", dir,
		    (unsigned)(st.st_mode & 0777), dir);
	}
	return 0;
}

/* A new file (0600) holding j, on disk. */
static int
write_json(const json_t *j, const char *path)
{
	int fd, r = -1;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) < 0) {
		return -1;
	}
	if (json_dumpfd(j, fd, JSON_INDENT(1) | JSON_SORT_KEYS) == 0 &&
	    write(fd, "\n", 1) == 1 && fsync(fd) == 0) {
		r = 0;
	}
	if (close(fd) != 0) {
		r = -1;
	}
	return r;
}

static void
utc_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
backup_take(struct worker *w, const char *dir, int include_pins,
    struct backup_result *res, char *err, size_t errlen)
{
	struct kmsd *d = w->d;
	char path[PATH_MAX], tokdir[PATH_MAX], tmp[PATH_MAX], when[32];
	json_t *files = NULL, *m = NULL;
	struct backup_result out = { 0 };
	int r, frozen = 0;

	if ((r = fresh_dir(dir, include_pins, err, errlen)) != 0) {
		return r;
	}
	out.token_included = d->cfg.softhsm2_conf[0] != '\0' &&
	    token_dir(d->cfg.softhsm2_conf, tokdir, sizeof(tokdir)) == 0;

	/* The token and the store, as of one moment. */
	hsm_token_freeze(d->hsm);
	frozen = 1;
	if (join(path, sizeof(path), dir, "kmsd.db") != 0) {
		r = fail(err, errlen, "%s: path too long", dir);
		goto out;
	}
	if ((r = w->st->ops->backup(w->st, path, &out.keys)) != 0) {
		snprintf(err, errlen, "the key store could not be copied "
		    "(see kmsd's log)");
		goto out;
	}
	if (out.token_included) {
		if (join(path, sizeof(path), dir, "tokens") != 0) {
			r = fail(err, errlen, "%s: path too long", dir);
			goto out;
		}
		if ((r = copy_tree(tokdir, path, err, errlen)) != 0) {
			goto out;
		}
	}
	hsm_token_thaw(d->hsm);
	frozen = 0;

	if (out.token_included && (join(path, sizeof(path), dir,
	    "softhsm2.conf") != 0 || copy_file(d->cfg.softhsm2_conf, path,
	    0600) != 0)) {
		r = fail(err, errlen, "copying %s: %s", d->cfg.softhsm2_conf,
		    strerror(errno));
		goto out;
	}
	if (d->cfg.config_path[0] != '\0' && (join(path, sizeof(path), dir,
	    "kmsd.conf") != 0 || copy_file(d->cfg.config_path, path,
	    0600) != 0)) {
		r = fail(err, errlen, "copying %s: %s", d->cfg.config_path,
		    strerror(errno));
		goto out;
	}
	if (include_pins) {
		if (join(path, sizeof(path), dir, "user.pin") != 0 ||
		    copy_file(d->cfg.pin_file, path, 0600) != 0) {
			r = fail(err, errlen, "copying the PIN file: %s",
			    strerror(errno));
			goto out;
		}
		if (join(tmp, sizeof(tmp), d->cfg.state_dir, "so.pin") == 0 &&
		    access(tmp, R_OK) == 0 && (join(path, sizeof(path), dir,
		    "so.pin") != 0 || copy_file(tmp, path, 0600) != 0)) {
			r = fail(err, errlen, "copying so.pin: %s",
			    strerror(errno));
			goto out;
		}
	}

	/* The manifest last: a backup without one is unfinished. */
	if ((files = json_array()) == NULL) {
		r = fail(err, errlen, "out of memory");
		goto out;
	}
	if ((r = list_tree(dir, "", files, &out.bytes, err, errlen)) != 0) {
		goto out;
	}
	out.files = json_array_size(files) + 1;
	utc_now(when, sizeof(when));
	m = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:b, s:b, s:O}",
	    "format", BACKUP_FORMAT, "kmsd_version", KMS_VERSION,
	    "created", when, "state_dir", d->cfg.state_dir,
	    "key_count", (json_int_t)out.keys,
	    "key_storage", d->cfg.key_storage == STORAGE_RESIDENT ?
	    "resident" : "wrapped", "token_label", d->cfg.token_label,
	    "token_included", out.token_included, "pins_included",
	    include_pins, "files", files);
	if (m == NULL || join(tmp, sizeof(tmp), dir, BACKUP_MANIFEST ".tmp")
	    != 0 || join(path, sizeof(path), dir, BACKUP_MANIFEST) != 0 ||
	    write_json(m, tmp) != 0 || rename(tmp, path) != 0) {
		r = fail(err, errlen, "writing the manifest: %s",
		    strerror(errno));
		goto out;
	}
	{
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			(void)fsync(fd);
			close(fd);
		}
	}
	log_info("backup of %llu keys written to %s (%zu files, %llu bytes%s)",
	    (unsigned long long)out.keys, dir, out.files,
	    (unsigned long long)out.bytes, include_pins ?
	    ", PIN files included" : "");
	*res = out;
	r = 0;
 out:
	if (frozen) {
		hsm_token_thaw(d->hsm);
	}
	json_decref(files);
	json_decref(m);
	return r;
}

/* A manifest path: relative, plain components, no ".", "..", "//". */
static int
safe_relative(const char *p)
{
	const char *c = p;

	if (p[0] == '\0' || p[0] == '/' || strlen(p) >= PATH_MAX / 2) {
		return 0;
	}
	for (;;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.')) {
			return 0;
		}
		if (c[n] == '\0') {
			return 1;
		}
		c += n + 1;
	}
}

/* Make the directories leading to rel under root (0700). */
static int
make_parents(const char *root, const char *rel)
{
	char path[PATH_MAX];
	size_t base = strlen(root) + 1;

	if (join(path, sizeof(path), root, rel) != 0) {
		return -1;
	}
	for (char *p = path + base; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/* Rewrite a configuration file in place: a line starting with key gets
 * value; other lines have every old state directory replaced by new. */
static int
rewrite_conf(const char *path, const char *key, const char *value,
    const char *olddir, const char *newdir)
{
	char line[PATH_MAX * 2], tmp[PATH_MAX];
	FILE *in = NULL, *out = NULL;
	size_t oldlen = strlen(olddir);
	int r = -1, fd;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp) ||
	    (in = fopen(path, "re")) == NULL ||
	    (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0 || (out = fdopen(fd, "w")) == NULL) {
		goto out;
	}
	while (fgets(line, sizeof(line), in) != NULL) {
		const char *p = line;
		while (*p == ' ' || *p == '\t') {
			p++;
		}
		if (key != NULL && strncmp(p, key, strlen(key)) == 0) {
			fprintf(out, "%s = %s\n", key, value);
			continue;
		}
		for (p = line; *p != '\0';) {
			const char *hit = oldlen > 1 ? strstr(p, olddir) : NULL;
			if (hit == NULL) {
				fputs(p, out);
				break;
			}
			fwrite(p, 1, (size_t)(hit - p), out);
			fputs(newdir, out);
			p = hit + oldlen;
		}
	}
	if (fflush(out) != 0 || fsync(fileno(out)) != 0) {
		goto out;
	}
	r = rename(tmp, path);
 out:
	if (in != NULL) {
		fclose(in);
	}
	if (out != NULL) {
		fclose(out);
	}
	return r;
}

int
backup_restore(const char *dir, const char *state_dir, char *err,
    size_t errlen)
{
	char path[PATH_MAX], dst[PATH_MAX], hex[65];
	json_t *m = NULL, *files, *f, *seen = NULL, *listed = NULL;
	json_error_t je;
	const char *olddir;
	struct stat st;
	uint64_t size, total = 0;
	size_t i;
	int r = KMS_EVALIDATION;

	/* 1. The manifest, bounded, of our format. */
	if (join(path, sizeof(path), dir, BACKUP_MANIFEST) != 0 ||
	    lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		return fail(err, errlen, "%s: no %s: not a kmsd backup, or "
		    "an unfinished one", dir, BACKUP_MANIFEST);
	}
	if ((uint64_t)st.st_size > BACKUP_MANIFEST_MAX ||
	    (m = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		return fail(err, errlen, "%s: unreadable manifest (%s)", path,
		    st.st_size > BACKUP_MANIFEST_MAX ? "too large" : je.text);
	}
	files = json_object_get(m, "files");
	olddir = json_string_value(json_object_get(m, "state_dir"));
	if (!json_is_string(json_object_get(m, "format")) ||
	    strcmp(json_string_value(json_object_get(m, "format")),
	    BACKUP_FORMAT) != 0 || !json_is_array(files) || olddir == NULL ||
	    json_array_size(files) > BACKUP_FILES_MAX) {
		r = fail(err, errlen, "%s: not a %s manifest", path,
		    BACKUP_FORMAT);
		goto out;
	}

	/* 2. Every file as the manifest says, and no other. */
	if ((listed = json_object()) == NULL || (seen = json_array()) ==
	    NULL) {
		r = fail(err, errlen, "out of memory");
		goto out;
	}
	json_array_foreach(files, i, f) {
		const char *p = json_string_value(json_object_get(f, "path"));
		const char *sum = json_string_value(json_object_get(f,
		    "sha256"));
		json_t *b = json_object_get(f, "bytes");
		if (p == NULL || sum == NULL || !json_is_integer(b) ||
		    !safe_relative(p)) {
			r = fail(err, errlen, "%s: entry %zu is malformed",
			    path, i);
			goto out;
		}
		if (join(dst, sizeof(dst), dir, p) != 0 ||
		    lstat(dst, &st) != 0 || !S_ISREG(st.st_mode)) {
			r = fail(err, errlen, "backup damaged: %s is missing",
			    p);
			goto out;
		}
		if (hash_file(dst, hex, &size) != 0 ||
		    size != (uint64_t)json_integer_value(b) ||
		    strcmp(hex, sum) != 0) {
			r = fail(err, errlen, "backup damaged: %s differs "
			    "from the manifest (%s)", p,
			    size != (uint64_t)json_integer_value(b) ?
			    "size" : "SHA-256");
			goto out;
		}
		json_object_set_new(listed, p, json_true());
		total += size;
	}
	{
		uint64_t ignored = 0;
		if ((r = list_tree(dir, "", seen, &ignored, err, errlen)) !=
		    0) {
			goto out;
		}
	}
	json_array_foreach(seen, i, f) {
		const char *p = json_string_value(json_object_get(f, "path"));
		if (json_object_get(listed, p) == NULL) {
			r = fail(err, errlen, "backup damaged: %s is not in "
			    "the manifest", p);
			goto out;
		}
	}

	/* 3. Copy into the new state directory. */
	if ((r = fresh_dir(state_dir, 0, err, errlen)) != 0) {
		goto out;
	}
	json_array_foreach(files, i, f) {
		const char *p = json_string_value(json_object_get(f, "path"));
		if (make_parents(state_dir, p) != 0 ||
		    join(path, sizeof(path), dir, p) != 0 ||
		    join(dst, sizeof(dst), state_dir, p) != 0 ||
		    copy_file(path, dst, 0600) != 0) {
			r = fail(err, errlen, "writing %s/%s: %s", state_dir,
			    p, strerror(errno));
			goto out;
		}
	}
	if (join(dst, sizeof(dst), state_dir, "softhsm2.conf") == 0 &&
	    access(dst, F_OK) == 0) {
		char tok[PATH_MAX];
		if (join(tok, sizeof(tok), state_dir, "tokens") != 0 ||
		    rewrite_conf(dst, "directories.tokendir", tok, olddir,
		    state_dir) != 0) {
			r = fail(err, errlen, "%s: cannot rewrite", dst);
			goto out;
		}
	}
	if (join(dst, sizeof(dst), state_dir, "kmsd.conf") == 0 &&
	    access(dst, F_OK) == 0 && rewrite_conf(dst, "state_dir",
	    state_dir, olddir, state_dir) != 0) {
		r = fail(err, errlen, "%s: cannot rewrite", dst);
		goto out;
	}
	printf("kmsd: restored %lld keys (%zu files, %llu bytes) from %s into "
	    "%s\n", (long long)json_integer_value(json_object_get(m,
	    "key_count")), json_array_size(files), (unsigned long long)total,
	    dir, state_dir);
	if (!json_is_true(json_object_get(m, "pins_included"))) {
		printf("kmsd: the backup holds no PIN files: put the token's "
		    "user PIN in %s/user.pin (mode 0600) before starting "
		    "kmsd\n", state_dir);
	}
	r = 0;
 out:
	json_decref(m);
	json_decref(seen);
	json_decref(listed);
	return r;
}
