/* Many objects' deadlines on one libevent timer: a binary min-heap, the earliest on top. */
#include "base/deadlines.h"

#include <stdlib.h>

#include "base/loop.h"

static void place(sb_deadlines_t *s, size_t i, sb_deadline_t *d)
{
    s->heap[i] = d;
    d->index = i + 1;
}

static void up(sb_deadlines_t *s, size_t i)
{
    sb_deadline_t *d = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->at <= d->at)
            break;
        place(s, i, s->heap[parent]);
        i = parent;
    }
    place(s, i, d);
}

static void down(sb_deadlines_t *s, size_t i)
{
    sb_deadline_t *d = s->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->n)
            break;
        if (child + 1 < s->n && s->heap[child + 1]->at < s->heap[child]->at)
            child++;
        if (d->at <= s->heap[child]->at)
            break;
        place(s, i, s->heap[child]);
        i = child;
    }
    place(s, i, d);
}

/* Points the libevent timer at the top's deadline, or stops it. */
static void rearm(sb_deadlines_t *s)
{
    if (s->n == 0) {
        evtimer_del(s->timer);
        return;
    }
    double wait = s->heap[0]->at - sb_clock_mono();
    struct timeval tv = sb_loop_tv(wait < 0.001 ? 0.001 : wait);
    evtimer_add(s->timer, &tv);
}

static void remove_at(sb_deadlines_t *s, size_t i)
{
    sb_deadline_t *d = s->heap[i];
    d->index = 0;
    s->n--;
    if (i == s->n)
        return;
    place(s, i, s->heap[s->n]);
    if (i > 0 && s->heap[i]->at < s->heap[(i - 1) / 2]->at)
        up(s, i);
    else
        down(s, i);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    sb_deadlines_t *s = arg;
    (void)fd;
    (void)what;
    double now = sb_clock_mono();
    /* Those due now, one at a time: a callback may set its own deadline again, later. */
    while (s->n > 0 && s->heap[0]->at <= now) {
        sb_deadline_t *d = s->heap[0];
        remove_at(s, 0);
        s->expired(d, s->ctx);
    }
    rearm(s);
}

int sb_deadlines_init(sb_deadlines_t *s, struct event_base *base, sb_deadline_fn expired, void *ctx)
{
    *s = (sb_deadlines_t){.expired = expired, .ctx = ctx};
    s->timer = evtimer_new(base, on_timer, s);
    return s->timer != NULL ? 0 : -1;
}

void sb_deadlines_free(sb_deadlines_t *s)
{
    if (s->timer != NULL)
        event_free(s->timer);
    free(s->heap);
    *s = (sb_deadlines_t){0};
}

int sb_deadlines_reserve(sb_deadlines_t *s)
{
    if (s->reserved == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        sb_deadline_t **heap = realloc(s->heap, cap * sizeof(*heap));
        if (heap == NULL)
            return -1;
        s->heap = heap;
        s->cap = cap;
    }
    s->reserved++;
    return 0;
}

void sb_deadlines_unreserve(sb_deadlines_t *s) { s->reserved--; }

void sb_deadlines_set(sb_deadlines_t *s, sb_deadline_t *d, double at)
{
    int was_top = d->index == 1;
    if (d->index == 0) {
        d->at = at;
        place(s, s->n++, d);
        up(s, s->n - 1);
    } else {
        double before = d->at;
        d->at = at;
        if (at < before)
            up(s, d->index - 1);
        else
            down(s, d->index - 1);
    }
    if (was_top || s->heap[0] == d)
        rearm(s);
}

void sb_deadlines_clear(sb_deadlines_t *s, sb_deadline_t *d)
{
    if (d->index == 0)
        return;
    int was_top = d->index == 1;
    remove_at(s, d->index - 1);
    if (was_top)
        rearm(s);
}
