/* Many WebSocket peers of protocol v1 opened at once: bounded handshakes in flight, spread over
 * source addresses, each one ready when its welcome arrives; failures tallied by cause. */
#ifndef SB_BENCH_FLEET_H
#define SB_BENCH_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <netinet/in.h>

#include "names.h"
#include "wsclient.h"
#include "wsurl.h"

typedef enum {
    SB_PEER_IDLE,
    SB_PEER_OPENING,
    SB_PEER_READY,
    SB_PEER_FAILED,
    SB_PEER_LOST
} sb_peer_state_t;

typedef struct sb_fleet sb_fleet_t;

/* One peer. The owner sets url and id before sb_fleet_open, and may use user. */
typedef struct {
    sb_fleet_t *fleet;
    sb_wsc_t *wsc;
    size_t index;
    size_t url;             /* index into the fleet's URLs */
    char id[SB_ID_MAX + 1]; /* asked for with ?id=, "" for a random one */
    sb_peer_state_t state;
    int64_t opened_at;
    void *user;
} sb_peer_t;

typedef struct {
    const sb_wsurl_t *urls;
    size_t nurls;
    const struct in_addr *sources; /* source addresses used in turn; NULL: the kernel's choice */
    size_t nsources;
    size_t concurrency; /* handshakes (up to the welcome) in flight at once */
    double timeout_s;   /* for each peer, from connect to welcome */
    int progress;       /* a line a second on stderr while opening */
    /* a ready peer's message (after its welcome) */
    void (*on_message)(sb_peer_t *p, const char *text, size_t len, void *arg);
    /* a ready peer's connection ended */
    void (*on_lost)(sb_peer_t *p, int close_code, const char *why, void *arg);
    void *arg;
} sb_fleet_config_t;

#define SB_FLEET_MAX_CAUSES 16

/* Why peers failed to open: "http 429", "id-taken", "connect failed", ... */
typedef struct {
    char cause[48];
    uint64_t count;
} sb_fleet_cause_t;

struct sb_fleet {
    struct event_base *base;
    sb_fleet_config_t cfg;
    sb_peer_t *peers;
    size_t n;
    size_t next;     /* next peer to start */
    size_t inflight; /* opening */
    size_t ready, failed, lost;
    sb_fleet_cause_t causes[SB_FLEET_MAX_CAUSES];
    int ncauses;
    int saw_429;
    double open_s; /* how long sb_fleet_open took */
    struct event *tick;
    int64_t next_progress;
    size_t closing; /* teardown: closes not yet answered */
    int starting;   /* inside start_more */
};

/* A fleet of n peers (all IDLE). cfg is copied; its URLs and sources must outlive the fleet.
 * Returns NULL when out of memory. */
sb_fleet_t *sb_fleet_new(struct event_base *base, const sb_fleet_config_t *cfg, size_t n);

/* Opens every IDLE peer, at most cfg.concurrency at a time, and runs the loop until each is
 * READY or FAILED. Returns the number READY (of all the fleet's peers). */
size_t sb_fleet_open(sb_fleet_t *f);

/* Sends a text message of n parts from a READY peer. Returns 0 or -1. */
int sb_fleet_send(sb_peer_t *p, const sb_str_t *parts, size_t n);

/* Closes every connection cleanly (waiting at most wait_s for the server's answers, running the
 * loop), then frees the fleet. NULL is allowed. */
void sb_fleet_free(sb_fleet_t *f, double wait_s);

#endif
