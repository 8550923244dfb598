/* SPDX-License-Identifier: Apache-2.0 */
/* NCCL communication backend: one NCCL communicator per group (WORLD, SHARD,
 * REPLICA), bootstrapped by broadcasting each group's unique id over MPI.
 * Collectives run on a dedicated comm stream that first waits on an event
 * recorded on the compute stream, so they start after the work that produced
 * their inputs without a host sync; wait() makes the compute stream wait on
 * the collective's own event. Host-side helpers go over MPI.
 *
 * Timing: each collective carries CUDA events (start on the comm stream once
 * its inputs are ready, done after it, and `reached` on the compute stream
 * at its wait), resolved into comm/exposed seconds once they complete
 * (device_times; src/core/coll.c says what the figures mean).
 *
 * Bounded waiting: with SHARDRT_COLL_TIMEOUT_S > 0 the communicators are
 * non-blocking; init and every enqueue are polled with
 * ncclCommGetAsyncError within the limit, and a watchdog thread
 * (src/comm/watchdog.c) probes every collective in flight, aborting the
 * communicators (ncclCommAbort) when one errs or outlives the limit, so a
 * dead peer ends in SHARDRT_ERR_TIMEOUT instead of a hang in a host sync.
 * Without a limit the communicators block as NCCL's default. */
#include <limits.h>
#include <mpi.h>
#include <nccl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/comm/comm.h"
#include "src/comm/watchdog.h"
#include "src/device/device_cuda.h"

struct shardrt__req {
  cudaEvent_t done;      /* recorded on the comm stream after the collective */
  cudaEvent_t start;     /* on the comm stream once the inputs are ready */
  cudaEvent_t reached;   /* on the compute stream where it waits for `done` */
  ncclComm_t comm;       /* for the asynchronous-error check in wait() */
  shardrt_coll_kind kind;
  bool in_flight;        /* started and not yet waited */
  struct shardrt__req *next_free; /* also links the waited requests whose timing is pending */
};

typedef struct nccl_backend {
  MPI_Comm mpi[SHARDRT__GROUP_COUNT_];
  ncclComm_t nccl[SHARDRT__GROUP_COUNT_];
  bool owns[SHARDRT__GROUP_COUNT_]; /* false: the group is WORLD and shares its communicator */
  int rank[SHARDRT__GROUP_COUNT_], size[SHARDRT__GROUP_COUNT_];
  shardrt__device *dev;
  int gpu;
  cudaStream_t stream; /* comm stream */
  cudaEvent_t ready;   /* compute stream's position, re-recorded per collective */
  bool broken;         /* an asynchronous NCCL error was seen: abort, do not destroy */
  shardrt__req **reqs; /* every request object, pooled for reuse */
  size_t nreqs, cap_reqs;
  shardrt__req *free_reqs;
  shardrt__req *timing;   /* waited, events not yet resolved (newest first) */
  double comm_s[SHARDRT_COLL_COUNT_], exposed_s; /* resolved totals */
  double timeout_s;       /* SHARDRT_COLL_TIMEOUT_S; 0: block as NCCL does */
  shardrt__watchdog *wd;  /* with a timeout: probes the collectives in flight */
  atomic_bool wd_aborted; /* the watchdog aborted the communicators */
  atomic_bool wd_timed_out;
} nccl_backend;

static const char *const group_names[SHARDRT__GROUP_COUNT_] = {"WORLD", "SHARD", "REPLICA"};

static shardrt_status nccl_fail(ncclResult_t r, ncclComm_t c, const char *call, int line) {
  const char *last = ncclGetLastError(c);
  return shardrt__error(SHARDRT_ERR_COMM, "nccl: %s failed at nccl_cuda.c:%d: %s%s%s", call, line,
                        ncclGetErrorString(r), last && *last ? ": " : "", last ? last : "");
}

#define NCCL_CHECK(comm, call)                                               \
  do {                                                                       \
    ncclResult_t r__ = (call);                                               \
    if (r__ != ncclSuccess) return nccl_fail(r__, (comm), #call, __LINE__);  \
  } while (0)

static shardrt_status mpi_fail(int err, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", err);
  return shardrt__error(SHARDRT_ERR_COMM, "nccl backend: MPI %s failed: %s", what, msg);
}

#define MPI_CHECK(call, what)                              \
  do {                                                     \
    int e__ = (call);                                      \
    if (e__ != MPI_SUCCESS) return mpi_fail(e__, what);    \
  } while (0)

static shardrt_status check_group(const char *op, shardrt__group g) {
  if ((int)g >= 0 && g < SHARDRT__GROUP_COUNT_) return SHARDRT_OK;
  return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl %s: group %d is not WORLD (0), SHARD (1) or REPLICA (2)",
                        op, (int)g);
}

static shardrt_status nccl_type(const char *op, shardrt_dtype dt, ncclDataType_t *out) {
  switch (dt) {
    case SHARDRT_F32: *out = ncclFloat32; return SHARDRT_OK;
    case SHARDRT_BF16: *out = ncclBfloat16; return SHARDRT_OK;
    case SHARDRT_F16: *out = ncclFloat16; return SHARDRT_OK;
  }
  return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl %s: dtype %d is not one of fp32, bf16, fp16", op,
                        (int)dt);
}

/* NCCL reads device memory only; a host pointer would fault asynchronously,
 * so it is refused here with a usable message instead. */
