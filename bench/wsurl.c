/* ws:// URLs the bench connects to: a numeric or localhost host, a port and a path. */
#include "wsurl.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

int sb_wsurl_parse(const char *url, sb_wsurl_t *out, const char **err)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "ws://", 5) != 0) {
        *err = "only ws:// URLs are supported";
        return -1;
    }
    const char *h = url + 5;
    const char *slash = strchr(h, '/');
    size_t hostport_len = slash ? (size_t)(slash - h) : strlen(h);
    if (hostport_len == 0 || hostport_len >= sizeof(out->host)) {
        *err = "missing or overlong host";
        return -1;
    }
    memcpy(out->host, h, hostport_len);
    out->host[hostport_len] = '\0';

    char name[80];
    memcpy(name, out->host, hostport_len + 1);
    out->port = 80;
    char *colon = strchr(name, ':');
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end != '\0' || p < 1 || p > 65535) {
            *err = "the port must be a number from 1 to 65535";
            return -1;
        }
        out->port = (int)p;
        *colon = '\0';
    }
    out->addr.sin_family = AF_INET;
    out->addr.sin_port = htons((uint16_t)out->port);
    if (strcmp(name, "localhost") == 0)
        strcpy(name, "127.0.0.1");
    if (inet_pton(AF_INET, name, &out->addr.sin_addr) != 1) {
        *err = "the host must be an IPv4 address or localhost";
        return -1;
    }
    const char *path = slash ? slash : "/ws";
    if (strlen(path) >= sizeof(out->path)) {
        *err = "overlong path";
        return -1;
    }
    strcpy(out->path, path);
    return 0;
}
