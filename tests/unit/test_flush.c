/* Unit tests for node/base/flush (writes gathered per loop turn, over a real socket pair) and
 * node/base/pool (free lists of blocks). */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "base/flush.h"
#include "base/loop.h"
#include "base/pool.h"
#include "helpers.h"

/* One bufferevent on a socket pair's end, attached to a flusher; peer is the other end. */
static struct {
    struct event_base *base;
    sb_flush_t *flush;
    sb_flush_item_t item;
    struct bufferevent *bev;
    int peer;
    int writes_seen; /* write callbacks */
} w;

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    (void)arg;
    w.writes_seen++;
    sb_flush_drained(&w.item);
}

static void setup(void)
{
    int sv[2];
    memset(&w, 0, sizeof(w));
    w.base = sb_loop_new();
    ck_assert_ptr_nonnull(w.base);
    w.flush = sb_flush_new(w.base, SB_PRIO_CLIENTS);
    ck_assert_ptr_nonnull(w.flush);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    evutil_make_socket_nonblocking(sv[0]);
    evutil_make_socket_nonblocking(sv[1]);
    w.peer = sv[1];
    w.bev = bufferevent_socket_new(w.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(w.bev);
    bufferevent_setcb(w.bev, NULL, on_write, NULL, NULL);
    bufferevent_enable(w.bev, EV_READ | EV_WRITE);
    ck_assert_int_eq(sb_flush_attach(w.flush, &w.item, w.bev), 0);
}

static void teardown(void)
{
    sb_flush_detach(&w.item);
    bufferevent_free(w.bev);
    close(w.peer);
    sb_flush_free(w.flush);
    event_base_loop(w.base, EVLOOP_NONBLOCK); /* deferred callbacks of the freed bufferevent */
    event_base_free(w.base);
}

/* Reads what the peer has, at most cap bytes, without waiting. */
static size_t peer_read(char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t k = read(w.peer, buf + n, cap - n);
        if (k <= 0 || (n += (size_t)k) == cap)
            break;
    }
    return n;
}

static void turn(void) { event_base_loop(w.base, EVLOOP_ONCE | EVLOOP_NONBLOCK); }

/* What a turn adds goes out at its end, all of it, with the write event never on. */
START_TEST(test_gathered)
{
    char buf[64];
    struct evbuffer *out = bufferevent_get_output(w.bev);
    evbuffer_add(out, "one ", 4);
    evbuffer_add(out, "two ", 4);
    evbuffer_add(out, "three", 5);
    ck_assert_uint_eq(peer_read(buf, sizeof(buf)), 0); /* nothing written yet */
    ck_assert_int_eq(bufferevent_get_enabled(w.bev) & EV_WRITE, 0);
    turn();
    ck_assert_uint_eq(peer_read(buf, sizeof(buf)), 13);
    ck_assert_int_eq(memcmp(buf, "one two three", 13), 0);
    ck_assert_uint_eq(evbuffer_get_length(out), 0);
    ck_assert_int_eq(bufferevent_get_enabled(w.bev) & EV_WRITE, 0);
    ck_assert_int_eq(w.writes_seen, 0); /* nobody asked to hear of the drain */
    /* The next turn's bytes go out the same way. */
    evbuffer_add(out, "four", 4);
    turn();
    ck_assert_uint_eq(peer_read(buf, sizeof(buf)), 4);
}
END_TEST

/* More than the socket takes: the bufferevent writes the rest as the peer reads, then gives the
 * writing back (the write callback's sb_flush_drained). */
START_TEST(test_remainder)
{
    enum { BIG = 4 << 20 };
    char *data = malloc(BIG), *got = malloc(BIG);
    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(got);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (char)(i * 7 + (i >> 11));
    struct evbuffer *out = bufferevent_get_output(w.bev);
    evbuffer_add(out, data, BIG);
    turn();
    ck_assert_uint_gt(evbuffer_get_length(out), 0); /* a socket pair does not take 4 MiB */
    ck_assert_int_ne(bufferevent_get_enabled(w.bev) & EV_WRITE, 0);
    size_t n = 0;
    for (int i = 0; i < 100000 && n < BIG; i++) {
        ssize_t k = read(w.peer, got + n, BIG - n);
        if (k > 0)
            n += (size_t)k;
        turn();
    }
    ck_assert_uint_eq(n, BIG);
    ck_assert_int_eq(memcmp(data, got, BIG), 0);
    for (int i = 0; i < 100 && w.writes_seen == 0; i++)
        turn();
    ck_assert_int_ge(w.writes_seen, 1);
    ck_assert_int_eq(bufferevent_get_enabled(w.bev) & EV_WRITE, 0); /* back to the flusher */
    /* And the flusher writes again. */
    char buf[8];
    evbuffer_add(out, "again", 5);
    turn();
    ck_assert_uint_eq(peer_read(buf, sizeof(buf)), 5);
    free(data);
    free(got);
}
END_TEST

/* want_drained: the write callback runs once a flush has written everything. */
START_TEST(test_want_drained)
{
    char buf[16];
    w.item.want_drained = 1;
    evbuffer_add(bufferevent_get_output(w.bev), "bye", 3);
    for (int i = 0; i < 10 && w.writes_seen == 0; i++)
        turn();
    ck_assert_int_eq(w.writes_seen, 1);
    ck_assert_uint_eq(peer_read(buf, sizeof(buf)), 3);
}
END_TEST

/* Detached before the end of the turn: nothing is written by the flusher, nothing breaks. */
START_TEST(test_detach_while_queued)
{
    char buf[16];
    evbuffer_add(bufferevent_get_output(w.bev), "late", 4);
    sb_flush_detach(&w.item);
    turn();
    ck_assert_uint_eq(peer_read(buf, sizeof(buf)), 0);
    sb_flush_detach(&w.item); /* twice is fine */
}
END_TEST

/* A peer that is gone: the write fails, the bufferevent is left to report it. */
START_TEST(test_peer_gone)
{
    close(w.peer);
    w.peer = -1;
    evbuffer_add(bufferevent_get_output(w.bev), "lost", 4);
    turn();
    ck_assert_int_ne(bufferevent_get_enabled(w.bev) & EV_WRITE, 0);
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
    Suite *s = suite_create("flush");
    TCase *tc = tcase_create("flush");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_gathered);
    tcase_add_test(tc, test_remainder);
    tcase_add_test(tc, test_want_drained);
    tcase_add_test(tc, test_detach_while_queued);
    tcase_add_test(tc, test_peer_gone);
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
