/* One connection to Redis (RESP2) on the event loop: pipelined commands or pub/sub, reconnecting.
 *
 * The connection is a stream (base/stream.h) whose bytes go through hiredis's reply reader; we
 * keep the queue of callbacks ourselves. That sidesteps hiredis 0.14's async pub/sub, whose
 * UNSUBSCRIBE handling is known to misbehave, and keeps timeouts and reconnects in one place.
 * For rediss:// the stream is over libevent's OpenSSL bufferevent, verifying the server's
 * certificate and host name with the client context sb_redis_tls_init made. */
#include "cluster/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/pool.h"
#include "base/resolve.h"
#include "base/stream.h"
#include "base/metrics.h"

#define REPLY_CLASSES 5

typedef struct pending {
    sb_redis_reply_fn cb;
    void *arg;
    double sent;
    struct pending *next;
} pending_t;

struct sb_redis {
    struct event_base *base;
    const sb_redis_url_t *url;
    sb_redis_opts_t o;
    sb_redis_state_t state;
    sb_streams_t *streams;    /* its stream's writes go out at the end of the loop turn */
    sb_stream_t *stream;      /* the connection, once connected */
    struct bufferevent *tls;  /* rediss://: the TLS bufferevent while it connects */
    struct event *connecting; /* redis://: waits for the socket to connect */
    evutil_socket_t fd;       /* redis://: the socket while it connects, else -1 */
    redisReader *reader;
    pending_t *head, *tail; /* replies arrive in the order commands were sent */
    int handshake_left;     /* AUTH/SELECT/SETNAME replies still due before READY */
    struct event *timer;    /* connect deadline while CONNECTING, reconnect delay while CLOSED */
    struct event *watchdog; /* checks for late replies while READY */
    int attempt;            /* failed connects in a row, for the backoff */
    int dispatching;        /* inside reply callbacks: a drop must wait */
    char drop_why[128];     /* a drop requested during dispatching */
    int ever_up;
    sb_metrics_redis_t *metrics; /* this connection's figures, NULL when no slot was left */
    size_t in_flight;            /* commands in the queue of callbacks */
    sb_resolve_t *resolving;     /* the host name's lookup, while CONNECTING */
    sb_pool_t pending_pool;      /* pending_t blocks */
    sb_pool_t reply_pools[REPLY_CLASSES]; /* reply blocks, by size class */
};

static double now(const sb_redis_t *r) { return sb_loop_now(r->base); }

/* The size classes of reply blocks (the block's pool, the reply, then its string or elements):
 * a pub/sub message of a 2 KB payload fits the largest; longer ones come from malloc. */
static const size_t reply_class_size[REPLY_CLASSES] = {128, 256, 512, 1024, 4096};
#define REPLY_KEEP 64 /* free blocks kept per class */

/* The client context of every rediss:// connection, made once (sb_redis_tls_init). */
static SSL_CTX *client_tls;

int sb_redis_tls_init(const char *ca_file, char *err, size_t errlen)
{
    if (client_tls != NULL)
        return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context for Redis: out of memory");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Redis going away without close_notify is the end of the connection like any other. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    int ok = ca_file != NULL && ca_file[0] != '\0'
                 ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        unsigned long e = ERR_peek_error();
        snprintf(err, errlen, "cannot load the CAs for rediss:// from %s: %s",
                 ca_file != NULL && ca_file[0] != '\0' ? ca_file : "the system's store",
                 e ? ERR_reason_error_string(e) : "unknown error");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return -1;
    }
    client_tls = ctx;
    return 0;
}

void sb_redis_tls_free(void)
{
    SSL_CTX_free(client_tls);
    client_tls = NULL;
}

/* An SSL for url: SNI (for a name), and the name or address the server's certificate must
 * carry. NULL when TLS is not set up or out of memory. */
static SSL *tls_client(const sb_redis_url_t *url)
{
    unsigned char addr[16];
    SSL *ssl = client_tls ? SSL_new(client_tls) : NULL;
    if (ssl == NULL)
        return NULL;
    int ip = inet_pton(AF_INET, url->host, addr) == 1 || inet_pton(AF_INET6, url->host, addr) == 1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url->host) != 1
           : SSL_set_tlsext_host_name(ssl, url->host) != 1 || SSL_set1_host(ssl, url->host) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

/* Why a TLS connection failed: the certificate check's verdict when it failed, else OpenSSL's
 * error e, else nothing (0: not a TLS failure). */
static int tls_why(SSL *ssl, unsigned long e, char *why, size_t len)
{
    long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK)
        snprintf(why, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    else if (e != 0 && ERR_reason_error_string(e) != NULL)
        snprintf(why, len, "TLS: %s", ERR_reason_error_string(e));
    else
        return 0;
    return 1;
}

static void connect_now(sb_redis_t *r);

/* Replies are built as our own sb_redis_reply_t by hiredis's reader: a string is allocated with
 * its reply, in one block, which comes from the connection's pool of its size class and says
 * which (NULL: malloc) just before the reply. */
typedef struct {
    sb_pool_t *pool;
    sb_redis_reply_t reply;
} reply_block_t;

