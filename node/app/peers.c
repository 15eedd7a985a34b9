/* The relay's peers: IDs asked for or given at random, claimed in the directory; connections
 * opening and closing; recording every peer again after the directory lost this node. */
#include "app/relay_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "turn.h"
#include "net/conn.h"
#include "ws.h"

/* n random bytes (at most 32) in base64url without padding: ceil(4n/3) characters into out,
 * NUL-terminated. Returns 0, or -1 when there is no randomness. */
static int random_b64url(char *out, size_t n)
{
    unsigned char raw[32], b64[45];
    size_t chars = (4 * n + 2) / 3;
    if (n > sizeof(raw) || RAND_bytes(raw, (int)n) != 1)
        return -1;
    EVP_EncodeBlock(b64, raw, (int)n);
    for (size_t i = 0; i < chars; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[chars] = '\0';
    return 0;
}

/* A random, unguessable ID: 96 bits, 16 characters. */
static int random_id(char out[17]) { return random_b64url(out, 12); }

int relay_query_param(const char *query, const char *name, char *out, size_t cap, int *too_long)
{
    size_t k = strlen(name);
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > k && strncmp(p, name, k) == 0 && p[k] == '=') {
            *too_long = n - k - 1 >= cap;
            snprintf(out, cap, "%.*s", (int)(n - k - 1), p + k + 1);
            return 1;
        }
        p += n + (amp ? 1 : 0);
    }
    return 0;
}

/* A resume token: 256 bits, RESUME_TOKEN_LEN (43) characters. */
static int random_token(char out[RESUME_TOKEN_LEN + 1]) { return random_b64url(out, 32); }

static int token_form(const char *t)
{
    size_t n = strlen(t);
    if (n != RESUME_TOKEN_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z') ||
              (t[i] >= '0' && t[i] <= '9') || t[i] == '-' || t[i] == '_'))
            return 0;
    return 1;
}

static void refuse(sb_conn_t *c, const char *code, const char *message, uint16_t close_code)
{
    if (sb_conn_dialect(c) == SB_DIALECT_PEERJS) {
        relay_pj_refuse(c, code, message);
        return;
    }
    relay_send_error(c, code, message, NULL, NULL, relay_no_mid());
    sb_conn_close(c, close_code, code);
}

/* Drops peer from the local map if it is the one registered under its ID. */
static void forget(sb_relay_t *r, peer_t *peer)
{
    if (sb_map_get(r->peers, peer->id) == peer)
        sb_map_remove(r->peers, peer->id);
}

/* The ICE servers for a peer's welcome: the configured ones, and with --turn-uris the TURN
 * servers with a credential for this peer until --turn-ttl from now (malloc'ed; NULL when out of
 * memory, and then the configured ones alone are given). */
static char *ice_servers_for(const sb_relay_t *r, const char *id)
{
    const sb_config_t *cfg = r->cfg;
    char username[SB_TURN_USERNAME_MAX], credential[SB_TURN_CREDENTIAL_MAX];
    const char *err;
    if (cfg->turn_urls == NULL)
        return NULL;
    if (sb_turn_credentials(cfg->turn_secret, strlen(cfg->turn_secret), id,
                            (uint64_t)time(NULL) + (uint64_t)cfg->turn_ttl, username, credential,
                            &err) != 0) {
        sb_log(SB_LOG_WARN, "peer %s: no TURN credential: %s", id, err);
        return NULL;
    }
    /* The configured array, less its ']', then the TURN entry (nothing in it needs escaping). */
    size_t base = strlen(cfg->ice_servers) - 1, cap = base + strlen(cfg->turn_urls) + 160;
    char *json = malloc(cap);
    if (json == NULL)
        return NULL;
    snprintf(json, cap, "%.*s%s{\"urls\":%s,\"username\":\"%s\",\"credential\":\"%s\"}]", (int)base,
             cfg->ice_servers, base > 1 ? "," : "", cfg->turn_urls, username, credential);
    return json;
}

