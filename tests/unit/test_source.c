/* Unit tests for proto/source: addresses, sources, CIDR blocks, X-Forwarded-For, token buckets. */
#include <check.h>
#include <string.h>

#include "helpers.h"
#include "source.h"

static sb_ip_t ip(const char *text)
{
    sb_ip_t out;
    ck_assert_msg(sb_ip_parse(text, strlen(text), &out) == 0, "address %s", text);
    return out;
}

static const char *fmt(const sb_ip_t *a)
{
    static char buf[SB_IP_TEXT];
    sb_ip_format(a, buf, sizeof(buf));
    return buf;
}

static int in(const char *block, const char *addr)
{
    sb_cidr_t c;
    const char *err = NULL;
    ck_assert_msg(sb_cidr_parse(block, strlen(block), &c, &err) == 0, "block %s: %s", block, err);
    sb_ip_t a = ip(addr);
    return sb_cidr_match(&c, &a);
}

START_TEST(test_ip_parse)
{
    static const char *const good[] = {
        "0.0.0.0", "127.0.0.1",   "255.255.255.255", "::",
        "::1",     "2001:db8::1", "fe80::1:2:3:4",   "2001:DB8:0:0:0:0:0:1"};
    static const char *const bad[] = {"",         "1.2.3",     "1.2.3.4.5", "256.0.0.1",
                                      "01.2.3.4", "1.2.3.4 ",  " 1.2.3.4",  "1.2.3.4:80",
                                      "[::1]",    "::1%eth0",  "unknown",   "2001:db8::g",
                                      "1.2.3.-4", "0x1.2.3.4", "::1/128",   "1:2:3:4:5:6:7:8:9"};
    sb_ip_t a;
    for (size_t i = 0; i < N_ELEMS(good); i++)
        ck_assert_msg(sb_ip_parse(good[i], strlen(good[i]), &a) == 0, "%s", good[i]);
    for (size_t i = 0; i < N_ELEMS(bad); i++)
        ck_assert_msg(sb_ip_parse(bad[i], strlen(bad[i]), &a) != 0, "'%s'", bad[i]);
    ck_assert(sb_ip_parse("1.2.3.4\0", 8, &a) != 0);
    ck_assert(sb_ip_parse("1.2.3.4", 5, &a) != 0); /* exactly the length given */

    a = ip("192.0.2.7");
    ck_assert_int_eq(a.v6, 0);
    ck_assert_str_eq(fmt(&a), "192.0.2.7");
    a = ip("2001:DB8:0:0:0:0:0:1");
    ck_assert_int_eq(a.v6, 1);
    ck_assert_str_eq(fmt(&a), "2001:db8::1");
    /* an IPv4-mapped address is the IPv4 address */
    sb_ip_t m = ip("::ffff:192.0.2.7"), v4 = ip("192.0.2.7");
    ck_assert_int_eq(m.v6, 0);
    ck_assert(sb_ip_eq(&m, &v4));
    ck_assert_str_eq(fmt(&m), "192.0.2.7");
    uint8_t raw[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 1, 2, 3};
    sb_ip_t from = sb_ip_from_bytes(1, raw);
    ck_assert_str_eq(fmt(&from), "10.1.2.3");
    uint8_t four[4] = {10, 1, 2, 3};
    sb_ip_t from4 = sb_ip_from_bytes(0, four);
    ck_assert(sb_ip_eq(&from, &from4));
    sb_ip_t six = ip("::1");
    ck_assert(!sb_ip_eq(&six, &from4));
}
END_TEST

