/* Where a client comes from and how fast it may go: addresses, CIDR blocks, X-Forwarded-For,
 * token buckets. */
#include "source.h"

#include <arpa/inet.h>
#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

sb_ip_t sb_ip_from_bytes(int v6, const void *bytes)
{
    sb_ip_t ip;
    memset(&ip, 0, sizeof(ip));
    if (v6 && memcmp(bytes, v4_mapped, sizeof(v4_mapped)) == 0) {
        memcpy(ip.b, (const uint8_t *)bytes + 12, 4);
    } else {
        ip.v6 = v6 ? 1 : 0;
        memcpy(ip.b, bytes, v6 ? 16 : 4);
    }
    return ip;
}

int sb_ip_parse(const char *s, size_t len, sb_ip_t *out)
{
    char text[SB_IP_TEXT];
    uint8_t bytes[16];

    if (len == 0 || len >= sizeof(text) || memchr(s, '\0', len) != NULL)
        return -1;
    memcpy(text, s, len);
    text[len] = '\0';
    /* inet_pton's IPv4 is strict dotted-quad (no octal, no short forms), as wanted here. */
    if (inet_pton(AF_INET, text, bytes) == 1) {
        *out = sb_ip_from_bytes(0, bytes);
        return 0;
    }
    if (memchr(text, ':', len) != NULL && inet_pton(AF_INET6, text, bytes) == 1) {
        *out = sb_ip_from_bytes(1, bytes);
        return 0;
    }
    return -1;
}

size_t sb_ip_format(const sb_ip_t *ip, char *out, size_t cap)
{
    if (cap < SB_IP_TEXT)
        return 0;
    if (inet_ntop(ip->v6 ? AF_INET6 : AF_INET, ip->b, out, (socklen_t)cap) == NULL) {
        out[0] = '\0';
        return 0;
    }
    return strlen(out);
}

int sb_ip_eq(const sb_ip_t *a, const sb_ip_t *b)
{
    return a->v6 == b->v6 && memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

/* Clears every bit of ip past the first bits. */
static void mask(sb_ip_t *ip, unsigned bits)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits > 8 * i ? bits - 8 * i : 0;
        if (keep < 8)
            ip->b[i] &= (uint8_t)(0xFF00u >> keep);
    }
}

size_t sb_source_format(const sb_ip_t *ip, char *out, size_t cap)
{
    if (cap < SB_SOURCE_TEXT)
        return 0;
    if (!ip->v6)
        return sb_ip_format(ip, out, cap);
    sb_ip_t prefix = *ip;
    mask(&prefix, 64);
    size_t n = sb_ip_format(&prefix, out, cap);
    memcpy(out + n, "/64", 4);
    return n + 3;
}

int sb_cidr_parse(const char *s, size_t len, sb_cidr_t *out, const char **err)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    sb_cidr_t c;

    if (sb_ip_parse(s, alen, &c.ip) != 0) {
        if (err)
            *err = "not an IPv4 or IPv6 address";
        return -1;
    }
    /* An IPv4-mapped block written in IPv6 (::ffff:10.0.0.0/104) is the IPv4 block it maps. */
    int mapped = !c.ip.v6 && memchr(s, ':', alen) != NULL;
    unsigned max = c.ip.v6 ? 128 : 32;
    c.bits = max;
    if (slash != NULL) {
        const char *p = slash + 1, *end = s + len;
        unsigned bits = 0;
        if (p == end || end - p > 3 || (*p == '0' && end - p > 1)) {
            if (err)
                *err = "a prefix length must be a number without leading zeros";
            return -1;
        }
        for (; p < end; p++) {
            if (*p < '0' || *p > '9') {
                if (err)
                    *err = "a prefix length must be a number";
                return -1;
            }
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (mapped) {
            if (bits < 96) {
                if (err)
                    *err = "an IPv4-mapped block needs a prefix length of at least 96";
                return -1;
            }
            bits -= 96;
        }
        if (bits > max) {
            if (err)
                *err = c.ip.v6 ? "an IPv6 prefix length is at most 128"
                               : "an IPv4 prefix length is at most 32";
            return -1;
        }
        c.bits = bits;
    }
    mask(&c.ip, c.bits);
    *out = c;
    return 0;
}

