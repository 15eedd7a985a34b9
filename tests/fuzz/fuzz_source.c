/* libFuzzer target for proto/source: addresses, CIDR lists and X-Forwarded-For. The input is a
 * --trust-proxy list on its first line, then X-Forwarded-For values, one a line. */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#include "source.h"

#define MAX_TRUSTED 16
#define MAX_VALUES 8

/* A parsed address formats to text that parses back to the same address. */
static void check_roundtrip(const sb_ip_t *a)
{
    char text[SB_IP_TEXT];
    size_t n = sb_ip_format(a, text, sizeof(text));
    CHECK(n > 0 && n < sizeof(text) && strlen(text) == n);
    sb_ip_t again;
    CHECK(sb_ip_parse(text, n, &again) == 0);
    CHECK(sb_ip_eq(a, &again));
    CHECK(a->v6 == 0 || a->v6 == 1);
    if (!a->v6)
        for (size_t i = 4; i < 16; i++)
            CHECK(a->b[i] == 0);
    /* its source: IPv4 itself, IPv6 its /64, a block that holds it */
    char source[SB_SOURCE_TEXT];
    size_t sn = sb_source_format(a, source, sizeof(source));
    CHECK(sn > 0 && strlen(source) == sn);
    if (!a->v6) {
        CHECK(sn == n && memcmp(source, text, n) == 0);
    } else {
        sb_cidr_t block;
        CHECK(sn > 3 && memcmp(source + sn - 3, "/64", 3) == 0);
        CHECK(sb_cidr_parse(source, sn, &block, NULL) == 0 && block.bits == 64);
        CHECK(sb_cidr_match(&block, a));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const char *nl = memchr(buf, '\n', size);
    size_t first = nl ? (size_t)(nl - buf) : size;

    /* The list, as a C string (the option's form); one with a NUL in it is not an option. */
    char *list = malloc(first + 1);
    CHECK(list != NULL);
    memcpy(list, buf, first);
    list[first] = '\0';
    sb_cidr_t trusted[MAX_TRUSTED];
    const char *err = NULL;
    int nt = sb_cidr_list_parse(list, trusted, MAX_TRUSTED, &err);
    CHECK(nt >= -1 && nt <= MAX_TRUSTED);
    CHECK(nt >= 0 || err != NULL);
    if (nt < 0)
        nt = 0;
    for (int i = 0; i < nt; i++) {
        const sb_cidr_t *c = &trusted[i];
        CHECK(c->bits <= (c->ip.v6 ? 128u : 32u));
        check_roundtrip(&c->ip);
        CHECK(sb_cidr_match(c, &c->ip)); /* a block holds its own base address */
    }
    /* Each element on its own: parse, and the parsers agree. */
    sb_ip_t a;
    if (sb_ip_parse(list, first, &a) == 0) {
        check_roundtrip(&a);
        sb_cidr_t c;
        CHECK(sb_cidr_parse(list, first, &c, NULL) == 0);
        CHECK(sb_ip_eq(&c.ip, &a) && c.bits == (a.v6 ? 128u : 32u));
        CHECK(sb_cidr_match(&c, &a));
    }
    free(list);

    /* The lines after it are X-Forwarded-For values, one field each. */
    sb_str_t values[MAX_VALUES];
    size_t nv = 0, pos = nl ? first + 1 : size;
    while (pos < size && nv < MAX_VALUES) {
        const char *p = buf + pos;
        const char *e = memchr(p, '\n', size - pos);
        size_t len = e ? (size_t)(e - p) : size - pos;
        values[nv++] = (sb_str_t){p, len};
        pos += len + 1;
    }
    sb_ip_t socket_addr = sb_ip_from_bytes(0, "\x7f\x00\x00\x01");
    sb_ip_t client = socket_addr;
    size_t taken = sb_xff_client(values, nv, trusted, (size_t)nt, &client);
    /* At most one address per comma-separated element was taken. */
    size_t elements = 0;
    for (size_t i = 0; i < nv; i++) {
        elements++;
        for (size_t k = 0; k < values[i].len; k++)
            elements += values[i].p[k] == ',';
    }
    CHECK(taken <= elements);
    if (taken == 0)
        CHECK(sb_ip_eq(&client, &socket_addr));
    else
        check_roundtrip(&client);
    /* The same input gives the same answer. */
    sb_ip_t again = socket_addr;
    CHECK(sb_xff_client(values, nv, trusted, (size_t)nt, &again) == taken);
    CHECK(sb_ip_eq(&again, &client));

    /* Buckets: whatever the amounts and times, tokens stay within [0, burst]. */
    if (size >= 4) {
        sb_bucket_t b;
        sb_bucket_init(&b, (double)(data[0] % 64 + 1), (double)(data[1] % 128 + 1), 0);
        double t = 0;
        for (size_t i = 2; i + 1 < size && i < 64; i += 2) {
            t += (double)(data[i] % 16) / 8.0;
            double n = (double)(data[i + 1] % 8);
            double before = b.tokens;
            int took = sb_bucket_take(&b, n, t);
            CHECK(b.tokens >= 0 && b.tokens <= b.burst);
            CHECK(took || b.tokens >= before); /* a refusal takes nothing */
        }
    }
    return 0;
}
