/*
 * proc.c — what /proc says about another process (kms-bench's daemon
 * under test, the tests' kmsd): CPU time, context switches, memory, and
 * which process listens on a Unix socket.
 * Every file is read into a bounded buffer; a line that does not parse is
 * treated as "unknown" (-1 or 0), never as a number.
 */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/proc.h"

#define PROC_LINE_MAX 4096
#define PROC_MAX_INODES 64

double
proc_cpu_seconds(pid_t pid)
{
	char path[64], buf[PROC_LINE_MAX], *p;
	unsigned long long ut, st;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields follow the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL || hz <= 0) {
		return -1;
	}
	/* After ")": state(3) ... utime(14) stime(15). */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu", &ut, &st) != 2) {
		return -1;
	}
	return (double)(ut + st) / (double)hz;
}

long
proc_status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			char *end;
			long x = strtol(line + flen + 1, &end, 10);

			if (end != line + flen + 1 && x >= 0) {
				v = x;
			}
			break;
		}
	}
	fclose(f);
	return v;
}

/* Context switches (voluntary and not) of every thread of pid, or -1. */
long long
proc_ctx_switches(pid_t pid)
{
	char path[64], line[256];
	struct dirent *de;
	long long total = 0;
	DIR *dir;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((dir = opendir(path)) == NULL) {
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]) ||
		    strlen(de->d_name) > 20) {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%ld/task/%s/status",
		    (long)pid, de->d_name);
		if ((f = fopen(path, "r")) == NULL) {
			continue;	/* the thread ended meanwhile */
		}
		while (fgets(line, sizeof(line), f) != NULL) {
			char *end;
			long long x;
			const char *v = NULL;
			if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) {
				v = line + 24;
			} else if (strncmp(line,
			    "nonvoluntary_ctxt_switches:", 27) == 0) {
				v = line + 27;
			}
			if (v != NULL && (x = strtoll(v, &end, 10)) >= 0 &&
			    end != v) {
				total += x;
			}
		}
		fclose(f);
	}
	closedir(dir);
	return total;
}

/* Inodes of the unix sockets bound to path (listener and accepted). */
static size_t
socket_inodes(const char *path, unsigned long *ino, size_t max)
{
	char line[PROC_LINE_MAX];
	size_t n = 0;
	FILE *f;

	if ((f = fopen("/proc/net/unix", "r")) == NULL) {
		return 0;
	}
	/* "Num RefCount Protocol Flags Type St Inode Path" */
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		unsigned long inode;
		int off = 0;
		char *p;

		if (sscanf(line, "%*s %*s %*s %*s %*s %*s %lu %n", &inode,
		    &off) != 1 || off == 0) {
			continue;
		}
		p = line + off;
		p[strcspn(p, "\n")] = '\0';
		if (strcmp(p, path) == 0) {
			ino[n++] = inode;
		}
	}
	fclose(f);
	return n;
}

/* Inodes of the TCP sockets listening on port (IPv4 and IPv6). */
static size_t
tcp_listen_inodes(unsigned port, unsigned long *ino, size_t max)
{
	static const char *const files[] = { "/proc/net/tcp",
	    "/proc/net/tcp6" };
	char line[PROC_LINE_MAX];
	size_t n = 0, k;
	FILE *f;

	for (k = 0; k < 2; k++) {
		if ((f = fopen(files[k], "r")) == NULL) {
			continue;
		}
		/* "sl local_address rem_address st tx:rx tr:when retrnsmt
		 * uid timeout inode", addresses as HEXIP:HEXPORT. */
		while (n < max && fgets(line, sizeof(line), f) != NULL) {
			char local[64];
			unsigned st, lport;
			unsigned long inode;
			char *colon;

			if (sscanf(line, "%*s %63s %*s %x %*s %*s %*s %*s %*s "
			    "%lu", local, &st, &inode) != 3 || st != 0x0A ||
			    (colon = strrchr(local, ':')) == NULL ||
			    sscanf(colon + 1, "%x", &lport) != 1 ||
			    lport != port) {
				continue;
			}
			ino[n++] = inode;
		}
		fclose(f);
	}
	return n;
}

static pid_t
find_by_inodes(const unsigned long *ino, size_t nino)
{
	size_t i;
	pid_t self = getpid(), found = 0;
	struct dirent *de;
	DIR *proc;

	if (nino == 0 || (proc = opendir("/proc")) == NULL) {
		return 0;
	}
	while (found == 0 && (de = readdir(proc)) != NULL) {
		char fddir[300], lpath[600], target[128];
		struct dirent *fe;
		DIR *fds;
		long pid;
		char *end;

		if (!isdigit((unsigned char)de->d_name[0])) {
			continue;
		}
		pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid == (long)self) {
			continue;
		}
		snprintf(fddir, sizeof(fddir), "/proc/%s/fd", de->d_name);
		if ((fds = opendir(fddir)) == NULL) {
			continue;
		}
		while (found == 0 && (fe = readdir(fds)) != NULL) {
			ssize_t len;
			unsigned long v;

			snprintf(lpath, sizeof(lpath), "%s/%s", fddir,
			    fe->d_name);
			len = readlink(lpath, target, sizeof(target) - 1);
			if (len <= 0) {
				continue;
			}
			target[len] = '\0';
			if (sscanf(target, "socket:[%lu]", &v) != 1) {
				continue;
			}
			for (i = 0; i < nino; i++) {
				if (ino[i] == v) {
					found = (pid_t)pid;
					break;
				}
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return found;
}

pid_t
proc_find_listener(const char *path)
{
	unsigned long ino[PROC_MAX_INODES];

	return find_by_inodes(ino, socket_inodes(path, ino, PROC_MAX_INODES));
}

pid_t
proc_find_tcp_listener(unsigned port)
{
	unsigned long ino[PROC_MAX_INODES];

	return find_by_inodes(ino, tcp_listen_inodes(port, ino,
	    PROC_MAX_INODES));
}
