/* The relay's messages between peers: offer, answer, candidate and bye, to a peer on this node
 * or through the bus to another, and what the sender is told about each. */
#include "app/relay_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "envelope.h"
#include "net/conn.h"

/* Tells the sender the outcome: 1 delivered, 0 no such peer, -1 the cluster could not
 * deliver it (bus down, or the recipient's node not receiving just now). */
static void answer_sender(pending_relay_t *p, int outcome)
{
    sb_str_t mid = {p->mid, strlen(p->mid)};

    sb_metrics.relays[p->type][outcome > 0    ? SB_RELAY_DELIVERED
                               : outcome == 0 ? SB_RELAY_UNKNOWN
                                              : SB_RELAY_UNAVAILABLE]++;
    p->sender->relays--;
    relay_flow(p->sender);
    if (!p->sender->closed) {
        if (outcome > 0 && mid.len > 0) {
            sb_str_t parts[SB_MSG_ACK_PARTS];
            sb_conn_send_parts(p->sender->conn, parts, sb_msg_ack_parts(mid, parts));
        } else if (outcome == 0) {
            relay_send_error(p->sender->conn, "peer-unavailable",
                             "no peer with that ID is connected", p->to, NULL, mid);
        } else if (outcome < 0) {
            relay_send_error(p->sender->conn, "unavailable",
                             "the cluster could not deliver the message just now; try again", p->to,
                             NULL, mid);
        }
    }
    sb_relay_t *r = p->sender->relay;
    relay_peer_unref(p->sender);
    sb_pool_put(&r->pending_relays, p);
}

static void held_done(void *arg, int held) { answer_sender(arg, held ? -1 : 0); }

static void relay_done(void *arg, int receivers)
{
    pending_relay_t *p = arg;
    sb_relay_t *r = p->sender->relay;
    /* Nobody took it: either the peer is not connected, or its node is subscribing again after
     * a reconnect. The directory knows which. */
    if (receivers == 0)
        r->dir->ops->held(r->dir, p->to, held_done, p);
    else
        answer_sender(p, receivers > 0 ? 1 : -1);
}

/* The envelope kind of a relayed type: the same four, in the same order. */
static sb_env_kind_t env_kind(sb_msg_type_t type)
{
    switch (type) {
    case SB_MSG_OFFER:
        return SB_ENV_OFFER;
    case SB_MSG_ANSWER:
        return SB_ENV_ANSWER;
    case SB_MSG_CANDIDATE:
        return SB_ENV_CANDIDATE;
    default:
        return SB_ENV_BYE;
    }
}

static sb_msg_type_t msg_type(sb_env_kind_t kind)
{
    switch (kind) {
    case SB_ENV_OFFER:
        return SB_MSG_OFFER;
    case SB_ENV_ANSWER:
        return SB_MSG_ANSWER;
    case SB_ENV_CANDIDATE:
        return SB_MSG_CANDIDATE;
    default:
        return SB_MSG_BYE;
    }
}

/* Writes a relayed message for its recipient straight into its connection (from is a peer ID).
 * Returns 0, or -1 when it could not be queued (out of memory, or the connection is gone). */
static int hand_over(sb_conn_t *to, sb_msg_type_t type, const char *from, sb_str_t payload,
                     sb_str_t mid)
{
    sb_str_t parts[SB_MSG_RELAY_PARTS];
    size_t n = sb_msg_relay_parts(type, from, payload, mid, parts);
    return sb_conn_send_parts(to, parts, n);
}

/* Publishes the message as an envelope on the recipient's channel. */
static void publish(sb_relay_t *r, peer_t *sender, const sb_msg_t *m, pending_relay_t *p)
{
    sb_env_t env = {.kind = env_kind(m->type),
                    .sent_us = sb_clock_wall_us(),
                    .from = {sender->id, strlen(sender->id)},
                    .to = {m->to, strlen(m->to)},
                    .mid = m->mid,
                    .payload = m->payload};
    char channel[SB_ENV_CHANNEL_MAX], head[SB_ENV_HEAD_MAX];
    /* The head, then the mid and payload straight from the sender's message: not joined here. */
    sb_str_t parts[3] = {{head, sb_env_write_head(&env, head)}, m->mid, m->payload};
    sb_env_peer_channel(m->to, channel);
    r->bus->ops->publish(r->bus, channel, parts, 3, relay_done, p);
}

void relay_message(sb_relay_t *r, peer_t *sender, const sb_msg_t *m)
{
    pending_relay_t *p = sb_pool_get(&r->pending_relays);
    if (p == NULL) {
        relay_send_error(sender->conn, "unavailable", "out of memory", m->to, NULL, m->mid);
        return;
    }
    p->sender = relay_peer_ref(sender);
    p->type = m->type;
    sender->relays++;
    memcpy(p->to, m->to, sizeof(p->to));
    if (m->mid.len > 0)
        memcpy(p->mid, m->mid.p, m->mid.len);
    p->mid[m->mid.len] = '\0';

    peer_t *local = sb_map_get(r->peers, m->to);
    if (local != NULL && local->registered) {
        /* Same node: straight to the connection, no bus round trip. */
        uint64_t t0 = sb_clock_wall_us();
        int queued = hand_over(local->conn, m->type, sender->id, m->payload, m->mid) == 0;
        if (queued)
            sb_histogram_observe(&sb_metrics.latency_local,
                                 (double)(sb_clock_wall_us() - t0) / 1e6);
        answer_sender(p, queued);
    } else {
        /* Not here, or a connection here still claiming the ID, which may well be held by a
         * peer on another node: the bus and the directory decide. */
        publish(r, sender, m, p);
        relay_flow(sender);
    }
}

int relay_deliver(void *ctx, void *sub, const char *msg, size_t len)
{
    peer_t *peer = sub;
    sb_env_t env;
    const char *err;
    (void)ctx;
    if (!peer->registered || peer->closed)
        return 0;
    if (sb_env_parse(msg, len, &env, &err) != 0) {
        /* Not from a node of this version: nobody to answer, so say it where operators look. */
        sb_metrics.bus_dropped++;
        sb_log(SB_LOG_WARN, "peer %s: dropped a bus message: %s", peer->id, err);
        return 0;
    }
    if (!sb_env_is_relay(env.kind))
        return relay_room_event(peer, &env);
    if (!sb_str_eq(&env.to, peer->id, 0))
        return 0; /* published on this peer's channel for another: not ours to show */
    char from[SB_ID_MAX + 1];
    memcpy(from, env.from.p, env.from.len);
    from[env.from.len] = '\0';
    if (hand_over(peer->conn, msg_type(env.kind), from, env.payload, env.mid) != 0)
        return 0;
    uint64_t now = sb_clock_wall_us();
    sb_histogram_observe(&sb_metrics.latency_cluster,
                         now > env.sent_us ? (double)(now - env.sent_us) / 1e6 : 0);
    return 1;
}
