/* Unit tests for node/base/map: put, get, remove and size, growth, iteration, and keys of any
 * bytes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "helpers.h"

/* Values are small integers, never NULL (a NULL value reads like an absent key). */
#define VAL(i) ((void *)(uintptr_t)((i) + 1))
#define IDX(v) ((size_t)(uintptr_t)(v)-1)

static sb_map_t *map_new(void)
{
    sb_map_t *m = sb_map_new();
    ck_assert_ptr_nonnull(m);
    return m;
}

static void key_of(char *out, size_t cap, size_t i) { snprintf(out, cap, "key-%zu", i); }

/* Iterates the whole map, checking each key is one of key_of(0..n-1) with its value and is
 * visited once. Returns the number of entries visited. */
static size_t visit_all(const sb_map_t *m, size_t n)
{
    unsigned char *seen = calloc(n ? n : 1, 1);
    size_t cursor = 0, visits = 0;
    const char *key;
    void *value;
    char want[32];

    ck_assert_ptr_nonnull(seen);
    while (sb_map_next(m, &cursor, &key, &value)) {
        size_t i = IDX(value);
        REQUIRE(i < n, "value %zu out of range for key %s", i, key);
        key_of(want, sizeof(want), i);
        REQUIRE(strcmp(key, want) == 0, "key %s has the value of %s", key, want);
        REQUIRE(!seen[i], "key %s visited twice", key);
        seen[i] = 1;
        visits++;
        REQUIRE(visits <= n, "more than %zu visits", n);
    }
    /* Done stays done. */
    REQUIRE(sb_map_next(m, &cursor, &key, &value) == 0, "next after the end returned an entry");
    free(seen);
    return visits;
}

START_TEST(test_empty)
{
    sb_map_t *m = map_new();
    size_t cursor = 0;
    const char *key = NULL;
    void *value = NULL;

    ck_assert_uint_eq(sb_map_size(m), 0);
    ck_assert_ptr_null(sb_map_get(m, "a"));
    ck_assert_ptr_null(sb_map_get(m, ""));
    ck_assert_ptr_null(sb_map_remove(m, "a"));
    ck_assert_uint_eq(sb_map_size(m), 0);
    ck_assert_int_eq(sb_map_next(m, &cursor, &key, &value), 0);
    ck_assert_ptr_null(key);
    sb_map_free(m);
    sb_map_free(NULL);
}
END_TEST

START_TEST(test_put_get_remove)
{
    sb_map_t *m = map_new();
    int a, b, c;

    ck_assert_int_eq(sb_map_put(m, "alice", &a), 0);
    ck_assert_int_eq(sb_map_put(m, "bob", &b), 0);
    ck_assert_int_eq(sb_map_put(m, "carol", &c), 0);
    ck_assert_uint_eq(sb_map_size(m), 3);
    ck_assert_ptr_eq(sb_map_get(m, "alice"), &a);
    ck_assert_ptr_eq(sb_map_get(m, "bob"), &b);
    ck_assert_ptr_eq(sb_map_get(m, "carol"), &c);
    ck_assert_ptr_null(sb_map_get(m, "dave"));
    ck_assert_ptr_null(sb_map_get(m, "alic"));
    ck_assert_ptr_null(sb_map_get(m, "alicee"));

    ck_assert_ptr_eq(sb_map_remove(m, "bob"), &b);
    ck_assert_uint_eq(sb_map_size(m), 2);
    ck_assert_ptr_null(sb_map_get(m, "bob"));
    ck_assert_ptr_null(sb_map_remove(m, "bob"));
    ck_assert_uint_eq(sb_map_size(m), 2);
    ck_assert_ptr_eq(sb_map_get(m, "alice"), &a);
    ck_assert_ptr_eq(sb_map_get(m, "carol"), &c);

    /* A removed key can be put again. */
    ck_assert_int_eq(sb_map_put(m, "bob", &c), 0);
    ck_assert_ptr_eq(sb_map_get(m, "bob"), &c);
    ck_assert_uint_eq(sb_map_size(m), 3);
    sb_map_free(m);
}
END_TEST

