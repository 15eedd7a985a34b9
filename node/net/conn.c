/* One client connection: PROXY header, HTTP head, WebSocket upgrade, framing, pings, closing. */
#include "net/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "http.h"
#include "net/auth.h"
#include "net/http_response.h"
#include "proxy.h"
#include "ws.h"

/* The largest request head accepted; a longer one is answered 431. */
#define MAX_HEAD 8192

/* Messages handled per read callback; the rest wait for a later loop turn, so that one client's
 * burst is cut into slices like everyone else's work (loop.h). */
#define READ_BATCH 64

typedef enum {
    PHASE_PROXY,   /* reading a trusted proxy's PROXY header off the socket, before the transport
                      starts (deadline: handshake timeout, which goes on through PHASE_HTTP) */
    PHASE_HTTP,    /* reading the request head (deadline: handshake timeout) */
    PHASE_OPEN,    /* WebSocket open (timer: idle ping, then pong deadline) */
    PHASE_CLOSING, /* we sent a close frame; waiting for the peer's (deadline: close timeout) */
    PHASE_LINGER,  /* flushing our last bytes, then a half-close; waiting for the peer's EOF */
    PHASE_DEAD,    /* handed to the server to free */
} phase_t;

struct sb_conn {
    const sb_conn_env_t *env;
    uint64_t id;
    sb_stream_t *stream;    /* NULL until the transport starts (after PHASE_PROXY) */
    evutil_socket_t fd;     /* the socket while no transport holds it, else -1 */
    struct event *proxy_ev; /* reads the PROXY header off fd; NULL when none is expected */
    uint8_t *hdr;           /* the PROXY header's bytes so far (SB_PROXY_MAX_HEADER of room) */
    size_t hdr_len;
    sb_deadline_t deadline; /* one at a time, its meaning set by the phase */
    phase_t phase;
    sb_closed_t why;           /* why an open WebSocket is ending, for the metrics */
    unsigned reserved : 1;     /* its slot in the env's deadlines */
    unsigned was_open : 1;     /* the handler saw on_open, so it gets on_close */
    unsigned paused : 1;       /* sb_conn_pause: no messages to the handler, no reading */
    unsigned write_closed : 1; /* the stream's close_write has run */
    unsigned via_proxy : 1;    /* the socket is a trusted proxy's without --proxy-protocol: its
                                  client is checked from the head's X-Forwarded-For */
    sb_ws_reader_t reader;
    double last_read; /* event-loop time of the last bytes received */
    double ping_sent; /* when the outstanding ping was sent, 0 when none */
    char *query;
    sb_token_claims_t *claims; /* the token's, when tokens are on */
    sb_dialect_t dialect;      /* the client protocol it upgraded to */
    void *data;
    char peer[48];       /* the client's address as text (INET6_ADDRSTRLEN and a little) */
    sb_ip_t addr;        /* the socket's address */
    sb_source_t *source; /* counted against the per-source limits, released when freed */
    sb_conn_t *prev, *next;
};

static uint64_t next_id = 1;

static double now(const sb_conn_t *c) { return sb_loop_now(c->env->base); }

static void arm(sb_conn_t *c, double seconds)
{
    sb_deadlines_set(c->env->deadlines, &c->deadline,
                     sb_clock_mono() + (seconds < 0.001 ? 0.001 : seconds));
}

static const sb_config_t *cfg(const sb_conn_t *c) { return c->env->cfg; }

/* Tells the handler, once, that an open WebSocket has ended. */
static void end_ws(sb_conn_t *c)
{
    if (!c->was_open)
        return;
    c->was_open = 0;
    sb_metrics.websockets--;
    sb_metrics.closed[c->why]++;
    const sb_handler_t *h = c->env->handler;
    if (h->on_close)
        h->on_close(h->app, c);
}

/* Ends the connection now: no more callbacks and no more sends; the server frees it, and the
 * handler hears of it, on the next loop turn, never in the middle of the handler's own work. */
static void finish(sb_conn_t *c)
{
    if (c->phase == PHASE_DEAD)
        return;
    c->phase = PHASE_DEAD;
    if (c->stream != NULL) {
        sb_stream_reading(c->stream, 0);
        sb_stream_setcb(c->stream, NULL, NULL, NULL, NULL);
    }
    if (c->proxy_ev != NULL)
        event_del(c->proxy_ev);
    sb_deadlines_clear(c->env->deadlines, &c->deadline);
    c->env->on_end(c->env->end_ctx, c);
}

