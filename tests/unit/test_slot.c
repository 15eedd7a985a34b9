/* Unit tests for proto/slot: Redis Cluster's CRC16 and hash slots, against answers from Redis. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "slot.h"

/* The CRC bit by bit, straight from its definition (XMODEM: polynomial 0x1021, initial 0, no
 * reflection), to check the table-driven one against. */
static unsigned crc16_bitwise(const unsigned char *p, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

static unsigned slot(const char *key) { return sb_slot_of(key, strlen(key)); }

START_TEST(test_crc16_check_value)
{
    /* the cluster specification's test vector */
    ck_assert_uint_eq(sb_slot_crc16("123456789", 9), 0x31C3);
    ck_assert_uint_eq(sb_slot_crc16("", 0), 0);
    ck_assert_uint_eq(sb_slot_crc16(NULL, 0), 0);
    ck_assert_uint_eq(sb_slot_crc16("A", 1), 0x58E5);
}
END_TEST

START_TEST(test_crc16_against_bitwise)
{
    unsigned char buf[512];
    for (int b = 0; b < 256; b++) {
        buf[0] = (unsigned char)b;
        ck_assert_uint_eq(sb_slot_crc16((const char *)buf, 1), crc16_bitwise(buf, 1));
    }
    unsigned x = 12345;
    for (int round = 0; round < 200; round++) {
        size_t len = (size_t)round * 2 + 1;
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (unsigned char)(x >> 16);
        }
        ck_assert_uint_eq(sb_slot_crc16((const char *)buf, len), crc16_bitwise(buf, len));
    }
}
END_TEST

/* Each answer below was given by a cluster-enabled redis-server 7.0 (CLUSTER KEYSLOT), and agrees
 * with a reference written from the specification. */
START_TEST(test_known_slots)
{
    ck_assert_uint_eq(slot(""), 0);
    ck_assert_uint_eq(slot("a"), 15495);
    ck_assert_uint_eq(slot("foo"), 12182);
    ck_assert_uint_eq(slot("bar"), 5061);
    ck_assert_uint_eq(slot("hello"), 866);
    ck_assert_uint_eq(slot("123456789"), 12739); /* 0x31C3 & 16383 */
    ck_assert_uint_eq(slot("user1000"), 3443);
    ck_assert_uint_eq(slot("sb:peer:alice"), 15446);
    ck_assert_uint_eq(slot("sb:members:lobby"), 489);
    ck_assert_uint_eq(slot("sb:alive:node-1"), 11218);
    ck_assert_uint_eq(slot("sb:peer:{alice}"), 749);
    /* any byte, NUL included, counts */
    ck_assert_uint_eq(sb_slot_of("\xff\x00\x80", 3), 7915);
    char key[1000];
    memset(key, 'x', sizeof(key));
    ck_assert_uint_eq(sb_slot_of(key, sizeof(key)), 3195);
}
END_TEST

START_TEST(test_hash_tags)
{
    /* the specification's examples */
    ck_assert_uint_eq(slot("{user1000}.following"), 3443);
    ck_assert_uint_eq(slot("{user1000}.followers"), 3443);
    ck_assert_uint_eq(slot("{user1000}.following"), slot("user1000"));
    ck_assert_uint_eq(slot("foo{}{bar}"), 8363); /* an empty tag: the whole key */
    ck_assert_uint_ne(slot("foo{}{bar}"), slot("bar"));
    ck_assert_uint_eq(slot("foo{{bar}}zap"), 4015); /* the tag is "{bar" */
    ck_assert_uint_eq(slot("foo{{bar}}zap"), slot("{bar"));
    ck_assert_uint_eq(slot("foo{bar}{zap}"), 5061); /* the first tag only: "bar" */
    ck_assert_uint_eq(slot("foo{bar}{zap}"), slot("bar"));
    /* more edges, also from redis-server */
    ck_assert_uint_eq(slot("{a}"), 15495);
    ck_assert_uint_eq(slot("x{a}y"), 15495);
    ck_assert_uint_eq(slot("a{b}c{d}"), 3300);
    ck_assert_uint_eq(slot("{{}}"), 4092); /* the tag is "{" */
    ck_assert_uint_eq(slot("{"), 4092);
    ck_assert_uint_eq(slot("}"), 12090);
    ck_assert_uint_eq(slot("{}"), 15257);
    ck_assert_uint_eq(slot("{}x{y}"), 2166);   /* the first '{' decides, and its tag is empty */
    ck_assert_uint_eq(slot("}{x}"), 16287);    /* a '}' before the '{' does not count */
    ck_assert_uint_eq(slot("foo{bar"), 15278); /* no '}': the whole key */
    ck_assert_uint_eq(slot("foo}bar{"), 11073);
    char key[304];
    key[0] = '{';
    memset(key + 1, 'y', 300);
    memcpy(key + 301, "}z", 2);
    ck_assert_uint_eq(sb_slot_of(key, 303), 10942);
    ck_assert_uint_eq(sb_slot_of(key, 303), sb_slot_of(key + 1, 300));
    /* the length bounds the search: a '}' just past len is not seen */
    ck_assert_uint_eq(sb_slot_of("{ab}", 3), slot("{ab"));
    ck_assert_uint_eq(sb_slot_of("{", 0), 0);
}
END_TEST

START_TEST(test_range)
{
    char key[2];
    for (unsigned v = 0; v < 65536; v++) {
        key[0] = (char)(v >> 8);
        key[1] = (char)v;
        unsigned s = sb_slot_of(key, 2);
        ck_assert_uint_lt(s, SB_SLOTS);
        ck_assert_uint_eq(s, sb_slot_crc16(key, 2) % SB_SLOTS); /* no tag in two bytes */
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slot");
    TCase *tc = tcase_create("slot");
    tcase_add_test(tc, test_crc16_check_value);
    tcase_add_test(tc, test_crc16_against_bitwise);
    tcase_add_test(tc, test_known_slots);
    tcase_add_test(tc, test_hash_tags);
    tcase_add_test(tc, test_range);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
