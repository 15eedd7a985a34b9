/* Unit tests for node/app/relay: the real relay, connections (node/net/conn), embedded bus and
 * directory on a real event loop, driven over a fake transport of bufferevent pairs (no sockets).
 * Each test writes client frames into its end of a pair, runs the loop a bounded number of turns,
 * and reads the server's frames back as a client would. */
#include <check.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "app/relay.h"
#include "base/config.h"
#include "base/log.h"
#include "base/loop.h"
#include "cluster/bus.h"
#include "cluster/dir.h"
#include "helpers.h"
#include "net/conn.h"
#include "net/routes.h"
#include "net/transport.h"
#include "ws.h"

#define MAX_CLIENTS 16
#define MAX_MSGS 256

/* The most loop turns any wait may take: everything here is in memory, so a handful suffice;
 * the bound turns a hang into a failure. */
#define MAX_TURNS 500
/* Turns run before asserting that nothing more arrives. */
#define SETTLE_TURNS 50

/* The key of RFC 6455 section 1.3 and its accept value. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* One client: the test's end of a bufferevent pair, and what it has read. */
typedef struct {
    int used;
    struct bufferevent *end;        /* the test's end */
    struct bufferevent *server_end; /* the end the connection reads and writes */
    sb_conn_t *conn;                /* NULL once freed */
    struct evbuffer *raw;           /* bytes not parsed yet */
    char *head;                     /* the HTTP response head, once complete */
    int upgraded;                   /* head was a 101: frames follow */
    sb_ws_reader_t reader;          /* SB_WS_CLIENT */
    char *msgs[MAX_MSGS];           /* text messages received, in order */
    size_t nmsgs, next;             /* next: the first not yet looked at */
    int closes;                     /* close frames received */
    unsigned close_code;            /* of the first */
    char close_reason[SB_WS_MAX_CONTROL + 1];
    int frame_error;               /* the server's bytes broke RFC 6455 */
    int eofs;                      /* EOF seen on the test's end */
    int ends;                      /* env on_end calls for this connection */
    int close_writes;              /* transport close_write calls for this connection */
    int opens, texts, closes_seen; /* handler callbacks for this connection */
} client_t;

/* Everything a test runs on: one node with the relay, and its clients. */
static struct {
    struct event_base *base;
    sb_config_t cfg;
    sb_bus_t *bus;
    sb_dir_t *dir;
    sb_relay_t *relay;
    sb_handler_t relay_handler; /* the relay's own */
    sb_handler_t handler;       /* counts, then calls the relay's */
    sb_auth_t *auth;
    sb_routes_t routes;
    sb_conn_env_t env;
    sb_deadlines_t deadlines;
    sb_streams_t *streams;
    struct event *reaper;
    client_t *dead[MAX_CLIENTS]; /* ended, freed on a later loop turn */
    size_t ndead;
    client_t clients[MAX_CLIENTS];
    client_t *opening; /* the client whose connection is being created */
    int opens, close_writes, ends, reaped;
} w;

/* ---- the fake transport --------------------------------------------------------------------- */

static void client_on_read(struct bufferevent *bev, void *arg);
static void client_on_event(struct bufferevent *bev, short what, void *arg);

static client_t *client_of_server_end(const struct bufferevent *bev)
{
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        if (w.clients[i].used && w.clients[i].server_end == bev)
            return &w.clients[i];
    return NULL;
}

static client_t *client_of_conn(const sb_conn_t *c)
{
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        if (w.clients[i].used && w.clients[i].conn == c)
            return &w.clients[i];
    return NULL;
}

static void fake_close_write(struct bufferevent *bev);

/* The client being connected is w.opening. */
static sb_stream_t *fake_open(const sb_transport_t *t, sb_streams_t *streams, evutil_socket_t fd)
{
    struct event_base *base = sb_streams_base(streams);
    struct bufferevent *pair[2];
    client_t *c = w.opening;

    (void)t;
    (void)fd; /* there is none */
    REQUIRE(c != NULL, "open outside client_new");
    /* Deferred callbacks: like a socket's, they run on a loop turn, never inside a write. */
    if (bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair) != 0)
        return NULL;
    c->server_end = pair[0];
    c->end = pair[1];
    bufferevent_setcb(c->end, client_on_read, NULL, client_on_event, c);
    bufferevent_enable(c->end, EV_READ | EV_WRITE);
    w.opens++;
    return sb_stream_bev_new(pair[0], fake_close_write);
}

/* TCP's half-close: the client reads EOF after what was queued (conn.c calls this once, when
 * its output is empty). An EOF event on a later turn is what a socket gives; a flush with
 * BEV_FINISHED would run the server end's write callback inside this call instead. */
