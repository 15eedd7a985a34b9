/* A Redis Cluster on the event loop: its slot map, connections to every master, and commands
 * routed to the master of their slot, following MOVED and ASK.
 *
 * The slot map is a table of 16384 master indexes, read from CLUSTER SHARDS (proto/shards.h) on
 * a connection of its own ("map"), which tries the URL's seeds and then every master it has
 * seen, in turn, until one answers. A master keeps its index while it serves slots; when a new
 * map leaves it none, its connections are told down to their owner and freed. A command is
 * copied before it is sent, so that a MOVED (the slot has a new master: the table learns it at
 * once, and the whole map is read again) or an ASK (the slot is migrating: this one command goes
 * to the importing master, after ASKING) can send it again. */
#include "cluster/rcluster.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/pool.h"
#include "resp.h"
#include "shards.h"
#include "slot.h"

/* How many times one command follows MOVED or ASK before its caller hears the last answer. */
#define HOPS_MAX 5
/* The map is read again this often while all is well, and every TICK seconds while a slot has
 * no master or a master's connection is down (a failover under way). */
#define MAP_PERIOD 10.0
#define TICK 0.25
/* Requests this large or smaller (a 2 KB message and its channel) come from a pool. */
#define REQ_BLOCK 2560

typedef struct master master_t;
typedef struct req req_t;

/* What a master's connection of one role reports back with: who it is. */
typedef struct {
    sb_rcluster_t *c;
    master_t *m;
    int role;
} link_t;

struct master {
    int index;
    sb_redis_url_t url; /* this master's host and port; the cluster URL's credentials and TLS */
    sb_redis_t *conn[SB_RCLUSTER_ROLES_MAX];
    link_t link[SB_RCLUSTER_ROLES_MAX];
    req_t *parked[SB_RCLUSTER_ROLES_MAX];   /* redirected here, waiting for the connection */
    double up_since[SB_RCLUSTER_ROLES_MAX]; /* when each connection became ready, 0 while not */
    uint32_t sent[SB_RCLUSTER_ROLES_MAX];   /* requests sent on each connection, */
    uint32_t
        answered[SB_RCLUSTER_ROLES_MAX]; /* and the last of them answered (they come in order) */
    int slots;                           /* how many slots it serves in the current map */
    int first_slot;                      /* one of them, or -1 */
};

enum { K_COMMAND, K_PUBLISH, K_EVAL };

/* A slot whose master changed (MOVED, or a new map) while requests sent to its old master may
 * still be on their way: each will come back MOVED and be sent on, so new requests for the slot
 * wait, in order, until every request sent to the old master before the change is answered.
 * Then none overtakes an older one (messages from one sender to one peer stay in order). */
typedef struct settle {
    unsigned slot;
    master_t *from;
    uint32_t seq[SB_RCLUSTER_ROLES_MAX]; /* from's requests sent before the change */
    req_t *head, *tail;                  /* requests waiting, oldest first */
    struct settle *next;
} settle_t;

/* A command on its way, kept until answered so that it can be sent again elsewhere. */
struct req {
    sb_rcluster_t *c;
    int kind, role;
    const sb_redis_script_t *script;
    int nkeys;
    sb_redis_reply_fn cb;
    void *arg;
    int hops;
    int ask;          /* the next send goes after ASKING */
    double parked_at; /* when it started waiting for a connection */
    req_t *next;      /* in its master's parked list */
    master_t *from;   /* where it was sent last */
    uint32_t seq;     /* its number among those sent there */
    int pooled;       /* from the cluster's pool of blocks (else malloc) */
    int argc;
    const char **argv; /* argc pointers into the copies after the struct, each NUL-terminated */
    size_t *lens;
};

