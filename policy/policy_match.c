/*
 * policy_match.c — the comparisons conditions and patterns are built on:
 * wildcard globs, CIDR blocks, ISO 8601 dates, numbers.
 *
 * All locale-independent (policy text is not localised) and without
 * allocation.  Dates use the proleptic Gregorian calendar in UTC, by
 * Howard Hinnant's days-from-civil algorithm, so no libc time zone state
 * is read.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "policy/policy_int.h"

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

int
ascii_casecmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a;
	const unsigned char *y = (const unsigned char *)b;

	while (*x != '\0' && lower(*x) == lower(*y)) {
		x++;
		y++;
	}
	return lower(*x) - lower(*y);
}

/* Step over one UTF-8 character (a '?' matches a character, not a byte). */
static const char *
next_char(const char *t)
{
	t++;
	while ((*(const unsigned char *)t & 0xc0) == 0x80) {
		t++;
	}
	return t;
}

/*
 * '*' matches any run (also empty), '?' one character.  Iterative with a
 * single backtrack point, so it is O(len(pat) * len(s)) at worst and never
 * recursive.
 */
int
glob_match(const char *pat, const char *s, int icase)
{
	const char *p = pat, *t = s, *star = NULL, *mark = NULL;

	while (*t != '\0') {
		if (*p == '*') {
			star = ++p;
			mark = t;
			continue;
		}
		if (*p == '?') {
			p++;
			t = next_char(t);
			continue;
		}
		if (*p != '\0' && (icase ? lower((unsigned char)*p) ==
		    lower((unsigned char)*t) : *p == *t)) {
			p++;
			t++;
			continue;
		}
		if (star == NULL) {
			return 0;
		}
		p = star;
		mark = next_char(mark);
		t = mark;
	}
	while (*p == '*') {
		p++;
	}
	return *p == '\0';
}

/* An address; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. */
int
ip_parse(const char *s, struct cidr *out)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	uint8_t a6[16];

	memset(out, 0, sizeof(*out));
	if (s == NULL) {
		return -1;
	}
	if (inet_pton(AF_INET, s, out->addr) == 1) {
		out->family = 4;
		out->prefix = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a6) == 1) {
		if (memcmp(a6, mapped, sizeof(mapped)) == 0) {
			memcpy(out->addr, a6 + 12, 4);
			out->family = 4;
			out->prefix = 32;
		} else {
			memcpy(out->addr, a6, 16);
			out->family = 6;
			out->prefix = 128;
		}
		return 0;
	}
	return -1;
}

/* "a.b.c.d/n", "x::y/n" or a bare address (a /32 or /128). */
int
cidr_parse(const char *s, struct cidr *out)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash;
	unsigned long bits;
	char *end;
	size_t n;

	if (s == NULL) {
		return -1;
	}
	if ((slash = strchr(s, '/')) == NULL) {
		return ip_parse(s, out);
	}
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(addr) || !isdigit((unsigned char)slash[1])) {
		return -1;
	}
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (ip_parse(addr, out) != 0 || strlen(slash + 1) > 3) {
		return -1;
	}
	bits = strtoul(slash + 1, &end, 10);
	if (*end != '\0') {
		return -1;
	}
	if (strchr(addr, ':') != NULL && out->family == 4) {
		/* ::ffff:a.b.c.d/n counts IPv6 bits. */
		if (bits < 96 || bits > 128) {
			return -1;
		}
		bits -= 96;
	}
	if (bits > out->prefix) {
		return -1;
	}
	out->prefix = (unsigned int)bits;
	return 0;
}

int
cidr_contains(const struct cidr *net, const struct cidr *ip)
{
	unsigned int full, rem;

	if (net->family != ip->family) {
		return 0;
	}
	full = net->prefix / 8;
	rem = net->prefix % 8;
	if (memcmp(net->addr, ip->addr, full) != 0) {
		return 0;
	}
	if (rem != 0) {
		uint8_t mask = (uint8_t)(0xff << (8 - rem));

		if ((net->addr[full] & mask) != (ip->addr[full] & mask)) {
			return 0;
		}
	}
	return 1;
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* n decimal digits at *s into *v; advances *s.  0 or -1. */
static int
digits(const char **s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*s)[i])) {
			return -1;
		}
		*v = *v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	return 0;
}

static int
days_in_month(int y, int m)
{
	static const int dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dm[m - 1];
}

/*
 * Epoch seconds ("1700000000") or ISO 8601: YYYY-MM-DD, optionally
 * followed by THH:MM[:SS[.fraction]] and Z or ±HH[:]MM (UTC if none).
 * Fractions of a second are dropped.
 */
int
date_parse(const char *s, int64_t *out)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
	size_t n;
	int64_t t;

	if (s == NULL || *s == '\0') {
		return -1;
	}
	n = strspn(s, "0123456789");
	if (n == strlen(s)) {
		if (n > 12) {
			return -1;
		}
		*out = strtoll(s, NULL, 10);
		return 0;
	}
	if (digits(&s, 4, &y) != 0 || *s++ != '-' ||
	    digits(&s, 2, &mo) != 0 || *s++ != '-' ||
	    digits(&s, 2, &d) != 0) {
		return -1;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
		return -1;
	}
	if (*s == 'T' || *s == 't') {
		s++;
		if (digits(&s, 2, &h) != 0 || *s++ != ':' ||
		    digits(&s, 2, &mi) != 0) {
			return -1;
		}
		if (*s == ':') {
			s++;
			if (digits(&s, 2, &sec) != 0) {
				return -1;
			}
			if (*s == '.' || *s == ',') {
				s++;
				if (!isdigit((unsigned char)*s)) {
					return -1;
				}
				s += strspn(s, "0123456789");
			}
		}
		if (h > 23 || mi > 59 || sec > 60) {
			return -1;
		}
		if (*s == 'Z' || *s == 'z') {
			s++;
		} else if (*s == '+' || *s == '-') {
			sign = *s++ == '-' ? -1 : 1;
			if (digits(&s, 2, &oh) != 0) {
				return -1;
			}
			if (*s == ':') {
				s++;
			}
			if (digits(&s, 2, &om) != 0 || oh > 23 || om > 59) {
				return -1;
			}
		}
	}
	if (*s != '\0') {
		return -1;
	}
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	    h * 3600 + mi * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*out = t;
	return 0;
}

void
date_format(int64_t t, char *buf, size_t bufsz)
{
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	int64_t rem = t - days * 86400, y;
	unsigned m, d;

	civil_from_days(days, &y, &m, &d);
	snprintf(buf, bufsz, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y,
	    m, d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

/* [-+]?digits[.digits][e[-+]digits]; no hex, inf or nan. */
int
num_parse(const char *s, double *out)
{
	const char *p = s;
	char *end;
	size_t n;

	if (s == NULL || strlen(s) > 64) {
		return -1;
	}
	if (*p == '-' || *p == '+') {
		p++;
	}
	if ((n = strspn(p, "0123456789")) == 0) {
		return -1;
	}
	p += n;
	if (*p == '.') {
		p++;
		if ((n = strspn(p, "0123456789")) == 0) {
			return -1;
		}
		p += n;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+') {
			p++;
		}
		if ((n = strspn(p, "0123456789")) == 0) {
			return -1;
		}
		p += n;
	}
	if (*p != '\0') {
		return -1;
	}
	*out = strtod(s, &end);
	return *end == '\0' ? 0 : -1;
}
