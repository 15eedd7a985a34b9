/* The load engine: pairs of endpoints exchanging messages in a closed loop (a window per pair)
 * or an open loop (a target rate), with latency from the intended send time and every message's
 * outcome counted. It knows nothing of the wire: a transport sends, and reports back. */
#ifndef SB_BENCH_LOAD_H
#define SB_BENCH_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "cpuacct.h"
#include "hist.h"
#include "payload.h"
#include "str.h"

#define SB_LOAD_MAX_CODES 16

typedef struct {
    /* Sends message mid of pair along dir (0: a to b, 1: b to a). Returns 0, or -1 when it
     * cannot be sent (it then counts as refused with code "send-failed"). */
    int (*send)(void *ctx, size_t pair, int dir, uint64_t mid, const char *type, sb_str_t payload);
} sb_load_transport_t;

typedef struct {
    size_t pairs;
    int window;      /* messages in flight per pair */
    double rate;     /* messages a second in all; 0: closed loop */
    double warmup_s; /* run, unmeasured, before the measured interval */
    double duration_s;
    double drain_s;    /* after the interval, how long to wait for outstanding answers */
    int progress;      /* a line a second on stderr */
    const char *label; /* for the progress line */
    const sb_payloads_t *payloads;
    sb_cpuacct_t *cpu; /* sampled at the measured interval's start and end; may be NULL */
} sb_load_config_t;

typedef struct {
    char code[32];
    uint64_t count;
} sb_load_code_t;

/* What a run measured. "Measured" messages are those whose intended send time fell in the
 * measured interval; the counts are of them, so that each one's fate is known. */
typedef struct {
    double interval_s;  /* the measured interval's length */
    uint64_t sent;      /* measured messages handed to the transport */
    uint64_t acked;     /* ... answered ack */
    uint64_t delivered; /* ... received by their recipient */
    uint64_t refused;   /* ... answered with an error (by code below) */
    sb_load_code_t codes[SB_LOAD_MAX_CODES];
    int ncodes;
    uint64_t unsent;  /* open loop: due in the interval but never sent (behind schedule) */
    uint64_t arrived; /* deliveries that arrived during the interval, whatever their start */
    uint64_t arrived_bytes;
    /* every message of the run, warm-up included */
    uint64_t total_sent;
    uint64_t never_answered;    /* no ack nor error when the drain ended */
    uint64_t acked_undelivered; /* acked, yet never received by the end of the drain */
    uint64_t unexpected;        /* deliveries and answers matching no message in flight */
    sb_hist_t latency;          /* send (intended) to delivery, us, measured messages */
    sb_hist_t ack_latency;      /* send (intended) to ack, us */
    int rate_limited;           /* some answer was "rate-limited" */
} sb_load_result_t;

typedef struct sb_load sb_load_t;

/* A run on base with cfg (copied; payloads and cpu must outlive the run). Returns NULL when out
 * of memory. */
sb_load_t *sb_load_new(struct event_base *base, const sb_load_config_t *cfg,
                       const sb_load_transport_t *t, void *ctx);

void sb_load_free(sb_load_t *l);

/* Runs the loop until the interval and the drain are over; fills *out. */
void sb_load_run(sb_load_t *l, sb_load_result_t *out);

/* The transport's reports. answer: code NULL for an ack, else the error's code (not NUL-
 * terminated, code_len bytes). deliver: the recipient received message mid of pair (bytes long
 * on the wire). Unknown mids are counted as unexpected. */
void sb_load_answer(sb_load_t *l, size_t pair, uint64_t mid, const char *code, size_t code_len);
void sb_load_deliver(sb_load_t *l, size_t pair, uint64_t mid, size_t bytes);

/* A message from the other side that answers nothing (an error without a mid): counted as
 * unexpected. */
void sb_load_unexpected(sb_load_t *l);

/* Every message in flight on pair will never be answered (its connection is gone): they are
 * left outstanding and reported as never answered, and the pair sends no more. */
void sb_load_pair_lost(sb_load_t *l, size_t pair);

#endif
