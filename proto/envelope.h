/* The bus envelope between nodes (one per pub/sub message): parse, size and write; no I/O. */
#ifndef SB_ENVELOPE_H
#define SB_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"
#include "str.h"

/* The wire, fields separated by single spaces (0x20):
 *
 *     sb1 SP kind SP sent SP from SP to SP room SP midlen SP mid payload
 *
 * kind    offer, answer, candidate, bye (relayed), peer-joined, peer-left (room events),
 *         replaced (a session taken over by another connection: from and to are its peer ID),
 *         resent (the node that published it has sent again, before it on the same channel,
 *         what it kept for a resumed session: from and to are the session's peer ID)
 * sent    the sender's clock, microseconds since the Unix epoch: 1-20 digits, no leading zero
 *         (but "0"), at most UINT64_MAX
 * from    a peer ID (sb_peer_id_valid) or empty; required by every kind
 * to      a peer ID or empty; required by relay kinds and replaced, empty on room events
 * room    a room name (sb_room_valid) or empty; required by room events, empty on relay kinds
 * midlen  1-3 digits, no leading zero (but "0"), at most SB_ENV_MID_MAX; "0" on events
 * mid     exactly midlen bytes: the client's mid as JSON text (not checked here)
 * payload every byte after the mid: the client's payload as JSON text (not checked here), empty
 *         when absent; always empty on room events
 *
 * Every valid envelope has exactly one encoding: sb_env_write(sb_env_parse(x)) gives x back. */

#define SB_ENV_VERSION "sb1"

/* The longest mid text: SB_MID_MAX decoded bytes, each written as a \uXXXX escape, and quotes. */
#define SB_ENV_MID_MAX (SB_MID_MAX * 6 + 2)

typedef enum {
    SB_ENV_OFFER,
    SB_ENV_ANSWER,
    SB_ENV_CANDIDATE,
    SB_ENV_BYE,
    SB_ENV_PEER_JOINED,
    SB_ENV_PEER_LEFT,
    SB_ENV_REPLACED,
    SB_ENV_RESENT,
} sb_env_kind_t;

/* A parsed envelope, or one to write. The slices point into the parsed buffer (or the caller's
 * memory when writing); each has len 0 (and p NULL, once parsed) when absent. */
typedef struct {
    sb_env_kind_t kind;
    uint64_t sent_us;
    sb_str_t from, to, room; /* len 0 when absent */
    sb_str_t mid;            /* raw JSON text, len 0 when absent */
    sb_str_t payload;        /* raw JSON text, len 0 when absent */
} sb_env_t;

/* What sb_env_parse returns; *err says more. */
enum {
    SB_ENV_EVERSION = -1, /* not "sb1": an envelope this node cannot read */
    SB_ENV_EKIND = -2,    /* not one of the eight kind names */
    SB_ENV_EFIELD = -3,   /* from, to or room present but breaking its rule */
    SB_ENV_EMID = -4,     /* midlen malformed, over SB_ENV_MID_MAX or past the end */
    SB_ENV_ESENT = -5,    /* sent malformed or over UINT64_MAX */
    SB_ENV_ESHAPE = -6,   /* a field the kind requires is absent, or one it forbids is present */
    SB_ENV_ESEP = -7,     /* a separator missing: the input ends early or a field runs on */
};

/* Parses the envelope buf[0, len) in one pass, without allocating or reading outside it. Returns
 * 0 with *env filled, its slices pointing into buf (valid while buf is); or a negative SB_ENV_E*
 * code with *err (when err is not NULL) set to a static reason, and *env not to be used. */
int sb_env_parse(const char *buf, size_t len, sb_env_t *env, const char **err);

/* The exact number of bytes sb_env_write writes for env. */
size_t sb_env_size(const sb_env_t *env);

/* Writes env to out (sb_env_size(env) bytes, not NUL-terminated), without snprintf or allocation;
 * returns the bytes written. The caller guarantees env is valid (as sb_env_parse would accept). */
size_t sb_env_write(const sb_env_t *env, char *out);