static shardrt_status check_device_ptr(const nccl_backend *b, const char *op, const char *what, const void *p) {
  if (!p)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl %s: %s buffer is NULL", op, what);
  struct cudaPointerAttributes at;
  cudaError_t e = cudaPointerGetAttributes(&at, p);
  if (e != cudaSuccess) return shardrt__cuda_fail(e, "cudaPointerGetAttributes", __FILE__, __LINE__);
  if (at.type == cudaMemoryTypeManaged || (at.type == cudaMemoryTypeDevice && at.device == b->gpu))
    return SHARDRT_OK;
  if (at.type == cudaMemoryTypeDevice)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "nccl %s: %s buffer %p is on GPU %d, but this rank communicates from GPU %d", op, what, p,
                          at.device, b->gpu);
  return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                        "nccl %s: %s buffer %p is host memory; the nccl backend needs device buffers "
                        "(use the mpi backend, --comm mpi, for host buffers)",
                        op, what, p);
}

static bool overlaps(const void *a, size_t an, const void *b, size_t bn) {
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return x < y + bn && y < x + an;
}

static shardrt_status req_get(nccl_backend *b, shardrt__req **out) {
  shardrt__req *r = b->free_reqs;
  if (r) {
    b->free_reqs = r->next_free;
  } else {
    if (b->nreqs == b->cap_reqs) {
      size_t cap = b->cap_reqs ? 2 * b->cap_reqs : 16;
      shardrt__req **grown = realloc(b->reqs, cap * sizeof *grown);
      if (!grown) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "nccl: request table of %zu entries", cap);
      b->reqs = grown;
      b->cap_reqs = cap;
    }
    r = calloc(1, sizeof *r);
    if (!r) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "nccl: request allocation failed");
    /* Timing events: the comm figures come from them (device_times). */
    cudaError_t e = cudaEventCreate(&r->done);
    if (e == cudaSuccess) {
      e = cudaEventCreate(&r->start);
      if (e != cudaSuccess) cudaEventDestroy(r->done);
    }
    if (e == cudaSuccess) {
      e = cudaEventCreate(&r->reached);
      if (e != cudaSuccess) {
        cudaEventDestroy(r->done);
        cudaEventDestroy(r->start);
      }
    }
    if (e != cudaSuccess) {
      free(r);
      return shardrt__cuda_fail(e, "cudaEventCreate(request)", __FILE__, __LINE__);
    }
    b->reqs[b->nreqs++] = r;
  }
  r->next_free = NULL;
  r->in_flight = false;
  *out = r;
  return SHARDRT_OK;
}

static void req_put(nccl_backend *b, shardrt__req *r) {
  shardrt__watchdog_forget(b->wd, r);
  r->in_flight = false;
  r->next_free = b->free_reqs;
  b->free_reqs = r;
}

/* Orders the comm stream after everything issued so far on the compute stream. */
static shardrt_status begin(nccl_backend *b) {
  SHARDRT__CUDA_CHECK(cudaSetDevice(b->gpu));
  cudaStream_t compute = (cudaStream_t)b->dev->i->stream(b->dev->self);
  SHARDRT__CUDA_CHECK(cudaEventRecord(b->ready, compute));
  SHARDRT__CUDA_CHECK(cudaStreamWaitEvent(b->stream, b->ready, 0));
  return SHARDRT_OK;
}

/* Takes the request before the collective is launched: a collective that
 * runs always has a request, so the caller keeps its buffers until wait(). */
static shardrt_status start(nccl_backend *b, shardrt_coll_kind kind, shardrt__req **r) {
  SHARDRT__CHECK(req_get(b, r));
  (*r)->kind = kind;
  shardrt_status rc = begin(b);
  if (rc == SHARDRT_OK) {
    cudaError_t e = cudaEventRecord((*r)->start, b->stream);
    if (e != cudaSuccess) rc = shardrt__cuda_fail(e, "cudaEventRecord(request start)", __FILE__, __LINE__);
  }
  if (rc != SHARDRT_OK) {
    req_put(b, *r);
    *r = NULL;
  }
  return rc;
}

/* ncclCommGetAsyncError as a probe: a non-blocking communicator reports
 * ncclInProgress until its init or the enqueue of a call has finished. */
static shardrt__probe comm_probe(void *user, void *item) {
  (void)user;
  ncclResult_t st = ncclInProgress;
  if (ncclCommGetAsyncError((ncclComm_t)item, &st) != ncclSuccess) return SHARDRT__PROBE_ERROR;
  if (st == ncclInProgress) return SHARDRT__PROBE_PENDING;
  return st == ncclSuccess ? SHARDRT__PROBE_DONE : SHARDRT__PROBE_ERROR;
}

/* A collective in flight, for the watchdog: done once its event completed;
 * an asynchronous NCCL error on its communicator fails it. */
static shardrt__probe req_probe(void *user, void *item) {
  nccl_backend *b = user;
  shardrt__req *r = item;
  if (cudaSetDevice(b->gpu) != cudaSuccess) return SHARDRT__PROBE_ERROR;
  cudaError_t e = cudaEventQuery(r->done);
  if (e == cudaSuccess) return SHARDRT__PROBE_DONE;
  if (e != cudaErrorNotReady) return SHARDRT__PROBE_ERROR;
  ncclResult_t st = ncclSuccess;
  if (ncclCommGetAsyncError(r->comm, &st) != ncclSuccess) return SHARDRT__PROBE_ERROR;
  return st == ncclSuccess || st == ncclInProgress ? SHARDRT__PROBE_PENDING : SHARDRT__PROBE_ERROR;
}

