/* ws:// URLs the bench connects to: a numeric or localhost host, a port and a path. */
#ifndef SB_BENCH_WSURL_H
#define SB_BENCH_WSURL_H

#include <netinet/in.h>

typedef struct {
    struct sockaddr_in addr; /* the server, IPv4 */
    char host[80];           /* the Host header: host[:port] as written */
    char path[256];          /* path and query as written, "/ws" when the URL has none */
    int port;
} sb_wsurl_t;

/* Parses ws://HOST[:PORT][/PATH] (HOST an IPv4 address or localhost; PORT 80 by default).
 * Returns 0, or -1 with *err set to a static reason. */
int sb_wsurl_parse(const char *url, sb_wsurl_t *out, const char **err);

#endif
