/* SPDX-License-Identifier: Apache-2.0 */
/* The NCCL comm backend against known values: all_gather, reduce_scatter
 * (both also in place), all_reduce and broadcast in every dtype over the
 * WORLD, SHARD and REPLICA groups of two layouts; ordering against the
 * compute stream; the MPI host helpers; bad input. Run under mpirun at 1 and
 * 2 ranks. Without a GPU it exits 77; with fewer GPUs than ranks on a node
 * it checks that the backend refuses ranks sharing a GPU. */
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/comm/comm.h"
#include "src/device/device.h"

static int rank, world;
static shardrt__device dev;

static const shardrt_dtype dts[] = {SHARDRT_F32, SHARDRT_BF16, SHARDRT_F16};
static const size_t counts[] = {1, 7, 100003};

static void expect_error(shardrt_status got, shardrt_status want, const char *needle) {
  if (got != want)
    fail_msg("status %d (%s), wanted %d; last error: %s", got, shardrt_status_str(got), want, shardrt_last_error());
  if (!strstr(shardrt_last_error(), needle))
    fail_msg("error message \"%s\" does not mention \"%s\"", shardrt_last_error(), needle);
}

static void make_comm(int gs, shardrt__comm *c) {
  shardrt__comm_args a = {.mpi_comm = NULL, .shard_group_size = gs, .dev = &dev};
  shardrt_status rc = shardrt__comm_nccl_create(&a, c);
  if (rc != SHARDRT_OK) fail_msg("nccl create (shard group %d): %s", gs, shardrt_last_error());
}

/* World rank of member j of this rank's group g (comm.h's layout). */
static int member(const shardrt__comm *c, shardrt__group g, int j) {
  int gs = c->size[SHARDRT__GROUP_SHARD];
  switch (g) {
    case SHARDRT__GROUP_SHARD: return (rank / gs) * gs + j;
    case SHARDRT__GROUP_REPLICA: return rank % gs + j * gs;
    default: return j;
  }
}

/* Small integers: exact in every dtype, and so are their sums over <= 8 ranks. */
static float value(int r, size_t i) { return (float)((r * 7 + (int)(i % 29)) % 32); }

static void *upload(const float *v, size_t n, shardrt_dtype dt) {
  size_t bytes = n * shardrt_dtype_size(dt);
  void *h = malloc(bytes), *d = NULL;
  assert_non_null(h);
  shardrt_convert(h, dt, v, SHARDRT_F32, n);
  assert_int_equal(dev.i->alloc(dev.self, bytes, &d), SHARDRT_OK);
  assert_int_equal(dev.i->copy(dev.self, d, h, bytes, SHARDRT__H2D), SHARDRT_OK);
  free(h);
  return d;
}

static float *download(const void *d, size_t n, shardrt_dtype dt) {
  size_t bytes = n * shardrt_dtype_size(dt);
  void *h = malloc(bytes);
  float *v = malloc(n * sizeof *v);
  assert_true(h && v);
  assert_int_equal(dev.i->copy(dev.self, h, d, bytes, SHARDRT__D2H), SHARDRT_OK);
  shardrt_convert(v, SHARDRT_F32, h, dt, n);
  free(h);
  return v;
}

static void expect_values(const float *got, const float *want, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (got[i] != want[i])
      fail_msg("rank %d %s: element %zu is %g, wanted %g", rank, what, i, (double)got[i], (double)want[i]);
}

static void wait_ok(shardrt__comm *c, shardrt__req *req) {
  if (c->i->wait(c->self, req) != SHARDRT_OK) fail_msg("wait: %s", shardrt_last_error());
}

static void test_layout(void **state) {
  const int layouts[] = {world, 1};
  for (int l = 0; l < 2; l++) {
    shardrt__comm c;
    make_comm(layouts[l], &c);
    int gs = layouts[l];
    assert_string_equal(c.i->name, "nccl");
    assert_int_equal(c.size[SHARDRT__GROUP_WORLD], world);
    assert_int_equal(c.rank[SHARDRT__GROUP_WORLD], rank);
    assert_int_equal(c.size[SHARDRT__GROUP_SHARD], gs);
    assert_int_equal(c.rank[SHARDRT__GROUP_SHARD], rank % gs);
    assert_int_equal(c.size[SHARDRT__GROUP_REPLICA], world / gs);
    assert_int_equal(c.rank[SHARDRT__GROUP_REPLICA], rank / gs);
    shardrt__comm_destroy(&c);
    assert_null(c.i);
  }
}

