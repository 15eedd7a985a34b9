/* Unit tests for proto/redis_url: the --redis URL parser. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_url.h"

/* The reasons, word for word: node/main.c shows them as "bad Redis URL: <reason> (want ...)". */
#define SCHEME "it must start with redis://, rediss://, redis+cluster:// or rediss+cluster://"
#define DB "the database must be a number"
#define CREDENTIALS "credentials must be user:password or :password"
#define ENCODED "the user or password is too long or badly encoded"
#define BRACKET "an IPv6 address needs its closing ]"
#define HOST "the host is missing or too long"
#define PORT "the port must be a number from 1 to 65535"
#define CLUSTER_DB "a cluster URL takes no /db (Redis Cluster has database 0 only)"
#define SEEDS "a cluster URL lists at most 16 nodes"

static sb_redis_url_t parse_ok(const char *url)
{
    sb_redis_url_t u;
    const char *err = NULL;
    ck_assert_msg(sb_redis_url_parse(url, &u, &err) == 0, "%s: %s", url, err);
    ck_assert_ptr_null(err);
    return u;
}

/* Refused with code and exactly the reason why, which is static text (never a piece of url); the
 * same code with err NULL. */
static void parse_bad(const char *url, int code, const char *why)
{
    sb_redis_url_t u;
    const char *err = NULL;
    int rc = sb_redis_url_parse(url, &u, &err);
    ck_assert_msg(rc == code && err != NULL && strcmp(err, why) == 0, "%s: %d (%s), want %d (%s)",
                  url, rc, err ? err : "no reason", code, why);
    ck_assert_msg(err < url || err > url + strlen(url), "%s: the reason points into the URL", url);
    ck_assert_int_eq(sb_redis_url_parse(url, &u, NULL), code);
}

START_TEST(test_host_only)
{
    sb_redis_url_t u = parse_ok("redis://localhost");
    ck_assert_str_eq(u.host, "localhost");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "");
    ck_assert_int_eq(u.db, 0);
    ck_assert_int_eq(u.tls, 0);
    ck_assert_int_eq(u.cluster, 0);
    /* one Redis is also its one seed, so code that walks the seeds works for both forms */
    ck_assert_int_eq(u.nseeds, 1);
    ck_assert_str_eq(u.seeds[0].host, "localhost");
    ck_assert_int_eq(u.seeds[0].port, 6379);
}
END_TEST

