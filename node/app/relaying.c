/* The relay's messages between peers: offer, answer, candidate and bye, to a peer on this node
 * or through the bus to another, what the sender is told about each, and the messages that wait:
 * for the bus to come back (--bus-hold-ms), or in the mailbox of a peer between connections.
 *
 * A message for another node is published with a copy of its envelope kept until the outcome.
 * When nobody took it, the directory says why: the peer is between connections (its mailbox
 * holds it: queued), its node is subscribing again (published again shortly), or it is gone.
 * A message that waits joins its sender's held list, ordered by when it was sent; of the held
 * messages to one recipient only the oldest is worked on, and a new message to that recipient
 * waits behind them, so delivered messages keep their order. */
#include "app/relay_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "envelope.h"
#include "net/conn.h"

/* How soon a held message is tried again after the bus or directory said "not yet". */
#define RETRY_SECONDS 0.02
/* How often a PeerJS message for a peer that is not connected looks for it again. */
#define AWAIT_SECONDS 0.1

/* Envelope buffers by size: most signaling messages fit the first class. */
#define ENV_SMALL 1024
#define ENV_MEDIUM 8192

static char *env_alloc(sb_relay_t *r, size_t len)
{
    if (len <= ENV_SMALL)
        return sb_pool_get(&r->env_small);
    if (len <= ENV_MEDIUM)
        return sb_pool_get(&r->env_medium);
    return malloc(len);
}

/* The memory an envelope of len bytes takes: its pool's block, or itself. */
static size_t env_block(size_t len)
{
    return len <= ENV_SMALL ? ENV_SMALL : len <= ENV_MEDIUM ? ENV_MEDIUM : len;
}

static void env_free(sb_relay_t *r, pending_relay_t *p)
{
    if (p->env == NULL)
        return;
    if (p->env_len <= ENV_SMALL)
        sb_pool_put(&r->env_small, p->env);
    else if (p->env_len <= ENV_MEDIUM)
        sb_pool_put(&r->env_medium, p->env);
    else
        free(p->env);
    p->env = NULL;
}

static void release(sb_relay_t *r, pending_relay_t *p)
{
    env_free(r, p);
    relay_peer_unref(p->sender);
    sb_pool_put(&r->pending_relays, p);
}

static int keeps(const sb_relay_t *r, const pending_relay_t *p);
static void keep(sb_relay_t *r, pending_relay_t *p);

/* Tells the sender the outcome and forgets the message, or keeps a copy of one acked into
 * another node. A message sent again was answered already: only its failure is counted. */
static void answer_sender(pending_relay_t *p, sb_relay_outcome_t outcome)
{
    sb_str_t mid = {p->mid, strlen(p->mid)};
    sb_relay_t *r = p->sender->relay;

    if (p->answered) {
        if (outcome != SB_RELAY_DELIVERED && outcome != SB_RELAY_QUEUED) {
            sb_metrics.resend_failed++;
            sb_log(SB_LOG_WARN, "a message from %s to %s, acked and sent again, was lost: %s",
                   p->sender->id, p->to, sb_metrics_relay_outcome_name(outcome));
        }
        release(r, p);
        return;
    }
    sb_metrics.relays[p->type][outcome]++;
    p->sender->relays--;
    relay_flow(p->sender);
    if (p->sender->dialect == SB_DIALECT_PEERJS) {
        if (outcome != SB_RELAY_DELIVERED && outcome != SB_RELAY_QUEUED)
            relay_pj_expire(p->sender, p->to);
    } else if (!p->sender->closed) {
        sb_conn_t *c = p->sender->conn;
        if (outcome == SB_RELAY_DELIVERED && mid.len > 0) {
            sb_str_t parts[SB_MSG_ACK_PARTS];
            sb_conn_send_parts(c, parts, sb_msg_ack_parts(mid, parts));
        } else if (outcome == SB_RELAY_QUEUED && mid.len > 0) {
            size_t len = 0;
            char *msg = sb_msg_queued(mid, &len);
            relay_send_owned(c, msg, len);
        } else if (outcome == SB_RELAY_UNKNOWN) {
            relay_send_error(c, "peer-unavailable", "no peer with that ID is connected", p->to,
                             NULL, mid);
        } else if (outcome == SB_RELAY_BOXFULL) {
            relay_send_error(c, "mailbox-full",
                             "the peer is between connections and holds as many messages as it "
                             "may; not held",
                             p->to, NULL, mid);
        } else if (outcome == SB_RELAY_UNAVAILABLE) {
            relay_send_error(c, "unavailable",
                             "the cluster could not deliver the message in time; try again", p->to,
                             NULL, mid);
        }
    }
    if (outcome == SB_RELAY_DELIVERED && keeps(r, p)) {
        p->answered = 1;
        keep(r, p);
        return;
    }
    release(r, p);
}

