/* Parses redis://[[user]:password@]host[:port][/db] URLs (the node's --redis option), no I/O. */
#ifndef SB_REDIS_URL_H
#define SB_REDIS_URL_H

#include <stddef.h>

typedef struct {
    char host[256];
    int port;           /* default 6379 */
    char user[128];     /* "" for none (the default user) */
    char password[256]; /* "" for none */
    int db;             /* default 0 */
} sb_redis_url_t;

/* Parses url into out. Returns 0, or -1 with err saying what is wrong (never echoing the
 * password). User and password may be percent-encoded; an IPv6 host is written [addr]. */
int sb_redis_url_parse(const char *url, sb_redis_url_t *out, char *err, size_t errlen);

#endif
