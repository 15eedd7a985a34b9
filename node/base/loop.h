/* The node's event loop: priorities that keep its own upkeep ahead of client traffic, and time. */
#ifndef SB_LOOP_H
#define SB_LOOP_H

#include <stdint.h>
#include <sys/time.h>

#include <event2/event.h>

/* Event priorities. The node's own upkeep (its liveness in the cluster) runs before any client
 * work that is ready at the same time; everything else has the default, client priority. */
enum { SB_PRIO_UPKEEP = 0, SB_PRIO_CLIENTS = 1, SB_PRIO_COUNT = 2 };

/* The longest the loop runs client callbacks before it looks for timers and upkeep again. */
#define SB_LOOP_SLICE_MS 10

/* Creates the node's event loop with those priorities and that slice. Returns NULL on failure. */
struct event_base *sb_loop_new(void);

/* The loop's cached time, in seconds since the epoch. */
double sb_loop_now(struct event_base *base);

/* The wall clock in microseconds since the epoch, read now (for times other nodes compare). */
uint64_t sb_clock_wall_us(void);

/* A monotonic clock in seconds, read now: finer than the loop's cached time. */
double sb_clock_mono(void);

/* Seconds as a timeval. */
struct timeval sb_loop_tv(double seconds);

#endif
