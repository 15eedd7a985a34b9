/* The node's event loop: priorities that keep its own upkeep ahead of client traffic, and time. */
#include "base/loop.h"

#include <time.h>

struct event_base *sb_loop_new(void)
{
    struct event_config *cfg = event_config_new();
    struct timeval slice = {0, SB_LOOP_SLICE_MS * 1000};
    struct event_base *base = NULL;

    /* After a slice of client callbacks the loop polls again, so a timer that came due (the
     * liveness refresh) runs next at its higher priority, however much client work is queued. */
    if (cfg != NULL &&
        event_config_set_max_dispatch_interval(cfg, &slice, -1, SB_PRIO_CLIENTS) == 0)
        base = event_base_new_with_config(cfg);
    if (cfg != NULL)
        event_config_free(cfg);
    if (base != NULL && event_base_priority_init(base, SB_PRIO_COUNT) != 0) {
        event_base_free(base);
        base = NULL;
    }
    return base;
}

double sb_loop_now(struct event_base *base)
{
    struct timeval tv;
    event_base_gettimeofday_cached(base, &tv);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

uint64_t sb_clock_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double sb_clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct timeval sb_loop_tv(double seconds)
{
    if (seconds < 0)
        seconds = 0;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    return tv;
}
