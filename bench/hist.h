/* A log-linear latency histogram (HDR-style): about 0.8% precision from 1 us to over an hour. */
#ifndef SB_BENCH_HIST_H
#define SB_BENCH_HIST_H

#include <stdint.h>

/* Values below 2^SB_HIST_SUB_BITS+1 are counted exactly; above, each power of two is split into
 * 2^SB_HIST_SUB_BITS equal buckets, so a bucket is at most 1/128 of its values wide. */
#define SB_HIST_SUB_BITS 7
#define SB_HIST_TOP_BITS 32 /* largest value: 2^32 - 1 us, 71 minutes; larger ones are clamped */
#define SB_HIST_BUCKETS                                                                            \
    ((2 << SB_HIST_SUB_BITS) + (SB_HIST_TOP_BITS - SB_HIST_SUB_BITS - 1) * (1 << SB_HIST_SUB_BITS))

/* Counts of values in microseconds. Zeroed memory is an empty histogram; it owns no memory. */
typedef struct {
    uint64_t counts[SB_HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max; /* exact, of the values recorded (max clamped as the buckets are) */
    double sum;
} sb_hist_t;

/* Empties h. */
void sb_hist_reset(sb_hist_t *h);

/* Counts one value (microseconds; negative counts as 0, beyond the range as the largest). */
void sb_hist_record(sb_hist_t *h, int64_t us);

/* Adds every count of from into into. */
void sb_hist_merge(sb_hist_t *into, const sb_hist_t *from);

/* The value at or below which q (0..1) of the values lie: the highest value of the bucket that
 * holds it, never above the exact max. 0 for an empty histogram. */
uint64_t sb_hist_quantile(const sb_hist_t *h, double q);

/* The mean, 0 for an empty histogram. */
double sb_hist_mean(const sb_hist_t *h);

#endif
