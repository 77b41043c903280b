/*
 * input.c — kmsctl's inputs as the AWS CLI reads them: the usage error
 * line, whole files into locked memory, blob parameters (base64,
 * fileb://PATH raw, file://PATH base64 text) and text parameters
 * (file://PATH).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kms.h"
#include "common/b64.h"
#include "common/secmem.h"
#include "tools/kmsctl/kmsctl.h"

/* ------------------------------------------------------------ usage */

static void (*usage_sink)(const char *msg);

void
usage_error_sink(void (*fn)(const char *msg))
{
	usage_sink = fn;
}

void
usage_error(const char *fmt, ...)
{
	char msg[USAGE_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	if (usage_sink != NULL) {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		usage_sink(msg);
		return;
	}
	fprintf(stderr, "\nusage: kmsctl [options] <command> [parameters]\n"
	    "To see help text, you can run:\n\n"
	    "  kmsctl help\n  kmsctl <command> help\n\n"
	    "kmsctl: error: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------ inputs */

/* Read a whole file (at most INPUT_MAX bytes) into secure memory. */
int
read_file(const char *path, kms_secret *out, const char *opt)
{
	struct stat st;
	size_t cap, n = 0;
	uint8_t *buf;
	ssize_t got;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		usage_error("argument --%s: cannot read %s: %s", opt, path,
		    strerror(errno));
		return EXIT_USAGE;
	}
	cap = INPUT_MAX + 1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uintmax_t)st.st_size < cap) {
		cap = (size_t)st.st_size + 1;
	}
	if ((buf = secure_alloc(cap)) == NULL) {
		close(fd);
		fprintf(stderr, "kmsctl: out of locked memory\n");
		return EXIT_OTHER;
	}
	while (n < cap && (got = read(fd, buf + n, cap - n)) != 0) {
		if (got < 0) {
			if (errno == EINTR) {
				continue;
			}
			usage_error("argument --%s: cannot read %s: %s", opt,
			    path, strerror(errno));
			secure_free(buf, cap);
			close(fd);
			return EXIT_USAGE;
		}
		n += (size_t)got;
	}
	close(fd);
	if (n > INPUT_MAX) {
		usage_error("argument --%s: %s is larger than %d bytes", opt,
		    path, INPUT_MAX);
		secure_free(buf, cap);
		return EXIT_USAGE;
	}
	buf[n] = '\0';		/* text users may rely on it */
	out->data = buf;
	out->len = n;
	return 0;
}

/* Free what read_file or load_blob produced (wipes). */
void
input_free(kms_secret *s)
{
	kms_secret_free(s);
}

static int
decode_b64(const char *text, size_t len, kms_secret *out, const char *opt)
{
	size_t max = B64_DECODED_MAX(len), n = 0;
	uint8_t *buf = NULL;

	if (max > 0 && (buf = secure_alloc(max)) == NULL) {
		fprintf(stderr, "kmsctl: out of locked memory\n");
		return EXIT_OTHER;
	}
	if (b64_decode(text, len, buf, max, &n) != 0) {
		secure_free(buf, max);
		usage_error("argument --%s: Invalid base64 (a plain value is "
		    "base64, as in AWS CLI v2; use fileb://PATH for raw bytes)",
		    opt);
		return EXIT_USAGE;
	}
	out->data = buf;
	out->len = n;
	return 0;
}

/* A blob parameter as AWS CLI v2 reads it. */
int
load_blob(const char *arg, kms_secret *out, const char *opt)
{
	kms_secret file = { NULL, 0 };
	size_t n;
	int r;

	if (strncmp(arg, "fileb://", 8) == 0) {
		return read_file(arg + 8, out, opt);
	}
	if (strncmp(arg, "file://", 7) == 0) {
		if ((r = read_file(arg + 7, &file, opt)) != 0) {
			return r;
		}
		n = file.len;
		while (n > 0 && isspace(file.data[n - 1])) {
			n--;
		}
		r = decode_b64((const char *)file.data, n, out, opt);
		input_free(&file);
		return r;
	}
	return decode_b64(arg, strlen(arg), out, opt);
}

/* A string parameter: file://PATH (or fileb://PATH) reads text into
 * *hold, freed by the caller with free(). */
int
load_text(const char *arg, const char **out, char **hold, const char *opt)
{
	kms_secret file = { NULL, 0 };
	size_t skip;
	int r;

	*hold = NULL;
	if (strncmp(arg, "file://", 7) == 0) {
		skip = 7;
	} else if (strncmp(arg, "fileb://", 8) == 0) {
		skip = 8;
	} else {
		*out = arg;
		return 0;
	}
	if ((r = read_file(arg + skip, &file, opt)) != 0) {
		return r;
	}
	if (memchr(file.data, '\0', file.len) != NULL) {
		usage_error("argument --%s: %s is not text", opt, arg + skip);
		input_free(&file);
		return EXIT_USAGE;
	}
	if ((*hold = strndup((const char *)file.data, file.len)) == NULL) {
		input_free(&file);
		return EXIT_OTHER;
	}
	input_free(&file);
	*out = *hold;
	return 0;
}