static void fake_close_write(struct bufferevent *bev)
{
    client_t *c = client_of_server_end(bev);
    REQUIRE(c != NULL, "close_write on an unknown bufferevent");
    REQUIRE(evbuffer_get_length(bufferevent_get_output(bev)) == 0,
            "close_write with %zu bytes still queued",
            evbuffer_get_length(bufferevent_get_output(bev)));
    /* conn.c calls it once per connection. */
    REQUIRE(c->close_writes++ == 0, "close_write called twice on one connection");
    bufferevent_trigger_event(c->end, BEV_EVENT_EOF | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
    w.close_writes++;
}

static void fake_refuse(const sb_transport_t *t, evutil_socket_t fd, const char *answer, size_t len)
{
    (void)t;
    (void)fd;
    (void)answer;
    (void)len;
    ck_abort_msg("refuse is the server's, never a connection's");
}

/* Streams over bufferevent pairs, not sockets: they write as a bufferevent always does. */
static const sb_transport_t fake_transport = {"fake", fake_open, fake_refuse, NULL};

/* One turn of the loop: it runs until no callback is ready (EVLOOP_NONBLOCK never waits). */
static void turn(void) { event_base_loop(w.base, EVLOOP_NONBLOCK); }

/* ---- the node: handler, on_end, reaper ------------------------------------------------------ */

static void count_open(void *app, sb_conn_t *conn)
{
    client_t *c = client_of_conn(conn);
    (void)app;
    REQUIRE(c != NULL, "on_open for an unknown connection");
    c->opens++;
    w.relay_handler.on_open(w.relay_handler.app, conn);
}

static void count_text(void *app, sb_conn_t *conn, const char *data, size_t len)
{
    client_t *c = client_of_conn(conn);
    (void)app;
    REQUIRE(c != NULL, "on_text for an unknown connection");
    c->texts++;
    w.relay_handler.on_text(w.relay_handler.app, conn, data, len);
}

static void count_close(void *app, sb_conn_t *conn)
{
    client_t *c = client_of_conn(conn);
    (void)app;
    REQUIRE(c != NULL, "on_close for an unknown connection");
    c->closes_seen++;
    w.relay_handler.on_close(w.relay_handler.app, conn);
}

/* The owner's part: the connection is freed on a later loop turn, never in here. */
static void on_end(void *ctx, sb_conn_t *conn)
{
    client_t *c = client_of_conn(conn);
    (void)ctx;
    REQUIRE(c != NULL, "on_end for an unknown connection");
    REQUIRE(w.ndead < MAX_CLIENTS, "too many ended connections");
    c->ends++;
    w.ends++;
    w.dead[w.ndead++] = c;
    event_active(w.reaper, EV_TIMEOUT, 0);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    while (w.ndead > 0) {
        client_t *c = w.dead[--w.ndead];
        sb_conn_free(c->conn); /* the relay's on_close runs in here */
        c->conn = NULL;
        w.reaped++;
    }
}

/* Starts a node with the relay: {"switchboard", "--ice-servers", "[]", "--node-id", "unit",
 * "--www", "", "--log-level", "warn", "--resume-seconds", "0"} and then extra (NULL-terminated)
 * arguments. */
static void node_up(const char *extra, ...)
{
    char *argv[32] = {
        "switchboard", "--ice-servers",    "[]", "--node-id", "unit", "--www", "", "--log-level",
        "warn",        "--resume-seconds", "0"};
    int argc = 11;
    char err[256];
    va_list ap;

    va_start(ap, extra);
    for (const char *a = extra; a != NULL && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);

    memset(&w, 0, sizeof(w));
    ck_assert_msg(sb_config_load(&w.cfg, argc, argv, err, sizeof(err)) == 0, "config: %s", err);
    sb_log_set_level(w.cfg.log_level);
    w.base = sb_loop_new();
    ck_assert_ptr_nonnull(w.base);
    w.bus = sb_bus_memory_new();
    sb_dir_sessions_t sessions = {w.cfg.resume_seconds, w.cfg.mailbox_messages,
                                  w.cfg.mailbox_bytes};
    w.dir = sb_dir_memory_new(w.base, &sessions);
    ck_assert_ptr_nonnull(w.bus);
    ck_assert_ptr_nonnull(w.dir);
    w.relay = sb_relay_new(w.base, &w.cfg, w.bus, w.dir, "unit");
    ck_assert_ptr_nonnull(w.relay);
    w.relay_handler = sb_relay_handler(w.relay);
    w.handler = (sb_handler_t){count_open, count_text, count_close, NULL};
    w.auth = sb_auth_new(&w.cfg, err, sizeof(err));
    ck_assert_msg(w.auth != NULL, "auth: %s", err);
    w.routes =
        (sb_routes_t){.cfg = &w.cfg, .auth = w.auth, .ready = sb_relay_ready, .ready_ctx = w.relay};
    ck_assert_int_eq(sb_deadlines_init(&w.deadlines, w.base, sb_conn_deadline_passed, NULL), 0);
    w.streams = sb_streams_new(w.base, SB_PRIO_CLIENTS);
    ck_assert_ptr_nonnull(w.streams);
    w.env = (sb_conn_env_t){.base = w.base,
                            .cfg = &w.cfg,
                            .transport = &fake_transport,
                            .handler = &w.handler,
                            .route = sb_routes_answer,
                            .route_ctx = &w.routes,
                            .on_end = on_end,
                            .end_ctx = NULL,
                            .streams = w.streams,
                            .deadlines = &w.deadlines};
    w.reaper = event_new(w.base, -1, 0, on_reap, NULL);
    ck_assert_ptr_nonnull(w.reaper);
}

/* Frees everything, in main.c's order: connections (they tell the relay), bus, directory,
 * relay, then the loop. LeakSanitizer checks nothing is left. */
static void node_down(void)
{
    if (w.base == NULL)
        return;
    w.ndead = 0;
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        client_t *c = &w.clients[i];
        if (c->used && c->conn != NULL) {
            sb_conn_free(c->conn);
            c->conn = NULL;
        }
    }
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        client_t *c = &w.clients[i];
        if (!c->used)
            continue;
        bufferevent_free(c->end);
        evbuffer_free(c->raw);
        free(c->head);
        sb_ws_reader_free(&c->reader);
        for (size_t m = 0; m < c->nmsgs; m++)
            free(c->msgs[m]);
    }
    /* A bufferevent freed with a deferred callback pending is released by that callback: run
     * it, since event_base_free would drop it unrun (and leak the bufferevent). */
    for (int i = 0; i < 3; i++)
        turn();
    sb_relay_stop(w.relay);
    w.bus->ops->free(w.bus);
    w.dir->ops->free(w.dir);
    sb_relay_free(w.relay);
    sb_auth_free(w.auth);
    event_free(w.reaper);
    sb_deadlines_free(&w.deadlines);
    sb_streams_free(w.streams);
    event_base_free(w.base);
    sb_config_free(&w.cfg);
    memset(&w, 0, sizeof(w));
}