static sb_redis_reply_t *new_reply(const redisReadTask *task, sb_redis_type_t type, size_t extra)
{
    sb_redis_t *r = task->privdata;
    size_t size = sizeof(reply_block_t) + extra;
    sb_pool_t *pool = NULL;
    for (size_t i = 0; r != NULL && i < REPLY_CLASSES && pool == NULL; i++)
        if (size <= reply_class_size[i])
            pool = &r->reply_pools[i];
    reply_block_t *block = pool ? sb_pool_get(pool) : malloc(size);
    if (block == NULL)
        return NULL;
    block->pool = pool;
    sb_redis_reply_t *reply = &block->reply;
    *reply = (sb_redis_reply_t){.type = type};
    if (task->parent != NULL) {
        sb_redis_reply_t *parent = task->parent->obj;
        parent->element[task->idx] = reply;
    }
    return reply;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    sb_redis_type_t type = task->type == REDIS_REPLY_ERROR    ? SB_REDIS_ERROR
                           : task->type == REDIS_REPLY_STATUS ? SB_REDIS_STATUS
                                                              : SB_REDIS_STRING;
    sb_redis_reply_t *reply = new_reply(task, type, len + 1);
    if (reply == NULL)
        return NULL;
    char *copy = (char *)(reply + 1);
    memcpy(copy, str, len);
    copy[len] = '\0';
    reply->str = copy;
    reply->len = len;
    return reply;
}

static void *create_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    sb_redis_reply_t *reply = new_reply(task, SB_REDIS_ARRAY, n * sizeof(sb_redis_reply_t *));
    if (reply == NULL)
        return NULL;
    reply->element = (sb_redis_reply_t **)(reply + 1);
    reply->elements = n;
    /* NULL until each element is made: a reply freed half-built frees what there is. */
    memset(reply->element, 0, n * sizeof(*reply->element));
    return reply;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    sb_redis_reply_t *reply = new_reply(task, SB_REDIS_INTEGER, 0);
    if (reply != NULL)
        reply->integer = value;
    return reply;
}

static void *create_nil(const redisReadTask *task) { return new_reply(task, SB_REDIS_NIL, 0); }

static void free_reply(void *obj)
{
    sb_redis_reply_t *reply = obj;
    if (reply == NULL)
        return;
    for (size_t i = 0; i < reply->elements; i++)
        free_reply(reply->element[i]);
    reply_block_t *block = (reply_block_t *)((char *)reply - offsetof(reply_block_t, reply));
    if (block->pool != NULL)
        sb_pool_put(block->pool, block);
    else
        free(block);
}

static redisReplyObjectFunctions reply_functions = {create_string, create_array, create_integer,
                                                    create_nil, free_reply};

/* Equal jitter: half the capped exponential delay, plus up to as much again at random. */
static double backoff(sb_redis_t *r)
{
    double d = 0.1;
    for (int i = 0; i < r->attempt && d < r->o.backoff_cap; i++)
        d *= 2;
    if (d > r->o.backoff_cap)
        d = r->o.backoff_cap;
    unsigned int rnd = 0;
    RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
    r->attempt++;
    return d / 2 + (d / 2) * ((double)rnd / 4294967295.0);
}

/* Takes the oldest command off the queue and gives its callback reply (NULL: lost). */
static void answer_oldest(sb_redis_t *r, const sb_redis_reply_t *reply)
{
    pending_t *p = r->head;
    r->head = p->next;
    if (r->head == NULL)
        r->tail = NULL;
    r->in_flight--;
    if (r->metrics)
        r->metrics->in_flight--;
    if (p->cb)
        p->cb(p->arg, reply);
    sb_pool_put(&r->pending_pool, p);
}

static void fail_pending(sb_redis_t *r)
{
    while (r->head)
        answer_oldest(r, NULL);
}

/* Closes the socket, whatever stage it is at. */
static void close_link(sb_redis_t *r)
{
    sb_stream_free(r->stream);
    r->stream = NULL;
    if (r->tls != NULL)
        bufferevent_free(r->tls);
    r->tls = NULL;
    if (r->connecting != NULL)
        event_free(r->connecting);
    r->connecting = NULL;
    if (r->fd >= 0)
        evutil_closesocket(r->fd);
    r->fd = -1;
}

/* Closes the connection, fails what was pending, and schedules the next attempt. */
static void drop(sb_redis_t *r, const char *why)
{
    if (r->dispatching) {
        if (r->drop_why[0] == '\0')
            snprintf(r->drop_why, sizeof(r->drop_why), "%.127s", why);
        return;
    }
    int was_ready = r->state == SB_REDIS_READY;
    if (r->resolving) {
        sb_resolve_cancel(r->resolving);
        r->resolving = NULL;
    }
    if (was_ready && r->metrics) {
        r->metrics->connected = 0;
        r->metrics->reconnects++;
    }
    close_link(r);
    if (r->reader) {
        redisReaderFree(r->reader);
        r->reader = NULL;
    }
    r->state = SB_REDIS_CLOSED;
    evtimer_del(r->watchdog);
    double delay = backoff(r);
    struct timeval tv = sb_loop_tv(delay);
    evtimer_add(r->timer, &tv);
    if (was_ready || r->attempt == 1)
        sb_log(SB_LOG_WARN, "redis %s: %s; reconnecting in %.2f s", r->o.name, why, delay);
    else
        sb_log(SB_LOG_DEBUG, "redis %s: %s; reconnecting in %.2f s", r->o.name, why, delay);
    fail_pending(r);
    if (was_ready && r->o.on_state)
        r->o.on_state(r->o.ctx, r, 0, why);
    else if (!was_ready && r->o.on_failed)
        r->o.on_failed(r->o.ctx, r, why);
}

