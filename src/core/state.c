/* SPDX-License-Identifier: Apache-2.0 */
/* Parameter values in and out (set, get, root scatter/gather) and the
 * optimizer-state access that checkpoints use (src/core/state.h). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/ctx.h"
#include "src/core/shard.h"
#include "src/core/state.h"
#include "src/core/sync.h"
#include "src/strategy/strategy.h"

/* A blocking collective of this file, bounded by SHARDRT_COLL_TIMEOUT_S. */
static shardrt_status finish(shardrt_ctx *ctx, int e, MPI_Request *r, const char *what) {
  if (e != MPI_SUCCESS) return shardrt__error(SHARDRT_ERR_COMM, "%s failed to start (MPI error %d)", what, e);
  return shardrt__mpi_complete(ctx, r, what);
}

static shardrt_status check_param(const shardrt_ctx *ctx, int pid, const char *fn) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "%s: ctx is NULL", fn);
  if (!ctx->finalized) return shardrt__error(SHARDRT_ERR_STATE, "%s: call shardrt_finalize first", fn);
  if (pid < 0 || pid >= ctx->nparams)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "%s: parameter id %d out of range (0..%d)", fn, pid,
                          ctx->nparams - 1);
  return SHARDRT_OK;
}

/* Writes `n` values of unit flat coordinates [off, off+n) into every stored
 * copy this rank owns: the stored params (full or shard) and the master. */
static shardrt_status store_range(shardrt_ctx *ctx, shardrt__unit *u, int64_t off, int64_t n, const float *v) {
  if (u->phase != SHARDRT__IDLE)
    return shardrt__error(SHARDRT_ERR_STATE, "setting parameters of unit '%s' while it is in %s: set them between steps",
                          u->name, u->phase == SHARDRT__FORWARD ? "forward" : "backward");
  int64_t c0 = u->shard_params ? u->shard_off : 0, c1 = u->shard_params ? u->shard_off + u->shard_n : u->padded;
  int64_t s;
  int64_t len = shardrt__overlap(off, off + n, c0, c1, &s);
  if (len) SHARDRT__CHECK(shardrt__buf_write_f32(ctx, &u->param, s - c0, len, v + (s - off)));
  if (u->master.p) {
    len = shardrt__overlap(off, off + n, u->opt_off, u->opt_off + u->opt_n, &s);
    if (len) SHARDRT__CHECK(shardrt__buf_write_f32(ctx, &u->master, s - u->opt_off, len, v + (s - off)));
  }
  return shardrt__full_drop(ctx, u);
}

shardrt_status shardrt_param_set(shardrt_ctx *ctx, int pid, const float *values) {
  SHARDRT__CHECK(check_param(ctx, pid, "shardrt_param_set"));
  if (!values) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_param_set: values is NULL");
  const shardrt__param *p = &ctx->params[pid];
  return store_range(ctx, &ctx->units[p->unit], p->offset, p->numel, values);
}

shardrt_status shardrt_param_set_from_root(shardrt_ctx *ctx, int pid, const float *values, int root) {
  SHARDRT__CHECK(check_param(ctx, pid, "shardrt_param_set_from_root"));
  if (root < 0 || root >= ctx->world)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_param_set_from_root: root %d is not a rank (0..%d)",
                          root, ctx->world - 1);
  int missing = ctx->rank == root && !values, any = 0;
  MPI_Request r;
  SHARDRT__CHECK(shardrt__sync_point(ctx, SHARDRT__PT_STATE));
  SHARDRT__CHECK(finish(ctx, MPI_Iallreduce(&missing, &any, 1, MPI_INT, MPI_MAX, ctx->mpi_world, &r), &r,
                        "shardrt_param_set_from_root (argument check)"));
  if (any) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_param_set_from_root: root passed NULL values");
  const shardrt__param *p = &ctx->params[pid];
  float *buf = ctx->rank == root ? (float *)values : malloc(sizeof(float) * (size_t)p->numel);
  if (!buf) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "shardrt_param_set_from_root: %lld floats", (long long)p->numel);
  shardrt_status rc = SHARDRT_OK;
  for (int64_t done = 0; done < p->numel && rc == SHARDRT_OK;) {
    int chunk = (int)((p->numel - done) > (1 << 28) ? (1 << 28) : (p->numel - done));
    rc = finish(ctx, MPI_Ibcast(buf + done, chunk, MPI_FLOAT, root, ctx->mpi_world, &r), &r,
                "shardrt_param_set_from_root (broadcast)");
    done += chunk;
  }
  if (ctx->comm_broken) return rc; /* MPI may still write into buf */
  if (rc == SHARDRT_OK) rc = store_range(ctx, &ctx->units[p->unit], p->offset, p->numel, buf);
  if (buf != values) free(buf);
  return rc;
}

