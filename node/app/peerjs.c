/* PeerJS clients in the relay: PeerServer's protocol (proto/PEERJS.md) on the same IDs, sessions
 * and bus as protocol v1, so a PeerJS peer reaches any peer of the cluster.
 *
 * A PeerJS connection opens with ?key=&id=&token= (the token is the client's own random string,
 * kept for its whole life): the ID is claimed in the directory like any other, with the token as
 * its session's token, so the same token takes the ID back (PeerJS's reconnect) and another one
 * is refused ID-TAKEN. Its OFFER, ANSWER, CANDIDATE and LEAVE become the envelope's offer,
 * answer, candidate and bye; a message that cannot be delivered is answered EXPIRE. */
#include "app/relay_int.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "net/conn.h"
#include "peerjs.h"
#include "ws.h"

/* The prefix of a PeerJS session's token in the directory: a protocol-v1 resume token (43
 * characters of base64url) can never be one, nor the other way round. */
#define TOKEN_PREFIX "pj:"
/* The longest PeerJS token taken (peerjs makes ones of about 11 characters). */
#define TOKEN_MAX (RESUME_TOKEN_LEN - (sizeof(TOKEN_PREFIX) - 1))

static void send_frame(sb_conn_t *c, const char *frame, size_t len)
{
    sb_conn_send_text(c, frame, len);
}

void relay_pj_refuse(sb_conn_t *c, const char *code, const char *message)
{
    char frame[SB_PJ_FRAME_MAX + 160]; /* our messages are short, and need no escaping */
    size_t len =
        strcmp(code, "id-taken") == 0 ? sb_pj_id_taken(frame) : sb_pj_error(message, frame);
    send_frame(c, frame, len);
    sb_conn_close(c, SB_WS_CLOSE_NO_STATUS, NULL); /* PeerServer's close has no code */
}

/* The value of query parameter name (up to cap-1 bytes): 1 when present and not empty, with
 * *too_long set when cut short; else 0. */
static int param(const char *query, const char *name, char *out, size_t cap, int *too_long)
{
    return relay_query_param(query, name, out, cap, too_long) && out[0] != '\0';
}

int relay_pj_open(sb_relay_t *r, peer_t *peer, sb_conn_t *c)
{
    const char *query = sb_conn_query(c);
    char key[128], token[TOKEN_MAX + 1];
    int long_key = 0, long_id = 0, long_token = 0;

    peer->heard = sb_clock_mono();
    /* PeerServer's checks, in its order: all three given, the key, then the ID. */
    if (!param(query, "id", peer->id, sizeof(peer->id), &long_id) ||
        !param(query, "token", token, sizeof(token), &long_token) ||
        !param(query, "key", key, sizeof(key), &long_key)) {
        relay_pj_refuse(c, "bad-request", SB_PJ_MSG_NO_ID);
        return -1;
    }
    if (long_key || strcmp(key, r->cfg->peerjs_key) != 0) {
        relay_pj_refuse(c, "bad-key", SB_PJ_MSG_BAD_KEY);
        return -1;
    }
    if (long_id || !sb_peer_id_valid(peer->id, strlen(peer->id))) {
        relay_pj_refuse(c, "bad-id", "Invalid id: expected 1-64 characters of [A-Za-z0-9_.-]");
        return -1;
    }
    if (long_token) {
        relay_pj_refuse(c, "bad-token", "Invalid token: longer than 40 characters");
        return -1;
    }
    if (r->cfg->peerjs_limit > 0 && r->peerjs_peers >= r->cfg->peerjs_limit) {
        relay_pj_refuse(c, "limit", SB_PJ_MSG_LIMIT);
        return -1;
    }
    r->peerjs_peers++;
    sb_metrics.peerjs_peers++;
    peer->counted = 1;
    /* The token is the session's for its whole life: presented to take the ID back, and kept. */
    snprintf(peer->token, sizeof(peer->token), TOKEN_PREFIX "%s", token);
    snprintf(peer->resume, sizeof(peer->resume), TOKEN_PREFIX "%s", token);
    return 0;
}