/* Ends the sending direction once nothing is left to send, once. */
static void close_write_when_flushed(sb_conn_t *c)
{
    if (c->write_closed || sb_stream_pending(c->stream) > 0)
        return;
    c->write_closed = 1;
    sb_stream_close_write(c->stream);
}

/* Half-closes once everything queued is written, then waits briefly for the peer's EOF: closing
 * at once could reset the connection and lose the bytes still in flight. */
static void linger(sb_conn_t *c)
{
    c->phase = PHASE_LINGER;
    arm(c, cfg(c)->close_timeout);
    close_write_when_flushed(c);
}

/* Queues a frame. Returns -1 (and drops the connection) when the client has stopped reading
 * and more than --max-output bytes are waiting for it. */
static int send_frame_parts(sb_conn_t *c, int opcode, const sb_str_t *parts, size_t n)
{
    uint8_t head[SB_WS_MAX_HEADER];
    sb_str_t frame[1 + SB_CONN_MAX_PARTS];
    size_t len = 0;
    if (n > SB_CONN_MAX_PARTS)
        return -1;
    for (size_t i = 0; i < n; i++) {
        len += parts[i].len;
        frame[1 + i] = parts[i];
    }
    frame[0] = (sb_str_t){(const char *)head, sb_ws_write_header(head, 1, opcode, len, NULL)};
    int rc = sb_stream_write(c->stream, frame, 1 + n); /* whole or not at all */
    if (rc != 0 || sb_stream_pending(c->stream) > cfg(c)->max_output) {
        if (c->phase == PHASE_OPEN)
            c->why = SB_CLOSED_SLOW_READER;
        sb_log_client(SB_LOG_INFO, c->id, c->peer,
                      "dropped: more than %zu bytes queued, not reading", cfg(c)->max_output);
        finish(c);
        return -1;
    }
    return 0;
}

static int send_frame(sb_conn_t *c, int opcode, const void *data, size_t len)
{
    sb_str_t part = {data, len};
    return send_frame_parts(c, opcode, &part, 1);
}

int sb_conn_send_text(sb_conn_t *c, const char *data, size_t len)
{
    sb_str_t part = {data, len};
    return sb_conn_send_parts(c, &part, 1);
}

int sb_conn_send_parts(sb_conn_t *c, const sb_str_t *parts, size_t n)
{
    if (c->phase != PHASE_OPEN || send_frame_parts(c, SB_WS_OP_TEXT, parts, n) != 0)
        return -1;
    sb_metrics.messages_out++;
    for (size_t i = 0; i < n; i++)
        sb_metrics.bytes_out += parts[i].len;
    return 0;
}

void sb_conn_close(sb_conn_t *c, uint16_t code, const char *reason)
{
    uint8_t payload[SB_WS_MAX_CONTROL];

    if (c->phase == PHASE_PROXY || c->phase == PHASE_HTTP) {
        finish(c);
        return;
    }
    if (c->phase != PHASE_OPEN)
        return;
    sb_log_conn(SB_LOG_DEBUG, c->id, c->peer, "closing with %u%s%s", code, reason ? ": " : "",
                reason ? reason : "");
    if (send_frame(c, SB_WS_OP_CLOSE, payload, sb_ws_close_payload(payload, code, reason)) != 0)
        return;
    c->why = code == SB_WS_CLOSE_GOING_AWAY ? SB_CLOSED_SHUTDOWN : SB_CLOSED_REFUSED;
    c->phase = PHASE_CLOSING;
    arm(c, cfg(c)->close_timeout);
    if (c->paused) { /* the peer's close frame must still be read */
        sb_stream_reading(c->stream, 1);
        sb_stream_read_later(c->stream);
    }
}

void sb_conn_pause(sb_conn_t *c)
{
    if (c->paused || c->phase != PHASE_OPEN)
        return;
    c->paused = 1;
    sb_stream_reading(c->stream, 0);
}

void sb_conn_resume(sb_conn_t *c)
{
    if (!c->paused)
        return;
    c->paused = 0;
    if (c->phase != PHASE_OPEN)
        return;
    sb_stream_reading(c->stream, 1);
    sb_stream_read_later(c->stream);
}

/* A protocol violation fails the connection (RFC 6455 7.1.7): a close frame saying why, then the
 * TCP close at once; the framing may be lost, so nothing more is parsed. */
