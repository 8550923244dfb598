/* SPDX-License-Identifier: Apache-2.0 */
/* MPI communication backend. Host buffers go straight to MPI's non-blocking
 * collectives; device buffers (a CUDA context whose ranks share a GPU, where
 * NCCL cannot run) are staged through host memory synchronously. Gathers and
 * broadcasts are MPI's; reduce-scatter and all-reduce are rings over
 * point-to-point messages (mpi_ring.c: Open MPI's non-blocking reductions
 * allocate a whole-buffer temporary per call), which add 16-bit floats in
 * fp32 and round, one addition per step. 16-bit floats travel as MPI
 * datatypes of their own.
 *
 * Progress. Open MPI moves a non-blocking collective forward only while some
 * thread of the process is inside MPI, so a collective started before a
 * unit's compute would sit still until the next MPI call. With
 * MPI_THREAD_MULTIPLE a progress thread tests the requests in flight every
 * SHARDRT_MPI_PROGRESS_US microseconds (default 50) and sleeps on a
 * condition variable when none is; wait() takes a request back from it and
 * completes it with MPI_Wait. Without MPI_THREAD_MULTIPLE (or with
 * SHARDRT_MPI_PROGRESS=poll) the runtime polls at every unit boundary
 * instead. */
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>

#include "src/comm/comm.h"
#include "src/comm/mpi_ring.h"
#include "src/core/error.h"

struct shardrt__req {
  MPI_Request r;
  /* A ring reduction (mpi_ring.c) instead of one MPI request: advanced by
   * whoever holds the request, and its scratch returned at wait(). */
  bool is_ring;
  shardrt__ring ring;
  struct scratch *scratch;
  /* Progress-thread mode: while `queued`, the request belongs to the
   * progress thread (listed in `next`, tested under the lock); `done` is set
   * (with `err`) when the thread completed it. */
  bool queued;
  atomic_bool done;
  int err;
  struct shardrt__req *next;
};

typedef struct progress_thread {
  bool on;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  shardrt__req *active; /* requests the thread tests */
  bool stop;
  long interval_ns;
} progress_thread;

/* A kept scratch chunk of the ring reductions: taken by a ring at its start
 * and given back at its wait (both on the calling thread). */
typedef struct scratch {
  void *p;
  size_t bytes;
  bool busy;
  struct scratch *next;
} scratch;

typedef struct mpi_comm {
  MPI_Comm comm[SHARDRT__GROUP_COUNT_];
  MPI_Datatype bf16, f16;
  shardrt__device *dev;
  void *stage;       /* host staging for device buffers */
  size_t stage_bytes;
  progress_thread pt;
  double timeout_s; /* > 0: wait() gives up after this long */
  bool broken;      /* a wait timed out: requests may be pending forever */
  bool debug;       /* SHARDRT_DEBUG=collectives: the runtime checks every collective first */
  scratch *scratch; /* the rings' kept chunks */
  int ring_seq[SHARDRT__GROUP_COUNT_]; /* per group: the tag of the next ring (same order on every rank) */
} mpi_comm;

/* The 16-bit datatypes are process-wide (created once). */
static MPI_Datatype g_bf16 = MPI_DATATYPE_NULL, g_f16 = MPI_DATATYPE_NULL;

static shardrt_status mpi_fail(int err, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(err, msg, &len);
  return shardrt__error(SHARDRT_ERR_COMM, "MPI %s failed: %s", what, msg);
}

#define MPICHECK(call, what)                          \
  do {                                                \
    int e__ = (call);                                 \
    if (e__ != MPI_SUCCESS) return mpi_fail(e__, what); \
  } while (0)

static MPI_Datatype mpi_type(const mpi_comm *m, shardrt_dtype dt) {
  return dt == SHARDRT_F32 ? MPI_FLOAT : dt == SHARDRT_BF16 ? m->bf16 : m->f16;
}

/* MPI counts are ints: a collective over more elements is refused with a
 * clear message instead of wrapping around. */
static shardrt_status check_count(size_t count, int size, const char *what) {
  if (count * (size_t)(size > 0 ? size : 1) > (size_t)INT_MAX)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                          "%s of %zu elements x %d ranks exceeds MPI's int count (%d): split the model into smaller "
                          "units (fsdp_auto_wrap_policy) or use the nccl backend",
                          what, count, size, INT_MAX);
  return SHARDRT_OK;
}