/* Runs fn for every layout, group, dtype and count. */
typedef void (*coll_fn)(shardrt__comm *c, shardrt__group g, shardrt_dtype dt, size_t count);
static void for_all(coll_fn fn) {
  const int layouts[] = {world, 1};
  for (int l = 0; l < (world > 1 ? 2 : 1); l++) {
    shardrt__comm c;
    make_comm(layouts[l], &c);
    for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++)
      for (int t = 0; t < 3; t++)
        for (int k = 0; k < 3; k++) fn(&c, (shardrt__group)g, dts[t], counts[k]);
    shardrt__comm_destroy(&c);
  }
}

static void all_gather_case(shardrt__comm *c, shardrt__group g, shardrt_dtype dt, size_t count) {
  int gr = c->rank[g], gsz = c->size[g];
  size_t total = count * (size_t)gsz;
  float *want = malloc(total * sizeof *want), *mine = malloc(count * sizeof *mine);
  assert_true(want && mine);
  for (int j = 0; j < gsz; j++)
    for (size_t i = 0; i < count; i++) want[(size_t)j * count + i] = value(member(c, g, j), i);
  for (size_t i = 0; i < count; i++) mine[i] = value(rank, i);
  for (int in_place = 0; in_place < 2; in_place++) {
    float *init = malloc(total * sizeof *init);
    assert_non_null(init);
    for (size_t i = 0; i < total; i++) init[i] = -1.0f;
    if (in_place) memcpy(init + (size_t)gr * count, mine, count * sizeof *mine);
    void *recv = upload(init, total, dt);
    void *send = in_place ? (char *)recv + (size_t)gr * count * shardrt_dtype_size(dt) : upload(mine, count, dt);
    shardrt__req *req = NULL;
    assert_int_equal(c->i->all_gather(c->self, g, send, recv, count, dt, &req), SHARDRT_OK);
    wait_ok(c, req);
    float *got = download(recv, total, dt);
    expect_values(got, want, total, in_place ? "all_gather (in place)" : "all_gather");
    free(got);
    free(init);
    if (!in_place) dev.i->free(dev.self, send);
    dev.i->free(dev.self, recv);
  }
  free(want);
  free(mine);
}

static void reduce_scatter_case(shardrt__comm *c, shardrt__group g, shardrt_dtype dt, size_t count) {
  int gr = c->rank[g], gsz = c->size[g];
  size_t total = count * (size_t)gsz;
  float *send_v = malloc(total * sizeof *send_v), *want = malloc(count * sizeof *want);
  assert_true(send_v && want);
  for (size_t k = 0; k < total; k++) send_v[k] = value(rank, k);
  for (size_t i = 0; i < count; i++) {
    want[i] = 0.0f;
    for (int j = 0; j < gsz; j++) want[i] += value(member(c, g, j), (size_t)gr * count + i);
  }
  for (int in_place = 0; in_place < 2; in_place++) {
    void *send = upload(send_v, total, dt);
    void *recv = NULL;
    if (in_place) {
      recv = (char *)send + (size_t)gr * count * shardrt_dtype_size(dt);
    } else {
      assert_int_equal(dev.i->alloc(dev.self, count * shardrt_dtype_size(dt), &recv), SHARDRT_OK);
    }
    shardrt__req *req = NULL;
    assert_int_equal(c->i->reduce_scatter(c->self, g, send, recv, count, dt, &req), SHARDRT_OK);
    wait_ok(c, req);
    float *got = download(recv, count, dt);
    expect_values(got, want, count, in_place ? "reduce_scatter (in place)" : "reduce_scatter");
    free(got);
    if (!in_place) dev.i->free(dev.self, recv);
    dev.i->free(dev.self, send);
  }
  free(send_v);
  free(want);
}

static void all_reduce_case(shardrt__comm *c, shardrt__group g, shardrt_dtype dt, size_t count) {
  float *mine = malloc(count * sizeof *mine), *want = malloc(count * sizeof *want);
  assert_true(mine && want);
  for (size_t i = 0; i < count; i++) {
    mine[i] = value(rank, i);
    want[i] = 0.0f;
    for (int j = 0; j < c->size[g]; j++) want[i] += value(member(c, g, j), i);
  }
  void *buf = upload(mine, count, dt);
  shardrt__req *req = NULL;
  assert_int_equal(c->i->all_reduce(c->self, g, buf, count, dt, &req), SHARDRT_OK);
  wait_ok(c, req);
  float *got = download(buf, count, dt);
  expect_values(got, want, count, "all_reduce");
  free(got);
  dev.i->free(dev.self, buf);
  free(mine);
  free(want);
}

