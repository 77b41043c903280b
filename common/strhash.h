/*
 * strhash.h — a string's hash for the daemon's small in-memory tables
 * (GetKeyLastUsage's keys in kmsd/audit/audit.c, the HTTP front end's
 * refusal counts per address): FNV-1a, 32 bits.  Not for anything an
 * attacker's collisions could hurt beyond a longer probe.
 */
#ifndef KMS_COMMON_STRHASH_H
#define KMS_COMMON_STRHASH_H

static inline unsigned
str_hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s != '\0') {
		h = (h ^ (unsigned char)*s++) * 16777619u;
	}
	return h;
}

#endif
