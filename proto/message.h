/* Signaling protocol v1 (PROTOCOL.md): parses client messages and builds server messages.
 *
 * Errors (as everywhere in proto/): a function returns 0, or a length or count >= 0, on success and
 * a negative code on failure; a `const char **err` out-parameter (NULL allowed) then receives a
 * static reason for people. */
#ifndef SB_MESSAGE_H
#define SB_MESSAGE_H

#include <stddef.h>

#include "names.h"
#include "str.h"

/* A string mid may hold this many bytes once decoded; a number mid this many characters. */
#define SB_MID_MAX 64

typedef enum {
    SB_MSG_OFFER,
    SB_MSG_ANSWER,
    SB_MSG_CANDIDATE,
    SB_MSG_BYE,
    SB_MSG_JOIN,
    SB_MSG_LEAVE,
} sb_msg_type_t;

/* A parsed client message. payload and mid are slices of the caller's buffer holding their
 * exact JSON text (mid with its quotes when a string); len 0 when absent. */
typedef struct {
    sb_msg_type_t type;
    char to[SB_ID_MAX + 1];     /* relay types */
    char room[SB_ROOM_MAX + 1]; /* join, leave */
    sb_str_t payload;
    sb_str_t mid;
    size_t error_at; /* SB_MSG_EJSON, SB_MSG_ETRAILING: the offset of the offending byte */
} sb_msg_t;

/* What sb_msg_parse returns. The reason in *err names the field, when there is one
 * ("missing field 'to'"); the JSON errors leave their byte offset in m->error_at, so that the
 * message for people reads "<reason> at byte N" (SB_MSG_EJSON: "invalid JSON at byte 12") or
 * "invalid JSON at byte N: <reason>" (SB_MSG_ETRAILING: "... : data after the object"). */
enum {
    SB_MSG_EJSON = -1,         /* not valid JSON (or cut short) */
    SB_MSG_ETRAILING = -2,     /* a complete object with bytes after it */
    SB_MSG_ENOT_OBJECT = -3,   /* valid JSON, but not an object */
    SB_MSG_EDUPLICATE = -4,    /* a field the protocol knows, given twice */
    SB_MSG_EVALUE = -5,        /* a field breaking its rule: mid (checked first), to or room */
    SB_MSG_EMISSING = -6,      /* type, or the to or room its type requires, absent */
    SB_MSG_ENOT_STRING = -7,   /* type, to or room not a JSON string */
    SB_MSG_EUNKNOWN_TYPE = -8, /* type is none of the six names */
};

/* Parses one client message. Returns 0, or a negative SB_MSG_E* code with *err (when err is not
 * NULL) set to a static reason for people and, for the JSON errors, m->error_at set. Even on
 * error, m->mid is set when a valid mid was found, so the error can carry it; nothing else in m
 * is to be used. */
int sb_msg_parse(const char *json, size_t len, sb_msg_t *m, const char **err);

/* The wire name of a type ("offer", ...). */
const char *sb_msg_type_name(sb_msg_type_t type);

/* Builders for server messages. Each returns a malloc'ed, NUL-terminated JSON text and sets
 * *len, or returns NULL when out of memory; the caller frees it. Arguments that are JSON text
 * (ice_servers, payload, mid) are copied verbatim and must be valid JSON; a slice of length 0
 * means absent. IDs, rooms and codes are plain strings, escaped as needed. */
/* resume: the session's resume token, NULL when sessions are off (then resumed is not written). */
char *sb_msg_welcome(const char *id, const char *node, const char *ice_servers, const char *resume,
                     int resumed, size_t *len);
char *sb_msg_relay(sb_msg_type_t type, const char *from, sb_str_t payload, sb_str_t mid,
                   size_t *len);
/* The bytes sb_msg_relay builds, as the parts that make them up, in order, without copying
 * payload or mid (they and from must outlive the parts): for writing the message straight into
 * an output buffer. from must be a valid peer ID (which needs no escaping). Returns the number of
 * parts, at most SB_MSG_RELAY_PARTS. */
#define SB_MSG_RELAY_PARTS 10
size_t sb_msg_relay_parts(sb_msg_type_t type, const char *from, sb_str_t payload, sb_str_t mid,
                          sb_str_t parts[SB_MSG_RELAY_PARTS]);
char *sb_msg_ack(sb_str_t mid, size_t *len);
/* {"type":"queued","mid":...}: held for a recipient between connections. */
char *sb_msg_queued(sb_str_t mid, size_t *len);
/* The bytes sb_msg_ack builds, as parts without copying mid (which must outlive them). mid must
 * not be empty. Returns the number of parts, SB_MSG_ACK_PARTS. */
#define SB_MSG_ACK_PARTS 3
size_t sb_msg_ack_parts(sb_str_t mid, sb_str_t parts[SB_MSG_ACK_PARTS]);
/* to and room may be NULL. */
char *sb_msg_error(const char *code, const char *message, const char *to, const char *room,
                   sb_str_t mid, size_t *len);
char *sb_msg_joined(const char *room, const char *const *peers, size_t npeers, sb_str_t mid,
                    size_t *len);
char *sb_msg_left(const char *room, sb_str_t mid, size_t *len);
/* event is "peer-joined" or "peer-left". */
char *sb_msg_peer_event(const char *event, const char *room, const char *peer, size_t *len);

#endif
