/* Peer IDs and room names: their limits and the characters they may hold, no I/O. */
#include "names.h"

#include <string.h>

static int valid_name(const char *s, size_t len, size_t max, const char *extra)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr(extra, c) != NULL)))
            return 0;
    }
    return 1;
}

int sb_peer_id_valid(const char *s, size_t len) { return valid_name(s, len, SB_ID_MAX, "_.-"); }

int sb_room_valid(const char *s, size_t len) { return valid_name(s, len, SB_ROOM_MAX, "_.:-"); }