/* The watchdog gave up on a collective: abort every communicator from its
 * thread, which ends the kernels a host sync may be waiting on. The main
 * thread learns it from wd_aborted at its next call (sync_watchdog). */
static void wd_expire(void *user, bool timed_out) {
  nccl_backend *b = user;
  if (cudaSetDevice(b->gpu) != cudaSuccess) (void)cudaGetLastError();
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++)
    if (b->owns[g] && b->nccl[g]) ncclCommAbort(b->nccl[g]);
  atomic_store(&b->wd_timed_out, timed_out);
  atomic_store(&b->wd_aborted, true);
}

/* After an asynchronous error the collectives in flight never complete and
 * the compute stream waits on them: aborting makes their kernels exit, so
 * sync() and teardown return instead of hanging. The backend is unusable
 * afterwards. The watchdog is stopped first: it may have aborted them
 * already, and must not do it again. */
static void abort_comms(nccl_backend *b) {
  shardrt__watchdog_stop(b->wd);
  b->wd = NULL;
  bool done = atomic_load(&b->wd_aborted);
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++)
    if (!done && b->owns[g] && b->nccl[g]) ncclCommAbort(b->nccl[g]);
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) {
    b->nccl[g] = NULL;
    b->owns[g] = false;
  }
  b->broken = true;
}

/* Takes over the watchdog's verdict: SHARDRT_OK while it has not fired. */
static shardrt_status sync_watchdog(nccl_backend *b, const char *op) {
  if (b->broken || !atomic_load(&b->wd_aborted)) return SHARDRT_OK;
  abort_comms(b);
  if (atomic_load(&b->wd_timed_out))
    return shardrt__error(SHARDRT_ERR_TIMEOUT,
                          "nccl %s: a collective did not complete in %g s (SHARDRT_COLL_TIMEOUT_S): another rank "
                          "stopped or issues different collectives; the NCCL communicators were aborted",
                          op, b->timeout_s);
  return shardrt__error(SHARDRT_ERR_COMM, "nccl %s: a collective in flight failed (asynchronous NCCL error); the "
                        "NCCL communicators were aborted", op);
}

static shardrt_status finish(nccl_backend *b, shardrt__group g, shardrt__req *r, ncclResult_t launched,
                             const char *call, int line, shardrt__req **req) {
  if (launched == ncclInProgress) {
    /* Non-blocking communicator: the enqueue goes on in the background;
     * the event below must come after it, within the limit. */
    shardrt_status rc = shardrt__poll_until(comm_probe, NULL, b->nccl[g], b->timeout_s, 1e-5, call);
    if (rc != SHARDRT_OK) {
      req_put(b, r);
      abort_comms(b);
      return shardrt__error_wrap(rc, "nccl: enqueue of %s on the %s group", call, group_names[g]);
    }
    launched = ncclSuccess;
  }
  if (launched != ncclSuccess) {
    req_put(b, r);
    return nccl_fail(launched, b->nccl[g], call, line);
  }
  cudaError_t e = cudaEventRecord(r->done, b->stream);
  if (e != cudaSuccess) {
    req_put(b, r);
    return shardrt__cuda_fail(e, "cudaEventRecord(request)", __FILE__, __LINE__);
  }
  r->comm = b->nccl[g];
  r->in_flight = true;
  *req = r;
  /* Unwatched if the watchdog's table cannot grow: the collective still
   * runs and is waited, only without the limit. */
  if (b->wd && shardrt__watchdog_add(b->wd, r) != SHARDRT_OK) shardrt__error_clear();
  return SHARDRT_OK;
}

/* Checks shared by every collective; *skip is set when there is nothing to move. */
static shardrt_status prologue(nccl_backend *b, const char *op, shardrt__group g, size_t count,
                               shardrt_dtype dt, ncclDataType_t *nt, shardrt__req **req, bool *skip) {
  if (!req) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl %s: request out-pointer is NULL", op);
  *req = NULL;
  SHARDRT__CHECK(check_group(op, g));
  SHARDRT__CHECK(nccl_type(op, dt, nt));
  SHARDRT__CHECK(sync_watchdog(b, op));
  if (b->broken)
    return shardrt__error(SHARDRT_ERR_COMM, "nccl %s on %s: the NCCL communicators were aborted after an earlier "
                          "asynchronous error; this backend cannot run collectives any more", op, group_names[g]);
  *skip = count == 0;
  return SHARDRT_OK;
}

static shardrt_status nccl_all_gather(void *self, shardrt__group g, const void *send, void *recv, size_t count,
                                      shardrt_dtype dt, shardrt__req **req) {
  nccl_backend *b = self;
  ncclDataType_t nt = ncclFloat32;
  bool skip = false;
  SHARDRT__CHECK(prologue(b, "all_gather", g, count, dt, &nt, req, &skip));
  if (skip) return SHARDRT_OK;
  SHARDRT__CHECK(check_device_ptr(b, "all_gather", "send", send));
  SHARDRT__CHECK(check_device_ptr(b, "all_gather", "recv", recv));
  size_t piece = count * shardrt_dtype_size(dt);
  const char *in_place = (const char *)recv + (size_t)b->rank[g] * piece;
  if ((const char *)send != in_place && overlaps(send, piece, recv, piece * (size_t)b->size[g]))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "nccl all_gather on %s: send %p overlaps recv %p but is not the in-place position "
                          "recv + rank(%d) * count(%zu) elements",
                          group_names[g], send, recv, b->rank[g], count);
  shardrt__req *r = NULL;
  SHARDRT__CHECK(start(b, SHARDRT_COLL_ALL_GATHER, &r));
  return finish(b, g, r, ncclAllGather(send, recv, count, nt, b->nccl[g], b->stream), "ncclAllGather", __LINE__,
                req);
}