struct sb_rcluster {
    struct event_base *base;
    const sb_redis_url_t *url;
    sb_rcluster_opts_t o;
    master_t *masters[SB_RCLUSTER_MASTERS_MAX];
    int16_t table[SB_SLOTS]; /* slot -> master index, or -1 */
    int uncovered;           /* slots with no master in the table */
    sb_redis_t *map;
    sb_redis_url_t map_url; /* where the map connection goes now */
    int map_next;           /* which address it tries after this one */
    int map_in_flight;      /* a map request waits for its answer */
    int map_again;          /* a refresh was asked for meanwhile */
    int use_slots;          /* the server has no CLUSTER SHARDS: ask CLUSTER SLOTS */
    double map_read;        /* when the map was last read */
    struct event *tick;
    sb_pool_t reqs;      /* blocks for requests of up to REQ_BLOCK bytes: most messages */
    settle_t *settling;  /* slots whose old master still has requests to answer */
    unsigned takeovers;  /* masters that started serving slots (sb_rcluster_takeovers) */
    char map_error[400]; /* why the last map could not be read, for ready() */
};

static double now(const sb_rcluster_t *c) { return sb_loop_now(c->base); }

static void ask_map(sb_rcluster_t *c);

/* --- requests --- */

/* A request holding copies of argv[0, argc) and, when parts is not NULL, one more argument
 * joined from nparts parts. */
static req_t *req_new(sb_rcluster_t *c, int kind, int role, int argc, const char *const *argv,
                      const size_t *lens, const sb_str_t *parts, size_t nparts)
{
    int total = argc + (parts != NULL);
    size_t last = 0;
    for (size_t i = 0; i < nparts; i++)
        last += parts[i].len;
    size_t bytes = sizeof(req_t) + (size_t)total * (sizeof(char *) + sizeof(size_t)) + last + 1;
    for (int i = 0; i < argc; i++)
        bytes += lens[i] + 1;
    int pooled = bytes <= REQ_BLOCK;
    req_t *q = pooled ? sb_pool_get(&c->reqs) : malloc(bytes);
    if (q == NULL)
        return NULL;
    *q = (req_t){.c = c, .kind = kind, .role = role, .argc = total, .pooled = pooled};
    q->argv = (const char **)(q + 1);
    q->lens = (size_t *)(q->argv + total);
    char *copy = (char *)(q->lens + total);
    for (int i = 0; i < total; i++) {
        q->argv[i] = copy;
        if (i < argc) {
            memcpy(copy, argv[i], lens[i]);
            q->lens[i] = lens[i];
        } else {
            q->lens[i] = 0;
            for (size_t k = 0; k < nparts; k++) {
                memcpy(copy + q->lens[i], parts[k].p, parts[k].len);
                q->lens[i] += parts[k].len;
            }
        }
        copy[q->lens[i]] = '\0';
        copy += q->lens[i] + 1;
    }
    return q;
}

static void req_free(req_t *q)
{
    if (q != NULL && q->pooled)
        sb_pool_put(&q->c->reqs, q);
    else
        free(q);
}

static void on_reply(void *arg, const sb_redis_reply_t *reply);
static void check_settling(sb_rcluster_t *c, const master_t *gone);

/* Sends q to master m, or parks it there until m's connection is ready. Returns 0, or -1 when
 * it could not be queued (q untouched). */
static int send_req(req_t *q, master_t *m)
{
    sb_redis_t *r = m->conn[q->role];
    q->from = m;
    if (sb_redis_state(r) != SB_REDIS_READY) {
        q->parked_at = now(q->c);
        q->next = m->parked[q->role];
        m->parked[q->role] = q;
        return 0;
    }
    if (q->ask) {
        const char *asking = "ASKING";
        size_t len = 6;
        if (sb_redis_command(r, 1, &asking, &len, NULL, NULL) != 0)
            return -1;
    }
    int rc;
    switch (q->kind) {
    case K_PUBLISH: {
        sb_str_t msg = {q->argv[1], q->lens[1]};
        rc = sb_redis_publish(r, q->argv[0], &msg, 1, on_reply, q);
        break;
    }
    case K_EVAL:
        rc = sb_redis_eval(r, q->script, q->nkeys, q->argv, q->argc, on_reply, q);
        break;
    default:
        rc = sb_redis_command(r, q->argc, q->argv, q->lens, on_reply, q);
        break;
    }
    if (rc == 0)
        q->seq = ++m->sent[q->role];
    return rc;
}

/* Gives q its answer (NULL: none) and frees it. */
static void req_done(req_t *q, const sb_redis_reply_t *reply)
{
    if (q->cb)
        q->cb(q->arg, reply);
    req_free(q);
}