/* Sends what follows a resumed welcome: a joined per room (JSON, tagged 'J'), then the messages
 * held for it (envelopes, tagged 'E'), in order; or, while it catches up, only the joined, the
 * held messages staying for the catch-up. */
static void send_greeting(peer_t *peer)
{
    size_t kept = 0;
    for (size_t i = 0; i < peer->ngreeting; i++) {
        char *g = peer->greeting[i];
        size_t len = peer->greeting_lens[i] - 1;
        sb_env_t env;
        if (g[0] == 'J') {
            sb_conn_send_text(peer->conn, g + 1, len);
        } else if (peer->catching_up) {
            peer->greeting_lens[kept] = len + 1;
            peer->greeting[kept++] = g;
            continue;
        } else if (sb_env_parse(g + 1, len, &env, NULL) == 0 && sb_env_is_relay(env.kind)) {
            relay_deliver_envelope(peer, &env);
        }
        free(g);
    }
    peer->ngreeting = kept;
    if (!peer->catching_up)
        relay_greeting_free(peer);
}

static void retry_claim(peer_t *peer);
static void register_peer(sb_relay_t *r, peer_t *peer);

/* The peer's channel is in place (ok), or could not be made: welcome the peer, whose messages
 * can reach it from every node from now on, or try again while the bus may come back. */
static void subscribed(void *arg, int ok)
{
    peer_t *peer = arg;
    sb_relay_t *r = peer->relay;
    if (ok && !peer->closed) {
        size_t len = 0;
        peer->registered = 1;
        sb_metrics.peers++;
        if (peer->dialect == SB_DIALECT_PEERJS) {
            relay_pj_welcome(peer);
        } else {
            char *ice = ice_servers_for(r, peer->id);
            char *msg = sb_msg_welcome(peer->id, r->node_id, ice ? ice : r->cfg->ice_servers,
                                       peer->token[0] ? peer->token : NULL, peer->resumed, &len);
            free(ice);
            relay_send_owned(peer->conn, msg, len);
        }
        /* A resumed peer catches up first: what its last connection's node may have lost is
         * sent again, and delivered in order with what was held for it. */
        int catchup = peer->resumed && relay_catchup_wanted(r);
        peer->catching_up = catchup != 0;
        send_greeting(peer);
        if (catchup)
            relay_catchup_start(peer);
        sb_log_conn(SB_LOG_DEBUG, sb_conn_id(peer->conn), sb_conn_peer(peer->conn), "peer %s%s",
                    peer->id, peer->resumed ? " (resumed)" : "");
    } else if (!peer->closed && !r->stopping && sb_clock_mono() < peer->claim_deadline &&
               sb_map_get(r->peers, peer->id) == peer) {
        retry_claim(peer); /* the bus is down: the ID is ours, subscribe again shortly */
    } else {
        /* Gone meanwhile, or the bus stayed down: give the channel and the ID back, unless a
         * newer connection here has taken them over. */
        if (!peer->closed)
            forget(r, peer);
        if (sb_map_get(r->peers, peer->id) == NULL) {
            char channel[SB_ENV_CHANNEL_MAX];
            sb_env_peer_channel(peer->id, r->bus->sharded, channel);
            r->bus->ops->unsubscribe(r->bus, channel);
            if (peer->resumed)
                r->dir->ops->detach(r->dir, peer->id); /* its session goes on without it */
            else
                r->dir->ops->release(r->dir, peer->id);
        }
        relay_forget_rooms(r, peer);
        relay_greeting_free(peer);
        if (!peer->closed)
            refuse(peer->conn, "unavailable", "the cluster's bus is unavailable; retry",
                   CLOSE_TRY_AGAIN);
    }
    relay_peer_unref(peer);
}

/* The ID is this peer's: it is welcomed once its channel is subscribed, so that a message
 * sent to it right after its welcome, from any node, reaches it. */
static void register_peer(sb_relay_t *r, peer_t *peer)
{
    char channel[SB_ENV_CHANNEL_MAX];
    sb_env_peer_channel(peer->id, r->bus->sharded, channel);
    if (r->bus->ops->subscribe(r->bus, channel, peer, subscribed, relay_peer_ref(peer)) != 0) {
        relay_peer_unref(peer);
        r->dir->ops->release(r->dir, peer->id);
        forget(r, peer);
        sb_conn_close(peer->conn, SB_WS_CLOSE_INTERNAL, "out of memory");
    }
}