static shardrt_status new_req(shardrt__req **req) {
  *req = calloc(1, sizeof **req);
  if (!*req) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "MPI request allocation failed");
  (*req)->r = MPI_REQUEST_NULL;
  return SHARDRT_OK;
}

/* A request whose MPI_I* call failed was never started: free it here, or
 * it leaks (the caller gets no request to wait on). */
static shardrt_status start_failed(shardrt__req **req, int err, const char *what) {
  free(*req);
  *req = NULL;
  return mpi_fail(err, what);
}

#define MPISTART(call, what)                                   \
  do {                                                         \
    int e__ = (call);                                          \
    if (e__ != MPI_SUCCESS) return start_failed(req, e__, what); \
  } while (0)

static bool staged(const mpi_comm *m) { return m->dev && m->dev->is_cuda; }

/* Hands a started request to the progress thread (no-op without one). */
static void hand_over(mpi_comm *m, shardrt__req *req) {
  if (!m->pt.on || !req) return;
  pthread_mutex_lock(&m->pt.mu);
  req->queued = true;
  req->next = m->pt.active;
  m->pt.active = req;
  pthread_cond_signal(&m->pt.cv);
  pthread_mutex_unlock(&m->pt.mu);
}

/* A kept scratch chunk of at least `bytes` (NULL for 0 bytes): the smallest
 * free one that fits, else a new one. Rings run at most a few at a time
 * (one gradient reduction in flight, plus HYBRID's replica all-reduce), so
 * the list stays that short, each at most one chunk of the largest unit. */
static shardrt_status scratch_take(mpi_comm *m, size_t bytes, scratch **out) {
  *out = NULL;
  if (bytes == 0) return SHARDRT_OK;
  scratch *best = NULL;
  for (scratch *c = m->scratch; c; c = c->next)
    if (!c->busy && c->bytes >= bytes && (!best || c->bytes < best->bytes)) best = c;
  if (!best) {
    for (scratch *c = m->scratch; c; c = c->next) /* grow a free one rather than add another */
      if (!c->busy) {
        void *p = malloc(bytes);
        if (!p) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "mpi: reduction scratch of %zu bytes", bytes);
        free(c->p);
        c->p = p;
        c->bytes = bytes;
        best = c;
        break;
      }
  }
  if (!best) {
    best = calloc(1, sizeof *best);
    if (best) best->p = malloc(bytes);
    if (!best || !best->p) {
      free(best);
      return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "mpi: reduction scratch of %zu bytes", bytes);
    }
    best->bytes = bytes;
    best->next = m->scratch;
    m->scratch = best;
  }
  best->busy = true;
  *out = best;
  return SHARDRT_OK;
}

/* Starts a ring reduction (mpi_ring.c) as a request. */
static shardrt_status ring_start(mpi_comm *m, shardrt__group g, bool allreduce, const void *send, void *data,
                                 size_t count, shardrt_dtype dt, shardrt__req **req, const char *what) {
  int size;
  MPI_Comm_size(m->comm[g], &size);
  SHARDRT__CHECK(new_req(req));
  (*req)->is_ring = true;
  shardrt_status rc = scratch_take(m, shardrt__ring_scratch_bytes(allreduce, count, size, dt), &(*req)->scratch);
  if (rc != SHARDRT_OK) {
    free(*req);
    *req = NULL;
    return rc;
  }
  /* Tags tell apart rings that overlap on one communicator; every rank
   * starts a group's rings in the same order. */
  int tag = m->ring_seq[g]++ & 0x7fff;
  int e = shardrt__ring_start(&(*req)->ring, allreduce, m->comm[g], tag, mpi_type(m, dt), dt, send, data, count,
                              (*req)->scratch ? (*req)->scratch->p : NULL);
  if (e != MPI_SUCCESS) {
    if ((*req)->scratch) (*req)->scratch->busy = false;
    return start_failed(req, e, what);
  }
  hand_over(m, *req);
  return SHARDRT_OK;
}

