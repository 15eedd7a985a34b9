/* Origin checks for WebSocket handshakes (RFC 6454 serialized origins), no I/O. */
#ifndef SB_ORIGIN_H
#define SB_ORIGIN_H

#include <stddef.h>

/* Checks one allowed-origin pattern: scheme "://" host [":" port], where the host may start with
 * "*." (any one or more labels in front of the rest), or the literal "null". Returns 0, or -1
 * with *err set to a static reason. */
int sb_origin_pattern_check(const char *pattern, size_t len, const char **err);

/* Whether origin (an Origin header's value, len bytes) matches pattern: scheme, host and port
 * compared without regard to case, a "*." host matching one or more whole labels. A default
 * port is not filled in: list https://a.example and https://a.example:443 both if both come. */
int sb_origin_match(const char *pattern, size_t plen, const char *origin, size_t olen);

/* Whether origin matches one of the comma-separated patterns in list. */
int sb_origin_allowed(const char *list, const char *origin, size_t olen);

#endif