static shardrt_status nccl_reduce_scatter(void *self, shardrt__group g, const void *send, void *recv, size_t count,
                                          shardrt_dtype dt, shardrt__req **req) {
  nccl_backend *b = self;
  ncclDataType_t nt = ncclFloat32;
  bool skip = false;
  SHARDRT__CHECK(prologue(b, "reduce_scatter", g, count, dt, &nt, req, &skip));
  if (skip) return SHARDRT_OK;
  SHARDRT__CHECK(check_device_ptr(b, "reduce_scatter", "send", send));
  SHARDRT__CHECK(check_device_ptr(b, "reduce_scatter", "recv", recv));
  size_t piece = count * shardrt_dtype_size(dt);
  const char *in_place = (const char *)send + (size_t)b->rank[g] * piece;
  if ((const char *)recv != in_place && overlaps(recv, piece, send, piece * (size_t)b->size[g]))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "nccl reduce_scatter on %s: recv %p overlaps send %p but is not the in-place position "
                          "send + rank(%d) * count(%zu) elements",
                          group_names[g], recv, send, b->rank[g], count);
  shardrt__req *r = NULL;
  SHARDRT__CHECK(start(b, SHARDRT_COLL_REDUCE_SCATTER, &r));
  return finish(b, g, r, ncclReduceScatter(send, recv, count, nt, ncclSum, b->nccl[g], b->stream),
                "ncclReduceScatter", __LINE__, req);
}

static shardrt_status nccl_all_reduce(void *self, shardrt__group g, void *buf, size_t count, shardrt_dtype dt,
                                      shardrt__req **req) {
  nccl_backend *b = self;
  ncclDataType_t nt = ncclFloat32;
  bool skip = false;
  SHARDRT__CHECK(prologue(b, "all_reduce", g, count, dt, &nt, req, &skip));
  if (skip) return SHARDRT_OK;
  SHARDRT__CHECK(check_device_ptr(b, "all_reduce", "buffer", buf));
  shardrt__req *r = NULL;
  SHARDRT__CHECK(start(b, SHARDRT_COLL_ALL_REDUCE, &r));
  return finish(b, g, r, ncclAllReduce(buf, buf, count, nt, ncclSum, b->nccl[g], b->stream), "ncclAllReduce",
                __LINE__, req);
}

static shardrt_status nccl_broadcast(void *self, shardrt__group g, void *buf, size_t count, shardrt_dtype dt,
                                     int root, shardrt__req **req) {
  nccl_backend *b = self;
  ncclDataType_t nt = ncclFloat32;
  bool skip = false;
  SHARDRT__CHECK(prologue(b, "broadcast", g, count, dt, &nt, req, &skip));
  if (root < 0 || root >= b->size[g])
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl broadcast on %s: root %d is not a rank of the group "
                          "(0..%d)", group_names[g], root, b->size[g] - 1);
  if (skip) return SHARDRT_OK;
  SHARDRT__CHECK(check_device_ptr(b, "broadcast", "buffer", buf));
  shardrt__req *r = NULL;
  SHARDRT__CHECK(start(b, SHARDRT_COLL_BROADCAST, &r));
  return finish(b, g, r, ncclBroadcast(buf, buf, count, nt, root, b->nccl[g], b->stream), "ncclBroadcast",
                __LINE__, req);
}

/* Resolves the waited requests whose events have completed (all of them
 * when `sync`) into the totals, and returns them to the pool. After an
 * abort their figures are dropped: the events completed because the
 * kernels were ended, not because the collective ran. */
static shardrt_status resolve_timing(nccl_backend *b, bool sync) {
  shardrt_status rc = SHARDRT_OK;
  if (cudaSetDevice(b->gpu) != cudaSuccess) (void)cudaGetLastError();
  for (shardrt__req **pp = &b->timing; *pp;) {
    shardrt__req *r = *pp;
    bool ready = true;
    if (!b->broken) {
      cudaEvent_t evs[2] = {r->done, r->reached};
      for (int k = 0; k < 2 && ready; k++) {
        cudaError_t e = sync ? cudaEventSynchronize(evs[k]) : cudaEventQuery(evs[k]);
        if (e == cudaErrorNotReady) ready = false;
        else if (e != cudaSuccess && rc == SHARDRT_OK)
          rc = shardrt__cuda_fail(e, sync ? "cudaEventSynchronize(timing)" : "cudaEventQuery(timing)", __FILE__,
                                  __LINE__);
      }
    }
    if (!ready) {
      pp = &r->next_free;
      continue;
    }
    float run_ms = 0, stall_ms = 0;
    if (!b->broken && rc == SHARDRT_OK && cudaEventElapsedTime(&run_ms, r->start, r->done) == cudaSuccess &&
        cudaEventElapsedTime(&stall_ms, r->reached, r->done) == cudaSuccess) {
      b->comm_s[r->kind] += 1e-3 * (double)run_ms;
      /* Negative: the collective was done before the compute stream got
       * to its wait, which then cost nothing. */
      if (stall_ms > 0) b->exposed_s += 1e-3 * (double)stall_ms;
    }
    *pp = r->next_free;
    req_put(b, r);
  }
  return rc;
}

