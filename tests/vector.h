/*
 * vector.h — read known-answer vectors from the files in tests/vectors/.
 *
 * A vector file holds "name = value" lines and '#' comments.  Tests run
 * from the repository root (tests/run-all does so).  Header-only so that
 * each test binary stays one source file plus testutil.o.
 */
#ifndef KMS_TESTS_VECTOR_H
#define KMS_TESTS_VECTOR_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Copy the value of name into out (NUL-terminated).  0, or -1 if absent. */
static inline int
vec_get(const char *file, const char *name, char *out, size_t outsz)
{
	char path[512], line[4096];
	size_t nlen = strlen(name), vlen;
	FILE *f;
	int r = -1;

	snprintf(path, sizeof(path), "tests/vectors/%s", file);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '#' || strncmp(line, name, nlen) != 0 ||
		    strncmp(line + nlen, " = ", 3) != 0) {
			continue;
		}
		vlen = strcspn(line + nlen + 3, "\r\n");
		if (vlen + 1 > outsz) {
			break;
		}
		memcpy(out, line + nlen + 3, vlen);
		out[vlen] = '\0';
		r = 0;
		break;
	}
	fclose(f);
	return r;
}

/* Hex value of name into out; returns the byte count or -1. */
static inline long
vec_get_hex(const char *file, const char *name, uint8_t *out, size_t outsz)
{
	char hex[4096];
	size_t i, n;
	unsigned int b;

	if (vec_get(file, name, hex, sizeof(hex)) != 0) {
		return -1;
	}
	n = strlen(hex);
	if (n % 2 != 0 || n / 2 > outsz) {
		return -1;
	}
	for (i = 0; i < n / 2; i++) {
		if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
			return -1;
		}
		out[i] = (uint8_t)b;
	}
	return (long)(n / 2);
}

#endif
