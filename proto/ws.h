/* RFC 6455 WebSocket framing: a streaming message reader and frame writers, with no I/O.
 *
 * Errors (as everywhere in proto/): a function returns 0, or a length or count >= 0, on success and
 * a negative code on failure; a `const char **err` out-parameter (NULL allowed) then receives a
 * static reason for logs. */
#ifndef SB_WS_H
#define SB_WS_H

#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

enum {
    SB_WS_OP_CONT = 0x0,
    SB_WS_OP_TEXT = 0x1,
    SB_WS_OP_BINARY = 0x2,
    SB_WS_OP_CLOSE = 0x8,
    SB_WS_OP_PING = 0x9,
    SB_WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1). */
enum {
    SB_WS_CLOSE_NORMAL = 1000,
    SB_WS_CLOSE_GOING_AWAY = 1001,
    SB_WS_CLOSE_PROTOCOL_ERROR = 1002,
    SB_WS_CLOSE_UNSUPPORTED = 1003,
    SB_WS_CLOSE_NO_STATUS = 1005, /* never sent: reported when a close frame has no code */
    SB_WS_CLOSE_ABNORMAL = 1006,  /* never sent: the connection dropped without a close frame */
    SB_WS_CLOSE_INVALID_DATA = 1007,
    SB_WS_CLOSE_POLICY = 1008,
    SB_WS_CLOSE_TOO_BIG = 1009,
    SB_WS_CLOSE_INTERNAL = 1011,
};

/* Largest payload of a control frame, and of a complete frame header. */
#define SB_WS_MAX_CONTROL 125
#define SB_WS_MAX_HEADER 14

/* Which side of the connection the reader is on: a server requires masked frames, a client
 * rejects them. */
typedef enum { SB_WS_SERVER, SB_WS_CLIENT } sb_ws_role_t;

typedef enum {
    SB_WS_EV_NONE = 0, /* bytes consumed, nothing complete yet */
    SB_WS_EV_TEXT,     /* a complete, valid UTF-8 text message */
    SB_WS_EV_BINARY,   /* a complete binary message */
    SB_WS_EV_PING,
    SB_WS_EV_PONG,
    SB_WS_EV_CLOSE, /* a valid close frame: close_code and the reason in data */
} sb_ws_event_type_t;

/* What sb_ws_reader_feed completed. data/len stay valid until the next call on the reader. */
typedef struct {
    sb_ws_event_type_t type;
    const uint8_t *data;
    size_t len;
    uint16_t close_code; /* SB_WS_EV_CLOSE: the peer's code, or SB_WS_CLOSE_NO_STATUS */
} sb_ws_event_t;

/* A streaming reader: feed it bytes as they arrive; it validates every frame as soon as its
 * header is complete and text as soon as each payload byte arrives. */
typedef struct {
    sb_ws_role_t role;
    size_t max_message; /* largest message payload accepted, fragments summed */
    int allow_binary;   /* 0: the first binary frame is an error (1003) */

    /* the frame being read */
    int in_payload; /* 0: waiting for a header; 1: reading its payload */
    int frame_fin;
    int frame_opcode;
    int frame_masked;
    uint8_t frame_mask[4];
    uint64_t frame_left; /* payload bytes of this frame not yet consumed */
    uint64_t frame_pos;  /* payload bytes of this frame consumed (mask offset) */

    /* the data message being assembled (possibly over several fragments) */
    int msg_opcode; /* SB_WS_OP_TEXT, SB_WS_OP_BINARY, or 0 when none is in progress */
    uint8_t *msg;   /* owned; grown as needed, never beyond max_message */
    size_t msg_len;
    size_t msg_cap;
    sb_utf8_t utf8;

    /* the control frame being assembled (never fragmented), when it arrives in pieces or through
     * sb_ws_reader_feed: SB_WS_MAX_CONTROL bytes, allocated then and kept; a whole control frame
     * given to sb_ws_reader_feed_in_place is read where it lies */
    uint8_t *ctl;
    size_t ctl_len;

    /* private: the failure feed reported, returned again by every later call */
    int failed; /* 0, or an SB_WS_E* code */
    const char *failed_why;
} sb_ws_reader_t;

