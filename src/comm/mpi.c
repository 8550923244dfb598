/* SPDX-License-Identifier: Apache-2.0 */
/* MPI communication backend. Host buffers go straight to MPI's non-blocking
 * collectives; device buffers (a CUDA context whose ranks share a GPU, where
 * NCCL cannot run) are staged through host memory synchronously. 16-bit
 * floats travel as MPI datatypes of their own with sum operators that
 * accumulate in fp32, one element at a time in rank order as MPI applies
 * them. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "src/comm/comm.h"
#include "src/core/error.h"

struct shardrt__req {
  MPI_Request r;
};

typedef struct mpi_comm {
  MPI_Comm comm[SHARDRT__GROUP_COUNT_];
  MPI_Datatype bf16, f16;
  MPI_Op sum_bf16, sum_f16;
  shardrt__device *dev;
  void *stage;       /* host staging for device buffers */
  size_t stage_bytes;
} mpi_comm;

/* MPI user ops get no context pointer: the datatypes are process-wide. */
static MPI_Datatype g_bf16 = MPI_DATATYPE_NULL, g_f16 = MPI_DATATYPE_NULL;

static void sum16(void *in, void *inout, int *len, MPI_Datatype *dt) {
  const uint16_t *a = in;
  uint16_t *b = inout;
  if (*dt == g_bf16) {
    for (int i = 0; i < *len; i++) b[i] = shardrt_f32_to_bf16(shardrt_bf16_to_f32(a[i]) + shardrt_bf16_to_f32(b[i]));
  } else {
    for (int i = 0; i < *len; i++) b[i] = shardrt_f32_to_f16(shardrt_f16_to_f32(a[i]) + shardrt_f16_to_f32(b[i]));
  }
}

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
static MPI_Op mpi_sum(const mpi_comm *m, shardrt_dtype dt) {
  return dt == SHARDRT_F32 ? MPI_SUM : dt == SHARDRT_BF16 ? m->sum_bf16 : m->sum_f16;
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
  *req = malloc(sizeof **req);
  if (!*req) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "MPI request allocation failed");
  (*req)->r = MPI_REQUEST_NULL;
  return SHARDRT_OK;
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

static bool staged(const mpi_comm *m) { return m->dev && m->dev->is_cuda; }

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
    MPICHECK(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, h, (int)count, mpi_type(m, dt), m->comm[g]),
             "all_gather");
    return to_dev(m, recv, h, piece * size);
  }
  SHARDRT__CHECK(new_req(req));
  MPICHECK(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, (int)count, mpi_type(m, dt), recv, (int)count,
                          mpi_type(m, dt), m->comm[g], &(*req)->r),
           "all_gather");
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
    MPICHECK(MPI_Reduce_scatter_block(h, h + piece * size, (int)count, mpi_type(m, dt), mpi_sum(m, dt), m->comm[g]),
             "reduce_scatter");
    return to_dev(m, recv, h + piece * size, piece);
  }
  SHARDRT__CHECK(new_req(req));
  MPICHECK(MPI_Ireduce_scatter_block(send, recv, (int)count, mpi_type(m, dt), mpi_sum(m, dt), m->comm[g], &(*req)->r),
           "reduce_scatter");
  return SHARDRT_OK;
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
    MPICHECK(MPI_Allreduce(MPI_IN_PLACE, m->stage, (int)count, mpi_type(m, dt), mpi_sum(m, dt), m->comm[g]),
             "all_reduce");
    return to_dev(m, buf, m->stage, bytes);
  }
  SHARDRT__CHECK(new_req(req));
  MPICHECK(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(m, dt), mpi_sum(m, dt), m->comm[g], &(*req)->r),
           "all_reduce");
  return SHARDRT_OK;
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
    MPICHECK(MPI_Bcast(m->stage, (int)bytes, MPI_BYTE, root, m->comm[g]), "broadcast");
    return to_dev(m, buf, m->stage, bytes);
  }
  SHARDRT__CHECK(new_req(req));
  MPICHECK(MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, m->comm[g], &(*req)->r), "broadcast");
  return SHARDRT_OK;
}

