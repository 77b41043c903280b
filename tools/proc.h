/*
 * proc.h — what /proc says about another process (Linux).  Every file is
 * read into a bounded buffer; what does not parse is "unknown" (-1 or 0).
 */
#ifndef KMS_TOOLS_PROC_H
#define KMS_TOOLS_PROC_H

#include <sys/types.h>

/* utime+stime of pid in seconds, or -1. */
double proc_cpu_seconds(pid_t pid);
/* Context switches of every thread of pid (as they are now), or -1. */
long long proc_ctx_switches(pid_t pid);
/* A "Vm...:" line of /proc/pid/status in KiB, or -1. */
long proc_status_kib(pid_t pid, const char *field);
/* The process listening on the unix socket at path, or 0. */
pid_t proc_find_listener(const char *path);
/* The process listening on TCP port (any address), or 0. */
pid_t proc_find_tcp_listener(unsigned port);

#endif
