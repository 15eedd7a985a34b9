/* A connection's bytes over a plain socket: reads into one shared buffer, writes once per turn.
 *
 * An idle connection holds no buffer at all. A read lands in the buffer every stream shares and
 * is handed to the owner from there; only bytes it leaves (a frame not all there yet) are copied
 * into a buffer of the stream's own. What the owner writes during a loop turn is queued in a
 * buffer from a pool and sent once, at the turn's end; the buffer goes back to the pool when the
 * kernel has taken everything. So relaying a message allocates nothing once the pool is warm. */
#include "base/stream.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "base/pool.h"

#define READ_SIZE 65536    /* the shared buffer: the most one read takes */
#define BLOCK 16384        /* a stream's own buffer, from the pool; larger ones from malloc */
#define KEEP_BLOCKS 64     /* free blocks the pool keeps */
#define READ_AHEAD 262144  /* unconsumed bytes at which a stream stops reading until consumed */
#define BUF_MAX (1u << 30) /* the largest buffer a stream has: writes beyond fail */

/* READ_SIZE bytes where every socket read lands first, shared by every sb_streams_t (one thread
 * runs the loop, and a read is handed over before the next one is made). */
static char *rbuf;
static size_t rbuf_users;

struct sb_streams {
    struct event_base *base;
    int priority; /* of its streams' events and of the flush */
    sb_pool_t blocks;
    struct event *flush_ev; /* made active by the first stream queued in a turn */
    struct sock *head;      /* streams with bytes to send at the turn's end */
    struct evbuffer *scratch;
};

/* Bytes p[off, off + len) of a buffer of cap bytes (p is NULL when it has none). */
typedef struct {
    char *p;
    uint32_t off, len, cap;
} buf_t;

typedef struct sock {
    sb_stream_t s; /* first: a sock_t is its sb_stream_t */
    sb_streams_t *ss;
    struct event ev; /* reads and, while the kernel does not take everything, writes */
    evutil_socket_t fd;
    short events;             /* what ev waits for now */
    unsigned want_read : 1;   /* the owner's choice (reading) */
    unsigned writing : 1;     /* the kernel did not take everything: ev waits to write the rest */
    unsigned queued : 1;      /* in ss's list for the turn's end */
    unsigned later : 1;       /* read_later: ev was made active to hand over buffered bytes */
    unsigned dead : 1;        /* ended: on_end ran, nothing more is read or written */
    unsigned shared : 1;      /* in points into rbuf (only during on_read) */
    unsigned freed : 1;       /* the owner freed it inside a callback: freed once that returns */
    unsigned busy;            /* callbacks of the owner running now */
    buf_t in;                 /* read and not consumed */
    buf_t out;                /* queued */
    struct sock *prev, *next; /* in ss's list */
} sock_t;

static const sb_stream_ops_t sock_ops;

/* --- buffers --- */

/* A buffer of at least need bytes: a block from the pool, or from malloc when larger (rounded up
 * to a power of two). NULL when out of memory or over BUF_MAX. */
static char *buf_get(sb_streams_t *ss, size_t need, uint32_t *cap)
{
    if (need <= BLOCK) {
        *cap = BLOCK;
        return sb_pool_get(&ss->blocks);
    }
    size_t c = BLOCK;
    while (c < need)
        c *= 2;
    if (c > BUF_MAX)
        return NULL;
    *cap = (uint32_t)c;
    return malloc(c);
}

/* Gives b's memory back (to the pool when it is a block); b is then empty. */
static void buf_release(sb_streams_t *ss, buf_t *b)
{
    if (b->p != NULL) {
        if (b->cap == BLOCK)
            sb_pool_put(&ss->blocks, b->p);
        else
            free(b->p);
    }
    *b = (buf_t){0};
}

/* Makes room for more bytes after b's: moves them to the front, or into a buffer twice the size.
 * Returns 0, or -1 when out of memory (b unchanged). */
