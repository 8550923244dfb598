/* SPDX-License-Identifier: Apache-2.0 */
/* Context lifetime: MPI, device and comm backend choice, registry storage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/ctx.h"
#include "src/core/sync.h"
#include "src/core/schedule.h"
#include "src/core/trace.h"
#include "src/strategy/strategy.h"

void shardrt_ctx_params_default(shardrt_ctx_params *p) {
  memset(p, 0, sizeof *p);
  p->struct_size = sizeof *p;
  p->device = "auto";
  p->comm = "auto";
  p->fail_alloc_after = -1;
}

static shardrt_status pick_device(shardrt_ctx *ctx, const char *want, int local_size) {
  int ngpu = shardrt__cuda_device_count();
  /* use_cpu (accelerate's --cpu) makes "auto" mean the CPU. */
  if (!want || strcmp(want, "auto") == 0) want = (ngpu > 0 && !ctx->plan.use_cpu) ? "cuda" : "cpu";
  if (strcmp(want, "cpu") == 0) return shardrt__device_cpu_create(&ctx->dev);
  if (strcmp(want, "cuda") != 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "device '%s' is not a device (allowed: cpu, cuda, auto)", want);
  if (ngpu <= 0)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                          "device 'cuda' was asked for but no CUDA GPU is visible on this machine%s (use --device cpu)",
#ifdef SHARDRT_HAVE_CUDA
                          ""
#else
                          " and libshardrt was built without CUDA"
#endif
    );
  (void)local_size;
  return shardrt__device_cuda_create(ctx->local_rank % ngpu, &ctx->dev);
}

static shardrt_status pick_comm(shardrt_ctx *ctx, const char *want, void *mpi_comm, int local_size) {
  (void)mpi_comm; /* the groups come from the runtime's host-ordered world */
  shardrt__comm_args a = {.mpi_comm = &ctx->mpi_world,
                          .shard_group_size = ctx->plan.shard_group_size,
                          .dev = &ctx->dev,
                          .timeout_s = ctx->coll_timeout_s};
  int ngpu = ctx->dev.is_cuda ? shardrt__cuda_device_count() : 0;
  if (!want || strcmp(want, "auto") == 0) {
    /* NCCL needs one GPU per rank; ranks sharing a GPU go through MPI. */
    want = (ctx->dev.is_cuda && local_size <= ngpu) ? "nccl" : "mpi";
  }
  snprintf(ctx->comm_name, sizeof ctx->comm_name, "%s", want);
  if (strcmp(want, "mpi") == 0) return shardrt__comm_mpi_create(&a, &ctx->comm);
  if (strcmp(want, "nccl") != 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "comm backend '%s' is unknown (allowed: auto, mpi, nccl)",
                          want);
  if (!ctx->dev.is_cuda)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                          "comm backend 'nccl' needs the cuda device (device is cpu); use --comm mpi");
  return shardrt__comm_nccl_create(&a, &ctx->comm);
}