/* Answers every request parked at m for role with NULL (its connection is not coming). */
static void fail_parked(master_t *m, int role)
{
    req_t *q = m->parked[role];
    m->parked[role] = NULL;
    while (q != NULL) {
        req_t *next = q->next;
        req_done(q, NULL);
        q = next;
    }
}

/* Sends what waited at m for role, now that its connection is ready (oldest first). */
static void send_parked(master_t *m, int role)
{
    req_t *q = m->parked[role], *rev = NULL;
    m->parked[role] = NULL;
    while (q != NULL) { /* the list is newest first */
        req_t *next = q->next;
        q->next = rev;
        rev = q;
        q = next;
    }
    while (rev != NULL) {
        req_t *next = rev->next;
        if (sb_redis_state(m->conn[role]) != SB_REDIS_READY || send_req(rev, m) != 0)
            req_done(rev, NULL);
        rev = next;
    }
}

/* --- masters --- */

static void on_link_state(void *ctx, sb_redis_t *r, int up, const char *why);
static void on_link_failed(void *ctx, sb_redis_t *r, const char *why);
static void on_link_message(void *ctx, const char *ch, size_t chlen, const char *msg, size_t len);
static void on_link_subscribed(void *ctx, const char *ch, size_t chlen);
static void on_link_unsubscribed(void *ctx, const char *ch, size_t chlen);
static void on_link_push_error(void *ctx, sb_redis_t *r, const char *err, size_t len);

static master_t *find_master(sb_rcluster_t *c, const char *host, int port)
{
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++) {
        master_t *m = c->masters[i];
        if (m != NULL && m->url.port == port && strcmp(m->url.host, host) == 0)
            return m;
    }
    return NULL;
}

/* The master at host:port, made (its connections starting) when it is new; NULL when out of
 * memory or when SB_RCLUSTER_MASTERS_MAX are followed already. */
static master_t *get_master(sb_rcluster_t *c, const char *host, int port)
{
    master_t *m = find_master(c, host, port);
    if (m != NULL)
        return m;
    int i = 0;
    while (i < SB_RCLUSTER_MASTERS_MAX && c->masters[i] != NULL)
        i++;
    if (i == SB_RCLUSTER_MASTERS_MAX || strlen(host) >= sizeof(m->url.host) ||
        (m = calloc(1, sizeof(*m))) == NULL)
        return NULL;
    m->index = i;
    m->first_slot = -1;
    m->url = *c->url;
    m->url.cluster = 0;
    snprintf(m->url.host, sizeof(m->url.host), "%s", host);
    m->url.port = port;
    for (size_t role = 0; role < c->o.nroles; role++) {
        sb_redis_opts_t o = c->o.roles[role];
        m->link[role] = (link_t){c, m, (int)role};
        o.on_state = on_link_state;
        o.on_failed = on_link_failed;
        o.on_message = o.on_message ? on_link_message : NULL;
        o.on_subscribed = o.on_subscribed ? on_link_subscribed : NULL;
        o.on_unsubscribed = o.on_unsubscribed ? on_link_unsubscribed : NULL;
        o.on_push_error = on_link_push_error;
        o.ctx = &m->link[role];
        if ((m->conn[role] = sb_redis_new(c->base, &m->url, &o)) == NULL) {
            for (size_t k = 0; k < role; k++)
                sb_redis_free(m->conn[k]);
            free(m);
            return NULL;
        }
    }
    c->masters[i] = m;
    for (size_t role = 0; role < c->o.nroles; role++)
        sb_redis_start(m->conn[role]);
    sb_log(SB_LOG_DEBUG, "redis cluster: following master %s:%d", host, port);
    return m;
}

/* Stops following m: its owner hears its ready connections go down, its requests fail. */
static void drop_master(sb_rcluster_t *c, master_t *m)
{
    c->masters[m->index] = NULL;
    sb_log(SB_LOG_INFO, "redis cluster: %s:%d serves no slot now", m->url.host, m->url.port);
    for (size_t role = 0; role < c->o.nroles; role++) {
        const sb_redis_opts_t *o = &c->o.roles[role];
        fail_parked(m, (int)role);
        if (sb_redis_state(m->conn[role]) == SB_REDIS_READY && o->on_state)
            o->on_state(o->ctx, m->conn[role], 0, "its master serves no slot now");
        sb_redis_free(m->conn[role]); /* fails its pending commands */
    }
    check_settling(c, m); /* nothing more comes from it */
    free(m);
}

