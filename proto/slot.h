/* Redis Cluster key hashing: which of the 16384 hash slots a key (or a pub/sub shard channel) is
 * in.
 *
 * Pure functions over bytes, no I/O and no allocation. The answers are Redis's own (the cluster
 * specification's "Keys distribution model" and "Hash tags"), so that a key maps to the node that
 * Redis says owns it. */
#ifndef SB_SLOT_H
#define SB_SLOT_H

#include <stddef.h>

/* How many hash slots a Redis Cluster has; a slot is 0 to SB_SLOTS - 1. */
#define SB_SLOTS 16384

/* CRC16-CCITT in its XMODEM form (polynomial 0x1021, initial value 0, no reflection, no final
 * XOR) of len bytes at buf, as Redis computes it: 0 to 65535. buf may be NULL when len is 0.
 * The check value is sb_slot_crc16("123456789", 9) == 0x31C3. */
unsigned sb_slot_crc16(const char *buf, size_t len);

/* The hash slot (0 to SB_SLOTS - 1) of the len-byte key, which may hold any byte, NUL included.
 * When the key holds a '{' and, somewhere after it, a '}' with at least one byte between the two,
 * only the bytes between the first '{' and the first '}' after it are hashed (a hash tag:
 * "{user1000}.following" and "{user1000}.followers" share a slot); otherwise the whole key is. */
unsigned sb_slot_of(const char *key, size_t len);

#endif