void sb_redis_reset(sb_redis_t *r, const char *why)
{
    if (r->state != SB_REDIS_CLOSED)
        drop(r, why);
}

static void push(sb_redis_t *r, sb_redis_reply_fn cb, void *arg, pending_t *p)
{
    p->cb = cb;
    p->arg = arg;
    p->sent = now(r);
    p->next = NULL;
    if (r->tail)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
    r->in_flight++;
    if (r->metrics)
        r->metrics->in_flight++;
}

/* Writes a command; pushes its callback unless it is a pub/sub confirmation. */
/* Writes a RESP length line ("*3\r\n", "$7\r\n") into out; returns its length. */
static size_t resp_count(char *out, char tag, size_t n)
{
    char digits[24];
    size_t k = 0, len = 0;
    do
        digits[k++] = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    out[len++] = tag;
    while (k > 0)
        out[len++] = digits[--k];
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}

/* Parts of a command on their way into the stream. */
#define CHUNK_PARTS 48
typedef struct {
    sb_redis_t *r;
    sb_str_t parts[CHUNK_PARTS];
    char counts[CHUNK_PARTS][24]; /* count lines written for this chunk */
    size_t n, ncounts;
    int written; /* a chunk went into the stream already */
    int failed;
} chunk_t;

static int chunk_write(chunk_t *k)
{
    if (!k->failed && k->n > 0) {
        if (sb_stream_write(k->r->stream, k->parts, k->n) != 0)
            k->failed = 1;
        else
            k->written = 1;
    }
    k->n = k->ncounts = 0;
    return k->failed ? -1 : 0;
}

static void add_part(chunk_t *k, const char *p, size_t len)
{
    if (k->n == CHUNK_PARTS)
        chunk_write(k);
    k->parts[k->n++] = (sb_str_t){p, len};
}

static void add_count(chunk_t *k, char tag, size_t n)
{
    if (k->n == CHUNK_PARTS)
        chunk_write(k);
    char *line = k->counts[k->ncounts++];
    k->parts[k->n++] = (sb_str_t){line, resp_count(line, tag, n)};
}

/* Writes a command as RESP straight into the output buffer (no copy of it is made first): argc
 * arguments, and one more made of nlast parts when last is not NULL. Pushes its callback unless
 * it is a pub/sub confirmation. */
static int send_command(sb_redis_t *r, int argc, const char **argv, const size_t *lens,
                        const sb_str_t *last, size_t nlast, int expect_reply, sb_redis_reply_fn cb,
                        void *arg)
{
    /* The command goes out as parts (a count line, then each argument's length line, bytes and
     * CRLF), CHUNK_PARTS at a time; a chunk that cannot be queued after another was leaves the
     * connection with half a command, so it is dropped. */
    pending_t *p = expect_reply ? sb_pool_get(&r->pending_pool) : NULL;
    if (expect_reply && p == NULL)
        return -1;
    chunk_t k = {.r = r};
    size_t last_len = 0;
    for (size_t i = 0; i < nlast; i++)
        last_len += last[i].len;
    add_count(&k, '*', (size_t)argc + (last != NULL));
    for (int i = 0; i < argc; i++) {
        add_count(&k, '$', lens[i]);
        add_part(&k, argv[i], lens[i]);
        add_part(&k, "\r\n", 2);
    }
    if (last != NULL) {
        add_count(&k, '$', last_len);
        for (size_t i = 0; i < nlast; i++)
            add_part(&k, last[i].p, last[i].len);
        add_part(&k, "\r\n", 2);
    }
    if (chunk_write(&k) != 0) {
        sb_pool_put(&r->pending_pool, p);
        if (k.written)
            drop(r, "out of memory queueing a command");
        return -1;
    }
    if (expect_reply)
        push(r, cb, arg, p);
    return 0;
}

int sb_redis_publish(sb_redis_t *r, const char *channel, const sb_str_t *parts, size_t nparts,
                     sb_redis_reply_fn cb, void *arg)
{
    const char *argv[2] = {r->o.sharded ? "SPUBLISH" : "PUBLISH", channel};
    size_t lens[2] = {strlen(argv[0]), strlen(channel)};
    if (r->state != SB_REDIS_READY || r->o.pubsub)
        return -1;
    return send_command(r, 2, argv, lens, parts, nparts, 1, cb, arg);
}

int sb_redis_command(sb_redis_t *r, int argc, const char **argv, const size_t *lens,
                     sb_redis_reply_fn cb, void *arg)
{
    if (r->state != SB_REDIS_READY)
        return -1;
    return send_command(r, argc, argv, lens, NULL, 0, !r->o.pubsub, cb, arg);
}