static void on_link_state(void *ctx, sb_redis_t *r, int up, const char *why)
{
    link_t *l = ctx;
    const sb_redis_opts_t *o = &l->c->o.roles[l->role];
    l->m->up_since[l->role] = up ? now(l->c) : 0;
    if (up)
        send_parked(l->m, l->role);
    else
        ask_map(l->c); /* a master lost: perhaps a failover */
    if (o->on_state)
        o->on_state(o->ctx, r, up, why);
}

static void on_link_failed(void *ctx, sb_redis_t *r, const char *why)
{
    link_t *l = ctx;
    (void)r;
    (void)why;
    fail_parked(l->m, l->role);
    ask_map(l->c);
}

static void on_link_message(void *ctx, const char *ch, size_t chlen, const char *msg, size_t len)
{
    link_t *l = ctx;
    const sb_redis_opts_t *o = &l->c->o.roles[l->role];
    o->on_message(o->ctx, ch, chlen, msg, len);
}

static void on_link_subscribed(void *ctx, const char *ch, size_t chlen)
{
    link_t *l = ctx;
    const sb_redis_opts_t *o = &l->c->o.roles[l->role];
    o->on_subscribed(o->ctx, ch, chlen);
}

static void on_link_unsubscribed(void *ctx, const char *ch, size_t chlen)
{
    link_t *l = ctx;
    const sb_redis_opts_t *o = &l->c->o.roles[l->role];
    o->on_unsubscribed(o->ctx, ch, chlen);
}

static void on_link_push_error(void *ctx, sb_redis_t *r, const char *err, size_t len)
{
    link_t *l = ctx;
    const sb_redis_opts_t *o = &l->c->o.roles[l->role];
    if ((len >= 6 && memcmp(err, "MOVED ", 6) == 0) ||
        (len >= 11 && memcmp(err, "CLUSTERDOWN", 11) == 0))
        ask_map(l->c);
    if (o->on_push_error)
        o->on_push_error(o->ctx, r, err, len);
}

/* --- redirects --- */

/* --- slots changing master --- */

static settle_t *find_settle(const sb_rcluster_t *c, unsigned slot)
{
    for (settle_t *e = c->settling; e != NULL; e = e->next)
        if (e->slot == slot)
            return e;
    return NULL;
}

/* Whether every request sent to e->from before the change is answered. */
static int settled(const sb_rcluster_t *c, const settle_t *e)
{
    for (size_t role = 0; role < c->o.nroles; role++)
        if ((int32_t)(e->from->answered[role] - e->seq[role]) < 0)
            return 0;
    return 1;
}

/* The slot's requests that waited go to its master now, oldest first. */
static void release_settle(sb_rcluster_t *c, settle_t *e)
{
    req_t *q = e->head;
    int i = c->table[e->slot];
    master_t *m = i >= 0 ? c->masters[i] : NULL;
    free(e);
    while (q != NULL) {
        req_t *next = q->next;
        if (m == NULL || send_req(q, m) != 0)
            req_done(q, NULL);
        q = next;
    }
}

/* Releases the slots that have settled, or whose old master is gone (from: NULL for none). */
static void check_settling(sb_rcluster_t *c, const master_t *gone)
{
    settle_t **p = &c->settling;
    while (*p != NULL) {
        settle_t *e = *p;
        if (e->from != gone && !settled(c, e)) {
            p = &e->next;
            continue;
        }
        *p = e->next;
        release_settle(c, e); /* may add entries: start over */
        p = &c->settling;
    }
}

/* slot's master is now index i: the table says so, and when its old master still has requests
 * on their way, the slot settles first. */
static void set_owner(sb_rcluster_t *c, unsigned slot, int16_t i)
{
    int16_t old = c->table[slot];
    master_t *from = old >= 0 ? c->masters[old] : NULL;
    c->uncovered += (i < 0) - (old < 0);
    c->table[slot] = i;
    if (from == NULL || old == i || find_settle(c, slot) != NULL)
        return;
    int busy = 0;
    for (size_t role = 0; role < c->o.nroles; role++)
        busy |= from->answered[role] != from->sent[role];
    settle_t *e = busy ? calloc(1, sizeof(*e)) : NULL;
    if (e == NULL)
        return; /* nothing on its way (or out of memory: no wait) */
    e->slot = slot;
    e->from = from;
    memcpy(e->seq, from->sent, sizeof(e->seq));
    e->next = c->settling;
    c->settling = e;
}