static void fail_ws(sb_conn_t *c, int error, const char *why)
{
    uint8_t payload[SB_WS_MAX_CONTROL];
    int was_open = c->phase == PHASE_OPEN;
    uint16_t code = sb_ws_error_close_code(error);

    sb_metrics_protocol_error(code);
    if (was_open)
        c->why = SB_CLOSED_PROTOCOL;
    sb_log_client(SB_LOG_INFO, c->id, c->peer, "closing with %u: %s", code, why);
    if (was_open &&
        send_frame(c, SB_WS_OP_CLOSE, payload, sb_ws_close_payload(payload, code, why)) != 0)
        return;
    linger(c);
}

static void on_ws_event(sb_conn_t *c, const sb_ws_event_t *ev)
{
    const sb_handler_t *h = c->env->handler;

    switch (ev->type) {
    case SB_WS_EV_TEXT:
        if (c->phase != PHASE_OPEN)
            return; /* after our close frame, data is ignored (RFC 6455 1.4) */
        sb_metrics.messages_in++;
        sb_metrics.bytes_in += ev->len;
        if (h->on_text)
            h->on_text(h->app, c, (const char *)ev->data, ev->len);
        return;
    case SB_WS_EV_PING:
        if (c->phase == PHASE_OPEN)
            send_frame(c, SB_WS_OP_PONG, ev->data, ev->len);
        return;
    case SB_WS_EV_CLOSE:
        if (c->phase == PHASE_OPEN) {
            /* The peer closes first: echo its code (none when it sent none), then end. */
            c->why = SB_CLOSED_NORMAL;
            uint8_t payload[SB_WS_MAX_CONTROL];
            size_t n = 0;
            if (ev->close_code != SB_WS_CLOSE_NO_STATUS)
                n = sb_ws_close_payload(payload, ev->close_code, NULL);
            if (send_frame(c, SB_WS_OP_CLOSE, payload, n) != 0)
                return;
        }
        linger(c);
        return;
    case SB_WS_EV_BINARY: /* refused by the reader: the protocol is text JSON */
    case SB_WS_EV_PONG:   /* any bytes count as a sign of life */
    case SB_WS_EV_NONE:
        return;
    }
}

/* Feeds the reader what is buffered, one event at a time, READ_BATCH messages at most. */
static void read_ws(sb_conn_t *c)
{
    int batch = READ_BATCH;

    while (c->phase == PHASE_CLOSING || (c->phase == PHASE_OPEN && !c->paused)) {
        size_t avail;
        char *buf = sb_stream_data(c->stream, &avail);
        if (avail == 0)
            return;
        if (batch == 0) {
            sb_stream_read_later(c->stream);
            return;
        }
        sb_ws_event_t ev;
        const char *why = NULL;
        /* A whole frame in the buffer is unmasked where it lies and handed over from there. */
        int n = sb_ws_reader_feed_in_place(&c->reader, (uint8_t *)buf, avail, &ev, &why);
        if (n == 0 && ev.type == SB_WS_EV_NONE)
            return; /* a frame header not all there yet */
        if (n < 0) {
            fail_ws(c, n, why);
            continue;
        }
        if (ev.type == SB_WS_EV_TEXT)
            batch--;
        on_ws_event(c, &ev);
        sb_stream_consume(c->stream, (size_t)n); /* after: the event's data may lie in it */
    }
}

static void open_ws(sb_conn_t *c)
{
    c->phase = PHASE_OPEN;
    c->was_open = 1;
    c->why = SB_CLOSED_GONE; /* until something says otherwise */
    sb_metrics.websockets++;
    sb_ws_reader_init(&c->reader, SB_WS_SERVER, cfg(c)->max_message, 0);
    arm(c, cfg(c)->ping_interval);
    sb_log_conn(SB_LOG_DEBUG, c->id, c->peer, "websocket open");
    const sb_handler_t *h = c->env->handler;
    if (h->on_open)
        h->on_open(h->app, c);
}

/* Answers status (with extra header lines, or NULL), counted, then ends the connection. */
static void refuse_with(sb_conn_t *c, int status, const char *why, const char *extra)
{
    struct evbuffer *out = sb_streams_scratch(c->env->streams);
    sb_metrics_http_error(status);
    sb_http_error(out, status, why, extra, 0);
    sb_stream_write_evbuffer(c->stream, out);
    linger(c);
}

