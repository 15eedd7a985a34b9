/* TURN REST credentials (coturn's use-auth-secret): time-limited, derived from a shared secret. */
#ifndef SB_TURN_H
#define SB_TURN_H

#include <stddef.h>
#include <stdint.h>

/* "<expiry unix time>:<peer id>" with a peer ID of at most 64 bytes, and its NUL. */
#define SB_TURN_USERNAME_MAX 86
/* base64 of an HMAC-SHA1 (20 bytes), and its NUL. */
#define SB_TURN_CREDENTIAL_MAX 29

/* Writes the username "<expiry>:<peer>" and the credential base64(HMAC-SHA1(secret, username))
 * that a TURN server configured with the same secret (coturn: use-auth-secret,
 * static-auth-secret) accepts until expiry (seconds since the epoch). peer is a valid peer ID.
 * Returns 0, or -1 when HMAC failed (out of memory), with *err set to a static reason. */
int sb_turn_credentials(const char *secret, size_t secret_len, const char *peer, uint64_t expiry,
                        char username[SB_TURN_USERNAME_MAX],
                        char credential[SB_TURN_CREDENTIAL_MAX], const char **err);

#endif