void relay_pj_close(sb_relay_t *r, peer_t *peer)
{
    if (peer->counted) {
        r->peerjs_peers--;
        sb_metrics.peerjs_peers--;
        peer->counted = 0;
    }
}

void relay_pj_welcome(peer_t *peer)
{
    char frame[SB_PJ_FRAME_MAX];
    send_frame(peer->conn, frame, sb_pj_open(frame));
}

void relay_pj_expire(peer_t *sender, const char *to)
{
    char frame[SB_PJ_FRAME_MAX];
    if (!sender->closed)
        send_frame(sender->conn, frame, sb_pj_expire(to, sender->id, frame));
}

static sb_pj_type_t pj_type(sb_msg_type_t type)
{
    switch (type) {
    case SB_MSG_OFFER:
        return SB_PJ_OFFER;
    case SB_MSG_ANSWER:
        return SB_PJ_ANSWER;
    case SB_MSG_CANDIDATE:
        return SB_PJ_CANDIDATE;
    default:
        return SB_PJ_LEAVE; /* bye */
    }
}

int relay_pj_hand_over(peer_t *to, sb_msg_type_t type, const char *from, sb_str_t payload)
{
    sb_str_t parts[SB_PJ_RELAY_PARTS];
    size_t n = sb_pj_relay_parts(pj_type(type), from, to->id, payload, parts);
    return sb_conn_send_parts(to->conn, parts, n);
}

void relay_pj_text(sb_relay_t *r, peer_t *peer, const char *data, size_t len)
{
    sb_pj_msg_t m;
    sb_msg_t msg;

    /* PeerServer ignores what it cannot read; so does this, counting it. */
    if (sb_pj_parse(data, len, &m) != 0) {
        sb_metrics.bad_requests++;
        return;
    }
    switch (m.type) {
    case SB_PJ_HEARTBEAT:
        peer->heard = sb_clock_mono();
        return;
    case SB_PJ_OFFER:
    case SB_PJ_ANSWER:
    case SB_PJ_CANDIDATE:
    case SB_PJ_LEAVE:
        break;
    default: /* EXPIRE (only servers send it), and types PeerServer does not know */
        return;
    }
    if (m.type == SB_PJ_LEAVE && !m.has_dst) {
        /* PeerServer forgets a client that leaves without a dst: the ID is free. */
        sb_conn_close(peer->conn, SB_WS_CLOSE_NORMAL, "left");
        return;
    }
    if (!m.dst_valid || !peer->registered) {
        /* No peer can have that ID (PeerServer would answer EXPIRE once its queue expires). */
        sb_metrics.bad_requests++;
        return;
    }
    memset(&msg, 0, sizeof(msg));
    msg.type = m.type == SB_PJ_OFFER       ? SB_MSG_OFFER
               : m.type == SB_PJ_ANSWER    ? SB_MSG_ANSWER
               : m.type == SB_PJ_CANDIDATE ? SB_MSG_CANDIDATE
                                           : SB_MSG_BYE;
    memcpy(msg.to, m.dst, sizeof(msg.to));
    msg.payload = m.payload;
    relay_message(r, peer, &msg);
}

void relay_pj_sweep(evutil_socket_t fd, short what, void *arg)
{
    sb_relay_t *r = arg;
    double now = sb_clock_mono(), alive = r->cfg->peerjs_alive_ms / 1000.0;
    size_t cursor = 0, closed = 0;
    const char *key;
    void *value;
    (void)fd;
    (void)what;
    while (sb_map_next(r->peers, &cursor, &key, &value)) {
        peer_t *peer = value;
        if (peer->dialect == SB_DIALECT_PEERJS && peer->registered && !peer->closed &&
            now - peer->heard >= alive) {
            sb_conn_close(peer->conn, SB_WS_CLOSE_NO_STATUS, NULL); /* ends on a later turn */
            closed++;
        }
    }
    if (closed > 0)
        sb_log(SB_LOG_INFO, "closed %zu PeerJS connections silent for %g ms", closed,
               r->cfg->peerjs_alive_ms);
}
