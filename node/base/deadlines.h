/* Many objects' deadlines on one libevent timer: a binary min-heap, the earliest on top. */
#ifndef SB_DEADLINES_H
#define SB_DEADLINES_H

#include <stddef.h>

#include <event2/event.h>

/* One object's deadline, embedded in it; all zero when not set. */
typedef struct {
    double at;    /* sb_clock_mono() seconds, while set */
    size_t index; /* its place in the heap plus one; 0: not set */
} sb_deadline_t;

/* Called once for each deadline that has passed, already unset: it may set it again (or set and
 * clear others), but must not free the set it belongs to. */
typedef void (*sb_deadline_fn)(sb_deadline_t *d, void *ctx);

typedef struct {
    struct event *timer; /* fires at the top's deadline */
    sb_deadline_t **heap;
    size_t n, cap;
    size_t reserved; /* slots promised to the objects that may set a deadline */
    sb_deadline_fn expired;
    void *ctx;
} sb_deadlines_t;

/* Returns 0, or -1 when out of memory. */
int sb_deadlines_init(sb_deadlines_t *s, struct event_base *base, sb_deadline_fn expired,
                      void *ctx);
void sb_deadlines_free(sb_deadlines_t *s);

/* Makes room for one more object's deadline, so that setting it never allocates: once per
 * object, before its first sb_deadlines_set. Returns 0, or -1 when out of memory. */
int sb_deadlines_reserve(sb_deadlines_t *s);
/* Gives the room back; the object's deadline must not be set (sb_deadlines_clear first). */
void sb_deadlines_unreserve(sb_deadlines_t *s);

/* Sets (or moves) d to `at` seconds on sb_clock_mono()'s clock. */
void sb_deadlines_set(sb_deadlines_t *s, sb_deadline_t *d, double at);
/* Unsets d; nothing when it is not set. */
void sb_deadlines_clear(sb_deadlines_t *s, sb_deadline_t *d);

#endif