static void *progress_main(void *arg) {
  progress_thread *pt = arg;
#ifdef __linux__
  /* The default 50 us timer slack would double a short poll interval. */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
#endif
  struct timespec nap = {.tv_sec = pt->interval_ns / 1000000000L, .tv_nsec = pt->interval_ns % 1000000000L};
  pthread_mutex_lock(&pt->mu);
  for (;;) {
    while (!pt->stop && !pt->active) pthread_cond_wait(&pt->cv, &pt->mu);
    if (pt->stop) break;
    for (shardrt__req **pp = &pt->active; *pp;) {
      shardrt__req *q = *pp;
      int flag = 0, e;
      if (q->is_ring) {
        bool d = false;
        e = shardrt__ring_test(&q->ring, false, &d);
        flag = d;
      } else {
        e = MPI_Test(&q->r, &flag, MPI_STATUS_IGNORE);
      }
      if (e != MPI_SUCCESS || flag) {
        q->err = e;
        q->queued = false;
        *pp = q->next;
        atomic_store(&q->done, true);
      } else {
        pp = &q->next;
      }
    }
    if (!pt->active) continue;
    pthread_mutex_unlock(&pt->mu);
    nanosleep(&nap, NULL);
    pthread_mutex_lock(&pt->mu);
  }
  pthread_mutex_unlock(&pt->mu);
  return NULL;
}

/* SHARDRT_MPI_PROGRESS=auto|thread|poll, SHARDRT_MPI_PROGRESS_US=N. */
static shardrt_status progress_start(mpi_comm *m) {
  const char *mode = getenv("SHARDRT_MPI_PROGRESS");
  if (!mode || !*mode) mode = "auto";
  bool want_thread = strcasecmp(mode, "thread") == 0;
  if (!want_thread && strcasecmp(mode, "auto") != 0 && strcasecmp(mode, "poll") != 0)
    return shardrt__error(SHARDRT_ERR_CONFIG, "SHARDRT_MPI_PROGRESS=%s is unknown (allowed: auto, thread, poll)", mode);
  if (strcasecmp(mode, "poll") == 0 || staged(m)) return SHARDRT_OK; /* staged collectives are blocking */
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_MULTIPLE) {
    if (want_thread)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "SHARDRT_MPI_PROGRESS=thread needs MPI_THREAD_MULTIPLE, but MPI was initialised with "
                            "thread level %d: call MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...) or let "
                            "shardrt_ctx_create initialise MPI (or set SHARDRT_MPI_PROGRESS=poll)",
                            level);
    return SHARDRT_OK;
  }
  long us = 50;
  const char *us_s = getenv("SHARDRT_MPI_PROGRESS_US");
  if (us_s && *us_s) {
    char *end = NULL;
    errno = 0;
    us = strtol(us_s, &end, 10);
    if (errno || *end || us < 1 || us > 1000000)
      return shardrt__error(SHARDRT_ERR_CONFIG, "SHARDRT_MPI_PROGRESS_US=%s is not an integer in [1, 1000000]", us_s);
  }
  m->pt.interval_ns = us * 1000L;
  if (pthread_mutex_init(&m->pt.mu, NULL) != 0) return shardrt__error(SHARDRT_ERR_COMM, "progress mutex init failed");
  if (pthread_cond_init(&m->pt.cv, NULL) != 0) {
    pthread_mutex_destroy(&m->pt.mu);
    return shardrt__error(SHARDRT_ERR_COMM, "progress condition variable init failed");
  }
  int e = pthread_create(&m->pt.thread, NULL, progress_main, &m->pt);
  if (e != 0) {
    pthread_cond_destroy(&m->pt.cv);
    pthread_mutex_destroy(&m->pt.mu);
    return shardrt__error(SHARDRT_ERR_COMM, "MPI progress thread could not start: %s", strerror(e));
  }
  m->pt.on = true;
  return SHARDRT_OK;
}

bool shardrt__comm_mpi_req_done(const shardrt__req *req) { return req && atomic_load(&req->done); }

static void progress_stop(mpi_comm *m) {
  if (!m->pt.on) return;
  pthread_mutex_lock(&m->pt.mu);
  m->pt.stop = true;
  pthread_cond_signal(&m->pt.cv);
  pthread_mutex_unlock(&m->pt.mu);
  pthread_join(m->pt.thread, NULL);
  pthread_cond_destroy(&m->pt.cv);
  pthread_mutex_destroy(&m->pt.mu);
  m->pt.on = false;
}