/* The source an address counts as: IPv4 itself, IPv6 its /64, IPv4-mapped as IPv4. */
START_TEST(test_source_format)
{
    static const struct {
        const char *addr, *source;
    } cases[] = {
        {"192.0.2.7", "192.0.2.7"},
        {"::ffff:192.0.2.7", "192.0.2.7"},
        {"2001:db8::1", "2001:db8::/64"},
        {"2001:db8:0:0:ffff:ffff:ffff:ffff", "2001:db8::/64"},
        {"2001:db8:0:1::1", "2001:db8:0:1::/64"},
        {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
        {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64"},
        {"::1", "::/64"},
        {"fe80::1:2:3:4", "fe80::/64"},
    };
    char out[SB_SOURCE_TEXT];
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        sb_ip_t a = ip(cases[i].addr);
        size_t n = sb_source_format(&a, out, sizeof(out));
        ck_assert_msg(strcmp(out, cases[i].source) == 0, "%s: %s", cases[i].addr, out);
        ck_assert_uint_eq(n, strlen(cases[i].source));
        /* the source is a block holding the address */
        ck_assert_msg(in(out, cases[i].addr), "%s not in %s", cases[i].addr, out);
    }
    /* the longest fits */
    sb_ip_t a = ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    ck_assert_uint_eq(sb_source_format(&a, out, sizeof(out)), 24);
    ck_assert_uint_eq(sb_source_format(&a, out, SB_SOURCE_TEXT - 1), 0); /* too small a buffer */
}
END_TEST

START_TEST(test_cidr)
{
    ck_assert(in("10.0.0.0/8", "10.255.1.2"));
    ck_assert(!in("10.0.0.0/8", "11.0.0.0"));
    ck_assert(in("10.1.2.3/8", "10.9.9.9")); /* host bits cleared */
    ck_assert(in("192.0.2.7", "192.0.2.7"));
    ck_assert(!in("192.0.2.7", "192.0.2.8"));
    ck_assert(in("192.0.2.7/32", "192.0.2.7"));
    ck_assert(in("0.0.0.0/0", "203.0.113.9"));
    ck_assert(!in("0.0.0.0/0", "::1")); /* families never mix */
    ck_assert(!in("::/0", "1.2.3.4"));
    ck_assert(in("::/0", "2001:db8::5"));
    ck_assert(in("172.16.0.0/12", "172.31.255.255"));
    ck_assert(!in("172.16.0.0/12", "172.32.0.0"));
    ck_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
    ck_assert(!in("2001:db8::/32", "2001:db9::1"));
    ck_assert(in("2001:db8::/33", "2001:db8:7fff::1"));
    ck_assert(!in("2001:db8::/33", "2001:db8:8000::1"));
    ck_assert(in("::1", "::1"));
    ck_assert(in("::ffff:10.0.0.0/104", "10.1.1.1")); /* a mapped block is an IPv4 block */
    ck_assert(!in("::ffff:10.0.0.0/104", "11.1.1.1"));
    ck_assert(in("10.0.0.0/8", "::ffff:10.1.1.1"));

    static const char *const bad[] = {
        "10.0.0.0/33",       "::/129", "10.0.0.0/", "10.0.0.0/08",  "10.0.0.0/a", "/8", "10.0.0/8",
        "::ffff:1.2.3.4/95", "",       "x/8",       "10.0.0.0/1000"};
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        sb_cidr_t c;
        const char *err = NULL;
        ck_assert_msg(sb_cidr_parse(bad[i], strlen(bad[i]), &c, &err) == -1, "'%s'", bad[i]);
        ck_assert(err != NULL);
    }
}
END_TEST

START_TEST(test_cidr_list)
{
    sb_cidr_t list[4];
    const char *err = NULL;
    ck_assert_int_eq(sb_cidr_list_parse("", list, 4, &err), 0);
    ck_assert_int_eq(sb_cidr_list_parse("  ", list, 4, &err), 0);
    ck_assert_int_eq(sb_cidr_list_parse("127.0.0.1", list, 4, &err), 1);
    ck_assert_int_eq(sb_cidr_list_parse(" 10.0.0.0/8 , ::1,192.0.2.0/24 ", list, 4, &err), 3);
    sb_ip_t a = ip("192.0.2.200"), b = ip("::1"), c = ip("::2"), d = ip("10.3.3.3");
    ck_assert(sb_cidr_list_match(list, 3, &a));
    ck_assert(sb_cidr_list_match(list, 3, &b));
    ck_assert(!sb_cidr_list_match(list, 3, &c));
    ck_assert(sb_cidr_list_match(list, 3, &d));
    ck_assert(!sb_cidr_list_match(list, 0, &d));
    err = NULL;
    ck_assert_int_eq(sb_cidr_list_parse("10.0.0.0/8,,::1", list, 4, &err), -1);
    ck_assert(err != NULL);
    ck_assert_int_eq(sb_cidr_list_parse("10.0.0.0/8,", list, 4, &err), -1);
    ck_assert_int_eq(sb_cidr_list_parse("10.0.0.0/8,proxy.local", list, 4, &err), -1);
    ck_assert_int_eq(sb_cidr_list_parse("1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5", list, 4, &err),
                     -1);
    ck_assert_int_eq(sb_cidr_list_parse("1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4", list, 4, &err), 4);
}
END_TEST

/* The client X-Forwarded-For names, from a socket at proxy, trusting the list trusted. */
static const char *xff(const char *trusted, const char *proxy, const char *const *values, size_t n,
                       size_t *taken)
{
    sb_cidr_t list[8];
    int nt = sb_cidr_list_parse(trusted, list, 8, NULL);
    ck_assert(nt >= 0);
    sb_str_t v[4];
    for (size_t i = 0; i < n; i++)
        v[i] = (sb_str_t){values[i], strlen(values[i])};
    sb_ip_t client = ip(proxy);
    *taken = sb_xff_client(v, n, list, (size_t)nt, &client);
    return fmt(&client);
}

