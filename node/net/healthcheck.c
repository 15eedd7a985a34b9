/* `switchboard healthcheck`: asks a running node's /healthz, for container health checks.
 *
 * A container image need carry no HTTP client for its HEALTHCHECK: the binary is one. */
#include "net/healthcheck.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/loop.h"

/* Waits until fd is ready for events, or the deadline. Returns 0, or -1. */
static int wait_for(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - sb_clock_mono();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

int sb_healthcheck(const char *listen, double timeout, char *err, size_t errlen)
{
    char host[256], port[16], request[512], reply[64];
    const char *colon = strrchr(listen, ':');
    double deadline = sb_clock_mono() + timeout;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    int fd = -1, rc = -1;

    if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) >= sizeof(port)) {
        snprintf(err, errlen, "cannot parse listen address '%s'", listen);
        return -1;
    }
    snprintf(port, sizeof(port), "%s", colon + 1);
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']')
        snprintf(host, sizeof(host), "%.*s", (int)(hlen - 2), listen + 1);
    else
        snprintf(host, sizeof(host), "%.*s", (int)hlen, listen);
    /* A node listening on every address answers on this machine's loopback. */
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, sizeof(host), "::1");

    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (connect(fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) ||
        wait_for(fd, POLLOUT, deadline) != 0) {
        snprintf(err, errlen, "cannot connect to %s:%s", host, port);
        goto out;
    }
    int soerr = 0;
    socklen_t slen = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0 || soerr != 0) {
        snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(soerr));
        goto out;
    }
    int n = snprintf(request, sizeof(request),
                     "GET /healthz HTTP/1.1\r\nHost: %s%s%s:%s\r\nConnection: close\r\n\r\n",
                     strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
    if (send(fd, request, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(err, errlen, "cannot send the request to %s:%s", host, port);
        goto out;
    }
    size_t got = 0;
    while (got < sizeof(reply) - 1) {
        if (wait_for(fd, POLLIN, deadline) != 0) {
            snprintf(err, errlen, "no answer from %s:%s within %.1f s", host, port, timeout);
            goto out;
        }
        ssize_t k = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
        if (memchr(reply, '\n', got) != NULL)
            break;
    }
    reply[got] = '\0';
    if (strncmp(reply, "HTTP/1.1 200 ", 13) != 0) {
        char *eol = strpbrk(reply, "\r\n");
        if (eol)
            *eol = '\0';
        snprintf(err, errlen, "%s:%s answered '%s'", host, port, got ? reply : "nothing");
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}
