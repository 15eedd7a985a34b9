/* How a connection's bytes travel: a small table of functions (TCP here, TLS in net/tls). */
#ifndef SB_TRANSPORT_H
#define SB_TRANSPORT_H

#include <stddef.h>

#include <event2/util.h>

#include "base/stream.h"

/* Every byte a client connection reads or writes goes through the stream its transport opens;
 * what a stream cannot do for every transport alike is here too. Each function gets its
 * transport, whose ctx holds what an instance needs (a TLS transport: its keys). */
typedef struct sb_transport sb_transport_t;
struct sb_transport {
    const char *name;
    /* Takes a freshly accepted socket and returns the stream that reads and writes it, or NULL
     * (fd closed) when out of memory. */
    sb_stream_t *(*open)(const sb_transport_t *t, sb_streams_t *streams, evutil_socket_t fd);
    /* Best effort, for a connection refused before it is served: writes a short answer without
     * blocking, then closes fd. */
    void (*refuse)(const sb_transport_t *t, evutil_socket_t fd, const char *answer, size_t len);
    void *ctx;
};

/* Plain TCP (net/tls.h makes the TLS one). */
extern const sb_transport_t sb_transport_tcp;

#endif