/* Answers a request head that could not be read, then ends the connection. */
static void refuse(sb_conn_t *c, int status, const char *why) { refuse_with(c, status, why, NULL); }

/* Counts the connection against its source's limits (c->addr); over one, answers 429 and ends
 * it. Returns 0 when admitted, -1 when refused. */
static int admit(sb_conn_t *c)
{
    unsigned retry = 1;
    sb_source_verdict_t v = sb_limits_admit(c->env->limits, &c->addr, &c->source, &retry);
    if (v == SB_SOURCE_OK)
        return 0;
    char why[160], extra[40], source[SB_SOURCE_TEXT];
    sb_source_format(&c->addr, source, sizeof(source)); /* an IPv6 client's /64 */
    if (v == SB_SOURCE_CONNECTIONS)
        snprintf(why, sizeof(why), "too many connections from %s (at most %zu open)", source,
                 cfg(c)->source_connections);
    else
        snprintf(why, sizeof(why), "too many new connections from %s (at most %zu a second)",
                 source, cfg(c)->source_handshakes);
    snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", retry);
    sb_log_client(SB_LOG_INFO, c->id, c->peer, "refused 429: %s", why);
    refuse_with(c, 429, why, extra);
    return -1;
}

static void read_http(sb_conn_t *c)
{
    size_t avail;
    const char *buf = sb_stream_data(c->stream, &avail);
    size_t look = avail < MAX_HEAD ? avail : MAX_HEAD;
    sb_http_request_t req;
    const char *err = NULL;

    int n = sb_http_parse_request(buf, look, &req, &err);
    if (n < 0) {
        refuse(c, n == SB_HTTP_TOO_LARGE ? 431 : 400, err);
        return;
    }
    if (n == 0) {
        if (avail >= MAX_HEAD)
            refuse(c, 431, "request head over 8192 bytes");
        return;
    }

    if (c->via_proxy) {
        /* A trusted proxy: the client it names is the source, and what logs show. */
        sb_limits_client(c->env->limits, &req, &c->addr);
        sb_ip_format(&c->addr, c->peer, sizeof(c->peer));
        if (admit(c) != 0)
            return;
    }
    sb_route_conn_t rc = {.id = c->id, .remote = c->peer, .claims = NULL};
    struct evbuffer *out = sb_streams_scratch(c->env->streams);
    sb_route_t route = c->env->route(c->env->route_ctx, &req, out, &rc);
    if (sb_stream_write_evbuffer(c->stream, out) != 0) {
        sb_auth_claims_free(rc.claims);
        finish(c);
        return;
    }
    if (route != SB_ROUTE_UPGRADE) {
        sb_auth_claims_free(rc.claims);
        linger(c);
        return;
    }
    c->claims = rc.claims;
    c->dialect = rc.dialect;
    c->query = req.query.len > 0 ? strndup(req.query.p, req.query.len) : NULL;
    if (req.query.len > 0 && c->query == NULL) {
        finish(c);
        return;
    }
    sb_stream_consume(c->stream, (size_t)n);
    open_ws(c);
    read_ws(c); /* frames sent right behind the request head */
}

static void on_read(void *arg)
{
    sb_conn_t *c = arg;
    size_t len;
    c->last_read = now(c);
    switch (c->phase) {
    case PHASE_PROXY: /* no stream yet */
        break;
    case PHASE_HTTP:
        read_http(c);
        break;
    case PHASE_OPEN:
    case PHASE_CLOSING:
        read_ws(c);
        break;
    case PHASE_LINGER:
    case PHASE_DEAD:
        sb_stream_data(c->stream, &len);
        sb_stream_consume(c->stream, len);
        break;
    }
}

/* Everything queued has been written. */
static void on_drained(void *arg)
{
    sb_conn_t *c = arg;
    if (c->phase == PHASE_LINGER)
        close_write_when_flushed(c);
}

/* The peer closed its end, or the socket failed. */
static void on_end(void *arg, int err)
{
    sb_conn_t *c = arg;
    (void)err;
    if (c->phase == PHASE_OPEN)
        sb_log_conn(SB_LOG_DEBUG, c->id, c->peer, "dropped without a close frame (1006)");
    finish(c);
}

/* Hands the socket to the transport, which reads and writes it from now on. Returns 0, or -1
 * when out of memory (the socket closed). */
