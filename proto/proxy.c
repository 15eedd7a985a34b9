/* The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2): a pure parser. */
#include "proxy.h"

#include <string.h>

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

static int fail(int code, const char *why, const char **err)
{
    if (err)
        *err = why;
    return code;
}

/* ---- version 1 ------------------------------------------------------------------------------ */

/* A decimal number of 1 to max_digits digits without leading zeros, at most max. */
static int number(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (len == 0 || len > 5 || (s[0] == '0' && len > 1))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* Exactly four decimal numbers 0-255 without leading zeros, dot-separated. */
static int dotted_quad(const char *s, size_t len)
{
    size_t start = 0, parts = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        unsigned long v;
        if (++parts > 4 || i - start > 3 || number(s + start, i - start, 255, &v) != 0)
            return -1;
        start = i + 1;
    }
    return parts == 4 ? 0 : -1;
}

/* An address of the line's family: TCP4 a dotted quad, TCP6 IPv6 text (RFC 4291, IPv4-mapped
 * forms included, as proxies write them for IPv4 clients of an IPv6 socket). */
static int v1_address(const char *s, size_t len, int v6, sb_ip_t *out)
{
    if (!v6)
        return dotted_quad(s, len) == 0 ? sb_ip_parse(s, len, out) : -1;
    if (memchr(s, ':', len) == NULL)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == ':' || c == '.'))
            return -1;
    }
    return sb_ip_parse(s, len, out);
}

/* The line [buf, buf + n), CRLF excluded, after "PROXY ". */
static int v1_fields(const char *s, size_t n, sb_proxy_header_t *out, const char **err)
{
    const char *field[6];
    size_t flen[6], count = 0, start = 0;

    if (n >= 7 && memcmp(s, "UNKNOWN", 7) == 0 && (n == 7 || s[7] == ' ')) {
        out->local = 1; /* whatever follows is to be ignored */
        return 0;
    }
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ' ')
            continue;
        if (i == start)
            return fail(SB_PROXY_EBAD, "PROXY v1: an empty field (two spaces, or one at an end)",
                        err);
        if (count == 5)
            return fail(SB_PROXY_EBAD, "PROXY v1: more than five fields", err);
        field[count] = s + start;
        flen[count++] = i - start;
        start = i + 1;
    }
    int v6;
    if (flen[0] == 4 && memcmp(field[0], "TCP4", 4) == 0)
        v6 = 0;
    else if (flen[0] == 4 && memcmp(field[0], "TCP6", 4) == 0)
        v6 = 1;
    else
        return fail(SB_PROXY_EBAD, "PROXY v1: the protocol is not TCP4, TCP6 or UNKNOWN", err);
    if (count != 5)
        return fail(SB_PROXY_EBAD, "PROXY v1: a field is missing", err);
    sb_ip_t dst;
    if (v1_address(field[1], flen[1], v6, &out->src) != 0 ||
        v1_address(field[2], flen[2], v6, &dst) != 0)
        return fail(SB_PROXY_EBAD,
                    v6 ? "PROXY v1: a TCP6 address is not IPv6"
                       : "PROXY v1: a TCP4 address is "
                         "not a dotted quad",
                    err);
    unsigned long sport, dport;
    if (number(field[3], flen[3], 65535, &sport) != 0 ||
        number(field[4], flen[4], 65535, &dport) != 0)
        return fail(SB_PROXY_EBAD, "PROXY v1: a port is not a number 0-65535 without leading zeros",
                    err);
    out->local = 0;
    out->src_port = (uint16_t)sport;
    return 0;
}

static int parse_v1(const char *s, size_t len, sb_proxy_header_t *out, const char **err)
{
    size_t look = len < SB_PROXY_V1_MAX ? len : SB_PROXY_V1_MAX;
    for (size_t i = sizeof(v1_sig) - 1; i < look; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') {
            if (i + 1 == SB_PROXY_V1_MAX)
                break; /* its LF would be byte 108 */
            if (i + 1 == len)
                return 0;
            if (s[i + 1] != '\n')
                return fail(SB_PROXY_EBAD, "PROXY v1: a CR not followed by LF", err);
            int rc = v1_fields(s + 6, i - 6, out, err);
            if (rc != 0)
                return rc;
            out->version = 1;
            return (int)i + 2;
        }
        if (c == '\n')
            return fail(SB_PROXY_EBAD, "PROXY v1: a LF without CR", err);
        if (c < 0x20 || c > 0x7E)
            return fail(SB_PROXY_EBAD, "PROXY v1: a byte that is not printable ASCII", err);
    }
    if (len >= SB_PROXY_V1_MAX)
        return fail(SB_PROXY_ETOOLARGE, "PROXY v1: no CRLF within 107 bytes", err);
    return 0;
}