/* --- kept messages ------------------------------------------------------------------------
 * A message acked into another node can still be lost after its ack: in that node's buffers when
 * it dies, or in Redis's output buffer to it when its subscription breaks. So a message with a
 * mid acked into another node is kept for --resend-seconds (within --bus-hold-bytes; oldest
 * dropped first), and sent again when its recipient may have lost it: a later message to it
 * found nobody (its node went away), it resumed its session, or its node's link to Redis broke.
 * The copy sent again is the same envelope, mid included, and waits in its sender's held list
 * like any held message, so what the sender sends later follows it; the recipient drops a copy
 * whose mid it has seen (switchboard.js does). */

static int keeps(const sb_relay_t *r, const pending_relay_t *p)
{
    return r->bus->remote && !r->stopping && r->cfg->resend_seconds > 0 &&
           r->cfg->resume_seconds > 0 && p->env != NULL && p->mid[0] != '\0' && !p->answered;
}

/* Counts p among the kept relays (sign 1), or no longer (-1): the memory it holds, pool block
 * and all. */
static void count_kept(sb_relay_t *r, const pending_relay_t *p, int sign)
{
    size_t bytes = env_block(p->env_len);
    if (sign > 0) {
        r->kept_bytes += bytes;
        sb_metrics.kept_relays++;
        sb_metrics.kept_bytes += bytes;
    } else {
        r->kept_bytes -= bytes;
        sb_metrics.kept_relays--;
        sb_metrics.kept_bytes -= bytes;
    }
}

static void unkeep_head(sb_relay_t *r)
{
    pending_relay_t *p = r->kept;
    r->kept = p->kept_next;
    if (r->kept == NULL)
        r->kept_tail = &r->kept;
    count_kept(r, p, -1);
}

static void arm_kept_timer(sb_relay_t *r)
{
    struct timeval tv = {1, 0};
    if (r->kept != NULL && !evtimer_pending(r->kept_timer, NULL))
        evtimer_add(r->kept_timer, &tv);
}

/* Drops the kept messages whose time is up, and the oldest while over the byte budget. */
static void expire_kept(sb_relay_t *r, double now)
{
    while (r->kept != NULL && r->kept_bytes > r->cfg->bus_hold_bytes) {
        pending_relay_t *p = r->kept;
        sb_metrics.kept_evicted++;
        unkeep_head(r);
        release(r, p);
    }
    while (r->kept != NULL && (r->kept->kept_until <= now || r->stopping)) {
        pending_relay_t *p = r->kept;
        unkeep_head(r);
        release(r, p);
    }
}

static void keep(sb_relay_t *r, pending_relay_t *p)
{
    double now = sb_clock_mono();
    p->kept_until = now + r->cfg->resend_seconds;
    p->kept_next = NULL;
    *r->kept_tail = p;
    r->kept_tail = &p->kept_next;
    count_kept(r, p, 1);
    expire_kept(r, now);
    arm_kept_timer(r);
}

void relay_kept_tick(evutil_socket_t fd, short what, void *arg)
{
    sb_relay_t *r = arg;
    (void)fd;
    (void)what;
    expire_kept(r, sb_clock_mono());
    arm_kept_timer(r);
}

static int hold(pending_relay_t *p, hold_step_t step);
static void publish_held(pending_relay_t *p);

/* How far before the last ack to a peer, or before the last message its node received, a kept
 * message is sent again: what a node's and Redis's buffers can hold on the way to a client. */
#define RESEND_MARGIN 1.0

