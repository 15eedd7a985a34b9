/* One connection to Redis (RESP2) on the event loop: pipelined commands or pub/sub, reconnecting.
 */
#ifndef SB_REDIS_H
#define SB_REDIS_H

#include <stddef.h>

#include <event2/event.h>

#include "redis_url.h"
#include "str.h"

typedef enum {
    SB_REDIS_STRING,  /* a bulk string */
    SB_REDIS_STATUS,  /* +OK */
    SB_REDIS_ERROR,   /* -ERR ... */
    SB_REDIS_INTEGER, /* :1 */
    SB_REDIS_NIL,     /* a null bulk string or array */
    SB_REDIS_ARRAY,
} sb_redis_type_t;

/* A reply, as others read it (never free or keep it). */
typedef struct sb_redis_reply {
    sb_redis_type_t type;
    long long integer; /* SB_REDIS_INTEGER */
    const char *str;   /* STRING, STATUS, ERROR: len bytes, NUL-terminated */
    size_t len;
    struct sb_redis_reply **element; /* SB_REDIS_ARRAY: elements of them */
    size_t elements;
} sb_redis_reply_t;

typedef enum {
    SB_REDIS_CLOSED,     /* not connected; a reconnect is scheduled unless stopped */
    SB_REDIS_CONNECTING, /* TCP connect, AUTH and SELECT under way */
    SB_REDIS_READY,      /* commands are accepted */
} sb_redis_state_t;

typedef struct sb_redis sb_redis_t;

/* A command's reply, or NULL when the connection was lost first (the command may or may not
 * have run). The reply is valid only during the call. */
typedef void (*sb_redis_reply_fn)(void *arg, const sb_redis_reply_t *reply);

/* A pub/sub message (of SUBSCRIBE or of SSUBSCRIBE); valid only during the call. */
typedef void (*sb_redis_message_fn)(void *ctx, const char *channel, size_t chlen, const char *msg,
                                    size_t len);

/* The connection became ready (up = 1) or was lost (up = 0, why says what happened). */
typedef void (*sb_redis_state_fn)(void *ctx, sb_redis_t *r, int up, const char *why);

/* A Lua script run by its SHA-1 (EVALSHA). Fill body and call sb_redis_script_init once. */
typedef struct {
    const char *body;
    char sha[41]; /* hex SHA-1 of body */
} sb_redis_script_t;

/* Computes s->sha from s->body. */
void sb_redis_script_init(sb_redis_script_t *s);

typedef struct {
    const char *name;    /* for logs and CLIENT SETNAME: "pub", "sub", "dir", "upkeep" */
    const char *node_id; /* for CLIENT SETNAME */
    int pubsub;          /* 1: a subscriber connection; messages go to on_message */
    int sharded;         /* 1: sb_redis_publish sends SPUBLISH (Redis Cluster's sharded pub/sub) */
    int any_role;        /* 1: a replica is used too (no ROLE check): for reading a slot map */
    double connect_timeout; /* seconds for TCP connect plus AUTH/SELECT */
    double command_timeout; /* seconds the oldest reply may be late before reconnecting */
    double backoff_cap;     /* largest reconnect delay, seconds */
    int priority;           /* event priority of its socket and timers (loop.h) */
    /* Scripts loaded (SCRIPT LOAD) on every connect, before the connection is ready, so that
     * sb_redis_eval's EVALSHA finds them. They must outlive the connection. */
    const sb_redis_script_t *scripts;
    size_t nscripts;
    sb_redis_state_fn on_state;
    sb_redis_message_fn on_message;
    /* Redis confirmed a SUBSCRIBE of channel: from now on its messages come (pub/sub only). */
    void (*on_subscribed)(void *ctx, const char *channel, size_t chlen);
    /* Redis confirmed an UNSUBSCRIBE of channel: no more of its messages come, and a PUBLISH
     * to it no longer counts this connection (pub/sub only). */
    void (*on_unsubscribed)(void *ctx, const char *channel, size_t chlen);
    /* An error pushed on a subscriber (a SUBSCRIBE refused: with MOVED, its slot is elsewhere). */
    void (*on_push_error)(void *ctx, sb_redis_t *r, const char *err, size_t len);
    /* A connect attempt failed before the connection was ever ready (on_state hears only of
     * connections that were ready). May be NULL. */
    void (*on_failed)(void *ctx, sb_redis_t *r, const char *why);
    void *ctx;
} sb_redis_opts_t;