static void broadcast_case(shardrt__comm *c, shardrt__group g, shardrt_dtype dt, size_t count) {
  int roots[2] = {0, c->size[g] - 1};
  for (int r = 0; r < 2; r++) {
    int root = roots[r];
    float *mine = malloc(count * sizeof *mine), *want = malloc(count * sizeof *want);
    assert_true(mine && want);
    for (size_t i = 0; i < count; i++) {
      mine[i] = c->rank[g] == root ? value(rank, i) : -1.0f;
      want[i] = value(member(c, g, root), i);
    }
    void *buf = upload(mine, count, dt);
    shardrt__req *req = NULL;
    assert_int_equal(c->i->broadcast(c->self, g, buf, count, dt, root, &req), SHARDRT_OK);
    wait_ok(c, req);
    float *got = download(buf, count, dt);
    expect_values(got, want, count, "broadcast");
    free(got);
    dev.i->free(dev.self, buf);
    free(mine);
    free(want);
  }
}

static void test_all_gather(void **state) { for_all(all_gather_case); }
static void test_reduce_scatter(void **state) { for_all(reduce_scatter_case); }
static void test_all_reduce(void **state) { for_all(all_reduce_case); }
static void test_broadcast(void **state) { for_all(broadcast_case); }

/* The collective's input is produced by asynchronous work on the compute
 * stream and its output consumed by more; several requests are in flight at
 * once. Only the event chain makes this correct. */
static void test_stream_ordering(void **state) {
  shardrt__comm c;
  make_comm(world, &c);
  const size_t n = (size_t)1 << 24;
  float *h = malloc(n * sizeof *h);
  assert_non_null(h);
  for (size_t i = 0; i < n; i++) h[i] = value(rank, i);
  void *f32 = upload(h, n, SHARDRT_F32), *b16[2] = {NULL, NULL};
  shardrt__req *req[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    assert_int_equal(dev.i->alloc(dev.self, n * 2, &b16[k]), SHARDRT_OK);
    assert_int_equal(dev.i->cast(dev.self, b16[k], SHARDRT_BF16, f32, SHARDRT_F32, n), SHARDRT_OK);
    assert_int_equal(dev.i->scale(dev.self, b16[k], SHARDRT_BF16, n, (float)(k + 1)), SHARDRT_OK);
    assert_int_equal(c.i->all_reduce(c.self, SHARDRT__GROUP_WORLD, b16[k], n, SHARDRT_BF16, &req[k]), SHARDRT_OK);
  }
  for (int k = 0; k < 2; k++) {
    wait_ok(&c, req[k]);
    assert_int_equal(dev.i->add(dev.self, f32, SHARDRT_F32, b16[k], SHARDRT_BF16, n), SHARDRT_OK);
  }
  float *got = download(f32, n, SHARDRT_F32);
  for (size_t i = 0; i < n; i++) {
    float sum = 0.0f;
    for (int r = 0; r < world; r++) sum += value(r, i);
    float want = value(rank, i) + 3.0f * sum;
    if (got[i] != want) fail_msg("rank %d element %zu: %g, wanted %g", rank, i, (double)got[i], (double)want);
  }
  free(got);
  free(h);
  for (int k = 0; k < 2; k++) dev.i->free(dev.self, b16[k]);
  dev.i->free(dev.self, f32);
  shardrt__comm_destroy(&c);
}

static void test_host_helpers(void **state) {
  shardrt__comm c;
  make_comm(world > 1 ? 1 : world, &c);
  for (int g = 0; g < SHARDRT__GROUP_COUNT_; g++) {
    double v[2] = {rank + 1.0, 0.5};
    assert_int_equal(c.i->allreduce_host_f64(c.self, (shardrt__group)g, v, 2), SHARDRT_OK);
    double want = 0.0;
    for (int j = 0; j < c.size[g]; j++) want += member(&c, (shardrt__group)g, j) + 1.0;
    assert_true(v[0] == want);
    assert_true(v[1] == 0.5 * c.size[g]);
  }
  int64_t mx[2] = {rank, -(int64_t)rank};
  assert_int_equal(c.i->allreduce_host_max_i64(c.self, mx, 2), SHARDRT_OK);
  assert_int_equal(mx[0], world - 1);
  assert_int_equal(mx[1], 0);
  int mine = rank * 10 + 3, *all = calloc((size_t)world, sizeof *all);
  assert_non_null(all);
  assert_int_equal(c.i->allgather_host(c.self, &mine, all, sizeof mine), SHARDRT_OK);
  for (int r = 0; r < world; r++) assert_int_equal(all[r], r * 10 + 3);
  char msg[32];
  snprintf(msg, sizeof msg, "from rank %d", rank);
  assert_int_equal(c.i->bcast_host(c.self, msg, sizeof msg, world - 1), SHARDRT_OK);
  char want[32];
  snprintf(want, sizeof want, "from rank %d", world - 1);
  assert_string_equal(msg, want);
  assert_int_equal(c.i->barrier(c.self), SHARDRT_OK);
  free(all);
  shardrt__comm_destroy(&c);
}

