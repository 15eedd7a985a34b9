/* CPU time of the nodes, of Redis and of the bench itself over a measured interval (/proc). */
#ifndef SB_BENCH_CPUACCT_H
#define SB_BENCH_CPUACCT_H

#include <sys/types.h>

#define SB_CPU_MAX_NODES 16

/* Which processes to watch, and their CPU seconds at the interval's start and end. */
typedef struct {
    pid_t node[SB_CPU_MAX_NODES];
    int nnodes;
    pid_t redis; /* 0: none */
    double node_start[SB_CPU_MAX_NODES], redis_start, self_start;
    double nodes_s, redis_s, self_s; /* over the interval; -1 when not measured */
    double wall_s;
    int node_lost; /* a watched process vanished during the interval */
} sb_cpuacct_t;

/* Reads every watched process's CPU time now: the interval's start. */
void sb_cpuacct_start(sb_cpuacct_t *a);

/* Reads them again: sets the seconds used since sb_cpuacct_start (wall_s is given by the
 * caller: the interval's length). */
void sb_cpuacct_stop(sb_cpuacct_t *a, double wall_s);

#endif
