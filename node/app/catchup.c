/* A resumed session's catch-up: what its mailbox held and what the nodes send again for it,
 * delivered by the time it was sent, once each, before anything sent later.
 *
 * A message acked to the session's last connection may have been lost with that connection's
 * node; the nodes that kept such messages send them again when asked (relaying.c). They can
 * arrive after messages sent later (held in the mailbox, or sent since the resume), so for a
 * moment everything for the peer waits here: the resumed node asks every node, each answers
 * with what it kept for the peer and then a `resent` mark on the peer's channel, and once every
 * node's mark has come (or CATCHUP_SECONDS passed) what waited is delivered, ordered by when it
 * was sent, a copy of one already there dropped. */
#include "app/relay_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "envelope.h"

/* How long a resumed peer's messages wait at most for the other nodes' marks. */
#define CATCHUP_SECONDS 1.0

int relay_catchup_wanted(const sb_relay_t *r)
{
    return r->bus->remote && r->cfg->resend_seconds > 0 && r->cfg->resume_seconds > 0;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    peer_t *peer = arg;
    (void)fd;
    (void)what;
    event_free(peer->catchup_timer);
    peer->catchup_timer = NULL;
    if (peer->catching_up && !peer->closed) {
        sb_log(SB_LOG_INFO, "peer %s: %d of %d nodes answered its resume in time", peer->id,
               peer->marks_seen, peer->marks_due);
        relay_catchup_end(peer);
    }
    relay_peer_unref(peer);
}

/* The bus says how many nodes heard the request: as many marks are due. */
static void asked(void *arg, int receivers)
{
    peer_t *peer = arg;
    if (peer->catching_up && !peer->closed) {
        peer->marks_due = receivers;
        if (receivers <= 0 || peer->marks_seen >= receivers)
            relay_catchup_end(peer);
    }
    relay_peer_unref(peer);
}

void relay_catchup_start(peer_t *peer)
{
    sb_relay_t *r = peer->relay;
    char buf[SB_ENV_RESEND_HEAD_MAX + SB_ID_MAX + 1];
    struct timeval tv = sb_loop_tv(CATCHUP_SECONDS);

    peer->catching_up = 1;
    peer->marks_due = -1;
    peer->marks_seen = 0;
    if ((peer->catchup_timer = evtimer_new(r->base, on_timeout, peer)) == NULL ||
        evtimer_add(peer->catchup_timer, &tv) != 0) {
        if (peer->catchup_timer != NULL)
            event_free(peer->catchup_timer);
        peer->catchup_timer = NULL;
        relay_catchup_end(peer); /* out of memory: no wait, and no order either */
        return;
    }
    relay_peer_ref(peer);
    size_t len = sb_env_resend_head(0, 0, buf), idlen = strlen(peer->id);
    buf[len++] = ' ';
    memcpy(buf + len, peer->id, idlen);
    sb_str_t part = {buf, len + idlen};
    r->bus->ops->publish(r->bus, SB_ENV_RESEND_CHANNEL, &part, 1, asked, relay_peer_ref(peer));
}

/* Keeps a copy of the envelope msg[0, len) among what waits. Returns 0, or -1 out of memory. */
static int wait_here(peer_t *peer, const char *msg, size_t len)
{
    if (peer->ngreeting == peer->greeting_cap) {
        size_t cap = peer->greeting_cap ? peer->greeting_cap * 2 : 8;
        char **g = realloc(peer->greeting, cap * sizeof(*g));
        if (g == NULL)
            return -1;
        peer->greeting = g;
        size_t *l = realloc(peer->greeting_lens, cap * sizeof(*l));
        if (l == NULL)
            return -1;
        peer->greeting_lens = l;
        peer->greeting_cap = cap;
    }
    char *e = malloc(len + 1);
    if (e == NULL)
        return -1;
    e[0] = 'E';
    memcpy(e + 1, msg, len);
    peer->greeting_lens[peer->ngreeting] = len + 1;
    peer->greeting[peer->ngreeting++] = e;
    return 0;
}