START_TEST(test_rediss)
{
    sb_redis_url_t u = parse_ok("rediss://cache.example.com");
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.host, "cache.example.com");
    ck_assert_int_eq(u.port, 6379); /* the same default port with or without TLS */
    ck_assert_str_eq(u.user, "");
    ck_assert_int_eq(u.db, 0);
    u = parse_ok("rediss://alice:p%40ss@10.0.0.5:6380/2");
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.host, "10.0.0.5");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_str_eq(u.user, "alice");
    ck_assert_str_eq(u.password, "p@ss");
    ck_assert_int_eq(u.db, 2);
    u = parse_ok("rediss://[::1]:7000/");
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 7000);
    /* a TLS URL parsed after a plain one, and the other way round: nothing carries over */
    u = parse_ok("redis://h");
    ck_assert_int_eq(u.tls, 0);
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
    parse_bad("http://h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("h:6379", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("redis:/h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("rediss:/h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("redisss://h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("redis+tls://h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("rediss", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("rediss://", SB_REDIS_URL_EHOST, HOST);
    parse_bad("rediss://h:0", SB_REDIS_URL_EPORT, PORT);
    parse_bad("rediss://h/x", SB_REDIS_URL_EDB, DB);
    parse_bad("redis://", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis://:6379", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis://h:0", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis://h:65536", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis://h:-1", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis://h:12x", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis://h:", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis://[::1]x", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis://h/x", SB_REDIS_URL_EDB, DB);
    parse_bad("redis://h/1/2", SB_REDIS_URL_EDB, DB);
    parse_bad("redis://h/1000001", SB_REDIS_URL_EDB, DB);
    parse_bad("redis://user@h", SB_REDIS_URL_EAUTH, CREDENTIALS);
    parse_bad("redis://u:%4@h", SB_REDIS_URL_EAUTH, ENCODED);
    parse_bad("redis://u:%00@h", SB_REDIS_URL_EAUTH, ENCODED);
    parse_bad("redis://[::1:6379", SB_REDIS_URL_EHOST, BRACKET);
    /* commas are not special without +cluster, as before */
    sb_redis_url_t u = parse_ok("redis://a,b");
    ck_assert_str_eq(u.host, "a,b");
    ck_assert_int_eq(u.nseeds, 1);
    parse_bad("redis://a:1,b:2", SB_REDIS_URL_EPORT, PORT);
}
END_TEST

static void check_seed(const sb_redis_url_t *u, int i, const char *host, int port)
{
    ck_assert_int_lt(i, u->nseeds);
    ck_assert_str_eq(u->seeds[i].host, host);
    ck_assert_int_eq(u->seeds[i].port, port);
}

START_TEST(test_cluster_one_seed)
{
    sb_redis_url_t u = parse_ok("redis+cluster://h");
    ck_assert_int_eq(u.cluster, 1);
    ck_assert_int_eq(u.tls, 0);
    ck_assert_int_eq(u.nseeds, 1);
    check_seed(&u, 0, "h", 6379);
    ck_assert_str_eq(u.host, "h");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "");
    ck_assert_int_eq(u.db, 0);
    u = parse_ok("redis+cluster://h:7000/"); /* a lone trailing slash, as redis://h/ */
    ck_assert_int_eq(u.nseeds, 1);
    check_seed(&u, 0, "h", 7000);
    ck_assert_int_eq(u.port, 7000);
    u = parse_ok("rediss+cluster://[::1]:7001");
    ck_assert_int_eq(u.cluster, 1);
    ck_assert_int_eq(u.tls, 1);
    check_seed(&u, 0, "::1", 7001);
    ck_assert_str_eq(u.host, "::1");
    /* parsed after a cluster URL, a plain one is not a cluster */
    u = parse_ok("rediss://h");
    ck_assert_int_eq(u.cluster, 0);
    ck_assert_int_eq(u.nseeds, 1);
}
END_TEST

START_TEST(test_cluster_seeds)
{
    sb_redis_url_t u =
        parse_ok("redis+cluster://alice:s3cret@10.0.0.1:7000,node-b,[fe80::2]:7002,[::3]");
    ck_assert_int_eq(u.cluster, 1);
    ck_assert_int_eq(u.tls, 0);
    ck_assert_int_eq(u.nseeds, 4);
    check_seed(&u, 0, "10.0.0.1", 7000);
    check_seed(&u, 1, "node-b", 6379);
    check_seed(&u, 2, "fe80::2", 7002);
    check_seed(&u, 3, "::3", 6379);
    ck_assert_str_eq(u.host, "10.0.0.1"); /* host and port are the first seed's */
    ck_assert_int_eq(u.port, 7000);
    ck_assert_str_eq(u.user, "alice");
    ck_assert_str_eq(u.password, "s3cret");
    ck_assert_int_eq(u.db, 0);

    u = parse_ok("rediss+cluster://:p%40ss,w@a:1,b:2/");
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "p@ss,w"); /* a comma before the @ is the password's */
    ck_assert_int_eq(u.nseeds, 2);
    check_seed(&u, 0, "a", 1);
    check_seed(&u, 1, "b", 2);

    u = parse_ok("redis+cluster://u:a@b@x,y"); /* the last @ ends the credentials */
    ck_assert_str_eq(u.password, "a@b");
    ck_assert_int_eq(u.nseeds, 2);
    check_seed(&u, 1, "y", 6379);
}
END_TEST

START_TEST(test_cluster_sixteen_seeds)
{
    char url[512] = "redis+cluster://";
    char seed[16];
    for (int i = 0; i < SB_REDIS_URL_SEEDS_MAX; i++) {
        snprintf(seed, sizeof(seed), "%sn%d:%d", i ? "," : "", i, 7000 + i);
        strcat(url, seed);
    }
    sb_redis_url_t u = parse_ok(url);
    ck_assert_int_eq(u.nseeds, 16);
    check_seed(&u, 0, "n0", 7000);
    check_seed(&u, 15, "n15", 7015);
    strcat(url, ",n16");
    parse_bad(url, SB_REDIS_URL_ESEEDS, SEEDS);
}
END_TEST

