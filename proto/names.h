/* Peer IDs and room names: their limits and the characters they may hold, no I/O. */
#ifndef SB_NAMES_H
#define SB_NAMES_H

#include <stddef.h>

/* Peer IDs and room names: at most this many bytes (buffers for them hold one more). Neither
 * ever needs escaping in JSON, a Redis key or a bus envelope. */
#define SB_ID_MAX 64
#define SB_ROOM_MAX 64

/* 1 when s is a valid peer ID: 1-64 characters of [A-Za-z0-9_.-]. */
int sb_peer_id_valid(const char *s, size_t len);

/* 1 when s is a valid room name: 1-64 characters of [A-Za-z0-9_.:-]. */
int sb_room_valid(const char *s, size_t len);

#endif
