/* baseline mode: the floor under a cluster's relay: a bare hiredis publisher and subscriber moving
 * the same messages through the same Redis, one channel per pair, under the same load engine. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "modes.h"
#include "redis_url.h"
#include "report.h"

#define PAIR_BITS 24
#define MID_BITS 40

typedef struct {
    sb_bench_t *b;
    redisAsyncContext *pub, *sub;
    sb_load_t *load;
    size_t pairs;
    size_t subscribed;
    int ready_wait; /* the loop runs until every channel is subscribed */
    const char *error;
    char prefix[64]; /* channels are <prefix><pair> */
    char *msg;       /* the message being published */
    size_t msg_cap;
} baseline_t;

static void on_connect(const redisAsyncContext *ac, int status)
{
    baseline_t *bl = ac->data;
    if (status != REDIS_OK && !bl->error) {
        bl->error = "cannot connect to Redis";
        event_base_loopexit(bl->b->base, NULL);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    baseline_t *bl = ac->data;
    if (status != REDIS_OK && !bl->error) {
        bl->error = "Redis closed the connection";
        if (bl->ready_wait)
            event_base_loopexit(bl->b->base, NULL);
    }
}

static void on_reply_check(redisAsyncContext *ac, void *r, void *priv)
{
    baseline_t *bl = ac->data;
    redisReply *reply = r;
    (void)priv;
    if ((!reply || reply->type == REDIS_REPLY_ERROR) && !bl->error) {
        bl->error = "Redis refused AUTH";
        event_base_loopexit(bl->b->base, NULL);
    }
}

/* The subscriber's replies: confirmations, then every message of its channel. */
static void on_sub(redisAsyncContext *ac, void *r, void *priv)
{
    baseline_t *bl = ac->data;
    redisReply *reply = r;
    (void)priv;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    const redisReply *kind = reply->element[0], *ch = reply->element[1], *body = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0) {
        if (++bl->subscribed == bl->pairs && bl->ready_wait)
            event_base_loopexit(bl->b->base, NULL);
        return;
    }
    if (strcmp(kind->str, "message") != 0 || !bl->load || body->type != REDIS_REPLY_STRING)
        return;
    size_t plen = strlen(bl->prefix);
    if (ch->len <= plen) {
        sb_load_unexpected(bl->load);
        return;
    }
    size_t pair = (size_t)strtoull(ch->str + plen, NULL, 10);
    /* the message ends ,"mid":N} as the bench wrote it */
    const char *end = body->str + body->len, *p = end;
    for (int i = 0; i < 24 && p > body->str && p[-1] != ':'; i++)
        p--;
    if (p <= body->str || p[-1] != ':') {
        sb_load_unexpected(bl->load);
        return;
    }
    sb_load_deliver(bl->load, pair, strtoull(p, NULL, 10), body->len);
}

static void on_pub(redisAsyncContext *ac, void *r, void *priv)
{
    baseline_t *bl = ac->data;
    redisReply *reply = r;
    if (!bl->load)
        return;
    uint64_t tag = (uint64_t)(uintptr_t)priv;
    size_t pair = (size_t)(tag >> MID_BITS);
    uint64_t mid = tag & ((1ull << MID_BITS) - 1);
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        sb_load_answer(bl->load, pair, mid, "redis-error", 11);
    else if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        sb_load_answer(bl->load, pair, mid, NULL, 0);
    else
        sb_load_answer(bl->load, pair, mid, "no-subscriber", 13);
}

static int send_msg(void *ctx, size_t pair, int dir, uint64_t mid, const char *type,
                    sb_str_t payload)
{
    baseline_t *bl = ctx;
    (void)dir;
    if (pair >= (1u << PAIR_BITS) || mid >= (1ull << MID_BITS) || bl->error)
        return -1;
    size_t need = payload.len + 256;
    if (need > bl->msg_cap) {
        char *m = realloc(bl->msg, need);
        if (!m)
            return -1;
        bl->msg = m;
        bl->msg_cap = need;
    }
    /* the very text a peer sends a node */
    int head =
        snprintf(bl->msg, bl->msg_cap, "{\"type\":\"%s\",\"to\":\"%s-b%zu\",\"payload\":", type,
                 bl->b->o->prefix, pair);
    memcpy(bl->msg + head, payload.p, payload.len);
    int tail = snprintf(bl->msg + (size_t)head + payload.len,
                        bl->msg_cap - (size_t)head - payload.len, ",\"mid\":%" PRIu64 "}", mid);
    char ch[96];
    int chlen = snprintf(ch, sizeof(ch), "%s%zu", bl->prefix, pair);
    uint64_t tag = ((uint64_t)pair << MID_BITS) | mid;
    return redisAsyncCommand(bl->pub, on_pub, (void *)(uintptr_t)tag, "PUBLISH %b %b", ch,
                             (size_t)chlen, bl->msg,
                             (size_t)head + payload.len + (size_t)tail) == REDIS_OK
               ? 0
               : -1;
}