static void claim_done(void *arg, sb_dir_result_t result, const sb_dir_session_t *session);

static void ask_claim(sb_relay_t *r, peer_t *peer)
{
    peer_t *here = sb_map_get(r->peers, peer->id);
    sb_dir_claim_how_t how =
        here != NULL && here != peer ? SB_DIR_CLAIM_HELD_HERE : SB_DIR_CLAIM_NEW;
    r->dir->ops->claim(r->dir, peer->id, how, peer->resume[0] ? peer->resume : NULL, peer->token,
                       claim_done, relay_peer_ref(peer));
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    peer_t *peer = arg;
    (void)fd;
    (void)what;
    event_free(peer->retry);
    peer->retry = NULL;
    if (!peer->closed) {
        if (peer->claimed)
            register_peer(peer->relay, peer);
        else
            ask_claim(peer->relay, peer);
    }
    relay_peer_unref(peer);
}

/* The directory or the bus cannot answer now: asks again shortly (the client waits for its
 * welcome, within --bus-hold-ms). */
static void retry_claim(peer_t *peer)
{
    struct timeval tv = {0, 100000};
    if (peer->retry == NULL && (peer->retry = evtimer_new(peer->relay->base, on_retry, peer)) &&
        evtimer_add(peer->retry, &tv) == 0) {
        relay_peer_ref(peer);
        return;
    }
    sb_conn_close(peer->conn, SB_WS_CLOSE_INTERNAL, "out of memory");
}

/* Keeps what a resumed session brings for after the welcome: its rooms' members, and the
 * messages held for it. Returns 0, or -1 when out of memory. */
static int keep_greeting(sb_relay_t *r, peer_t *peer, const sb_dir_session_t *s)
{
    size_t n = s->nrooms + s->nheld;
    if (n == 0)
        return 0;
    if ((peer->greeting = calloc(n, sizeof(char *))) == NULL ||
        (peer->greeting_lens = calloc(n, sizeof(size_t))) == NULL)
        return -1;
    peer->greeting_cap = n;
    for (size_t i = 0; i < s->nrooms; i++) {
        const sb_dir_room_t *room = &s->rooms[i];
        const char **others = calloc(room->n + 1, sizeof(*others));
        size_t k = 0, len = 0;
        if (others == NULL || relay_restore_room(r, peer, room->room) != 0) {
            free(others);
            return -1;
        }
        for (size_t m = 0; m < room->n; m++)
            if (strcmp(room->members[m], peer->id) != 0)
                others[k++] = room->members[m];
        char *msg = sb_msg_joined(room->room, others, k, relay_no_mid(), &len);
        free(others);
        char *g = msg ? malloc(len + 2) : NULL;
        if (g == NULL) {
            free(msg);
            return -1;
        }
        g[0] = 'J';
        memcpy(g + 1, msg, len + 1);
        free(msg);
        peer->greeting_lens[peer->ngreeting] = len + 1;
        peer->greeting[peer->ngreeting++] = g;
    }
    for (size_t i = 0; i < s->nheld; i++) {
        char *g = malloc(s->held[i].len + 1);
        if (g == NULL)
            return -1;
        g[0] = 'E';
        memcpy(g + 1, s->held[i].p, s->held[i].len);
        peer->greeting_lens[peer->ngreeting] = s->held[i].len + 1;
        peer->greeting[peer->ngreeting++] = g;
    }
    return 0;
}

/* The session was taken back by this connection: it takes over from a connection here that
 * had it, and gets its rooms and held messages after its welcome. */
static int resume_session(sb_relay_t *r, peer_t *peer, const sb_dir_session_t *s)
{
    peer_t *old = sb_map_get(r->peers, peer->id);
    if (old != NULL && old != peer)
        relay_replaced(old);
    if (old != peer && sb_map_put(r->peers, peer->id, peer) != 0)
        return -1;
    peer->resumed = 1;
    sb_metrics.sessions_resumed++;
    return keep_greeting(r, peer, s);
}