/* ---- running the loop ----------------------------------------------------------------------- */

/* Runs the loop until cond holds, at most MAX_TURNS turns. */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        for (int turns_ = 0; !(cond) && turns_ < MAX_TURNS; turns_++)                              \
            turn();                                                                                \
        ck_assert_msg((cond), "still not so after %d loop turns: %s", MAX_TURNS, #cond);           \
    } while (0)

/* Runs the loop long enough for anything on its way to have arrived. */
static void settle(void)
{
    for (int i = 0; i < SETTLE_TURNS; i++)
        turn();
}

/* ---- the client side ------------------------------------------------------------------------ */

static void client_parse(client_t *c)
{
    if (!c->upgraded) {
        if (c->head != NULL)
            return; /* a plain answer: its body stays in raw */
        struct evbuffer_ptr p = evbuffer_search(c->raw, "\r\n\r\n", 4, NULL);
        if (p.pos < 0)
            return;
        size_t n = (size_t)p.pos + 4;
        c->head = malloc(n + 1);
        REQUIRE(c->head != NULL, "out of memory");
        evbuffer_remove(c->raw, c->head, n);
        c->head[n] = '\0';
        c->upgraded = strncmp(c->head, "HTTP/1.1 101 ", 13) == 0;
    }
    while (c->upgraded && !c->frame_error) {
        size_t avail = evbuffer_get_length(c->raw);
        if (avail == 0)
            return;
        const uint8_t *buf = evbuffer_pullup(c->raw, -1);
        sb_ws_event_t ev;
        int n = sb_ws_reader_feed(&c->reader, buf, avail, &ev, NULL);
        if (n < 0) {
            c->frame_error = 1;
            return;
        }
        if (n == 0 && ev.type == SB_WS_EV_NONE)
            return;
        switch (ev.type) {
        case SB_WS_EV_TEXT:
            REQUIRE(c->nmsgs < MAX_MSGS, "too many messages");
            c->msgs[c->nmsgs] = malloc(ev.len + 1);
            REQUIRE(c->msgs[c->nmsgs] != NULL, "out of memory");
            memcpy(c->msgs[c->nmsgs], ev.data, ev.len);
            c->msgs[c->nmsgs++][ev.len] = '\0';
            break;
        case SB_WS_EV_CLOSE:
            if (c->closes++ == 0) {
                c->close_code = ev.close_code;
                snprintf(c->close_reason, sizeof(c->close_reason), "%.*s", (int)ev.len,
                         (const char *)ev.data);
            }
            break;
        default:
            break;
        }
        evbuffer_drain(c->raw, (size_t)n);
    }
}

static void client_on_read(struct bufferevent *bev, void *arg)
{
    client_t *c = arg;
    evbuffer_add_buffer(c->raw, bufferevent_get_input(bev));
    client_parse(c);
}

static void client_on_event(struct bufferevent *bev, short what, void *arg)
{
    client_t *c = arg;
    (void)bev;
    if (what & BEV_EVENT_EOF)
        c->eofs++;
}

/* A new connection, as if just accepted. */
static client_t *client_new(void)
{
    client_t *c = NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    for (size_t i = 0; i < MAX_CLIENTS && c == NULL; i++)
        if (!w.clients[i].used)
            c = &w.clients[i];
    ck_assert_ptr_nonnull(c);
    c->used = 1;
    c->raw = evbuffer_new();
    ck_assert_ptr_nonnull(c->raw);
    sb_ws_reader_init(&c->reader, SB_WS_CLIENT, 1 << 20, 0);
    w.opening = c;
    c->conn = sb_conn_new(&w.env, -1, (const struct sockaddr *)&addr);
    w.opening = NULL;
    ck_assert_ptr_nonnull(c->conn);
    return c;
}

static void client_write(client_t *c, const void *data, size_t len)
{
    ck_assert_int_eq(bufferevent_write(c->end, data, len), 0);
}

/* Appends one masked client frame to out. */
static void add_frame(struct evbuffer *out, int opcode, const void *data, size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xFA, 0x21, 0x3D};
    uint8_t head[SB_WS_MAX_HEADER];
    size_t hlen = sb_ws_write_header(head, 1, opcode, len, mask);
    uint8_t *payload = malloc(len ? len : 1);

    ck_assert_ptr_nonnull(payload);
    memcpy(payload, data, len);
    sb_ws_mask(payload, len, mask, 0);
    evbuffer_add(out, head, hlen);
    evbuffer_add(out, payload, len);
    free(payload);
}

/* Sends text messages, all in one write. */
static void client_send_n(client_t *c, const char *const *texts, size_t n)
{
    struct evbuffer *out = evbuffer_new();
    ck_assert_ptr_nonnull(out);
    for (size_t i = 0; i < n; i++)
        add_frame(out, SB_WS_OP_TEXT, texts[i], strlen(texts[i]));
    ck_assert_int_eq(bufferevent_write_buffer(c->end, out), 0);
    evbuffer_free(out);
}

