/* Unit tests for proto/turn: TURN REST credentials, against values computed independently. */
#include <check.h>
#include <string.h>

#include "helpers.h"
#include "turn.h"

/* Known answers, computed with Python's hmac, hashlib and base64. */
START_TEST(test_known_answers)
{
    static const struct {
        const char *secret, *peer;
        uint64_t expiry;
        const char *username, *credential;
    } cases[] = {
        {"north-secret", "alice", 1700000000, "1700000000:alice", "g+jb180fcj+xlpA/2mP60OdIgU0="},
        {"s3cr3t with spaces", "peer_1.x-Y", 4102444800, "4102444800:peer_1.x-Y",
         "grxDcHh0TBQXbYgjeac8Olvwi6w="},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char username[SB_TURN_USERNAME_MAX], credential[SB_TURN_CREDENTIAL_MAX];
        const char *err = NULL;
        ck_assert_int_eq(sb_turn_credentials(cases[i].secret, strlen(cases[i].secret),
                                             cases[i].peer, cases[i].expiry, username, credential,
                                             &err),
                         0);
        ck_assert_str_eq(username, cases[i].username);
        ck_assert_str_eq(credential, cases[i].credential);
    }
}
END_TEST

/* The longest peer ID and expiry fit; the secret may hold any byte, NUL included. */
START_TEST(test_limits)
{
    char id[65], username[SB_TURN_USERNAME_MAX], credential[SB_TURN_CREDENTIAL_MAX], other[29];
    memset(id, 'z', 64);
    id[64] = '\0';
    ck_assert_int_eq(sb_turn_credentials("k", 1, id, UINT64_MAX, username, credential, NULL), 0);
    ck_assert_uint_eq(strlen(username), 20 + 1 + 64);
    ck_assert_uint_eq(strlen(credential), 28);
    ck_assert_int_eq(sb_turn_credentials("k\0x", 3, id, UINT64_MAX, username, other, NULL), 0);
    ck_assert_str_ne(credential, other); /* the bytes after the NUL count */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("turn");
    TCase *tc = tcase_create("credentials");
    tcase_add_test(tc, test_known_answers);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
