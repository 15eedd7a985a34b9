/* Per-source limits: connections open at once and new connections a second per client address.
 *
 * A source is an IPv4 address, or an IPv6 /64 (sb_source_format): one host given a /64 could
 * otherwise take a fresh address for every connection. Each source seen lately has an entry: its
 * open connections and a token bucket of new ones. An entry with no connection open sits on an idle
 * list, oldest first; once it has been idle for as long as its bucket takes to refill from empty
 * (BURST_SECONDS), forgetting it changes nothing, and the sweep does so, a bounded number a turn.
 * So the table holds the sources with connections open plus those seen in the last few seconds,
 * however many pass by. */
#include "net/limits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/loop.h"
#include "base/map.h"
#include "base/metrics.h"

/* Bursts of new connections: this many seconds' worth of --source-handshakes. */
#define BURST_SECONDS 2.0
/* How often the sweep runs, and the most entries it forgets a turn. */
#define SWEEP_SECONDS 1.0
#define SWEEP_BATCH 1024
/* The most --trust-proxy entries. */
#define MAX_TRUSTED 256

struct sb_source {
    size_t open;
    sb_bucket_t handshakes;
    double idle_since;                  /* when open last fell to 0 (or the entry was made) */
    sb_source_t *idle_prev, *idle_next; /* on the idle list while open == 0 */
    char key[SB_SOURCE_TEXT];
};

struct sb_limits {
    struct event_base *base;
    const sb_config_t *cfg;
    sb_cidr_t *trusted;
    size_t ntrusted;
    sb_map_t *sources;                  /* source text -> sb_source_t */
    sb_source_t *idle_head, *idle_tail; /* oldest first */
    struct event *sweep;
};

static void idle_unlink(sb_limits_t *l, sb_source_t *s)
{
    if (s->idle_prev)
        s->idle_prev->idle_next = s->idle_next;
    else
        l->idle_head = s->idle_next;
    if (s->idle_next)
        s->idle_next->idle_prev = s->idle_prev;
    else
        l->idle_tail = s->idle_prev;
    s->idle_prev = s->idle_next = NULL;
}

static void idle_push(sb_limits_t *l, sb_source_t *s, double now)
{
    s->idle_since = now;
    s->idle_next = NULL;
    s->idle_prev = l->idle_tail;
    if (l->idle_tail)
        l->idle_tail->idle_next = s;
    else
        l->idle_head = s;
    l->idle_tail = s;
}

static void forget(sb_limits_t *l, sb_source_t *s)
{
    idle_unlink(l, s);
    sb_map_remove(l->sources, s->key);
    free(s);
    sb_metrics.sources = sb_map_size(l->sources);
}

/* Forgets the sources idle long enough to be full again, oldest first, SWEEP_BATCH a turn. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    sb_limits_t *l = arg;
    double now = sb_loop_now(l->base);
    (void)fd;
    (void)what;
    for (int n = 0; l->idle_head != NULL; n++) {
        if (now - l->idle_head->idle_since < BURST_SECONDS)
            return;
        if (n == SWEEP_BATCH) {
            event_active(l->sweep, EV_TIMEOUT, 0); /* the rest on the next turn */
            return;
        }
        forget(l, l->idle_head);
    }
}

sb_limits_t *sb_limits_new(struct event_base *base, const sb_config_t *cfg, char *err,
                           size_t errlen)
{
    const char *why = NULL;
    sb_limits_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        goto nomem;
    l->base = base;
    l->cfg = cfg;
    l->trusted = calloc(MAX_TRUSTED, sizeof(*l->trusted));
    l->sources = sb_map_new();
    l->sweep = event_new(base, -1, EV_PERSIST, on_sweep, l);
    if (l->trusted == NULL || l->sources == NULL || l->sweep == NULL)
        goto nomem;
    int n =
        sb_cidr_list_parse(cfg->trust_proxy ? cfg->trust_proxy : "", l->trusted, MAX_TRUSTED, &why);
    if (n < 0) {
        snprintf(err, errlen, "--trust-proxy: %s in '%s'", why, cfg->trust_proxy);
        sb_limits_free(l);
        return NULL;
    }
    l->ntrusted = (size_t)n;
    struct timeval tv = sb_loop_tv(SWEEP_SECONDS);
    if (evtimer_add(l->sweep, &tv) != 0)
        goto nomem;
    return l;
nomem:
    snprintf(err, errlen, "out of memory");
    sb_limits_free(l);
    return NULL;
}

void sb_limits_free(sb_limits_t *l)
{
    if (l == NULL)
        return;
    if (l->sources) {
        size_t cursor = 0;
        const char *key;
        void *value;
        while (l->idle_head)
            forget(l, l->idle_head);
        /* What is left has connections open (freed after the limits: a caller's bug); the map
         * must not change while it is walked, so only the values go. */
        while (sb_map_next(l->sources, &cursor, &key, &value))
            free(value);
        sb_map_free(l->sources);
    }
    if (l->sweep)
        event_free(l->sweep);
    free(l->trusted);
    free(l);
    sb_metrics.sources = 0;
}

int sb_limits_trusted(const sb_limits_t *l, const sb_ip_t *ip)
{
    return sb_cidr_list_match(l->trusted, l->ntrusted, ip);
}

void sb_limits_client(const sb_limits_t *l, const sb_http_request_t *req, sb_ip_t *ip)
{
    sb_str_t values[SB_HTTP_MAX_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        if (sb_str_eq(&req->headers[i].name, "X-Forwarded-For", 1))
            values[n++] = req->headers[i].value;
    sb_xff_client(values, n, l->trusted, l->ntrusted, ip);
}

sb_source_verdict_t sb_limits_admit(sb_limits_t *l, const sb_ip_t *ip, sb_source_t **src,
                                    unsigned *retry_after)
{
    double now = sb_loop_now(l->base);
    double rate = (double)l->cfg->source_handshakes;
    char key[SB_SOURCE_TEXT];

    *src = NULL;
    sb_source_format(ip, key, sizeof(key));
    sb_source_t *s = sb_map_get(l->sources, key);
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return SB_SOURCE_OK;
        memcpy(s->key, key, sizeof(key));
        if (sb_map_put(l->sources, s->key, s) != 0) {
            free(s);
            return SB_SOURCE_OK;
        }
        sb_bucket_init(&s->handshakes, rate, rate * BURST_SECONDS, now);
        idle_push(l, s, now);
        sb_metrics.sources = sb_map_size(l->sources);
    }
    if (s->open >= l->cfg->source_connections) {
        *retry_after = 1; /* nobody knows when one of them ends */
        sb_metrics.source_refused[0]++;
        return SB_SOURCE_CONNECTIONS;
    }
    if (!sb_bucket_take(&s->handshakes, 1, now)) {
        double wait = sb_bucket_wait(&s->handshakes, 1, now);
        *retry_after = wait > 1 ? (unsigned)ceil(wait) : 1;
        sb_metrics.source_refused[1]++;
        return SB_SOURCE_HANDSHAKES;
    }
    if (s->open++ == 0)
        idle_unlink(l, s);
    *src = s;
    return SB_SOURCE_OK;
}

void sb_limits_release(sb_limits_t *l, sb_source_t *src)
{
    if (src == NULL || src->open == 0)
        return;
    if (--src->open == 0)
        idle_push(l, src, sb_loop_now(l->base));
}