/* The head of the envelope: everything before the mid, at most SB_ENV_HEAD_MAX bytes. Writing the
 * head, then the mid's bytes, then the payload's gives what sb_env_write gives, so a sender can
 * hand the three on without joining them first. Returns the bytes written. */
#define SB_ENV_HEAD_MAX 256
size_t sb_env_write_head(const sb_env_t *env, char *out);

/* The wire name of a kind ("offer", ..., "peer-left"); NULL for a value outside the enum. */
const char *sb_env_kind_name(sb_env_kind_t kind);

/* The kind named by s[0, len), or -1 for an unknown name (compared exactly, with its length). */
int sb_env_kind_parse(const char *s, size_t len);

/* 1 for offer/answer/candidate/bye, else 0. */
int sb_env_is_relay(sb_env_kind_t kind);

/* The room-event envelope as a Lua string.format pattern for Redis scripts that must build room
 * events themselves: string.format(SB_ENV_ROOM_EVENT_LUA, kind, sent_us_as_string, peer, room).
 * Produces exactly what sb_env_write produces for the same room event (only %s, no quote or
 * backslash, so it can be pasted into a Lua string literal). sent_us must be passed as a string of
 * digits: Lua 5.1's tostring writes a number of 1e15 or more as "1.7e+15". */
#define SB_ENV_ROOM_EVENT_LUA "sb1 %s %s %s  %s 0 "

/* The replaced event the same way: string.format(SB_ENV_REPLACED_LUA, sent_us_as_string, id, id).
 */
#define SB_ENV_REPLACED_LUA "sb1 replaced %s %s %s  0 "

/* Each peer's bus channel is this prefix and its ID; the node that holds the peer subscribes it.
 * Redis scripts paste the prefix in as a Lua string literal. On a Redis Cluster the channel is
 * "sb:{<id>}:ch" instead: its hash tag puts it in the slot of the peer's keys (sb:{<id>}:...). */
#define SB_ENV_PEER_CHANNEL "sb:peer:"
#define SB_ENV_CHANNEL_MAX (sizeof(SB_ENV_PEER_CHANNEL) + SB_ID_MAX)

/* Writes the channel of peer id (a valid ID) into out (SB_ENV_CHANNEL_MAX bytes), NUL-terminated:
 * "sb:peer:<id>", or "sb:{<id>}:ch" when sharded (Redis Cluster); returns its length. */
size_t sb_env_peer_channel(const char *id, int sharded, char *out);

/* A resend request, published on SB_ENV_RESEND_CHANNEL, which every node subscribes to:
 *
 *     sb1 SP resend SP from_ms SP until_ms (SP id)*
 *
 * asks each node to send again the relays it kept (acked, --resend-seconds) for these peers,
 * because they may have been lost on the way: the peer resumed its session elsewhere, or its
 * node's subscription to Redis broke. The relays acked from from_ms until until_ms milliseconds
 * ago (each 1-20 digits, no leading zero but "0", at most UINT64_MAX; until_ms <= from_ms);
 * "0 0": for each peer, those acked just before the last one acked to it (what its node may
 * have held when it went away). Each id is a peer ID (sb_peer_id_valid), one space before each,
 * none after the last. */
#define SB_ENV_RESEND_CHANNEL "sb:resend"
#define SB_ENV_RESEND_HEAD_MAX 60

/* Writes the request's head ("sb1 resend from_ms until_ms", no trailing space) into out
 * (SB_ENV_RESEND_HEAD_MAX bytes); returns its length. The caller appends " id" per peer. */
size_t sb_env_resend_head(uint64_t from_ms, uint64_t until_ms, char *out);

/* Checks a whole resend request buf[0, len): 0 with *from_ms, *until_ms set and *ids at the
 * offset of its first " id" (len when none); or a negative SB_ENV_E* code with *err set (when
 * not NULL). */
int sb_env_resend_parse(const char *buf, size_t len, uint64_t *from_ms, uint64_t *until_ms,
                        size_t *ids, const char **err);

/* The next peer ID of a request sb_env_resend_parse accepted, from *pos (start at its *ids):
 * returns 1 with *id set and *pos past it, or 0 at the end. */
int sb_env_resend_next(const char *buf, size_t len, size_t *pos, sb_str_t *id);

#endif
