/* SPDX-License-Identifier: Apache-2.0 */
/* Ring reductions of the mpi backend over point-to-point messages (see
 * mpi_ring.c for why). A ring is started once and then advanced by tests
 * from one thread at a time (the progress thread, or the caller that took
 * the request back). */
#ifndef SHARDRT_MPI_RING_H
#define SHARDRT_MPI_RING_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

#include "shardrt/types.h"

typedef struct shardrt__ring {
  MPI_Comm comm;
  MPI_Datatype type;
  shardrt_dtype dt;
  int rank, size, tag;
  bool allreduce;    /* else reduce-scatter */
  const char *send;  /* reduce-scatter: size x count input; all-reduce: == data */
  char *data;        /* reduce-scatter: recv[count]; all-reduce: buf[count] (in place) */
  char *scratch;     /* one chunk (NULL when the ring needs none) */
  size_t count;      /* reduce-scatter: per rank; all-reduce: total */
  int step;          /* 0 .. 2*(size-1) (all-reduce) or size-1 (reduce-scatter): done */
  bool posted;       /* rq holds the current step's messages */
  MPI_Request rq[2];
} shardrt__ring;

/* Scratch bytes a ring of this kind needs (0: none). */
size_t shardrt__ring_scratch_bytes(bool allreduce, size_t count, int size, shardrt_dtype dt);
/* Prepares and posts the first step. `scratch` has shardrt__ring_scratch_bytes
 * bytes. Returns an MPI error code. */
int shardrt__ring_start(shardrt__ring *g, bool allreduce, MPI_Comm comm, int tag, MPI_Datatype type,
                        shardrt_dtype dt, const void *send, void *data, size_t count, void *scratch);
/* Advances the ring as far as its messages have arrived (block: waits for
 * each step). *done when complete. Returns an MPI error code. */
int shardrt__ring_test(shardrt__ring *g, bool block, bool *done);

#endif