shardrt_status shardrt_ctx_create(const shardrt_ctx_params *p, shardrt_ctx **out) {
  shardrt_ctx_params defaults;
  if (!out) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_ctx_create: out is NULL");
  *out = NULL;
  if (!p) {
    shardrt_ctx_params_default(&defaults);
    p = &defaults;
  }
  if (p->struct_size != sizeof *p)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "shardrt_ctx_params.struct_size is %u, this library expects %zu: "
                          "initialise it with shardrt_ctx_params_default()",
                          p->struct_size, sizeof *p);
  shardrt_status rc = SHARDRT_OK;
  shardrt_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "context allocation failed");
  ctx->mpi_world = ctx->mpi_shard = MPI_COMM_NULL;
  ctx->fail_alloc_after = p->fail_alloc_after;
  if (p->plan) {
    if (p->plan->struct_size != sizeof(shardrt_plan)) {
      free(ctx);
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                            "shardrt_plan.struct_size is %u, expected %zu: start from shardrt_plan_default()",
                            p->plan->struct_size, sizeof(shardrt_plan));
    }
    ctx->plan = *p->plan;
  } else {
    shardrt_plan_default(&ctx->plan);
  }

  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided;
    /* MULTIPLE lets the mpi backend progress collectives from a thread of
     * its own while the program computes (src/comm/mpi.c). */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
      free(ctx);
      return shardrt__error(SHARDRT_ERR_COMM, "MPI_Init_thread failed");
    }
    ctx->own_mpi = true;
  }
  MPI_Comm base = p->mpi_comm ? *(MPI_Comm *)p->mpi_comm : MPI_COMM_WORLD;
  /* The world communicator numbers ranks host by host, so that consecutive
   * shard groups are groups inside a host (src/core/layout.c). */
  SHARDRT__CHECK_GOTO(shardrt__layout_setup(ctx, base), rc, fail);
  MPI_Comm_rank(ctx->mpi_world, &ctx->rank);
  MPI_Comm_size(ctx->mpi_world, &ctx->world);
  int local_size = ctx->local_size;

  /* Every rank resolves the same plan; a failure is the same everywhere. */
  SHARDRT__CHECK_GOTO(shardrt_plan_resolve(&ctx->plan, ctx->world), rc, fail);
  SHARDRT__CHECK_GOTO(shardrt__layout_check_groups(ctx), rc, fail);
  MPI_Comm_split(ctx->mpi_world, ctx->rank / ctx->plan.shard_group_size, ctx->rank, &ctx->mpi_shard);

  SHARDRT__CHECK_GOTO(shardrt__sync_setup(ctx), rc, fail);
  SHARDRT__CHECK_GOTO(shardrt__device_cpu_create(&ctx->host), rc, fail);
  /* Device availability can differ per rank: agree on the outcome. */
  rc = pick_device(ctx, p->device, local_size);
  {
    int bad = rc != SHARDRT_OK, any = 0;
    shardrt_status arc = shardrt__allreduce_timed(ctx, SHARDRT__PT_SETUP, &bad, &any, 1, MPI_INT, MPI_MAX, ctx->mpi_world,
                                                  "shardrt_ctx_create (device agreement)");
    if (arc != SHARDRT_OK) rc = arc;
    else if (any && !bad) rc = shardrt__error(SHARDRT_ERR_DEVICE, "device setup failed on another rank");
    if (rc != SHARDRT_OK) goto fail;
  }
  rc = pick_comm(ctx, p->comm, p->mpi_comm, local_size);
  {
    int bad = rc != SHARDRT_OK, any = 0;
    shardrt_status arc = shardrt__allreduce_timed(ctx, SHARDRT__PT_SETUP, &bad, &any, 1, MPI_INT, MPI_MAX, ctx->mpi_world,
                                                  "shardrt_ctx_create (comm agreement)");
    if (arc != SHARDRT_OK) rc = arc;
    else if (any && !bad) rc = shardrt__error(SHARDRT_ERR_COMM, "comm backend setup failed on another rank");
    if (rc != SHARDRT_OK) goto fail;
  }
  shardrt__optim_init(ctx);
  ctx->micro_count = 1;
  ctx->loss_scale = ctx->plan.loss_scaling
                        ? (ctx->plan.loss_scale > 0 ? ctx->plan.loss_scale : (double)(1ull << ctx->plan.initial_scale_power))
                        : 1.0;
  ctx->hysteresis_left = ctx->plan.hysteresis;
  *out = ctx;
  return SHARDRT_OK;
fail:
  shardrt_ctx_destroy(ctx);
  return rc;
}

