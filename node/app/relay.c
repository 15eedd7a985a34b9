/* The signaling relay (protocol v1): peer IDs, relaying by ID with delivery feedback, rooms.
 *
 * Local state is the peers connected to this node and the rooms they are in; cluster-wide
 * state (who holds an ID, who is in a room) is the directory's. A message for a peer on
 * another node is published on that peer's bus channel, and the bus hands messages for this
 * node's peers straight to them. Room events reach this node's members from here, and other
 * nodes' members from the directory.
 *
 * This file holds the relay's life cycle and what every part shares; peers.c handles IDs and
 * connections, rooms.c rooms, relaying.c the messages between peers. */
#include "app/relay_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "net/conn.h"

peer_t *relay_peer_ref(peer_t *p)
{
    p->refs++;
    return p;
}

void relay_peer_unref(peer_t *p)
{
    if (--p->refs == 0) {
        free(p->rooms);
        free(p);
    }
}

void relay_flow(peer_t *p)
{
    int stop = p->join != NULL || p->leaving || p->relays >= RELAY_WINDOW;
    if (stop == p->paused || p->closed)
        return;
    p->paused = stop != 0;
    if (stop)
        sb_conn_pause(p->conn);
    else
        sb_conn_resume(p->conn);
}

int relay_send_owned(sb_conn_t *c, char *msg, size_t len)
{
    int rc = -1;
    if (msg != NULL)
        rc = sb_conn_send_text(c, msg, len);
    free(msg);
    return rc;
}

void relay_send_error(sb_conn_t *c, const char *code, const char *message, const char *to,
                      const char *room, sb_str_t mid)
{
    size_t len = 0;
    if (sb_conn_dialect(c) == SB_DIALECT_PEERJS)
        return; /* PeerServer answers nothing but EXPIRE (relay_pj_expire) */
    char *msg = sb_msg_error(code, message, to, room, mid, &len);
    relay_send_owned(c, msg, len);
}

/* Charges a message of len bytes to the peer's rate limits. Returns 1 when it may be handled;
 * else answers it rate-limited (with its mid, and its to or room, when they can be read), and
 * closes the connection of a peer that goes on regardless; returns 0. */
static int within_rate(sb_relay_t *r, peer_t *peer, sb_conn_t *c, const char *data, size_t len)
{
    const sb_config_t *cfg = r->cfg;
    double now = sb_clock_mono();

    if (!peer->rated) {
        double bytes_burst = (double)cfg->rate_bytes * RATE_BURST_SECONDS;
        if (bytes_burst < (double)cfg->max_message)
            bytes_burst = (double)cfg->max_message;
        sb_bucket_init(&peer->rate_messages, (double)cfg->rate_messages,
                       (double)cfg->rate_messages * RATE_BURST_SECONDS, now);
        sb_bucket_init(&peer->rate_bytes, (double)cfg->rate_bytes, bytes_burst, now);
        peer->rated = 1;
    }
    sb_bucket_refill(&peer->rate_messages, now);
    sb_bucket_refill(&peer->rate_bytes, now);
    int over_messages = peer->rate_messages.tokens < 1;
    if (!over_messages && peer->rate_bytes.tokens >= (double)len) {
        sb_bucket_take(&peer->rate_messages, 1, now);
        sb_bucket_take(&peer->rate_bytes, (double)len, now);
        peer->refused_in_a_row = 0;
        return 1;
    }

    sb_metrics.rate_limited[over_messages ? 0 : 1]++;
    char text[160];
    if (over_messages)
        snprintf(text, sizeof(text), "over %zu messages a second: not handled; send slower",
                 cfg->rate_messages);
    else
        snprintf(text, sizeof(text), "over %zu message bytes a second: not handled; send slower",
                 cfg->rate_bytes);
    sb_msg_t m;
    const char *why;
    int parsed = sb_msg_parse(data, len, &m, &why) == 0;
    int joins = parsed && (m.type == SB_MSG_JOIN || m.type == SB_MSG_LEAVE);
    const char *to = parsed && !joins ? m.to : NULL;
    const char *room = parsed && joins ? m.room : NULL;
    relay_send_error(c, "rate-limited", text, to, room, m.mid);
    if (++peer->refused_in_a_row > RATE_STRIKES) {
        sb_metrics.rate_limit_closes++;
        sb_log_client(SB_LOG_INFO, sb_conn_id(c), sb_conn_peer(c),
                      "closing with 1008: %u messages in a row over the rate limit",
                      peer->refused_in_a_row);
        sb_conn_close(c, CLOSE_POLICY, "rate limit exceeded");
    }
    return 0;
}