START_TEST(test_overwrite)
{
    sb_map_t *m = map_new();
    int a, b;

    ck_assert_int_eq(sb_map_put(m, "k", &a), 0);
    ck_assert_int_eq(sb_map_put(m, "k", &b), 0);
    ck_assert_uint_eq(sb_map_size(m), 1);
    ck_assert_ptr_eq(sb_map_get(m, "k"), &b);
    ck_assert_ptr_eq(sb_map_remove(m, "k"), &b);
    ck_assert_uint_eq(sb_map_size(m), 0);
    ck_assert_ptr_null(sb_map_get(m, "k"));
    sb_map_free(m);
}
END_TEST

/* Clearing removes every key (the table stays) and the map is usable again. */
START_TEST(test_clear)
{
    sb_map_t *m = map_new();
    char key[16];
    int a;

    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(sb_map_put(m, key, &a), 0);
    }
    sb_map_clear(m);
    ck_assert_uint_eq(sb_map_size(m), 0);
    ck_assert_ptr_null(sb_map_get(m, "k7"));
    size_t cursor = 0;
    const char *k;
    void *v;
    ck_assert_int_eq(sb_map_next(m, &cursor, &k, &v), 0);
    ck_assert_int_eq(sb_map_put(m, "k7", &a), 0);
    ck_assert_ptr_eq(sb_map_get(m, "k7"), &a);
    ck_assert_uint_eq(sb_map_size(m), 1);
    sb_map_free(m);
}
END_TEST

/* The map keeps its own copy of each key: the caller's buffer may change or go away. */
START_TEST(test_key_is_copied)
{
    sb_map_t *m = map_new();
    char *key = strdup("peer-1");
    int a;

    ck_assert_int_eq(sb_map_put(m, key, &a), 0);
    key[5] = '2';
    ck_assert_ptr_null(sb_map_get(m, "peer-2"));
    ck_assert_ptr_eq(sb_map_get(m, "peer-1"), &a);
    free(key);

    size_t cursor = 0;
    const char *k;
    void *v;
    ck_assert_int_eq(sb_map_next(m, &cursor, &k, &v), 1);
    ck_assert_str_eq(k, "peer-1");
    ck_assert_ptr_eq(v, &a);
    sb_map_free(m);
}
END_TEST

/* Enough keys to double the table many times (16 buckets to 131072), each still found. */
START_TEST(test_many_keys)
{
    const size_t n = 100000;
    sb_map_t *m = map_new();
    char key[32];

    for (size_t i = 0; i < n; i++) {
        key_of(key, sizeof(key), i);
        REQUIRE(sb_map_put(m, key, VAL(i)) == 0, "put %s failed", key);
        REQUIRE(sb_map_size(m) == i + 1, "size %zu after %zu puts", sb_map_size(m), i + 1);
    }
    for (size_t i = 0; i < n; i++) {
        key_of(key, sizeof(key), i);
        REQUIRE(sb_map_get(m, key) == VAL(i), "get %s", key);
    }
    ck_assert_ptr_null(sb_map_get(m, "key-100000"));
    ck_assert_uint_eq(visit_all(m, n), n);

    /* Overwriting every key changes no size. */
    for (size_t i = 0; i < n; i += 7) {
        key_of(key, sizeof(key), i);
        REQUIRE(sb_map_put(m, key, VAL(i)) == 0, "put %s again failed", key);
    }
    ck_assert_uint_eq(sb_map_size(m), n);

    /* Remove the odd ones, then the even ones. */
    for (size_t i = 1; i < n; i += 2) {
        key_of(key, sizeof(key), i);
        REQUIRE(sb_map_remove(m, key) == VAL(i), "remove %s", key);
    }
    ck_assert_uint_eq(sb_map_size(m), n / 2);
    for (size_t i = 0; i < n; i++) {
        key_of(key, sizeof(key), i);
        REQUIRE(sb_map_get(m, key) == (i % 2 ? NULL : VAL(i)), "get %s after removals", key);
    }
    ck_assert_uint_eq(visit_all(m, n), n / 2);
    for (size_t i = 0; i < n; i += 2) {
        key_of(key, sizeof(key), i);
        REQUIRE(sb_map_remove(m, key) == VAL(i), "remove %s", key);
    }
    ck_assert_uint_eq(sb_map_size(m), 0);
    ck_assert_uint_eq(visit_all(m, n), 0);
    sb_map_free(m);
}
END_TEST