/* ---- state.h ---- */

bool shardrt__state_has(const shardrt_ctx *ctx, shardrt__role role) {
  if (role == SHARDRT__ROLE_PARAM) return true;
  if (ctx->nunits == 0) return false;
  return role == SHARDRT__ROLE_EXP_AVG ? ctx->units[0].m.p != NULL : ctx->units[0].v.p != NULL;
}

static shardrt__buf *role_buf(shardrt__unit *u, shardrt__role role, int64_t *base) {
  *base = u->opt_off;
  if (role == SHARDRT__ROLE_EXP_AVG) return &u->m;
  if (role == SHARDRT__ROLE_EXP_AVG_SQ) return &u->v;
  if (u->master.p) return &u->master;
  *base = u->shard_params ? u->shard_off : 0;
  return &u->param;
}

shardrt_dtype shardrt__state_dtype(const shardrt_ctx *ctx, shardrt__role role) {
  int64_t base;
  if (ctx->nunits == 0) return SHARDRT_F32;
  return role_buf((shardrt__unit *)&ctx->units[0], role, &base)->dt;
}

void shardrt__state_range(const shardrt_ctx *ctx, int unit, int64_t *begin, int64_t *end) {
  const shardrt__unit *u = &ctx->units[unit];
  int64_t s;
  int64_t n = shardrt__overlap(u->opt_off, u->opt_off + u->opt_n, 0, u->numel, &s);
  *begin = n ? s : 0;
  *end = n ? s + n : 0;
}

static shardrt_status role_io(shardrt_ctx *ctx, int unit, shardrt__role role, int64_t begin, int64_t n, float *rd,
                              const float *wr) {
  SHARDRT__CHECK(shardrt__check_unit(ctx, unit, "checkpoint state access"));
  shardrt__unit *u = &ctx->units[unit];
  int64_t b, e;
  shardrt__state_range(ctx, unit, &b, &e);
  if (begin < b || begin + n > e || n < 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "state range [%lld, %lld) of unit '%s' is outside this rank's "
                          "range [%lld, %lld)", (long long)begin, (long long)(begin + n), u->name, (long long)b,
                          (long long)e);
  int64_t base;
  shardrt__buf *buf = role_buf(u, role, &base);
  if (!buf->p) return shardrt__error(SHARDRT_ERR_NOT_FOUND, "unit '%s' has no state of role %d", u->name, (int)role);
  if (rd) return shardrt__buf_read_f32(ctx, buf, begin - base, n, rd);
  return shardrt__buf_write_f32(ctx, buf, begin - base, n, wr);
}

shardrt_status shardrt__state_read(shardrt_ctx *ctx, int unit, shardrt__role role, int64_t begin, int64_t n,
                                   float *out) {
  return role_io(ctx, unit, role, begin, n, out, NULL);
}
shardrt_status shardrt__state_write(shardrt_ctx *ctx, int unit, shardrt__role role, int64_t begin, int64_t n,
                                    const float *in) {
  return role_io(ctx, unit, role, begin, n, NULL, in);
}