/* What sb_ws_reader_feed returns for a frame that breaks the protocol (or a limit). Each says
 * which close code to fail the connection with (sb_ws_error_close_code). */
enum {
    SB_WS_EPROTOCOL = -1, /* a framing rule of RFC 6455 broken: 1002 */
    SB_WS_EBINARY = -2,   /* a binary message when allow_binary is 0: 1003 */
    SB_WS_EUTF8 = -3,     /* a text message or a close reason that is not UTF-8: 1007 */
    SB_WS_ETOO_BIG = -4,  /* a message over max_message: 1009 */
    SB_WS_ENOMEM = -5,    /* no memory for the message: 1011 */
};

/* The close code to send for an SB_WS_E* code: 1002, 1003, 1007, 1009 or 1011 (also for any other
 * value). */
uint16_t sb_ws_error_close_code(int code);

/* Initialises a reader; it owns no memory until the first fragmented or non-empty message. */
void sb_ws_reader_init(sb_ws_reader_t *r, sb_ws_role_t role, size_t max_message, int allow_binary);

/* Frees what the reader owns. The reader may be initialised again afterwards. */
void sb_ws_reader_free(sb_ws_reader_t *r);

/* Consumes bytes from buf, stopping after at most one event.
 * Returns the number of bytes consumed (>= 0) and sets *ev (SB_WS_EV_NONE when nothing
 * completed). 0 with SB_WS_EV_NONE means more bytes are needed before anything can be consumed
 * (an incomplete frame header is never consumed: present it again with more bytes after it).
 * Returns a negative SB_WS_E* code on a protocol violation, with *err (when err is not NULL) set
 * to a static reason; the connection must then be failed with sb_ws_error_close_code(code). A
 * failed reader stays failed: every later call consumes nothing and returns the same code and
 * reason. buf is never written: payloads are unmasked into the reader's own buffers. */
int sb_ws_reader_feed(sb_ws_reader_t *r, const uint8_t *buf, size_t len, sb_ws_event_t *ev,
                      const char **err);

/* The same, except that a whole unfragmented text or binary frame, or a whole control frame,
 * lying in buf is unmasked in buf itself and reported pointing into it (data valid while buf is,
 * and until the next call): no copy, and no buffer kept by the reader for the common case.
 * Anything else (fragments, a frame not all there yet) goes the way of sb_ws_reader_feed. Events,
 * bytes consumed and errors are the same as sb_ws_reader_feed's for the same bytes; only the
 * bytes consumed are written (and those of a frame refused, which was unmasked). */
int sb_ws_reader_feed_in_place(sb_ws_reader_t *r, uint8_t *buf, size_t len, sb_ws_event_t *ev,
                               const char **err);

/* Writes a frame header for a payload of len bytes into out (at least SB_WS_MAX_HEADER bytes)
 * and returns its length. mask is NULL for server frames, 4 bytes for client frames; the
 * caller masks the payload itself with sb_ws_mask. */
size_t sb_ws_write_header(uint8_t *out, int fin, int opcode, uint64_t len, const uint8_t *mask);

/* XORs data with mask, starting at byte offset of the frame's payload (masking is its own
 * inverse). */
void sb_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Builds a close frame payload: the code in network order then the reason, truncated to fit
 * a control frame on a UTF-8 boundary; for SB_WS_CLOSE_NO_STATUS, an empty payload (a close
 * without a code, as PeerServer sends). Returns its length (at most SB_WS_MAX_CONTROL). */
size_t sb_ws_close_payload(uint8_t *out, uint16_t code, const char *reason);

/* Returns 1 when code may appear in a close frame on the wire (1000-1003, 1007-1011, 3000-4999). */
int sb_ws_close_code_valid(unsigned code);

#endif