static shardrt_status stage_reserve(mpi_comm *m, size_t bytes) {
  if (bytes <= m->stage_bytes) return SHARDRT_OK;
  void *p = NULL;
  if (m->dev->i->host_alloc) {
    SHARDRT__CHECK(m->dev->i->host_alloc(m->dev->self, bytes, &p));
    if (m->stage) m->dev->i->host_free(m->dev->self, m->stage);
  } else {
    p = malloc(bytes);
    if (!p) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "staging buffer of %zu bytes", bytes);
    free(m->stage);
  }
  m->stage = p;
  m->stage_bytes = bytes;
  return SHARDRT_OK;
}


static shardrt_status timed_wait_r(mpi_comm *m, MPI_Request *r, int *err, const char *what);

/* A blocking collective as its non-blocking form + the timed wait, so that
 * SHARDRT_COLL_TIMEOUT_S bounds it like every other. `e` is the MPI_I*
 * call's result, r its request. */
static shardrt_status blocking(mpi_comm *m, int e, MPI_Request *r, const char *what) {
  if (e != MPI_SUCCESS) return mpi_fail(e, what);
  if (m->broken) return shardrt__error(SHARDRT_ERR_COMM, "a collective timed out earlier: communication is broken");
  SHARDRT__CHECK(timed_wait_r(m, r, &e, what));
  if (e != MPI_SUCCESS) return mpi_fail(e, what);
  return SHARDRT_OK;
}

static shardrt_status mpi_wait(void *self, shardrt__req *req);

/* A ring reduction started and waited at once (the staged, blocking path):
 * no Open MPI temporaries there either. */
static shardrt_status ring_blocking(mpi_comm *m, shardrt__group g, bool allreduce, const void *send, void *data,
                                   size_t count, shardrt_dtype dt, const char *what) {
  if (m->broken) return shardrt__error(SHARDRT_ERR_COMM, "a collective timed out earlier: communication is broken");
  shardrt__req *req = NULL;
  SHARDRT__CHECK(ring_start(m, g, allreduce, send, data, count, dt, &req, what));
  return mpi_wait(m, req);
}

static shardrt_status to_host(mpi_comm *m, void *dst, const void *src, size_t bytes) {
  SHARDRT__CHECK(m->dev->i->copy(m->dev->self, dst, src, bytes, SHARDRT__D2H));
  return m->dev->i->sync(m->dev->self);
}
static shardrt_status to_dev(mpi_comm *m, void *dst, const void *src, size_t bytes) {
  SHARDRT__CHECK(m->dev->i->copy(m->dev->self, dst, src, bytes, SHARDRT__H2D));
  return m->dev->i->sync(m->dev->self);
}

static shardrt_status mpi_all_gather(void *self, shardrt__group g, const void *send, void *recv, size_t count,
                                     shardrt_dtype dt, shardrt__req **req) {
  mpi_comm *m = self;
  int rank, size;
  MPI_Comm_rank(m->comm[g], &rank);
  MPI_Comm_size(m->comm[g], &size);
  size_t es = shardrt_dtype_size(dt), piece = count * es;
  bool in_place = (const char *)send == (const char *)recv + (size_t)rank * piece;
  *req = NULL;
  SHARDRT__CHECK(check_count(count, size, "all_gather"));
  if (staged(m)) {
    SHARDRT__CHECK(stage_reserve(m, piece * size));
    char *h = m->stage;
    SHARDRT__CHECK(to_host(m, h + (size_t)rank * piece, send, piece));
    MPI_Request r;
    SHARDRT__CHECK(blocking(m, MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, h, (int)count, mpi_type(m, dt), m->comm[g], &r),
                            &r, "all_gather (staged)"));
    return to_dev(m, recv, h, piece * size);
  }
  SHARDRT__CHECK(new_req(req));
  MPISTART(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, (int)count, mpi_type(m, dt), recv, (int)count,
                          mpi_type(m, dt), m->comm[g], &(*req)->r),
           "all_gather");
  hand_over(m, *req);
  return SHARDRT_OK;
}