static const sb_load_transport_t transport = {send_msg};

static redisAsyncContext *connect_redis(baseline_t *bl, const sb_redis_url_t *u)
{
    redisAsyncContext *ac = redisAsyncConnect(u->host, u->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->data = bl;
    redisLibeventAttach(ac, bl->b->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (u->password[0]) {
        if (u->user[0])
            redisAsyncCommand(ac, on_reply_check, NULL, "AUTH %s %s", u->user, u->password);
        else
            redisAsyncCommand(ac, on_reply_check, NULL, "AUTH %s", u->password);
    }
    return ac;
}

static void on_setup_timeout(evutil_socket_t fd, short what, void *arg)
{
    baseline_t *bl = arg;
    (void)fd, (void)what;
    if (!bl->error)
        bl->error = "Redis did not confirm the subscriptions in time";
    event_base_loopexit(bl->b->base, NULL);
}

int sb_mode_baseline(sb_bench_t *b)
{
    const sb_bench_opts_t *o = b->o;
    baseline_t bl = {.b = b, .pairs = o->pairs};
    int status = 1;
    sb_payloads_t payloads = {0};
    sb_redis_url_t u;
    const char *err;
    if (sb_redis_url_parse(o->redis_url, &u, &err) != 0 || u.tls) {
        fprintf(stderr, "switchboard-bench: --redis: %s\n",
                u.tls ? "rediss:// is not supported" : err);
        return 2;
    }
    if (sb_payloads_init(&payloads, o->size) != 0)
        goto out;
    snprintf(bl.prefix, sizeof(bl.prefix), "bench:%s:", o->prefix);
    bl.pub = connect_redis(&bl, &u);
    bl.sub = connect_redis(&bl, &u);
    if (!bl.pub || !bl.sub) {
        bl.error = "cannot connect to Redis";
        goto fail;
    }
    for (size_t i = 0; i < o->pairs; i++) {
        char ch[96]; /* hiredis's format knows no %zu: the name is made here */
        int chlen = snprintf(ch, sizeof(ch), "%s%zu", bl.prefix, i);
        redisAsyncCommand(bl.sub, on_sub, NULL, "SUBSCRIBE %b", ch, (size_t)chlen);
    }
    struct event *timeout = evtimer_new(b->base, on_setup_timeout, &bl);
    struct timeval tv = {(time_t)o->timeout_s, 0};
    evtimer_add(timeout, &tv);
    bl.ready_wait = 1;
    event_base_dispatch(b->base);
    bl.ready_wait = 0;
    event_free(timeout);
    if (bl.error || bl.subscribed < bl.pairs)
        goto fail;

    sb_load_config_t cfg = sb_mode_load_config(b, &payloads, o->pairs, "baseline");
    if (!(bl.load = sb_load_new(b->base, &cfg, &transport, &bl)))
        goto fail;
    sb_load_result_t r;
    sb_load_run(bl.load, &r);
    sb_load_free(bl.load);
    bl.load = NULL;
    status = sb_report_load_ok(&r) ? 0 : 1;

    FILE *h = b->human;
    fprintf(h, "baseline: hiredis PUBLISH/SUBSCRIBE through %s:%d, %zu channels, ", u.host, u.port,
            o->pairs);
    sb_mode_text_options(h, o, &payloads);
    sb_report_load_text(h, &r, &b->cpu);
    sb_report_load_problems(stderr, &r);
    if (bl.error)
        fprintf(stderr, "error: %s\n", bl.error);
    if (o->json) {
        sb_jw_t j;
        char where[300];
        snprintf(where, sizeof(where), "%s:%d", u.host, u.port);
        sb_jw_init(&j, stdout);
        sb_jw_begin(&j, NULL);
        sb_jw_str(&j, "mode", "baseline");
        sb_jw_bool(&j, "ok", status == 0);
        sb_jw_str(&j, "redis", where);
        sb_jw_uint(&j, "pairs", o->pairs);
        sb_mode_json_options(&j, o, &payloads);
        sb_report_load_json(&j, &r, &b->cpu);
        sb_jw_end(&j);
        fflush(stdout);
    }
    goto out;
fail:
    fprintf(stderr, "error: %s\n", bl.error ? bl.error : "out of memory");
    if (o->json) {
        sb_jw_t j;
        sb_jw_init(&j, stdout);
        sb_jw_begin(&j, NULL);
        sb_jw_str(&j, "mode", "baseline");
        sb_jw_bool(&j, "ok", 0);
        sb_jw_str(&j, "error", bl.error ? bl.error : "out of memory");
        sb_jw_end(&j);
    }
out:
    /* pending callbacks run with no reply and find no load */
    if (bl.pub)
        redisAsyncFree(bl.pub);
    if (bl.sub)
        redisAsyncFree(bl.sub);
    free(bl.msg);
    sb_payloads_free(&payloads);
    return status;
}
