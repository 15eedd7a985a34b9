/* Host names resolved by the system's resolver on a thread of its own: the loop never waits.
 *
 * getaddrinfo, unlike libevent's evdns, follows resolv.conf as every other program on the
 * machine does: its servers in order, an answer of "no such name" from the first one final.
 * (evdns takes turns between the servers: in a podman container, whose resolv.conf lists the
 * network's server and the host's, half the lookups of a container name failed.) The thread
 * and the loop share one block, and whichever of them is last to let go of it frees it. */
#include "base/resolve.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/loop.h"

enum { RUNNING, ANSWERED, ABANDONED };

/* How often the loop looks for the answer while a lookup runs (only then). */
#define POLL_SECONDS 0.005

struct sb_resolve {
    atomic_int state;
    struct event *poll; /* the loop's, until done or cancelled */
    sb_resolve_fn done;
    void *arg;
    char host[256], port[8];
    struct addrinfo *res; /* written by the thread before it says ANSWERED */
    int gai;
};

static void release(sb_resolve_t *q)
{
    if (q->res)
        freeaddrinfo(q->res);
    free(q);
}

static void *lookup(void *arg)
{
    sb_resolve_t *q = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    q->gai = getaddrinfo(q->host, q->port, &hints, &q->res);
    if (atomic_exchange(&q->state, ANSWERED) == ABANDONED)
        release(q); /* nobody waits for it any more */
    return NULL;
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    sb_resolve_t *q = arg;
    (void)fd;
    (void)what;
    if (atomic_load(&q->state) != ANSWERED) {
        struct timeval tv = sb_loop_tv(POLL_SECONDS);
        evtimer_add(q->poll, &tv);
        return;
    }
    event_free(q->poll);
    if (q->gai == 0 && q->res != NULL)
        q->done(q->arg, q->res, NULL);
    else
        q->done(q->arg, NULL, q->gai ? gai_strerror(q->gai) : "no address");
    release(q);
}

sb_resolve_t *sb_resolve_start(struct event_base *base, const char *host, int port,
                               sb_resolve_fn done, void *arg)
{
    sb_resolve_t *q = calloc(1, sizeof(*q));
    pthread_attr_t attr;
    pthread_t thread;
    if (q == NULL)
        return NULL;
    atomic_init(&q->state, RUNNING);
    q->done = done;
    q->arg = arg;
    snprintf(q->host, sizeof(q->host), "%s", host);
    snprintf(q->port, sizeof(q->port), "%d", port);
    struct timeval tv = sb_loop_tv(POLL_SECONDS);
    q->poll = evtimer_new(base, on_poll, q);
    if (q->poll == NULL || evtimer_add(q->poll, &tv) != 0) {
        if (q->poll)
            event_free(q->poll);
        free(q);
        return NULL;
    }
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) ||
             pthread_create(&thread, &attr, lookup, q);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        event_free(q->poll);
        free(q);
        return NULL;
    }
    return q;
}

void sb_resolve_cancel(sb_resolve_t *q)
{
    event_free(q->poll);
    if (atomic_exchange(&q->state, ABANDONED) == ANSWERED)
        release(q); /* the thread is done with it */
}