static shardrt_status mpi_reduce_scatter(void *self, shardrt__group g, const void *send, void *recv, size_t count,
                                         shardrt_dtype dt, shardrt__req **req) {
  mpi_comm *m = self;
  int size;
  MPI_Comm_size(m->comm[g], &size);
  size_t piece = count * shardrt_dtype_size(dt);
  *req = NULL;
  SHARDRT__CHECK(check_count(count, size, "reduce_scatter"));
  if (staged(m)) {
    SHARDRT__CHECK(stage_reserve(m, piece * (size + 1)));
    char *h = m->stage;
    SHARDRT__CHECK(to_host(m, h, send, piece * size));
    SHARDRT__CHECK(ring_blocking(m, g, false, h, h + piece * size, count, dt, "reduce_scatter (staged)"));
    return to_dev(m, recv, h + piece * size, piece);
  }
  return ring_start(m, g, false, send, recv, count, dt, req, "reduce_scatter");
}

static shardrt_status mpi_all_reduce(void *self, shardrt__group g, void *buf, size_t count, shardrt_dtype dt,
                                     shardrt__req **req) {
  mpi_comm *m = self;
  size_t bytes = count * shardrt_dtype_size(dt);
  *req = NULL;
  SHARDRT__CHECK(check_count(count, 1, "all_reduce"));
  if (staged(m)) {
    SHARDRT__CHECK(stage_reserve(m, bytes));
    SHARDRT__CHECK(to_host(m, m->stage, buf, bytes));
    SHARDRT__CHECK(ring_blocking(m, g, true, m->stage, m->stage, count, dt, "all_reduce (staged)"));
    return to_dev(m, buf, m->stage, bytes);
  }
  return ring_start(m, g, true, buf, buf, count, dt, req, "all_reduce");
}

static shardrt_status mpi_broadcast(void *self, shardrt__group g, void *buf, size_t count, shardrt_dtype dt, int root,
                                    shardrt__req **req) {
  mpi_comm *m = self;
  size_t bytes = count * shardrt_dtype_size(dt);
  *req = NULL;
  SHARDRT__CHECK(check_count(bytes, 1, "broadcast"));
  if (staged(m)) {
    SHARDRT__CHECK(stage_reserve(m, bytes));
    SHARDRT__CHECK(to_host(m, m->stage, buf, bytes));
    MPI_Request r;
    SHARDRT__CHECK(blocking(m, MPI_Ibcast(m->stage, (int)bytes, MPI_BYTE, root, m->comm[g], &r), &r, "broadcast (staged)"));
    return to_dev(m, buf, m->stage, bytes);
  }
  SHARDRT__CHECK(new_req(req));
  MPISTART(MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, m->comm[g], &(*req)->r), "broadcast");
  hand_over(m, *req);
  return SHARDRT_OK;
}

/* MPI_Wait within the backend's timeout. On a timeout the request is left
 * to MPI (it may still complete into its buffers) and the backend is
 * marked broken. */
static bool past_limit(const mpi_comm *m, const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec) > m->timeout_s;
}

static shardrt_status timed_out(mpi_comm *m, const char *what) {
  m->broken = true;
  int rank = -1;
  MPI_Comm_rank(m->comm[SHARDRT__GROUP_WORLD], &rank);
  return shardrt__error(SHARDRT_ERR_TIMEOUT,
                        "rank %d: %s did not complete in %g s (SHARDRT_COLL_TIMEOUT_S): another rank stopped or "
                        "issues different collectives; %s",
                        rank, what ? what : "a collective", m->timeout_s,
                        m->debug ? "every rank passed the SHARDRT_DEBUG=collectives check before it, so the missing "
                                   "rank stopped between that check and this collective"
                                 : "run with SHARDRT_DEBUG=collectives to name the rank that did not arrive");
}

static shardrt_status timed_wait_r(mpi_comm *m, MPI_Request *r, int *err, const char *what) {
  if (m->timeout_s <= 0) {
    *err = MPI_Wait(r, MPI_STATUS_IGNORE);
    return SHARDRT_OK;
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    int flag = 0;
    *err = MPI_Test(r, &flag, MPI_STATUS_IGNORE);
    if (*err != MPI_SUCCESS || flag) return SHARDRT_OK;
    if (past_limit(m, &t0)) return timed_out(m, what);
  }
}

