/* The bench's three modes, run from main with the parsed options, and what they share: each
 * returns the exit status (0 when every message was answered, 1 otherwise). */
#ifndef SB_BENCH_MODES_H
#define SB_BENCH_MODES_H

#include <stdio.h>

#include <event2/event.h>

#include "cpuacct.h"
#include "jsonw.h"
#include "load.h"
#include "options.h"
#include "payload.h"

typedef struct {
    const sb_bench_opts_t *o;
    struct event_base *base;
    sb_cpuacct_t cpu; /* the nodes' and Redis's processes, when found */
    int progress;     /* progress lines on stderr */
    FILE *human;      /* the summary for people: stdout, or stderr with --json */
} sb_bench_t;

int sb_mode_relay(sb_bench_t *b);
int sb_mode_conns(sb_bench_t *b);
int sb_mode_baseline(sb_bench_t *b);

/* The load settings of the options (pairs, payloads and label given). */
sb_load_config_t sb_mode_load_config(sb_bench_t *b, const sb_payloads_t *payloads, size_t pairs,
                                     const char *label);

/* Writes the load options into the JSON object being written. */
void sb_mode_json_options(sb_jw_t *w, const sb_bench_opts_t *o, const sb_payloads_t *payloads);

/* Says the load options in a few words ("window 4, closed loop, webrtc mix (mean 840 B)"). */
void sb_mode_text_options(FILE *f, const sb_bench_opts_t *o, const sb_payloads_t *payloads);

/* Reports peers that could not be opened (by cause, with the limits hint after a 429): on
 * stderr, and with --json as the run's one object, whose "ok" is false. */
struct sb_fleet;
void sb_mode_fleet_failed(sb_bench_t *b, const char *mode, const struct sb_fleet *fleet);

/* Writes the fleet's failure causes as an object {cause: count} under key. */
void sb_mode_json_causes(sb_jw_t *w, const char *key, const struct sb_fleet *fleet);

#endif