/* Sends again the kept messages for peer `to` (or, when to is NULL, for the peers in ids; when
 * both are NULL, for every peer) acked from `since` until `until` (monotonic clock): each joins
 * its sender's held list by age, so it goes out before anything its sender sent to that peer
 * later; with `now` set, each is published at once, one after another (so that what this node
 * publishes next follows them all). Those for the peers named that were acked before `since` are
 * dropped: they are not sent again by a later request either. Returns how many were sent. */
static size_t resend_kept(sb_relay_t *r, const char *to, const sb_map_t *ids, double since,
                          double until, int now_too)
{
    double now = sb_clock_mono();
    char why[8];
    int bus_ready = now_too && r->bus->ops->ready(r->bus, why, sizeof(why));
    int all = to == NULL && ids == NULL;
    size_t n = 0;
    pending_relay_t **e = &r->kept;
    while (*e != NULL) {
        pending_relay_t *p = *e;
        double acked = p->kept_until - r->cfg->resend_seconds;
        int wanted = all || (to != NULL ? strcmp(p->to, to) == 0 : sb_map_get(ids, p->to) != NULL);
        if (!wanted || acked > until || (all && acked < since)) {
            e = &p->kept_next;
            continue;
        }
        *e = p->kept_next;
        if (r->kept_tail == &p->kept_next)
            r->kept_tail = e;
        count_kept(r, p, -1);
        if (acked < since) { /* it reached the peer's node, which went on to take more */
            release(r, p);
            continue;
        }
        sb_metrics.resent++;
        p->deadline = now + r->cfg->bus_hold_ms / 1000.0;
        p->published = 0;
        n++;
        if (hold(p, HOLD_PUBLISH) == 0 && bus_ready) /* nothing here calls back into the list */
            publish_held(p);                         /* (its answer comes later) */
    }
    return n;
}

/* Sends again the kept messages for peer `to` that its node may have lost when it went away:
 * those acked within RESEND_MARGIN of the last one acked to it (after which nothing was); with
 * `now` set, published at once. */
static size_t resend_recent(sb_relay_t *r, const char *to, int now)
{
    double last = -1;
    for (const pending_relay_t *p = r->kept; p != NULL; p = p->kept_next)
        if (p->kept_until > last && strcmp(p->to, to) == 0)
            last = p->kept_until;
    if (last < 0)
        return 0;
    double acked = last - r->cfg->resend_seconds;
    return resend_kept(r, to, NULL, acked - RESEND_MARGIN, acked, now);
}

void relay_ask_resend(sb_relay_t *r, const char *const *ids, size_t n, double from, double until)
{
    /* Requests of up to about 64 KiB each: one per few thousand peers. */
    enum { CHUNK = 65536 };
    char *buf = malloc(CHUNK + SB_ENV_RESEND_HEAD_MAX + SB_ID_MAX + 2);
    if (buf == NULL)
        return;
    size_t i = 0;
    while (i < n) {
        size_t len = sb_env_resend_head((uint64_t)(from * 1000), (uint64_t)(until * 1000), buf);
        for (; i < n && len < CHUNK; i++) {
            size_t idlen = strlen(ids[i]);
            buf[len++] = ' ';
            memcpy(buf + len, ids[i], idlen);
            len += idlen;
        }
        sb_str_t part = {buf, len};
        r->bus->ops->publish(r->bus, SB_ENV_RESEND_CHANNEL, &part, 1, NULL, NULL);
    }
    free(buf);
}

