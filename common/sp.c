/*
 * sp.c — nng's SP-over-IPC wire format (see sp.h) and the bounded read
 * both of its speakers need.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/be.h"
#include "common/sp.h"

void
sp_hello(uint8_t out[SP_HELLO_LEN], uint16_t proto)
{
	memset(out, 0, SP_HELLO_LEN);
	out[1] = 'S';
	out[2] = 'P';
	out[4] = (uint8_t)(proto >> 8);
	out[5] = (uint8_t)proto;
}

int
sp_hello_is(const uint8_t in[SP_HELLO_LEN], uint16_t proto)
{
	uint8_t want[SP_HELLO_LEN];

	sp_hello(want, proto);
	return memcmp(in, want, SP_HELLO_LEN) == 0;
}

void
sp_frame_hdr(uint8_t out[SP_FRAME_HDR], uint64_t len)
{
	out[0] = 1;
	put_u64_be(out + 1, len);
}

int
sp_frame_len(const uint8_t hdr[SP_FRAME_HDR], uint64_t *len)
{
	if (hdr[0] != 1) {
		return -1;
	}
	*len = get_u64_be(hdr + 1);
	return 0;
}

int
sp_frame_parse(const uint8_t *buf, size_t len, uint64_t max, size_t *flen,
    size_t *idlen)
{
	uint64_t plen;
	size_t n, id;

	*flen = SP_FRAME_HDR;
	if (len < SP_FRAME_HDR) {
		return 0;
	}
	if (sp_frame_len(buf, &plen) != 0 || plen > max ||
	    plen > SIZE_MAX - SP_FRAME_HDR) {
		return -1;
	}
	n = SP_FRAME_HDR + (size_t)plen;
	*flen = n;
	if (len < n) {
		return 0;
	}
	for (id = 0;; id += SP_ID_LEN) {
		if (id >= SP_TTL * SP_ID_LEN || plen - id < SP_ID_LEN) {
			return -1;
		}
		if (buf[SP_FRAME_HDR + id] & 0x80) {
			*idlen = id + SP_ID_LEN;
			return 1;
		}
	}
}

int
sp_read_full(int fd, uint8_t *p, size_t n, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t r;
	uint64_t now;

	while (got < n) {
		if (deadline != 0) {
			now = mono_ms();
			if (poll(&pfd, 1, now >= deadline ? 0 :
			    (int)(deadline - now)) != 1) {
				return -1;
			}
		}
		r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}