static shardrt_status nccl_device_times(void *self, bool sync, double comm_s[SHARDRT_COLL_COUNT_],
                                        double *exposed_s) {
  nccl_backend *b = self;
  shardrt_status rc = resolve_timing(b, sync);
  memcpy(comm_s, b->comm_s, sizeof b->comm_s);
  *exposed_s = b->exposed_s;
  return rc;
}

static shardrt_status nccl_wait(void *self, shardrt__req *req) {
  nccl_backend *b = self;
  if (!req) return SHARDRT_OK;
  if (!req->in_flight)
    return shardrt__error(SHARDRT_ERR_STATE, "nccl wait: request %p was already waited (wait exactly once)",
                          (void *)req);
  shardrt_status rc = sync_watchdog(b, "wait");
  cudaError_t e = cudaSetDevice(b->gpu);
  cudaStream_t compute = (cudaStream_t)b->dev->i->stream(b->dev->self);
  /* `reached` marks where the compute stream starts to wait: the time from
   * it to `done` is how long compute stood blocked on this collective. */
  bool timed = false;
  if (e == cudaSuccess && !b->broken) {
    e = cudaEventRecord(req->reached, compute);
    timed = e == cudaSuccess;
  }
  if (e == cudaSuccess) e = cudaStreamWaitEvent(compute, req->done, 0);
  if (e != cudaSuccess && rc == SHARDRT_OK)
    rc = shardrt__cuda_fail(e, "cudaStreamWaitEvent(compute, request)", __FILE__, __LINE__);
  if (b->broken) {
    /* Its communicator is gone (aborted after an earlier error); the
     * compute stream's wait above still completes, as abort ended it. */
    req_put(b, req);
    return rc != SHARDRT_OK ? rc
                            : shardrt__error(SHARDRT_ERR_COMM, "nccl wait: the collective's communicator was aborted "
                                             "after an earlier asynchronous NCCL error");
  }
  /* The collective itself is still running; a peer's failure shows up here. */
  ncclResult_t async = ncclSuccess;
  ncclResult_t r = ncclCommGetAsyncError(req->comm, &async);
  if (rc == SHARDRT_OK && r != ncclSuccess) rc = nccl_fail(r, req->comm, "ncclCommGetAsyncError", __LINE__);
  if (async != ncclSuccess && async != ncclInProgress) {
    if (rc == SHARDRT_OK) rc = nccl_fail(async, req->comm, "collective (asynchronous error)", __LINE__);
    abort_comms(b);
  }
  req->in_flight = false;
  if (timed && !b->broken) {
    /* Kept until its events complete; the watchdog still watches it. */
    req->next_free = b->timing;
    b->timing = req;
  } else {
    req_put(b, req);
  }
  /* Resolve what has completed, so the pending list stays short for a
   * program that never reads its figures. */
  shardrt_status t = resolve_timing(b, false);
  return rc != SHARDRT_OK ? rc : t;
}

/* ---- host helpers over MPI ---- */

/* The host helpers are blocking MPI collectives: issued non-blocking and
 * waited on within SHARDRT_COLL_TIMEOUT_S, like the mpi backend's, so a rank
 * that never arrives is SHARDRT_ERR_TIMEOUT here too, not a hang. On a
 * timeout the request is left to MPI and the backend is marked broken. */
static double mono_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static shardrt_status host_done(nccl_backend *b, MPI_Request *r, const char *what) {
  if (b->timeout_s <= 0) {
    int e = MPI_Wait(r, MPI_STATUS_IGNORE);
    return e == MPI_SUCCESS ? SHARDRT_OK : mpi_fail(e, what);
  }
  double t0 = mono_s();
  for (;;) {
    int flag = 0, e = MPI_Test(r, &flag, MPI_STATUS_IGNORE);
    if (e != MPI_SUCCESS) return mpi_fail(e, what);
    if (flag) return SHARDRT_OK;
    if (mono_s() - t0 > b->timeout_s) {
      b->broken = true;
      return shardrt__error(SHARDRT_ERR_TIMEOUT,
                            "rank %d: host %s did not complete in %g s (SHARDRT_COLL_TIMEOUT_S): another rank stopped or "
                            "issues different collectives; run with SHARDRT_DEBUG=collectives to name it",
                            b->rank[SHARDRT__GROUP_WORLD], what, b->timeout_s);
    }
  }
}

#define MPI_TIMED(icall, what)                   \
  do {                                           \
    MPI_Request r__ = MPI_REQUEST_NULL;          \
    MPI_CHECK(icall, what);                      \
    SHARDRT__CHECK(host_done(b, &r__, what));    \
  } while (0)

static shardrt_status nccl_allreduce_host_f64(void *self, shardrt__group g, double *vals, int n) {
  nccl_backend *b = self;
  SHARDRT__CHECK(check_group("allreduce_host_f64", g));
  if (n < 0 || (n > 0 && !vals))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl allreduce_host_f64: %d values at %p", n, (void *)vals);
  MPI_TIMED(MPI_Iallreduce(MPI_IN_PLACE, vals, n, MPI_DOUBLE, MPI_SUM, b->mpi[g], &r__), "allreduce(host)");
  return SHARDRT_OK;
}