void sb_redis_script_init(sb_redis_script_t *s)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)s->body, strlen(s->body), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
}

/* A script call, kept until answered so that it can be sent again as EVAL. */
typedef struct {
    sb_redis_t *redis;
    const sb_redis_script_t *script;
    sb_redis_reply_fn cb;
    void *arg;
    int nkeys, nargs, evaled;
    const char **args; /* nargs pointers into the copies that follow the struct */
} eval_t;

static int send_eval(eval_t *e);

static void on_eval(void *arg, const sb_redis_reply_t *reply)
{
    eval_t *e = arg;
    if (reply != NULL && reply->type == SB_REDIS_ERROR && !e->evaled &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        sb_log(SB_LOG_WARN,
               "redis %s: Redis lost its scripts (SCRIPT FLUSH?); sending them in full",
               e->redis->o.name);
        e->evaled = 1;
        if (send_eval(e) == 0)
            return;
        reply = NULL; /* could not send it again: as if the connection were lost */
    }
    if (e->cb)
        e->cb(e->arg, reply);
    free(e);
}

/* Sends EVALSHA, or EVAL once Redis said it does not have the script. */
static int send_eval(eval_t *e)
{
    const char *argv[24];
    size_t lens[24];
    char numkeys[8];
    if (e->nargs + 3 > 24)
        return -1;
    snprintf(numkeys, sizeof(numkeys), "%d", e->nkeys);
    argv[0] = e->evaled ? "EVAL" : "EVALSHA";
    argv[1] = e->evaled ? e->script->body : e->script->sha;
    argv[2] = numkeys;
    for (int i = 0; i < e->nargs; i++)
        argv[3 + i] = e->args[i];
    for (int i = 0; i < 3 + e->nargs; i++)
        lens[i] = strlen(argv[i]);
    return sb_redis_command(e->redis, 3 + e->nargs, argv, lens, on_eval, e);
}

int sb_redis_eval(sb_redis_t *r, const sb_redis_script_t *s, int nkeys, const char *const *args,
                  int nargs, sb_redis_reply_fn cb, void *arg)
{
    size_t bytes = sizeof(eval_t) + (size_t)nargs * sizeof(char *);
    for (int i = 0; i < nargs; i++)
        bytes += strlen(args[i]) + 1;
    eval_t *e = r->state == SB_REDIS_READY && !r->o.pubsub ? malloc(bytes) : NULL;
    if (e == NULL)
        return -1;
    *e = (eval_t){.redis = r, .script = s, .cb = cb, .arg = arg, .nkeys = nkeys, .nargs = nargs};
    e->args = (const char **)(e + 1);
    char *copy = (char *)(e->args + nargs);
    for (int i = 0; i < nargs; i++) {
        size_t n = strlen(args[i]) + 1;
        memcpy(copy, args[i], n);
        e->args[i] = copy;
        copy += n;
    }
    if (send_eval(e) != 0) {
        free(e);
        return -1;
    }
    return 0;
}

static int is_str(const sb_redis_reply_t *e, const char *s)
{
    size_t n = strlen(s);
    return e->type == SB_REDIS_STRING && e->len == n && memcmp(e->str, s, n) == 0;
}

static void handshake_done(sb_redis_t *r);

/* ROLE's answer: a replica cannot take the directory's writes (and what is published there
 * reaches only its own subscribers), so the connection waits for the address to lead to a
 * master again, as it does after a failover behind a name that follows the master. A server
 * that refuses ROLE (an ACL without it) is taken as it is. */
static void on_role(void *arg, const sb_redis_reply_t *reply)
{
    sb_redis_t *r = arg;
    if (reply == NULL)
        return; /* the connection dropped; drop() already handled it */
    if (reply->type == SB_REDIS_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == SB_REDIS_STRING && !is_str(reply->element[0], "master")) {
        char why[320];
        snprintf(why, sizeof(why), "Redis at %s:%d is a %.*s, not a master", r->url->host,
                 r->url->port, (int)(reply->element[0]->len < 16 ? reply->element[0]->len : 16),
                 reply->element[0]->str);
        drop(r, why);
        return;
    }
    if (reply->type == SB_REDIS_ERROR)
        sb_log(SB_LOG_DEBUG, "redis %s: ROLE refused (%.*s): its role is not checked", r->o.name,
               (int)reply->len, reply->str);
    handshake_done(r);
}

static void on_handshake(void *arg, const sb_redis_reply_t *reply)
{
    sb_redis_t *r = arg;
    if (reply == NULL)
        return; /* the connection dropped; drop() already handled it */
    if (reply->type == SB_REDIS_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "Redis refused the connection: %.*s", (int)reply->len,
                 reply->str);
        sb_log(SB_LOG_ERROR, "redis %s: %s", r->o.name, why);
        drop(r, why);
        return;
    }
    handshake_done(r);
}

