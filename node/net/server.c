/* The listener and the set of live connections: accepting, reaping and shutting down. */
#include "net/server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "base/loop.h"
#include "base/log.h"
#include "base/metrics.h"
#include "net/http_response.h"
#include "net/tls.h"
#include "ws.h"

struct sb_server {
    struct event_base *base;
    const sb_config_t *cfg;
    sb_handler_t handler;
    sb_routes_t routes;
    sb_auth_t *auth;          /* who may open a WebSocket */
    sb_limits_t *limits;      /* per-source limits */
    sb_streams_t *streams;    /* what the connections' streams share */
    sb_deadlines_t deadlines; /* the connections' timeouts */
    sb_conn_env_t env;        /* what every connection is given */
    char busy[256];           /* the 503 for connections over --max-connections */
    size_t busy_len;
    struct evconnlistener *listener;       /* plain: --listen, NULL for none */
    struct evconnlistener *tls_listener;   /* --tls-listen, NULL for none */
    sb_tls_t *tls;                         /* its keys, NULL without TLS */
    sb_conn_env_t tls_env;                 /* env, with the TLS transport */
    struct evconnlistener *admin_listener; /* --admin-listen, NULL for none; open until freed */
    sb_routes_t admin_routes;              /* /metrics and the probes alone */
    sb_conn_env_t admin_env;               /* env, with the admin routes and no limits */
    struct event *reaper;                  /* frees ended connections on the next loop turn */
    struct event *deadline;                /* bounds a shutdown */
    sb_conn_t *live;                       /* connections in service */
    sb_conn_t *dead;                       /* ended, waiting for the reaper */
    size_t nlive;
    int stopping; /* shutting down or draining: not ready, done once all connections end */
    int draining; /* 1 during the drain's delay, 2 once it closes connections */
    int finished; /* done has been called */
    struct event *drain_timer;
    double drain_start, drain_seconds;
    size_t drain_total, drain_asked;
    sb_conn_t *drain_next; /* the next connection the drain closes; the older ones follow it */
    sb_server_done_fn done;
    void *done_ctx;
    char address[80], tls_address[80], admin_address[80]; /* "" for none */
    sb_ready_fn ready; /* the node's own readiness, besides shutting down */
    void *ready_ctx;
};

static void unlink_conn(sb_conn_t **list, sb_conn_t *c)
{
    sb_conn_t *prev = *sb_conn_prev(c), *next = *sb_conn_next(c);
    if (prev)
        *sb_conn_next(prev) = next;
    else
        *list = next;
    if (next)
        *sb_conn_prev(next) = prev;
    *sb_conn_prev(c) = *sb_conn_next(c) = NULL;
}

static void push_conn(sb_conn_t **list, sb_conn_t *c)
{
    *sb_conn_prev(c) = NULL;
    *sb_conn_next(c) = *list;
    if (*list)
        *sb_conn_prev(*list) = c;
    *list = c;
}

/* A connection has ended: it is freed on the next loop turn, never inside its own callback. */
static void reap(void *ctx, sb_conn_t *c)
{
    sb_server_t *s = ctx;
    if (s->drain_next == c)
        s->drain_next = *sb_conn_next(c);
    unlink_conn(&s->live, c);
    s->nlive--;
    sb_metrics.connections--;
    push_conn(&s->dead, c);
    event_active(s->reaper, EV_TIMEOUT, 0);
}

/* Every connection has ended, or the deadline has passed. */
static void finish(sb_server_t *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    if (s->done)
        s->done(s->done_ctx);
    else
        event_base_loopexit(s->base, NULL);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    sb_server_t *s = arg;
    (void)fd;
    (void)what;
    while (s->dead) {
        sb_conn_t *c = s->dead;
        unlink_conn(&s->dead, c);
        sb_conn_free(c);
    }
    /* Stopped: done once the last connection is gone (for a drain, once it has closed the
     * listener: until then new clients still come). */
    if (s->stopping && s->nlive == 0 && s->draining != 1)
        finish(s);
}