static void on_reply(void *arg, const sb_redis_reply_t *reply)
{
    req_t *q = arg;
    if ((int32_t)(q->seq - q->from->answered[q->role]) > 0)
        q->from->answered[q->role] = q->seq;
    sb_rcluster_t *c = q->c;
    sb_shards_redirect_t to;
    if (reply != NULL && reply->type == SB_REDIS_ERROR) {
        if (q->hops < HOPS_MAX && sb_shards_redirect(reply->str, reply->len, &to) == 0) {
            /* No endpoint known to Redis: the address the answer came from. */
            master_t *m = get_master(c, to.host[0] ? to.host : q->from->url.host, to.port);
            if (m != NULL && !to.ask) {
                /* The slot's new master, known at once; the rest of the map is read again. */
                set_owner(c, to.slot, (int16_t)m->index);
                ask_map(c);
            }
            q->hops++;
            q->ask = to.ask;
            if (m != NULL && send_req(q, m) == 0) {
                if (c->settling != NULL)
                    check_settling(c, NULL);
                return;
            }
            reply = NULL;
        } else if (strncmp(reply->str, "CLUSTERDOWN", 11) == 0) {
            ask_map(c);
        }
    }
    req_done(q, reply);
    if (c->settling != NULL)
        check_settling(c, NULL);
}

/* --- the slot map --- */

static size_t count_nodes(const sb_redis_reply_t *r)
{
    size_t n = 1;
    for (size_t i = 0; r->type == SB_REDIS_ARRAY && i < r->elements; i++)
        n += count_nodes(r->element[i]);
    return n;
}

/* Writes r and its elements in pre-order from nodes[i] (as proto/resp.h lays a reply out);
 * returns the index after them. */
static size_t fill_nodes(const sb_redis_reply_t *r, sb_resp_t *nodes, size_t i)
{
    static const sb_resp_type_t types[] = {
        [SB_REDIS_STRING] = SB_RESP_BULK, [SB_REDIS_STATUS] = SB_RESP_STATUS,
        [SB_REDIS_ERROR] = SB_RESP_ERROR, [SB_REDIS_INTEGER] = SB_RESP_INTEGER,
        [SB_REDIS_NIL] = SB_RESP_NIL,     [SB_REDIS_ARRAY] = SB_RESP_ARRAY,
    };
    sb_resp_t *n = &nodes[i];
    *n = (sb_resp_t){.type = types[r->type]};
    if (r->type == SB_REDIS_STRING || r->type == SB_REDIS_STATUS || r->type == SB_REDIS_ERROR)
        n->str = (sb_str_t){r->str, r->len};
    else if (r->type == SB_REDIS_INTEGER)
        n->integer = r->integer;
    else if (r->type == SB_REDIS_ARRAY)
        n->count = r->elements;
    size_t j = i + 1;
    for (size_t k = 0; r->type == SB_REDIS_ARRAY && k < r->elements; k++)
        j = fill_nodes(r->element[k], nodes, j);
    n->next = j;
    return j;
}

