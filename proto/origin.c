/* Origin checks for WebSocket handshakes (RFC 6454 serialized origins), no I/O. */
#include "origin.h"

#include <string.h>
#include <strings.h>

/* A host name or address character: letters, digits, '-', '.', and IPv6's brackets and colons. */
static int host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '[' || c == ']' || c == ':';
}

/* Where "://" starts in s (len bytes), or NULL. */
static const char *find_sep(const char *s, size_t len)
{
    for (size_t i = 0; i + 3 <= len; i++)
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/')
            return s + i;
    return NULL;
}

int sb_origin_pattern_check(const char *p, size_t len, const char **err)
{
    if (len == 4 && strncmp(p, "null", 4) == 0)
        return 0;
    const char *sep = find_sep(p, len);
    if (sep == NULL || sep == p) {
        *err = "an origin is scheme://host[:port], like https://app.example.com";
        return -1;
    }
    for (const char *s = p; s < sep; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (s > p && ((*s >= '0' && *s <= '9') || *s == '+' || *s == '-' || *s == '.')))) {
            *err = "bad scheme in an origin";
            return -1;
        }
    const char *host = sep + 3, *end = p + len;
    if (end - host >= 2 && host[0] == '*' && host[1] == '.')
        host += 2;
    if (host == end) {
        *err = "no host in an origin";
        return -1;
    }
    for (const char *s = host; s < end; s++)
        if (!host_char(*s)) {
            *err = *s == '/' ? "an origin has no path: drop the trailing '/'"
                             : "bad character in an origin's host (a '*' may only start it)";
            return -1;
        }
    return 0;
}

int sb_origin_match(const char *pattern, size_t plen, const char *origin, size_t olen)
{
    const char *sep = find_sep(pattern, plen);
    if (sep == NULL || sep + 3 >= pattern + plen || sep[3] != '*') /* exact, or "null" */
        return plen == olen && strncasecmp(pattern, origin, plen) == 0;
    /* A wildcard: the origin is the pattern with its '*' replaced by one or more labels. */
    size_t head = (size_t)(sep + 3 - pattern), rest = plen - head - 1; /* rest: ".example.com" */
    if (olen < head + 1 + rest || strncasecmp(pattern, origin, head) != 0 ||
        strncasecmp(pattern + head + 1, origin + olen - rest, rest) != 0)
        return 0;
    /* The labels in front: one or more, made of host characters (no ':' or brackets). */
    for (const char *s = origin + head; s < origin + olen - rest; s++)
        if (!host_char(*s) || *s == ':' || *s == '[' || *s == ']' ||
            (*s == '.' && s == origin + head))
            return 0;
    return 1;
}

int sb_origin_allowed(const char *list, const char *origin, size_t olen)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0 && sb_origin_match(p, n, origin, olen))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}