START_TEST(test_xff)
{
    size_t taken;
    const char *one[] = {"203.0.113.5"};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", one, 1, &taken), "203.0.113.5");
    ck_assert_uint_eq(taken, 1);

    /* none: the proxy is its own source */
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", NULL, 0, &taken), "127.0.0.1");
    ck_assert_uint_eq(taken, 0);

    /* the client forges entries on the left; the rightmost untrusted one counts */
    const char *forged[] = {"1.1.1.1, 2.2.2.2, 203.0.113.5"};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", forged, 1, &taken), "203.0.113.5");

    /* chains of trusted proxies are skipped, across fields, in order */
    const char *chain[] = {"6.6.6.6, 203.0.113.5", "10.0.0.2,10.0.0.3"};
    ck_assert_str_eq(xff("127.0.0.1,10.0.0.0/8", "127.0.0.1", chain, 2, &taken), "203.0.113.5");
    ck_assert_uint_eq(taken, 3);

    /* all trusted: the leftmost hop */
    const char *all[] = {"10.0.0.9, 10.0.0.2"};
    ck_assert_str_eq(xff("10.0.0.0/8,127.0.0.1", "127.0.0.1", all, 1, &taken), "10.0.0.9");

    /* garbage stops the walk at the last trusted hop */
    const char *garbage[] = {"203.0.113.5, unknown, 10.0.0.2"};
    ck_assert_str_eq(xff("10.0.0.0/8,127.0.0.1", "127.0.0.1", garbage, 1, &taken), "10.0.0.2");
    ck_assert_uint_eq(taken, 1);
    const char *junk[] = {"not an address"};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", junk, 1, &taken), "127.0.0.1");
    ck_assert_uint_eq(taken, 0);
    const char *empty[] = {""};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", empty, 1, &taken), "127.0.0.1");
    const char *trailing[] = {"203.0.113.5,"};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", trailing, 1, &taken), "127.0.0.1");

    /* ports, brackets, IPv6, mapped */
    const char *ports[] = {"[2001:db8::7]:4711"};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", ports, 1, &taken), "2001:db8::7");
    const char *port4[] = {"198.51.100.1:80"};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", port4, 1, &taken), "198.51.100.1");
    const char *br[] = {" [::1] "};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", br, 1, &taken), "::1");
    const char *v6[] = {"2001:db8::9"};
    ck_assert_str_eq(xff("::1", "::1", v6, 1, &taken), "2001:db8::9");
    const char *mapped[] = {"::ffff:198.51.100.3"};
    ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", mapped, 1, &taken), "198.51.100.3");
    const char *badport[] = {"198.51.100.1:http", "[::1]x", "[::1", "1.2.3.4:123456"};
    for (size_t i = 0; i < N_ELEMS(badport); i++) {
        ck_assert_str_eq(xff("127.0.0.1", "127.0.0.1", &badport[i], 1, &taken), "127.0.0.1");
        ck_assert_uint_eq(taken, 0);
    }
}
END_TEST

START_TEST(test_bucket)
{
    /* rates and times that binary fractions hold exactly */
    sb_bucket_t b;
    sb_bucket_init(&b, 8, 16, 100.0);
    ck_assert(sb_bucket_full(&b, 100.0));
    for (int i = 0; i < 16; i++)
        ck_assert(sb_bucket_take(&b, 1, 100.0));
    ck_assert(!sb_bucket_take(&b, 1, 100.0));
    ck_assert(!sb_bucket_full(&b, 100.0));
    ck_assert_double_eq(sb_bucket_wait(&b, 1, 100.0), 0.125);
    ck_assert_double_eq(sb_bucket_wait(&b, 17, 100.0), -1); /* never */
    ck_assert(!sb_bucket_take(&b, 1, 100.0625));
    ck_assert(sb_bucket_take(&b, 1, 100.125)); /* an eighth of a second brings one */
    ck_assert(!sb_bucket_take(&b, 1, 100.125));
    /* a refusal takes nothing */
    ck_assert(!sb_bucket_take(&b, 5, 100.25));
    ck_assert(sb_bucket_take(&b, 1, 100.25));
    /* time going back brings nothing and breaks nothing */
    ck_assert(!sb_bucket_take(&b, 1, 50.0));
    /* refills up to the burst, no further */
    ck_assert(sb_bucket_full(&b, 1000.0));
    ck_assert_double_eq(b.tokens, 16);
    ck_assert(sb_bucket_take(&b, 16, 1000.0));
    ck_assert(!sb_bucket_full(&b, 1001.5));
    ck_assert(sb_bucket_full(&b, 1002.0));
    /* fractional amounts (bytes) */
    sb_bucket_init(&b, 1024, 1536, 0);
    ck_assert(sb_bucket_take(&b, 1535.5, 0));
    ck_assert(!sb_bucket_take(&b, 1, 0));
    ck_assert(sb_bucket_take(&b, 1, 0.5));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("source");
    TCase *tc = tcase_create("source");
    tcase_add_test(tc, test_ip_parse);
    tcase_add_test(tc, test_source_format);
    tcase_add_test(tc, test_cidr);
    tcase_add_test(tc, test_cidr_list);
    tcase_add_test(tc, test_xff);
    tcase_add_test(tc, test_bucket);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