/* Takes a new map: masters[0, n) and table (indexes into them). */
static void apply_map(sb_rcluster_t *c, const int16_t *table, const sb_shards_master_t *found,
                      int n)
{
    int16_t index[SB_RCLUSTER_MASTERS_MAX];
    int serves[SB_RCLUSTER_MASTERS_MAX] = {0};
    for (int i = 0; i < n; i++) {
        int port = c->url->tls && found[i].tls_port ? found[i].tls_port : found[i].port;
        /* No address of its own: the one this reply came from. */
        const char *host = found[i].host[0] ? found[i].host : c->map_url.host;
        master_t *m = port > 0 ? get_master(c, host, port) : NULL;
        index[i] = m ? (int16_t)m->index : -1;
    }
    int changed = 0;
    for (int s = 0; s < SB_SLOTS; s++) {
        int16_t v = table[s] >= 0 ? index[table[s]] : -1;
        if (v != c->table[s]) {
            changed = 1;
            set_owner(c, (unsigned)s, v);
        }
        if (v >= 0 && serves[v]++ == 0)
            c->masters[v]->first_slot = s;
    }
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++) {
        master_t *m = c->masters[i];
        if (m == NULL)
            continue;
        if (m->slots == 0 && serves[i] > 0)
            c->takeovers++; /* serving slots it did not: a new master (or the first map) */
        m->slots = serves[i];
        if (serves[i] == 0) {
            drop_master(c, m);
            changed = 1;
        }
    }
    if (c->uncovered > 0)
        sb_log(SB_LOG_WARN, "redis cluster: %d slots have no master reachable", c->uncovered);
    if (changed && c->o.on_map)
        c->o.on_map(c->o.ctx);
}

static void on_map_reply(void *arg, const sb_redis_reply_t *reply)
{
    sb_rcluster_t *c = arg;
    c->map_in_flight = 0;
    if (reply == NULL)
        return; /* the map connection was lost: it asks again once back */
    if (reply->type == SB_REDIS_ERROR && !c->use_slots) {
        sb_log(SB_LOG_INFO, "redis cluster: CLUSTER SHARDS refused (%.*s): reading CLUSTER SLOTS",
               (int)reply->len, reply->str);
        c->use_slots = 1;
        ask_map(c);
        return;
    }
    size_t used = count_nodes(reply);
    sb_resp_t *nodes = malloc(used * sizeof(*nodes));
    int16_t *table = malloc(SB_SLOTS * sizeof(*table));
    sb_shards_master_t *found = malloc(SB_RCLUSTER_MASTERS_MAX * sizeof(*found));
    const char *err = "out of memory";
    int n = -1;
    if (nodes && table && found) {
        fill_nodes(reply, nodes, 0);
        n = c->use_slots
                ? sb_shards_read_slots(nodes, used, table, found, SB_RCLUSTER_MASTERS_MAX, &err)
                : sb_shards_read(nodes, used, table, found, SB_RCLUSTER_MASTERS_MAX, &err);
    }
    if (n >= 0) {
        c->map_read = now(c);
        c->map_error[0] = '\0';
        apply_map(c, table, found, n);
    } else {
        snprintf(c->map_error, sizeof(c->map_error), "cannot read the slot map from %s:%d: %s",
                 c->map_url.host, c->map_url.port, err);
        sb_log(SB_LOG_ERROR, "redis cluster: %s", c->map_error);
    }
    free(nodes);
    free(table);
    free(found);
    if (c->map_again) {
        c->map_again = 0;
        ask_map(c);
    }
}

static void ask_map(sb_rcluster_t *c)
{
    if (c->map_in_flight) {
        c->map_again = 1;
        return;
    }
    if (sb_redis_state(c->map) != SB_REDIS_READY)
        return; /* asked once it connects */
    const char *argv[2] = {"CLUSTER", c->use_slots ? "SLOTS" : "SHARDS"};
    size_t lens[2] = {7, strlen(argv[1])};
    if (sb_redis_command(c->map, 2, argv, lens, on_map_reply, c) == 0)
        c->map_in_flight = 1;
}

/* The map connection goes to the next address: the URL's seeds, then each master followed. */
static void next_map_address(sb_rcluster_t *c)
{
    int total = c->url->nseeds + SB_RCLUSTER_MASTERS_MAX;
    for (int tries = 0; tries < total; tries++) {
        int k = c->map_next++ % total;
        if (k < c->url->nseeds) {
            snprintf(c->map_url.host, sizeof(c->map_url.host), "%s", c->url->seeds[k].host);
            c->map_url.port = c->url->seeds[k].port;
            return;
        }
        master_t *m = c->masters[k - c->url->nseeds];
        if (m != NULL) {
            snprintf(c->map_url.host, sizeof(c->map_url.host), "%s", m->url.host);
            c->map_url.port = m->url.port;
            return;
        }
    }
}

static void on_map_state(void *ctx, sb_redis_t *r, int up, const char *why)
{
    sb_rcluster_t *c = ctx;
    (void)r;
    (void)why;
    c->map_in_flight = 0; /* a lost connection failed it already */
    if (up)
        ask_map(c);
    else
        next_map_address(c);
}

