/* Unit tests for switchboard-bench's pure parts: the latency histogram and the server message
 * scanner. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "server_msg.h"

/* Values counted exactly below 256; above, a quantile is within 1/128 of the value. */
START_TEST(hist_exact_and_bounded)
{
    sb_hist_t *h = calloc(1, sizeof(*h));
    ck_assert_ptr_nonnull(h);
    for (int64_t v = 0; v < 256; v++)
        sb_hist_record(h, v);
    ck_assert_uint_eq(h->total, 256);
    ck_assert_uint_eq(sb_hist_quantile(h, 0.5), 127);
    ck_assert_uint_eq(sb_hist_quantile(h, 1.0), 255);
    ck_assert_uint_eq(sb_hist_quantile(h, 0.0), 0);

    static const int64_t values[] = {256, 1000, 12345, 999999, 60000000, 3600000000LL};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        sb_hist_reset(h);
        sb_hist_record(h, 1);
        sb_hist_record(h, values[i]);
        sb_hist_record(h, values[i] * 2 > 4294967295LL ? 4294967295LL : values[i] * 2);
        uint64_t q = sb_hist_quantile(h, 0.5); /* the middle value's bucket */
        ck_assert_uint_ge(q, (uint64_t)values[i]);
        ck_assert_uint_le(q, (uint64_t)values[i] + (uint64_t)values[i] / 128 + 1);
    }
    free(h);
}
END_TEST

START_TEST(hist_percentiles_and_extremes)
{
    sb_hist_t *h = calloc(1, sizeof(*h));
    sb_hist_t *g = calloc(1, sizeof(*g));
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(sb_hist_quantile(h, 0.99), 0); /* empty */
    for (int64_t v = 1; v <= 10000; v++)
        sb_hist_record(v <= 5000 ? h : g, v);
    sb_hist_merge(h, g);
    ck_assert_uint_eq(h->total, 10000);
    ck_assert_uint_eq(h->min, 1);
    ck_assert_uint_eq(h->max, 10000);
    uint64_t p99 = sb_hist_quantile(h, 0.99), p999 = sb_hist_quantile(h, 0.999);
    ck_assert_uint_ge(p99, 9900);
    ck_assert_uint_le(p99, 9900 + 9900 / 128 + 1);
    ck_assert_uint_ge(p999, 9990);
    ck_assert_uint_le(p999, 10000); /* never above the exact max */
    ck_assert(sb_hist_mean(h) > 5000.4 && sb_hist_mean(h) < 5000.6);

    sb_hist_reset(h);
    sb_hist_record(h, -5);        /* a clock step back counts as 0 */
    sb_hist_record(h, 1LL << 40); /* beyond the range: the largest */
    ck_assert_uint_eq(h->min, 0);
    ck_assert_uint_eq(h->max, 4294967295ULL);
    ck_assert_uint_eq(sb_hist_quantile(h, 1.0), 4294967295ULL);
    free(h);
    free(g);
}
END_TEST

/* Parses an exact-size heap copy of text (so ASan catches a read past the end), kept until the
 * next call since the result points into it. */
static char *kept;
static sb_server_msg_t parse_ok(const char *text)
{
    sb_server_msg_t m;
    size_t len = strlen(text);
    free(kept);
    kept = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(kept);
    memcpy(kept, text, len);
    ck_assert_int_eq(sb_server_msg_parse(kept, len, &m), 0);
    return m;
}

START_TEST(server_msg_fields)
{
    const char *ack = "{\"type\":\"ack\",\"mid\":12345}";
    sb_server_msg_t m;
    ck_assert_int_eq(sb_server_msg_parse(ack, strlen(ack), &m), 0);
    ck_assert(sb_server_msg_is(m.type, "ack"));
    ck_assert_int_eq(m.has_mid, 1);
    ck_assert_uint_eq(m.mid_value, 12345);

    const char *relay = " { \"type\" : \"offer\", \"from\":\"x-a1\",\"payload\":{\"mid\":1,"
                        "\"type\":\"no\",\"a\":[1,2,{\"b\":null}]},\"mid\":7 } ";
    ck_assert_int_eq(sb_server_msg_parse(relay, strlen(relay), &m), 0);
    ck_assert(sb_server_msg_is(m.type, "offer")); /* the top level's, not the payload's */
    ck_assert(sb_server_msg_is(m.from, "x-a1"));
    ck_assert_uint_eq(m.mid_value, 7);

    const char *err = "{\"type\":\"error\",\"code\":\"rate-limited\",\"message\":\"slow down\","
                      "\"to\":\"b\",\"mid\":\"s1\"}";
    ck_assert_int_eq(sb_server_msg_parse(err, strlen(err), &m), 0);
    ck_assert(sb_server_msg_is(m.code, "rate-limited"));
    ck_assert_int_eq(m.has_mid, 0); /* a string mid is not one of the bench's */
    ck_assert_uint_eq(m.mid.len, 4);
    char code[8];
    sb_server_msg_copy(m.code, code, sizeof(code));
    ck_assert_str_eq(code, "rate-li"); /* cut short, NUL-terminated */

    m = parse_ok("{\"type\":\"welcome\",\"id\":\"abc\",\"iceServers\":[]}");
    ck_assert(sb_server_msg_is(m.id, "abc"));
    m = parse_ok("{}");
    ck_assert_uint_eq(m.type.len, 0);
    m = parse_ok("{\"mid\":12345678901234567890}"); /* too long for the bench's mids */
    ck_assert_int_eq(m.has_mid, 0);
    m = parse_ok("{\"mid\":1.5}");
    ck_assert_int_eq(m.has_mid, 0);
    free(kept);
    kept = NULL;
}
END_TEST

START_TEST(server_msg_rejects)
{
    static const char *const bad[] = {
        "",           "[]",    "{",           "{\"a\"}", "{\"a\":}",          "{\"a\":1",
        "{\"a\":1,}", "{a:1}", "{\"a\":tru}", "\"x\"",   "{\"a\":1 \"b\":2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sb_server_msg_t m;
        size_t len = strlen(bad[i]);
        char *copy = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, bad[i], len);
        int rc = sb_server_msg_parse(copy, len, &m);
        free(copy);
        ck_assert_msg(rc == -1, "accepted %s", bad[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("units");
    tcase_add_test(tc, hist_exact_and_bounded);
    tcase_add_test(tc, hist_percentiles_and_extremes);
    tcase_add_test(tc, server_msg_fields);
    tcase_add_test(tc, server_msg_rejects);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
