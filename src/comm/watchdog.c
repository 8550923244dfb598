/* SPDX-License-Identifier: Apache-2.0 */
#include "src/comm/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/core/error.h"

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(double s) {
  if (s <= 0) return;
  struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

shardrt_status shardrt__poll_until(shardrt__probe_fn probe, void *user, void *item, double timeout_s,
                                   double interval_s, const char *what) {
  double t0 = mono_now();
  for (;;) {
    shardrt__probe p = probe(user, item);
    if (p == SHARDRT__PROBE_DONE) return SHARDRT_OK;
    if (p == SHARDRT__PROBE_ERROR) return shardrt__error(SHARDRT_ERR_COMM, "%s failed", what);
    if (timeout_s > 0 && mono_now() - t0 > timeout_s)
      return shardrt__error(SHARDRT_ERR_TIMEOUT,
                            "%s did not complete in %g s (SHARDRT_COLL_TIMEOUT_S): another rank stopped or is "
                            "stuck",
                            what, timeout_s);
    nap(interval_s);
  }
}

typedef struct watched {
  void *item;
  double since;
} watched;

struct shardrt__watchdog {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  double timeout_s, interval_s;
  shardrt__probe_fn probe;
  shardrt__expire_fn expire;
  void *user;
  watched *items;
  int n, cap;
  bool stop, fired, timed_out;
};

/* One pass over the items (lock held). Returns true when expire() is due. */
static bool sweep(shardrt__watchdog *w, bool *timed_out) {
  double now = mono_now();
  for (int i = 0; i < w->n;) {
    shardrt__probe p = w->probe(w->user, w->items[i].item);
    if (p == SHARDRT__PROBE_DONE) {
      w->items[i] = w->items[--w->n];
      continue;
    }
    if (p == SHARDRT__PROBE_ERROR || now - w->items[i].since > w->timeout_s) {
      *timed_out = p != SHARDRT__PROBE_ERROR;
      return true;
    }
    i++;
  }
  return false;
}

static void *watchdog_main(void *arg) {
  shardrt__watchdog *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    if (!w->fired && w->n > 0) {
      bool timed_out = false;
      if (sweep(w, &timed_out)) {
        w->fired = true;
        w->timed_out = timed_out;
        w->n = 0; /* nothing is watched after the backend gave up */
        /* expire() runs unlocked: it may block (NCCL abort) and must not
         * hold up forget() on the main thread. */
        pthread_mutex_unlock(&w->mu);
        w->expire(w->user, timed_out);
        pthread_mutex_lock(&w->mu);
        continue;
      }
    }
    if (w->stop) break;
    if (w->fired || w->n == 0) {
      pthread_cond_wait(&w->cv, &w->mu);
    } else {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      double t = (double)until.tv_sec + 1e-9 * (double)until.tv_nsec + w->interval_s;
      until.tv_sec = (time_t)t;
      until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
      pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

shardrt_status shardrt__watchdog_start(shardrt__watchdog **out, double timeout_s, double interval_s,
                                       shardrt__probe_fn probe, shardrt__expire_fn expire, void *user) {
  *out = NULL;
  if (!(timeout_s > 0) || !(interval_s > 0) || !probe || !expire)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "watchdog: timeout %g s and interval %g s must be > 0, probe and expire set", timeout_s,
                          interval_s);
  shardrt__watchdog *w = calloc(1, sizeof *w);
  if (!w) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "watchdog allocation failed");
  w->timeout_s = timeout_s;
  w->interval_s = interval_s;
  w->probe = probe;
  w->expire = expire;
  w->user = user;
  if (pthread_mutex_init(&w->mu, NULL) != 0) goto fail_mu;
  if (pthread_cond_init(&w->cv, NULL) != 0) goto fail_cv;
  int e = pthread_create(&w->thread, NULL, watchdog_main, w);
  if (e != 0) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return shardrt__error(SHARDRT_ERR_COMM, "watchdog thread could not start: %s", strerror(e));
  }
  *out = w;
  return SHARDRT_OK;
fail_cv:
  pthread_mutex_destroy(&w->mu);
fail_mu:
  free(w);
  return shardrt__error(SHARDRT_ERR_COMM, "watchdog lock initialisation failed");
}

shardrt_status shardrt__watchdog_add(shardrt__watchdog *w, void *item) {
  pthread_mutex_lock(&w->mu);
  if (w->fired) {
    pthread_mutex_unlock(&w->mu);
    return SHARDRT_OK; /* the backend has given up; its caller sees that through fired() */
  }
  if (w->n == w->cap) {
    int cap = w->cap ? 2 * w->cap : 16;
    watched *grown = realloc(w->items, (size_t)cap * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&w->mu);
      return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "watchdog: table of %d items", cap);
    }
    w->items = grown;
    w->cap = cap;
  }
  w->items[w->n++] = (watched){.item = item, .since = mono_now()};
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return SHARDRT_OK;
}

void shardrt__watchdog_forget(shardrt__watchdog *w, void *item) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  for (int i = 0; i < w->n; i++)
    if (w->items[i].item == item) {
      w->items[i] = w->items[--w->n];
      break;
    }
  pthread_mutex_unlock(&w->mu);
}

bool shardrt__watchdog_fired(shardrt__watchdog *w, bool *timed_out) {
  if (!w) return false;
  pthread_mutex_lock(&w->mu);
  bool f = w->fired;
  if (timed_out) *timed_out = w->timed_out;
  pthread_mutex_unlock(&w->mu);
  return f;
}

int shardrt__watchdog_count(shardrt__watchdog *w) {
  pthread_mutex_lock(&w->mu);
  int n = w->n;
  pthread_mutex_unlock(&w->mu);
  return n;
}

void shardrt__watchdog_stop(shardrt__watchdog *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w->items);
  free(w);
}