static int buf_room(sb_streams_t *ss, buf_t *b, size_t more)
{
    if (b->p != NULL && b->off + b->len + more <= b->cap)
        return 0;
    if (b->p != NULL && b->len + more <= b->cap) {
        memmove(b->p, b->p + b->off, b->len);
        b->off = 0;
        return 0;
    }
    uint32_t ncap;
    size_t need = b->len + more > 2 * (size_t)b->cap ? b->len + more : 2 * (size_t)b->cap;
    char *nb = buf_get(ss, need, &ncap);
    if (nb == NULL)
        return -1;
    if (b->len > 0)
        memcpy(nb, b->p + b->off, b->len);
    uint32_t len = b->len;
    buf_release(ss, b);
    *b = (buf_t){nb, 0, len, ncap};
    return 0;
}

/* --- the event --- */

static void on_event(evutil_socket_t fd, short what, void *arg);

/* Makes ev wait for what the stream needs now. */
static void update_events(sock_t *k)
{
    short want = 0;
    if (!k->dead) {
        if (k->want_read && k->in.len < READ_AHEAD)
            want |= EV_READ;
        if (k->writing)
            want |= EV_WRITE;
    }
    if (want == k->events)
        return;
    event_del(&k->ev); /* also takes it off the active queue: a pending read_later is redone */
    k->events = want;
    event_assign(&k->ev, k->ss->base, k->fd, (short)(want | EV_PERSIST), on_event, k);
    event_priority_set(&k->ev, k->ss->priority);
    if (want != 0)
        event_add(&k->ev, NULL);
    if (k->later)
        event_active(&k->ev, EV_READ, 0);
}

static void unqueue(sock_t *k)
{
    if (!k->queued)
        return;
    if (k->prev)
        k->prev->next = k->next;
    else
        k->ss->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
    k->queued = 0;
}

static void destroy(sock_t *k);

/* Before one of the owner's callbacks. */
static void enter(sock_t *k) { k->busy++; }

/* After it: the stream is destroyed now if the owner freed it meanwhile. Returns 0, or -1 when
 * the stream is gone (the caller must not touch it). */
static int leave(sock_t *k)
{
    if (--k->busy > 0 || !k->freed)
        return k->freed ? -1 : 0;
    destroy(k);
    return -1;
}

/* The end of the stream (err 0: EOF; else the socket's error): once. Returns as leave. */
static int end(sock_t *k, int err)
{
    if (k->dead)
        return 0;
    k->dead = 1;
    k->later = 0;
    unqueue(k);
    update_events(k);
    enter(k);
    if (k->s.on_end)
        k->s.on_end(k->s.arg, err);
    return leave(k);
}

/* --- reading --- */

/* Whatever the owner left of a read into the shared buffer goes into a buffer of its own; an own
 * buffer emptied goes back. Returns as leave. */
static int keep_rest(sock_t *k)
{
    if (!k->shared) {
        if (k->in.len == 0)
            buf_release(k->ss, &k->in);
        return 0;
    }
    k->shared = 0;
    buf_t rest = k->in;
    k->in = (buf_t){0};
    if (rest.len == 0)
        return 0;
    if (buf_room(k->ss, &k->in, rest.len) != 0)
        return end(k, ENOMEM);
    memcpy(k->in.p, rest.p + rest.off, rest.len);
    k->in.len = rest.len;
    return 0;
}

static void hand_over(sock_t *k)
{
    enter(k);
    if (k->s.on_read)
        k->s.on_read(k->s.arg);
    if (leave(k) != 0) /* destroy() gave the shared buffer back as it is */
        return;
    if (keep_rest(k) == 0)
        update_events(k);
}

