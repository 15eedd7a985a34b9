/* Unit tests for proto/peerjs: client frames read as PeerServer reads them, server frames exact. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "peerjs.h"

static sb_pj_msg_t parse_ok(const char *frame)
{
    sb_pj_msg_t m;
    ck_assert_msg(sb_pj_parse(frame, strlen(frame), &m) == 0, "refused: %s", frame);
    return m;
}

static void payload_is(const sb_pj_msg_t *m, const char *want)
{
    ck_assert_int_eq(m->payload.len, strlen(want));
    ck_assert(memcmp(m->payload.p, want, m->payload.len) == 0);
}

START_TEST(test_client_frames)
{
    /* what peerjs 1.5.5 sends: type, payload, dst (in that order) */
    sb_pj_msg_t m = parse_ok("{\"type\":\"OFFER\",\"payload\":{\"sdp\":{\"type\":\"offer\","
                             "\"sdp\":\"v=0\\r\\n\"},\"type\":\"data\",\"connectionId\":\"dc_1\"},"
                             "\"dst\":\"bob\"}");
    ck_assert_int_eq(m.type, SB_PJ_OFFER);
    ck_assert(m.has_dst && m.dst_valid);
    ck_assert_str_eq(m.dst, "bob");
    payload_is(&m, "{\"sdp\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"},\"type\":\"data\","
                   "\"connectionId\":\"dc_1\"}");
    m = parse_ok("{\"type\":\"HEARTBEAT\"}");
    ck_assert_int_eq(m.type, SB_PJ_HEARTBEAT);
    ck_assert(!m.has_dst && m.payload.len == 0);
    m = parse_ok(" { \"dst\" : \"a-1\" , \"type\" : \"CANDIDATE\" , \"payload\" : null } ");
    ck_assert_int_eq(m.type, SB_PJ_CANDIDATE);
    payload_is(&m, "null");
    m = parse_ok("{\"type\":\"ANSWER\",\"dst\":\"x\"}");
    ck_assert_int_eq(m.type, SB_PJ_ANSWER);
    ck_assert_int_eq(m.payload.len, 0);
    ck_assert_int_eq(parse_ok("{\"type\":\"LEAVE\"}").type, SB_PJ_LEAVE);
    ck_assert_int_eq(parse_ok("{\"type\":\"EXPIRE\",\"dst\":\"b\"}").type, SB_PJ_EXPIRE);
    /* escapes in names decode; the last of repeated members counts, as JSON.parse does */
    ck_assert_int_eq(parse_ok("{\"t\\u0079pe\":\"OF\\u0046ER\",\"dst\":\"b\"}").type, SB_PJ_OFFER);
    m = parse_ok("{\"type\":\"OFFER\",\"dst\":\"a\",\"dst\":\"b\",\"type\":\"ANSWER\"}");
    ck_assert_int_eq(m.type, SB_PJ_ANSWER);
    ck_assert_str_eq(m.dst, "b");
    /* other types, other members: read, ignored by the caller */
    ck_assert_int_eq(parse_ok("{\"type\":\"offer\",\"dst\":\"b\"}").type, SB_PJ_OTHER);
    ck_assert_int_eq(parse_ok("{\"type\":\"OPEN\"}").type, SB_PJ_OTHER);
    ck_assert_int_eq(parse_ok("{\"type\":\"\"}").type, SB_PJ_OTHER);
    ck_assert_int_eq(parse_ok("{\"type\":\"OFFER\",\"src\":\"spoof\",\"x\":[1,{}]}").type,
                     SB_PJ_OFFER);
    /* dst: a string that is not a Switchboard ID, or not a string */
    m = parse_ok("{\"type\":\"OFFER\",\"dst\":\"has space\"}");
    ck_assert(m.has_dst && !m.dst_valid && m.dst[0] == '\0');
    m = parse_ok("{\"type\":\"OFFER\",\"dst\":\"\"}");
    ck_assert(m.has_dst && !m.dst_valid);
    m = parse_ok("{\"type\":\"OFFER\",\"dst\":123}");
    ck_assert(!m.has_dst && !m.dst_valid);
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    char frame[160];
    snprintf(frame, sizeof(frame), "{\"type\":\"OFFER\",\"dst\":\"%s\"}", longid);
    m = parse_ok(frame);
    ck_assert(m.has_dst && !m.dst_valid);
}
END_TEST