static shardrt_status mpi_wait(void *self, shardrt__req *req) {
  if (!req) return SHARDRT_OK;
  int e = MPI_Wait(&req->r, MPI_STATUS_IGNORE);
  free(req);
  if (e != MPI_SUCCESS) return mpi_fail(e, "wait");
  return SHARDRT_OK;
}

static shardrt_status mpi_progress(void *self, shardrt__req *req) {
  int done = 0;
  if (req && req->r != MPI_REQUEST_NULL && MPI_Test(&req->r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
    return shardrt__error(SHARDRT_ERR_COMM, "MPI_Test failed");
  return SHARDRT_OK;
}

static shardrt_status mpi_allreduce_host_f64(void *self, shardrt__group g, double *vals, int n) {
  mpi_comm *m = self;
  MPICHECK(MPI_Allreduce(MPI_IN_PLACE, vals, n, MPI_DOUBLE, MPI_SUM, m->comm[g]), "allreduce(host)");
  return SHARDRT_OK;
}

static shardrt_status mpi_allreduce_host_max_i64(void *self, int64_t *vals, int n) {
  mpi_comm *m = self;
  MPICHECK(MPI_Allreduce(MPI_IN_PLACE, vals, n, MPI_INT64_T, MPI_MAX, m->comm[SHARDRT__GROUP_WORLD]),
           "allreduce(host max)");
  return SHARDRT_OK;
}

static shardrt_status mpi_allgather_host(void *self, const void *send, void *recv, size_t bytes) {
  mpi_comm *m = self;
  MPICHECK(MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, m->comm[SHARDRT__GROUP_WORLD]),
           "allgather(host)");
  return SHARDRT_OK;
}

static shardrt_status mpi_bcast_host(void *self, void *buf, size_t bytes, int root) {
  mpi_comm *m = self;
  MPICHECK(MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, m->comm[SHARDRT__GROUP_WORLD]), "bcast(host)");
  return SHARDRT_OK;
}

static shardrt_status mpi_barrier(void *self) {
  mpi_comm *m = self;
  MPICHECK(MPI_Barrier(m->comm[SHARDRT__GROUP_WORLD]), "barrier");
  return SHARDRT_OK;
}

static void mpi_destroy(void *self) {
  mpi_comm *m = self;
  if (!m) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++)
      if (m->comm[g] != MPI_COMM_NULL) MPI_Comm_free(&m->comm[g]);
    if (m->sum_bf16 != MPI_OP_NULL) MPI_Op_free(&m->sum_bf16);
    if (m->sum_f16 != MPI_OP_NULL) MPI_Op_free(&m->sum_f16);
  }
  if (m->stage) {
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
  m->sum_bf16 = m->sum_f16 = MPI_OP_NULL;
  m->dev = a->dev;
  m->bf16 = g_bf16;
  m->f16 = g_f16;
  int e = MPI_Comm_dup(base, &m->comm[SHARDRT__GROUP_WORLD]);
  if (e == MPI_SUCCESS) e = MPI_Comm_split(base, rank / gs, rank, &m->comm[SHARDRT__GROUP_SHARD]);
  if (e == MPI_SUCCESS) e = MPI_Comm_split(base, rank % gs, rank, &m->comm[SHARDRT__GROUP_REPLICA]);
  if (e == MPI_SUCCESS) e = MPI_Op_create(sum16, 1, &m->sum_bf16);
  if (e == MPI_SUCCESS) e = MPI_Op_create(sum16, 1, &m->sum_f16);
  if (e != MPI_SUCCESS) {
    mpi_destroy(m);
    return mpi_fail(e, "communicator setup");
  }
  out->i = &mpi_comm_i;
  out->self = m;
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) {
    MPI_Comm_rank(m->comm[g], &out->rank[g]);
    MPI_Comm_size(m->comm[g], &out->size[g]);
  }
  return SHARDRT_OK;
}
