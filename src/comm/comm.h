/* SPDX-License-Identifier: Apache-2.0 */
/* Communication backend interface. A backend owns one communicator per
 * group: WORLD (all ranks), SHARD (the ranks that split a unit's shards) and
 * REPLICA (the ranks holding the same shard in different shard groups; a
 * single rank when there is no hybrid sharding).
 *
 * Collectives are started non-blocking and completed with wait(): the
 * backend may run them on a comm stream (NCCL, ordered after the compute
 * stream's work by an event) or as MPI non-blocking collectives. A request
 * must be waited exactly once; after wait() the output is ready for work on
 * the compute stream. Buffers are device buffers of the context's device
 * (host buffers on cpu); the mpi backend stages device buffers through host
 * memory. Reductions are sums. */
#ifndef SHARDRT_COMM_H
#define SHARDRT_COMM_H

#include "shardrt/runtime.h"
#include "src/device/device.h"

typedef enum shardrt__group {
  SHARDRT__GROUP_WORLD = 0,
  SHARDRT__GROUP_SHARD,
  SHARDRT__GROUP_REPLICA,
  SHARDRT__GROUP_COUNT_
} shardrt__group;

typedef struct shardrt__req shardrt__req; /* backend-defined */

typedef struct shardrt__comm_i {
  const char *name;
  /* recv[count * size(group)] <- concatenation of every rank's send[count]. */
  shardrt_status (*all_gather)(void *self, shardrt__group g, const void *send, void *recv,
                               size_t count, shardrt_dtype dt, shardrt__req **req);
  /* recv[count] <- sum over ranks of send[rank_in_group * count ...]. */
  shardrt_status (*reduce_scatter)(void *self, shardrt__group g, const void *send, void *recv,
                                   size_t count, shardrt_dtype dt, shardrt__req **req);
  /* buf[count] <- sum over ranks (in place). */
  shardrt_status (*all_reduce)(void *self, shardrt__group g, void *buf, size_t count,
                               shardrt_dtype dt, shardrt__req **req);
  /* buf[count] <- root's buf (root is a rank of the group). */
  shardrt_status (*broadcast)(void *self, shardrt__group g, void *buf, size_t count,
                              shardrt_dtype dt, int root, shardrt__req **req);
  /* Completes a request (NULL: no-op) and frees it. After a timeout
   * (SHARDRT_ERR_TIMEOUT) the backend is broken: later waits return at once
   * with an error and leave their requests behind. */
  shardrt_status (*wait)(void *self, shardrt__req *req);
  /* Optional: drives a request forward without blocking (MPI progresses
   * non-blocking collectives only inside MPI calls); NULL when the backend
   * progresses on its own (NCCL on its stream). */
  shardrt_status (*progress)(void *self, shardrt__req *req);
  /* Optional: the CLOCK_MONOTONIC time (shardrt__now) at which the backend
   * completed req on its own, e.g. on a progress thread; 0 while it has not.
   * Never enters the transport. NULL: coll.c takes the first time it sees
   * the request done (for the mpi backend: its progress thread's flag). */
  double (*completed_at)(void *self, const shardrt__req *req);
  /* Optional: the backend times its collectives on the device (NCCL: CUDA
   * events on the comm stream and the compute stream), since on a GPU the
   * host only enqueues them. Resolves the collectives waited so far whose
   * events have completed (all of them when `sync`) and returns the
   * backend's running totals since creation: per kind, each collective's
   * time from the moment its inputs were ready on the comm stream to its
   * completion; and the time the compute stream stood at waits for a
   * collective that had not completed. NULL: coll.c times on the host. */
  shardrt_status (*device_times)(void *self, bool sync, double comm_s[SHARDRT_COLL_COUNT_], double *exposed_s);
  /* Host-side helpers for small control values (blocking, WORLD unless said). */
  shardrt_status (*allreduce_host_f64)(void *self, shardrt__group g, double *vals, int n); /* sum */
  shardrt_status (*allreduce_host_max_i64)(void *self, int64_t *vals, int n);
  shardrt_status (*allgather_host)(void *self, const void *send, void *recv, size_t bytes);
  shardrt_status (*bcast_host)(void *self, void *buf, size_t bytes, int root);
  shardrt_status (*barrier)(void *self);
  void (*destroy)(void *self);
} shardrt__comm_i;

typedef struct shardrt__comm {
  const shardrt__comm_i *i;
  void *self;
  int rank[SHARDRT__GROUP_COUNT_]; /* this rank's index in each group */
  int size[SHARDRT__GROUP_COUNT_];
} shardrt__comm;

/* Layout of groups: world ranks are split into world/shard_group_size
 * consecutive shard groups; replica group r holds the ranks with the same
 * index in each shard group. */
typedef struct shardrt__comm_args {
  void *mpi_comm;        /* MPI_Comm* or NULL for MPI_COMM_WORLD */
  int shard_group_size;  /* divides the world size */
  shardrt__device *dev;  /* for staging / streams */
  double timeout_s;      /* > 0: wait() gives up after this long (SHARDRT_ERR_TIMEOUT) */
} shardrt__comm_args;

/* MPI backend. Works with host buffers and (staged) device buffers. */
shardrt_status shardrt__comm_mpi_create(const shardrt__comm_args *a, shardrt__comm *out);
/* Testing: true once the mpi backend's progress thread has completed req.
 * Reads a flag and never enters MPI, so it tells whether a collective moved
 * while the caller stayed out of MPI. */
bool shardrt__comm_mpi_req_done(const shardrt__req *req);
/* NCCL backend: one NCCL communicator per group, unique ids broadcast over
 * MPI; needs a CUDA device. SHARDRT_ERR_UNSUPPORTED without NCCL/CUDA. */
shardrt_status shardrt__comm_nccl_create(const shardrt__comm_args *a, shardrt__comm *out);

static inline void shardrt__comm_destroy(shardrt__comm *c) {
  if (c && c->i && c->i->destroy) c->i->destroy(c->self);
  if (c) { c->i = 0; c->self = 0; }
}

#endif
