/* Parses redis[s]://...[/db] and redis[s]+cluster://host[:port][,...] URLs (--redis), no I/O. */
#include "redis_url.h"

#include "str.h"

#include <string.h>

_Static_assert(SB_REDIS_URL_SEEDS_MAX == 16, "the too-many-nodes reason below says 16");

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

/* Parses host[:port] or [addr][:port] spanning exactly [p, end) into seed (port 6379 unless
 * given). Returns 0 or a negative SB_REDIS_URL_E* code with *err set. */
static int endpoint(const char *p, const char *end, sb_redis_seed_t *seed, const char **err)
{
    const char *host = p, *hend;
    seed->port = 6379;
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
    if (hend == host || (size_t)(hend - host) >= sizeof(seed->host))
        return fail(err, SB_REDIS_URL_EHOST, "the host is missing or too long");
    memcpy(seed->host, host, (size_t)(hend - host));
    seed->host[hend - host] = '\0';
    if (p < end) {
        if (*p != ':' || number(p + 1, (size_t)(end - p - 1), 1, 65535, &seed->port) != 0)
            return fail(err, SB_REDIS_URL_EPORT, "the port must be a number from 1 to 65535");
    }
    return 0;
}

int sb_redis_url_parse(const char *url, sb_redis_url_t *out, const char **err)
{
    static const struct {
        const char *prefix;
        int tls, cluster;
    } schemes[] = {
        {"redis://", 0, 0},
        {"rediss://", 1, 0},
        {"redis+cluster://", 0, 1},
        {"rediss+cluster://", 1, 1},
    };
    const char *p = NULL;
    memset(out, 0, sizeof(*out));
    out->port = 6379;

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && p == NULL; i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncmp(url, schemes[i].prefix, n) == 0) {
            p = url + n;
            out->tls = schemes[i].tls;
            out->cluster = schemes[i].cluster;
        }
    }
    if (p == NULL)
        return fail(
            err, SB_REDIS_URL_ESCHEME,
            "it must start with redis://, rediss://, redis+cluster:// or rediss+cluster://");
    const char *end = p + strlen(p);

    /* The path: /db, then nothing else; a cluster has no database to choose. */
    const char *slash = strchr(p, '/');
    if (slash != NULL) {
        if (out->cluster && slash + 1 < end)
            return fail(err, SB_REDIS_URL_EDB,
                        "a cluster URL takes no /db (Redis Cluster has database 0 only)");
        if (slash + 1 < end && number(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &out->db))
            return fail(err, SB_REDIS_URL_EDB, "the database must be a number");
        end = slash;
    }
    /* Credentials: everything before the last '@' (a password may contain '@' and ','). */
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
    /* The nodes: one, or a comma-separated list for a cluster (no host or IPv6 address holds a
     * comma, so splitting there first is safe). */
    if (out->cluster) {
        int commas = 0;
        for (const char *q = p; q < end; q++)
            commas += *q == ',';
        if (commas >= SB_REDIS_URL_SEEDS_MAX)
            return fail(err, SB_REDIS_URL_ESEEDS, "a cluster URL lists at most 16 nodes");
    }
    while (1) {
        const char *next = out->cluster ? memchr(p, ',', (size_t)(end - p)) : NULL;
        int rc = endpoint(p, next != NULL ? next : end, &out->seeds[out->nseeds], err);
        if (rc != 0)
            return rc;
        out->nseeds++;
        if (next == NULL)
            break;
        p = next + 1;
    }
    memcpy(out->host, out->seeds[0].host, sizeof(out->host));
    out->port = out->seeds[0].port;
    return 0;
}