/* timed_wait_r for a ring reduction. */
static shardrt_status timed_wait_ring(mpi_comm *m, shardrt__ring *g, int *err) {
  bool done = false;
  if (m->timeout_s <= 0) {
    *err = shardrt__ring_test(g, true, &done);
    return SHARDRT_OK;
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    *err = shardrt__ring_test(g, false, &done);
    if (*err != MPI_SUCCESS || done) return SHARDRT_OK;
    if (past_limit(m, &t0)) return timed_out(m, g->allreduce ? "all_reduce" : "reduce_scatter");
  }
}

static shardrt_status mpi_wait(void *self, shardrt__req *req) {
  mpi_comm *m = self;
  if (!req) return SHARDRT_OK;
  int e = MPI_SUCCESS;
  bool finished = false;
  if (m->pt.on) {
    /* Take the request back from the progress thread, or its result. */
    pthread_mutex_lock(&m->pt.mu);
    if (req->queued) {
      for (shardrt__req **pp = &m->pt.active; *pp; pp = &(*pp)->next)
        if (*pp == req) {
          *pp = req->next;
          break;
        }
      req->queued = false;
    } else if (atomic_load(&req->done)) {
      finished = true;
      e = req->err;
    }
    pthread_mutex_unlock(&m->pt.mu);
  }
  /* Our record is freed on every path; after a timeout the MPI request
   * itself stays with MPI (collectives cannot be cancelled). */
  shardrt_status rc = SHARDRT_OK;
  if (!finished && m->broken) rc = shardrt__error(SHARDRT_ERR_COMM, "a collective timed out earlier: communication is broken");
  else if (!finished) rc = req->is_ring ? timed_wait_ring(m, &req->ring, &e) : timed_wait_r(m, &req->r, &e, NULL);
  /* After a timeout MPI may still write into the scratch: it stays busy. */
  if (req->scratch && rc == SHARDRT_OK) req->scratch->busy = false;
  free(req);
  if (rc != SHARDRT_OK) return rc;
  if (e != MPI_SUCCESS) return mpi_fail(e, "wait");
  return SHARDRT_OK;
}

static shardrt_status mpi_progress(void *self, shardrt__req *req) {
  mpi_comm *m = self;
  if (m->pt.on) return SHARDRT_OK; /* the progress thread is on it */
  int done = 0;
  if (req && req->is_ring) {
    bool d = false;
    if (shardrt__ring_test(&req->ring, false, &d) != MPI_SUCCESS)
      return shardrt__error(SHARDRT_ERR_COMM, "MPI_Testall of a ring reduction failed");
    return SHARDRT_OK;
  }
  if (req && req->r != MPI_REQUEST_NULL && MPI_Test(&req->r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return shardrt__error(SHARDRT_ERR_COMM, "MPI_Test failed");
  return SHARDRT_OK;
}

static shardrt_status mpi_allreduce_host_f64(void *self, shardrt__group g, double *vals, int n) {
  mpi_comm *m = self;
  MPI_Request r;
  return blocking(m, MPI_Iallreduce(MPI_IN_PLACE, vals, n, MPI_DOUBLE, MPI_SUM, m->comm[g], &r), &r, "allreduce(host)");
}

static shardrt_status mpi_allreduce_host_max_i64(void *self, int64_t *vals, int n) {
  mpi_comm *m = self;
  MPI_Request r;
  return blocking(m, MPI_Iallreduce(MPI_IN_PLACE, vals, n, MPI_INT64_T, MPI_MAX, m->comm[SHARDRT__GROUP_WORLD], &r), &r,
                  "allreduce(host max)");
}

static shardrt_status mpi_allgather_host(void *self, const void *send, void *recv, size_t bytes) {
  mpi_comm *m = self;
  if (bytes > (size_t)INT_MAX) return check_count(bytes, 1, "allgather(host)");
  MPI_Request r;
  return blocking(m, MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, m->comm[SHARDRT__GROUP_WORLD], &r),
                  &r, "allgather(host)");
}

static shardrt_status mpi_bcast_host(void *self, void *buf, size_t bytes, int root) {
  mpi_comm *m = self;
  if (bytes > (size_t)INT_MAX) return check_count(bytes, 1, "bcast(host)");
  MPI_Request r;
  return blocking(m, MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, m->comm[SHARDRT__GROUP_WORLD], &r), &r, "bcast(host)");
}

