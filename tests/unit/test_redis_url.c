/* Unit tests for proto/redis_url: the --redis URL parser. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "redis_url.h"

static sb_redis_url_t parse_ok(const char *url)
{
    sb_redis_url_t u;
    char err[256] = "";
    ck_assert_msg(sb_redis_url_parse(url, &u, err, sizeof(err)) == 0, "%s: %s", url, err);
    return u;
}

static void parse_bad(const char *url, const char *why)
{
    sb_redis_url_t u;
    char err[256] = "";
    ck_assert_msg(sb_redis_url_parse(url, &u, err, sizeof(err)) == -1, "%s accepted", url);
    ck_assert_msg(strstr(err, why) != NULL, "%s: error '%s' lacks '%s'", url, err, why);
}

START_TEST(test_host_only)
{
    sb_redis_url_t u = parse_ok("redis://localhost");
    ck_assert_str_eq(u.host, "localhost");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "");
    ck_assert_int_eq(u.db, 0);
}
END_TEST

START_TEST(test_full)
{
    sb_redis_url_t u = parse_ok("redis://alice:s3cret@10.0.0.5:7000/3");
    ck_assert_str_eq(u.host, "10.0.0.5");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_str_eq(u.user, "alice");
    ck_assert_str_eq(u.password, "s3cret");
    ck_assert_int_eq(u.db, 3);
}
END_TEST

START_TEST(test_password_only)
{
    sb_redis_url_t u = parse_ok("redis://:pw@redis:6380");
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "pw");
    ck_assert_str_eq(u.host, "redis");
    ck_assert_int_eq(u.port, 6380);
}
END_TEST

START_TEST(test_percent_encoding_and_at_in_password)
{
    sb_redis_url_t u = parse_ok("redis://bob:p%40ss%3Aw0rd@h");
    ck_assert_str_eq(u.password, "p@ss:w0rd");
    u = parse_ok("redis://bob:a@b@h"); /* the last @ ends the credentials */
    ck_assert_str_eq(u.password, "a@b");
    ck_assert_str_eq(u.host, "h");
}
END_TEST

START_TEST(test_ipv6)
{
    sb_redis_url_t u = parse_ok("redis://[::1]:6390");
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 6390);
    u = parse_ok("redis://[fe80::1]");
    ck_assert_str_eq(u.host, "fe80::1");
    ck_assert_int_eq(u.port, 6379);
}
END_TEST

START_TEST(test_trailing_slash)
{
    sb_redis_url_t u = parse_ok("redis://h:1/");
    ck_assert_int_eq(u.port, 1);
    ck_assert_int_eq(u.db, 0);
}
END_TEST

START_TEST(test_errors)
{
    parse_bad("http://h", "redis://");
    parse_bad("h:6379", "redis://");
    parse_bad("redis://", "host");
    parse_bad("redis://:6379", "host");
    parse_bad("redis://h:0", "port");
    parse_bad("redis://h:65536", "port");
    parse_bad("redis://h:-1", "port");
    parse_bad("redis://h:12x", "port");
    parse_bad("redis://h:", "port");
    parse_bad("redis://h/x", "database");
    parse_bad("redis://h/1/2", "database");
    parse_bad("redis://user@h", "credentials");
    parse_bad("redis://u:%4@h", "encoded");
    parse_bad("redis://u:%00@h", "encoded");
    parse_bad("redis://[::1:6379", "]");
}
END_TEST

START_TEST(test_error_never_shows_password)
{
    sb_redis_url_t u;
    char err[256];
    ck_assert_int_eq(sb_redis_url_parse("redis://u:topsecret@h:99999", &u, err, sizeof(err)), -1);
    ck_assert_ptr_null(strstr(err, "topsecret"));
}
END_TEST

START_TEST(test_long_fields)
{
    char url[1200];
    memset(url, 0, sizeof(url));
    strcpy(url, "redis://");
    memset(url + 8, 'h', 300); /* host longer than its buffer */
    parse_bad(url, "host");
    strcpy(url, "redis://u:");
    memset(url + 10, 'p', 300);
    strcpy(url + 310, "@h");
    parse_bad(url, "too long");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis_url");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_host_only);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_password_only);
    tcase_add_test(tc, test_percent_encoding_and_at_in_password);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_trailing_slash);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_error_never_shows_password);
    tcase_add_test(tc, test_long_fields);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
