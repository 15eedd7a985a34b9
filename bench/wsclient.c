/* A WebSocket client connection (RFC 6455, ws://) on a libevent bufferevent, text messages only. */
#include "wsclient.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/util.h>
#include <openssl/evp.h>

#include "clock.h"
#include "handshake.h"
#include "ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_RESPONSE_HEAD 8192
#define MAX_MESSAGE (1u << 20)

typedef enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_CLOSED } state_t;

struct sb_wsc {
    struct bufferevent *bev;
    state_t state;
    const sb_wsc_handlers_t *h;
    void *arg;
    char accept[29]; /* the Sec-WebSocket-Accept the server must answer */
    sb_ws_reader_t reader;
    uint64_t rng; /* masks: xorshift64, seeded per connection */
    struct timeval timeout;
};

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Ends the connection and tells the owner, once. */
static void finish(sb_wsc_t *c, int http_status, int close_code, const char *why)
{
    if (c->state == ST_CLOSED)
        return;
    c->state = ST_CLOSED;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->h->on_close)
        c->h->on_close(c, http_status, close_code, why, c->arg);
}

/* Writes a frame of payload (len bytes, masked here) with opcode. */
static int send_frame(sb_wsc_t *c, int opcode, const sb_str_t *parts, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer_iovec iov;
    if (evbuffer_reserve_space(out, (ev_ssize_t)(len + SB_WS_MAX_HEADER), &iov, 1) < 1)
        return -1;
    uint8_t mask[4];
    uint64_t r = next_rand(&c->rng);
    memcpy(mask, &r, 4);
    uint8_t *p = iov.iov_base;
    size_t h = sb_ws_write_header(p, 1, opcode, len, mask);
    size_t at = h;
    for (size_t i = 0; i < n; i++) {
        memcpy(p + at, parts[i].p, parts[i].len);
        at += parts[i].len;
    }
    sb_ws_mask(p + h, len, mask, 0);
    iov.iov_len = at;
    return evbuffer_commit_space(out, &iov, 1) == 0 ? 0 : -1;
}

int sb_wsc_send_parts(sb_wsc_t *c, const sb_str_t *parts, size_t n)
{
    if (c->state != ST_OPEN)
        return -1;
    return send_frame(c, SB_WS_OP_TEXT, parts, n);
}

size_t sb_wsc_pending(const sb_wsc_t *c)
{
    return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

void sb_wsc_set_handlers(sb_wsc_t *c, const sb_wsc_handlers_t *h, void *arg)
{
    c->h = h;
    c->arg = arg;
}

int sb_wsc_is_open(const sb_wsc_t *c) { return c->state == ST_OPEN; }

void sb_wsc_close(sb_wsc_t *c)
{
    if (c->state != ST_OPEN)
        return;
    uint8_t body[SB_WS_MAX_CONTROL];
    sb_str_t part = {(const char *)body, sb_ws_close_payload(body, SB_WS_CLOSE_NORMAL, "")};
    send_frame(c, SB_WS_OP_CLOSE, &part, 1);
    c->state = ST_CLOSING;
}

void sb_wsc_free(sb_wsc_t *c)
{
    if (!c)
        return;
    if (c->bev)
        bufferevent_free(c->bev);
    sb_ws_reader_free(&c->reader);
    free(c);
}

/* Finds header name in the response head (lines after the status line); its trimmed value. */
static int find_header(const char *head, size_t len, const char *name, sb_str_t *value)
{
    size_t nlen = strlen(name);
    const char *end = head + len;
    const char *line = memchr(head, '\n', len);
    for (int i = 0; line && i < 200; i++) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *value = (sb_str_t){v, (size_t)(ve - v)};
            return 1;
        }
        line = eol;
    }
    return 0;
}

/* Reads the server's answer to the upgrade. Returns 1 when the connection is open (and the head
 * consumed), 0 when more bytes are needed, -1 when it finished the connection. */
static int read_handshake(sb_wsc_t *c, struct evbuffer *in)
{
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > MAX_RESPONSE_HEAD) {
            finish(c, 0, SB_WS_CLOSE_ABNORMAL, "response head too large");
            return -1;
        }
        return 0;
    }
    size_t len = (size_t)end.pos + 4;
    const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    int status = 0;
    if (len < 12 || strncmp(head, "HTTP/1.1 ", 9) != 0 || sscanf(head + 9, "%3d", &status) != 1) {
        finish(c, 0, SB_WS_CLOSE_ABNORMAL, "malformed HTTP response");
        return -1;
    }
    if (status != 101) {
        finish(c, status, SB_WS_CLOSE_ABNORMAL, "handshake refused");
        return -1;
    }
    sb_str_t accept;
    if (!find_header(head, len, "Sec-WebSocket-Accept", &accept) || accept.len != 28 ||
        memcmp(accept.p, c->accept, 28) != 0) {
        finish(c, 101, SB_WS_CLOSE_ABNORMAL, "wrong Sec-WebSocket-Accept");
        return -1;
    }
    evbuffer_drain(in, len);
    c->state = ST_OPEN;
    /* open connections may idle for as long as they like: the server pings them */
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    if (c->h->on_open)
        c->h->on_open(c, c->arg);
    return c->state == ST_OPEN ? 1 : -1;
}