/* Creates a connection (not yet connecting). url and opts->name/node_id must outlive it. */
sb_redis_t *sb_redis_new(struct event_base *base, const sb_redis_url_t *url,
                         const sb_redis_opts_t *opts);

/* Starts connecting; reconnects on every loss, with jittered exponential backoff. */
void sb_redis_start(sb_redis_t *r);

/* Drops the connection (failing pending commands with NULL) and reconnects. */
void sb_redis_reset(sb_redis_t *r, const char *why);

/* Fails pending commands, closes, and frees. No callbacks run afterwards. */
void sb_redis_free(sb_redis_t *r);

sb_redis_state_t sb_redis_state(const sb_redis_t *r);

/* Commands sent and not answered yet. */
size_t sb_redis_in_flight(const sb_redis_t *r);

/* Queues a command (argv[i] of lens[i] bytes; binary-safe, nothing is formatted from data).
 * Commands queued in one loop turn go out in one write. Returns 0, or -1 when the connection is
 * not ready (cb is then not called). On a pub/sub connection cb must be NULL: replies to
 * SUBSCRIBE and UNSUBSCRIBE are confirmations, not answers. */
int sb_redis_command(sb_redis_t *r, int argc, const char **argv, const size_t *lens,
                     sb_redis_reply_fn cb, void *arg);

/* PUBLISH (SPUBLISH when opts.sharded) channel message, the message being the concatenation of
 * nparts parts, written into the connection's buffer as they are (no copy is joined first). As
 * sb_redis_command otherwise: cb gets the number of receivers as an integer reply, or NULL. */
int sb_redis_publish(sb_redis_t *r, const char *channel, const sb_str_t *parts, size_t nparts,
                     sb_redis_reply_fn cb, void *arg);

/* Runs a script: EVALSHA sha nkeys args... (the first nkeys of args are keys; args are
 * NUL-terminated and copied). When Redis answers NOSCRIPT (its script cache was flushed), the
 * call is sent again as EVAL with the body, and cb sees only that answer. Returns 0, or -1 when
 * the connection is not ready or out of memory (cb is then not called). */
int sb_redis_eval(sb_redis_t *r, const sb_redis_script_t *s, int nkeys, const char *const *args,
                  int nargs, sb_redis_reply_fn cb, void *arg);

/* The address the connection is for (host and port of its URL). */
const sb_redis_url_t *sb_redis_url(const sb_redis_t *r);

/* Makes the TLS client context every rediss:// connection (and sb_redis_probe) uses, once per
 * process, before the first: TLS 1.2 or later, the server's certificate verified against the
 * CAs of ca_file (PEM) or, when ca_file is NULL or "", the system's, and its host name (or IP
 * address) checked against the URL's. Returns 0, or -1 with err filled (the CA file unreadable).
 * A rediss:// connection made without it fails, and retries. */
int sb_redis_tls_init(const char *ca_file, char *err, size_t errlen);

/* Frees that context (at exit; connections still open keep their reference). */
void sb_redis_tls_free(void);

/* Checks once, blocking, that Redis at url answers PING after AUTH and SELECT (over TLS, the
 * certificate verified, for rediss://): for a clear error at start. Returns 0, or -1 with err
 * filled. */
int sb_redis_probe(const sb_redis_url_t *url, double timeout, char *err, size_t errlen);

#endif