void shardrt_ctx_destroy(shardrt_ctx *ctx) {
  if (!ctx) return;
  shardrt__trace_close(ctx->trace);
  ctx->trace = NULL; /* the waits below would trace into the closed file */
  for (int i = 0; i < ctx->nunits; i++) {
    shardrt__unit *u = &ctx->units[i];
    /* After a timeout the backend gives pending requests up at once; MPI may
     * still write into the unit's buffers, so they are left allocated. */
    if (u->gather_req) shardrt__wait(ctx, &u->gather_req, SHARDRT_COLL_ALL_GATHER);
    if (u->reduce_req) shardrt__wait(ctx, &u->reduce_req, SHARDRT_COLL_REDUCE_SCATTER);
    if (u->replica_req) shardrt__wait(ctx, &u->replica_req, SHARDRT_COLL_ALL_REDUCE);
    if (ctx->comm_broken) continue;
    if (!u->full_alias) shardrt__buf_free(ctx, &u->full);
    if (!u->gview_alias && u->gview.p != u->grad.p) shardrt__buf_free(ctx, &u->gview);
    if (!u->accum_alias) shardrt__buf_free(ctx, &u->accum);
    if (u->red.p != u->grad.p) shardrt__buf_free(ctx, &u->red); /* else it is the grad store */
    shardrt__buf_free(ctx, &u->red_out);
    shardrt__buf *persist[] = {&u->param, &u->master, &u->grad, &u->m, &u->v};
    for (size_t k = 0; k < sizeof persist / sizeof persist[0]; k++) shardrt__buf_free(ctx, persist[k]);
    free(u->params);
    free(u->name);
  }
  free(ctx->units);
  free(ctx->inflight);
  if (!ctx->comm_broken) shardrt__stage_release(ctx);
  shardrt__pool_release(ctx); /* idle buffers: no collective writes into them */
  for (int i = 0; i < ctx->nmodules; i++) {
    free(ctx->modules[i].name);
    free(ctx->modules[i].cls);
  }
  free(ctx->modules);
  for (int i = 0; i < ctx->nparams; i++) free(ctx->params[i].name);
  free(ctx->params);
  free(ctx->order);
  if (ctx->dev.i) ctx->dev.i->sync(ctx->dev.self);
  shardrt__comm_destroy(&ctx->comm);
  shardrt__device_destroy(&ctx->dev);
  int finalized = 0;
  MPI_Finalized(&finalized);
  /* A timed-out collective is still pending on some rank: freeing
   * communicators or finalising could wait for it forever. */
  if (!finalized && !ctx->comm_broken) {
    if (ctx->mpi_shard != MPI_COMM_NULL) MPI_Comm_free(&ctx->mpi_shard);
    if (ctx->mpi_world != MPI_COMM_NULL) MPI_Comm_free(&ctx->mpi_world);
    if (ctx->own_mpi) MPI_Finalize();
  }
  free(ctx->host_of);
  free(ctx);
}

int shardrt_rank(const shardrt_ctx *ctx) { return ctx->rank; }
int shardrt_world_size(const shardrt_ctx *ctx) { return ctx->world; }
int shardrt_local_rank(const shardrt_ctx *ctx) { return ctx->local_rank; }
shardrt_device_kind shardrt_device(const shardrt_ctx *ctx) {
  return ctx->dev.is_cuda ? SHARDRT_DEVICE_CUDA : SHARDRT_DEVICE_CPU;
}
const char *shardrt_comm_name(const shardrt_ctx *ctx) { return ctx->comm_name; }
const shardrt_plan *shardrt_get_plan(const shardrt_ctx *ctx) { return &ctx->plan; }
void *shardrt_cuda_stream(const shardrt_ctx *ctx) {
  return ctx->dev.i->stream ? ctx->dev.i->stream(ctx->dev.self) : NULL;
}

void shardrt_mem_stats_get(const shardrt_ctx *ctx, shardrt_mem_stats *out) {
  memset(out, 0, sizeof *out);
  out->params = ctx->mem[SHARDRT__MEM_PARAMS];
  out->grads = ctx->mem[SHARDRT__MEM_GRADS];
  out->master = ctx->mem[SHARDRT__MEM_MASTER];
  out->optimizer = ctx->mem[SHARDRT__MEM_OPTIM];
  out->model_state = out->params + out->grads + out->master + out->optimizer;
  out->gathered = ctx->mem[SHARDRT__MEM_GATHERED];
  out->offloaded = ctx->mem_offloaded;
  out->pooled = ctx->pool.idle_bytes;
  out->current = ctx->mem_current + ctx->pool.idle_bytes;
  out->peak = ctx->mem_peak;
}
void shardrt_mem_stats_reset_peak(shardrt_ctx *ctx) { ctx->mem_peak = ctx->mem_current + ctx->pool.idle_bytes; }