static void claim_done(void *arg, sb_dir_result_t result, const sb_dir_session_t *session)
{
    peer_t *peer = arg;
    sb_relay_t *r = peer->relay;
    int mine = sb_map_get(r->peers, peer->id) == peer;

    if (peer->closed) {
        /* Gone while we asked: the ID goes back, unless a newer connection here has it; a
         * session it took back goes on waiting for a resume. */
        if (result == SB_DIR_OK && (mine || sb_map_get(r->peers, peer->id) == NULL)) {
            if (session->resumed && r->cfg->resume_seconds > 0)
                r->dir->ops->detach(r->dir, peer->id);
            else
                r->dir->ops->release(r->dir, peer->id);
        }
        if (mine)
            forget(r, peer);
    } else if (result == SB_DIR_OK && (session->resumed || mine)) {
        peer->claimed = 1;
        if (session->resumed && resume_session(r, peer, session) != 0) {
            relay_forget_rooms(r, peer);
            relay_greeting_free(peer);
            forget(r, peer);
            r->dir->ops->detach(r->dir, peer->id);
            sb_conn_close(peer->conn, SB_WS_CLOSE_INTERNAL, "out of memory");
        } else {
            register_peer(r, peer);
        }
    } else if (result == SB_DIR_UNAVAILABLE && !r->stopping &&
               sb_clock_mono() < peer->claim_deadline) {
        retry_claim(peer);
    } else {
        if (mine)
            forget(r, peer);
        if (result != SB_DIR_UNAVAILABLE) {
            sb_metrics.ids_taken++;
            refuse(peer->conn, "id-taken", "another connection holds this id", CLOSE_ID_TAKEN);
        } else {
            refuse(peer->conn, "unavailable", "the cluster's directory is unavailable; retry",
                   CLOSE_TRY_AGAIN);
        }
    }
    relay_peer_unref(peer);
}

void relay_on_open(void *app, sb_conn_t *c)
{
    sb_relay_t *r = app;
    peer_t *peer = calloc(1, sizeof(*peer));
    int too_long = 0, asked = 0;

    if (peer == NULL) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    peer->relay = r;
    peer->conn = c;
    peer->refs = 1; /* the connection's */
    peer->claim_deadline = sb_clock_mono() + r->cfg->bus_hold_ms / 1000.0;
    peer->dialect = sb_conn_dialect(c);
    sb_conn_set_data(c, peer);

    const sb_token_claims_t *claims = sb_conn_claims(c);
    if (peer->dialect == SB_DIALECT_PEERJS) {
        if (relay_pj_open(r, peer, c) != 0)
            return;
    } else if (claims != NULL) {
        /* The token names the peer (the handshake checked any ?id= against it). */
        snprintf(peer->id, sizeof(peer->id), "%s", claims->sub);
        asked = 1;
    } else if (relay_query_param(sb_conn_query(c), "id", peer->id, sizeof(peer->id), &too_long)) {
        if (too_long || !sb_peer_id_valid(peer->id, strlen(peer->id))) {
            refuse(c, "bad-id", "id must be 1-64 characters of [A-Za-z0-9_.-]", CLOSE_BAD_ID);
            return;
        }
        asked = 1;
    } else if (random_id(peer->id) != 0) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "no randomness");
        return;
    }
    /* A resume token means something only with the ID it belongs to; one of the wrong form is
     * no token at all. */
    if (r->cfg->resume_seconds > 0 && peer->dialect == SB_DIALECT_V1) {
        if (asked &&
            relay_query_param(sb_conn_query(c), "resume", peer->resume, sizeof(peer->resume),
                              &too_long) &&
            (too_long || !token_form(peer->resume)))
            peer->resume[0] = '\0';
        if (random_token(peer->token) != 0) {
            sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "no randomness");
            return;
        }
    }
    /* Held or being claimed by a connection of this node: only its session's token takes it. */
    peer_t *here = sb_map_get(r->peers, peer->id);
    if (here != NULL && (peer->resume[0] == '\0' || !here->registered)) {
        sb_metrics.ids_taken++;
        refuse(c, "id-taken", "another connection holds this id", CLOSE_ID_TAKEN);
        return;
    }
    if (here == NULL && sb_map_put(r->peers, peer->id, peer) != 0) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    ask_claim(r, peer);
}