shardrt_status shardrt__state_refresh(shardrt_ctx *ctx) {
  for (int i = 0; i < ctx->nunits; i++) {
    shardrt__unit *u = &ctx->units[i];
    if (u->master.p)
      SHARDRT__CHECK(shardrt__buf_cast(ctx, &u->param, u->shard_params ? 0 : u->opt_off, &u->master, 0, u->opt_n));
    if (!u->shard_params && u->shard_optim) SHARDRT__CHECK(shardrt__allgather_params(ctx, u));
    SHARDRT__CHECK(shardrt__full_drop(ctx, u));
  }
  return ctx->dev.i->sync(ctx->dev.self);
}

/* The optimizer partitions of the ranks of this rank's shard group, in
 * group order, concatenated, are the padded unit: gather them. */
/* MPI counts and displacements are ints; every rank decides alike. */
static shardrt_status fits_int(const shardrt__unit *u, const char *what) {
  if (u->padded > INT_MAX)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                          "%s: unit '%s' has %lld elements, more than MPI's int count: split it (wrap policy)", what,
                          u->name, (long long)u->padded);
  return SHARDRT_OK;
}

shardrt_status shardrt__unit_gather_to_root(shardrt_ctx *ctx, int unit, int root, float *out) {
  SHARDRT__CHECK(shardrt__check_unit(ctx, unit, "shardrt__unit_gather_to_root"));
  shardrt__unit *u = &ctx->units[unit];
  SHARDRT__CHECK(fits_int(u, "gather to root"));
  SHARDRT__CHECK(shardrt__sync_point(ctx, SHARDRT__PT_STATE)); /* every rank: collective even where no data moves */
  int g = ctx->plan.shard_group_size;
  bool in_root_group = ctx->rank / g == root / g;
  if (!u->shard_optim) {
    if (ctx->rank == root) {
      int64_t base;
      shardrt__buf *b = role_buf(u, SHARDRT__ROLE_PARAM, &base);
      return shardrt__buf_read_f32(ctx, b, 0, u->numel, out);
    }
    return SHARDRT_OK;
  }
  if (!in_root_group) return SHARDRT_OK;
  float *mine = malloc(sizeof(float) * (size_t)u->opt_n);
  float *all = ctx->rank == root ? malloc(sizeof(float) * (size_t)u->padded) : NULL;
  shardrt_status rc = SHARDRT_OK;
  if (!mine || (ctx->rank == root && !all)) rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "unit gather buffers");
  int64_t base;
  shardrt__buf *b = role_buf(u, SHARDRT__ROLE_PARAM, &base);
  if (rc == SHARDRT_OK) rc = shardrt__buf_read_f32(ctx, b, u->opt_off - base, u->opt_n, mine);
  /* Everyone in the group joins the gather even after a local failure. */
  MPI_Request r;
  shardrt_status grc = finish(ctx, MPI_Igather(mine, (int)u->opt_n, MPI_FLOAT, all, (int)u->opt_n, MPI_FLOAT, root % g, ctx->mpi_shard, &r),
                 &r, "the gather of a unit to one rank");
  if (grc != SHARDRT_OK && ctx->comm_broken) return grc; /* buffers stay with MPI */
  if (grc != SHARDRT_OK && rc == SHARDRT_OK) rc = grc;
  if (rc == SHARDRT_OK && all) memcpy(out, all, sizeof(float) * (size_t)u->numel);
  free(mine);
  free(all);
  return rc;
}

