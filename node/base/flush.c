/* Socket writes gathered per event-loop turn: written once, at the turn's end, by one writev. */
#include "base/flush.h"

#include <stdlib.h>

#include <event2/buffer.h>

struct sb_flush {
    struct event *ev; /* made active by the first item queued in a turn */
    sb_flush_item_t *head;
};

static void on_flush(evutil_socket_t fd, short what, void *arg);

sb_flush_t *sb_flush_new(struct event_base *base, int priority)
{
    sb_flush_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->ev = event_new(base, -1, 0, on_flush, f);
    if (f->ev == NULL || event_priority_set(f->ev, priority) != 0) {
        sb_flush_free(f);
        return NULL;
    }
    return f;
}

void sb_flush_free(sb_flush_t *f)
{
    if (f == NULL)
        return;
    if (f->ev)
        event_free(f->ev);
    free(f);
}

static void unlink_item(sb_flush_t *f, sb_flush_item_t *it)
{
    if (!it->queued)
        return;
    if (it->prev)
        it->prev->next = it->next;
    else
        f->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    it->prev = it->next = NULL;
    it->queued = 0;
}

/* Bytes were added to the output: queue it for the end of the turn, unless the bufferevent is
 * writing a remainder itself (it takes the new bytes along). */
static void on_output(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
    sb_flush_item_t *it = arg;
    sb_flush_t *f = it->flush;
    (void)out;
    if (info->n_added == 0 || it->queued || (bufferevent_get_enabled(it->bev) & EV_WRITE))
        return;
    /* The first of a turn makes the flush active: it runs after the callbacks already due at
     * its priority, and empties the list. */
    if (f->head == NULL)
        event_active(f->ev, EV_TIMEOUT, 0);
    it->queued = 1;
    it->prev = NULL;
    it->next = f->head;
    if (f->head)
        f->head->prev = it;
    f->head = it;
}

int sb_flush_attach(sb_flush_t *f, sb_flush_item_t *it, struct bufferevent *bev)
{
    *it = (sb_flush_item_t){.flush = f, .bev = bev};
    it->watch = evbuffer_add_cb(bufferevent_get_output(bev), on_output, it);
    if (it->watch == NULL) {
        it->bev = NULL;
        return -1;
    }
    bufferevent_disable(bev, EV_WRITE);
    return 0;
}

void sb_flush_drained(sb_flush_item_t *it)
{
    if (it->bev != NULL)
        bufferevent_disable(it->bev, EV_WRITE);
}

void sb_flush_detach(sb_flush_item_t *it)
{
    if (it->bev == NULL)
        return;
    unlink_item(it->flush, it);
    evbuffer_remove_cb_entry(bufferevent_get_output(it->bev), it->watch);
    it->bev = NULL;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    sb_flush_t *f = arg;
    (void)fd;
    (void)what;
    /* Owners' callbacks run below (want_drained) and may queue or detach items: take each one
     * off the list before touching it. */
    while (f->head != NULL) {
        sb_flush_item_t *it = f->head;
        unlink_item(f, it);
        struct bufferevent *bev = it->bev;
        struct evbuffer *out = bufferevent_get_output(bev);
        if (evbuffer_get_length(out) == 0)
            continue;
        /* A socket bufferevent keeps the front of its output frozen, so that nothing but its
         * own write drains it; this is such a write. */
        evbuffer_unfreeze(out, 1);
        evbuffer_write(out, bufferevent_getfd(bev));
        evbuffer_freeze(out, 1);
        if (evbuffer_get_length(out) > 0) {
            /* The kernel took part (or none, or the socket failed): the bufferevent writes the
             * rest when it can, or reports the error through its event callback. */
            bufferevent_enable(bev, EV_WRITE);
        } else if (it->want_drained) {
            bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
        }
    }
}