static void read_socket(sock_t *k)
{
    sb_streams_t *ss = k->ss;
    ssize_t n;
    if (k->in.len == 0) {
        n = recv(k->fd, rbuf, READ_SIZE, 0);
        if (n > 0) {
            buf_release(ss, &k->in); /* an empty own buffer, if any */
            k->in = (buf_t){rbuf, 0, (uint32_t)n, READ_SIZE};
            k->shared = 1;
        }
    } else {
        if (buf_room(ss, &k->in, BLOCK / 4) != 0) {
            end(k, ENOMEM);
            return;
        }
        n = recv(k->fd, k->in.p + k->in.off + k->in.len, k->in.cap - k->in.off - k->in.len, 0);
        if (n > 0)
            k->in.len += (uint32_t)n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        end(k, n == 0 ? 0 : errno);
        return;
    }
    hand_over(k);
}

/* --- writing --- */

/* Sends what is queued; what the kernel does not take waits for the socket to drain. Returns as
 * leave. */
static int write_out(sock_t *k)
{
    while (k->out.len > 0) {
        ssize_t n = send(k->fd, k->out.p + k->out.off, k->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            k->out.off += (uint32_t)n;
            k->out.len -= (uint32_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            k->writing = 1;
            update_events(k);
            return 0;
        } else {
            return end(k, n < 0 ? errno : EIO);
        }
    }
    buf_release(k->ss, &k->out);
    if (k->writing) {
        k->writing = 0;
        update_events(k);
    }
    enter(k);
    if (k->s.on_drained)
        k->s.on_drained(k->s.arg);
    return leave(k);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    sb_streams_t *ss = arg;
    (void)fd;
    (void)what;
    /* on_drained and on_end may queue or end other streams: take each off the list first. */
    while (ss->head != NULL) {
        sock_t *k = ss->head;
        unqueue(k);
        write_out(k);
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    sock_t *k = arg;
    (void)fd;
    if ((what & EV_WRITE) && !k->dead && write_out(k) != 0)
        return;
    if (!(what & EV_READ) || k->dead)
        return;
    if (k->later) {
        /* Bytes already read, handed over again; the socket is read on the next wake-up. */
        k->later = 0;
        if (k->want_read)
            hand_over(k);
        return;
    }
    read_socket(k);
}

/* --- the operations --- */

static char *sock_data(sb_stream_t *s, size_t *len)
{
    sock_t *k = (sock_t *)s;
    *len = k->in.len;
    return k->in.len > 0 ? k->in.p + k->in.off : NULL;
}

static void sock_consume(sb_stream_t *s, size_t n)
{
    sock_t *k = (sock_t *)s;
    if (n > k->in.len)
        n = k->in.len;
    k->in.off += (uint32_t)n;
    k->in.len -= (uint32_t)n;
    if (k->in.len == 0)
        k->in.off = 0;
}

static int sock_write(sb_stream_t *s, const sb_str_t *parts, size_t n)
{
    sock_t *k = (sock_t *)s;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    if (k->dead || len == 0)
        return 0;
    if (len > BUF_MAX - k->out.len || buf_room(k->ss, &k->out, len) != 0)
        return -1;
    char *p = k->out.p + k->out.off + k->out.len;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len > 0)
            memcpy(p, parts[i].p, parts[i].len);
        p += parts[i].len;
    }
    k->out.len += (uint32_t)len;
    if (!k->writing && !k->queued) {
        sb_streams_t *ss = k->ss;
        /* The first of a turn makes the flush active: it runs after the callbacks already due
         * at its priority. */
        if (ss->head == NULL)
            event_active(ss->flush_ev, EV_TIMEOUT, 0);
        k->queued = 1;
        k->next = ss->head;
        if (ss->head)
            ss->head->prev = k;
        ss->head = k;
    }
    return 0;
}

static size_t sock_pending(const sb_stream_t *s) { return ((const sock_t *)s)->out.len; }

static void sock_reading(sb_stream_t *s, int on)
{
    sock_t *k = (sock_t *)s;
    k->want_read = on != 0;
    update_events(k);
}

static void sock_read_later(sb_stream_t *s)
{
    sock_t *k = (sock_t *)s;
    if (k->dead || k->later)
        return;
    k->later = 1;
    event_active(&k->ev, EV_READ, 0);
}

