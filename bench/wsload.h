/* The load engine's transport over WebSocket peers: each pair is two peers of protocol v1
 * relaying to each other through the nodes, answered ack or an error. */
#ifndef SB_BENCH_WSLOAD_H
#define SB_BENCH_WSLOAD_H

#include <stddef.h>

#include <event2/event.h>

#include "fleet.h"
#include "load.h"

typedef struct sb_wsload sb_wsload_t;

typedef struct {
    const sb_wsurl_t *urls;
    size_t nurls;
    int split; /* a pair's two peers on different URLs (when there are two or more) */
    size_t pairs;
    const char *prefix; /* peer IDs: <prefix>-a<N> and <prefix>-b<N> */
    double timeout_s;
    size_t concurrency;
    int progress;
} sb_wsload_config_t;

/* Pairs of peers, not yet connected. cfg's URLs and prefix must outlive it. */
sb_wsload_t *sb_wsload_new(struct event_base *base, const sb_wsload_config_t *cfg);

/* Connects and welcomes every peer. Returns 0, or -1 when some could not (see the fleet). */
int sb_wsload_open(sb_wsload_t *w);

/* The fleet of peers (its failure causes, its setup time). */
const sb_fleet_t *sb_wsload_fleet(const sb_wsload_t *w);

/* Runs a load (cfg.pairs is set here) through the pairs; fills *out. Returns 0, or -1 when out
 * of memory. */
int sb_wsload_run(sb_wsload_t *w, sb_load_config_t cfg, sb_load_result_t *out);

/* Closes every peer (briefly waiting for the servers' answers) and frees w. NULL is allowed. */
void sb_wsload_free(sb_wsload_t *w);

#endif