static void test_bad_input(void **state) {
  shardrt__comm c;
  make_comm(world, &c);
  void *d = NULL;
  assert_int_equal(dev.i->alloc(dev.self, 1024, &d), SHARDRT_OK);
  float host[16] = {0};
  shardrt__req *req = (shardrt__req *)&req;
  expect_error(c.i->all_reduce(c.self, (shardrt__group)5, d, 4, SHARDRT_F32, &req), SHARDRT_ERR_INVALID_ARGUMENT,
               "group 5");
  assert_null(req);
  expect_error(c.i->all_reduce(c.self, SHARDRT__GROUP_WORLD, d, 4, (shardrt_dtype)9, &req),
               SHARDRT_ERR_INVALID_ARGUMENT, "dtype 9");
  expect_error(c.i->all_reduce(c.self, SHARDRT__GROUP_WORLD, host, 4, SHARDRT_F32, &req),
               SHARDRT_ERR_INVALID_ARGUMENT, "host memory");
  expect_error(c.i->broadcast(c.self, SHARDRT__GROUP_WORLD, d, 4, SHARDRT_F32, world, &req),
               SHARDRT_ERR_INVALID_ARGUMENT, "root");
  /* send overlapping recv anywhere but the in-place slot */
  char *recv = d, *bad_send = recv + (size_t)rank * 4 * 4 + 4;
  expect_error(c.i->all_gather(c.self, SHARDRT__GROUP_WORLD, bad_send, recv, 4, SHARDRT_F32, &req),
               SHARDRT_ERR_INVALID_ARGUMENT, "in-place");
  /* nothing to move: no request, nothing to wait for */
  req = (shardrt__req *)&req;
  assert_int_equal(c.i->all_reduce(c.self, SHARDRT__GROUP_WORLD, d, 0, SHARDRT_F32, &req), SHARDRT_OK);
  assert_null(req);
  assert_int_equal(c.i->wait(c.self, NULL), SHARDRT_OK);
  /* a request is waited exactly once */
  assert_int_equal(c.i->all_reduce(c.self, SHARDRT__GROUP_WORLD, d, 4, SHARDRT_F32, &req), SHARDRT_OK);
  wait_ok(&c, req);
  expect_error(c.i->wait(c.self, req), SHARDRT_ERR_STATE, "already waited");
  assert_int_equal(c.i->allreduce_host_f64(c.self, (shardrt__group)3, (double[1]){0}, 1), SHARDRT_ERR_INVALID_ARGUMENT);
  dev.i->free(dev.self, d);
  shardrt__comm_destroy(&c);
}

/* More ranks than GPUs on this node: ranks share a device, which NCCL
 * cannot run; every rank must get the same clear refusal. */
static void test_shared_gpu_refused(void **state) {
  shardrt__comm c;
  shardrt__comm_args a = {.mpi_comm = NULL, .shard_group_size = world, .dev = &dev};
  expect_error(shardrt__comm_nccl_create(&a, &c), SHARDRT_ERR_UNSUPPORTED, "--comm mpi");
  if (!strstr(shardrt_last_error(), "same physical device"))
    fail_msg("refusal does not say why: %s", shardrt_last_error());
  assert_null(c.i);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  int count = shardrt__cuda_device_count();
  if (count == 0) {
    if (rank == 0) printf("no CUDA GPU: skipped\n");
    MPI_Finalize();
    return 77;
  }
  MPI_Comm node;
  int local = 0, local_size = 1;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local);
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  if (shardrt__device_cuda_create(local % count, &dev) != SHARDRT_OK) {
    fprintf(stderr, "rank %d: cuda device: %s\n", rank, shardrt_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int failed;
  if (local_size > count) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_shared_gpu_refused)};
    failed = cmocka_run_group_tests(tests, NULL, NULL);
  } else {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),      cmocka_unit_test(test_all_gather),
        cmocka_unit_test(test_reduce_scatter), cmocka_unit_test(test_all_reduce),
        cmocka_unit_test(test_broadcast),   cmocka_unit_test(test_stream_ordering),
        cmocka_unit_test(test_host_helpers), cmocka_unit_test(test_bad_input),
    };
    failed = cmocka_run_group_tests(tests, NULL, NULL);
  }
  shardrt__device_destroy(&dev);
  MPI_Finalize();
  return failed ? 1 : 0;
}