/* One more step of the handshake answered well: the last one makes the connection ready. */
static void handshake_done(sb_redis_t *r)
{
    if (--r->handshake_left > 0)
        return;
    r->state = SB_REDIS_READY;
    if (r->metrics)
        r->metrics->connected = 1;
    r->attempt = 0;
    evtimer_del(r->timer);
    struct timeval tv = sb_loop_tv(0.5);
    evtimer_add(r->watchdog, &tv);
    sb_log(r->ever_up ? SB_LOG_WARN : SB_LOG_INFO, "redis %s: connected to %s:%d", r->o.name,
           r->url->host, r->url->port);
    r->ever_up = 1;
    if (r->o.on_state)
        r->o.on_state(r->o.ctx, r, 1, "connected");
}

static void dispatch(sb_redis_t *r, sb_redis_reply_t *reply)
{
    /* On a subscriber, once subscribed, everything is a push: messages and confirmations, of
     * plain pub/sub or of sharded pub/sub ("smessage", "ssubscribe", "sunsubscribe": Redis
     * pushes the last also when a channel's slot moves to another master). */
    if (r->o.pubsub && r->head == NULL) {
        const sb_redis_reply_t *kind = NULL, *ch = NULL, *msg = NULL;
        if (reply->type == SB_REDIS_ARRAY && reply->elements == 3) {
            kind = reply->element[0], ch = reply->element[1], msg = reply->element[2];
            if (ch->type != SB_REDIS_STRING)
                kind = NULL;
        }
        if (kind && (is_str(kind, "message") || is_str(kind, "smessage"))) {
            if (r->o.on_message && msg->type == SB_REDIS_STRING)
                r->o.on_message(r->o.ctx, ch->str, ch->len, msg->str, msg->len);
        } else if (kind && (is_str(kind, "subscribe") || is_str(kind, "ssubscribe"))) {
            if (r->o.on_subscribed)
                r->o.on_subscribed(r->o.ctx, ch->str, ch->len);
        } else if (kind && (is_str(kind, "unsubscribe") || is_str(kind, "sunsubscribe"))) {
            if (r->o.on_unsubscribed)
                r->o.on_unsubscribed(r->o.ctx, ch->str, ch->len);
        } else if (reply->type == SB_REDIS_ERROR) {
            sb_log(SB_LOG_WARN, "redis %s: %.*s", r->o.name, (int)reply->len, reply->str);
            if (r->o.on_push_error)
                r->o.on_push_error(r->o.ctx, r, reply->str, reply->len);
        }
        return;
    }
    if (r->head == NULL) {
        drop(r, "a reply to no command");
        return;
    }
    answer_oldest(r, reply);
    /* A write refused because this server became a replica (a failover): its callback heard the
     * error; the connection starts again and waits for a master (on_role). */
    if (reply->type == SB_REDIS_ERROR && reply->len >= 8 && memcmp(reply->str, "READONLY", 8) == 0)
        drop(r, "Redis became a replica (READONLY)");
}

static void on_read(void *arg)
{
    sb_redis_t *r = arg;
    size_t len;
    const char *data = sb_stream_data(r->stream, &len);

    if (len > 0 && redisReaderFeed(r->reader, data, len) != REDIS_OK) {
        drop(r, "could not buffer a reply");
        return;
    }
    sb_stream_consume(r->stream, len);

    r->dispatching = 1;
    while (r->drop_why[0] == '\0') {
        void *reply = NULL;
        if (redisReaderGetReply(r->reader, &reply) != REDIS_OK) {
            snprintf(r->drop_why, sizeof(r->drop_why), "bad reply from Redis: %.80s",
                     r->reader->errstr);
            break;
        }
        if (reply == NULL)
            break;
        dispatch(r, reply);
        free_reply(reply);
    }
    r->dispatching = 0;
    if (r->drop_why[0] != '\0') {
        char why[128];
        memcpy(why, r->drop_why, sizeof(why));
        r->drop_why[0] = '\0';
        drop(r, why);
    }
}

static void on_end(void *arg, int err)
{
    sb_redis_t *r = arg;
    char why[256];
    if (err == 0)
        snprintf(why, sizeof(why), "Redis closed the connection");
    else
        snprintf(why, sizeof(why), "connection error: %s", evutil_socket_error_to_string(err));
    drop(r, why);
}