int sb_cidr_match(const sb_cidr_t *c, const sb_ip_t *ip)
{
    if (c->ip.v6 != ip->v6)
        return 0;
    sb_ip_t masked = *ip;
    mask(&masked, c->bits);
    return memcmp(masked.b, c->ip.b, sizeof(masked.b)) == 0;
}

static int ows(char c) { return c == ' ' || c == '\t'; }

/* Trims spaces and tabs from both ends of [*s, *s + *len). */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && ows(**s))
        (*s)++, (*len)--;
    while (*len > 0 && ows((*s)[*len - 1]))
        (*len)--;
}

int sb_cidr_list_parse(const char *list, sb_cidr_t *out, size_t cap, const char **err)
{
    size_t n = 0, total = strlen(list);
    const char *p = list, *end = list + total;

    trim(&p, &total);
    if (total == 0)
        return 0;
    end = p + total;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *s = p;
        size_t len = (size_t)(stop - p);
        trim(&s, &len);
        if (len == 0) {
            if (err)
                *err = "an empty element in the list";
            return -1;
        }
        if (n == cap) {
            if (err)
                *err = "too many addresses";
            return -1;
        }
        if (sb_cidr_parse(s, len, &out[n], err) != 0)
            return -1;
        n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return (int)n;
}

int sb_cidr_list_match(const sb_cidr_t *list, size_t n, const sb_ip_t *ip)
{
    for (size_t i = 0; i < n; i++)
        if (sb_cidr_match(&list[i], ip))
            return 1;
    return 0;
}

static int digits(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* One element of X-Forwarded-For: an address, perhaps with a port or in brackets. */
static int parse_element(const char *s, size_t len, sb_ip_t *out)
{
    trim(&s, &len);
    if (len == 0)
        return -1;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return -1;
        size_t rest = len - (size_t)(close - s) - 1;
        if (rest > 0 && (close[1] != ':' || !digits(close + 2, rest - 1)))
            return -1;
        if (sb_ip_parse(s + 1, (size_t)(close - s) - 1, out) != 0)
            return -1;
        return 0;
    }
    const char *colon = memchr(s, ':', len);
    if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) == NULL) {
        /* one colon: IPv4 and a port */
        if (!digits(colon + 1, len - (size_t)(colon - s) - 1) ||
            sb_ip_parse(s, (size_t)(colon - s), out) != 0 || out->v6)
            return -1;
        return 0;
    }
    return sb_ip_parse(s, len, out);
}

size_t sb_xff_client(const sb_str_t *values, size_t nvalues, const sb_cidr_t *trusted,
                     size_t ntrusted, sb_ip_t *client)
{
    size_t taken = 0;
    for (size_t v = nvalues; v-- > 0;) {
        const char *start = values[v].p;
        size_t end = values[v].len;
        for (;;) {
            size_t i = end;
            while (i > 0 && start[i - 1] != ',')
                i--;
            sb_ip_t ip;
            if (parse_element(start + i, end - i, &ip) != 0)
                return taken;
            *client = ip;
            taken++;
            if (!sb_cidr_list_match(trusted, ntrusted, &ip))
                return taken;
            if (i == 0)
                break;
            end = i - 1;
        }
    }
    return taken;
}

void sb_bucket_init(sb_bucket_t *b, double rate, double burst, double now)
{
    b->rate = rate;
    b->burst = burst;
    b->tokens = burst;
    b->last = now;
}

void sb_bucket_refill(sb_bucket_t *b, double now)
{
    if (now <= b->last)
        return;
    b->tokens += (now - b->last) * b->rate;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    b->last = now;
}

int sb_bucket_take(sb_bucket_t *b, double n, double now)
{
    sb_bucket_refill(b, now);
    if (b->tokens < n)
        return 0;
    b->tokens -= n;
    return 1;
}

double sb_bucket_wait(sb_bucket_t *b, double n, double now)
{
    sb_bucket_refill(b, now);
    if (n > b->burst)
        return -1;
    if (b->tokens >= n)
        return 0;
    return b->rate > 0 ? (n - b->tokens) / b->rate : -1;
}

int sb_bucket_full(sb_bucket_t *b, double now)
{
    sb_bucket_refill(b, now);
    return b->tokens >= b->burst;
}
