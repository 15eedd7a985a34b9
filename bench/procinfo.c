/* What /proc says about a process: its CPU time, its resident memory, and who listens on a port. */
#include "procinfo.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bounds on what is scanned, so a huge /proc cannot stall the bench. */
#define MAX_PROCS 100000
#define MAX_FDS 200000
#define MAX_LINES 1000000

static FILE *open_proc(pid_t pid, const char *what)
{
    char path[64];
    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/%s", what);
    else
        snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, what);
    return fopen(path, "r");
}

double sb_proc_cpu_seconds(pid_t pid)
{
    FILE *f = open_proc(pid, "stat");
    if (!f)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the name (field 2) may hold spaces and parentheses: fields are counted after its last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long utime = 0, stime = 0;
    /* after ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
}

long sb_proc_rss_kb(pid_t pid)
{
    FILE *f = open_proc(pid, "status");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    for (int i = 0; i < 200 && fgets(line, sizeof(line), f); i++) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

int sb_proc_name(pid_t pid, char *out, size_t cap)
{
    if (cap == 0)
        return -1;
    FILE *f = open_proc(pid, "comm");
    if (!f)
        return -1;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

/* The inode of the socket listening on port in one of /proc/net/tcp and tcp6, or 0. */
static unsigned long listen_inode(const char *table, int port)
{
    FILE *f = fopen(table, "r");
    if (!f)
        return 0;
    char line[512];
    unsigned long found = 0;
    for (int i = 0; i < MAX_LINES && fgets(line, sizeof(line), f); i++) {
        char local[128];
        unsigned st;
        unsigned long inode;
        /* sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &inode) != 3)
            continue;
        char *colon = strrchr(local, ':');
        if (st != 0x0A || !colon || strtol(colon + 1, NULL, 16) != port)
            continue;
        found = inode;
        break;
    }
    fclose(f);
    return found;
}

/* 1 when pid has a descriptor on the socket named want ("socket:[inode]"). */
static int holds_socket(long pid, const char *want)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    for (int i = 0; i < MAX_FDS && !found && (e = readdir(d)) != NULL; i++) {
        char path[320], target[64];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = strcmp(target, want) == 0;
    }
    closedir(d);
    return found;
}

pid_t sb_proc_listener(int port)
{
    unsigned long inode = listen_inode("/proc/net/tcp", port);
    if (!inode)
        inode = listen_inode("/proc/net/tcp6", port);
    if (!inode)
        return -1;
    char want[64];
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    pid_t found = -1;
    struct dirent *e;
    for (int i = 0; i < MAX_PROCS && found < 0 && (e = readdir(d)) != NULL; i++) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        long pid = strtol(e->d_name, NULL, 10);
        if (holds_socket(pid, want))
            found = (pid_t)pid;
    }
    closedir(d);
    return found;
}
