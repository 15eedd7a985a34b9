/* A connection's bytes (a client's or Redis's): what was read and not consumed, what waits to go.
 */
#ifndef SB_STREAM_H
#define SB_STREAM_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "str.h"

/* What the streams of one event loop share: a plain socket's reads land in one buffer common to
 * all of them, its own buffers come from one pool, its writes are gathered per loop turn. */
typedef struct sb_streams sb_streams_t;

typedef struct sb_stream sb_stream_t;

/* What a kind of stream does (a plain socket here; a bufferevent, for TLS). */
typedef struct {
    /* The bytes read and not consumed yet, contiguous and writable (a frame may be unmasked
     * where it lies); *len is 0 when there are none. Valid until the next call on the stream. */
    char *(*data)(sb_stream_t *s, size_t *len);
    /* Takes the first n of those bytes away. */
    void (*consume)(sb_stream_t *s, size_t n);
    /* Queues the concatenation of n parts, whole or not at all. Returns 0, or -1 when out of
     * memory. After the end, bytes are accepted and dropped. */
    int (*write)(sb_stream_t *s, const sb_str_t *parts, size_t n);
    /* Bytes queued and not written yet. */
    size_t (*pending)(const sb_stream_t *s);
    /* Reads the socket (on = 1, the start) or stops reading it (0). */
    void (*reading)(sb_stream_t *s, int on);
    /* Calls on_read again on a later loop turn, for bytes already read. */
    void (*read_later)(sb_stream_t *s);
    /* Ends the sending direction (a TCP half-close, after TLS's close_notify); once nothing is
     * pending, so that the peer reads everything before the end. */
    void (*close_write)(sb_stream_t *s);
    /* Closes the socket and frees the stream, dropping whatever is pending. */
    void (*free)(sb_stream_t *s);
} sb_stream_ops_t;

/* Every stream starts with this. Its owner sets the callbacks (sb_stream_setcb); each runs from
 * the event loop, never from within a call on the stream, and may free the stream. */
struct sb_stream {
    const sb_stream_ops_t *ops;
    void (*on_read)(void *arg);    /* bytes were read (or are still there: read_later) */
    void (*on_drained)(void *arg); /* everything queued has been written */
    /* The peer closed its end (err 0), or the socket failed (an errno): nothing more comes. */
    void (*on_end)(void *arg, int err);
    void *arg;
};

static inline void sb_stream_setcb(sb_stream_t *s, void (*on_read)(void *),
                                   void (*on_drained)(void *), void (*on_end)(void *, int),
                                   void *arg)
{
    s->on_read = on_read;
    s->on_drained = on_drained;
    s->on_end = on_end;
    s->arg = arg;
}

static inline char *sb_stream_data(sb_stream_t *s, size_t *len) { return s->ops->data(s, len); }
static inline void sb_stream_consume(sb_stream_t *s, size_t n) { s->ops->consume(s, n); }
static inline int sb_stream_write(sb_stream_t *s, const sb_str_t *parts, size_t n)
{
    return s->ops->write(s, parts, n);
}
static inline size_t sb_stream_pending(const sb_stream_t *s) { return s->ops->pending(s); }
static inline void sb_stream_reading(sb_stream_t *s, int on) { s->ops->reading(s, on); }
static inline void sb_stream_read_later(sb_stream_t *s) { s->ops->read_later(s); }
static inline void sb_stream_close_write(sb_stream_t *s) { s->ops->close_write(s); }
static inline void sb_stream_free(sb_stream_t *s)
{
    if (s != NULL)
        s->ops->free(s);
}

/* Moves everything in b (emptied) to the end of s's output. Returns 0, or -1 when out of
 * memory. For answers built with evbuffer_add_printf and the like (HTTP, not the hot path). */
int sb_stream_write_evbuffer(sb_stream_t *s, struct evbuffer *b);

/* The shared state of some streams of base, whose writes are gathered at priority (the read
 * buffer is one for the whole process: one thread runs the loop). NULL when out of memory. */
sb_streams_t *sb_streams_new(struct event_base *base, int priority);

/* Frees it; every stream made from it must be freed first. */
void sb_streams_free(sb_streams_t *ss);

struct event_base *sb_streams_base(const sb_streams_t *ss);

/* An empty buffer to build an answer in before sb_stream_write_evbuffer (empty it after). */
struct evbuffer *sb_streams_scratch(sb_streams_t *ss);

/* A stream over fd, a connected non-blocking plain socket, which it owns: reads go first into
 * the shared buffer, and only what the owner leaves unconsumed is copied into one of its own;
 * writes are queued in a buffer of its own (from the pool, given back once written) and written
 * at the end of the loop turn, one send per socket. NULL (fd closed) when out of memory. */
sb_stream_t *sb_stream_socket_new(sb_streams_t *ss, evutil_socket_t fd);

/* A stream over bev, a connected bufferevent, which it owns (and enables), for what only a
 * bufferevent does (TLS). close_write (may be NULL) ends bev's sending direction. NULL (bev
 * freed) when out of memory. */
sb_stream_t *sb_stream_bev_new(struct bufferevent *bev,
                               void (*close_write)(struct bufferevent *bev));

#endif