/* ---- version 2 ------------------------------------------------------------------------------ */

/* Bytes of addresses a family and protocol byte needs, -1 for a combination the spec does not
 * list (taken as unspecified: no addresses read). */
static int v2_address_size(uint8_t fam)
{
    switch (fam) {
    case 0x11: /* TCP over IPv4 */
    case 0x12: /* UDP over IPv4 */
        return 12;
    case 0x21: /* TCP over IPv6 */
    case 0x22: /* UDP over IPv6 */
        return 36;
    case 0x31: /* UNIX stream */
    case 0x32: /* UNIX datagram */
        return 216;
    default:
        return -1;
    }
}

static int parse_v2(const uint8_t *b, size_t len, sb_proxy_header_t *out, const char **err)
{
    if (len > 12 && (b[12] >> 4) != 2)
        return fail(SB_PROXY_EBAD, "PROXY v2: the version is not 2", err);
    if (len > 12 && (b[12] & 0x0F) > 1)
        return fail(SB_PROXY_EBAD, "PROXY v2: the command is neither LOCAL nor PROXY", err);
    int local = len > 12 && (b[12] & 0x0F) == 0;
    /* LOCAL: the family is to be ignored, whatever it is. */
    if (len > 13 && !local && ((b[13] >> 4) > 3 || (b[13] & 0x0F) > 2))
        return fail(SB_PROXY_EBAD, "PROXY v2: an unknown address family or protocol", err);
    if (len < 16)
        return 0;
    size_t alen = (size_t)b[14] << 8 | b[15];
    if (16 + alen > SB_PROXY_MAX_HEADER)
        return fail(SB_PROXY_ETOOLARGE, "PROXY v2: longer than 1024 bytes", err);
    int need = local ? -1 : v2_address_size(b[13]);
    if (need > 0 && alen < (size_t)need)
        return fail(SB_PROXY_EBAD, "PROXY v2: too short for the addresses of its family", err);
    if (len < 16 + alen)
        return 0;
    memset(out, 0, sizeof(*out));
    out->version = 2;
    out->local = 1;
    if (!local && b[13] == 0x11) {
        out->local = 0;
        out->src = sb_ip_from_bytes(0, b + 16);
        out->src_port = (uint16_t)(b[24] << 8 | b[25]);
    } else if (!local && b[13] == 0x21) {
        out->local = 0;
        out->src = sb_ip_from_bytes(1, b + 16);
        out->src_port = (uint16_t)(b[48] << 8 | b[49]);
    }
    return (int)(16 + alen);
}

int sb_proxy_parse(const void *buf, size_t len, sb_proxy_header_t *out, const char **err)
{
    const uint8_t *b = buf;
    if (len == 0)
        return 0;
    if (b[0] == v2_sig[0]) {
        size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
        if (memcmp(b, v2_sig, n) != 0)
            return fail(SB_PROXY_ENOTPROXY, "not a PROXY protocol header", err);
        return parse_v2(b, len, out, err);
    }
    size_t n = len < sizeof(v1_sig) - 1 ? len : sizeof(v1_sig) - 1;
    if (memcmp(b, v1_sig, n < 5 ? n : 5) != 0)
        return fail(SB_PROXY_ENOTPROXY, "not a PROXY protocol header", err);
    if (n == sizeof(v1_sig) - 1 && b[5] != ' ')
        return fail(SB_PROXY_EBAD, "PROXY v1: no space after PROXY", err);
    if (len < sizeof(v1_sig))
        return 0;
    sb_proxy_header_t h;
    memset(&h, 0, sizeof(h));
    int rc = parse_v1((const char *)b, len, &h, err);
    if (rc > 0)
        *out = h;
    return rc;
}
