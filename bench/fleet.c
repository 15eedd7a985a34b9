/* Many WebSocket peers of protocol v1 opened at once: bounded handshakes in flight, spread over
 * source addresses, each one ready when its welcome arrives; failures tallied by cause. */
#include "fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "server_msg.h"

static void add_cause(sb_fleet_t *f, const char *cause)
{
    for (int i = 0; i < f->ncauses; i++) {
        if (strcmp(f->causes[i].cause, cause) == 0) {
            f->causes[i].count++;
            return;
        }
    }
    int i = f->ncauses;
    if (i >= SB_FLEET_MAX_CAUSES - 1) { /* the last entry gathers every further cause */
        i = SB_FLEET_MAX_CAUSES - 1;
        if (f->ncauses == SB_FLEET_MAX_CAUSES) {
            f->causes[i].count++;
            return;
        }
        cause = "other";
    }
    f->ncauses = i + 1;
    snprintf(f->causes[i].cause, sizeof(f->causes[i].cause), "%s", cause);
    f->causes[i].count = 1;
}

static void start_more(sb_fleet_t *f);

/* An opening peer failed: tally it and open the next. */
static void failed(sb_peer_t *p, const char *cause)
{
    sb_fleet_t *f = p->fleet;
    p->state = SB_PEER_FAILED;
    f->failed++;
    f->inflight--;
    add_cause(f, cause);
    start_more(f);
}

static void on_text(sb_wsc_t *c, const char *text, size_t len, void *arg)
{
    sb_peer_t *p = arg;
    sb_fleet_t *f = p->fleet;
    (void)c;
    if (p->state == SB_PEER_READY) {
        if (f->cfg.on_message)
            f->cfg.on_message(p, text, len, f->cfg.arg);
        return;
    }
    if (p->state != SB_PEER_OPENING)
        return;
    sb_server_msg_t m;
    if (sb_server_msg_parse(text, len, &m) != 0 || !sb_server_msg_is(m.type, "welcome")) {
        char code[40] = "no welcome first";
        if (m.code.len > 0)
            sb_server_msg_copy(m.code, code, sizeof(code));
        sb_wsc_close(p->wsc);
        failed(p, code);
        return;
    }
    if (p->id[0] == '\0' && m.id.len > 0)
        sb_server_msg_copy(m.id, p->id, sizeof(p->id));
    p->state = SB_PEER_READY;
    f->ready++;
    f->inflight--;
    start_more(f);
}

static void on_close(sb_wsc_t *c, int http_status, int close_code, const char *why, void *arg)
{
    sb_peer_t *p = arg;
    sb_fleet_t *f = p->fleet;
    (void)c;
    if (p->state == SB_PEER_OPENING) {
        char cause[48];
        if (http_status > 0 && http_status != 101) {
            snprintf(cause, sizeof(cause), "http %d", http_status);
            if (http_status == 429)
                f->saw_429 = 1;
        } else {
            snprintf(cause, sizeof(cause), "%s", why);
        }
        failed(p, cause);
    } else if (p->state == SB_PEER_READY) {
        p->state = SB_PEER_LOST;
        f->lost++;
        if (f->cfg.on_lost)
            f->cfg.on_lost(p, close_code, why, f->cfg.arg);
    }
}

static const sb_wsc_handlers_t handlers = {NULL, on_text, on_close};

static void start_one(sb_fleet_t *f, sb_peer_t *p)
{
    const sb_wsurl_t *u = &f->cfg.urls[p->url];
    char target[sizeof(u->path) + SB_ID_MAX + 8];
    if (p->id[0])
        snprintf(target, sizeof(target), "%s%cid=%s", u->path, strchr(u->path, '?') ? '&' : '?',
                 p->id);
    else
        snprintf(target, sizeof(target), "%s", u->path);
    const struct in_addr *src =
        f->cfg.nsources > 0 ? &f->cfg.sources[p->index % f->cfg.nsources] : NULL;
    const char *err = "";
    p->state = SB_PEER_OPENING;
    p->opened_at = sb_now_ns();
    f->inflight++;
    p->wsc =
        sb_wsc_open(f->base, &u->addr, src, u->host, target, f->cfg.timeout_s, &handlers, p, &err);
    if (!p->wsc)
        failed(p, err);
}

/* Starts peers while fewer than the limit are opening (bounded by the peers left); ends the
 * loop when all are settled. */
