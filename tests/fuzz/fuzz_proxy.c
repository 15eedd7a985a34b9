/* libFuzzer target for proto/proxy: PROXY protocol headers of versions 1 and 2. */
#include "check.h"

#include <stdio.h>
#include <string.h>

#include "proxy.h"

static int parse_exact(const uint8_t *data, size_t k, sb_proxy_header_t *h, const char **err)
{
    /* an exact-size copy, so that ASan sees any read past the k bytes */
    uint8_t *copy = malloc(k ? k : 1);
    CHECK(copy != NULL);
    memcpy(copy, data, k);
    int rc = sb_proxy_parse(copy, k, h, err);
    free(copy);
    return rc;
}

static int same(const sb_proxy_header_t *a, const sb_proxy_header_t *b)
{
    return a->version == b->version && a->local == b->local &&
           (a->local || (sb_ip_eq(&a->src, &b->src) && a->src_port == b->src_port));
}

/* What a parsed header must be, checked against the bytes it came from. */
static void check_header(const uint8_t *data, int rc, const sb_proxy_header_t *h)
{
    size_t n = (size_t)rc;
    if (data[0] == 'P') {
        CHECK(h->version == 1);
        CHECK(n <= SB_PROXY_V1_MAX && n >= 15);
        CHECK(data[n - 2] == '\r' && data[n - 1] == '\n');
        CHECK(memchr(data, '\n', n - 1) == NULL && memchr(data, '\r', n - 2) == NULL);
        for (size_t i = 0; i < n - 2; i++)
            CHECK(data[i] >= 0x20 && data[i] < 0x7F);
        if (memcmp(data, "PROXY UNKNOWN", 13) == 0)
            CHECK(h->local);
        else
            CHECK(!h->local &&
                  (memcmp(data, "PROXY TCP4 ", 11) == 0 || memcmp(data, "PROXY TCP6 ", 11) == 0));
        if (memcmp(data, "PROXY TCP4 ", 11) == 0)
            CHECK(!h->src.v6);
        if (!h->local) {
            /* the address is the line's first after the protocol, as text */
            char text[SB_IP_TEXT];
            size_t tl = sb_ip_format(&h->src, text, sizeof(text));
            CHECK(tl > 0);
            const char *start = (const char *)data + 11;
            const char *space = memchr(start, ' ', n - 11);
            CHECK(space != NULL);
            sb_ip_t again;
            CHECK(sb_ip_parse(start, (size_t)(space - start), &again) == 0);
            CHECK(sb_ip_eq(&again, &h->src));
        }
        return;
    }
    CHECK(h->version == 2);
    CHECK(n == 16 + ((size_t)data[14] << 8 | data[15]));
    CHECK(n <= SB_PROXY_MAX_HEADER);
    CHECK((data[12] >> 4) == 2 && (data[12] & 0x0F) <= 1);
    int cmd = data[12] & 0x0F, fam = data[13];
    CHECK(h->local == !(cmd == 1 && (fam == 0x11 || fam == 0x21)));
    if (!h->local) {
        sb_ip_t want = sb_ip_from_bytes(fam == 0x21, data + 16);
        size_t port_at = fam == 0x21 ? 48 : 24;
        CHECK(sb_ip_eq(&want, &h->src));
        CHECK(h->src_port == (data[port_at] << 8 | data[port_at + 1]));
    }
}

/* Headers built from the input's bytes, as a proxy would write them, must read back. */
static void check_built(const uint8_t *data, size_t size)
{
    sb_proxy_header_t h;
    char line[160], src[SB_IP_TEXT], dst[SB_IP_TEXT];
    if (size < 36)
        return;
    sb_ip_t a4 = sb_ip_from_bytes(0, data), b4 = sb_ip_from_bytes(0, data + 4);
    sb_ip_t a6 = sb_ip_from_bytes(1, data), b6 = sb_ip_from_bytes(1, data + 16);
    unsigned sport = (unsigned)(data[32] << 8 | data[33]), dport = (unsigned)data[34] << 8;

    sb_ip_format(&a4, src, sizeof(src));
    sb_ip_format(&b4, dst, sizeof(dst));
    int len = snprintf(line, sizeof(line), "PROXY TCP4 %s %s %u %u\r\n", src, dst, sport, dport);
    CHECK(sb_proxy_parse(line, (size_t)len, &h, NULL) == len);
    CHECK(!h.local && sb_ip_eq(&h.src, &a4) && h.src_port == sport);

    /* IPv6 text, or IPv4-mapped (then formatted as IPv4: written in the mapped form) */
    if (a6.v6)
        sb_ip_format(&a6, src, sizeof(src));
    else
        snprintf(src, sizeof(src), "::ffff:%u.%u.%u.%u", a6.b[0], a6.b[1], a6.b[2], a6.b[3]);
    if (b6.v6)
        sb_ip_format(&b6, dst, sizeof(dst));
    else
        snprintf(dst, sizeof(dst), "::ffff:%u.%u.%u.%u", b6.b[0], b6.b[1], b6.b[2], b6.b[3]);
    len = snprintf(line, sizeof(line), "PROXY TCP6 %s %s %u %u\r\n", src, dst, sport, dport);
    CHECK(sb_proxy_parse(line, (size_t)len, &h, NULL) == len);
    CHECK(!h.local && sb_ip_eq(&h.src, &a6) && h.src_port == sport);

    uint8_t bin[16 + 36 + 8];
    memcpy(bin, "\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x2C", 16);
    memcpy(bin + 16, data, 36);
    memcpy(bin + 52, "\x04\x00\x05hello", 8); /* a NOOP TLV */
    CHECK(sb_proxy_parse(bin, sizeof(bin), &h, NULL) == (int)sizeof(bin));
    CHECK(!h.local && sb_ip_eq(&h.src, &a6) && h.src_port == sport);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_proxy_header_t h, again;
    const char *err = NULL;

    int rc = sb_proxy_parse(data, size, &h, &err);
    CHECK(rc >= SB_PROXY_ETOOLARGE && (rc < 0 || (size_t)rc <= size));
    CHECK(rc <= SB_PROXY_MAX_HEADER);
    CHECK((rc < 0) == (err != NULL));
    CHECK(sb_proxy_parse(data, size, &again, NULL) == rc);
    if (rc > 0) {
        CHECK(same(&h, &again));
        check_header(data, rc, &h);
    }

    /* Prefix by prefix, as bytes arrive: need more until an answer, then that same answer
     * (a header is complete with its last byte, a refusal stays the same refusal). */
    int answer = 0;
    size_t limit = size < 2048 ? size : 2048;
    for (size_t k = 0; k <= limit; k++) {
        int r = parse_exact(data, k, &again, NULL);
        if (answer == 0) {
            answer = r;
            if (r > 0)
                CHECK((size_t)r == k && same(&again, &h));
            continue;
        }
        CHECK(r == answer);
    }
    if (limit == size)
        CHECK(answer == rc);

    check_built(data, size);
    return 0;
}