/* A resend request from the bus (sb_env_resend_parse's format). */
static void resend_request(sb_relay_t *r, const char *msg, size_t len)
{
    uint64_t from_ms, until_ms;
    size_t at, pos;
    const char *err;
    sb_str_t id;
    char one[SB_ID_MAX + 1];

    if (sb_env_resend_parse(msg, len, &from_ms, &until_ms, &at, &err) != 0) {
        sb_metrics.bus_dropped++;
        sb_log(SB_LOG_WARN, "dropped a resend request: %s", err);
        return;
    }
    size_t n = 0, resent = 0;
    if (from_ms == 0) {
        /* A resumed session: for each peer, what it may have lost when its node went away, then
         * a mark that all of it went out (its node delivers what was held for it meanwhile, and
         * what is sent later, once it has one mark from every node). */
        for (pos = at; sb_env_resend_next(msg, len, &pos, &id);) {
            char channel[SB_ENV_CHANNEL_MAX];
            char mark[SB_ENV_HEAD_MAX];
            memcpy(one, id.p, id.len);
            one[id.len] = '\0';
            resent += resend_recent(r, one, 1);
            sb_env_t env = {
                .kind = SB_ENV_RESENT, .sent_us = sb_clock_wall_us(), .from = id, .to = id};
            sb_str_t part = {mark, sb_env_write(&env, mark)};
            sb_env_peer_channel(one, r->bus->sharded, channel);
            r->bus->ops->publish(r->bus, channel, &part, 1, NULL, NULL);
        }
    } else if (r->kept != NULL) {
        double now = sb_clock_mono();
        sb_map_t *ids = sb_map_new();
        for (pos = at; ids != NULL && sb_env_resend_next(msg, len, &pos, &id); n++) {
            memcpy(one, id.p, id.len);
            one[id.len] = '\0';
            if (sb_map_put(ids, one, r) != 0)
                break;
        }
        if (ids != NULL && sb_map_size(ids) == n)
            resent = resend_kept(r, NULL, ids, now - (double)from_ms / 1000.0,
                                 now - (double)until_ms / 1000.0, 0);
        else
            sb_log(SB_LOG_WARN, "out of memory: a resend request for %zu peers not acted on", n);
        sb_map_free(ids);
    }
    if (resent > 0)
        sb_log(SB_LOG_INFO, "sending %zu acked messages again: their recipients may have lost them",
               resent);
}

void relay_bus_renewed(void *relay, double heard_ago, double lost_ago)
{
    sb_relay_t *r = relay;
    /* Every node hears the resend requests (its own too); subscribed again by the bus after
     * this, so asking once per link is enough, and asking again costs nothing. */
    if (r->bus->ops->subscribe(r->bus, SB_ENV_RESEND_CHANNEL, r, NULL, NULL) != 0)
        sb_log(SB_LOG_WARN, "out of memory: not subscribed to resend requests");
    if (heard_ago <= 0 || r->cfg->resend_seconds <= 0)
        return;
    /* Redis may have lost what it had for every node (it restarted), and a node that renews its
     * link before this one does not hear this one's request: send again what this node acked
     * from a little before the break until now. */
    double now = sb_clock_mono();
    size_t self = resend_kept(r, NULL, NULL, now - lost_ago - RESEND_MARGIN, now, 0);
    if (self > 0)
        sb_log(SB_LOG_INFO, "sending %zu acked messages again: the link to Redis broke", self);
    /* What Redis had for this node's peers when the link broke is gone: ask for what was acked
     * from a little before the last message that arrived until a little after the break was
     * seen (after it, nothing counted this node's subscriptions; the margin covers a sender
     * that read its answer a little later). */
    size_t n = 0, cursor = 0;
    const char *key;
    void *value;
    const char **ids = calloc(sb_map_size(r->peers) + 1, sizeof(*ids));
    while (ids != NULL && sb_map_next(r->peers, &cursor, &key, &value))
        if (((peer_t *)value)->registered)
            ids[n++] = key;
    if (n > 0)
        relay_ask_resend(r, ids, n, heard_ago + RESEND_MARGIN,
                         lost_ago > RESEND_MARGIN ? lost_ago - RESEND_MARGIN : 0);
    free(ids);
}

/* --- held messages ------------------------------------------------------------------------ */

static void kick(peer_t *sender);

/* Whether the sender has a message to `to` waiting: a new one must wait behind it. */
static int holds_for(const peer_t *sender, const char *to)
{
    for (const pending_relay_t *e = sender->held; e != NULL; e = e->next)
        if (strcmp(e->to, to) == 0)
            return 1;
    return 0;
}

static void unlink_held(pending_relay_t *p)
{
    peer_t *s = p->sender;
    sb_relay_t *r = s->relay;
    for (pending_relay_t **e = &s->held; *e != NULL; e = &(*e)->next)
        if (*e == p) {
            *e = p->next;
            break;
        }
    sb_metrics.held_relays--;
    sb_metrics.held_bytes -= p->env_len;
    r->held_bytes -= p->env_len;
    if (s->held == NULL && s->holding) { /* off the relay's list of holders */
        *(s->hold_prev ? &s->hold_prev->hold_next : &r->holders) = s->hold_next;
        if (s->hold_next)
            s->hold_next->hold_prev = s->hold_prev;
        s->hold_prev = s->hold_next = NULL;
        s->holding = 0;
    }
}