START_TEST(test_refused_frames)
{
    static const char *const bad[] = {
        "",
        "5",
        "null",
        "\"OFFER\"",
        "[]",
        "{",
        "{\"type\":\"OFFER\"",
        "{}",
        "{\"dst\":\"b\"}",
        "{\"type\":5}",
        "{\"type\":null}",
        "{\"type\":\"OFFER\",}",
        "{\"type\":\"OFFER\"} x",
        "{\"type\":\"OFFER\",\"payload\":}",
        "{\"type\":\"OFFER\",\"payload\":[1,]}",
        "{type:\"OFFER\"}",
    };
    sb_pj_msg_t m;
    for (size_t i = 0; i < N_ELEMS(bad); i++)
        ck_assert_msg(sb_pj_parse(bad[i], strlen(bad[i]), &m) == -1, "accepted: %s", bad[i]);
    /* a NUL inside is not JSON */
    ck_assert_int_eq(sb_pj_parse("{\"type\":\"HEARTBEAT\"}\0", 21, &m), -1);
}
END_TEST

static char *join(const sb_str_t *parts, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    char *out = malloc(len + 1);
    ck_assert_ptr_nonnull(out);
    len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + len, parts[i].p, parts[i].len);
        len += parts[i].len;
    }
    out[len] = '\0';
    return out;
}

START_TEST(test_server_frames)
{
    char out[SB_PJ_FRAME_MAX];
    ck_assert_int_eq(sb_pj_open(out), 15);
    ck_assert_str_eq(out, "{\"type\":\"OPEN\"}");
    sb_pj_error(SB_PJ_MSG_NO_ID, out);
    ck_assert_str_eq(out,
                     "{\"type\":\"ERROR\",\"payload\":{\"msg\":\"No id, token, or key supplied "
                     "to websocket server\"}}");
    sb_pj_error(SB_PJ_MSG_BAD_KEY, out);
    ck_assert_str_eq(out, "{\"type\":\"ERROR\",\"payload\":{\"msg\":\"Invalid key provided\"}}");
    sb_pj_id_taken(out);
    ck_assert_str_eq(out, "{\"type\":\"ID-TAKEN\",\"payload\":{\"msg\":\"ID is taken\"}}");
    sb_pj_expire("gone", "me", out);
    ck_assert_str_eq(out, "{\"type\":\"EXPIRE\",\"src\":\"gone\",\"dst\":\"me\"}");
    char longest[SB_ID_MAX + 1];
    memset(longest, 'z', SB_ID_MAX);
    longest[SB_ID_MAX] = '\0';
    ck_assert_int_lt(sb_pj_expire(longest, longest, out), SB_PJ_FRAME_MAX);

    sb_str_t parts[SB_PJ_RELAY_PARTS];
    sb_str_t payload = {"{\"a\":[1,2]}", 11};
    size_t n = sb_pj_relay_parts(SB_PJ_CANDIDATE, "alice", "bob", payload, parts);
    ck_assert_int_le(n, SB_PJ_RELAY_PARTS);
    char *frame = join(parts, n);
    ck_assert_str_eq(frame, "{\"type\":\"CANDIDATE\",\"src\":\"alice\",\"dst\":\"bob\",\"payload\":"
                            "{\"a\":[1,2]}}");
    free(frame);
    n = sb_pj_relay_parts(SB_PJ_LEAVE, "alice", "bob", (sb_str_t){NULL, 0}, parts);
    frame = join(parts, n);
    ck_assert_str_eq(frame, "{\"type\":\"LEAVE\",\"src\":\"alice\",\"dst\":\"bob\"}");
    cJSON *j = cJSON_Parse(frame);
    ck_assert_ptr_nonnull(j);
    cJSON_Delete(j);
    free(frame);
    for (int t = SB_PJ_HEARTBEAT; t < SB_PJ_OTHER; t++)
        ck_assert_ptr_nonnull(sb_pj_type_name((sb_pj_type_t)t));
    ck_assert_ptr_null(sb_pj_type_name(SB_PJ_OTHER));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peerjs");
    TCase *tc = tcase_create("peerjs");
    tcase_add_test(tc, test_client_frames);
    tcase_add_test(tc, test_refused_frames);
    tcase_add_test(tc, test_server_frames);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
