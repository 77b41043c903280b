/*
 * be.h — big-endian integers in byte buffers, for the formats in common/
 * (the ciphertext blob, SP frames) and their users.
 */
#ifndef KMS_COMMON_BE_H
#define KMS_COMMON_BE_H

#include <stdint.h>

static inline uint32_t
get_u32_be(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void
put_u32_be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint64_t
get_u64_be(const uint8_t *p)
{
	return (uint64_t)get_u32_be(p) << 32 | get_u32_be(p + 4);
}

static inline void
put_u64_be(uint8_t *p, uint64_t v)
{
	put_u32_be(p, (uint32_t)(v >> 32));
	put_u32_be(p + 4, (uint32_t)v);
}

#endif
