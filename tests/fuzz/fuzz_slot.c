/* libFuzzer target for proto/slot and proto/redis_url: hash slots against a reference; URL parses.
 */
#include "check.h"

#include <stdio.h>
#include <string.h>

#include "redis_url.h"
#include "slot.h"

/* ---- a reference ------------------------------------------------------------------------------
 * Written another way on purpose: the CRC bit by bit from its definition (XMODEM: polynomial
 * 0x1021, initial 0), where sb_slot_crc16 uses a table, and the tag found by index loops, where
 * sb_slot_of uses memchr. */

static unsigned ref_crc16(const uint8_t *p, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

/* 1 with the tag's bounds [*from, *to) when the key has a non-empty hash tag, else 0. */
static int ref_tag(const uint8_t *p, size_t len, size_t *from, size_t *to)
{
    size_t open = 0;
    while (open < len && p[open] != '{')
        open++;
    if (open == len)
        return 0;
    size_t close = open + 1;
    while (close < len && p[close] != '}')
        close++;
    if (close == len || close == open + 1)
        return 0;
    *from = open + 1;
    *to = close;
    return 1;
}

/* An exact-size copy, so that ASan sees a read past len. */
static unsigned slot_exact(const uint8_t *p, size_t len)
{
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, p, len);
    unsigned s = sb_slot_of(copy, len);
    free(copy);
    return s;
}

/* ---- hash slots ------------------------------------------------------------------------------ */

static void check_slot(const uint8_t *data, size_t size)
{
    unsigned s = slot_exact(data, size);
    size_t from, to;

    CHECK(s < SB_SLOTS);
    CHECK(sb_slot_crc16((const char *)data, size) == ref_crc16(data, size));
    if (ref_tag(data, size, &from, &to)) {
        /* the tag alone hashes to the same slot (it holds no '}', so it is its own whole key) */
        CHECK(s == (ref_crc16(data + from, to - from) & (SB_SLOTS - 1)));
        CHECK(s == slot_exact(data + from, to - from));
        /* and whatever follows the tag does not count */
        uint8_t *longer = malloc(size + 5);
        CHECK(longer != NULL);
        memcpy(longer, data, size);
        memcpy(longer + size, "}{z}{", 5);
        CHECK(slot_exact(longer, size + 5) == s);
        free(longer);
    } else {
        CHECK(s == (ref_crc16(data, size) & (SB_SLOTS - 1)));
    }
}

/* ---- Redis URLs ------------------------------------------------------------------------------ */

/* Writes u's scheme, nodes and database (no credentials) as a URL the parser must read back. */
static void format_url(const sb_redis_url_t *u, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "%s%s://", u->tls ? "rediss" : "redis",
                                u->cluster ? "+cluster" : "");
    for (int i = 0; i < u->nseeds; i++) {
        const char *h = u->seeds[i].host;
        int bracket = h[0] == '[' || strchr(h, ':') != NULL;
        n += (size_t)snprintf(buf + n, size - n, "%s%s%s%s:%d", i ? "," : "", bracket ? "[" : "", h,
                              bracket ? "]" : "", u->seeds[i].port);
        CHECK(n < size);
    }
    if (u->db != 0)
        snprintf(buf + n, size - n, "/%d", u->db);
}

static void check_url(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    sb_redis_url_t u, again;
    const char *err = NULL;

    CHECK(url != NULL);
    memcpy(url, data, size);
    url[size] = '\0';
    int rc = sb_redis_url_parse(url, &u, &err);
    CHECK(sb_redis_url_parse(url, &again, NULL) == rc);
    if (rc != 0) {
        CHECK(rc >= SB_REDIS_URL_ESEEDS && rc <= SB_REDIS_URL_ESCHEME);
        CHECK(err != NULL && err[0] != '\0');
        CHECK(err < url || err > url + size); /* static text, never a piece of the URL */
        free(url);
        return;
    }
    CHECK(err == NULL);
    CHECK(u.host[0] != '\0' && strlen(u.host) < sizeof(u.host));
    CHECK(u.port >= 1 && u.port <= 65535);
    CHECK(strlen(u.user) < sizeof(u.user) && strlen(u.password) < sizeof(u.password));
    CHECK(u.tls == (strncmp(url, "rediss", 6) == 0));
    CHECK(u.cluster == (strncmp(url + 5 + u.tls, "+cluster://", 11) == 0));
    CHECK(u.nseeds >= 1 && u.nseeds <= SB_REDIS_URL_SEEDS_MAX);
    CHECK(u.cluster || u.nseeds == 1);
    CHECK(!u.cluster || u.db == 0);
    CHECK(u.db >= 0 && u.db <= 1000000);
    CHECK(strcmp(u.host, u.seeds[0].host) == 0 && u.port == u.seeds[0].port);
    for (int i = 0; i < u.nseeds; i++) {
        const char *h = u.seeds[i].host;
        CHECK(h[0] != '\0' && strlen(h) < sizeof(u.seeds[i].host));
        CHECK(u.seeds[i].port >= 1 && u.seeds[i].port <= 65535);
        CHECK(strchr(h, '/') == NULL && strchr(h, '@') == NULL); /* the path and credentials */
        if (h[0] == '[' || strchr(h, ':') != NULL)               /* it was written in brackets */
            CHECK(strchr(h, ']') == NULL);
        CHECK(!u.cluster || strchr(h, ',') == NULL);
    }

    /* written back without the credentials, it reads as the same nodes */
    char back[SB_REDIS_URL_SEEDS_MAX * 270 + 64];
    format_url(&u, back, sizeof(back));
    CHECK(sb_redis_url_parse(back, &again, &err) == 0);
    CHECK(again.tls == u.tls && again.cluster == u.cluster && again.db == u.db);
    CHECK(again.nseeds == u.nseeds);
    for (int i = 0; i < u.nseeds; i++)
        CHECK(strcmp(again.seeds[i].host, u.seeds[i].host) == 0 &&
              again.seeds[i].port == u.seeds[i].port);
    free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_slot(data, size);
    check_url(data, size);
    return 0;
}