static shardrt_status nccl_allreduce_host_max_i64(void *self, int64_t *vals, int n) {
  nccl_backend *b = self;
  if (n < 0 || (n > 0 && !vals))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl allreduce_host_max_i64: %d values at %p", n,
                          (void *)vals);
  MPI_TIMED(MPI_Iallreduce(MPI_IN_PLACE, vals, n, MPI_INT64_T, MPI_MAX, b->mpi[SHARDRT__GROUP_WORLD], &r__),
            "allreduce(host max)");
  return SHARDRT_OK;
}

static shardrt_status nccl_allgather_host(void *self, const void *send, void *recv, size_t bytes) {
  nccl_backend *b = self;
  if (bytes && (!send || !recv))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl allgather_host: %s buffer is NULL for %zu bytes",
                          send ? "recv" : "send", bytes);
  if (bytes > INT_MAX)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "nccl allgather_host: %zu bytes per rank is over the %d-byte limit of host helpers", bytes,
                          INT_MAX);
  MPI_TIMED(MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, b->mpi[SHARDRT__GROUP_WORLD], &r__),
            "allgather(host)");
  return SHARDRT_OK;
}

static shardrt_status nccl_bcast_host(void *self, void *buf, size_t bytes, int root) {
  nccl_backend *b = self;
  if (bytes && !buf)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl bcast_host: buffer is NULL for %zu bytes", bytes);
  if (root < 0 || root >= b->size[SHARDRT__GROUP_WORLD])
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl bcast_host: root %d is not a rank (0..%d)", root,
                          b->size[SHARDRT__GROUP_WORLD] - 1);
  /* MPI counts are int: large buffers go in chunks. */
  const size_t chunk = (size_t)1 << 30;
  for (size_t off = 0; off < bytes; off += chunk) {
    size_t n = bytes - off < chunk ? bytes - off : chunk;
    MPI_TIMED(MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, root, b->mpi[SHARDRT__GROUP_WORLD], &r__), "bcast(host)");
  }
  return SHARDRT_OK;
}

static shardrt_status nccl_barrier(void *self) {
  nccl_backend *b = self;
  MPI_TIMED(MPI_Ibarrier(b->mpi[SHARDRT__GROUP_WORLD], &r__), "barrier");
  return SHARDRT_OK;
}

static void nccl_destroy(void *self) {
  nccl_backend *b = self;
  if (!b) return;
  /* Teardown cannot report; CUDA errors are cleared so they do not leak. */
  if (cudaSetDevice(b->gpu) != cudaSuccess) (void)cudaGetLastError();
  /* The watchdog goes first: it must not abort what is destroyed below. A
   * broken communicator is aborted before the stream is drained: its
   * collectives would otherwise keep the synchronisation waiting forever. */
  shardrt__watchdog_stop(b->wd);
  b->wd = NULL;
  if (b->broken || atomic_load(&b->wd_aborted)) abort_comms(b);
  if (b->stream && cudaStreamSynchronize(b->stream) != cudaSuccess) (void)cudaGetLastError();
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) {
    if (!b->owns[g] || !b->nccl[g]) continue;
    if (b->timeout_s > 0) {
      /* Non-blocking: finalize flushes the communicator's work in the
       * background; past the limit it is aborted instead of destroyed. */
      ncclResult_t f = ncclCommFinalize(b->nccl[g]);
      if ((f != ncclSuccess && f != ncclInProgress) ||
          shardrt__poll_until(comm_probe, NULL, b->nccl[g], b->timeout_s, 1e-4, "ncclCommFinalize") != SHARDRT_OK) {
        shardrt__error_clear();
        ncclCommAbort(b->nccl[g]);
        continue;
      }
    }
    ncclCommDestroy(b->nccl[g]);
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized)
    for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++)
      if (b->mpi[g] != MPI_COMM_NULL) MPI_Comm_free(&b->mpi[g]);
  for (size_t i = 0; i < b->nreqs; i++) {
    cudaEvent_t evs[3] = {b->reqs[i]->done, b->reqs[i]->start, b->reqs[i]->reached};
    for (int k = 0; k < 3; k++)
      if (cudaEventDestroy(evs[k]) != cudaSuccess) (void)cudaGetLastError();
    free(b->reqs[i]);
  }
  free(b->reqs);
  if (b->ready && cudaEventDestroy(b->ready) != cudaSuccess) (void)cudaGetLastError();
  if (b->stream && cudaStreamDestroy(b->stream) != cudaSuccess) (void)cudaGetLastError();
  free(b);
}

static const shardrt__comm_i nccl_comm_i = {
    .name = "nccl",
    .all_gather = nccl_all_gather,
    .reduce_scatter = nccl_reduce_scatter,
    .all_reduce = nccl_all_reduce,
    .broadcast = nccl_broadcast,
    .wait = nccl_wait,
    .device_times = nccl_device_times,
    .allreduce_host_f64 = nccl_allreduce_host_f64,
    .allreduce_host_max_i64 = nccl_allreduce_host_max_i64,
    .allgather_host = nccl_allgather_host,
    .bcast_host = nccl_bcast_host,
    .barrier = nccl_barrier,
    .destroy = nccl_destroy,
};

/* ---- creation ---- */

