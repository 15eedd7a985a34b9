/* Unit tests for node/base/stream (a connection's bytes over a real socket pair: reads handed
 * over where they landed, writes gathered per loop turn) and node/base/pool (free lists). */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "base/loop.h"
#include "base/pool.h"
#include "base/stream.h"
#include "helpers.h"

/* A stream over one end of a socket pair; peer is the other end. */
static struct {
    struct event_base *base;
    sb_streams_t *streams;
    sb_stream_t *s;
    int peer;
    int reads, drains, ends, end_err;
    size_t consume;  /* what on_read consumes: all when SIZE_MAX */
    char seen[4096]; /* what on_read was handed, the last time */
    size_t seen_len;
    int free_on_end;  /* on_end frees the stream */
    int free_on_read; /* on_read frees the stream */
} w;

static void on_read(void *arg)
{
    (void)arg;
    size_t len;
    char *data = sb_stream_data(w.s, &len);
    w.reads++;
    w.seen_len = len < sizeof(w.seen) ? len : sizeof(w.seen);
    memcpy(w.seen, data, w.seen_len);
    if (w.free_on_read) {
        sb_stream_free(w.s);
        w.s = NULL;
        return;
    }
    sb_stream_consume(w.s, w.consume < len ? w.consume : len);
}

static void on_drained(void *arg)
{
    (void)arg;
    w.drains++;
}

static void on_end(void *arg, int err)
{
    (void)arg;
    w.ends++;
    w.end_err = err;
    if (w.free_on_end) {
        sb_stream_free(w.s);
        w.s = NULL;
    }
}

static void setup(void)
{
    int sv[2];
    memset(&w, 0, sizeof(w));
    w.consume = (size_t)-1;
    w.base = sb_loop_new();
    ck_assert_ptr_nonnull(w.base);
    w.streams = sb_streams_new(w.base, SB_PRIO_CLIENTS);
    ck_assert_ptr_nonnull(w.streams);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[1]);
    w.peer = sv[1];
    w.s = sb_stream_socket_new(w.streams, sv[0]);
    ck_assert_ptr_nonnull(w.s);
    sb_stream_setcb(w.s, on_read, on_drained, on_end, NULL);
    sb_stream_reading(w.s, 1);
}

static void teardown(void)
{
    sb_stream_free(w.s);
    close(w.peer);
    sb_streams_free(w.streams);
    event_base_free(w.base);
}

