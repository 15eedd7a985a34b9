/* Unit tests for proto/proxy: PROXY protocol headers of both versions, valid and malformed. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "proxy.h"

static const char v2_sig[] = "\r\n\r\n\0\r\nQUIT\n"; /* 12 bytes and a NUL */

/* A version 2 header: signature, version/command byte, family byte, then body (its length
 * written in). */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t blen)
{
    memcpy(out, v2_sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    if (blen > 0)
        memcpy(out + 16, body, blen);
    return 16 + blen;
}

static const char *fmt(const sb_ip_t *a)
{
    static char buf[SB_IP_TEXT];
    sb_ip_format(a, buf, sizeof(buf));
    return buf;
}

/* A valid header: every shorter prefix needs more, the whole gives its length, and so does the
 * whole with the client's bytes behind it (they are not the header's). Returns what it says. */
static sb_proxy_header_t valid(const void *buf, size_t len)
{
    uint8_t copy[SB_PROXY_MAX_HEADER + 64];
    sb_proxy_header_t h, again;
    const char *err = NULL;

    REQUIRE(len + 16 <= sizeof(copy), "vector too long");
    for (size_t k = 0; k < len; k++) {
        /* an exact-size copy, so that ASan sees any read past the end */
        uint8_t *part = malloc(k ? k : 1);
        memcpy(part, buf, k);
        int rc = sb_proxy_parse(part, k, &h, &err);
        free(part);
        REQUIRE(rc == 0, "%s: prefix of %zu bytes gave %d (%s)", show(buf, len), k, rc,
                rc < 0 ? err : "");
    }
    memset(&h, 0xAA, sizeof(h));
    int rc = sb_proxy_parse(buf, len, &h, &err);
    ck_assert_msg(rc == (int)len, "%s: gave %d, want %zu (%s)", show(buf, len), rc, len,
                  rc < 0 ? err : "");
    memcpy(copy, buf, len);
    memcpy(copy + len, "GET / HTTP/1.1\r\n", 16);
    ck_assert_int_eq(sb_proxy_parse(copy, len + 16, &again, NULL), (int)len);
    ck_assert_int_eq(again.local, h.local);
    ck_assert_int_eq(again.version, h.version);
    if (!h.local)
        ck_assert(sb_ip_eq(&again.src, &h.src) && again.src_port == h.src_port);
    return h;
}

/* A refused header: refused with code (and a reason) whole and with bytes after it, and no
 * prefix of it is ever taken for a complete header. */
static void invalid(const void *buf, size_t len, int code)
{
    sb_proxy_header_t h;
    const char *err = NULL;
    int first = 0;

    for (size_t k = 0; k <= len; k++) {
        int rc = sb_proxy_parse(buf, k, &h, &err);
        REQUIRE(rc <= 0, "%s: prefix of %zu bytes accepted as %d", show(buf, len), k, rc);
        /* once refused, a longer input stays refused the same way */
        REQUIRE(first == 0 || rc == first, "%s: refused with %d, then %d at %zu bytes",
                show(buf, len), first, rc, k);
        if (rc < 0 && first == 0)
            first = rc;
    }
    err = NULL;
    int rc = sb_proxy_parse(buf, len, &h, &err);
    ck_assert_msg(rc == code, "%s: gave %d, want %d", show(buf, len), rc, code);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(sb_proxy_parse(buf, len, &h, NULL), code); /* err may be NULL */
}

#define VALID_TEXT(s) valid((s), strlen(s))
#define INVALID_TEXT(s, code) invalid((s), strlen(s), (code))

/* ---- version 1 ------------------------------------------------------------------------------ */

START_TEST(test_v1_valid)
{
    sb_proxy_header_t h = VALID_TEXT("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    ck_assert_int_eq(h.version, 1);
    ck_assert_int_eq(h.local, 0);
    ck_assert_str_eq(fmt(&h.src), "192.168.0.1");
    ck_assert_uint_eq(h.src_port, 56324);

    h = VALID_TEXT("PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n");
    ck_assert_int_eq(h.src.v6, 1);
    ck_assert_str_eq(fmt(&h.src), "2001:db8::7");
    ck_assert_uint_eq(h.src_port, 4711);

    h = VALID_TEXT("PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0007 ::1 0 65535\r\n");
    ck_assert_str_eq(fmt(&h.src), "2001:db8::7");
    ck_assert_uint_eq(h.src_port, 0);

    /* an IPv4 client of an IPv6 socket: the IPv4 address */
    h = VALID_TEXT("PROXY TCP6 ::ffff:203.0.113.7 ::ffff:10.0.0.1 1 2\r\n");
    ck_assert_int_eq(h.src.v6, 0);
    ck_assert_str_eq(fmt(&h.src), "203.0.113.7");

    /* the longest lines of each kind (the spec's sizes: 56, 104, 15 and 107 bytes) */
    static const char *const longest[] = {
        "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
        "ffff 65535 65535\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:"
        "ffff:ffff 65535 65535\r\n",
    };
    static const size_t lengths[] = {56, 104, 15, 107};
    for (size_t i = 0; i < N_ELEMS(longest); i++) {
        ck_assert_uint_eq(strlen(longest[i]), lengths[i]);
        h = VALID_TEXT(longest[i]);
        ck_assert_int_eq(h.local, i >= 2);
    }

    h = VALID_TEXT("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n");
    ck_assert_str_eq(fmt(&h.src), "0.0.0.0");
    /* UNKNOWN: whatever follows it on the line is ignored */
    h = VALID_TEXT("PROXY UNKNOWN whatever it says, 1.2.3.4 here\r\n");
    ck_assert_int_eq(h.local, 1);
    h = VALID_TEXT("PROXY UNKNOWN \r\n");
    ck_assert_int_eq(h.local, 1);
}
END_TEST

START_TEST(test_v1_malformed)
{
    static const char *const bad[] = {
        /* line ends */
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324\n443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX",
        /* spaces */
        "PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY TCP4  192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",
        "PROXY TCP4 192.168.0.1\t192.168.0.11 56324 443\r\n",
        "PROXYTCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY\tTCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY \r\n",
        /* protocols */
        "PROXY TCP5 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY UNKNOWNX\r\n",
        "PROXY unknown\r\n",
        "PROXY TCP\r\n",
        "PROXY TCP4\r\n",
        /* fields */
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 80\r\n",
        /* IPv4 addresses */
        "PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 192.168.000.1 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 256.0.0.1 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 1.2.3 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 1.2.3.4.5 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 1.2.3. 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 .1.2.3 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 1..2.3 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 1.2.3.1000 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 0x1.2.3.4 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 +1.2.3.4 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.256 56324 443\r\n",
        "PROXY TCP4 2001:db8::1 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 ::ffff:1.2.3.4 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 localhost 192.168.0.11 56324 443\r\n",
        /* IPv6 addresses */
        "PROXY TCP6 1.2.3.4 ::1 56324 443\r\n",
        "PROXY TCP6 2001:db8::1 1.2.3.4 56324 443\r\n",
        "PROXY TCP6 2001:db8::g ::1 56324 443\r\n",
        "PROXY TCP6 [2001:db8::1] ::1 56324 443\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 56324 443\r\n",
        "PROXY TCP6 2001:db8:::1 ::1 56324 443\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 56324 443\r\n",
        "PROXY TCP6 2001:db8::1/64 ::1 56324 443\r\n",
        "PROXY TCP6 12345::1 ::1 56324 443\r\n",
        /* ports */
        "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 00 443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 +1 443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 12a 443\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 1 99999\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 1 100000\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 1 0x1\r\n",
        /* bytes that are not printable ASCII */
        "PROXY UNKNOWN \x01\r\n",
        "PROXY UNKNOWN \x7F\r\n",
        "PROXY UNKNOWN \xC3\xA9\r\n",
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\x80\r\n",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++)
        INVALID_TEXT(bad[i], SB_PROXY_EBAD);
    /* a NUL inside the line */
    static const char nul[] = "PROXY UNKNOWN \0\r\n";
    invalid(nul, sizeof(nul) - 1, SB_PROXY_EBAD);
}
END_TEST

START_TEST(test_v1_too_long)
{
    char line[300];
    /* no CRLF within 107 bytes */
    memset(line, 'a', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    invalid(line, 107, SB_PROXY_ETOOLARGE);
    invalid(line, sizeof(line), SB_PROXY_ETOOLARGE);
    /* a line of 108 bytes, CRLF included: its CR is byte 107 */
    memcpy(line + 106, "\r\n", 2);
    invalid(line, 108, SB_PROXY_ETOOLARGE);
    /* 107 bytes is fine */
    memcpy(line + 105, "\r\n", 2);
    sb_proxy_header_t h = valid(line, 107);
    ck_assert_int_eq(h.local, 1);
    /* 106 bytes and no CR yet: more may come */
    memset(line, 'a', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    ck_assert_int_eq(sb_proxy_parse(line, 106, &h, NULL), 0);
    /* a CR as the 106th byte: its LF may come */
    line[105] = '\r';
    ck_assert_int_eq(sb_proxy_parse(line, 106, &h, NULL), 0);
}
END_TEST

/* ---- version 2 ------------------------------------------------------------------------------ */

/* 203.0.113.7 port 4711 to 10.0.0.1 port 443 */
static const uint8_t tcp4[12] = {203, 0, 113, 7, 10, 0, 0, 1, 0x12, 0x67, 0x01, 0xBB};
/* 2001:db8::7 port 65535 to 2001:db8::1 port 80 */
static const uint8_t tcp6[36] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    7,    0x20, 0x01,
    0x0d, 0xb8, 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0,    80,
};

START_TEST(test_v2_valid)
{
    uint8_t buf[SB_PROXY_MAX_HEADER + 64], body[SB_PROXY_MAX_HEADER];
    sb_proxy_header_t h;

    /* PROXY, TCP over IPv4 */
    h = valid(buf, v2(buf, 0x21, 0x11, tcp4, sizeof(tcp4)));
    ck_assert_int_eq(h.version, 2);
    ck_assert_int_eq(h.local, 0);
    ck_assert_str_eq(fmt(&h.src), "203.0.113.7");
    ck_assert_uint_eq(h.src_port, 4711);

    /* PROXY, TCP over IPv6 */
    h = valid(buf, v2(buf, 0x21, 0x21, tcp6, sizeof(tcp6)));
    ck_assert_int_eq(h.src.v6, 1);
    ck_assert_str_eq(fmt(&h.src), "2001:db8::7");
    ck_assert_uint_eq(h.src_port, 65535);

    /* an IPv4-mapped IPv6 client is the IPv4 address */
    memcpy(body, tcp6, sizeof(tcp6));
    memcpy(body, "\0\0\0\0\0\0\0\0\0\0\xFF\xFF\xC6\x33\x64\x09", 16);
    h = valid(buf, v2(buf, 0x21, 0x21, body, sizeof(tcp6)));
    ck_assert_int_eq(h.src.v6, 0);
    ck_assert_str_eq(fmt(&h.src), "198.51.100.9");

    /* TLVs after the addresses are skipped, whatever they hold (even a malformed one) */
    memcpy(body, tcp4, sizeof(tcp4));
    memcpy(body + 12,
           "\x04\x00\x03"
           "abc\x05\x00\x04"
           "uniq\xEA\xFF",
           15);
    h = valid(buf, v2(buf, 0x21, 0x11, body, 27));
    ck_assert_str_eq(fmt(&h.src), "203.0.113.7");
    /* as long as the header may be */
    memset(body + 12, 0x04, sizeof(body) - 12);
    h = valid(buf, v2(buf, 0x21, 0x11, body, SB_PROXY_MAX_HEADER - 16));
    ck_assert_int_eq(h.local, 0);

    /* LOCAL (health checks): no client, whatever the family says and however long */
    h = valid(buf, v2(buf, 0x20, 0x00, NULL, 0));
    ck_assert_int_eq(h.version, 2);
    ck_assert_int_eq(h.local, 1);
    h = valid(buf, v2(buf, 0x20, 0x11, tcp4, sizeof(tcp4)));
    ck_assert_int_eq(h.local, 1);
    h = valid(buf, v2(buf, 0x20, 0xFF, tcp4, 3));
    ck_assert_int_eq(h.local, 1);
    h = valid(buf, v2(buf, 0x20, 0x21, NULL, 0)); /* LOCAL need not carry the addresses */
    ck_assert_int_eq(h.local, 1);

    /* PROXY with a family that names no TCP client: the proxy's own address is used */
    static const uint8_t fams[] = {0x00, 0x12, 0x22, 0x31, 0x32, 0x10, 0x20, 0x01, 0x02, 0x30};
    memset(body, 0, sizeof(body));
    for (size_t i = 0; i < N_ELEMS(fams); i++) {
        h = valid(buf, v2(buf, 0x21, fams[i], body, fams[i] >= 0x31 ? 216 : 36));
        ck_assert_msg(h.local == 1, "family %#x", fams[i]);
    }
    h = valid(buf, v2(buf, 0x21, 0x00, NULL, 0));
    ck_assert_int_eq(h.local, 1);
}
END_TEST

START_TEST(test_v2_malformed)
{
    uint8_t buf[SB_PROXY_MAX_HEADER + 64], body[SB_PROXY_MAX_HEADER];
    size_t n;

    /* versions other than 2 */
    static const uint8_t bad_ver[] = {0x01, 0x11, 0x31, 0xF1, 0x00};
    for (size_t i = 0; i < N_ELEMS(bad_ver); i++)
        invalid(buf, v2(buf, bad_ver[i], 0x11, tcp4, sizeof(tcp4)), SB_PROXY_EBAD);
    /* commands other than LOCAL and PROXY */
    static const uint8_t bad_cmd[] = {0x22, 0x23, 0x2F};
    for (size_t i = 0; i < N_ELEMS(bad_cmd); i++)
        invalid(buf, v2(buf, bad_cmd[i], 0x11, tcp4, sizeof(tcp4)), SB_PROXY_EBAD);
    /* families and protocols outside the spec's */
    static const uint8_t bad_fam[] = {0x41, 0xF1, 0x13, 0x1F, 0x03, 0x40, 0xFF};
    for (size_t i = 0; i < N_ELEMS(bad_fam); i++)
        invalid(buf, v2(buf, 0x21, bad_fam[i], tcp4, sizeof(tcp4)), SB_PROXY_EBAD);
    /* shorter than the family's addresses */
    invalid(buf, v2(buf, 0x21, 0x11, tcp4, 11), SB_PROXY_EBAD);
    invalid(buf, v2(buf, 0x21, 0x11, NULL, 0), SB_PROXY_EBAD);
    invalid(buf, v2(buf, 0x21, 0x21, tcp4, 12), SB_PROXY_EBAD);
    invalid(buf, v2(buf, 0x21, 0x21, tcp6, 35), SB_PROXY_EBAD);
    invalid(buf, v2(buf, 0x21, 0x12, tcp4, 4), SB_PROXY_EBAD);
    memset(body, 0, sizeof(body));
    invalid(buf, v2(buf, 0x21, 0x31, body, 215), SB_PROXY_EBAD);
    /* over the maximum size: refused as soon as the length is read */
    n = v2(buf, 0x21, 0x11, body, SB_PROXY_MAX_HEADER - 15);
    invalid(buf, n, SB_PROXY_ETOOLARGE);
    invalid(buf, 16, SB_PROXY_ETOOLARGE);
    buf[14] = buf[15] = 0xFF;
    invalid(buf, 16, SB_PROXY_ETOOLARGE);
    n = v2(buf, 0x20, 0x00, NULL, 0);
    buf[14] = 0xFF;
    invalid(buf, 16, SB_PROXY_ETOOLARGE); /* LOCAL too */

    /* a signature that goes wrong partway: not a PROXY header at all */
    for (size_t i = 1; i < 12; i++) {
        v2(buf, 0x21, 0x11, tcp4, sizeof(tcp4));
        buf[i] ^= 0x40;
        invalid(buf, 28, SB_PROXY_ENOTPROXY);
    }
}
END_TEST

/* ---- neither -------------------------------------------------------------------------------- */

START_TEST(test_not_a_header)
{
    static const char *const other[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03", /* a TLS ClientHello */
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROX TCP4",
        "PROXz",
        "\r\n\r\nGET",
        "\r\r",
        "X",
        " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    };
    for (size_t i = 0; i < N_ELEMS(other); i++)
        INVALID_TEXT(other[i], SB_PROXY_ENOTPROXY);
    /* nothing yet, and prefixes of either signature: more is needed */
    sb_proxy_header_t h;
    ck_assert_int_eq(sb_proxy_parse("", 0, &h, NULL), 0);
    ck_assert_int_eq(sb_proxy_parse("PRO", 3, &h, NULL), 0);
    ck_assert_int_eq(sb_proxy_parse("PROXY", 5, &h, NULL), 0);
    ck_assert_int_eq(sb_proxy_parse("PROXY ", 6, &h, NULL), 0);
    ck_assert_int_eq(sb_proxy_parse(v2_sig, 5, &h, NULL), 0);
    ck_assert_int_eq(sb_proxy_parse(v2_sig, 12, &h, NULL), 0);
    ck_assert_int_eq(sb_proxy_parse("PROXYX", 6, &h, NULL), SB_PROXY_EBAD);
}
END_TEST

/* Byte by byte, as a proxy that sends one byte a segment would deliver it: need more, need
 * more, ... then the header, each time parsing everything received so far. */
START_TEST(test_fed_byte_by_byte)
{
    static const char line[] = "PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\nGET /";
    size_t header = strlen("PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n");
    sb_proxy_header_t h;
    int rc = 0;
    size_t k;
    for (k = 1; k <= sizeof(line) - 1 && rc == 0; k++)
        rc = sb_proxy_parse(line, k, &h, NULL);
    ck_assert_int_eq(rc, (int)header);
    ck_assert_uint_eq(k - 1, header); /* complete exactly with its last byte */
    ck_assert_str_eq(fmt(&h.src), "2001:db8::7");

    uint8_t buf[64];
    size_t n = v2(buf, 0x21, 0x11, tcp4, sizeof(tcp4));
    memcpy(buf + n, "\x16\x03\x01", 3); /* a TLS record right behind it */
    rc = 0;
    for (k = 1; k <= n + 3 && rc == 0; k++)
        rc = sb_proxy_parse(buf, k, &h, NULL);
    ck_assert_int_eq(rc, (int)n);
    ck_assert_uint_eq(k - 1, n);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = tcase_create("v1");
    tcase_add_test(tc, test_v1_valid);
    tcase_add_test(tc, test_v1_malformed);
    tcase_add_test(tc, test_v1_too_long);
    suite_add_tcase(s, tc);
    tc = tcase_create("v2");
    tcase_add_test(tc, test_v2_valid);
    tcase_add_test(tc, test_v2_malformed);
    suite_add_tcase(s, tc);
    tc = tcase_create("both");
    tcase_add_test(tc, test_not_a_header);
    tcase_add_test(tc, test_fed_byte_by_byte);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proxy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
