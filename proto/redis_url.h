/* Parses redis[s]://[[user]:password@]host[:port][/db] URLs (the node's --redis option), no I/O.
 *
 * Errors (as everywhere in proto/): a function returns 0, or a length or count >= 0, on success and
 * a negative code on failure; a `const char **err` out-parameter (NULL allowed) then receives a
 * static reason for people. */
#ifndef SB_REDIS_URL_H
#define SB_REDIS_URL_H

#include <stddef.h>

typedef struct {
    char host[256];
    int port;           /* default 6379 */
    char user[128];     /* "" for none (the default user) */
    char password[256]; /* "" for none */
    int db;             /* default 0 */
    int tls;            /* 1 for rediss:// (TLS), 0 for redis:// */
} sb_redis_url_t;

/* The form sb_redis_url_parse accepts, for messages to people. */
#define SB_REDIS_URL_FORM "redis[s]://[[user]:password@]host[:port][/db]"

/* What sb_redis_url_parse returns; *err says more. */
enum {
    SB_REDIS_URL_ESCHEME = -1, /* neither redis:// nor rediss:// */
    SB_REDIS_URL_EDB = -2,     /* the /db path is not a number (0-1000000) */
    SB_REDIS_URL_EAUTH = -3,   /* credentials malformed, too long or badly percent-encoded */
    SB_REDIS_URL_EHOST = -4,   /* host missing or too long, or an IPv6 address without its ] */
    SB_REDIS_URL_EPORT = -5,   /* the port is not a number from 1 to 65535 */
};

/* Parses url into out (rediss:// sets tls; the port is 6379 by default either way). Returns 0, or a
 * negative SB_REDIS_URL_E* code with *err (when err is not NULL) set to a static reason such as
 * "the port must be a number from 1 to 65535", which never holds any part of the URL (so never the
 * password). User and password may be percent-encoded; an IPv6 host is written [addr]. */
int sb_redis_url_parse(const char *url, sb_redis_url_t *out, const char **err);

#endif
