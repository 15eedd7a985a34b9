/* PeerJS's PeerServer dialect (proto/PEERJS.md): its client frames read, its server frames written.
 */
#ifndef SB_PEERJS_H
#define SB_PEERJS_H

#include <stddef.h>

#include "names.h"
#include "str.h"

/* The frame types a PeerJS client sends; SB_PJ_OTHER for any other (PeerServer ignores them). */
typedef enum {
    SB_PJ_HEARTBEAT,
    SB_PJ_OFFER,
    SB_PJ_ANSWER,
    SB_PJ_CANDIDATE,
    SB_PJ_LEAVE,
    SB_PJ_EXPIRE,
    SB_PJ_OTHER,
} sb_pj_type_t;

/* A client frame: {"type":..., "dst":..., "payload":...}, other members ignored. */
typedef struct {
    sb_pj_type_t type;
    int has_dst;             /* dst was a JSON string */
    int dst_valid;           /* ... and a valid peer ID, decoded into dst */
    char dst[SB_ID_MAX + 1]; /* "" unless dst_valid */
    sb_str_t payload;        /* raw JSON text in the frame, len 0 when absent */
} sb_pj_msg_t;

/* Reads a client frame buf[0, len) without allocating. Returns 0 with *m filled (its payload
 * pointing into buf), or -1 when the frame is not a JSON object, or its type is not a string
 * (PeerServer ignores such frames). The last of repeated members counts, as in JavaScript. */
int sb_pj_parse(const char *buf, size_t len, sb_pj_msg_t *m);

/* The wire name of a type ("OFFER", ...); NULL for SB_PJ_OTHER. */
const char *sb_pj_type_name(sb_pj_type_t type);

/* A relayed frame for its recipient, {"type":T,"src":S,"dst":D[,"payload":P]}, as parts that
 * point into the arguments (src and dst are peer IDs: nothing to escape). Returns the number of
 * parts, at most SB_PJ_RELAY_PARTS. */
#define SB_PJ_RELAY_PARTS 9
size_t sb_pj_relay_parts(sb_pj_type_t type, const char *src, const char *dst, sb_str_t payload,
                         sb_str_t parts[SB_PJ_RELAY_PARTS]);

/* The server's own frames, written into out (at least SB_PJ_FRAME_MAX bytes, NUL-terminated);
 * each returns the length. */
#define SB_PJ_FRAME_MAX (96 + 2 * SB_ID_MAX)
size_t sb_pj_open(char *out);
/* {"type":"ERROR","payload":{"msg":msg}}: msg is one of PeerServer's texts (no escaping). */
size_t sb_pj_error(const char *msg, char *out);
size_t sb_pj_id_taken(char *out);
/* {"type":"EXPIRE","src":gone,"dst":to}: a message for `gone` could not be delivered. */
size_t sb_pj_expire(const char *gone, const char *to, char *out);

/* PeerServer's texts. */
#define SB_PJ_MSG_NO_ID "No id, token, or key supplied to websocket server"
#define SB_PJ_MSG_BAD_KEY "Invalid key provided"
#define SB_PJ_MSG_LIMIT "Server has reached its concurrent user limit"

#endif
