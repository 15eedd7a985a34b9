/* How a connection's bytes travel: a small table of functions (TCP here, TLS in net/tls). */
#include "net/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "base/log.h"

static sb_stream_t *tcp_open(const sb_transport_t *t, sb_streams_t *streams, evutil_socket_t fd)
{
    (void)t;
    int one = 1;
    /* Signaling messages are small and latency matters more than packet count. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return sb_stream_socket_new(streams, fd);
}

static void tcp_refuse(const sb_transport_t *t, evutil_socket_t fd, const char *answer, size_t len)
{
    (void)t;
    /* A fresh socket's send buffer is empty: the answer fits at once or not at all. */
    if (send(fd, answer, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        sb_log(SB_LOG_DEBUG, "could not answer a refused connection");
    evutil_closesocket(fd);
}

const sb_transport_t sb_transport_tcp = {"tcp", tcp_open, tcp_refuse, NULL};
