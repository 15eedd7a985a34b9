/* switchboard-bench's command line: the mode, the targets and every knob, checked. */
#ifndef SB_BENCH_OPTIONS_H
#define SB_BENCH_OPTIONS_H

#include <stddef.h>
#include <sys/types.h>

#include "cpuacct.h"
#include "wsurl.h"

#define SB_BENCH_MAX_URLS 16

typedef enum { SB_MODE_RELAY, SB_MODE_CONNS, SB_MODE_BASELINE } sb_mode_t;
typedef enum { SB_PLACE_AUTO, SB_PLACE_SAME, SB_PLACE_SPLIT } sb_place_t;

typedef struct {
    sb_mode_t mode;
    sb_wsurl_t urls[SB_BENCH_MAX_URLS];
    const char *url_text[SB_BENCH_MAX_URLS];
    size_t nurls;
    size_t pairs;
    sb_place_t place;
    int window;
    double rate; /* 0: closed loop */
    size_t size; /* 0: the webrtc mix */
    double duration_s, warmup_s, drain_s, timeout_s;
    const char *prefix;
    int json, quiet;
    pid_t node_pids[SB_CPU_MAX_NODES];
    int nnode_pids;
    int node_ports[SB_CPU_MAX_NODES];
    int nnode_ports;
    pid_t redis_pid;
    int redis_port;
    const char *redis_url;
    size_t connections, sources, concurrency, relay_pairs;
} sb_bench_opts_t;

/* Parses argv into o. Returns 0; 1 when --help was printed (exit 0); -1 after printing a usage
 * error on stderr (exit 2). */
int sb_bench_options(int argc, char **argv, sb_bench_opts_t *o);

#endif
