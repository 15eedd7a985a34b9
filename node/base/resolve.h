/* Host names resolved by the system's resolver on a thread of its own: the loop never waits. */
#ifndef SB_RESOLVE_H
#define SB_RESOLVE_H

#include <netdb.h>

#include <event2/event.h>

typedef struct sb_resolve sb_resolve_t;

/* The answer, on the loop: res (valid during the call; its first address is the one to try),
 * or NULL and a reason. */
typedef void (*sb_resolve_fn)(void *arg, const struct addrinfo *res, const char *err);

/* Resolves host and port as getaddrinfo does (/etc/hosts, the servers of resolv.conf in their
 * order, its search domains), on a thread, and calls done on the loop of base. Returns NULL when
 * out of memory or threads (done is then not called). */
sb_resolve_t *sb_resolve_start(struct event_base *base, const char *host, int port,
                               sb_resolve_fn done, void *arg);

/* Gives up on a resolution not yet answered: done will not be called. */
void sb_resolve_cancel(sb_resolve_t *q);

#endif