/* Connected: the stream reads and writes from now on, and the handshake goes first. */
static void connected(sb_redis_t *r, evutil_socket_t fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sb_stream_setcb(r->stream, on_read, NULL, on_end, r);
    sb_stream_reading(r->stream, 1);
    const char *argv[3];
    size_t lens[3];
    char name[128], db[16];
    r->handshake_left = 0;
    if (r->url->password[0]) {
        int argc = 0;
        argv[argc] = "AUTH", lens[argc++] = 4;
        if (r->url->user[0])
            argv[argc] = r->url->user, lens[argc] = strlen(r->url->user), argc++;
        argv[argc] = r->url->password, lens[argc] = strlen(r->url->password), argc++;
        send_command(r, argc, argv, lens, NULL, 0, 1, on_handshake, r);
        r->handshake_left++;
    }
    if (r->url->db != 0) {
        snprintf(db, sizeof(db), "%d", r->url->db);
        argv[0] = "SELECT", lens[0] = 6, argv[1] = db, lens[1] = strlen(db);
        send_command(r, 2, argv, lens, NULL, 0, 1, on_handshake, r);
        r->handshake_left++;
    }
    /* A name an operator recognises in CLIENT LIST (and tests can CLIENT KILL). */
    snprintf(name, sizeof(name), "switchboard-%s-%s", r->o.node_id, r->o.name);
    argv[0] = "CLIENT", lens[0] = 6, argv[1] = "SETNAME", lens[1] = 7;
    argv[2] = name, lens[2] = strlen(name);
    send_command(r, 3, argv, lens, NULL, 0, 1, on_handshake, r);
    r->handshake_left++;
    if (!r->o.any_role) {
        argv[0] = "ROLE", lens[0] = 4;
        send_command(r, 1, argv, lens, NULL, 0, 1, on_role, r);
        r->handshake_left++;
    }
    for (size_t i = 0; i < r->o.nscripts; i++) {
        argv[0] = "SCRIPT", lens[0] = 6, argv[1] = "LOAD", lens[1] = 4;
        argv[2] = r->o.scripts[i].body, lens[2] = strlen(r->o.scripts[i].body);
        send_command(r, 3, argv, lens, NULL, 0, 1, on_handshake, r);
        r->handshake_left++;
    }
}

/* redis://: the socket's connect has finished, one way or the other. */
static void on_connect(evutil_socket_t fd, short what, void *arg)
{
    sb_redis_t *r = arg;
    int err = 0;
    socklen_t len = sizeof(err);
    (void)what;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == EINPROGRESS || err == EINTR)
        return; /* not yet (a spurious wake-up): it is still armed */
    event_free(r->connecting);
    r->connecting = NULL;
    if (err != 0) {
        char why[256];
        snprintf(why, sizeof(why), "connection error: %s", evutil_socket_error_to_string(err));
        drop(r, why);
        return;
    }
    r->fd = -1;
    r->stream = sb_stream_socket_new(r->streams, fd); /* owns fd */
    if (r->stream == NULL) {
        drop(r, "out of memory");
        return;
    }
    connected(r, fd);
}