static void client_send(client_t *c, const char *text) { client_send_n(c, &text, 1); }

static void client_send_close(client_t *c, uint16_t code)
{
    uint8_t payload[SB_WS_MAX_CONTROL];
    struct evbuffer *out = evbuffer_new();
    ck_assert_ptr_nonnull(out);
    add_frame(out, SB_WS_OP_CLOSE, payload, sb_ws_close_payload(payload, code, NULL));
    ck_assert_int_eq(bufferevent_write_buffer(c->end, out), 0);
    evbuffer_free(out);
}

/* The client's end of TCP: what it wrote arrives, then EOF. (Freeing the test's end of a pair
 * would not do: libevent tells the other end nothing.) */
static void client_hang_up(client_t *c) { bufferevent_flush(c->end, EV_WRITE, BEV_FINISHED); }

static const char *const upgrade_head = "HTTP/1.1 101 Switching Protocols\r\n"
                                        "Server: switchboard\r\n"
                                        "Upgrade: websocket\r\n"
                                        "Connection: Upgrade\r\n"
                                        "Sec-WebSocket-Accept: " WS_ACCEPT "\r\n"
                                        "Sec-WebSocket-Protocol: switchboard.v1\r\n"
                                        "\r\n";

/* A new connection that asks to upgrade at /ws?query (NULL: no query) and gets its 101. */
static client_t *client_upgrade(const char *query)
{
    char req[512];
    client_t *c = client_new();

    snprintf(req, sizeof(req),
             "GET /ws%s%s HTTP/1.1\r\n"
             "Host: localhost:8080\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: " WS_KEY "\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Protocol: switchboard.v1\r\n"
             "\r\n",
             query ? "?" : "", query ? query : "");
    client_write(c, req, strlen(req));
    RUN_UNTIL(c->head != NULL);
    ck_assert_str_eq(c->head, upgrade_head);
    return c;
}

/* Waits for c's next message and returns it (owned by c). */
static const char *next_msg(client_t *c)
{
    RUN_UNTIL(c->nmsgs > c->next || c->frame_error);
    ck_assert_msg(!c->frame_error, "the server's frames broke RFC 6455");
    return c->msgs[c->next++];
}

static void expect_msg(client_t *c, const char *want)
{
    const char *got = next_msg(c);
    ck_assert_msg(strcmp(got, want) == 0, "got  %s\nwant %s", got, want);
}

/* Checks an error message: type, code, a message for people, and exactly the context fields
 * given (NULL: absent); mid is its JSON text. */
static void check_error(const char *got, const char *code, const char *to, const char *room,
                        const char *mid)
{
    cJSON *root = cJSON_Parse(got);
    ck_assert_msg(cJSON_IsObject(root), "not a JSON object: %s", got);
    cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    cJSON *code_ = cJSON_GetObjectItemCaseSensitive(root, "code");
    cJSON *message = cJSON_GetObjectItemCaseSensitive(root, "message");
    cJSON *to_ = cJSON_GetObjectItemCaseSensitive(root, "to");
    cJSON *room_ = cJSON_GetObjectItemCaseSensitive(root, "room");
    cJSON *mid_ = cJSON_GetObjectItemCaseSensitive(root, "mid");
    int fields = 3 + (to != NULL) + (room != NULL) + (mid != NULL);

    ck_assert_msg(cJSON_IsString(type) && strcmp(type->valuestring, "error") == 0, "%s", got);
    ck_assert_msg(cJSON_IsString(code_) && strcmp(code_->valuestring, code) == 0,
                  "want code %s: %s", code, got);
    ck_assert_msg(cJSON_IsString(message) && message->valuestring[0] != '\0', "%s", got);
    ck_assert_msg(to == NULL ? to_ == NULL
                             : cJSON_IsString(to_) && strcmp(to_->valuestring, to) == 0,
                  "want to %s: %s", to ? to : "absent", got);
    ck_assert_msg(room == NULL ? room_ == NULL
                               : cJSON_IsString(room_) && strcmp(room_->valuestring, room) == 0,
                  "want room %s: %s", room ? room : "absent", got);
    if (mid == NULL) {
        ck_assert_msg(mid_ == NULL, "want no mid: %s", got);
    } else {
        char *text = mid_ ? cJSON_PrintUnformatted(mid_) : NULL;
        ck_assert_msg(text != NULL && strcmp(text, mid) == 0, "want mid %s: %s", mid, got);
        cJSON_free(text);
    }
    ck_assert_msg(cJSON_GetArraySize(root) == fields, "want %d fields: %s", fields, got);
    cJSON_Delete(root);
}

static void expect_error(client_t *c, const char *code, const char *to, const char *room,
                         const char *mid)
{
    check_error(next_msg(c), code, to, room, mid);
}

/* Nothing more arrives for c. */
static void expect_nothing(client_t *c)
{
    settle();
    ck_assert_msg(c->nmsgs == c->next, "unexpected message: %s", c->msgs[c->next]);
    ck_assert_int_eq(c->frame_error, 0);
}

/* A connection at /ws?id=<id> welcomed with that ID. */
static client_t *peer(const char *id)
{
    char query[96], welcome[160];
    snprintf(query, sizeof(query), "id=%s", id);
    client_t *c = client_upgrade(query);
    snprintf(welcome, sizeof(welcome),
             "{\"type\":\"welcome\",\"id\":\"%s\",\"node\":\"unit\",\"iceServers\":[]}", id);
    expect_msg(c, welcome);
    return c;
}

