/* SPDX-License-Identifier: Apache-2.0 */
/* Ring reduce-scatter and all-reduce over MPI point-to-point messages.
 *
 * Why not MPI_Ireduce_scatter_block / MPI_Iallreduce: Open MPI's non-blocking
 * collectives (coll/libnbc, the only component that implements them in 4.1)
 * malloc a temporary for every call - the whole buffer for Iallreduce, twice
 * the whole input for Ireduce_scatter_block - and free it at completion, so
 * glibc maps fresh pages for it every step (one page fault per 4 KiB: 8,700
 * per step for one 34 MiB all-reduce in tests/unit/test_step_faults.c). Its
 * reduce-scatter also reduces everything on one rank before scattering. The
 * ring below moves (size-1)/size of the buffer per rank per phase, as NCCL's
 * ring does, and keeps its only temporary (one chunk, none for a two-rank
 * reduce-scatter) in the backend for reuse.
 *
 * Reduce-scatter, rank r, steps k = 0 .. size-2: send the partial sum of
 * chunk (r-k-1) to r+1, receive the partial of chunk (r-k-2) from r-1 and
 * add this rank's own contribution; after size-1 steps rank r holds the sum
 * of chunk r. The partials alternate between the output and the scratch
 * chunk so the last step lands in the output. All-reduce runs the same steps
 * in place over size chunks of the buffer (received partials go through the
 * scratch chunk), then size-1 all-gather steps pass the finished chunks on.
 * Each chunk's sum is formed on one rank only, so every rank ends with the
 * same bits. A sum is received + own, one addition per step in the
 * element's dtype (16-bit floats added in fp32 and rounded, as the backend's
 * MPI operators do); at two ranks that is the one addition a + b. */
#include "src/comm/mpi_ring.h"

#include <string.h>

static int mod(int a, int p) { return ((a % p) + p) % p; }

static size_t esize(shardrt_dtype dt) { return dt == SHARDRT_F32 ? 4 : 2; }

/* First element and length of chunk c. */
static size_t chunk_off(const shardrt__ring *g, int c) {
  return g->allreduce ? (size_t)c * g->count / (size_t)g->size : (size_t)c * g->count;
}
static size_t chunk_n(const shardrt__ring *g, int c) {
  return g->allreduce ? chunk_off(g, c + 1) - chunk_off(g, c) : g->count;
}

size_t shardrt__ring_scratch_bytes(bool allreduce, size_t count, int size, shardrt_dtype dt) {
  if (size <= 1) return 0;
  if (allreduce) return (count / (size_t)size + 1) * esize(dt); /* the largest chunk */
  return size > 2 ? count * esize(dt) : 0;
}

static void add_into(void *dst, const void *src, size_t n, shardrt_dtype dt) {
  if (dt == SHARDRT_F32) {
    float *d = dst;
    const float *s = src;
    for (size_t i = 0; i < n; i++) d[i] = s[i] + d[i];
  } else if (dt == SHARDRT_BF16) {
    uint16_t *d = dst;
    const uint16_t *s = src;
    for (size_t i = 0; i < n; i++) d[i] = shardrt_f32_to_bf16(shardrt_bf16_to_f32(s[i]) + shardrt_bf16_to_f32(d[i]));
  } else {
    uint16_t *d = dst;
    const uint16_t *s = src;
    for (size_t i = 0; i < n; i++) d[i] = shardrt_f32_to_f16(shardrt_f16_to_f32(s[i]) + shardrt_f16_to_f32(d[i]));
  }
}

static int rs_steps(const shardrt__ring *g) { return g->size - 1; }
static int total_steps(const shardrt__ring *g) { return g->allreduce ? 2 * (g->size - 1) : g->size - 1; }

/* Reduce-scatter: where step k accumulates (the last step: the output). */
static char *rs_target(const shardrt__ring *g, int k) { return ((g->size - 2 - k) % 2 == 0) ? g->data : g->scratch; }

static int post(shardrt__ring *g) {
  int k = g->step, r = g->rank, p = g->size;
  size_t es = esize(g->dt);
  const char *sbuf;
  char *rbuf;
  int s, t;
  if (k < rs_steps(g)) {
    s = mod(r - k - 1, p);
    t = mod(r - k - 2, p);
    if (g->allreduce) {
      sbuf = g->data + chunk_off(g, s) * es;
      rbuf = g->scratch;
    } else {
      sbuf = k == 0 ? g->send + chunk_off(g, s) * es : rs_target(g, k - 1);
      rbuf = rs_target(g, k);
    }
  } else {
    int j = k - rs_steps(g);
    s = mod(r - j, p);
    t = mod(r - j - 1, p);
    sbuf = g->data + chunk_off(g, s) * es;
    rbuf = g->data + chunk_off(g, t) * es;
  }
  int e = MPI_Irecv(rbuf, (int)chunk_n(g, t), g->type, mod(r - 1, p), g->tag, g->comm, &g->rq[0]);
  if (e != MPI_SUCCESS) return e;
  e = MPI_Isend(sbuf, (int)chunk_n(g, s), g->type, mod(r + 1, p), g->tag, g->comm, &g->rq[1]);
  if (e != MPI_SUCCESS) return e;
  g->posted = true;
  return MPI_SUCCESS;
}

/* The step's messages are complete: add this rank's contribution. */
static void finish(shardrt__ring *g) {
  int k = g->step;
  if (k >= rs_steps(g)) return;
  size_t es = esize(g->dt);
  int t = mod(g->rank - k - 2, g->size);
  if (g->allreduce) add_into(g->data + chunk_off(g, t) * es, g->scratch, chunk_n(g, t), g->dt);
  else add_into(rs_target(g, k), g->send + chunk_off(g, t) * es, chunk_n(g, t), g->dt);
}

int shardrt__ring_start(shardrt__ring *g, bool allreduce, MPI_Comm comm, int tag, MPI_Datatype type,
                        shardrt_dtype dt, const void *send, void *data, size_t count, void *scratch) {
  memset(g, 0, sizeof *g);
  g->comm = comm;
  g->type = type;
  g->dt = dt;
  g->tag = tag;
  g->allreduce = allreduce;
  g->send = allreduce ? data : send;
  g->data = data;
  g->scratch = scratch;
  g->count = count;
  g->rq[0] = g->rq[1] = MPI_REQUEST_NULL;
  MPI_Comm_rank(comm, &g->rank);
  MPI_Comm_size(comm, &g->size);
  if (g->size == 1) {
    if (!allreduce && count && send != data) memcpy(data, send, count * esize(dt));
    return MPI_SUCCESS;
  }
  return post(g);
}

int shardrt__ring_test(shardrt__ring *g, bool block, bool *done) {
  *done = false;
  while (g->step < total_steps(g)) {
    if (!g->posted) {
      int e = post(g);
      if (e != MPI_SUCCESS) return e;
    }
    int e, flag = 1;
    if (block) e = MPI_Waitall(2, g->rq, MPI_STATUSES_IGNORE);
    else e = MPI_Testall(2, g->rq, &flag, MPI_STATUSES_IGNORE);
    if (e != MPI_SUCCESS) return e;
    if (!flag) return MPI_SUCCESS;
    finish(g);
    g->posted = false;
    g->step++;
  }
  *done = true;
  return MPI_SUCCESS;
}