/* rediss://: the TLS bufferevent has connected (the certificate checked), or failed. */
static void on_tls_event(struct bufferevent *bev, short what, void *arg)
{
    sb_redis_t *r = arg;
    if (what & BEV_EVENT_CONNECTED) {
        r->tls = NULL;
        r->stream = sb_stream_bev_new(bev, NULL); /* owns bev */
        if (r->stream == NULL) {
            drop(r, "out of memory");
            return;
        }
        connected(r, bufferevent_getfd(bev));
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char why[256];
        int err = EVUTIL_SOCKET_ERROR();
        if (what & BEV_EVENT_EOF)
            snprintf(why, sizeof(why), "Redis closed the connection");
        else if (tls_why(bufferevent_openssl_get_ssl(bev), bufferevent_get_openssl_error(bev), why,
                         sizeof(why)))
            ; /* why says it */
        else
            snprintf(why, sizeof(why), "connection error: %s",
                     err ? evutil_socket_error_to_string(err) : "unknown");
        ERR_clear_error();
        drop(r, why);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    sb_redis_t *r = arg;
    (void)fd;
    (void)what;
    if (r->state == SB_REDIS_CONNECTING)
        drop(r, "connect timed out");
    else if (r->state == SB_REDIS_CLOSED)
        connect_now(r);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    sb_redis_t *r = arg;
    (void)fd;
    (void)what;
    if (r->state != SB_REDIS_READY)
        return;
    if (r->head && now(r) - r->head->sent > r->o.command_timeout) {
        drop(r, "Redis did not answer in time");
        return;
    }
    struct timeval tv = sb_loop_tv(0.5);
    evtimer_add(r->watchdog, &tv);
}

/* Starts connecting to addr: a socket of our own (redis://), or a TLS bufferevent (rediss://). */
static void start_connect(sb_redis_t *r, const struct sockaddr *addr, socklen_t len)
{
    if (r->url->tls) {
        /* Connected (BEV_EVENT_CONNECTED) once the TLS handshake, certificate checked, is done. */
        SSL *ssl = tls_client(r->url);
        r->tls = ssl ? bufferevent_openssl_socket_new(r->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (r->tls == NULL) {
            drop(r, "out of memory");
            return;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(r->tls, 1);
        bufferevent_priority_set(r->tls, r->o.priority);
        bufferevent_setcb(r->tls, NULL, NULL, on_tls_event, r);
        bufferevent_enable(r->tls, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(r->tls, addr, (int)len) != 0)
            drop(r, "cannot connect");
        return;
    }
    evutil_socket_t fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (connect(fd, addr, len) != 0 && errno != EINPROGRESS)) {
        char why[256];
        snprintf(why, sizeof(why), "cannot connect: %s", evutil_socket_error_to_string(errno));
        if (fd >= 0)
            evutil_closesocket(fd);
        drop(r, why);
        return;
    }
    r->fd = fd;
    r->connecting = event_new(r->base, fd, EV_WRITE | EV_PERSIST, on_connect, r);
    if (r->connecting == NULL || event_priority_set(r->connecting, r->o.priority) != 0 ||
        event_add(r->connecting, NULL) != 0)
        drop(r, "out of memory");
}

/* The host name's addresses: connect to the first. */
static void on_resolved(void *arg, const struct addrinfo *res, const char *err)
{
    sb_redis_t *r = arg;
    char why[300];
    r->resolving = NULL;
    if (res == NULL) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", r->url->host, err);
        drop(r, why);
    } else {
        start_connect(r, res->ai_addr, res->ai_addrlen);
    }
}

static void connect_now(sb_redis_t *r)
{
    r->reader = redisReaderCreateWithFunctions(&reply_functions);
    if (r->reader != NULL)
        r->reader->privdata = r;    /* each reply's task carries it: its pools */
    r->state = SB_REDIS_CONNECTING; /* so that drop() cleans up and retries */
    if (r->reader == NULL) {
        drop(r, "out of memory");
        return;
    }
    struct timeval tv = sb_loop_tv(r->o.connect_timeout);
    evtimer_add(r->timer, &tv);
    /* An address is connected to at once; a name is looked up first, off the loop. */
    union {
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } sa = {0};
    if (inet_pton(AF_INET, r->url->host, &sa.in.sin_addr) == 1) {
        sa.in.sin_family = AF_INET;
        sa.in.sin_port = htons((uint16_t)r->url->port);
        start_connect(r, (struct sockaddr *)&sa.in, sizeof(sa.in));
    } else if (inet_pton(AF_INET6, r->url->host, &sa.in6.sin6_addr) == 1) {
        sa.in6.sin6_family = AF_INET6;
        sa.in6.sin6_port = htons((uint16_t)r->url->port);
        start_connect(r, (struct sockaddr *)&sa.in6, sizeof(sa.in6));
    } else if ((r->resolving = sb_resolve_start(r->base, r->url->host, r->url->port, on_resolved,
                                                r)) == NULL) {
        drop(r, "cannot start looking up the host name");
    }
}

sb_redis_t *sb_redis_new(struct event_base *base, const sb_redis_url_t *url,
                         const sb_redis_opts_t *opts)
{
    sb_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->base = base;
    r->url = url;
    r->o = *opts;
    r->metrics = sb_metrics_redis(opts->name);
    r->state = SB_REDIS_CLOSED;
    r->timer = evtimer_new(base, on_timer, r);
    r->watchdog = evtimer_new(base, on_watchdog, r);
    r->fd = -1;
    r->streams = sb_streams_new(base, opts->priority);
    r->pending_pool = (sb_pool_t)SB_POOL_INIT(sizeof(pending_t), 1024);
    for (size_t i = 0; i < REPLY_CLASSES; i++)
        r->reply_pools[i] = (sb_pool_t)SB_POOL_INIT(reply_class_size[i], REPLY_KEEP);
    if (r->timer == NULL || r->watchdog == NULL || r->streams == NULL ||
        event_priority_set(r->timer, opts->priority) ||
        event_priority_set(r->watchdog, opts->priority)) {
        sb_redis_free(r);
        return NULL;
    }
    return r;
}

void sb_redis_start(sb_redis_t *r)
{
    if (r->state == SB_REDIS_CLOSED && !evtimer_pending(r->timer, NULL))
        connect_now(r);
}

void sb_redis_free(sb_redis_t *r)
{
    if (r == NULL)
        return;
    r->o.on_state = NULL; /* no callbacks from here on but the pending commands' */
    if (r->resolving)
        sb_resolve_cancel(r->resolving);
    close_link(r);
    if (r->reader)
        redisReaderFree(r->reader);
    r->state = SB_REDIS_CLOSED;
    fail_pending(r);
    if (r->timer)
        event_free(r->timer);
    if (r->watchdog)
        event_free(r->watchdog);
    sb_streams_free(r->streams);
    sb_pool_drain(&r->pending_pool);
    for (size_t i = 0; i < REPLY_CLASSES; i++)
        sb_pool_drain(&r->reply_pools[i]);
    free(r);
}

sb_redis_state_t sb_redis_state(const sb_redis_t *r) { return r->state; }

const sb_redis_url_t *sb_redis_url(const sb_redis_t *r) { return r->url; }

size_t sb_redis_in_flight(const sb_redis_t *r) { return r->in_flight; }

/* The start-up probe's blocking connection: hiredis's own client for redis://; for rediss://, a
 * TLS socket of ours (hiredis 0.14 has no TLS) whose replies hiredis's reader parses. */
typedef struct {
    redisContext *c;
    int fd;
    SSL *ssl;
    redisReader *reader;
    const char *errstr; /* why the last command got no reply */
} probe_t;

/* Connects p over TLS, blocking at most timeout seconds for each step. Returns 0, or -1 with err
 * filled (naming the certificate check's verdict when that is what failed). */
static int probe_tls_connect(probe_t *p, const sb_redis_url_t *url, double timeout, char *err,
                             size_t errlen)
{
    char port[8], why[256];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    struct timeval tv = sb_loop_tv(timeout);
    int soerr = 0;
    snprintf(port, sizeof(port), "%d", url->port);
    int gai = getaddrinfo(url->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", url->host, url->port,
                 gai_strerror(gai));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && p->fd < 0; ai = ai->ai_next) {
        p->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (p->fd < 0)
            continue;
        /* Linux bounds a blocking connect by the send timeout too. */
        setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(p->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            soerr = errno;
            close(p->fd);
            p->fd = -1;
        }
    }
    freeaddrinfo(res);
    if (p->fd < 0) {
        snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", url->host, url->port,
                 strerror(soerr ? soerr : EHOSTUNREACH));
        return -1;
    }
    p->ssl = tls_client(url);
    p->reader = redisReaderCreate();
    if (p->ssl == NULL || p->reader == NULL || SSL_set_fd(p->ssl, p->fd) != 1) {
        snprintf(err, errlen, "cannot connect to Redis at %s:%d over TLS: out of memory", url->host,
                 url->port);
        return -1;
    }
    if (SSL_connect(p->ssl) != 1) {
        if (!tls_why(p->ssl, ERR_peek_last_error(), why, sizeof(why)))
            snprintf(why, sizeof(why), "the TLS handshake did not complete: %s",
                     errno ? strerror(errno) : "the connection ended");
        ERR_clear_error();
        snprintf(err, errlen, "cannot connect to Redis at %s:%d over TLS: %s", url->host, url->port,
                 why);
        return -1;
    }
    return 0;
}

