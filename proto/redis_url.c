/* Parses redis[s]://[[user]:password@]host[:port][/db] URLs (the node's --redis option), no I/O. */
#include "redis_url.h"

#include "str.h"

#include <string.h>

static int fail(const char **err, int code, const char *why)
{
    if (err != NULL)
        *err = why;
    return code;
}

/* Parses a decimal number in [lo, hi] spanning exactly [s, s+n). */
static int number(const char *s, size_t n, int lo, int hi, int *out)
{
    long v = 0;
    if (n == 0 || n > 6)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int sb_redis_url_parse(const char *url, sb_redis_url_t *out, const char **err)
{
    static const char plain[] = "redis://", tls[] = "rediss://";
    const char *p;
    memset(out, 0, sizeof(*out));
    out->port = 6379;

    if (strncmp(url, plain, sizeof(plain) - 1) == 0) {
        p = url + sizeof(plain) - 1;
    } else if (strncmp(url, tls, sizeof(tls) - 1) == 0) {
        p = url + sizeof(tls) - 1;
        out->tls = 1;
    } else {
        return fail(err, SB_REDIS_URL_ESCHEME, "it must start with redis:// or rediss://");
    }
    const char *end = p + strlen(p);

    /* The path: /db, then nothing else. */
    const char *slash = strchr(p, '/');
    if (slash != NULL) {
        if (slash + 1 < end && number(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &out->db))
            return fail(err, SB_REDIS_URL_EDB, "the database must be a number");
        end = slash;
    }
    /* Credentials: everything before the last '@' (a password may contain '@'). */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return fail(err, SB_REDIS_URL_EAUTH, "credentials must be user:password or :password");
        if (sb_percent_decode(p, (size_t)(colon - p), out->user, sizeof(out->user)) < 0 ||
            sb_percent_decode(colon + 1, (size_t)(at - colon - 1), out->password,
                              sizeof(out->password)) < 0)
            return fail(err, SB_REDIS_URL_EAUTH,
                        "the user or password is too long or badly encoded");
        p = at + 1;
    }
    /* Host and port. */
    const char *host = p, *hend;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL)
            return fail(err, SB_REDIS_URL_EHOST, "an IPv6 address needs its closing ]");
        host = p + 1;
        hend = close;
        p = close + 1;
    } else {
        hend = memchr(p, ':', (size_t)(end - p));
        if (hend == NULL)
            hend = end;
        p = hend;
    }
    if (hend == host || (size_t)(hend - host) >= sizeof(out->host))
        return fail(err, SB_REDIS_URL_EHOST, "the host is missing or too long");
    memcpy(out->host, host, (size_t)(hend - host));
    out->host[hend - host] = '\0';
    if (p < end) {
        if (*p != ':' || number(p + 1, (size_t)(end - p - 1), 1, 65535, &out->port) != 0)
            return fail(err, SB_REDIS_URL_EPORT, "the port must be a number from 1 to 65535");
    }
    return 0;
}