static void on_map_failed(void *ctx, sb_redis_t *r, const char *why)
{
    sb_rcluster_t *c = ctx;
    (void)r;
    snprintf(c->map_error, sizeof(c->map_error), "no answer from %s:%d for the slot map: %.60s",
             c->map_url.host, c->map_url.port, why);
    next_map_address(c);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    sb_rcluster_t *c = arg;
    char why[8];
    (void)fd;
    (void)what;
    if (!sb_rcluster_ready(c, why, sizeof(why)) || now(c) - c->map_read >= MAP_PERIOD)
        ask_map(c);
    /* Redirected requests wait for a connection no longer than it takes to make one. */
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++) {
        master_t *m = c->masters[i];
        for (size_t role = 0; m != NULL && role < c->o.nroles; role++) {
            req_t *q = m->parked[role];
            if (q != NULL && now(c) - q->parked_at > c->o.roles[role].connect_timeout + 1)
                fail_parked(m, (int)role);
        }
    }
}

/* --- the interface --- */

sb_rcluster_t *sb_rcluster_new(struct event_base *base, const sb_redis_url_t *url,
                               const sb_rcluster_opts_t *opts)
{
    sb_rcluster_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->base = base;
    c->url = url;
    c->o = *opts;
    c->reqs = (sb_pool_t)SB_POOL_INIT(REQ_BLOCK, 1024);
    for (int s = 0; s < SB_SLOTS; s++)
        c->table[s] = -1;
    c->uncovered = SB_SLOTS;
    snprintf(c->map_error, sizeof(c->map_error), "the slot map is not read yet");
    c->map_url = *url;
    c->map_url.cluster = 0;
    next_map_address(c);
    sb_redis_opts_t mo = c->o.roles[0];
    mo.name = "map";
    mo.node_id = opts->node_id;
    mo.pubsub = 0;
    mo.sharded = 0;
    mo.any_role = 1; /* a replica knows the map as well as its master */
    mo.scripts = NULL;
    mo.nscripts = 0;
    mo.on_state = on_map_state;
    mo.on_failed = on_map_failed;
    mo.on_message = NULL;
    mo.on_subscribed = NULL;
    mo.on_unsubscribed = NULL;
    mo.on_push_error = NULL;
    mo.ctx = c;
    c->map = sb_redis_new(base, &c->map_url, &mo);
    c->tick = event_new(base, -1, EV_PERSIST, on_tick, c);
    struct timeval tv = sb_loop_tv(TICK);
    if (c->map == NULL || c->tick == NULL || event_priority_set(c->tick, mo.priority) != 0 ||
        event_add(c->tick, &tv) != 0) {
        sb_rcluster_free(c);
        return NULL;
    }
    sb_redis_start(c->map);
    return c;
}

void sb_rcluster_free(sb_rcluster_t *c)
{
    if (c == NULL)
        return;
    if (c->tick)
        event_free(c->tick);
    c->o.on_map = NULL;
    while (c->settling != NULL) {
        settle_t *e = c->settling;
        c->settling = e->next;
        for (req_t *q = e->head, *next; q != NULL; q = next) {
            next = q->next;
            req_done(q, NULL);
        }
        free(e);
    }
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++) {
        master_t *m = c->masters[i];
        if (m == NULL)
            continue;
        c->masters[i] = NULL;
        for (size_t role = 0; role < c->o.nroles; role++) {
            fail_parked(m, (int)role);
            sb_redis_free(m->conn[role]);
        }
        free(m);
    }
    sb_redis_free(c->map);
    sb_pool_drain(&c->reqs);
    free(c);
}

void sb_rcluster_refresh(sb_rcluster_t *c) { ask_map(c); }

int sb_rcluster_master_of(const sb_rcluster_t *c, unsigned slot)
{
    return slot < SB_SLOTS ? c->table[slot] : -1;
}

sb_redis_t *sb_rcluster_conn(const sb_rcluster_t *c, int i, int role)
{
    if (i < 0 || i >= SB_RCLUSTER_MASTERS_MAX || c->masters[i] == NULL || role < 0 ||
        (size_t)role >= c->o.nroles)
        return NULL;
    return c->masters[i]->conn[role];
}