/* Iteration visits every key exactly once at every size around the growth points. */
START_TEST(test_iteration_every_size)
{
    static const size_t sizes[] = {0, 1, 2, 15, 16, 17, 31, 32, 33, 64, 65, 257, 1000, 4097};
    char key[32];

    for (size_t s = 0; s < N_ELEMS(sizes); s++) {
        sb_map_t *m = map_new();
        for (size_t i = 0; i < sizes[s]; i++) {
            key_of(key, sizeof(key), i);
            REQUIRE(sb_map_put(m, key, VAL(i)) == 0, "put %s", key);
        }
        size_t visits = visit_all(m, sizes[s]);
        REQUIRE(visits == sizes[s], "%zu visits of %zu keys", visits, sizes[s]);
        sb_map_free(m);
    }
}
END_TEST

/* The map must not change during an iteration, so a caller that removes entries while it walks
 * starts a fresh iteration after each removal (the way to drain a map). */
START_TEST(test_remove_with_fresh_iterations)
{
    const size_t n = 2000;
    sb_map_t *m = map_new();
    unsigned char seen[2000] = {0};
    char key[32];
    size_t removed = 0;

    for (size_t i = 0; i < n; i++) {
        key_of(key, sizeof(key), i);
        ck_assert_int_eq(sb_map_put(m, key, VAL(i)), 0);
    }
    for (;;) {
        size_t cursor = 0;
        const char *k;
        void *v;
        if (!sb_map_next(m, &cursor, &k, &v))
            break;
        size_t i = IDX(v);
        REQUIRE(i < n && !seen[i], "entry %s returned after its removal", k);
        seen[i] = 1;
        /* k points into the entry being removed: remove must not need it afterwards. */
        REQUIRE(sb_map_remove(m, k) == v, "remove of the entry just visited failed");
        removed++;
        REQUIRE(sb_map_size(m) == n - removed, "size %zu after %zu removals", sb_map_size(m),
                removed);
    }
    ck_assert_uint_eq(removed, n);
    ck_assert_uint_eq(sb_map_size(m), 0);

    /* Only some: remove every entry whose value is a multiple of 3, restarting each time. */
    for (size_t i = 0; i < n; i++) {
        key_of(key, sizeof(key), i);
        ck_assert_int_eq(sb_map_put(m, key, VAL(i)), 0);
    }
    int again = 1;
    while (again) {
        size_t cursor = 0;
        const char *k;
        void *v;
        again = 0;
        while (sb_map_next(m, &cursor, &k, &v))
            if (IDX(v) % 3 == 0) {
                sb_map_remove(m, k);
                again = 1;
                break;
            }
    }
    ck_assert_uint_eq(sb_map_size(m), n - (n + 2) / 3);
    for (size_t i = 0; i < n; i++) {
        key_of(key, sizeof(key), i);
        REQUIRE(sb_map_get(m, key) == (i % 3 == 0 ? NULL : VAL(i)), "get %s", key);
    }
    sb_map_free(m);
}
END_TEST

/* Keys are C strings of any other bytes: every single byte, high bytes, UTF-8, the empty key,
 * prefixes of each other, lengths around SipHash's 8-byte blocks, and long keys. */