/* Answers a held message and takes it off its sender's list. */
static void settle(pending_relay_t *p, sb_relay_outcome_t outcome)
{
    unlink_held(p);
    answer_sender(p, outcome);
}

static void arm_timer(sb_relay_t *r)
{
    struct timeval tv = {0, (suseconds_t)(RETRY_SECONDS * 1e6)};
    if (!evtimer_pending(r->hold_timer, NULL))
        evtimer_add(r->hold_timer, &tv);
}

/* Makes p wait, next to do step, in its sender's list by age: 0. Refused unavailable at once
 * when the node's budget of held bytes is spent or the relay is stopping: -1, and p is gone. */
static int hold(pending_relay_t *p, hold_step_t step)
{
    peer_t *s = p->sender;
    sb_relay_t *r = s->relay;
    if (r->stopping || r->held_bytes + p->env_len > r->cfg->bus_hold_bytes) {
        answer_sender(p, SB_RELAY_UNAVAILABLE);
        return -1;
    }
    p->step = step;
    p->busy = 0;
    p->stale = 0;
    p->not_before = 0;
    pending_relay_t **e = &s->held;
    while (*e != NULL && (*e)->seq < p->seq)
        e = &(*e)->next;
    p->next = *e;
    *e = p;
    r->held_bytes += p->env_len;
    sb_metrics.held_relays++;
    sb_metrics.held_bytes += p->env_len;
    sb_metrics.held_relays_total++;
    if (!s->holding) {
        s->holding = 1;
        s->hold_prev = NULL;
        s->hold_next = r->holders;
        if (r->holders)
            r->holders->hold_prev = s;
        r->holders = s;
    }
    arm_timer(r);
    return 0;
}

/* A message to `to` sent after those held was delivered: the held ones sent before it can no
 * longer arrive in order, so they are refused (at once, or when what they wait for answers). */
static void refuse_overtaken(peer_t *sender, const char *to, uint64_t seq)
{
    pending_relay_t *e = sender->held;
    while (e != NULL) {
        pending_relay_t *next = e->next;
        /* A message sent again is delivered late rather than lost: the recipient may not
         * have it at all. */
        if (e->seq < seq && !e->answered && strcmp(e->to, to) == 0) {
            if (e->busy)
                e->stale = 1;
            else
                settle(e, SB_RELAY_UNAVAILABLE);
        }
        e = next;
    }
}

static void held_published(void *arg, int receivers)
{
    pending_relay_t *p = arg;
    peer_t *s = relay_peer_ref(p->sender);
    p->busy = 0;
    if (receivers > 0) {
        settle(p, SB_RELAY_DELIVERED);
    } else if (receivers == 0) {
        p->step = HOLD_PUT;
        resend_recent(s->relay, p->to, 0); /* its node may have gone with them */
    } else {
        p->step = HOLD_PUBLISH;
        p->not_before = sb_clock_mono() + RETRY_SECONDS;
    }
    kick(s);
    relay_peer_unref(s);
}

/* Whether the directory lost this node's records lately (Redis restarted empty): a peer it does
 * not know may be one whose node has not recorded it again yet. */
static int recovering(const sb_relay_t *r, double now)
{
    return r->lost_at > 0 && now - r->lost_at < r->cfg->bus_hold_ms / 1000.0;
}

