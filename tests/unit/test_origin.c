/* Unit tests for proto/origin: allowed-origin patterns and how Origin values match them. */
#include <check.h>
#include <string.h>

#include "helpers.h"
#include "origin.h"

static int match(const char *pattern, const char *origin)
{
    return sb_origin_match(pattern, strlen(pattern), origin, strlen(origin));
}

START_TEST(test_exact)
{
    ck_assert(match("https://app.example.com", "https://app.example.com"));
    ck_assert(match("https://app.example.com", "HTTPS://App.Example.COM"));
    ck_assert(match("http://localhost:8080", "http://localhost:8080"));
    ck_assert(match("null", "null"));
    ck_assert(!match("https://app.example.com", "http://app.example.com"));
    ck_assert(!match("https://app.example.com", "https://app.example.com:8443"));
    ck_assert(!match("https://app.example.com", "https://app.example.co"));
    ck_assert(!match("https://app.example.com", "https://app.example.com.evil.net"));
    ck_assert(!match("https://app.example.com", "null"));
    ck_assert(!match("https://app.example.com", ""));
}
END_TEST

START_TEST(test_wildcard)
{
    const char *p = "https://*.example.com";
    ck_assert(match(p, "https://a.example.com"));
    ck_assert(match(p, "https://a.b.example.com"));
    ck_assert(match(p, "https://A-1.Example.com"));
    ck_assert(!match(p, "https://example.com"));
    ck_assert(!match(p, "https://.example.com"));
    ck_assert(!match(p, "https://evilexample.com"));
    ck_assert(!match(p, "http://a.example.com"));
    ck_assert(!match(p, "https://a.example.com:444"));
    ck_assert(!match(p, "https://a.example.com.evil.net"));
    ck_assert(!match(p, "https://a:b.example.com"));
    ck_assert(!match(p, "https://a/.example.com"));
    ck_assert(match("https://*.example.com:8443", "https://x.example.com:8443"));
    ck_assert(!match("https://*.example.com:8443", "https://x.example.com"));
}
END_TEST

START_TEST(test_list)
{
    const char *list = "https://app.example.com,https://*.staging.example.com,null";
    ck_assert(sb_origin_allowed(list, "https://app.example.com", 23));
    ck_assert(sb_origin_allowed(list, "https://x.staging.example.com", 29));
    ck_assert(sb_origin_allowed(list, "null", 4));
    ck_assert(!sb_origin_allowed(list, "https://staging.example.com", 27));
    ck_assert(!sb_origin_allowed("", "https://app.example.com", 23));
    ck_assert(!sb_origin_allowed(",,", "", 0));
}
END_TEST

START_TEST(test_patterns)
{
    static const char *good[] = {"https://app.example.com", "http://localhost:8080",
                                 "https://*.example.com",   "null",
                                 "http://[::1]:8080",       "chrome-extension://abcdef"};
    static const char *bad[] = {"app.example.com", "https://",        "https://*",
                                "https://a/",      "https://a.*.com", "://a",
                                "https://*.",      "1http://a",       "https://a b"};
    const char *err = NULL;
    for (size_t i = 0; i < N_ELEMS(good); i++)
        ck_assert_msg(sb_origin_pattern_check(good[i], strlen(good[i]), &err) == 0, "%s: %s",
                      good[i], err);
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        err = NULL;
        ck_assert_msg(sb_origin_pattern_check(bad[i], strlen(bad[i]), &err) == -1, "%s", bad[i]);
        ck_assert_ptr_nonnull(err);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("origin");
    TCase *tc = tcase_create("origin");
    tcase_add_test(tc, test_exact);
    tcase_add_test(tc, test_wildcard);
    tcase_add_test(tc, test_list);
    tcase_add_test(tc, test_patterns);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