/* Handles one complete event of the reader. Returns 0 to go on, -1 when the connection ended. */
static int handle_event(sb_wsc_t *c, const sb_ws_event_t *ev)
{
    switch (ev->type) {
    case SB_WS_EV_TEXT:
        if (c->h->on_text)
            c->h->on_text(c, (const char *)ev->data, ev->len, c->arg);
        return c->state == ST_OPEN || c->state == ST_CLOSING ? 0 : -1;
    case SB_WS_EV_PING: {
        sb_str_t part = {(const char *)ev->data, ev->len};
        if (c->state == ST_OPEN)
            send_frame(c, SB_WS_OP_PONG, &part, 1);
        return 0;
    }
    case SB_WS_EV_CLOSE:
        if (c->state == ST_OPEN) { /* the server closes: echo it, as RFC 6455 asks */
            uint8_t body[SB_WS_MAX_CONTROL];
            sb_str_t part = {(const char *)body,
                             sb_ws_close_payload(body,
                                                 ev->close_code == SB_WS_CLOSE_NO_STATUS
                                                     ? SB_WS_CLOSE_NORMAL
                                                     : ev->close_code,
                                                 "")};
            send_frame(c, SB_WS_OP_CLOSE, &part, 1);
        }
        finish(c, 0, ev->close_code, "closed by the server");
        return -1;
    default:
        return 0; /* pongs, and binary frames (which the reader refuses anyway) */
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    sb_wsc_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->state == ST_HANDSHAKE && read_handshake(c, in) <= 0)
        return;
    /* each turn consumes bytes or stops: bounded by the bytes buffered */
    for (size_t budget = evbuffer_get_length(in) + 1; budget > 0; budget--) {
        size_t total = evbuffer_get_length(in);
        if (total == 0)
            return;
        size_t avail = evbuffer_get_contiguous_space(in);
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)avail);
        sb_ws_event_t ev;
        const char *why = NULL;
        int n = sb_ws_reader_feed(&c->reader, p, avail, &ev, &why);
        if (n < 0) {
            finish(c, 0, sb_ws_error_close_code(n), why);
            return;
        }
        if (n == 0 && ev.type == SB_WS_EV_NONE) {
            /* an incomplete header across chunks: join it with what follows, or wait */
            if (total <= avail)
                return;
            size_t want = avail + SB_WS_MAX_HEADER < total ? avail + SB_WS_MAX_HEADER : total;
            p = evbuffer_pullup(in, (ev_ssize_t)want);
            n = sb_ws_reader_feed(&c->reader, p, want, &ev, &why);
            if (n < 0) {
                finish(c, 0, sb_ws_error_close_code(n), why);
                return;
            }
            if (n == 0 && ev.type == SB_WS_EV_NONE)
                return;
        }
        evbuffer_drain(in, (size_t)n);
        if (ev.type != SB_WS_EV_NONE && handle_event(c, &ev) < 0)
            return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    sb_wsc_t *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->state = ST_HANDSHAKE;
        return;
    }
    const char *why = "connection lost";
    if (what & BEV_EVENT_TIMEOUT)
        why = c->state == ST_CONNECTING ? "connect timed out" : "handshake timed out";
    else if (what & BEV_EVENT_EOF)
        why = "connection closed without a close frame";
    else if (c->state == ST_CONNECTING)
        why = "connect failed";
    finish(c, 0, SB_WS_CLOSE_ABNORMAL, why);
}

/* A socket bound to source with its port left for connect() to choose. */
static evutil_socket_t bound_socket(const struct in_addr *source, const char **err)
{
    evutil_socket_t fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno == EMFILE || errno == ENFILE ? "out of file descriptors" : "socket() failed";
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = *source};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        *err = "cannot bind the source address";
        close(fd);
        return -1;
    }
    return fd;
}

sb_wsc_t *sb_wsc_open(struct event_base *base, const struct sockaddr_in *server,
                      const struct in_addr *source, const char *host, const char *target,
                      double timeout_s, const sb_wsc_handlers_t *h, void *arg, const char **err)
{
    static uint64_t seed;
    if (seed == 0)
        seed = (uint64_t)sb_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    sb_wsc_t *c = calloc(1, sizeof(*c));
    if (!c) {
        *err = "out of memory";
        return NULL;
    }
    c->h = h;
    c->arg = arg;
    c->state = ST_CONNECTING;
    c->rng = next_rand(&seed) | 1;
    sb_ws_reader_init(&c->reader, SB_WS_CLIENT, MAX_MESSAGE, 0);

    evutil_socket_t fd = -1;
    if (source && (fd = bound_socket(source, err)) < 0)
        goto fail;
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        if (fd >= 0)
            close(fd);
        *err = "out of memory";
        goto fail;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    c->timeout.tv_sec = (time_t)timeout_s;
    c->timeout.tv_usec = (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6);
    bufferevent_set_timeouts(c->bev, &c->timeout, &c->timeout);

    /* the request goes out as soon as the connection is made */
    uint8_t key_raw[16];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = next_rand(&c->rng);
        memcpy(key_raw + i, &r, 8);
    }
    char key[32];
    EVP_EncodeBlock((unsigned char *)key, key_raw, 16); /* 24 characters */
    sb_ws_accept_key(key, 24, c->accept);
    if (evbuffer_add_printf(bufferevent_get_output(c->bev),
                            "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
                            target, host, key, SB_WS_SUBPROTOCOL) < 0) {
        *err = "out of memory";
        goto fail;
    }
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (const struct sockaddr *)server, sizeof(*server)) != 0) {
        *err = errno == EADDRNOTAVAIL ? "no free local port (add source addresses)"
                                      : "connect() failed";
        goto fail;
    }
    return c;
fail:
    sb_wsc_free(c);
    return NULL;
}