static void on_text(void *app, sb_conn_t *c, const char *data, size_t len)
{
    sb_relay_t *r = app;
    peer_t *peer = sb_conn_data(c);
    sb_msg_t m;
    const char *why;
    int rc;

    if (peer == NULL)
        return; /* refused at open; its close is on the way */
    if (!within_rate(r, peer, c, data, len))
        return;
    if (peer->dialect == SB_DIALECT_PEERJS) {
        relay_pj_text(r, peer, data, len);
        return;
    }
    if ((rc = sb_msg_parse(data, len, &m, &why)) != 0) {
        sb_metrics.bad_requests++;
        char text[160];
        if (rc == SB_MSG_EJSON)
            snprintf(text, sizeof(text), "%s at byte %zu", why, m.error_at);
        else if (rc == SB_MSG_ETRAILING)
            snprintf(text, sizeof(text), "invalid JSON at byte %zu: %s", m.error_at, why);
        else
            snprintf(text, sizeof(text), "%s", why);
        relay_send_error(c, "bad-request", text, NULL, NULL, m.mid);
        return;
    }
    if (!peer->registered) {
        relay_send_error(c, "unavailable", "wait for welcome before sending", NULL, NULL, m.mid);
        return;
    }
    switch (m.type) {
    case SB_MSG_JOIN:
        relay_join(r, peer, &m);
        break;
    case SB_MSG_LEAVE:
        relay_leave(r, peer, &m);
        break;
    default:
        relay_message(r, peer, &m);
        break;
    }
}

sb_relay_t *sb_relay_new(struct event_base *base, const sb_config_t *cfg, sb_bus_t *bus,
                         sb_dir_t *dir, const char *node_id)
{
    sb_relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->base = base;
    r->cfg = cfg;
    r->bus = bus;
    r->dir = dir;
    r->pending_relays = (sb_pool_t)SB_POOL_INIT(sizeof(pending_relay_t), 4096);
    r->env_small = (sb_pool_t)SB_POOL_INIT(1024, 4096);
    r->env_medium = (sb_pool_t)SB_POOL_INIT(8192, 256);
    snprintf(r->node_id, sizeof(r->node_id), "%s", node_id);
    r->peers = sb_map_new();
    r->rooms = sb_map_new();
    r->hold_timer = evtimer_new(base, relay_hold_tick, r);
    r->kept_tail = &r->kept;
    r->kept_timer = evtimer_new(base, relay_kept_tick, r);
    if (cfg->peerjs_path[0] != '\0') {
        struct timeval second = {1, 0};
        r->peerjs_timer = event_new(base, -1, EV_PERSIST, relay_pj_sweep, r);
        if (r->peerjs_timer != NULL && evtimer_add(r->peerjs_timer, &second) != 0) {
            event_free(r->peerjs_timer);
            r->peerjs_timer = NULL;
        }
    }
    if (r->peers == NULL || r->rooms == NULL || r->hold_timer == NULL || r->kept_timer == NULL ||
        (cfg->peerjs_path[0] != '\0' && r->peerjs_timer == NULL)) {
        sb_relay_free(r);
        return NULL;
    }
    bus->deliver = relay_deliver;
    bus->renewed = relay_bus_renewed;
    bus->ctx = r;
    relay_bus_renewed(r, 0, 0); /* a bus already up hears resend requests from now on */
    dir->lost = relay_reassert;
    dir->ended = relay_session_ended;
    dir->ctx = r;
    return r;
}

void sb_relay_stop(sb_relay_t *r)
{
    if (r != NULL)
        relay_hold_stop(r);
}

void sb_relay_free(sb_relay_t *r)
{
    if (r == NULL)
        return;
    relay_hold_stop(r);
    if (r->hold_timer)
        event_free(r->hold_timer);
    if (r->kept_timer)
        event_free(r->kept_timer);
    if (r->peerjs_timer)
        event_free(r->peerjs_timer);
    sb_map_free(r->peers);
    sb_map_free(r->rooms);
    sb_pool_drain(&r->pending_relays);
    sb_pool_drain(&r->env_small);
    sb_pool_drain(&r->env_medium);
    free(r);
}

sb_handler_t sb_relay_handler(sb_relay_t *r)
{
    sb_handler_t h = {
        .on_open = relay_on_open, .on_text = on_text, .on_close = relay_on_close, .app = r};
    return h;
}

int sb_relay_idle(const sb_relay_t *r) { return r->holders == NULL && r->dir->ops->idle(r->dir); }

int sb_relay_ready(void *relay, char *why, size_t len)
{
    sb_relay_t *r = relay;
    if (!r->bus->ops->ready(r->bus, why, len) || !r->dir->ops->ready(r->dir, why, len))
        return 0;
    if (r->reasserting > 0) {
        snprintf(why, len, "recording this node's peers and rooms in Redis again");
        return 0;
    }
    return 1;
}