int relay_catchup_take(peer_t *peer, const sb_env_t *env, const char *msg, size_t len)
{
    if (!peer->catching_up || !sb_str_eq(&env->to, peer->id, 0))
        return 0;
    if (env->kind == SB_ENV_RESENT) {
        peer->marks_seen++;
        if (peer->marks_due >= 0 && peer->marks_seen >= peer->marks_due)
            relay_catchup_end(peer);
        return 1;
    }
    if (!sb_env_is_relay(env->kind))
        return 0;
    if (wait_here(peer, msg, len) != 0) {
        /* Its sender was told ack: end the wait rather than lose it. */
        sb_log(SB_LOG_WARN, "peer %s: out of memory while it catches up", peer->id);
        relay_catchup_end(peer);
        return 0;
    }
    return 1;
}

typedef struct {
    sb_env_t env;
    size_t i; /* its place among what waited: the order of arrival breaks ties */
    const char *raw;
    size_t len;
} waiting_t;

static int by_sent(const void *a, const void *b)
{
    const waiting_t *x = a, *y = b;
    if (x->env.sent_us != y->env.sent_us)
        return x->env.sent_us < y->env.sent_us ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Whether w is a copy of one delivered before it: the same envelope, byte for byte (sent again
 * by its sender's node), which sorts next to it. */
static int copy_of_earlier(const waiting_t *all, size_t k)
{
    for (size_t j = k; j-- > 0 && all[j].env.sent_us == all[k].env.sent_us;)
        if (all[j].len == all[k].len && memcmp(all[j].raw, all[k].raw, all[k].len) == 0)
            return 1;
    return 0;
}

void relay_catchup_end(peer_t *peer)
{
    peer->catching_up = 0;
    if (peer->catchup_timer != NULL) {
        event_free(peer->catchup_timer);
        peer->catchup_timer = NULL;
        relay_peer_unref(peer); /* the caller still holds one */
    }
    size_t n = 0;
    waiting_t *all = peer->ngreeting ? calloc(peer->ngreeting, sizeof(*all)) : NULL;
    for (size_t i = 0; all != NULL && i < peer->ngreeting; i++) {
        const char *raw = peer->greeting[i] + 1;
        size_t len = peer->greeting_lens[i] - 1;
        if (peer->greeting[i][0] != 'E' || sb_env_parse(raw, len, &all[n].env, NULL) != 0)
            continue;
        all[n].i = i;
        all[n].raw = raw;
        all[n].len = len;
        n++;
    }
    if (all == NULL && peer->ngreeting > 0)
        sb_log(SB_LOG_WARN, "peer %s: out of memory: %zu messages held for it not delivered",
               peer->id, peer->ngreeting);
    if (n > 1)
        qsort(all, n, sizeof(*all), by_sent);
    for (size_t k = 0; k < n; k++) {
        if (copy_of_earlier(all, k))
            sb_metrics.resent_dropped++;
        else if (!peer->closed)
            relay_deliver_envelope(peer, &all[k].env);
    }
    free(all);
    relay_greeting_free(peer);
}

void relay_catchup_cancel(peer_t *peer)
{
    peer->catching_up = 0;
    if (peer->catchup_timer != NULL) {
        event_free(peer->catchup_timer);
        peer->catchup_timer = NULL;
        relay_peer_unref(peer);
    }
}

void relay_greeting_free(peer_t *peer)
{
    relay_catchup_cancel(peer);
    for (size_t i = 0; i < peer->ngreeting; i++)
        free(peer->greeting[i]);
    free(peer->greeting);
    free(peer->greeting_lens);
    peer->greeting = NULL;
    peer->greeting_lens = NULL;
    peer->ngreeting = peer->greeting_cap = 0;
}
