/* SPDX-License-Identifier: Apache-2.0 */
/* The timeout logic that bounds the NCCL backend (src/comm/watchdog.c),
 * driven by fake probes so it runs without a GPU: the deadline poll returns
 * on completion, on error and on expiry; the watchdog drops completed items,
 * fires once for an item that errs or outlives the limit (reporting which),
 * and never for an item forgotten before its deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "shardrt.h"
#include "src/comm/watchdog.h"
#include "src/core/error.h"

typedef struct fake {
  atomic_int state;   /* shardrt__probe to report */
  atomic_int probes;  /* how often it was probed */
  int done_after;     /* > 0: DONE from this probe on */
} fake;

static shardrt__probe probe_fake(void *user, void *item) {
  (void)user;
  fake *f = item;
  int n = atomic_fetch_add(&f->probes, 1) + 1;
  if (f->done_after > 0 && n >= f->done_after) return SHARDRT__PROBE_DONE;
  return (shardrt__probe)atomic_load(&f->state);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
  struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

static void poll_returns_when_done(void **state) {
  (void)state;
  fake f = {.done_after = 3};
  assert_int_equal(shardrt__poll_until(probe_fake, NULL, &f, 5.0, 1e-4, "fake init"), SHARDRT_OK);
  assert_int_equal(atomic_load(&f.probes), 3);
  /* no limit (0) still returns on completion */
  fake g = {.done_after = 2};
  assert_int_equal(shardrt__poll_until(probe_fake, NULL, &g, 0, 1e-4, "fake init"), SHARDRT_OK);
}

static void poll_times_out(void **state) {
  (void)state;
  fake f = {0};
  double t0 = now_s();
  assert_int_equal(shardrt__poll_until(probe_fake, NULL, &f, 0.05, 1e-3, "fake init"), SHARDRT_ERR_TIMEOUT);
  double took = now_s() - t0;
  /* At least the limit; the upper bound only guards against a hang (the
   * machine may be loaded: a generous 100x). */
  assert_true(took >= 0.05 && took < 5.0);
  assert_non_null(strstr(shardrt_last_error(), "fake init"));
  assert_non_null(strstr(shardrt_last_error(), "SHARDRT_COLL_TIMEOUT_S"));
}

static void poll_reports_error(void **state) {
  (void)state;
  fake f = {.state = SHARDRT__PROBE_ERROR};
  assert_int_equal(shardrt__poll_until(probe_fake, NULL, &f, 5.0, 1e-4, "fake enqueue"), SHARDRT_ERR_COMM);
  assert_int_equal(atomic_load(&f.probes), 1);
  assert_non_null(strstr(shardrt_last_error(), "fake enqueue"));
}

typedef struct expiry {
  atomic_int calls;
  atomic_int timed_out;
} expiry;

static void on_expire(void *user, bool timed_out) {
  expiry *e = user;
  atomic_store(&e->timed_out, timed_out);
  atomic_fetch_add(&e->calls, 1);
}

/* Waits (bounded) until cond() holds. */
static bool eventually(bool (*cond)(void *), void *arg, double limit_s) {
  double t0 = now_s();
  while (!cond(arg)) {
    if (now_s() - t0 > limit_s) return false;
    sleep_s(1e-3);
  }
  return true;
}

static bool expired(void *arg) { return atomic_load(&((expiry *)arg)->calls) > 0; }
static bool empty(void *arg) { return shardrt__watchdog_count(arg) == 0; }

static void watchdog_drops_completed_items(void **state) {
  (void)state;
  expiry e = {0};
  shardrt__watchdog *w = NULL;
  assert_int_equal(shardrt__watchdog_start(&w, 0.5, 0.005, probe_fake, on_expire, &e), SHARDRT_OK);
  fake a = {0}, b = {0};
  assert_int_equal(shardrt__watchdog_add(w, &a), SHARDRT_OK);
  assert_int_equal(shardrt__watchdog_add(w, &b), SHARDRT_OK);
  assert_int_equal(shardrt__watchdog_count(w), 2);
  atomic_store(&a.state, SHARDRT__PROBE_DONE);
  atomic_store(&b.state, SHARDRT__PROBE_DONE);
  assert_true(eventually(empty, w, 5.0));
  sleep_s(0.6); /* past the limit: completed items never fire */
  assert_false(shardrt__watchdog_fired(w, NULL));
  assert_int_equal(atomic_load(&e.calls), 0);
  shardrt__watchdog_stop(w);
}

static void watchdog_fires_once_on_timeout(void **state) {
  (void)state;
  expiry e = {0};
  shardrt__watchdog *w = NULL;
  assert_int_equal(shardrt__watchdog_start(&w, 0.1, 0.005, probe_fake, on_expire, &e), SHARDRT_OK);
  fake stuck = {0}, fine = {.state = SHARDRT__PROBE_DONE};
  double t0 = now_s();
  assert_int_equal(shardrt__watchdog_add(w, &fine), SHARDRT_OK);
  assert_int_equal(shardrt__watchdog_add(w, &stuck), SHARDRT_OK);
  assert_true(eventually(expired, &e, 10.0));
  assert_true(now_s() - t0 >= 0.1); /* not before the limit */
  bool timed_out = false;
  assert_true(shardrt__watchdog_fired(w, &timed_out));
  assert_true(timed_out);
  assert_int_equal(atomic_load(&e.timed_out), 1);
  /* Once fired it watches nothing and does not fire again. */
  fake later = {0};
  assert_int_equal(shardrt__watchdog_add(w, &later), SHARDRT_OK);
  assert_int_equal(shardrt__watchdog_count(w), 0);
  sleep_s(0.2);
  assert_int_equal(atomic_load(&e.calls), 1);
  shardrt__watchdog_stop(w);
}

static void watchdog_fires_on_error(void **state) {
  (void)state;
  expiry e = {0};
  shardrt__watchdog *w = NULL;
  assert_int_equal(shardrt__watchdog_start(&w, 30.0, 0.005, probe_fake, on_expire, &e), SHARDRT_OK);
  fake bad = {0};
  assert_int_equal(shardrt__watchdog_add(w, &bad), SHARDRT_OK);
  sleep_s(0.02);
  assert_int_equal(atomic_load(&e.calls), 0);
  atomic_store(&bad.state, SHARDRT__PROBE_ERROR); /* a peer's asynchronous error */
  assert_true(eventually(expired, &e, 10.0));
  bool timed_out = true;
  assert_true(shardrt__watchdog_fired(w, &timed_out));
  assert_false(timed_out);
  shardrt__watchdog_stop(w);
}

static void watchdog_forgets(void **state) {
  (void)state;
  expiry e = {0};
  shardrt__watchdog *w = NULL;
  assert_int_equal(shardrt__watchdog_start(&w, 0.05, 0.005, probe_fake, on_expire, &e), SHARDRT_OK);
  fake pending = {0};
  assert_int_equal(shardrt__watchdog_add(w, &pending), SHARDRT_OK);
  shardrt__watchdog_forget(w, &pending); /* e.g. the request was waited and reused */
  assert_int_equal(shardrt__watchdog_count(w), 0);
  sleep_s(0.2);
  assert_int_equal(atomic_load(&e.calls), 0);
  shardrt__watchdog_stop(w);
  shardrt__watchdog_stop(NULL);
}

static void watchdog_rejects_bad_arguments(void **state) {
  (void)state;
  expiry e = {0};
  shardrt__watchdog *w = (shardrt__watchdog *)&e;
  assert_int_equal(shardrt__watchdog_start(&w, 0, 0.01, probe_fake, on_expire, &e), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_null(w);
  assert_int_equal(shardrt__watchdog_start(&w, 1, 0, probe_fake, on_expire, &e), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(shardrt_last_error(), "must be > 0"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(poll_returns_when_done),       cmocka_unit_test(poll_times_out),
      cmocka_unit_test(poll_reports_error),           cmocka_unit_test(watchdog_drops_completed_items),
      cmocka_unit_test(watchdog_fires_once_on_timeout), cmocka_unit_test(watchdog_fires_on_error),
      cmocka_unit_test(watchdog_forgets),             cmocka_unit_test(watchdog_rejects_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
