/*
 * hex.h — one hex digit's value, for the parsers in common/ (key ids in
 * blob.c, \u escapes in json.c).
 */
#ifndef KMS_COMMON_HEX_H
#define KMS_COMMON_HEX_H

/* 0..15, or -1 when c is not a hex digit (either case). */
static inline int
hex_value(int c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

#endif
