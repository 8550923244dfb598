/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking collectives of the runtime that do not go through the comm
 * backend (the gradient-norm all-reduce, the program's all-reduce, state
 * scatter/gather/broadcast, checkpoint agreement): each is preceded by a
 * synchronisation point and completed within SHARDRT_COLL_TIMEOUT_S, so a
 * rank that stalls before one is an error on every other rank, not a hang.
 *
 * Test hook: SHARDRT_TEST_STALL=<point>:<rank> makes that rank stall at
 * the first synchronisation point of that kind (point names below): it
 * sleeps 3 x SHARDRT_COLL_TIMEOUT_S + 1 s, never enters the collective, and
 * returns SHARDRT_ERR_TIMEOUT; its context is then unusable, as are the
 * others'. */
#ifndef SHARDRT_CORE_SYNC_H
#define SHARDRT_CORE_SYNC_H

#include <mpi.h>

#include "shardrt/runtime.h"

/* Kinds of internal blocking collective; values follow shardrt__sync_op so
 * that both share the SHARDRT_DEBUG=collectives record. */
typedef enum shardrt__sync_pt {
  SHARDRT__PT_GRAD_NORM = 32, /* "grad_norm": shardrt_step's norm and overflow all-reduces */
  SHARDRT__PT_PROGRAM,        /* "program": shardrt_allreduce_sum_f64 */
  SHARDRT__PT_STATE,          /* "state": parameter scatter/gather/broadcast (src/core/state.c) */
  SHARDRT__PT_CKPT,           /* "ckpt": checkpoint agreement, broadcast and all-gather */
  SHARDRT__PT_SETUP,          /* "setup": agreements of shardrt_ctx_create and shardrt_finalize */
  SHARDRT__PT_END_
} shardrt__sync_pt;

/* Before an internal blocking collective: the stall hook, then (with
 * SHARDRT_DEBUG=collectives) the cross-rank check, which names the ranks
 * that never arrive. */
shardrt_status shardrt__sync_point(shardrt_ctx *ctx, shardrt__sync_pt pt);
/* Completes *r within the context's timeout (0: no limit). `what` names
 * the collective in the error. On a timeout the context is marked broken
 * (the request stays with MPI: its buffers must stay allocated). */
shardrt_status shardrt__mpi_complete(shardrt_ctx *ctx, MPI_Request *r, const char *what);

/* Point + MPI_Iallreduce / MPI_Iallgather + timed completion, for the
 * one-line agreements of setup code. send may be MPI_IN_PLACE. */
shardrt_status shardrt__allreduce_timed(shardrt_ctx *ctx, shardrt__sync_pt pt, const void *send, void *recv, int n,
                                        MPI_Datatype dt, MPI_Op op, MPI_Comm comm, const char *what);
shardrt_status shardrt__allgather_timed(shardrt_ctx *ctx, shardrt__sync_pt pt, const void *send, void *recv, int n,
                                        MPI_Datatype dt, MPI_Comm comm, const char *what);

#endif
