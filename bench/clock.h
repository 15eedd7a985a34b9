/* The bench's one clock: monotonic nanoseconds, shared by senders and receivers in this process. */
#ifndef SB_BENCH_CLOCK_H
#define SB_BENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

#define SB_NS_PER_S 1000000000LL

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t sb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SB_NS_PER_S + ts.tv_nsec;
}

#endif
