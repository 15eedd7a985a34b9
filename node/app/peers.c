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
#include "turn.h"
#include "base/metrics.h"
#include "net/conn.h"
#include "ws.h"

/* A random, unguessable ID: 96 bits in base64url, 16 characters. */
static int random_id(char out[17])
{
    unsigned char raw[12], b64[17];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    EVP_EncodeBlock(b64, raw, sizeof(raw));
    for (int i = 0; i < 16; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[16] = '\0';
    return 0;
}

/* Finds id=NAME in a query string. Returns 1 and copies NAME (at most cap-1 bytes, longer is
 * reported through *too_long), or 0 when there is no id parameter. */
static int query_id(const char *query, char *out, size_t cap, int *too_long)
{
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n >= 3 && strncmp(p, "id=", 3) == 0) {
            *too_long = n - 3 >= cap;
            snprintf(out, cap, "%.*s", (int)(n - 3), p + 3);
            return 1;
        }
        p += n + (amp ? 1 : 0);
    }
    return 0;
}

static void refuse(sb_conn_t *c, const char *code, const char *message, uint16_t close_code)
{
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

/* The peer's channel is in place (ok), or could not be made: welcome the peer, whose messages
 * can reach it from every node from now on, or undo its claim. */
static void subscribed(void *arg, int ok)
{
    peer_t *peer = arg;
    sb_relay_t *r = peer->relay;
    if (ok && !peer->closed) {
        size_t len = 0;
        peer->registered = 1;
        sb_metrics.peers++;
        char *ice = ice_servers_for(r, peer->id);
        char *msg = sb_msg_welcome(peer->id, r->node_id, ice ? ice : r->cfg->ice_servers, &len);
        free(ice);
        relay_send_owned(peer->conn, msg, len);
        sb_log_conn(SB_LOG_DEBUG, sb_conn_id(peer->conn), sb_conn_peer(peer->conn), "peer %s",
                    peer->id);
    } else {
        /* Gone meanwhile, or the bus is down: give the channel and the ID back, unless a
         * newer connection here has taken them over. */
        if (!peer->closed)
            forget(r, peer);
        if (sb_map_get(r->peers, peer->id) == NULL) {
            char channel[SB_ENV_CHANNEL_MAX];
            sb_env_peer_channel(peer->id, channel);
            r->bus->ops->unsubscribe(r->bus, channel);
            r->dir->ops->release(r->dir, peer->id);
        }
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
    sb_env_peer_channel(peer->id, channel);
    if (r->bus->ops->subscribe(r->bus, channel, peer, subscribed, relay_peer_ref(peer)) != 0) {
        relay_peer_unref(peer);
        r->dir->ops->release(r->dir, peer->id);
        forget(r, peer);
        sb_conn_close(peer->conn, SB_WS_CLOSE_INTERNAL, "out of memory");
    }
}

static void claim_done(void *arg, sb_dir_result_t result)
{
    peer_t *peer = arg;
    sb_relay_t *r = peer->relay;

    if (peer->closed) {
        /* Gone while we asked: give the ID back unless a newer connection here has it. */
        if (result == SB_DIR_OK && sb_map_get(r->peers, peer->id) == NULL)
            r->dir->ops->release(r->dir, peer->id);
    } else if (result == SB_DIR_OK) {
        register_peer(r, peer);
    } else {
        forget(r, peer);
        if (result == SB_DIR_TAKEN) {
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
    int too_long = 0;

    if (peer == NULL) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    peer->relay = r;
    peer->conn = c;
    peer->refs = 1; /* the connection's */
    sb_conn_set_data(c, peer);

    const sb_token_claims_t *claims = sb_conn_claims(c);
    if (claims != NULL) {
        /* The token names the peer (the handshake checked any ?id= against it). */
        snprintf(peer->id, sizeof(peer->id), "%s", claims->sub);
    } else if (query_id(sb_conn_query(c), peer->id, sizeof(peer->id), &too_long)) {
        if (too_long || !sb_peer_id_valid(peer->id, strlen(peer->id))) {
            refuse(c, "bad-id", "id must be 1-64 characters of [A-Za-z0-9_.-]", CLOSE_BAD_ID);
            return;
        }
    } else if (random_id(peer->id) != 0) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "no randomness");
        return;
    }
    /* Held or being claimed by a connection of this node. */
    if (sb_map_get(r->peers, peer->id) != NULL) {
        sb_metrics.ids_taken++;
        refuse(c, "id-taken", "another connection holds this id", CLOSE_ID_TAKEN);
        return;
    }
    if (sb_map_put(r->peers, peer->id, peer) != 0) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    r->dir->ops->claim(r->dir, peer->id, claim_done, relay_peer_ref(peer));
}

void relay_on_close(void *app, sb_conn_t *c)
{
    sb_relay_t *r = app;
    peer_t *peer = sb_conn_data(c);
    if (peer == NULL)
        return;
    sb_conn_set_data(c, NULL);
    peer->closed = 1;
    relay_leave_all(r, peer);
    if (peer->registered) {
        char channel[SB_ENV_CHANNEL_MAX];
        sb_env_peer_channel(peer->id, channel);
        r->bus->ops->unsubscribe(r->bus, channel);
        r->dir->ops->release(r->dir, peer->id);
        sb_metrics.peers--;
    }
    forget(r, peer);
    relay_peer_unref(peer);
}

static void reclaim_done(void *arg, sb_dir_result_t result)
{
    peer_t *peer = arg;
    sb_relay_t *r = peer->relay;
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
    while (sb_map_next(r->peers, &cursor, &key, &value)) {
        peer_t *peer = value;
        if (!peer->registered || peer->closed)
            continue;
        r->reasserting++;
        r->dir->ops->claim(r->dir, peer->id, reclaim_done, relay_peer_ref(peer));
        relay_rejoin_all(r, peer);
    }
}
