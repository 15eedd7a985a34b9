/* What /proc says about a process: its CPU time, its resident memory, and who listens on a port. */
#ifndef SB_BENCH_PROCINFO_H
#define SB_BENCH_PROCINFO_H

#include <stddef.h>
#include <sys/types.h>

/* User plus system CPU seconds pid has used so far (/proc/PID/stat utime+stime), or -1 when it
 * cannot be read (the process is gone). pid 0 means this process. */
double sb_proc_cpu_seconds(pid_t pid);

/* Resident memory of pid in KiB (VmRSS of /proc/PID/status), or -1. */
long sb_proc_rss_kb(pid_t pid);

/* The process name of pid (/proc/PID/comm) into out (cap bytes); 0, or -1 when unreadable. */
int sb_proc_name(pid_t pid, char *out, size_t cap);

/* The process holding the TCP socket listening on port (any local address, IPv4 or IPv6), found
 * through /proc/net/tcp{,6} and every /proc/PID/fd. Returns its pid, or -1 when no process we may
 * look into has it. */
pid_t sb_proc_listener(int port);

#endif
