/* A WebSocket client connection (RFC 6455, ws://) on a libevent bufferevent, text messages only. */
#ifndef SB_BENCH_WSCLIENT_H
#define SB_BENCH_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <netinet/in.h>

#include "str.h"

typedef struct sb_wsc sb_wsc_t;

/* What a connection tells its owner. Each handler is called from the event loop; none may free
 * the connection (sb_wsc_free it later, outside its callbacks). */
typedef struct {
    /* the server accepted the upgrade (101 with the right Sec-WebSocket-Accept) */
    void (*on_open)(sb_wsc_t *c, void *arg);
    /* a complete text message; text is valid during the call only */
    void (*on_text)(sb_wsc_t *c, const char *text, size_t len, void *arg);
    /* the connection is over, called once: http_status is the refusing answer's status when the
     * handshake did not get 101 (else 0), close_code the server's close code (1006 when the
     * connection dropped without one), why a static reason */
    void (*on_close)(sb_wsc_t *c, int http_status, int close_code, const char *why, void *arg);
} sb_wsc_handlers_t;

/* Starts connecting to server (from source when not NULL, with IP_BIND_ADDRESS_NO_PORT so that
 * the port is chosen at connect time and each source address has the whole ephemeral range per
 * destination), then sends the upgrade for target ("/ws?id=x") with Host host, offering
 * switchboard.v1. timeout_s bounds the connect and the handshake. Returns the connection (owned
 * by the caller: sb_wsc_free), or NULL with *err set when the socket cannot even be made. h and
 * arg must outlive the connection. */
sb_wsc_t *sb_wsc_open(struct event_base *base, const struct sockaddr_in *server,
                      const struct in_addr *source, const char *host, const char *target,
                      double timeout_s, const sb_wsc_handlers_t *h, void *arg, const char **err);

/* Replaces the handlers and their argument (h and arg must outlive the connection). */
void sb_wsc_set_handlers(sb_wsc_t *c, const sb_wsc_handlers_t *h, void *arg);

/* Sends one text message made of n parts, masked as a client must. Returns 0, or -1 when the
 * connection is not open (or out of memory). */
int sb_wsc_send_parts(sb_wsc_t *c, const sb_str_t *parts, size_t n);

/* Bytes queued for the server and not yet written to the socket. */
size_t sb_wsc_pending(const sb_wsc_t *c);

/* 1 once on_open was called and until the connection ends. */
int sb_wsc_is_open(const sb_wsc_t *c);

/* Starts a clean close (a close frame with code 1000); on_close follows when the server answers
 * or the connection drops. Does nothing on a connection that is not open. */
void sb_wsc_close(sb_wsc_t *c);

/* Ends the connection at once (on_close is not called) and frees it. NULL is allowed. */
void sb_wsc_free(sb_wsc_t *c);

#endif
