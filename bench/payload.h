/* The messages the bench relays: a WebRTC call's mix of offers, answers and candidates, or one
 * fixed payload size; each step of a pair's script says what to send and which way. */
#ifndef SB_BENCH_PAYLOAD_H
#define SB_BENCH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define SB_PAYLOAD_VARIANTS 8

/* Payload texts, made once (owned: sb_payloads_free). */
typedef struct {
    size_t fixed_size; /* 0: the webrtc mix; else every payload's size */
    char *candidate;   /* the fixed payload, or a ~200 B ICE candidate */
    size_t candidate_len;
    char *offer[SB_PAYLOAD_VARIANTS]; /* webrtc mix: session descriptions of 2-6 KB */
    size_t offer_len[SB_PAYLOAD_VARIANTS];
    char *answer[SB_PAYLOAD_VARIANTS];
    size_t answer_len[SB_PAYLOAD_VARIANTS];
} sb_payloads_t;

/* One message of a pair's script. */
typedef struct {
    const char *type; /* "offer", "answer" or "candidate" */
    sb_str_t payload; /* JSON text, owned by the sb_payloads_t */
    int dir;          /* 0: from the pair's peer a to b; 1: from b to a */
} sb_step_t;

/* Messages in one call's script of the webrtc mix: an offer (a to b), an answer (b to a), then
 * candidates from both sides in turn. */
#define SB_PAYLOAD_CALL_STEPS 18

/* Makes the payloads: fixed_size bytes each (at least 2), or the webrtc mix when 0. Returns 0, or
 * -1 when out of memory. */
int sb_payloads_init(sb_payloads_t *p, size_t fixed_size);

void sb_payloads_free(sb_payloads_t *p);

/* The n'th message of pair's script. */
void sb_payloads_step(const sb_payloads_t *p, size_t pair, uint64_t n, sb_step_t *out);

/* The mean payload size over one script cycle, in bytes. */
double sb_payloads_mean_size(const sb_payloads_t *p);

#endif
