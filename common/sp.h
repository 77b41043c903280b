/*
 * sp.h — nng's SP protocol over IPC, as far as kmsd's peers speak it: the
 * 8-byte handshake naming each side's protocol, and message frames (type
 * 1, a big-endian 64-bit length, then the payload; a req0/rep0 payload
 * starts with the 4-byte request id, high bit set).  Spoken by
 * libkmsclient (its whole transport) and by kmsd's listener (server.c).
 */
#ifndef KMS_COMMON_SP_H
#define KMS_COMMON_SP_H

#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"	/* mono_ms: the deadlines below */

#define SP_HELLO_LEN 8
#define SP_FRAME_HDR 9
#define SP_ID_LEN 4
#define SP_REQ0 0x30
#define SP_REP0 0x31
#define SP_TTL 8		/* backtrace words at most, as nng's rep0 */

/* Our half of the handshake, announcing proto. */
void sp_hello(uint8_t out[SP_HELLO_LEN], uint16_t proto);
/* 1 when the peer's half is a well-formed handshake announcing proto. */
int sp_hello_is(const uint8_t in[SP_HELLO_LEN], uint16_t proto);
/* A message frame's header for a payload of len bytes. */
void sp_frame_hdr(uint8_t out[SP_FRAME_HDR], uint64_t len);
/* The payload length of a message frame's header; -1 when the frame is
 * not a message. */
int sp_frame_len(const uint8_t hdr[SP_FRAME_HDR], uint64_t *len);
/*
 * The request frame at the start of buf[0..len), its payload at most max
 * bytes: 1 when it is complete (*flen: the frame's size, header included;
 * *idlen: its backtrace's, the words up to and including the first with
 * the high bit set, at most SP_TTL of them); 0 when more bytes are needed
 * (*flen: the size that would complete the header or the frame); -1 when
 * the peer breaks the protocol (not a message frame, a payload over max,
 * no request id within SP_TTL words).
 */
int sp_frame_parse(const uint8_t *buf, size_t len, uint64_t max,
    size_t *flen, size_t *idlen);

/* Read exactly n bytes from fd by deadline (mono_ms; 0: none): 0, or -1
 * on end of stream, error or deadline. */
int sp_read_full(int fd, uint8_t *p, size_t n, uint64_t deadline);

#endif
