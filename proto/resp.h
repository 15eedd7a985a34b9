/* Redis replies (RESP2) read from the bytes a connection received, into caller-provided nodes. */
#ifndef SB_RESP_H
#define SB_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

/* The deepest nesting of arrays accepted: a top-level array is depth 1. CLUSTER SHARDS needs 4. */
#define SB_RESP_DEPTH_MAX 16

/* The longest bulk string (Redis's own proto-max-bulk-len default, 512 MiB); array counts have
 * the same bound. */
#define SB_RESP_BULK_MAX (512u * 1024 * 1024)

/* The longest simple string or error line, CRLF not counted. */
#define SB_RESP_LINE_MAX 65536

typedef enum {
    SB_RESP_STATUS,    /* +text: a simple string */
    SB_RESP_ERROR,     /* -text */
    SB_RESP_INTEGER,   /* :n, a signed 64-bit integer */
    SB_RESP_BULK,      /* $len then len bytes: a bulk string, any bytes */
    SB_RESP_NIL,       /* $-1: the nil bulk string */
    SB_RESP_ARRAY,     /* *count then count replies */
    SB_RESP_NIL_ARRAY, /* *-1: the nil array */
    SB_RESP_PUSH,      /* >count then count replies: RESP3's push, read like an array */
} sb_resp_type_t;

/* One reply in a parsed tree. The tree is flat, in pre-order: an array's node is followed by its
 * elements' nodes (its first element, when it has one, is the next node); `next` is the index just
 * past its subtree, where its next sibling is. So the elements of nodes[i] are nodes[i + 1],
 * nodes[nodes[i + 1].next], and so on, count of them. */
typedef struct {
    sb_resp_type_t type;
    sb_str_t str;    /* STATUS, ERROR, BULK: the text, in the parsed buffer (p is set even when len
                      * is 0); else {NULL, 0} */
    int64_t integer; /* INTEGER: the value; else 0 */
    size_t count;    /* ARRAY, PUSH: the number of elements; else 0 */
    size_t next;     /* the index of the node after this one's subtree (its own index + 1 for
                      * anything but a non-empty array) */
} sb_resp_t;

/* What sb_resp_parse returns when it refuses the input; *err says more. */
enum {
    SB_RESP_ETYPE = -1,  /* a reply starts with a byte other than + - : $ * > */
    SB_RESP_ELEN = -2,   /* a bulk length or array count is not a decimal (leading zeros
                          * refused), or negative other than -1 */
    SB_RESP_EINT = -3,   /* an integer is not a decimal (no leading zero, no "-0"), or does not
                          * fit 64 bits */
    SB_RESP_ECRLF = -4,  /* a line has a CR or LF not part of its CRLF end, or a bulk string's
                          * bytes are not followed by CRLF */
    SB_RESP_EDEPTH = -5, /* arrays nested deeper than SB_RESP_DEPTH_MAX */
    SB_RESP_ENODES = -6, /* the reply has more parts than max_nodes: parse again with more */
    SB_RESP_EBIG = -7,   /* a bulk string or array count over SB_RESP_BULK_MAX, or a simple
                          * string or error line over SB_RESP_LINE_MAX */
};

/* Parses one complete reply from the start of buf[0, len) (what a Redis connection received; any
 * bytes after the reply are left alone) into nodes[0, max_nodes), without allocating, reading
 * outside buf or writing outside nodes. Returns:
 * - the number of bytes the reply takes (> 0), with *used_nodes (when not NULL) set to the number
 *   of nodes filled (nodes[0] is the reply, nodes[0].next == *used_nodes); the nodes' strings
 *   point into buf, valid while buf is;
 * - 0 when buf does not hold a complete reply yet: call again with more bytes from the start;
 * - a negative SB_RESP_E* code with *err (when not NULL) set to a static reason: the stream is
 *   broken (but for SB_RESP_ENODES, where more nodes would do).
 * Every decision is taken from the bytes seen so far, so each prefix of a reply returns 0 or the
 * same answer as the whole reply. On 0 or an error, *used_nodes is 0 and nodes hold nothing to
 * use. Every reply needs at least one node. */
int sb_resp_parse(const char *buf, size_t len, sb_resp_t *nodes, size_t max_nodes,
                  size_t *used_nodes, const char **err);

/* 1 when node is a simple or bulk string equal to the NUL-terminated lit (exactly, with its
 * length), else 0. */
int sb_resp_str_is(const sb_resp_t *node, const char *lit);

/* Pub/sub messages as a subscribed connection receives them. */
typedef enum {
    SB_RESP_MESSAGE = 1,  /* ["message", channel, payload] (SUBSCRIBE) */
    SB_RESP_SMESSAGE = 2, /* ["smessage", channel, payload] (SSUBSCRIBE: sharded) */
    SB_RESP_PMESSAGE = 3, /* ["pmessage", pattern, channel, payload] (PSUBSCRIBE) */
} sb_resp_msg_kind_t;

typedef struct {
    sb_resp_msg_kind_t kind;
    sb_str_t pattern; /* PMESSAGE: the pattern that matched; else {NULL, 0} */
    sb_str_t channel;
    sb_str_t payload;
} sb_resp_msg_t;

/* Reads the reply in nodes[0, used) (as sb_resp_parse left it) as a pub/sub message: an array
 * (or push) of bulk strings, "message" or "smessage" with a channel and a payload, or "pmessage"
 * with a pattern, a channel and a payload (kind names compared exactly, as Redis writes them).
 * Returns its kind (> 0) with *msg filled, its slices in the parsed buffer; or 0, *msg zeroed,
 * for any other reply: subscribe and unsubscribe confirmations, a pong, an error. */
int sb_resp_pubsub_message(const sb_resp_t *nodes, size_t used, sb_resp_msg_t *msg);

#endif
