/* How a connection's bytes travel: a small table of functions (TCP here, TLS in net/tls). */
#ifndef SB_TRANSPORT_H
#define SB_TRANSPORT_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/util.h>

/* Every byte a client connection reads or writes goes through its transport's bufferevent; the
 * two things a bufferevent cannot do for every transport alike are here too. Each function gets
 * its transport, whose ctx holds what an instance needs (a TLS transport: its keys). */
typedef struct sb_transport sb_transport_t;
struct sb_transport {
    const char *name;
    /* Takes a freshly accepted socket and returns the bufferevent that reads and writes it, or
     * NULL (fd closed) when out of memory. */
    struct bufferevent *(*open)(const sb_transport_t *t, struct event_base *base,
                                evutil_socket_t fd);
    /* Ends the sending direction once everything queued has been written (TCP: a half-close),
     * so that the peer reads all of it before it sees the end. Called once per connection. */
    void (*close_write)(const sb_transport_t *t, struct bufferevent *bev);
    /* Best effort, for a connection refused before it is served: writes a short answer without
     * blocking, then closes fd. */
    void (*refuse)(const sb_transport_t *t, evutil_socket_t fd, const char *answer, size_t len);
    void *ctx;
    /* open returns a socket bufferevent (no filter, no TLS): its writes may be gathered per
     * loop turn (base/flush.h). */
    int socket_bev;
};

/* Plain TCP (net/tls.h makes the TLS one). */
extern const sb_transport_t sb_transport_tcp;

#endif
