/*
 * io.c — whole writes to a file descriptor (io.h).
 */
#include <errno.h>
#include <unistd.h>

#include "common/io.h"

int
io_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		if (w == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