static void held_put(void *arg, sb_dir_put_t outcome)
{
    pending_relay_t *p = arg;
    peer_t *s = relay_peer_ref(p->sender);
    sb_relay_t *r = s->relay;
    double now = sb_clock_mono();
    p->busy = 0;
    switch (outcome) {
    case SB_DIR_QUEUED:
        settle(p, SB_RELAY_QUEUED);
        break;
    case SB_DIR_BOXFULL:
        settle(p, SB_RELAY_BOXFULL);
        break;
    case SB_DIR_GONE:
        if (p->sender->dialect == SB_DIALECT_PEERJS && now < p->deadline) {
            /* PeerServer holds a message for a peer that is not there for its expire timeout,
             * as the peer may be about to connect: published again until then. */
            p->step = HOLD_PUBLISH;
            p->not_before = now + AWAIT_SECONDS;
            break;
        }
        if (!recovering(r, now)) {
            settle(p, SB_RELAY_UNKNOWN);
            break;
        }
        if (now >= p->deadline) { /* not recorded again in time: unknown, not known gone */
            settle(p, SB_RELAY_UNAVAILABLE);
            break;
        }
        /* its node may record it again at any moment: publish again */
        __attribute__((fallthrough));
    case SB_DIR_LIVE:
        p->step = HOLD_PUBLISH; /* its node is subscribing again: publish again */
        p->not_before = now + RETRY_SECONDS;
        break;
    case SB_DIR_PUT_UNAVAILABLE:
        if (now >= p->deadline) { /* the directory stayed unreachable */
            settle(p, SB_RELAY_UNAVAILABLE);
            break;
        }
        p->step = HOLD_PUT;
        p->not_before = now + RETRY_SECONDS;
        break;
    }
    kick(s);
    relay_peer_unref(s);
}

/* Publishes a held message (again) on its recipient's channel; held_published hears how it went. */
static void publish_held(pending_relay_t *p)
{
    char channel[SB_ENV_CHANNEL_MAX];
    sb_str_t part = {p->env, p->env_len};
    sb_env_peer_channel(p->to, p->sender->relay->bus->sharded, channel);
    p->published = 1;
    p->busy = 1;
    p->sender->relay->bus->ops->publish(p->sender->relay->bus, channel, &part, 1, held_published,
                                        p);
}

/* Works on the sender's held messages: for each recipient, its oldest one. */
/* Recipients a kick remembers on its walk of a sender's held messages. */
#define KICK_MET 16

static void kick(peer_t *sender)
{
    sb_relay_t *r = sender->relay;
    if (sender->kicking) {
        sender->rekick = 1;
        return;
    }
    sender->kicking = 1;
    relay_peer_ref(sender);
again:
    sender->rekick = 0;
    /* Only the first held message to each recipient may go. The recipients met on the walk are
     * remembered (a sender holds for few at once), so that a long list for one recipient is
     * walked once, not once per message. */
    const char *met[KICK_MET];
    size_t nmet = 0;
    for (pending_relay_t *e = sender->held; e != NULL; e = e->next) {
        double now = sb_clock_mono();
        int first = 1;
        for (size_t i = 0; i < nmet && first; i++)
            first = strcmp(met[i], e->to) != 0;
        if (first && nmet == KICK_MET) /* past those remembered: ask the list itself */
            for (pending_relay_t *f = sender->held; f != e && first; f = f->next)
                first = strcmp(f->to, e->to) != 0;
        if (first && nmet < KICK_MET)
            met[nmet++] = e->to;
        if (!first || e->busy || now < e->not_before)
            continue;
        char why[8];
        /* Stopping, the bus may be gone already (the directory, freed after it, fails its
         * requests into here): it is not asked. */
        int bus_ready =
            !r->stopping && e->step == HOLD_PUBLISH && r->bus->ops->ready(r->bus, why, sizeof(why));
        /* Past its deadline a message no longer waits: for the bus, or for another try. */
        if (r->stopping || e->stale ||
            (e->step == HOLD_PUBLISH && now >= e->deadline && (e->published || !bus_ready))) {
            settle(e, SB_RELAY_UNAVAILABLE);
            goto again; /* the list changed */
        }
        if (e->step == HOLD_PUBLISH) {
            if (!bus_ready)
                continue;
            publish_held(e);
        } else {
            e->busy = 1;
            r->dir->ops->put(r->dir, e->to, e->env, e->env_len, held_put, e);
        }
        goto again; /* an answer may have come within the call */
    }
    if (sender->rekick)
        goto again;
    sender->kicking = 0;
    relay_peer_unref(sender);
}

void relay_hold_tick(evutil_socket_t fd, short what, void *arg)
{
    sb_relay_t *r = arg;
    (void)fd;
    (void)what;
    /* Each kick may take its peer off the list: walk a snapshot of who is on it. */
    size_t n = 0;
    for (peer_t *s = r->holders; s != NULL; s = s->hold_next)
        n++;
    peer_t **all = n ? malloc(n * sizeof(*all)) : NULL;
    size_t k = 0;
    for (peer_t *s = r->holders; all != NULL && s != NULL; s = s->hold_next)
        all[k++] = relay_peer_ref(s);
    for (size_t i = 0; i < k; i++) {
        kick(all[i]);
        relay_peer_unref(all[i]);
    }
    free(all);
    if (r->holders != NULL)
        arm_timer(r);
}