static int open_transport(sb_conn_t *c, evutil_socket_t fd)
{
    c->stream = c->env->transport->open(c->env->transport, c->env->streams, fd); /* owns fd */
    if (c->stream == NULL)
        return -1;
    c->phase = PHASE_HTTP;
    sb_stream_setcb(c->stream, on_read, on_drained, on_end, c);
    sb_stream_reading(c->stream, 1);
    return 0;
}

/* A trusted proxy's connection without a valid PROXY header: closed with no answer (nothing
 * could be sent that the proxy would take for its client's), counted and logged. */
static void proxy_failed(sb_conn_t *c, const char *why)
{
    sb_metrics.proxy_protocol_errors++;
    sb_log_client(SB_LOG_INFO, c->id, c->peer, "closed: no valid PROXY header: %s", why);
    finish(c);
}

/* The PROXY header is read off the socket itself, before any transport: it comes ahead of the
 * TLS ClientHello as it does of an HTTP request. Bytes are peeked, and only the header's are
 * taken off the socket (all those peeked while it is incomplete, exactly the rest once it is
 * complete), so whatever follows it stays in the socket for the transport, which then starts as
 * on any other connection: no transport needs a way to be handed bytes already read. The
 * header's bytes so far are kept in c->hdr and parsed whole on every read. */
static void on_proxy_read(evutil_socket_t fd, short what, void *arg)
{
    sb_conn_t *c = arg;
    sb_proxy_header_t h;
    const char *why = NULL;
    (void)what;

    if (c->phase != PHASE_PROXY)
        return;
    ssize_t n =
        recv(fd, c->hdr + c->hdr_len, SB_PROXY_MAX_HEADER - c->hdr_len, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        if (c->hdr_len == 0) {
            finish(c); /* connected and left without a byte: a port probe, nothing wrong */
            return;
        }
        proxy_failed(c, "the connection ended before its PROXY header was complete");
        return;
    }
    int rc = sb_proxy_parse(c->hdr, c->hdr_len + (size_t)n, &h, &why);
    if (rc < 0) {
        proxy_failed(c, why);
        return;
    }
    size_t take = rc > 0 ? (size_t)rc - c->hdr_len : (size_t)n;
    if (recv(fd, c->hdr + c->hdr_len, take, MSG_DONTWAIT) != (ssize_t)take) {
        proxy_failed(c, "the socket failed while its PROXY header was read");
        return;
    }
    c->hdr_len += take;
    if (rc == 0) {
        if (c->hdr_len == SB_PROXY_MAX_HEADER) /* the parser says so first; a backstop */
            proxy_failed(c, "a PROXY header over its maximum size");
        return;
    }

    event_del(c->proxy_ev);
    free(c->hdr);
    c->hdr = NULL;
    if (!h.local) {
        char proxy[sizeof(c->peer)];
        memcpy(proxy, c->peer, sizeof(proxy));
        c->addr = h.src;
        if (sb_ip_format(&c->addr, c->peer, sizeof(c->peer)) == 0)
            strcpy(c->peer, "?");
        sb_log_conn(SB_LOG_DEBUG, c->id, c->peer, "PROXY v%d header from %s: client %s port %u",
                    h.version, proxy, c->peer, (unsigned)h.src_port);
    } else {
        sb_log_conn(SB_LOG_DEBUG, c->id, c->peer,
                    "PROXY v%d header naming no client: the proxy's own connection", h.version);
    }
    c->fd = -1;
    if (open_transport(c, fd) != 0) {
        sb_log(SB_LOG_ERROR, "out of memory starting a connection's transport");
        finish(c);
        return;
    }
    admit(c); /* the client's limits, now that it is known */
}

void sb_conn_deadline_passed(sb_deadline_t *d, void *ctx)
{
    sb_conn_t *c = (sb_conn_t *)((char *)d - offsetof(sb_conn_t, deadline));
    (void)ctx;

    switch (c->phase) {
    case PHASE_PROXY:
        proxy_failed(c, "no complete PROXY header within the handshake timeout");
        return;
    case PHASE_HTTP:
        refuse(c, 408, "request head not received in time");
        return;
    case PHASE_OPEN: {
        double t = now(c);
        if (c->ping_sent > 0 && c->last_read < c->ping_sent) {
            c->why = SB_CLOSED_PING;
            sb_log_client(SB_LOG_INFO, c->id, c->peer, "dropped: no answer to a ping");
            finish(c);
            return;
        }
        double idle = t - c->last_read;
        if (idle + 0.001 < cfg(c)->ping_interval) {
            c->ping_sent = 0;
            arm(c, cfg(c)->ping_interval - idle);
            return;
        }
        if (send_frame(c, SB_WS_OP_PING, "sb", 2) != 0)
            return;
        c->ping_sent = t;
        arm(c, cfg(c)->pong_timeout);
        return;
    }
    case PHASE_CLOSING:
    case PHASE_LINGER:
        finish(c);
        return;
    case PHASE_DEAD:
        return;
    }
}