static void start_more(sb_fleet_t *f)
{
    if (f->starting) /* a failure inside start_one: the loop below goes on */
        return;
    f->starting = 1;
    while (f->inflight < f->cfg.concurrency && f->next < f->n) {
        sb_peer_t *p = &f->peers[f->next++];
        if (p->state == SB_PEER_IDLE)
            start_one(f, p);
    }
    f->starting = 0;
    if (f->inflight == 0 && f->next >= f->n)
        event_base_loopexit(f->base, NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    sb_fleet_t *f = arg;
    (void)fd, (void)what;
    int64_t now = sb_now_ns();
    int64_t limit = (int64_t)(f->cfg.timeout_s * 1e9);
    for (size_t i = 0; i < f->next && i < f->n; i++) {
        sb_peer_t *p = &f->peers[i];
        if (p->state == SB_PEER_OPENING && now - p->opened_at > limit) {
            sb_wsc_free(p->wsc);
            p->wsc = NULL;
            failed(p, "no welcome in time");
        }
    }
    if (f->cfg.progress && now >= f->next_progress) {
        f->next_progress += SB_NS_PER_S;
        fprintf(stderr, "connections: %zu ready, %zu opening, %zu failed, of %zu\n", f->ready,
                f->inflight, f->failed, f->n);
    }
}

sb_fleet_t *sb_fleet_new(struct event_base *base, const sb_fleet_config_t *cfg, size_t n)
{
    sb_fleet_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->base = base;
    f->cfg = *cfg;
    if (f->cfg.concurrency == 0)
        f->cfg.concurrency = 1;
    f->n = n;
    f->peers = calloc(n ? n : 1, sizeof(*f->peers));
    f->tick = event_new(base, -1, EV_PERSIST, on_tick, f);
    if (!f->peers || !f->tick) {
        free(f->peers);
        if (f->tick)
            event_free(f->tick);
        free(f);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        f->peers[i].fleet = f;
        f->peers[i].index = i;
        f->peers[i].url = i % (cfg->nurls ? cfg->nurls : 1);
    }
    return f;
}

size_t sb_fleet_open(sb_fleet_t *f)
{
    int64_t t0 = sb_now_ns();
    f->next = 0;
    f->next_progress = t0 + SB_NS_PER_S;
    struct timeval tv = {0, 100000};
    event_add(f->tick, &tv);
    start_more(f);
    if (f->inflight > 0)
        event_base_dispatch(f->base);
    event_del(f->tick);
    f->open_s = (double)(sb_now_ns() - t0) / 1e9;
    return f->ready;
}

int sb_fleet_send(sb_peer_t *p, const sb_str_t *parts, size_t n)
{
    if (p->state != SB_PEER_READY)
        return -1;
    return sb_wsc_send_parts(p->wsc, parts, n);
}

/* Teardown: the last close answered ends the loop early. */
static void on_close_teardown(sb_wsc_t *c, int http_status, int close_code, const char *why,
                              void *arg)
{
    sb_fleet_t *f = ((sb_peer_t *)arg)->fleet;
    (void)c, (void)http_status, (void)close_code, (void)why;
    if (f->closing > 0 && --f->closing == 0)
        event_base_loopexit(f->base, NULL);
}
static const sb_wsc_handlers_t teardown_handlers = {NULL, NULL, on_close_teardown};

static void on_teardown_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    event_base_loopexit(arg, NULL);
}

void sb_fleet_free(sb_fleet_t *f, double wait_s)
{
    if (!f)
        return;
    f->closing = 0;
    for (size_t i = 0; i < f->n; i++) {
        sb_peer_t *p = &f->peers[i];
        if (p->wsc && sb_wsc_is_open(p->wsc)) {
            sb_wsc_set_handlers(p->wsc, &teardown_handlers, p);
            sb_wsc_close(p->wsc);
            f->closing++;
        }
    }
    struct event *timeout = evtimer_new(f->base, on_teardown_timeout, f->base);
    if (f->closing > 0 && wait_s > 0 && timeout) {
        struct timeval tv = {(time_t)wait_s,
                             (suseconds_t)((wait_s - (double)(time_t)wait_s) * 1e6)};
        evtimer_add(timeout, &tv);
        event_base_dispatch(f->base);
    }
    if (timeout)
        event_free(timeout);
    for (size_t i = 0; i < f->n; i++)
        sb_wsc_free(f->peers[i].wsc);
    event_free(f->tick);
    free(f->peers);
    free(f);
}