START_TEST(test_arbitrary_bytes)
{
    sb_map_t *m = map_new();
    char key[4096];
    size_t count = 0;

    /* 1: every one-byte key. */
    for (int b = 1; b < 256; b++) {
        key[0] = (char)b;
        key[1] = '\0';
        REQUIRE(sb_map_put(m, key, VAL(b)) == 0, "put byte %d", b);
        count++;
    }
    /* 2: the empty key. */
    ck_assert_int_eq(sb_map_put(m, "", VAL(1000)), 0);
    count++;
    /* 3: "x" repeated 2..100 times: each a prefix of the next, across the block boundaries. */
    for (size_t len = 2; len <= 100; len++) {
        memset(key, 'x', len);
        key[len] = '\0';
        REQUIRE(sb_map_put(m, key, VAL(2000 + len)) == 0, "put x*%zu", len);
        count++;
    }
    /* 4: keys that differ only in their last byte, a high one, at lengths 7 to 17. */
    for (size_t len = 7; len <= 17; len++)
        for (int last = 0x80; last <= 0xFF; last += 0x3F) {
            memset(key, 'y', len - 1);
            key[len - 1] = (char)last;
            key[len] = '\0';
            REQUIRE(sb_map_put(m, key, VAL(3000 + len * 256 + (size_t)last)) == 0, "put y*%zu+%02X",
                    len - 1, last);
            count++;
        }
    /* 5: UTF-8 and a long key. */
    ck_assert_int_eq(sb_map_put(m,
                                "p\xC3\xA9"
                                "er-\xE2\x82\xAC-\xF0\x9F\x98\x80",
                                VAL(5000)),
                     0);
    memset(key, 'z', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    ck_assert_int_eq(sb_map_put(m, key, VAL(5001)), 0);
    count += 2;
    ck_assert_uint_eq(sb_map_size(m), count);

    for (int b = 1; b < 256; b++) {
        key[0] = (char)b;
        key[1] = '\0';
        REQUIRE(sb_map_get(m, key) == VAL(b), "get byte %d", b);
    }
    ck_assert_ptr_eq(sb_map_get(m, ""), VAL(1000));
    for (size_t len = 2; len <= 100; len++) {
        memset(key, 'x', len);
        key[len] = '\0';
        REQUIRE(sb_map_get(m, key) == VAL(2000 + len), "get x*%zu", len);
    }
    for (size_t len = 7; len <= 17; len++)
        for (int last = 0x80; last <= 0xFF; last += 0x3F) {
            memset(key, 'y', len - 1);
            key[len - 1] = (char)last;
            key[len] = '\0';
            REQUIRE(sb_map_get(m, key) == VAL(3000 + len * 256 + (size_t)last), "get y*%zu+%02X",
                    len - 1, last);
        }
    ck_assert_ptr_eq(sb_map_get(m, "p\xC3\xA9"
                                   "er-\xE2\x82\xAC-\xF0\x9F\x98\x80"),
                     VAL(5000));
    memset(key, 'z', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    ck_assert_ptr_eq(sb_map_get(m, key), VAL(5001));
    key[sizeof(key) - 2] = '\0';
    ck_assert_ptr_null(sb_map_get(m, key));

    /* Iteration hands back each key's exact bytes. */
    size_t cursor = 0, visits = 0;
    const char *k;
    void *v;
    while (sb_map_next(m, &cursor, &k, &v)) {
        REQUIRE(sb_map_get(m, k) == v, "iterated key %s does not get its value",
                show(k, strlen(k)));
        visits++;
    }
    ck_assert_uint_eq(visits, count);

    ck_assert_ptr_eq(sb_map_remove(m, ""), VAL(1000));
    ck_assert_ptr_null(sb_map_get(m, ""));
    key[0] = '\xFF';
    key[1] = '\0';
    ck_assert_ptr_eq(sb_map_remove(m, key), VAL(0xFF));
    ck_assert_uint_eq(sb_map_size(m), count - 2);
    sb_map_free(m); /* frees every key copy: LeakSanitizer checks */
}
END_TEST

/* Two maps have different random hash keys, and still agree on contents. */
START_TEST(test_two_maps_independent)
{
    sb_map_t *a = map_new(), *b = map_new();
    char key[32];

    for (size_t i = 0; i < 500; i++) {
        key_of(key, sizeof(key), i);
        ck_assert_int_eq(sb_map_put(a, key, VAL(i)), 0);
        if (i % 2 == 0)
            ck_assert_int_eq(sb_map_put(b, key, VAL(i + 1)), 0);
    }
    ck_assert_uint_eq(sb_map_size(a), 500);
    ck_assert_uint_eq(sb_map_size(b), 250);
    for (size_t i = 0; i < 500; i++) {
        key_of(key, sizeof(key), i);
        REQUIRE(sb_map_get(a, key) == VAL(i), "a: %s", key);
        REQUIRE(sb_map_get(b, key) == (i % 2 ? NULL : VAL(i + 1)), "b: %s", key);
    }
    sb_map_free(a);
    sb_map_free(b);
}
END_TEST

static Suite *map_suite(void)
{
    Suite *s = suite_create("map");
    TCase *tc;

    tc = tcase_create("basics");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_put_get_remove);
    tcase_add_test(tc, test_overwrite);
    tcase_add_test(tc, test_clear);
    tcase_add_test(tc, test_key_is_copied);
    tcase_add_test(tc, test_two_maps_independent);
    suite_add_tcase(s, tc);

    tc = tcase_create("growth and iteration");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_many_keys);
    tcase_add_test(tc, test_iteration_every_size);
    tcase_add_test(tc, test_remove_with_fresh_iterations);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_test(tc, test_arbitrary_bytes);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(map_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
