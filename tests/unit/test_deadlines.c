/* Unit tests for node/base/deadlines: many deadlines on one timer fire once each, in order. */
#include <check.h>
#include <stdlib.h>

#include <event2/event.h>

#include "base/deadlines.h"
#include "base/loop.h"
#include "helpers.h"

enum { N = 500 };

typedef struct {
    sb_deadline_t d;
    int fired;
    double when; /* sb_clock_mono() when it fired */
    int again;   /* set itself once more when it fires */
} item_t;

static int order_ok = 1;
static double last_at;
static int fired_total;

static void on_expired(sb_deadline_t *d, void *ctx)
{
    item_t *it = (item_t *)d;
    (void)ctx;
    ck_assert_uint_eq(d->index, 0); /* unset before the call */
    if (d->at < last_at)
        order_ok = 0;
    last_at = d->at;
    it->fired++;
    it->when = sb_clock_mono();
    fired_total++;
    if (it->again) {
        it->again = 0;
        sb_deadlines_set(ctx, d, sb_clock_mono() + 0.01);
    }
}

/* Runs the loop until n callbacks have run (at most 5 s). */
static void run_until(struct event_base *base, int n)
{
    double stop = sb_clock_mono() + 5;
    while (fired_total < n && sb_clock_mono() < stop)
        event_base_loop(base, EVLOOP_ONCE);
}

START_TEST(test_in_order_once_each)
{
    struct event_base *base = event_base_new();
    sb_deadlines_t s;
    static item_t items[N];
    ck_assert_int_eq(sb_deadlines_init(&s, base, on_expired, &s), 0);
    order_ok = 1;
    last_at = 0;
    fired_total = 0;
    srand(7);
    double t0 = sb_clock_mono();
    for (int i = 0; i < N; i++) {
        items[i] = (item_t){0};
        ck_assert_int_eq(sb_deadlines_reserve(&s), 0);
        sb_deadlines_set(&s, &items[i].d, t0 + 0.05 + (rand() % 200) / 1000.0);
    }
    /* Move some later, some earlier; clear every tenth; one sets itself again when it fires. */
    for (int i = 0; i < N; i += 7)
        sb_deadlines_set(&s, &items[i].d, t0 + 0.02 + (rand() % 300) / 1000.0);
    int cleared = 0;
    for (int i = 5; i < N; i += 10) {
        sb_deadlines_clear(&s, &items[i].d);
        sb_deadlines_clear(&s, &items[i].d); /* twice: nothing */
        cleared++;
    }
    items[0].again = 1;
    run_until(base, N - cleared + 1);
    ck_assert_msg(order_ok, "deadlines fired out of order");
    ck_assert_int_eq(fired_total, N - cleared + 1);
    for (int i = 0; i < N; i++) {
        int want = i % 10 == 5 ? 0 : (i == 0 ? 2 : 1);
        ck_assert_msg(items[i].fired == want, "item %d fired %d times", i, items[i].fired);
        if (items[i].fired)
            ck_assert_msg(items[i].when >= items[i].d.at, "item %d fired early", i);
    }
    ck_assert_uint_eq(s.n, 0);
    for (int i = 0; i < N; i++)
        sb_deadlines_unreserve(&s);
    sb_deadlines_free(&s);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deadlines");
    TCase *tc = tcase_create("deadlines");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_in_order_once_each);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
