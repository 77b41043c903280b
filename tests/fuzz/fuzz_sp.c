/*
 * fuzz_sp.c — libFuzzer harness for nng's SP framing (common/sp.c) as
 * kmsd's listener reads it: an 8-byte handshake, then request frames.
 *
 * The handshake is accepted for exactly one protocol and only in its one
 * canonical form.  The frames are parsed twice, once from the whole input
 * and once as a connection would receive them (in chunks whose sizes the
 * input's first byte picks): both must find the same frames and the same
 * end (complete, more needed, broken).  Every complete frame lies inside
 * the input, its payload within the limit, its backtrace 1-SP_TTL words
 * ending at the first word with the high bit set; every shorter prefix
 * of it asks for more bytes, never more than the frame.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/be.h"
#include "common/sp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The listener's limit is 1 MiB and more; a small one makes the fuzzer
 * reach "over the limit" with short inputs too. */
#define SMALL_MAX 300

#define FRAMES_MAX 4096

struct parse {
	size_t flen[FRAMES_MAX], idlen[FRAMES_MAX];
	size_t n;
	int end;		/* 0: more needed, -1: broken */
};

static void
check_hello(const uint8_t *p)
{
	uint8_t want[SP_HELLO_LEN];
	int req = sp_hello_is(p, SP_REQ0), rep = sp_hello_is(p, SP_REP0);

	if (req && rep) {
		abort();
	}
	sp_hello(want, SP_REQ0);
	if (req != (memcmp(p, want, SP_HELLO_LEN) == 0)) {
		abort();
	}
	sp_hello(want, SP_REP0);
	if (rep != (memcmp(p, want, SP_HELLO_LEN) == 0)) {
		abort();
	}
}

static void
check_frame(const uint8_t *p, size_t len, uint64_t max, size_t flen,
    size_t idlen)
{
	uint8_t hdr[SP_FRAME_HDR];
	uint64_t plen;
	size_t i, f2, id2;

	if (flen < SP_FRAME_HDR || flen > len || flen - SP_FRAME_HDR > max ||
	    idlen == 0 || idlen % SP_ID_LEN != 0 ||
	    idlen > SP_TTL * SP_ID_LEN || idlen > flen - SP_FRAME_HDR) {
		abort();
	}
	for (i = 0; i + SP_ID_LEN < idlen; i += SP_ID_LEN) {
		if (p[SP_FRAME_HDR + i] & 0x80) {
			abort();	/* the id is the first such word */
		}
	}
	if (!(p[SP_FRAME_HDR + idlen - SP_ID_LEN] & 0x80)) {
		abort();
	}
	if (sp_frame_len(p, &plen) != 0 || plen != flen - SP_FRAME_HDR) {
		abort();
	}
	sp_frame_hdr(hdr, plen);
	if (memcmp(hdr, p, SP_FRAME_HDR) != 0) {
		abort();
	}
	/* Truncations: the empty buffer, a partial header, the header alone,
	 * one byte short. */
	for (i = 0; i < 4; i++) {
		size_t cut = i == 0 ? 0 : i == 1 ? SP_FRAME_HDR - 1 :
		    i == 2 ? SP_FRAME_HDR : flen - 1;
		if (cut >= flen) {
			continue;
		}
		if (sp_frame_parse(p, cut, max, &f2, &id2) != 0 ||
		    f2 > flen || f2 <= cut) {
			abort();
		}
	}
}

static void
parse_whole(const uint8_t *p, size_t len, uint64_t max, struct parse *out)
{
	size_t off = 0, flen, idlen;
	int rv;

	out->n = 0;
	for (;;) {
		rv = sp_frame_parse(p + off, len - off, max, &flen, &idlen);
		if (rv <= 0) {
			if (rv == 0 && flen <= len - off) {
				abort();	/* asked for what it had */
			}
			out->end = rv;
			return;
		}
		check_frame(p + off, len - off, max, flen, idlen);
		if (out->n == FRAMES_MAX) {
			out->end = 0;
			return;
		}
		out->flen[out->n] = flen;
		out->idlen[out->n] = idlen;
		out->n++;
		off += flen;
	}
}

/* As the listener reads: bytes arrive in chunks, each complete frame is
 * taken off the front of the buffer. */
static void
parse_chunked(const uint8_t *p, size_t len, uint64_t max, size_t chunk,
    struct parse *out)
{
	size_t have = 0, start = 0, flen, idlen;
	int rv;

	out->n = 0;
	out->end = 0;
	while (start < len) {
		if (have < len) {
			have += chunk < len - have ? chunk : len - have;
		}
		for (;;) {
			rv = sp_frame_parse(p + start, have - start, max, &flen,
			    &idlen);
			if (rv < 0) {
				out->end = -1;
				return;
			}
			if (rv == 0) {
				break;
			}
			if (out->n == FRAMES_MAX) {
				return;
			}
			out->flen[out->n] = flen;
			out->idlen[out->n] = idlen;
			out->n++;
			start += flen;
		}
		if (have == len) {
			return;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct parse a, b;
	uint64_t max;
	size_t chunk;

	if (size < 1) {
		return 0;
	}
	chunk = (size_t)(data[0] & 0x3f) + 1;
	max = (data[0] & 0x40) ? SMALL_MAX : (1u << 20);
	data++;
	size--;
	if (size >= SP_HELLO_LEN) {
		check_hello(data);
		data += SP_HELLO_LEN;
		size -= SP_HELLO_LEN;
	}
	parse_whole(data, size, max, &a);
	parse_chunked(data, size, max, chunk, &b);
	if (a.n != b.n || (a.n < FRAMES_MAX && a.end != b.end) ||
	    memcmp(a.flen, b.flen, a.n * sizeof(a.flen[0])) != 0 ||
	    memcmp(a.idlen, b.idlen, a.n * sizeof(a.idlen[0])) != 0) {
		abort();
	}
	return 0;
}