/* Runs the loop until nothing is ready (a few turns), without waiting. */
static void turns(void)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(w.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Reads what the peer has, at most cap bytes, without waiting. */
static size_t peer_read(char *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t k = read(w.peer, buf + n, cap - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    return n;
}

static void peer_write(const char *s)
{
    ck_assert_int_eq(write(w.peer, s, strlen(s)), (ssize_t)strlen(s));
}

static int write_str(const char *a, const char *b)
{
    sb_str_t parts[2] = {{a, strlen(a)}, {b, b ? strlen(b) : 0}};
    return sb_stream_write(w.s, parts, b ? 2 : 1);
}

/* What a turn writes goes out at its end, in one piece, and on_drained follows. */
START_TEST(test_gathered)
{
    char buf[64];
    ck_assert_int_eq(write_str("one ", "two "), 0);
    ck_assert_int_eq(write_str("three", NULL), 0);
    ck_assert_uint_eq(sb_stream_pending(w.s), 13);
    ck_assert_uint_eq(peer_read(buf, sizeof(buf)), 0); /* nothing before the turn's end */
    turns();
    ck_assert_uint_eq(sb_stream_pending(w.s), 0);
    size_t n = peer_read(buf, sizeof(buf));
    ck_assert_str_eq(show(buf, n), "one two three");
    ck_assert_int_eq(w.drains, 1);
}
END_TEST

/* More than the socket takes: the rest waits for it to drain, in order, then on_drained. */
START_TEST(test_remainder)
{
    size_t total = 4 << 20, got = 0;
    char *big = malloc(total), *back = malloc(total);
    for (size_t i = 0; i < total; i++)
        big[i] = (char)(i * 7 + i / 251);
    sb_str_t part = {big, total};
    ck_assert_int_eq(sb_stream_write(w.s, &part, 1), 0);
    turns();
    ck_assert_uint_gt(sb_stream_pending(w.s), 0); /* the kernel took only part */
    ck_assert_int_eq(w.drains, 0);
    for (int i = 0; i < 100000 && got < total; i++) {
        got += peer_read(back + got, total - got);
        turns();
    }
    ck_assert_uint_eq(got, total);
    ck_assert(memcmp(big, back, total) == 0);
    ck_assert_uint_eq(sb_stream_pending(w.s), 0);
    ck_assert_int_eq(w.drains, 1);
    free(big);
    free(back);
}
END_TEST

/* Bytes left unconsumed are kept (out of the shared buffer) and handed over again with what
 * comes next, contiguous; read_later hands them over without new bytes. */
START_TEST(test_rest_kept)
{
    w.consume = 0;
    peer_write("half a fr");
    turns();
    ck_assert_int_eq(w.reads, 1);
    size_t len;
    char *data = sb_stream_data(w.s, &len);
    ck_assert_str_eq(show(data, len), "half a fr");
    w.consume = 5;
    peer_write("ame, and more");
    turns();
    ck_assert_int_eq(w.reads, 2);
    ck_assert_str_eq(show(w.seen, w.seen_len), "half a frame, and more");
    data = sb_stream_data(w.s, &len);
    ck_assert_str_eq(show(data, len), "a frame, and more");
    w.consume = (size_t)-1;
    sb_stream_read_later(w.s);
    turns();
    ck_assert_int_eq(w.reads, 3);
    ck_assert_str_eq(show(w.seen, w.seen_len), "a frame, and more");
    sb_stream_data(w.s, &len);
    ck_assert_uint_eq(len, 0);
}
END_TEST

/* Not reading: bytes stay in the socket until reading is back on. */
START_TEST(test_reading_off)
{
    sb_stream_reading(w.s, 0);
    peer_write("wait");
    turns();
    ck_assert_int_eq(w.reads, 0);
    sb_stream_reading(w.s, 1);
    turns();
    ck_assert_int_eq(w.reads, 1);
    ck_assert_str_eq(show(w.seen, w.seen_len), "wait");
}
END_TEST

/* The peer closing is the end (err 0), once; writes after it are taken and dropped. */
START_TEST(test_peer_gone)
{
    close(w.peer);
    w.peer = -1;
    turns();
    ck_assert_int_eq(w.ends, 1);
    ck_assert_int_eq(w.end_err, 0);
    ck_assert_int_eq(write_str("late", NULL), 0);
    turns();
    ck_assert_int_eq(w.ends, 1);
}
END_TEST

/* A write to a peer that has gone fails the socket: the end, with its error. */
START_TEST(test_write_fails)
{
    sb_stream_reading(w.s, 0);
    close(w.peer);
    w.peer = -1;
    ck_assert_int_eq(write_str("into the void", NULL), 0);
    turns();
    ck_assert_int_eq(w.ends, 1);
    ck_assert_int_eq(w.end_err, EPIPE);
}
END_TEST

/* The owner may free the stream inside its callbacks (LeakSanitizer and ASan watch). */
START_TEST(test_free_in_callbacks)
{
    w.free_on_read = 1;
    peer_write("bye");
    turns();
    ck_assert_ptr_null(w.s);
    ck_assert_int_eq(w.reads, 1);
    teardown();
    setup();
    w.free_on_end = 1;
    ck_assert_int_eq(write_str("queued", NULL), 0);
    close(w.peer);
    w.peer = -1;
    turns();
    ck_assert_ptr_null(w.s);
    ck_assert_int_eq(w.ends, 1);
}
END_TEST

/* An evbuffer's bytes, several chunks of them, go in whole and in order. */
START_TEST(test_evbuffer)
{
    struct evbuffer *b = sb_streams_scratch(w.streams);
    char buf[8192];
    for (int i = 0; i < 40; i++)
        evbuffer_add_printf(b, "line %d\n", i);
    struct evbuffer *chunked = evbuffer_new();
    for (int i = 0; i < 40; i++) /* one chunk per add (evbuffer_add_reference) */
        evbuffer_add_reference(chunked, "chunk ", 6, NULL, NULL);
    evbuffer_add_buffer(b, chunked);
    evbuffer_free(chunked);
    size_t want = evbuffer_get_length(b);
    ck_assert_int_eq(sb_stream_write_evbuffer(w.s, b), 0);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    turns();
    size_t n = peer_read(buf, sizeof(buf));
    ck_assert_uint_eq(n, want);
    ck_assert(memcmp(buf, "line 0\nline 1\n", 14) == 0);
    ck_assert(memcmp(buf + n - 12, "chunk chunk ", 12) == 0);
}
END_TEST

START_TEST(test_pool)
{
    sb_pool_t p = SB_POOL_INIT(48, 2);
    void *a = sb_pool_get(&p), *b = sb_pool_get(&p), *c = sb_pool_get(&p);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(c);
    memset(a, 1, 48);
    memset(b, 2, 48);
    memset(c, 3, 48);
    sb_pool_put(&p, a);
    sb_pool_put(&p, b);
    sb_pool_put(&p, c); /* over keep: freed */
    ck_assert_uint_eq(p.nfree, 2);
    void *d = sb_pool_get(&p), *e = sb_pool_get(&p);
    ck_assert(d == b && e == a); /* the last kept comes back first */
    ck_assert_uint_eq(p.nfree, 0);
    memset(d, 4, 48); /* whole blocks are usable again */
    memset(e, 5, 48);
    sb_pool_put(&p, d);
    sb_pool_put(&p, NULL);
    ck_assert_uint_eq(p.nfree, 1);
    sb_pool_drain(&p);
    ck_assert_uint_eq(p.nfree, 0);
    ck_assert_ptr_null(p.free);
    free(e); /* a block may also go back to malloc directly */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_gathered);
    tcase_add_test(tc, test_remainder);
    tcase_add_test(tc, test_rest_kept);
    tcase_add_test(tc, test_reading_off);
    tcase_add_test(tc, test_peer_gone);
    tcase_add_test(tc, test_write_fails);
    tcase_add_test(tc, test_free_in_callbacks);
    tcase_add_test(tc, test_evbuffer);
    suite_add_tcase(s, tc);
    tc = tcase_create("pool");
    tcase_add_test(tc, test_pool);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
