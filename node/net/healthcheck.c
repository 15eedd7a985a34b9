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

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/loop.h"
#include "source.h"

/* The PROXY protocol's version 2 header for a connection of the proxy's own (LOCAL). */
static const char proxy_local[16] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q',
                                     'U',  'I',  'T',  '\n', 0x20, 0x00, 0x00, 0x00};

/* Returns 1 when fd's own address is one of the proxies (a --trust-proxy list). */
static int from_a_proxy(int fd, const char *proxies)
{
    sb_cidr_t list[256]; /* as many as the node takes */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int n = sb_cidr_list_parse(proxies, list, sizeof(list) / sizeof(list[0]), NULL);
    if (n <= 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    sb_ip_t ip;
    if (ss.ss_family == AF_INET6)
        ip = sb_ip_from_bytes(1, &((struct sockaddr_in6 *)&ss)->sin6_addr);
    else if (ss.ss_family == AF_INET)
        ip = sb_ip_from_bytes(0, &((struct sockaddr_in *)&ss)->sin_addr);
    else
        return 0;
    return sb_cidr_list_match(list, (size_t)n, &ip);
}

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

/* After an SSL call returned rc: waits for what it needs. Returns 0 to try again, -1 on an
 * error or the deadline. */
static int tls_wait(SSL *ssl, int fd, int rc, double deadline)
{
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return wait_for(fd, POLLIN, deadline);
    case SSL_ERROR_WANT_WRITE:
        return wait_for(fd, POLLOUT, deadline);
    default:
        return -1;
    }
}

/* Sends all of buf, over ssl when it is not NULL. Returns 0, or -1. */
static int send_all(SSL *ssl, int fd, const char *buf, size_t len, double deadline)
{
    if (ssl == NULL)
        return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
    for (;;) {
        int k = SSL_write(ssl, buf, (int)len);
        if (k > 0)
            return 0; /* SSL_write writes all of it (no partial writes by default) */
        if (tls_wait(ssl, fd, k, deadline) != 0)
            return -1;
    }
}

/* Receives some bytes once they come. Returns their count, 0 at the end, -1 on an error or the
 * deadline. */
static ssize_t recv_some(SSL *ssl, int fd, char *buf, size_t len, double deadline)
{
    for (;;) {
        if (ssl == NULL) {
            if (wait_for(fd, POLLIN, deadline) != 0)
                return -1;
            ssize_t k = recv(fd, buf, len, 0);
            return k < 0 ? 0 : k;
        }
        int k = SSL_read(ssl, buf, (int)len);
        if (k > 0)
            return k;
        int e = SSL_get_error(ssl, k);
        if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL)
            return 0;
        if (tls_wait(ssl, fd, k, deadline) != 0)
            return -1;
    }
}

/* A TLS client on fd, handshaken; NULL with err filled. */
static SSL *tls_connect(int fd, const char *host, const char *port, double deadline, char *err,
                        size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    SSL_CTX_free(ctx); /* ssl holds its own reference */
    if (ssl == NULL) {
        snprintf(err, errlen, "cannot create a TLS client: out of memory");
        return NULL;
    }
    SSL_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_set_alpn_protos(ssl, (const unsigned char *)"\x08http/1.1", 9);
    SSL_set_fd(ssl, fd);
    for (;;) {
        int rc = SSL_connect(ssl);
        if (rc == 1)
            return ssl;
        if (tls_wait(ssl, fd, rc, deadline) != 0)
            break;
    }
    unsigned long e = ERR_peek_last_error();
    snprintf(err, errlen, "TLS handshake with %s:%s failed: %s", host, port,
             e ? ERR_reason_error_string(e) : "no answer in time or the connection ended");
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

int sb_healthcheck(const char *listen, int tls, const char *proxies, double timeout, char *err,
                   size_t errlen)
{
    SSL *ssl = NULL;
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
    /* Before TLS too: the node reads the header off the socket first. */
    if (proxies != NULL && from_a_proxy(fd, proxies) &&
        send_all(NULL, fd, proxy_local, sizeof(proxy_local), deadline) != 0) {
        snprintf(err, errlen, "cannot send the PROXY header to %s:%s", host, port);
        goto out;
    }
    int n = snprintf(request, sizeof(request),
                     "GET /healthz HTTP/1.1\r\nHost: %s%s%s:%s\r\nConnection: close\r\n\r\n",
                     strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
    if (tls && (ssl = tls_connect(fd, host, port, deadline, err, errlen)) == NULL)
        goto out;
    if (send_all(ssl, fd, request, (size_t)n, deadline) != 0) {
        snprintf(err, errlen, "cannot send the request to %s:%s", host, port);
        goto out;
    }
    size_t got = 0;
    while (got < sizeof(reply) - 1) {
        ssize_t k = recv_some(ssl, fd, reply + got, sizeof(reply) - 1 - got, deadline);
        if (k < 0) {
            snprintf(err, errlen, "no answer from %s:%s within %.1f s", host, port, timeout);
            goto out;
        }
        if (k == 0)
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
    if (ssl != NULL) {
        SSL_shutdown(ssl); /* close_notify, best effort */
        SSL_free(ssl);
        ERR_clear_error();
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}