static shardrt_status mpi_barrier(void *self) {
  mpi_comm *m = self;
  MPI_Request r;
  return blocking(m, MPI_Ibarrier(m->comm[SHARDRT__GROUP_WORLD], &r), &r, "barrier");
}

static void mpi_destroy(void *self) {
  mpi_comm *m = self;
  if (!m) return;
  progress_stop(m);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && !m->broken) {
    for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++)
      if (m->comm[g] != MPI_COMM_NULL) MPI_Comm_free(&m->comm[g]);
  }
  for (scratch *c = m->scratch, *n; c; c = n) {
    n = c->next;
    if (!c->busy || !m->broken) free(c->p); /* a timed-out ring may still write into its chunk */
    free(c);
  }
  if (m->stage && !m->broken) { /* a timed-out staged collective may still write into it */
    if (m->dev && m->dev->i->host_free) m->dev->i->host_free(m->dev->self, m->stage);
    else free(m->stage);
  }
  free(m);
}

static const shardrt__comm_i mpi_comm_i = {
    .name = "mpi",
    .all_gather = mpi_all_gather,
    .reduce_scatter = mpi_reduce_scatter,
    .all_reduce = mpi_all_reduce,
    .broadcast = mpi_broadcast,
    .wait = mpi_wait,
    .progress = mpi_progress,
    .allreduce_host_f64 = mpi_allreduce_host_f64,
    .allreduce_host_max_i64 = mpi_allreduce_host_max_i64,
    .allgather_host = mpi_allgather_host,
    .bcast_host = mpi_bcast_host,
    .barrier = mpi_barrier,
    .destroy = mpi_destroy,
};

static shardrt_status init_types(void) {
  if (g_bf16 != MPI_DATATYPE_NULL) return SHARDRT_OK;
  MPICHECK(MPI_Type_contiguous(2, MPI_BYTE, &g_bf16), "type create");
  MPICHECK(MPI_Type_commit(&g_bf16), "type commit");
  MPICHECK(MPI_Type_contiguous(2, MPI_BYTE, &g_f16), "type create");
  MPICHECK(MPI_Type_commit(&g_f16), "type commit");
  return SHARDRT_OK;
}

shardrt_status shardrt__comm_mpi_create(const shardrt__comm_args *a, shardrt__comm *out) {
  MPI_Comm base = a->mpi_comm ? *(MPI_Comm *)a->mpi_comm : MPI_COMM_WORLD;
  int rank, world;
  MPICHECK(MPI_Comm_rank(base, &rank), "comm rank");
  MPICHECK(MPI_Comm_size(base, &world), "comm size");
  int gs = a->shard_group_size > 0 ? a->shard_group_size : world;
  if (world % gs != 0)
    return shardrt__error(SHARDRT_ERR_CONFIG, "shard group size %d does not divide the world size %d", gs, world);
  SHARDRT__CHECK(init_types());
  mpi_comm *m = calloc(1, sizeof *m);
  if (!m) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "mpi backend allocation failed");
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) m->comm[g] = MPI_COMM_NULL;
  m->dev = a->dev;
  m->timeout_s = a->timeout_s;
  const char *dbg = getenv("SHARDRT_DEBUG");
  m->debug = dbg && strcasecmp(dbg, "collectives") == 0;
  m->bf16 = g_bf16;
  m->f16 = g_f16;
  int e = MPI_Comm_dup(base, &m->comm[SHARDRT__GROUP_WORLD]);
  if (e == MPI_SUCCESS) e = MPI_Comm_split(base, rank / gs, rank, &m->comm[SHARDRT__GROUP_SHARD]);
  if (e == MPI_SUCCESS) e = MPI_Comm_split(base, rank % gs, rank, &m->comm[SHARDRT__GROUP_REPLICA]);
  if (e != MPI_SUCCESS) {
    mpi_destroy(m);
    return mpi_fail(e, "communicator setup");
  }
  shardrt_status rc = progress_start(m);
  if (rc != SHARDRT_OK) {
    mpi_destroy(m);
    return rc;
  }
  out->i = &mpi_comm_i;
  out->self = m;
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) {
    MPI_Comm_rank(m->comm[g], &out->rank[g]);
    MPI_Comm_size(m->comm[g], &out->size[g]);
  }
  return SHARDRT_OK;
}
