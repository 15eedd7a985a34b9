/* Parses the node's --redis URLs, no I/O: redis[s]://[[user]:password@]host[:port][/db] for one
 * Redis, redis[s]+cluster://[[user]:password@]host[:port][,host[:port]...] for a Redis Cluster.
 *
 * Errors (as everywhere in proto/): a function returns 0, or a length or count >= 0, on success and
 * a negative code on failure; a `const char **err` out-parameter (NULL allowed) then receives a
 * static reason for people. */
#ifndef SB_REDIS_URL_H
#define SB_REDIS_URL_H

#include <stddef.h>

/* The most seed nodes a cluster URL may list. */
#define SB_REDIS_URL_SEEDS_MAX 16

/* One node to connect to first. */
typedef struct {
    char host[256]; /* an IPv6 address without its brackets */
    int port;       /* default 6379 */
} sb_redis_seed_t;

typedef struct {
    char host[256];
    int port;           /* default 6379 */
    char user[128];     /* "" for none (the default user) */
    char password[256]; /* "" for none */
    int db;             /* default 0; always 0 for a cluster */
    int tls;            /* 1 for rediss:// and rediss+cluster:// (TLS), else 0 */
    int cluster;        /* 1 for redis+cluster:// and rediss+cluster://, else 0 */
    /* The nodes in the URL's order: one for redis[s]://, 1 to SB_REDIS_URL_SEEDS_MAX for a cluster.
     * host and port above are always the first one's. The user, password and TLS are the same
     * for every node. */
    int nseeds;
    sb_redis_seed_t seeds[SB_REDIS_URL_SEEDS_MAX];
} sb_redis_url_t;

/* The forms sb_redis_url_parse accepts, for messages to people. */
#define SB_REDIS_URL_FORM                                                                          \
    "redis[s]://[[user]:password@]host[:port][/db] or "                                            \
    "redis[s]+cluster://[[user]:password@]host[:port][,host[:port]...]"

/* What sb_redis_url_parse returns; *err says more. */
enum {
    SB_REDIS_URL_ESCHEME =
        -1,                /* none of redis://, rediss://, redis+cluster://, rediss+cluster:// */
    SB_REDIS_URL_EDB = -2, /* the /db path is not a number (0-1000000), or a cluster URL has one */
    SB_REDIS_URL_EAUTH = -3,  /* credentials malformed, too long or badly percent-encoded */
    SB_REDIS_URL_EHOST = -4,  /* a host missing or too long, or an IPv6 address without its ] */
    SB_REDIS_URL_EPORT = -5,  /* a port is not a number from 1 to 65535 */
    SB_REDIS_URL_ESEEDS = -6, /* a cluster URL lists more than SB_REDIS_URL_SEEDS_MAX nodes */
};

/* Parses url into out (the rediss schemes set tls, the +cluster ones cluster; the port is 6379 by
 * default in every form). Returns 0, or a negative SB_REDIS_URL_E* code with *err (when err is not
 * NULL) set to a static reason such as "the port must be a number from 1 to 65535", which never
 * holds any part of the URL (so never the password). User and password may be percent-encoded; an
 * IPv6 host is written [addr]. A cluster URL's nodes are separated by commas, none of them empty;
 * it takes no /db (Redis Cluster has database 0 only), though a lone trailing / is allowed, as in
 * redis://host/. */
int sb_redis_url_parse(const char *url, sb_redis_url_t *out, const char **err);

#endif