/* What each rank tells the others before any communicator is built, so all
 * ranks reach the same verdict and none is left waiting in an NCCL init. */
typedef struct rank_info {
  int ok;
  int gpu;
  unsigned char uuid[16];
  char host[64];
} rank_info;

static shardrt_status local_check(const shardrt__comm_args *a, int *gpu) {
  *gpu = -1;
  if (shardrt__cuda_device_count() == 0)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                          "the nccl comm backend needs a CUDA GPU, but no GPU is available to this process (no "
                          "device or no NVIDIA driver); use the mpi backend (--comm mpi)");
  *gpu = shardrt__device_cuda_index(a->dev);
  if (*gpu < 0)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                          "the nccl comm backend needs the cuda device, but this context's device is '%s'; use "
                          "the mpi backend (--comm mpi)",
                          a->dev && a->dev->i && a->dev->i->name ? a->dev->i->name : "none");
  return SHARDRT_OK;
}

/* The CUDA objects of one rank, made before the ranks compare notes. */
static shardrt_status local_setup(nccl_backend *b, rank_info *me) {
  int least = 0, greatest = 0;
  SHARDRT__CUDA_CHECK(cudaSetDevice(b->gpu));
  /* Highest priority: communication kernels are scheduled ahead of compute
   * kernels queued at the same time, which keeps the overlap useful. */
  SHARDRT__CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  SHARDRT__CUDA_CHECK(cudaStreamCreateWithPriority(&b->stream, cudaStreamNonBlocking, greatest));
  SHARDRT__CUDA_CHECK(cudaEventCreateWithFlags(&b->ready, cudaEventDisableTiming));
  struct cudaDeviceProp prop;
  SHARDRT__CUDA_CHECK(cudaGetDeviceProperties(&prop, b->gpu));
  memcpy(me->uuid, prop.uuid.bytes, sizeof me->uuid);
  return SHARDRT_OK;
}

static shardrt_status agree(const rank_info *all, int world) {
  for (int r = 0; r < world; r++)
    if (!all[r].ok)
      return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                            "nccl: rank %d (host %s) cannot use NCCL (see that rank's error); use the mpi backend "
                            "(--comm mpi)",
                            r, all[r].host);
  for (int i = 0; i < world; i++)
    for (int j = i + 1; j < world; j++)
      if (memcmp(all[i].uuid, all[j].uuid, sizeof all[i].uuid) == 0 && strcmp(all[i].host, all[j].host) == 0)
        return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                              "nccl: ranks %d and %d on host %s both use GPU %d (the same physical device); NCCL "
                              "needs a distinct GPU per rank: launch at most one rank per GPU, or use the mpi "
                              "backend (--comm mpi), which stages device buffers through host memory",
                              i, j, all[i].host, all[i].gpu);
  return SHARDRT_OK;
}

/* One group's communicator. With a timeout it is non-blocking and its init
 * is polled within the limit (a peer that never calls init would otherwise
 * hold this rank in ncclCommInitRank forever), then aborted on expiry. */
static shardrt_status init_rank(nccl_backend *b, int g, ncclUniqueId id) {
  if (b->timeout_s <= 0) {
    NCCL_CHECK(NULL, ncclCommInitRank(&b->nccl[g], b->size[g], id, b->rank[g]));
    b->owns[g] = true;
    return SHARDRT_OK;
  }
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  ncclResult_t r = ncclCommInitRankConfig(&b->nccl[g], b->size[g], id, b->rank[g], &cfg);
  if (r != ncclSuccess && r != ncclInProgress) return nccl_fail(r, NULL, "ncclCommInitRankConfig", __LINE__);
  b->owns[g] = true; /* from here it is aborted on failure (abort_comms) */
  char what[96];
  snprintf(what, sizeof what, "nccl: init of the %s group's communicator", group_names[g]);
  shardrt_status rc = shardrt__poll_until(comm_probe, NULL, b->nccl[g], b->timeout_s, 1e-3, what);
  if (rc == SHARDRT_ERR_COMM) {
    const char *last = ncclGetLastError(b->nccl[g]);
    rc = shardrt__error(SHARDRT_ERR_COMM, "%s failed: %s", what, last && *last ? last : "asynchronous NCCL error");
  }
  return rc;
}

/* One NCCL communicator per group; a group holding every rank in WORLD's
 * order is WORLD and shares its communicator. */