/* Runs one command on p; returns its reply (freeReplyObject), or NULL with p->errstr set. */
static redisReply *probe_command(probe_t *p, int argc, const char **argv, const size_t *lens)
{
    if (p->c != NULL) {
        redisReply *reply = redisCommandArgv(p->c, argc, argv, lens);
        p->errstr = p->c->errstr;
        return reply;
    }
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0) {
        p->errstr = "out of memory";
        return NULL;
    }
    int written = SSL_write(p->ssl, cmd, n);
    redisFreeCommand(cmd);
    if (written != n) {
        p->errstr = "cannot send over TLS";
        ERR_clear_error();
        return NULL;
    }
    for (int i = 0; i < 1024; i++) { /* bounded: a reply of up to 4 MiB */
        void *reply = NULL;
        char buf[4096];
        if (redisReaderGetReply(p->reader, &reply) != REDIS_OK) {
            p->errstr = "bad reply";
            return NULL;
        }
        if (reply != NULL)
            return reply;
        int k = SSL_read(p->ssl, buf, sizeof(buf));
        if (k <= 0) {
            p->errstr = "no answer in time, or the connection ended";
            ERR_clear_error();
            return NULL;
        }
        redisReaderFeed(p->reader, buf, (size_t)k);
    }
    p->errstr = "reply too long";
    return NULL;
}

int sb_redis_probe(const sb_redis_url_t *url, double timeout, char *err, size_t errlen)
{
    struct timeval tv = sb_loop_tv(timeout);
    probe_t p = {.fd = -1};
    redisReply *reply = NULL;
    int rc = -1;
    char db[16];
    const char *argv[3];
    size_t lens[3];

    if (url->tls) {
        if (probe_tls_connect(&p, url, timeout, err, errlen) != 0)
            goto out;
    } else {
        p.c = redisConnectWithTimeout(url->host, url->port, tv);
        if (p.c == NULL || p.c->err) {
            snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", url->host, url->port,
                     p.c ? p.c->errstr : "out of memory");
            goto out;
        }
        redisSetTimeout(p.c, tv);
    }
    if (url->password[0]) {
        int argc = 0;
        argv[argc] = "AUTH", lens[argc++] = 4;
        if (url->user[0])
            argv[argc] = url->user, lens[argc] = strlen(url->user), argc++;
        argv[argc] = url->password, lens[argc] = strlen(url->password), argc++;
        reply = probe_command(&p, argc, argv, lens);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s:%d refused AUTH: %s", url->host, url->port,
                     reply ? reply->str : p.errstr);
            goto out;
        }
        freeReplyObject(reply);
    }
    if (url->db != 0) {
        snprintf(db, sizeof(db), "%d", url->db);
        argv[0] = "SELECT", lens[0] = 6, argv[1] = db, lens[1] = strlen(db);
        reply = probe_command(&p, 2, argv, lens);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "Redis at %s:%d refused SELECT %d: %s", url->host, url->port,
                     url->db, reply ? reply->str : p.errstr);
            goto out;
        }
        freeReplyObject(reply);
    }
    argv[0] = "PING", lens[0] = 4;
    reply = probe_command(&p, 1, argv, lens);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis at %s:%d does not answer PING: %s", url->host, url->port,
                 reply ? reply->str : p.errstr);
        goto out;
    }
    rc = 0;
out:
    if (reply)
        freeReplyObject(reply);
    if (p.c)
        redisFree(p.c);
    if (p.ssl) {
        SSL_shutdown(p.ssl);
        SSL_free(p.ssl);
        ERR_clear_error();
    }
    if (p.reader)
        redisReaderFree(p.reader);
    if (p.fd >= 0)
        close(p.fd);
    return rc;
}
