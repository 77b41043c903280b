/*
 * io.h — whole writes to a file descriptor (io.c), for every part that
 * writes a file or a stream: the audit log, backups, kmsctl's outputs and
 * the envelope streams.
 *
 * Thread safety: none needed; a call touches only its arguments.
 */
#ifndef KMS_COMMON_IO_H
#define KMS_COMMON_IO_H

#include <stddef.h>

/* Write all n bytes of p to fd, going on after EINTR and short writes.
 * 0, or -1 with errno set (ENOSPC when write(2) took nothing). */
int io_write_all(int fd, const void *p, size_t n);

#endif