/* /readyz: not while shutting down, else as the node says. */
static int ready(void *ctx, char *why, size_t len)
{
    sb_server_t *s = ctx;
    if (s->stopping) {
        snprintf(why, len, s->draining ? "draining" : "shutting down");
        return 0;
    }
    return s->ready ? s->ready(s->ready_ctx, why, len) : 1;
}

static void accept_conn(sb_server_t *s, const sb_conn_env_t *env, evutil_socket_t fd,
                        struct sockaddr *addr)
{
    sb_metrics.accepted++;
    if (s->nlive >= s->cfg->max_connections) {
        sb_metrics.refused++;
        env->transport->refuse(env->transport, fd, s->busy, s->busy_len);
        return;
    }
    sb_conn_t *c = sb_conn_new(env, fd, addr);
    if (c != NULL) {
        push_conn(&s->live, c);
        s->nlive++;
        sb_metrics.connections++;
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int socklen, void *arg)
{
    sb_server_t *s = arg;
    (void)l;
    (void)socklen;
    accept_conn(s, &s->env, fd, addr);
}

static void on_accept_tls(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                          int socklen, void *arg)
{
    sb_server_t *s = arg;
    (void)l;
    (void)socklen;
    accept_conn(s, &s->tls_env, fd, addr);
}

static void on_accept_admin(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                            int socklen, void *arg)
{
    sb_server_t *s = arg;
    (void)l;
    (void)socklen;
    accept_conn(s, &s->admin_env, fd, addr);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    (void)l;
    /* Typically EMFILE: the listener retries on its next readiness; say it once per event. */
    sb_log(SB_LOG_WARN, "accept failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void format_address(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[64] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        evutil_inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(out, len, "[%s]:%d", host, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        evutil_inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(out, len, "%s:%d", host, port);
    }
}

/* Resolves HOST:PORT, [HOST]:PORT or :PORT (all interfaces) to a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, int *sslen, char *err,
                        size_t errlen)
{
    char host[256];
    const char *port;
    const char *colon = strrchr(spec, ':');
    size_t hlen;

    if (colon == NULL || colon[1] == '\0')
        goto bad;
    port = colon + 1;
    hlen = (size_t)(colon - spec);
    if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']')
        spec++, hlen -= 2;
    if (hlen >= sizeof(host))
        goto bad;
    memcpy(host, spec, hlen);
    host[hlen] = '\0';

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    int rc = getaddrinfo(hlen ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", spec, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
bad:
    snprintf(err, errlen, "cannot parse listen address '%s' (want HOST:PORT)", spec);
    return -1;
}

/* Binds spec (HOST:PORT) and accepts with cb; fills address with what was bound. */
static int open_listener(sb_server_t *s, const char *spec, evconnlistener_cb cb,
                         struct evconnlistener **out, char *address, size_t addrlen, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (parse_listen(spec, &ss, &sslen, err, errlen) != 0)
        return -1;
    *out = evconnlistener_new_bind(
        s->base, cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&ss, sslen);
    if (*out == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    evconnlistener_set_error_cb(*out, on_accept_error);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(evconnlistener_get_fd(*out), (struct sockaddr *)&bound, &blen) != 0)
        bound = ss;
    format_address(&bound, address, addrlen);
    return 0;
}

sb_server_t *sb_server_new(struct event_base *base, const sb_config_t *cfg,
                           const sb_handler_t *handler, char *err, size_t errlen)
{
    sb_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->cfg = cfg;
    s->handler = *handler;
    s->auth = sb_auth_new(cfg, err, errlen);
    if (s->auth == NULL) {
        free(s);
        return NULL;
    }
    s->limits = sb_limits_new(base, cfg, err, errlen);
    if (s->limits == NULL) {
        sb_auth_free(s->auth);
        free(s);
        return NULL;
    }
    s->streams = sb_streams_new(base, SB_PRIO_CLIENTS);
    if (s->streams == NULL ||
        sb_deadlines_init(&s->deadlines, base, sb_conn_deadline_passed, s) != 0) {
        sb_deadlines_free(&s->deadlines);
        sb_streams_free(s->streams);
        sb_limits_free(s->limits);
        sb_auth_free(s->auth);
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->routes = (sb_routes_t){.cfg = cfg,
                              .auth = s->auth,
                              .metrics_elsewhere = cfg->admin_listen[0] != '\0',
                              .ready = ready,
                              .ready_ctx = s};
    s->admin_routes = s->routes;
    s->admin_routes.admin = 1;
    s->admin_routes.metrics_elsewhere = 0;
    s->env = (sb_conn_env_t){.base = base,
                             .cfg = cfg,
                             .transport = &sb_transport_tcp,
                             .handler = &s->handler,
                             .route = sb_routes_answer,
                             .route_ctx = &s->routes,
                             .on_end = reap,
                             .end_ctx = s,
                             .limits = s->limits,
                             .streams = s->streams,
                             .deadlines = &s->deadlines};
    /* Rendered once: a refused connection costs no more than a write. */
    struct evbuffer *busy = evbuffer_new();
    if (busy != NULL) {
        sb_http_error(busy, 503, "server full", "Retry-After: 1\r\n", 0);
        int n = evbuffer_remove(busy, s->busy, sizeof(s->busy));
        s->busy_len = n > 0 ? (size_t)n : 0;
        evbuffer_free(busy);
    }

    s->reaper = event_new(base, -1, 0, on_reap, s);
    if (s->reaper == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Both listeners serve the same routes; only the transport differs. */
    if (cfg->tls_listen[0] != '\0') {
        s->tls = sb_tls_new(cfg->tls_cert, cfg->tls_key, err, errlen);
        if (s->tls == NULL)
            goto fail;
        s->tls_env = s->env;
        s->tls_env.transport = sb_tls_transport(s->tls);
        if (open_listener(s, cfg->tls_listen, on_accept_tls, &s->tls_listener, s->tls_address,
                          sizeof(s->tls_address), err, errlen) != 0)
            goto fail;
    }
    if (cfg->listen[0] != '\0' && open_listener(s, cfg->listen, on_accept, &s->listener, s->address,
                                                sizeof(s->address), err, errlen) != 0)
        goto fail;
    if (cfg->admin_listen[0] != '\0') {
        s->admin_env = s->env;
        s->admin_env.route_ctx = &s->admin_routes;
        s->admin_env.limits = NULL;
        if (open_listener(s, cfg->admin_listen, on_accept_admin, &s->admin_listener,
                          s->admin_address, sizeof(s->admin_address), err, errlen) != 0)
            goto fail;
    }
    return s;
fail:
    sb_server_free(s);
    return NULL;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    sb_server_t *s = arg;
    (void)fd;
    (void)what;
    sb_log(SB_LOG_WARN, "shutdown: %zu connection(s) did not close in time", s->nlive);
    finish(s);
}

static void close_listener(sb_server_t *s)
{
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    if (s->tls_listener) {
        evconnlistener_free(s->tls_listener);
        s->tls_listener = NULL;
    }
}

/* Bounds a stop: the connections' own timeouts bound each of them, this bounds the whole. */
static void arm_deadline(sb_server_t *s, double seconds)
{
    struct timeval tv = sb_loop_tv(seconds);
    if (s->deadline == NULL)
        s->deadline = evtimer_new(s->base, on_deadline, s);
    if (s->deadline)
        evtimer_add(s->deadline, &tv);
}

void sb_server_shutdown(sb_server_t *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    close_listener(s);
    sb_log(SB_LOG_INFO, "shutting down: closing %zu connection(s)", s->nlive);
    for (sb_conn_t *c = s->live, *next; c != NULL; c = next) {
        next = *sb_conn_next(c); /* closing may move c to the dead list */
        sb_conn_close(c, SB_WS_CLOSE_GOING_AWAY, "server shutting down");
    }
    arm_deadline(s, s->cfg->close_timeout + 1);
    event_active(s->reaper, EV_TIMEOUT, 0); /* done at once when nothing is open */
}

/* The drain's timer: first the end of the delay, then a tick every DRAIN_TICK seconds that
 * closes as many connections as the time elapsed calls for. */
#define DRAIN_TICK 0.05

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    sb_server_t *s = arg;
    double now = sb_loop_now(s->base);
    (void)fd;
    (void)what;
    if (s->draining == 1) {
        s->draining = 2;
        close_listener(s);
        s->drain_start = now;
        s->drain_total = s->nlive;
        s->drain_next = s->live;
        sb_log(SB_LOG_INFO, "draining: listener closed; closing %zu connection(s) over %.1f s",
               s->nlive, s->drain_seconds);
        arm_deadline(s, s->drain_seconds + s->cfg->close_timeout + 1);
    }
    double share = s->drain_seconds > 0 ? (now - s->drain_start) / s->drain_seconds : 1;
    size_t due = share >= 1 ? s->drain_total : (size_t)((double)s->drain_total * share) + 1;
    while (s->drain_asked < due && s->drain_next != NULL) {
        sb_conn_t *c = s->drain_next;
        s->drain_next = *sb_conn_next(c); /* before closing: closing may end it */
        s->drain_asked++;
        sb_conn_close(c, SB_WS_CLOSE_GOING_AWAY, "server draining");
    }
    if (s->drain_next != NULL) {
        struct timeval tv = sb_loop_tv(DRAIN_TICK);
        evtimer_add(s->drain_timer, &tv);
    }
    event_active(s->reaper, EV_TIMEOUT, 0); /* done at once when nothing is open */
}

void sb_server_drain(sb_server_t *s, double delay, double seconds)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->draining = 1;
    s->drain_seconds = seconds;
    sb_metrics.draining = 1;
    sb_log(SB_LOG_INFO,
           "draining: not ready; accepting for %.1f s more, then closing %zu connection(s) "
           "over %.1f s",
           delay, s->nlive, seconds);
    s->drain_timer = evtimer_new(s->base, on_drain, s);
    struct timeval tv = sb_loop_tv(delay);
    if (s->drain_timer == NULL || evtimer_add(s->drain_timer, &tv) != 0) {
        s->draining = 0; /* out of memory: stop at once instead */
        s->stopping = 0;
        sb_server_shutdown(s);
    }
}

void sb_server_set_done(sb_server_t *s, sb_server_done_fn fn, void *ctx)
{
    s->done = fn;
    s->done_ctx = ctx;
}

void sb_server_free(sb_server_t *s)
{
    if (s == NULL)
        return;
    close_listener(s);
    if (s->admin_listener)
        evconnlistener_free(s->admin_listener);
    while (s->live) {
        sb_conn_t *c = s->live;
        unlink_conn(&s->live, c);
        sb_conn_free(c);
    }
    while (s->dead) {
        sb_conn_t *c = s->dead;
        unlink_conn(&s->dead, c);
        sb_conn_free(c);
    }
    if (s->reaper)
        event_free(s->reaper);
    if (s->deadline)
        event_free(s->deadline);
    if (s->drain_timer)
        event_free(s->drain_timer);
    sb_tls_free(s->tls); /* after the connections, whose transport it is */
    sb_auth_free(s->auth);
    sb_limits_free(s->limits);        /* after the connections, which release their sources */
    sb_streams_free(s->streams);      /* after the connections, which use it */
    sb_deadlines_free(&s->deadlines); /* after the connections, which clear theirs */
    free(s);
}

void sb_server_set_ready_check(sb_server_t *s, sb_ready_fn fn, void *ctx)
{
    s->ready = fn;
    s->ready_ctx = ctx;
}

const char *sb_server_address(const sb_server_t *s) { return s->address; }

const char *sb_server_tls_address(const sb_server_t *s) { return s->tls_address; }
const char *sb_server_admin_address(const sb_server_t *s) { return s->admin_address; }

int sb_server_reload_tls(sb_server_t *s)
{
    if (s->tls == NULL)
        return 1;
    return sb_tls_reload(s->tls) == 0 ? 0 : -1;
}