static void sock_close_write(sb_stream_t *s) { shutdown(((sock_t *)s)->fd, SHUT_WR); }

static void destroy(sock_t *k)
{
    unqueue(k);
    event_del(&k->ev);
    evutil_closesocket(k->fd);
    if (!k->shared)
        buf_release(k->ss, &k->in);
    buf_release(k->ss, &k->out);
    free(k);
}

static void sock_free(sb_stream_t *s)
{
    sock_t *k = (sock_t *)s;
    if (k->busy == 0) {
        destroy(k);
        return;
    }
    /* Inside one of its callbacks: silent from now on, destroyed when the callback returns. */
    k->freed = 1;
    k->dead = 1;
    k->later = 0;
    unqueue(k);
    event_del(&k->ev);
    k->s.on_read = NULL;
    k->s.on_drained = NULL;
    k->s.on_end = NULL;
}

static const sb_stream_ops_t sock_ops = {sock_data,        sock_consume, sock_write,
                                         sock_pending,     sock_reading, sock_read_later,
                                         sock_close_write, sock_free};

sb_stream_t *sb_stream_socket_new(sb_streams_t *ss, evutil_socket_t fd)
{
    sock_t *k = calloc(1, sizeof(*k));
    if (k == NULL || evutil_make_socket_nonblocking(fd) != 0) {
        free(k);
        evutil_closesocket(fd);
        return NULL;
    }
    k->s.ops = &sock_ops;
    k->ss = ss;
    k->fd = fd;
    event_assign(&k->ev, ss->base, fd, EV_PERSIST, on_event, k);
    event_priority_set(&k->ev, ss->priority);
    return &k->s;
}

/* --- shared --- */

sb_streams_t *sb_streams_new(struct event_base *base, int priority)
{
    sb_streams_t *ss = calloc(1, sizeof(*ss));
    if (ss == NULL)
        return NULL;
    ss->base = base;
    ss->priority = priority;
    ss->blocks = (sb_pool_t)SB_POOL_INIT(BLOCK, KEEP_BLOCKS);
    if (rbuf_users++ == 0)
        rbuf = malloc(READ_SIZE);
    ss->scratch = evbuffer_new();
    ss->flush_ev = event_new(base, -1, 0, on_flush, ss);
    if (rbuf == NULL || ss->scratch == NULL || ss->flush_ev == NULL ||
        event_priority_set(ss->flush_ev, priority) != 0) {
        sb_streams_free(ss);
        return NULL;
    }
    return ss;
}

void sb_streams_free(sb_streams_t *ss)
{
    if (ss == NULL)
        return;
    if (ss->flush_ev)
        event_free(ss->flush_ev);
    if (ss->scratch)
        evbuffer_free(ss->scratch);
    sb_pool_drain(&ss->blocks);
    if (--rbuf_users == 0) {
        free(rbuf);
        rbuf = NULL;
    }
    free(ss);
}

struct event_base *sb_streams_base(const sb_streams_t *ss) { return ss->base; }
struct evbuffer *sb_streams_scratch(sb_streams_t *ss) { return ss->scratch; }

int sb_stream_write_evbuffer(sb_stream_t *s, struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    if (len == 0)
        return 0;
    /* One part per chunk of b, at most 16 at a time (an answer is a head and a body or file). */
    struct evbuffer_iovec vec[16];
    while (evbuffer_get_length(b) > 0) {
        int n = evbuffer_peek(b, -1, NULL, vec, 16);
        if (n <= 0)
            break;
        if (n > 16)
            n = 16;
        sb_str_t parts[16];
        size_t taken = 0;
        for (int i = 0; i < n; i++) {
            parts[i] = (sb_str_t){vec[i].iov_base, vec[i].iov_len};
            taken += vec[i].iov_len;
        }
        if (sb_stream_write(s, parts, (size_t)n) != 0) {
            evbuffer_drain(b, evbuffer_get_length(b));
            return -1;
        }
        evbuffer_drain(b, taken);
    }
    return 0;
}