shardrt_status shardrt_trace_start(shardrt_ctx *ctx, const char *path) {
  if (!ctx || !path) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_trace_start: NULL argument");
  SHARDRT__CHECK(shardrt_trace_stop(ctx));
  return shardrt__trace_open(&ctx->trace, path, ctx->rank, ctx->world);
}
shardrt_status shardrt_trace_stop(shardrt_ctx *ctx) {
  shardrt_status rc = shardrt__trace_close(ctx->trace);
  ctx->trace = NULL;
  return rc;
}
void shardrt_trace_span(shardrt_ctx *ctx, const char *name, double t0, double t1) {
  if (ctx) shardrt__trace_span(ctx->trace, "compute", name, t0, t1, 0);
}
double shardrt_now(void) { return shardrt__now(); }

void shardrt_optim_params_default(shardrt_optim_params *p) {
  memset(p, 0, sizeof *p);
  p->kind = SHARDRT_OPTIM_ADAMW;
  p->lr = 1e-3;
  p->beta1 = 0.9;
  p->beta2 = 0.999;
  p->eps = 1e-8;
  p->weight_decay = 0.01;
}

shardrt_status shardrt_set_optimizer(shardrt_ctx *ctx, const shardrt_optim_params *p) {
  if (!ctx || !p) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_set_optimizer: NULL argument");
  if (ctx->finalized)
    return shardrt__error(SHARDRT_ERR_STATE, "shardrt_set_optimizer must be called before shardrt_finalize");
  if (p->kind != SHARDRT_OPTIM_ADAMW && p->kind != SHARDRT_OPTIM_SGD)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "optimizer kind %d is unknown (ADAMW=0, SGD=1)", (int)p->kind);
  if (!(p->lr >= 0) || !(p->weight_decay >= 0) || !(p->momentum >= 0) ||
      (p->kind == SHARDRT_OPTIM_ADAMW && (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1) ||
                                          !(p->eps > 0))))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "optimizer hyper-parameters out of range (lr %g, betas %g/%g, eps %g, weight_decay %g, "
                          "momentum %g): lr, weight_decay, momentum >= 0, betas in [0,1), eps > 0",
                          p->lr, p->beta1, p->beta2, p->eps, p->weight_decay, p->momentum);
  ctx->prog_opt = *p;
  shardrt__optim_refresh(ctx);
  return SHARDRT_OK;
}

shardrt_status shardrt_set_lr(shardrt_ctx *ctx, double lr) {
  if (!(lr >= 0)) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "learning rate %g must be >= 0", lr);
  ctx->prog_opt.lr = lr;
  shardrt__optim_refresh(ctx);
  return SHARDRT_OK;
}

double shardrt_loss_scale(const shardrt_ctx *ctx) { return ctx->loss_scale; }

shardrt_status shardrt_allreduce_sum_f64(shardrt_ctx *ctx, double *vals, int n) {
  if (!ctx || (!vals && n > 0) || n < 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_allreduce_sum_f64: bad arguments");
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_USER_ALLREDUCE, NULL, n, 0, 0));
  SHARDRT__CHECK(shardrt__sync_point(ctx, SHARDRT__PT_PROGRAM));
  MPI_Request r; /* bounded by SHARDRT_COLL_TIMEOUT_S like every collective */
  if (MPI_Iallreduce(MPI_IN_PLACE, vals, n, MPI_DOUBLE, MPI_SUM, ctx->mpi_world, &r) != MPI_SUCCESS)
    return shardrt__error(SHARDRT_ERR_COMM, "shardrt_allreduce_sum_f64: MPI_Iallreduce failed");
  return shardrt__mpi_complete(ctx, &r, "shardrt_allreduce_sum_f64");
}