void relay_replaced(peer_t *peer)
{
    sb_relay_t *r = peer->relay;
    if (peer->replaced || peer->closed)
        return;
    peer->replaced = 1;
    sb_metrics.sessions_replaced++;
    forget(r, peer);
    relay_forget_rooms(r, peer);
    relay_send_error(peer->conn, "replaced", "another connection resumed this session", NULL, NULL,
                     relay_no_mid());
    sb_conn_close(peer->conn, CLOSE_REPLACED, "replaced");
}

void relay_on_close(void *app, sb_conn_t *c)
{
    sb_relay_t *r = app;
    peer_t *peer = sb_conn_data(c);
    if (peer == NULL)
        return;
    sb_conn_set_data(c, NULL);
    peer->closed = 1;
    relay_pj_close(r, peer);
    relay_join_cancel(peer);
    relay_greeting_free(peer); /* what waited for its catch-up: its senders keep what was acked */
    if (peer->retry != NULL) {
        event_free(peer->retry);
        peer->retry = NULL;
        relay_peer_unref(peer);
        if (peer->claimed && sb_map_get(r->peers, peer->id) == peer) {
            /* Its ID was claimed, its channel not subscribed yet. */
            if (peer->resumed)
                r->dir->ops->detach(r->dir, peer->id);
            else
                r->dir->ops->release(r->dir, peer->id);
        }
    }
    if (peer->registered) {
        char channel[SB_ENV_CHANNEL_MAX];
        int keep = r->cfg->resume_seconds > 0 && sb_conn_ended_by_accident(c);
        sb_env_peer_channel(peer->id, r->bus->sharded, channel);
        if (peer->replaced) {
            /* Its session lives on in another connection, which has the channel if it is here. */
        } else if (keep) {
            relay_forget_rooms(r, peer);
            r->dir->ops->detach(r->dir, peer->id);
            sb_metrics.sessions_detached++;
        } else {
            relay_leave_all(r, peer);
            r->dir->ops->release(r->dir, peer->id);
        }
        forget(r, peer);
        if (sb_map_get(r->peers, peer->id) == NULL)
            r->bus->ops->unsubscribe(r->bus, channel);
        sb_metrics.peers--;
        if (r->holders != NULL)
            relay_hold_wake(r, peer->id);
    } else {
        relay_forget_rooms(r, peer); /* restored by a resume still being subscribed */
        forget(r, peer);
    }
    relay_peer_unref(peer);
}

static void reclaim_done(void *arg, sb_dir_result_t result, const sb_dir_session_t *session)
{
    peer_t *peer = arg;
    sb_relay_t *r = peer->relay;
    (void)session;
    r->reasserting--;
    if (!peer->closed && result == SB_DIR_TAKEN) {
        /* Another node took the ID over while we were cut off: it is theirs now. */
        sb_log(SB_LOG_INFO, "peer %s: its ID was taken over during the outage", peer->id);
        sb_metrics.ids_taken++;
        refuse(peer->conn, "id-taken", "another connection took this id over", CLOSE_ID_TAKEN);
    }
    relay_peer_unref(peer);
}

void relay_reassert(void *relay)
{
    sb_relay_t *r = relay;
    size_t cursor = 0;
    const char *key;
    void *value;
    r->lost_at = sb_clock_mono();
    while (sb_map_next(r->peers, &cursor, &key, &value)) {
        peer_t *peer = value;
        if (!peer->registered || peer->closed)
            continue;
        r->reasserting++;
        r->dir->ops->claim(r->dir, peer->id, SB_DIR_CLAIM_AGAIN, NULL, peer->token, reclaim_done,
                           relay_peer_ref(peer));
        relay_rejoin_all(r, peer);
    }
}
