/* A log-linear latency histogram (HDR-style): buckets, recording, merging and quantiles. */
#include "hist.h"

#include <string.h>

#define EXACT (2u << SB_HIST_SUB_BITS) /* values below this have a bucket each */
#define TOP ((1ull << SB_HIST_TOP_BITS) - 1)

static unsigned bucket_of(uint64_t v)
{
    if (v < EXACT)
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* v in [2^k, 2^(k+1)), k > SUB_BITS */
    unsigned sub = (unsigned)(v >> (k - SB_HIST_SUB_BITS)) & ((1u << SB_HIST_SUB_BITS) - 1);
    return EXACT + (k - SB_HIST_SUB_BITS - 1) * (1u << SB_HIST_SUB_BITS) + sub;
}

/* The highest value that falls in bucket i. */
static uint64_t bucket_high(unsigned i)
{
    if (i < EXACT)
        return i;
    unsigned j = i - EXACT;
    unsigned k = j / (1u << SB_HIST_SUB_BITS) + SB_HIST_SUB_BITS + 1;
    uint64_t sub = j % (1u << SB_HIST_SUB_BITS);
    uint64_t width = 1ull << (k - SB_HIST_SUB_BITS);
    return (1ull << k) + (sub + 1) * width - 1;
}

void sb_hist_reset(sb_hist_t *h) { memset(h, 0, sizeof(*h)); }

void sb_hist_record(sb_hist_t *h, int64_t us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    if (v > TOP)
        v = TOP;
    h->counts[bucket_of(v)]++;
    if (h->total == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->total++;
    h->sum += (double)v;
}

void sb_hist_merge(sb_hist_t *into, const sb_hist_t *from)
{
    if (from->total == 0)
        return;
    for (unsigned i = 0; i < SB_HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    if (into->total == 0 || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->total += from->total;
    into->sum += from->sum;
}

uint64_t sb_hist_quantile(const sb_hist_t *h, double q)
{
    if (h->total == 0)
        return 0;
    if (q <= 0)
        return h->min;
    /* the rank of the value asked for, 1-based: at least 1, at most total */
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SB_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double sb_hist_mean(const sb_hist_t *h) { return h->total ? h->sum / (double)h->total : 0; }