/* The closing handshake the client finishes: it answers the server's close frame, reads the
 * end of the stream, and closes its side; the server ends the connection once. */
static void finish_close(client_t *c, unsigned want_code, const char *want_reason)
{
    RUN_UNTIL(c->closes > 0);
    ck_assert_uint_eq(c->close_code, want_code);
    ck_assert_str_eq(c->close_reason, want_reason);
    client_send_close(c, (uint16_t)want_code);
    RUN_UNTIL(c->eofs > 0);
    ck_assert_int_eq(c->close_writes, 1);
    client_hang_up(c);
    RUN_UNTIL(c->conn == NULL);
    ck_assert_int_eq(c->ends, 1);
}

static void teardown(void) { node_down(); }

/* ---- tests ---------------------------------------------------------------------------------- */

START_TEST(test_upgrade_and_welcome)
{
    node_up(NULL);
    client_t *a = peer("A");

    ck_assert_int_eq(a->opens, 1);
    ck_assert_int_eq(a->closes, 0);
    expect_nothing(a);
    /* Nothing ended, nothing half-closed. */
    ck_assert_int_eq(w.opens, 1);
    ck_assert_int_eq(w.ends, 0);
    ck_assert_int_eq(w.close_writes, 0);
    ck_assert_int_eq(a->eofs, 0);
}
END_TEST

/* Without id=, the node picks a random 16-character base64url ID. */
START_TEST(test_random_id)
{
    node_up(NULL);
    client_t *a = client_upgrade(NULL), *b = client_upgrade("other=1");
    const char *wa = next_msg(a), *wb = next_msg(b);
    char ida[32] = "", idb[32] = "";

    ck_assert_int_eq(sscanf(wa, "{\"type\":\"welcome\",\"id\":\"%31[^\"]\"", ida), 1);
    ck_assert_int_eq(sscanf(wb, "{\"type\":\"welcome\",\"id\":\"%31[^\"]\"", idb), 1);
    ck_assert_uint_eq(strlen(ida), 16);
    ck_assert_uint_eq(
        strspn(ida, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 16);
    ck_assert_str_ne(ida, idb);
    char want[160];
    snprintf(want, sizeof(want),
             "{\"type\":\"welcome\",\"id\":\"%s\",\"node\":\"unit\",\"iceServers\":[]}", ida);
    ck_assert_str_eq(wa, want);
}
END_TEST

START_TEST(test_id_taken)
{
    node_up(NULL);
    client_t *a = peer("A");
    client_t *a2 = client_upgrade("id=A");

    expect_error(a2, "id-taken", NULL, NULL, NULL);
    finish_close(a2, 4001, "id-taken");
    ck_assert_int_eq(a2->opens, 1);
    ck_assert_int_eq(a2->closes_seen, 1);
    ck_assert_int_eq(a2->texts, 0);
    expect_nothing(a2);

    /* The first holder keeps the ID: a message to A still reaches it. */
    client_t *b = peer("B");
    client_send(b, "{\"type\":\"bye\",\"to\":\"A\",\"mid\":1}");
    expect_msg(a, "{\"type\":\"bye\",\"from\":\"B\",\"mid\":1}");
    expect_msg(b, "{\"type\":\"ack\",\"mid\":1}");
    ck_assert_int_eq(a->ends, 0);
    ck_assert_int_eq(w.ends, 1);
    expect_nothing(a);
}
END_TEST

START_TEST(test_bad_id)
{
    node_up(NULL);
    static const char *const queries[] = {
        "id=a%20b", "id=", "id=a/b",
        "id=12345678901234567890123456789012345678901234567890123456789012345"};

    for (size_t i = 0; i < N_ELEMS(queries); i++) {
        client_t *c = client_upgrade(queries[i]);
        expect_error(c, "bad-id", NULL, NULL, NULL);
        finish_close(c, 4002, "bad-id");
        expect_nothing(c);
    }
    /* 64 characters are fine. */
    peer("1234567890123456789012345678901234567890123456789012345678901234");
}
END_TEST

START_TEST(test_relay_offer)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B");

    client_send(
        a,
        "{\"type\":\"offer\",\"to\":\"B\",\"payload\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"},"
        "\"mid\":\"m1\"}");
    expect_msg(b, "{\"type\":\"offer\",\"from\":\"A\",\"payload\":{\"type\":\"offer\",\"sdp\":"
                  "\"v=0\\r\\n\"},\"mid\":\"m1\"}");
    expect_msg(a, "{\"type\":\"ack\",\"mid\":\"m1\"}");

    /* The answer back, with a number mid and the payload's bytes kept exactly. */
    client_send(b, "{\"type\":\"answer\",\"to\":\"A\",\"payload\": [1, 2.50, \"x\"] ,\"mid\":42}");
    expect_msg(a, "{\"type\":\"answer\",\"from\":\"B\",\"payload\":[1, 2.50, \"x\"],\"mid\":42}");
    expect_msg(b, "{\"type\":\"ack\",\"mid\":42}");

    /* A from given by the sender is ignored; without a mid, success is silent. */
    client_send(a, "{\"type\":\"candidate\",\"to\":\"B\",\"from\":\"Z\",\"payload\":null}");
    expect_msg(b, "{\"type\":\"candidate\",\"from\":\"A\",\"payload\":null}");
    expect_nothing(a);
    expect_nothing(b);
    ck_assert_int_eq(a->texts, 2);
    ck_assert_int_eq(b->texts, 1);
}
END_TEST

