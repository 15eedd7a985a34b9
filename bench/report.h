/* A load run's figures for people (text) and for scripts (JSON): messages, rate, latency, CPU. */
#ifndef SB_BENCH_REPORT_H
#define SB_BENCH_REPORT_H

#include <stdio.h>

#include "cpuacct.h"
#include "jsonw.h"
#include "load.h"

/* 1 when every message of the run was answered and each ack matched a delivery, with nothing
 * unexpected: the exit status's criterion. */
int sb_report_load_ok(const sb_load_result_t *r);

/* Writes the run's fields into the JSON object being written (cpu may be NULL). */
void sb_report_load_json(sb_jw_t *w, const sb_load_result_t *r, const sb_cpuacct_t *cpu);

/* Writes the run's summary, indented, a few lines. */
void sb_report_load_text(FILE *f, const sb_load_result_t *r, const sb_cpuacct_t *cpu);

/* What went wrong, when something did, and the hint for rate limits; nothing otherwise. */
void sb_report_load_problems(FILE *f, const sb_load_result_t *r);

/* The hint printed when a node refused the bench for its limits. */
#define SB_REPORT_LIMITS_HINT                                                                      \
    "hint: the node refused the bench for its per-client limits; start benchmark nodes with "      \
    "--rate-messages 1g --rate-bytes 1g --source-connections 1g --source-handshakes 1g\n"

#endif
