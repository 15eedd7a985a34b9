/* The load engine's transport over WebSocket peers: each pair is two peers of protocol v1
 * relaying to each other through the nodes, answered ack or an error. */
#include "wsload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_msg.h"

struct sb_wsload {
    struct event_base *base;
    sb_wsload_config_t cfg;
    sb_fleet_t *fleet; /* peer 2i is pair i's a, 2i+1 its b */
    sb_load_t *load;   /* while a run is on */
};

static void on_message(sb_peer_t *p, const char *text, size_t len, void *arg)
{
    sb_wsload_t *w = arg;
    if (!w->load)
        return;
    size_t pair = p->index / 2;
    sb_server_msg_t m;
    if (sb_server_msg_parse(text, len, &m) != 0) {
        sb_load_unexpected(w->load);
        return;
    }
    if (sb_server_msg_is(m.type, "ack")) {
        if (m.has_mid)
            sb_load_answer(w->load, pair, m.mid_value, NULL, 0);
        else
            sb_load_unexpected(w->load);
    } else if (sb_server_msg_is(m.type, "error")) {
        if (m.has_mid && m.code.len >= 2)
            sb_load_answer(w->load, pair, m.mid_value, m.code.p + 1, m.code.len - 2);
        else
            sb_load_unexpected(w->load);
    } else if (sb_server_msg_is(m.type, "candidate") || sb_server_msg_is(m.type, "offer") ||
               sb_server_msg_is(m.type, "answer")) {
        if (m.has_mid)
            sb_load_deliver(w->load, pair, m.mid_value, len);
        else
            sb_load_unexpected(w->load);
    }
    /* anything else (room events) is not the bench's business */
}

static void on_lost(sb_peer_t *p, int close_code, const char *why, void *arg)
{
    sb_wsload_t *w = arg;
    fprintf(stderr, "switchboard-bench: peer %s lost its connection (%d, %s)\n", p->id, close_code,
            why);
    if (w->load)
        sb_load_pair_lost(w->load, p->index / 2);
}

static int send_msg(void *ctx, size_t pair, int dir, uint64_t mid, const char *type,
                    sb_str_t payload)
{
    sb_wsload_t *w = ctx;
    sb_peer_t *from = &w->fleet->peers[2 * pair + (size_t)dir];
    const sb_peer_t *to = &w->fleet->peers[2 * pair + 1 - (size_t)dir];
    char midtext[24];
    int midlen = snprintf(midtext, sizeof(midtext), "%" PRIu64, mid);
    sb_str_t parts[] = {
        {"{\"type\":\"", 9},      {type, strlen(type)},      {"\",\"to\":\"", 8},
        {to->id, strlen(to->id)}, {"\",\"payload\":", 12},   payload,
        {",\"mid\":", 7},         {midtext, (size_t)midlen}, {"}", 1},
    };
    return sb_fleet_send(from, parts, sizeof(parts) / sizeof(parts[0]));
}

static const sb_load_transport_t transport = {send_msg};

sb_wsload_t *sb_wsload_new(struct event_base *base, const sb_wsload_config_t *cfg)
{
    sb_wsload_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->base = base;
    w->cfg = *cfg;
    sb_fleet_config_t fc = {
        .urls = cfg->urls,
        .nurls = cfg->nurls,
        .concurrency = cfg->concurrency,
        .timeout_s = cfg->timeout_s,
        .progress = cfg->progress,
        .on_message = on_message,
        .on_lost = on_lost,
        .arg = w,
    };
    w->fleet = sb_fleet_new(base, &fc, 2 * cfg->pairs);
    if (!w->fleet) {
        free(w);
        return NULL;
    }
    for (size_t i = 0; i < cfg->pairs; i++) {
        sb_peer_t *a = &w->fleet->peers[2 * i], *b = &w->fleet->peers[2 * i + 1];
        a->url = i % cfg->nurls;
        b->url = cfg->split && cfg->nurls > 1 ? (i + 1) % cfg->nurls : a->url;
        snprintf(a->id, sizeof(a->id), "%s-a%zu", cfg->prefix, i);
        snprintf(b->id, sizeof(b->id), "%s-b%zu", cfg->prefix, i);
    }
    return w;
}

int sb_wsload_open(sb_wsload_t *w) { return sb_fleet_open(w->fleet) == w->fleet->n ? 0 : -1; }

const sb_fleet_t *sb_wsload_fleet(const sb_wsload_t *w) { return w->fleet; }

int sb_wsload_run(sb_wsload_t *w, sb_load_config_t cfg, sb_load_result_t *out)
{
    cfg.pairs = w->cfg.pairs;
    w->load = sb_load_new(w->base, &cfg, &transport, w);
    if (!w->load)
        return -1;
    sb_load_run(w->load, out);
    sb_load_free(w->load);
    w->load = NULL;
    return 0;
}

void sb_wsload_free(sb_wsload_t *w)
{
    if (!w)
        return;
    sb_fleet_free(w->fleet, 2.0);
    free(w);
}