static shardrt_status make_comms(nccl_backend *b, MPI_Comm base, int rank, int gs) {
  MPI_CHECK(MPI_Comm_dup(base, &b->mpi[SHARDRT__GROUP_WORLD]), "communicator dup");
  MPI_CHECK(MPI_Comm_split(base, rank / gs, rank, &b->mpi[SHARDRT__GROUP_SHARD]), "shard group split");
  MPI_CHECK(MPI_Comm_split(base, rank % gs, rank, &b->mpi[SHARDRT__GROUP_REPLICA]), "replica group split");
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) {
    /* Host helpers report MPI failures as statuses instead of aborting. */
    MPI_CHECK(MPI_Comm_set_errhandler(b->mpi[g], MPI_ERRORS_RETURN), "set error handler");
    MPI_CHECK(MPI_Comm_rank(b->mpi[g], &b->rank[g]), "comm rank");
    MPI_CHECK(MPI_Comm_size(b->mpi[g], &b->size[g]), "comm size");
  }
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) {
    if (g != SHARDRT__GROUP_WORLD && b->size[g] == b->size[SHARDRT__GROUP_WORLD]) {
      b->nccl[g] = b->nccl[SHARDRT__GROUP_WORLD];
      continue;
    }
    /* Group rank 0 sends its id with a status, so a failure there does not
     * leave the others waiting in ncclCommInitRank. */
    struct { int ok; ncclUniqueId id; } boot;
    memset(&boot, 0, sizeof boot);
    ncclResult_t r = ncclSuccess;
    if (b->rank[g] == 0) {
      r = ncclGetUniqueId(&boot.id);
      boot.ok = r == ncclSuccess;
    }
    MPI_TIMED(MPI_Ibcast(&boot, (int)sizeof boot, MPI_BYTE, 0, b->mpi[g], &r__), "nccl id broadcast");
    if (r != ncclSuccess) return nccl_fail(r, NULL, "ncclGetUniqueId", __LINE__);
    if (!boot.ok)
      return shardrt__error(SHARDRT_ERR_COMM, "nccl: rank 0 of the %s group could not create an NCCL unique id",
                            group_names[g]);
    SHARDRT__CHECK(init_rank(b, g, boot.id));
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__comm_nccl_create(const shardrt__comm_args *a, shardrt__comm *out) {
  if (!a || !out)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "nccl create: %s is NULL", a ? "out" : "args");
  out->i = NULL;
  out->self = NULL;
  int gpu = -1;
  shardrt_status local = local_check(a, &gpu);
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Finalized(&finalized);
  if (!inited || finalized) {
    if (local != SHARDRT_OK) return local;
    return shardrt__error(SHARDRT_ERR_STATE, "nccl: MPI is %s; the nccl backend bootstraps its communicators over "
                          "MPI", inited ? "already finalized" : "not initialized");
  }
  MPI_Comm base = a->mpi_comm ? *(MPI_Comm *)a->mpi_comm : MPI_COMM_WORLD;
  int rank = 0, world = 0;
  MPI_CHECK(MPI_Comm_rank(base, &rank), "comm rank");
  MPI_CHECK(MPI_Comm_size(base, &world), "comm size");
  int gs = a->shard_group_size > 0 ? a->shard_group_size : world;
  if (world % gs != 0)
    return shardrt__error(SHARDRT_ERR_CONFIG, "shard group size %d does not divide the world size %d", gs, world);

  nccl_backend *b = NULL;
  rank_info me;
  memset(&me, 0, sizeof me);
  me.gpu = gpu;
  char host[MPI_MAX_PROCESSOR_NAME];
  int host_len = 0;
  if (MPI_Get_processor_name(host, &host_len) != MPI_SUCCESS) snprintf(host, sizeof host, "?");
  snprintf(me.host, sizeof me.host, "%.63s", host);
  if (local == SHARDRT_OK) {
    b = calloc(1, sizeof *b);
    if (!b) local = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "nccl backend allocation failed");
  }
  if (b) {
    for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) b->mpi[g] = MPI_COMM_NULL;
    b->dev = a->dev;
    b->gpu = gpu;
    b->timeout_s = a->timeout_s > 0 ? a->timeout_s : 0;
    local = local_setup(b, &me);
  }
  me.ok = local == SHARDRT_OK;
  /* Keep this rank's own reason: the exchange below must not replace it. */
  char why[1024];
  snprintf(why, sizeof why, "%s", shardrt_last_error());

  rank_info *all = calloc((size_t)world, sizeof *all);
  int e = all ? MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, base) : MPI_ERR_NO_MEM;
  shardrt_status rc = SHARDRT_OK;
  if (local != SHARDRT_OK) rc = shardrt__error(local, "%s", why);
  else if (e != MPI_SUCCESS) rc = mpi_fail(e, "rank exchange");
  else rc = agree(all, world);
  free(all);
  if (rc != SHARDRT_OK) goto fail;

  rc = make_comms(b, base, rank, gs);
  /* Every rank learns whether all communicators came up, so no rank goes on
   * with a backend its peers have given up on. */
  snprintf(why, sizeof why, "%s", shardrt_last_error());
  int ok = rc == SHARDRT_OK, all_ok = 0;
  e = MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, base);
  if (rc != SHARDRT_OK) {
    rc = shardrt__error(rc, "%s", why);
    goto fail;
  }
  if (e != MPI_SUCCESS) {
    rc = mpi_fail(e, "setup agreement");
    goto fail;
  }
  if (!all_ok) {
    rc = shardrt__error(SHARDRT_ERR_COMM, "nccl: another rank failed to create its NCCL communicators (see its "
                        "error)");
    goto fail;
  }
  if (b->timeout_s > 0) {
    /* Probes 4 times per limit, at most every 50 ms: a hang is found within
     * 1.25x the limit at little cost (one event query per collective). */
    double every = b->timeout_s / 4 < 0.05 ? b->timeout_s / 4 : 0.05;
    rc = shardrt__watchdog_start(&b->wd, b->timeout_s, every, req_probe, wd_expire, b);
    if (rc != SHARDRT_OK) goto fail;
  }
  out->i = &nccl_comm_i;
  out->self = b;
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) {
    out->rank[g] = b->rank[g];
    out->size[g] = b->size[g];
  }
  return SHARDRT_OK;
fail:
  if (b) {
    b->broken = true; /* peers may be gone: abort rather than a collective destroy */
    nccl_destroy(b);
  }
  return rc;
}