START_TEST(test_cluster_errors)
{
    parse_bad("redis+cluster:/h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("redis+clusters://h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("rediss+cluster:h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("redis-cluster://h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("cluster://h", SB_REDIS_URL_ESCHEME, SCHEME);
    parse_bad("redis+cluster://", SB_REDIS_URL_EHOST, HOST);
    parse_bad("rediss+cluster://", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis+cluster://a,,b", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis+cluster://,a", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis+cluster://a,", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis+cluster://a,:7000", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis+cluster://u:p@", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis+cluster://a,[]:1", SB_REDIS_URL_EHOST, HOST);
    parse_bad("redis+cluster://a,[::1", SB_REDIS_URL_EHOST, BRACKET);
    parse_bad("redis+cluster://a,[::1]x", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis+cluster://a:0,b", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis+cluster://a,b:65536", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis+cluster://a,b:", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis+cluster://a,b:x", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis+cluster://a:1:2", SB_REDIS_URL_EPORT, PORT);
    parse_bad("redis+cluster://h/0", SB_REDIS_URL_EDB, CLUSTER_DB);
    parse_bad("rediss+cluster://h/1", SB_REDIS_URL_EDB, CLUSTER_DB);
    parse_bad("redis+cluster://a,b/x", SB_REDIS_URL_EDB, CLUSTER_DB);
    parse_bad("redis+cluster://a//", SB_REDIS_URL_EDB, CLUSTER_DB);
    parse_bad("redis+cluster://user@a,b", SB_REDIS_URL_EAUTH, CREDENTIALS);
    parse_bad("redis+cluster://u:%zz@a", SB_REDIS_URL_EAUTH, ENCODED);
    /* too many is refused before any one seed is looked at */
    parse_bad("redis+cluster://,,,,,,,,,,,,,,,,", SB_REDIS_URL_ESEEDS, SEEDS);
}
END_TEST

START_TEST(test_error_never_shows_password)
{
    sb_redis_url_t u;
    const char *err = NULL;
    char text[256];
    ck_assert_int_eq(sb_redis_url_parse("redis://u:topsecret@h:99999", &u, &err),
                     SB_REDIS_URL_EPORT);
    ck_assert_ptr_null(strstr(err, "topsecret"));
    /* and what the node prints, composed as node/main.c composes it */
    snprintf(text, sizeof(text), "bad Redis URL: %s (want " SB_REDIS_URL_FORM ")", err);
    ck_assert_str_eq(text, "bad Redis URL: the port must be a number from 1 to 65535 (want "
                           "redis[s]://[[user]:password@]host[:port][/db] or "
                           "redis[s]+cluster://[[user]:password@]host[:port][,host[:port]...])");
    ck_assert_int_eq(sb_redis_url_parse("redis+cluster://u:topsecret@a,b:0", &u, &err),
                     SB_REDIS_URL_EPORT);
    ck_assert_ptr_null(strstr(err, "topsecret"));
}
END_TEST

START_TEST(test_long_fields)
{
    char url[1200];
    memset(url, 0, sizeof(url));
    strcpy(url, "redis://");
    memset(url + 8, 'h', 300); /* host longer than its buffer */
    parse_bad(url, SB_REDIS_URL_EHOST, HOST);
    strcpy(url, "redis://u:");
    memset(url + 10, 'p', 300);
    strcpy(url + 310, "@h");
    parse_bad(url, SB_REDIS_URL_EAUTH, ENCODED);
    memset(url, 0, sizeof(url));
    strcpy(url, "redis+cluster://a,");
    memset(url + 18, 'h', 300); /* a second seed longer than its buffer */
    parse_bad(url, SB_REDIS_URL_EHOST, HOST);
    memset(url + 18, 'h', 255); /* and one that just fits */
    url[18 + 255] = '\0';
    sb_redis_url_t u = parse_ok(url);
    ck_assert_int_eq(u.nseeds, 2);
    ck_assert_uint_eq(strlen(u.seeds[1].host), 255);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis_url");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_host_only);
    tcase_add_test(tc, test_rediss);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_password_only);
    tcase_add_test(tc, test_percent_encoding_and_at_in_password);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_trailing_slash);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_error_never_shows_password);
    tcase_add_test(tc, test_long_fields);
    tcase_add_test(tc, test_cluster_one_seed);
    tcase_add_test(tc, test_cluster_seeds);
    tcase_add_test(tc, test_cluster_sixteen_seeds);
    tcase_add_test(tc, test_cluster_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