/* Messages from one sender to one recipient arrive in the order sent, and so do the acks. */
START_TEST(test_relay_order)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B");
    char texts[100][96], want[96];
    const char *ptrs[100];

    for (int i = 0; i < 100; i++) {
        snprintf(texts[i], sizeof(texts[i]),
                 "{\"type\":\"candidate\",\"to\":\"B\",\"payload\":%d,\"mid\":%d}", i, i);
        ptrs[i] = texts[i];
    }
    client_send_n(a, ptrs, 100);
    for (int i = 0; i < 100; i++) {
        snprintf(want, sizeof(want),
                 "{\"type\":\"candidate\",\"from\":\"A\",\"payload\":%d,\"mid\":%d}", i, i);
        expect_msg(b, want);
        snprintf(want, sizeof(want), "{\"type\":\"ack\",\"mid\":%d}", i);
        expect_msg(a, want);
    }
    expect_nothing(a);
    expect_nothing(b);
    ck_assert_int_eq(a->texts, 100);
}
END_TEST

START_TEST(test_relay_to_absent_peer)
{
    node_up(NULL);
    client_t *a = peer("A");

    client_send(a, "{\"type\":\"offer\",\"to\":\"nobody\",\"payload\":{},\"mid\":\"m2\"}");
    expect_error(a, "peer-unavailable", "nobody", NULL, "\"m2\"");
    client_send(a, "{\"type\":\"bye\",\"to\":\"nobody\"}");
    expect_error(a, "peer-unavailable", "nobody", NULL, NULL);
    expect_nothing(a);
}
END_TEST

START_TEST(test_join_and_leave)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B"), *c = peer("C");

    client_send(a, "{\"type\":\"join\",\"room\":\"r\",\"mid\":1}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[],\"mid\":1}");
    client_send(b, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"A\"]}");
    expect_msg(a, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"B\"}");

    /* Joining again answers again and tells nobody. */
    client_send(b, "{\"type\":\"join\",\"room\":\"r\",\"mid\":\"again\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"A\"],\"mid\":\"again\"}");

    /* Another room: only its members hear of it. */
    client_send(c, "{\"type\":\"join\",\"room\":\"s:2\"}");
    expect_msg(c, "{\"type\":\"joined\",\"room\":\"s:2\",\"peers\":[]}");

    client_send(b, "{\"type\":\"leave\",\"room\":\"r\",\"mid\":2}");
    expect_msg(b, "{\"type\":\"left\",\"room\":\"r\",\"mid\":2}");
    expect_msg(a, "{\"type\":\"peer-left\",\"room\":\"r\",\"peer\":\"B\"}");
    client_send(b, "{\"type\":\"leave\",\"room\":\"r\",\"mid\":3}");
    expect_error(b, "not-joined", NULL, "r", "3");
    client_send(c, "{\"type\":\"leave\",\"room\":\"r\"}");
    expect_error(c, "not-joined", NULL, "r", NULL);

    /* The last one out: the room is gone, a newcomer finds it empty. */
    client_send(a, "{\"type\":\"leave\",\"room\":\"r\"}");
    expect_msg(a, "{\"type\":\"left\",\"room\":\"r\"}");
    client_send(c, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(c, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[]}");
    expect_nothing(a);
    expect_nothing(b);
    expect_nothing(c);
}
END_TEST

/* Requests written in one go are answered in order, and the others hear of each in order. */
START_TEST(test_join_leave_join_in_one_write)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B");
    const char *const burst[] = {
        "{\"type\":\"join\",\"room\":\"r\",\"mid\":1}",
        "{\"type\":\"leave\",\"room\":\"r\",\"mid\":2}",
        "{\"type\":\"join\",\"room\":\"r\",\"mid\":3}",
    };

    client_send(b, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[]}");
    client_send_n(a, burst, N_ELEMS(burst));
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"B\"],\"mid\":1}");
    expect_msg(a, "{\"type\":\"left\",\"room\":\"r\",\"mid\":2}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"B\"],\"mid\":3}");
    expect_msg(b, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"A\"}");
    expect_msg(b, "{\"type\":\"peer-left\",\"room\":\"r\",\"peer\":\"A\"}");
    expect_msg(b, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"A\"}");
    expect_nothing(a);
    expect_nothing(b);
    ck_assert_int_eq(a->texts, 3);
}
END_TEST

START_TEST(test_room_limits)
{
    node_up("--max-room-peers", "2", "--max-rooms-per-peer", "1", NULL);
    client_t *a = peer("A"), *b = peer("B"), *c = peer("C");

    client_send(a, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[]}");
    client_send(a, "{\"type\":\"join\",\"room\":\"s\",\"mid\":7}");
    expect_error(a, "too-many-rooms", NULL, "s", "7");
    client_send(b, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"A\"]}");
    expect_msg(a, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"B\"}");
    client_send(c, "{\"type\":\"join\",\"room\":\"r\",\"mid\":\"x\"}");
    expect_error(c, "room-full", NULL, "r", "\"x\"");
    /* Nothing changed: A is still in r alone with B, and may rejoin it. */
    client_send(a, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"B\"]}");
    expect_nothing(a);
    expect_nothing(b);
    expect_nothing(c);
}
END_TEST

/* A bad message is answered with bad-request (carrying its mid when it has one); the
 * connection stays open. */