void relay_hold_wake(sb_relay_t *r, const char *id)
{
    for (peer_t *s = r->holders; s != NULL; s = s->hold_next)
        for (pending_relay_t *e = s->held; e != NULL; e = e->next)
            if (!e->busy && strcmp(e->to, id) == 0) {
                e->step = HOLD_PUT; /* ask the directory again, at once */
                e->not_before = 0;
            }
    relay_hold_tick(-1, 0, r);
}

void relay_hold_stop(sb_relay_t *r)
{
    r->stopping = 1;
    relay_hold_tick(-1, 0, r);
    expire_kept(r, sb_clock_mono());
}

/* --- the outcome of a first publish ------------------------------------------------------- */

static void relay_done(void *arg, int receivers)
{
    pending_relay_t *p = arg;
    peer_t *s = relay_peer_ref(p->sender);
    p->published = 1;
    if (p->via != NULL) {
        p->via->inbound--;
        relay_peer_unref(p->via);
        p->via = NULL;
    }
    if (receivers > 0) {
        refuse_overtaken(s, p->to, p->seq);
        answer_sender(p, SB_RELAY_DELIVERED);
    } else {
        /* Nobody took it: the peer is between connections, its node is subscribing again after
         * a reconnect, or it is gone; or the bus could not take it. Either way it waits, behind
         * what was acked to that peer lately and may have gone with its node. */
        if (receivers == 0)
            resend_recent(s->relay, p->to, 0);
        if (hold(p, receivers == 0 ? HOLD_PUT : HOLD_PUBLISH) == 0 && receivers < 0)
            p->not_before = sb_clock_mono() + RETRY_SECONDS;
        kick(s);
    }
    relay_peer_unref(s);
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

/* Writes a relayed message for its recipient straight into its connection (from is a peer ID),
 * in the recipient's dialect. Returns 0, or -1 when it could not be queued (out of memory, or
 * the connection is gone). */
static int hand_over(peer_t *to, sb_msg_type_t type, const char *from, sb_str_t payload,
                     sb_str_t mid)
{
    if (to->dialect == SB_DIALECT_PEERJS)
        return relay_pj_hand_over(to, type, from, payload);
    sb_str_t parts[SB_MSG_RELAY_PARTS];
    size_t n = sb_msg_relay_parts(type, from, payload, mid, parts);
    return sb_conn_send_parts(to->conn, parts, n);
}

/* Writes the message's envelope into p->env, kept while the message may have to go out again.
 * Returns 0, or -1 when out of memory. */
static int keep_envelope(sb_relay_t *r, peer_t *sender, const sb_msg_t *m, pending_relay_t *p)
{
    sb_env_t env = {.kind = env_kind(m->type),
                    .sent_us = sb_clock_wall_us(),
                    .from = {sender->id, strlen(sender->id)},
                    .to = {m->to, strlen(m->to)},
                    .mid = m->mid,
                    .payload = m->payload};
    char head[SB_ENV_HEAD_MAX];
    size_t n = sb_env_write_head(&env, head);
    p->env_len = n + m->mid.len + m->payload.len;
    if ((p->env = env_alloc(r, p->env_len)) == NULL)
        return -1;
    memcpy(p->env, head, n);
    if (m->mid.len > 0)
        memcpy(p->env + n, m->mid.p, m->mid.len);
    if (m->payload.len > 0)
        memcpy(p->env + n + m->mid.len, m->payload.p, m->payload.len);
    return 0;
}

void relay_message(sb_relay_t *r, peer_t *sender, const sb_msg_t *m)
{
    pending_relay_t *p = sb_pool_get(&r->pending_relays);
    if (p == NULL) {
        relay_send_error(sender->conn, "unavailable", "out of memory", m->to, NULL, m->mid);
        return;
    }
    memset(p, 0, offsetof(pending_relay_t, mid));
    p->sender = relay_peer_ref(sender);
    p->type = m->type;
    p->seq = ++sender->seq;
    /* A PeerJS message also waits for a recipient that is not connected yet (PeerServer's
     * expire timeout): its bound is the longer of the two. */
    double wait = r->cfg->bus_hold_ms;
    if (sender->dialect == SB_DIALECT_PEERJS && r->cfg->peerjs_expire_ms > wait)
        wait = r->cfg->peerjs_expire_ms;
    p->deadline = sb_clock_mono() + wait / 1000.0;
    sender->relays++;
    memcpy(p->to, m->to, sizeof(p->to));
    if (m->mid.len > 0)
        memcpy(p->mid, m->mid.p, m->mid.len);
    p->mid[m->mid.len] = '\0';

    int behind = sender->held != NULL && holds_for(sender, m->to);
    peer_t *local = sb_map_get(r->peers, m->to);
    /* A peer catching up gets its messages through the bus, after what it catches up on; and
     * while some are on their way there, the next ones follow them. */
    if (!behind && local != NULL && local->registered && !local->catching_up &&
        local->inbound == 0) {
        /* Same node: straight to the connection, no bus round trip. */
        uint64_t t0 = sb_clock_wall_us();
        if (hand_over(local, m->type, sender->id, m->payload, m->mid) == 0) {
            sb_histogram_observe(&sb_metrics.latency_local,
                                 (double)(sb_clock_wall_us() - t0) / 1e6);
            answer_sender(p, SB_RELAY_DELIVERED);
            return;
        }
        /* Its connection has just ended. Without sessions that end is final; with them, the
         * message waits for the end to be settled: its session's mailbox, or gone. */
        if (r->cfg->resume_seconds <= 0) {
            answer_sender(p, SB_RELAY_UNKNOWN);
            return;
        }
    }
    if (keep_envelope(r, sender, m, p) != 0) {
        answer_sender(p, SB_RELAY_UNAVAILABLE);
        return;
    }
    if (behind) {
        hold(p, HOLD_PUBLISH); /* after the older ones to the same peer */
        kick(sender);
    } else {
        /* Not here, or a connection here still claiming the ID, which may well be held by a
         * peer on another node: the bus and the directory decide. */
        char channel[SB_ENV_CHANNEL_MAX];
        sb_str_t part = {p->env, p->env_len};
        sb_env_peer_channel(m->to, r->bus->sharded, channel);
        if (local != NULL) {
            p->via = relay_peer_ref(local);
            local->inbound++;
        }
        r->bus->ops->publish(r->bus, channel, &part, 1, relay_done, p);
    }
    relay_flow(sender);
}

int relay_deliver_envelope(peer_t *peer, const sb_env_t *env)
{
    char from[SB_ID_MAX + 1];
    memcpy(from, env->from.p, env->from.len);
    from[env->from.len] = '\0';
    return hand_over(peer, msg_type(env->kind), from, env->payload, env->mid) == 0;
}

int relay_deliver(void *ctx, void *sub, const char *msg, size_t len)
{
    peer_t *peer = sub;
    sb_env_t env;
    const char *err;
    if (sub == ctx) { /* the resend channel */
        resend_request(ctx, msg, len);
        return 0;
    }
    if (!peer->registered || peer->closed)
        return 0;
    if (sb_env_parse(msg, len, &env, &err) != 0) {
        /* Not from a node of this version: nobody to answer, so say it where operators look. */
        sb_metrics.bus_dropped++;
        sb_log(SB_LOG_WARN, "peer %s: dropped a bus message: %s", peer->id, err);
        return 0;
    }
    if (peer->catching_up && relay_catchup_take(peer, &env, msg, len))
        return 1;
    if (env.kind == SB_ENV_REPLACED) {
        relay_replaced(peer);
        return 0;
    }
    if (env.kind == SB_ENV_RESENT)
        return 0; /* a node answered after the wait ended */
    if (!sb_env_is_relay(env.kind))
        return relay_room_event(peer, &env);
    if (!sb_str_eq(&env.to, peer->id, 0))
        return 0; /* published on this peer's channel for another: not ours to show */
    if (!relay_deliver_envelope(peer, &env))
        return 0;
    uint64_t now = sb_clock_wall_us();
    sb_histogram_observe(&sb_metrics.latency_cluster,
                         now > env.sent_us ? (double)(now - env.sent_us) / 1e6 : 0);
    return 1;
}
