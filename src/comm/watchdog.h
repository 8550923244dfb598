/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded waiting for backends whose operations complete on their own (NCCL
 * on a GPU): a deadline poll for calls the host must see finish (a
 * non-blocking communicator's init and enqueue), and a watchdog thread for
 * operations the host never waits on itself (a collective the compute
 * stream waits on; a later host sync would hang on it). Both take the probe
 * of an item as a callback, so their timeout logic runs and is tested
 * without a GPU (tests/unit/test_watchdog.c). */
#ifndef SHARDRT_WATCHDOG_H
#define SHARDRT_WATCHDOG_H

#include <stdbool.h>

#include "shardrt/types.h"

typedef enum shardrt__probe {
  SHARDRT__PROBE_ERROR = -1, /* the item failed (a peer's error, a CUDA fault) */
  SHARDRT__PROBE_PENDING = 0,
  SHARDRT__PROBE_DONE = 1,
} shardrt__probe;

typedef shardrt__probe (*shardrt__probe_fn)(void *user, void *item);

/* Probes item until DONE or ERROR, sleeping interval_s between probes, for
 * at most timeout_s (<= 0: no limit). SHARDRT_OK when done;
 * SHARDRT_ERR_TIMEOUT (message names `what` and the limit) when the time
 * ran out; SHARDRT_ERR_COMM when the probe reported an error. */
shardrt_status shardrt__poll_until(shardrt__probe_fn probe, void *user, void *item, double timeout_s,
                                   double interval_s, const char *what);

typedef struct shardrt__watchdog shardrt__watchdog;

/* Called once, on the watchdog's thread, when a watched item errs or is
 * still pending timeout_s after it was added; the watchdog then stops
 * watching (a backend aborts its communicators here, which ends the kernels
 * a host sync would otherwise wait on forever). */
typedef void (*shardrt__expire_fn)(void *user, bool timed_out);

/* Starts the thread; it probes every interval_s (under the watchdog's lock,
 * so forget() never races a probe of the same item). timeout_s must be > 0. */
shardrt_status shardrt__watchdog_start(shardrt__watchdog **out, double timeout_s, double interval_s,
                                       shardrt__probe_fn probe, shardrt__expire_fn expire, void *user);
/* Watches item from now until it probes DONE (then it is dropped). */
shardrt_status shardrt__watchdog_add(shardrt__watchdog *w, void *item);
/* Stops watching item (call before the item is freed or reused). */
void shardrt__watchdog_forget(shardrt__watchdog *w, void *item);
/* True once expire() was called; *timed_out says whether for a timeout. */
bool shardrt__watchdog_fired(shardrt__watchdog *w, bool *timed_out);
/* Number of items watched now (testing). */
int shardrt__watchdog_count(shardrt__watchdog *w);
/* Joins the thread and frees the watchdog; NULL-safe. */
void shardrt__watchdog_stop(shardrt__watchdog *w);

#endif