START_TEST(test_bad_request)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B");

    client_send(a, "{\"type\":\"offer\",\"mid\":\"m9\"}"); /* no to */
    expect_error(a, "bad-request", NULL, NULL, "\"m9\"");
    client_send(a, "{\"type\":\"shout\",\"to\":\"B\",\"mid\":5}");
    expect_error(a, "bad-request", NULL, NULL, "5");
    client_send(a, "{\"type\":\"join\",\"room\":\"no spaces\",\"mid\":6}");
    expect_error(a, "bad-request", NULL, NULL, "6");
    client_send(a, "{");
    expect_error(a, "bad-request", NULL, NULL, NULL);
    client_send(a, "[]");
    expect_error(a, "bad-request", NULL, NULL, NULL);

    client_send(a, "{\"type\":\"offer\",\"to\":\"B\",\"mid\":10}");
    expect_msg(b, "{\"type\":\"offer\",\"from\":\"A\",\"mid\":10}");
    expect_msg(a, "{\"type\":\"ack\",\"mid\":10}");
    expect_nothing(a);
    expect_nothing(b);
    ck_assert_int_eq(a->closes, 0);
    ck_assert_int_eq(w.ends, 0);
}
END_TEST

/* A client that drops its connection leaves its rooms: the others hear peer-left once its
 * connection has ended, and its ID is free again. */
START_TEST(test_disconnect_tells_room)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B"), *c = peer("C");

    client_send(a, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[]}");
    client_send(a, "{\"type\":\"join\",\"room\":\"t\"}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"t\",\"peers\":[]}");
    client_send(b, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"A\"]}");
    expect_msg(a, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"B\"}");
    client_send(c, "{\"type\":\"join\",\"room\":\"t\"}");
    expect_msg(c, "{\"type\":\"joined\",\"room\":\"t\",\"peers\":[\"A\"]}");
    expect_msg(a, "{\"type\":\"peer-joined\",\"room\":\"t\",\"peer\":\"C\"}");

    client_hang_up(a);
    expect_msg(b, "{\"type\":\"peer-left\",\"room\":\"r\",\"peer\":\"A\"}");
    expect_msg(c, "{\"type\":\"peer-left\",\"room\":\"t\",\"peer\":\"A\"}");
    ck_assert_ptr_null(a->conn);
    ck_assert_int_eq(a->ends, 1);
    ck_assert_int_eq(a->closes_seen, 1);
    ck_assert_int_eq(w.ends, 1);
    ck_assert_int_eq(w.reaped, 1);

    /* Messages to A now fail, and its ID can be taken again. */
    client_send(b, "{\"type\":\"offer\",\"to\":\"A\",\"mid\":1}");
    expect_error(b, "peer-unavailable", "A", NULL, "1");
    client_t *a2 = peer("A");
    client_send(a2, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(a2, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"B\"]}");
    expect_msg(b, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"A\"}");
    expect_nothing(b);
    expect_nothing(c);
    ck_assert_int_eq(b->ends + c->ends + a2->ends, 0);
}
END_TEST

/* The client closes with a close frame: the node echoes it, half-closes, and once the client
 * has closed its side the others hear peer-left. */
START_TEST(test_close_frame_tells_room)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B");

    client_send(a, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[]}");
    client_send(b, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"A\"]}");
    expect_msg(a, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"B\"}");

    client_send_close(a, 1000);
    RUN_UNTIL(a->eofs > 0);
    ck_assert_int_eq(a->closes, 1);
    ck_assert_uint_eq(a->close_code, 1000);
    ck_assert_int_eq(a->close_writes, 1);
    client_hang_up(a);
    expect_msg(b, "{\"type\":\"peer-left\",\"room\":\"r\",\"peer\":\"A\"}");
    ck_assert_int_eq(a->ends, 1);
    ck_assert_int_eq(a->closes_seen, 1);
    expect_nothing(a);
    expect_nothing(b);
}
END_TEST

/* A binary message breaks the protocol (text JSON only): the node closes with 1003 without
 * waiting for the client, and the peer's rooms hear it left once its connection has ended. */
START_TEST(test_binary_message_closes)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B");
    struct evbuffer *out = evbuffer_new();

    client_send(a, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[]}");
    client_send(b, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"A\"]}");
    expect_msg(a, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"B\"}");

    ck_assert_ptr_nonnull(out);
    add_frame(out, SB_WS_OP_BINARY, "\x01\x02", 2);
    ck_assert_int_eq(bufferevent_write_buffer(a->end, out), 0);
    evbuffer_free(out);
    RUN_UNTIL(a->eofs > 0);
    ck_assert_int_eq(a->closes, 1);
    ck_assert_uint_eq(a->close_code, 1003);
    ck_assert_uint_gt(strlen(a->close_reason), 0);
    ck_assert_int_eq(a->texts, 1);
    client_hang_up(a);
    expect_msg(b, "{\"type\":\"peer-left\",\"room\":\"r\",\"peer\":\"A\"}");
    ck_assert_int_eq(a->ends, 1);
    ck_assert_int_eq(a->closes_seen, 1);
    expect_nothing(a);
    expect_nothing(b);
}
END_TEST

