/* The relay's messages between peers: offer, answer, candidate and bye, to a peer on this node
 * or through the bus to another, and what the sender is told about each. */
#include "app/relay_int.h"

#include <stdlib.h>
#include <string.h>

#include "net/conn.h"

/* Where a relayed message went, kept until the bus says whether anyone took it. */
typedef struct {
    peer_t *sender;
    char to[SB_ID_MAX + 1];
    char mid[SB_MID_MAX * 6 + 3]; /* raw JSON, "" when absent */
} pending_relay_t;

/* Tells the sender the outcome: 1 delivered, 0 no such peer, -1 the cluster could not
 * deliver it (bus down, or the recipient's node not receiving just now). */
static void answer_sender(pending_relay_t *p, int outcome)
{
    sb_str_t mid = {p->mid, strlen(p->mid)};

    p->sender->relays--;
    relay_flow(p->sender);
    if (!p->sender->closed) {
        if (outcome > 0 && mid.len > 0) {
            size_t len = 0;
            char *msg = sb_msg_ack(mid, &len);
            relay_send_owned(p->sender->conn, msg, len);
        } else if (outcome == 0) {
            relay_send_error(p->sender->conn, "peer-unavailable",
                             "no peer with that ID is connected", p->to, NULL, mid);
        } else if (outcome < 0) {
            relay_send_error(p->sender->conn, "unavailable",
                             "the cluster could not deliver the message just now; try again", p->to,
                             NULL, mid);
        }
    }
    relay_peer_unref(p->sender);
    free(p);
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

void relay_message(sb_relay_t *r, peer_t *sender, const sb_msg_t *m)
{
    size_t len = 0;
    char *msg = sb_msg_relay(m->type, sender->id, m->payload, m->mid, &len);
    pending_relay_t *p = calloc(1, sizeof(*p));
    if (msg == NULL || p == NULL) {
        free(msg);
        free(p);
        relay_send_error(sender->conn, "unavailable", "out of memory", m->to, NULL, m->mid);
        return;
    }
    p->sender = relay_peer_ref(sender);
    sender->relays++;
    memcpy(p->to, m->to, sizeof(p->to));
    if (m->mid.len > 0)
        memcpy(p->mid, m->mid.p, m->mid.len);

    peer_t *local = sb_map_get(r->peers, m->to);
    if (local != NULL && local->registered) {
        /* Same node: straight to the connection, no bus round trip. */
        answer_sender(p, sb_conn_send_text(local->conn, msg, len) == 0 ? 1 : 0);
    } else {
        /* Not here, or a connection here still claiming the ID, which may well be held by a
         * peer on another node: the bus and the directory decide. */
        char channel[CHANNEL_MAX];
        relay_channel(channel, m->to);
        r->bus->ops->publish(r->bus, channel, msg, len, relay_done, p);
        relay_flow(sender);
    }
    free(msg);
}

int relay_deliver(void *ctx, void *sub, const char *msg, size_t len)
{
    peer_t *peer = sub;
    (void)ctx;
    if (!peer->registered || peer->closed)
        return 0;
    if (relay_hold_event(peer, msg, len))
        return 1;
    return sb_conn_send_text(peer->conn, msg, len) == 0;
}
