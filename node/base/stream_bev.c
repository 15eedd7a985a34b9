/* A connection's bytes through a bufferevent: for what only one does here (TLS). */
#include <errno.h>
#include <stdlib.h>

#include "base/stream.h"

typedef struct {
    sb_stream_t s; /* first */
    struct bufferevent *bev;
    void (*close_write)(struct bufferevent *bev);
} bevs_t;

static char *bevs_data(sb_stream_t *s, size_t *len)
{
    struct evbuffer *in = bufferevent_get_input(((bevs_t *)s)->bev);
    *len = evbuffer_get_length(in);
    return *len > 0 ? (char *)evbuffer_pullup(in, -1) : NULL;
}

static void bevs_consume(sb_stream_t *s, size_t n)
{
    evbuffer_drain(bufferevent_get_input(((bevs_t *)s)->bev), n);
}

static int bevs_write(sb_stream_t *s, const sb_str_t *parts, size_t n)
{
    struct evbuffer *out = bufferevent_get_output(((bevs_t *)s)->bev);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    /* Room for all of it first: queued whole or not at all. */
    if (evbuffer_expand(out, len) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (parts[i].len > 0)
            evbuffer_add(out, parts[i].p, parts[i].len);
    return 0;
}

static size_t bevs_pending(const sb_stream_t *s)
{
    return evbuffer_get_length(bufferevent_get_output(((const bevs_t *)s)->bev));
}

static void bevs_reading(sb_stream_t *s, int on)
{
    bevs_t *b = (bevs_t *)s;
    if (on)
        bufferevent_enable(b->bev, EV_READ);
    else
        bufferevent_disable(b->bev, EV_READ);
}

static void bevs_read_later(sb_stream_t *s)
{
    bufferevent_trigger(((bevs_t *)s)->bev, EV_READ,
                        BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void bevs_close_write(sb_stream_t *s)
{
    bevs_t *b = (bevs_t *)s;
    if (b->close_write != NULL)
        b->close_write(b->bev);
}

static void bevs_free(sb_stream_t *s)
{
    bevs_t *b = (bevs_t *)s;
    bufferevent_free(b->bev);
    free(b);
}

static const sb_stream_ops_t bevs_ops = {bevs_data,        bevs_consume, bevs_write,
                                         bevs_pending,     bevs_reading, bevs_read_later,
                                         bevs_close_write, bevs_free};

static void on_read(struct bufferevent *bev, void *arg)
{
    sb_stream_t *s = arg;
    (void)bev;
    if (s->on_read)
        s->on_read(s->arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    sb_stream_t *s = arg;
    (void)bev;
    if (s->on_drained)
        s->on_drained(s->arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    sb_stream_t *s = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    int err = 0;
    if (what & BEV_EVENT_ERROR)
        err = EVUTIL_SOCKET_ERROR() != 0 ? EVUTIL_SOCKET_ERROR() : EIO;
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    if (s->on_end)
        s->on_end(s->arg, err);
}

sb_stream_t *sb_stream_bev_new(struct bufferevent *bev,
                               void (*close_write)(struct bufferevent *bev))
{
    bevs_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        bufferevent_free(bev);
        return NULL;
    }
    b->s.ops = &bevs_ops;
    b->bev = bev;
    b->close_write = close_write;
    bufferevent_setcb(bev, on_read, on_write, on_event, b);
    bufferevent_enable(bev, EV_WRITE);
    return &b->s;
}