/* A plain HTTP request gets its answer and the connection ends; the relay never sees it. */
START_TEST(test_plain_http)
{
    static const char req[] = "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    node_up(NULL);
    client_t *c = client_new();

    client_write(c, req, sizeof(req) - 1);
    RUN_UNTIL(c->eofs > 0);
    ck_assert_ptr_nonnull(c->head);
    ck_assert_msg(strncmp(c->head, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", c->head);
    ck_assert_ptr_nonnull(strstr(c->head, "Content-Length: 6\r\n"));
    ck_assert_uint_eq(evbuffer_get_length(c->raw), 6);
    ck_assert_int_eq(memcmp(evbuffer_pullup(c->raw, -1), "ready\n", 6), 0);
    /* Called twice here: linger() finds the output already handed over to the pair and calls
     * it, then the write callback that handing-over scheduled calls it again. With TCP, bytes
     * are written on a later turn and it is called once. */
    ck_assert_int_eq(c->close_writes, 1);
    ck_assert_int_eq(c->eofs, 1);
    client_hang_up(c);
    RUN_UNTIL(c->conn == NULL);
    ck_assert_int_eq(c->ends, 1);
    ck_assert_int_eq(c->opens + c->texts + c->closes_seen, 0);
}
END_TEST

/* A peer that stops reading is dropped once more than --max-output bytes wait for it; whoever
 * sends to it is told it is unavailable, and its rooms hear it left. */
START_TEST(test_slow_reader_dropped)
{
    node_up("--max-output", "1k", NULL);
    client_t *a = peer("A"), *b = peer("B");
    char text[512];

    client_send(b, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[]}");
    client_send(a, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"B\"]}");
    expect_msg(b, "{\"type\":\"peer-joined\",\"room\":\"r\",\"peer\":\"A\"}");

    bufferevent_disable(b->end, EV_READ); /* B stops reading */
    size_t queued = 0;
    int acks = 0, fits = -1;
    for (int i = 0; i < 10 && fits < 0; i++) {
        char mid[16], want[512];
        snprintf(mid, sizeof(mid), "%d", i);
        snprintf(text, sizeof(text),
                 "{\"type\":\"offer\",\"to\":\"B\",\"payload\":\"%0300d\",\"mid\":%d}", 0, i);
        /* What B would get: the relayed message in a frame with a 4-byte header. */
        queued += 4 + (size_t)snprintf(want, sizeof(want),
                                       "{\"type\":\"offer\",\"from\":\"A\",\"payload\":"
                                       "\"%0300d\",\"mid\":%d}",
                                       0, i);
        if (queued > 1024)
            fits = i;
        client_send(a, text);
        if (queued <= 1024) {
            const char *got = next_msg(a);
            snprintf(want, sizeof(want), "{\"type\":\"ack\",\"mid\":%d}", i);
            ck_assert_str_eq(got, want);
            acks++;
        }
    }
    /* Two 352-byte frames fit in 1 KiB, a third does not. */
    ck_assert_int_eq(fits, 2);
    ck_assert_int_eq(acks, 2);
    RUN_UNTIL(b->conn == NULL);
    ck_assert_int_eq(b->ends, 1);
    ck_assert_int_eq(b->closes_seen, 1);
    /* The third waits for B's connection to be settled, which ends B's session (sessions are
     * off here): it is refused, and the room hears B left, in either order. */
    const char *first = next_msg(a), *second = next_msg(a);
    if (strstr(first, "peer-left") != NULL) {
        const char *t = first;
        first = second;
        second = t;
    }
    check_error(first, "peer-unavailable", "B", NULL, "2");
    ck_assert_str_eq(second, "{\"type\":\"peer-left\",\"room\":\"r\",\"peer\":\"B\"}");
    client_send(a, "{\"type\":\"bye\",\"to\":\"B\",\"mid\":99}");
    expect_error(a, "peer-unavailable", "B", NULL, "99");
    expect_nothing(a);
    ck_assert_int_eq(a->ends, 0);
}
END_TEST

/* Freeing the node with connections still open tells the relay of each (LeakSanitizer checks
 * that nothing is left behind). */
START_TEST(test_free_with_open_connections)
{
    node_up(NULL);
    client_t *a = peer("A"), *b = peer("B");
    client_t *h = client_new(); /* still in its HTTP phase */
    (void)h;

    client_send(a, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(a, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[]}");
    client_send(b, "{\"type\":\"join\",\"room\":\"r\"}");
    expect_msg(b, "{\"type\":\"joined\",\"room\":\"r\",\"peers\":[\"A\"]}");
    /* A request in flight that nobody will read. */
    client_send(a, "{\"type\":\"offer\",\"to\":\"B\",\"mid\":1}");
    node_down();
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc;

    tc = tcase_create("ids");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_upgrade_and_welcome);
    tcase_add_test(tc, test_random_id);
    tcase_add_test(tc, test_id_taken);
    tcase_add_test(tc, test_bad_id);
    suite_add_tcase(s, tc);

    tc = tcase_create("relaying");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_relay_offer);
    tcase_add_test(tc, test_relay_order);
    tcase_add_test(tc, test_relay_to_absent_peer);
    tcase_add_test(tc, test_bad_request);
    suite_add_tcase(s, tc);

    tc = tcase_create("rooms");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_join_and_leave);
    tcase_add_test(tc, test_join_leave_join_in_one_write);
    tcase_add_test(tc, test_room_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("connections");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_disconnect_tells_room);
    tcase_add_test(tc, test_close_frame_tells_room);
    tcase_add_test(tc, test_binary_message_closes);
    tcase_add_test(tc, test_plain_http);
    tcase_add_test(tc, test_slow_reader_dropped);
    tcase_add_test(tc, test_free_with_open_connections);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(relay_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