int sb_rcluster_master_slot(const sb_rcluster_t *c, int i)
{
    if (i < 0 || i >= SB_RCLUSTER_MASTERS_MAX || c->masters[i] == NULL)
        return -1;
    return c->masters[i]->first_slot;
}

int sb_rcluster_ready(const sb_rcluster_t *c, char *why, size_t len)
{
    if (c->uncovered > 0) {
        if (c->map_error[0])
            snprintf(why, len, "%s", c->map_error);
        else
            snprintf(why, len, "%d of the cluster's slots have no master", c->uncovered);
        return 0;
    }
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++) {
        const master_t *m = c->masters[i];
        for (size_t role = 0; m != NULL && role < c->o.nroles; role++)
            if (sb_redis_state(m->conn[role]) != SB_REDIS_READY) {
                snprintf(why, len, "not connected to the master at %s:%d", m->url.host,
                         m->url.port);
                return 0;
            }
    }
    return 1;
}

unsigned sb_rcluster_takeovers(const sb_rcluster_t *c) { return c->takeovers; }

double sb_rcluster_up_for(const sb_rcluster_t *c, unsigned slot, int role)
{
    int i = sb_rcluster_master_of(c, slot);
    const master_t *m = i >= 0 ? c->masters[i] : NULL;
    if (m == NULL || role < 0 || (size_t)role >= c->o.nroles || m->up_since[role] == 0)
        return 0;
    return now(c) - m->up_since[role];
}

size_t sb_rcluster_in_flight(const sb_rcluster_t *c, int role)
{
    size_t n = 0;
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++)
        if (c->masters[i] != NULL) {
            n += sb_redis_in_flight(c->masters[i]->conn[role]);
            for (const req_t *q = c->masters[i]->parked[role]; q != NULL; q = q->next)
                n++;
        }
    return n;
}

/* Sends q to slot's master when its connection is ready; frees q otherwise. */
static int start_req(sb_rcluster_t *c, req_t *q, unsigned slot, sb_redis_reply_fn cb, void *arg)
{
    int i = sb_rcluster_master_of(c, slot);
    master_t *m = i >= 0 ? c->masters[i] : NULL;
    if (q == NULL || m == NULL || sb_redis_state(m->conn[q->role]) != SB_REDIS_READY) {
        req_free(q);
        return -1;
    }
    q->cb = cb;
    q->arg = arg;
    settle_t *e = c->settling != NULL ? find_settle(c, slot) : NULL;
    if (e != NULL) { /* behind the requests on their way to the slot's old master */
        q->next = NULL;
        if (e->tail != NULL)
            e->tail->next = q;
        else
            e->head = q;
        e->tail = q;
        return 0;
    }
    if (send_req(q, m) != 0) {
        req_free(q);
        return -1;
    }
    return 0;
}

int sb_rcluster_command(sb_rcluster_t *c, int role, unsigned slot, int argc, const char **argv,
                        const size_t *lens, sb_redis_reply_fn cb, void *arg)
{
    return start_req(c, req_new(c, K_COMMAND, role, argc, argv, lens, NULL, 0), slot, cb, arg);
}

int sb_rcluster_publish(sb_rcluster_t *c, int role, unsigned slot, const char *channel,
                        const sb_str_t *parts, size_t nparts, sb_redis_reply_fn cb, void *arg)
{
    size_t len = strlen(channel);
    return start_req(c, req_new(c, K_PUBLISH, role, 1, &channel, &len, parts, nparts), slot, cb,
                     arg);
}

int sb_rcluster_eval(sb_rcluster_t *c, int role, unsigned slot, const sb_redis_script_t *s,
                     int nkeys, const char *const *args, int nargs, sb_redis_reply_fn cb, void *arg)
{
    size_t lens[16];
    if (nargs > 16)
        return -1;
    for (int i = 0; i < nargs; i++)
        lens[i] = strlen(args[i]);
    req_t *q = req_new(c, K_EVAL, role, nargs, args, lens, NULL, 0);
    if (q != NULL) {
        q->script = s;
        q->nkeys = nkeys;
    }
    return start_req(c, q, slot, cb, arg);
}