shardrt_status shardrt__unit_scatter_from_root(shardrt_ctx *ctx, int unit, int root, const float *in) {
  SHARDRT__CHECK(shardrt__check_unit(ctx, unit, "shardrt__unit_scatter_from_root"));
  shardrt__unit *u = &ctx->units[unit];
  SHARDRT__CHECK(fits_int(u, "scatter from root"));
  int64_t n = u->opt_n;
  float *mine = malloc(sizeof(float) * (size_t)n);
  float *send = NULL;
  int *counts = NULL, *displs = NULL;
  shardrt_status rc = SHARDRT_OK;
  if (!mine) rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "unit scatter buffer");
  if (ctx->rank == root && rc == SHARDRT_OK) {
    /* Every rank's range is its optimizer partition of the padded unit. */
    send = calloc((size_t)u->padded, sizeof(float));
    counts = malloc(sizeof(int) * (size_t)ctx->world);
    displs = malloc(sizeof(int) * (size_t)ctx->world);
    if (!send || !counts || !displs) rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "unit scatter tables");
    else {
      memcpy(send, in, sizeof(float) * (size_t)u->numel);
      int g = ctx->plan.shard_group_size;
      for (int r = 0; r < ctx->world; r++) {
        counts[r] = (int)n;
        displs[r] = u->shard_optim ? (int)((r % g) * u->shard_n) : 0;
      }
    }
  }
  int bad = rc != SHARDRT_OK, any = 0;
  MPI_Request r;
  shardrt_status crc = shardrt__sync_point(ctx, SHARDRT__PT_STATE);
  if (crc == SHARDRT_OK)
    crc = finish(ctx, MPI_Iallreduce(&bad, &any, 1, MPI_INT, MPI_MAX, ctx->mpi_world, &r), &r,
                 "the scatter of a unit from one rank (status agreement)");
  if (crc == SHARDRT_OK && !any)
    crc = finish(ctx, MPI_Iscatterv(send, counts, displs, MPI_FLOAT, mine, (int)n, MPI_FLOAT, root, ctx->mpi_world, &r), &r,
                 "the scatter of a unit from one rank");
  if (crc != SHARDRT_OK) return crc; /* broken: buffers stay with MPI */
  if (any && rc == SHARDRT_OK) rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "unit scatter failed on another rank");
  if (rc == SHARDRT_OK) {
    int64_t base;
    shardrt__buf *b = role_buf(u, SHARDRT__ROLE_PARAM, &base);
    rc = shardrt__buf_write_f32(ctx, b, u->opt_off - base, n, mine);
  }
  free(mine);
  free(send);
  free(counts);
  free(displs);
  return rc;
}

shardrt_status shardrt_param_get(shardrt_ctx *ctx, int pid, float *out) {
  SHARDRT__CHECK(check_param(ctx, pid, "shardrt_param_get"));
  if (!out) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_param_get: out is NULL");
  const shardrt__param *p = &ctx->params[pid];
  shardrt__unit *u = &ctx->units[p->unit];
  SHARDRT__CHECK(fits_int(u, "shardrt_param_get"));
  float *full = malloc(sizeof(float) * (size_t)u->padded);
  if (!full) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "shardrt_param_get: %lld floats", (long long)u->padded);
  shardrt_status rc = shardrt__unit_gather_to_root(ctx, p->unit, 0, ctx->rank == 0 ? full : NULL);
  MPI_Request r;
  if (rc == SHARDRT_OK)
    rc = finish(ctx, MPI_Ibcast(full + p->offset, (int)p->numel, MPI_FLOAT, 0, ctx->mpi_world, &r), &r,
                "shardrt_param_get (broadcast)");
  if (ctx->comm_broken) return rc;
  if (rc == SHARDRT_OK) memcpy(out, full + p->offset, sizeof(float) * (size_t)p->numel);
  free(full);
  return rc;
}

void shardrt__train_state_get(const shardrt_ctx *ctx, shardrt__train_state *out) {
  out->step = ctx->step;
  out->loss_scale = ctx->loss_scale;
  out->good_steps = ctx->good_steps;
  out->hysteresis_left = ctx->hysteresis_left;
}

void shardrt__train_state_set(shardrt_ctx *ctx, const shardrt__train_state *in) {
  ctx->step = in->step;
  ctx->loss_scale = in->loss_scale;
  ctx->good_steps = in->good_steps;
  ctx->hysteresis_left = in->hysteresis_left;
}

struct shardrt__comm *shardrt__ctx_comm(shardrt_ctx *ctx) { return &ctx->comm; }
struct shardrt__device *shardrt__ctx_device(shardrt_ctx *ctx) { return &ctx->dev; }
