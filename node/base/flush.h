/* Socket writes gathered per event-loop turn: written once, at the turn's end, by one writev. */
#ifndef SB_FLUSH_H
#define SB_FLUSH_H

#include <event2/bufferevent.h>
#include <event2/event.h>

/* A socket bufferevent left to itself writes each time epoll says its socket is writable: two
 * epoll_ctl calls and a wake-up for every message it sends. Attached to a flusher, its write
 * event stays off; what its owner adds to the output during a turn is written right after the
 * turn's other callbacks of the same priority, in one call. Only what the kernel does not take
 * then is left to the bufferevent, which writes it when the socket drains (write callback), after
 * which the owner hands the writing back with sb_flush_drained. */
typedef struct sb_flush sb_flush_t;

/* One bufferevent's place in a flusher; embedded in its owner, which keeps it while attached. */
typedef struct sb_flush_item {
    sb_flush_t *flush;
    struct bufferevent *bev; /* NULL when detached */
    struct evbuffer_cb_entry *watch;
    struct sb_flush_item *prev, *next;
    int queued;
    int want_drained; /* run the write callback when a flush has written everything */
} sb_flush_item_t;

/* A flusher for base, whose flush runs at priority (that of the bufferevents it serves, so that
 * busy higher priorities never starve it). NULL when out of memory. */
sb_flush_t *sb_flush_new(struct event_base *base, int priority);

/* Frees f; every item must be detached. */
void sb_flush_free(sb_flush_t *f);

/* Takes over the writing of bev, a socket bufferevent (not a filtering or TLS one): from now
 * on, whatever is added to its output is written at the end of the turn. Returns 0, or -1 when
 * out of memory (bev then writes as before). */
int sb_flush_attach(sb_flush_t *f, sb_flush_item_t *it, struct bufferevent *bev);

/* From the bufferevent's write callback with the output empty: the flusher writes again. */
void sb_flush_drained(sb_flush_item_t *it);

/* Gives bev back (before it is freed, or to write it some other way from now on); nothing when
 * it was never attached. */
void sb_flush_detach(sb_flush_item_t *it);

#endif