sb_conn_t *sb_conn_new(const sb_conn_env_t *env, evutil_socket_t fd, const struct sockaddr *addr)
{
    sb_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        evutil_closesocket(fd);
        goto fail;
    }
    c->env = env;
    c->id = next_id++;
    c->fd = fd;
    c->addr = sb_ip_from_bytes(addr->sa_family == AF_INET6,
                               addr->sa_family == AF_INET6
                                   ? (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr
                                   : (const void *)&((const struct sockaddr_in *)addr)->sin_addr);
    if (sb_ip_format(&c->addr, c->peer, sizeof(c->peer)) == 0)
        strcpy(c->peer, "?");
    c->last_read = now(c);
    if (sb_deadlines_reserve(env->deadlines) != 0)
        goto fail;
    c->reserved = 1;
    int trusted = env->limits != NULL && sb_limits_trusted(env->limits, &c->addr);
    if (trusted && cfg(c)->proxy_protocol) {
        /* The client is known once the header is read: limits are checked then. */
        c->phase = PHASE_PROXY;
        c->hdr = malloc(SB_PROXY_MAX_HEADER);
        c->proxy_ev = event_new(env->base, fd, EV_READ | EV_PERSIST, on_proxy_read, c);
        if (c->hdr == NULL || c->proxy_ev == NULL || event_add(c->proxy_ev, NULL) != 0)
            goto fail;
        arm(c, cfg(c)->handshake_timeout);
        return c;
    }
    c->fd = -1;
    if (open_transport(c, fd) != 0)
        goto fail;
    arm(c, cfg(c)->handshake_timeout);
    if (env->limits != NULL) {
        /* Checked before a byte is read, so that holding connections open costs the node
         * nothing past the limit; a trusted proxy's clients are known only from the head. */
        c->via_proxy = trusted;
        if (!c->via_proxy)
            admit(c);
    }
    return c;
fail:
    sb_log(SB_LOG_ERROR, "out of memory accepting a connection");
    sb_conn_free(c);
    return NULL;
}

void sb_conn_free(sb_conn_t *c)
{
    if (c == NULL)
        return;
    c->phase = PHASE_DEAD;
    end_ws(c);
    if (c->proxy_ev != NULL)
        event_free(c->proxy_ev); /* before its socket is closed */
    if (c->stream != NULL)
        sb_stream_free(c->stream);
    else if (c->fd >= 0)
        evutil_closesocket(c->fd);
    if (c->reserved) {
        sb_deadlines_clear(c->env->deadlines, &c->deadline);
        sb_deadlines_unreserve(c->env->deadlines);
    }
    free(c->hdr);
    sb_ws_reader_free(&c->reader);
    free(c->query);
    sb_auth_claims_free(c->claims);
    if (c->source != NULL)
        sb_limits_release(c->env->limits, c->source);
    free(c);
}

sb_conn_t **sb_conn_next(sb_conn_t *c) { return &c->next; }
sb_conn_t **sb_conn_prev(sb_conn_t *c) { return &c->prev; }
const char *sb_conn_query(const sb_conn_t *c) { return c->query ? c->query : ""; }
const sb_token_claims_t *sb_conn_claims(const sb_conn_t *c) { return c->claims; }

sb_dialect_t sb_conn_dialect(const sb_conn_t *c) { return c->dialect; }
const char *sb_conn_peer(const sb_conn_t *c) { return c->peer; }
uint64_t sb_conn_id(const sb_conn_t *c) { return c->id; }
int sb_conn_ended_by_accident(const sb_conn_t *c)
{
    return c->why == SB_CLOSED_GONE || c->why == SB_CLOSED_PING ||
           c->why == SB_CLOSED_SLOW_READER || c->why == SB_CLOSED_SHUTDOWN;
}

void *sb_conn_data(const sb_conn_t *c) { return c->data; }
void sb_conn_set_data(sb_conn_t *c, void *data) { c->data = data; }
