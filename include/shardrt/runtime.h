/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime: a context, the model registry, units, the unit lifecycle and
 * the optimizer step.
 *
 * Contract with the training program (there is no autograd in C):
 *  - the program owns the forward/backward math and the activations;
 *  - libshardrt owns parameters, gradients, optimizer state and every
 *    collective.
 *  - Between shardrt_begin_forward(u) and shardrt_end_forward(u) the full
 *    parameters of unit u are readable through shardrt_param_view();
 *    between shardrt_begin_backward(u) and shardrt_end_backward(u) they are
 *    readable again and shardrt_grad_view() gives the unit's gradient
 *    buffers, into which the program ADDS its gradients (they start at zero).
 *  - Gradients are SUMMED over ranks and micro-batches: scale the loss so the
 *    sum is the gradient wanted (for a global-mean loss, divide by the global
 *    batch). With fp16 loss scaling also multiply by shardrt_loss_scale().
 *  - Calls marked "collective" must be made by every rank of the context in
 *    the same order.
 */
#ifndef SHARDRT_RUNTIME_H
#define SHARDRT_RUNTIME_H

#include "shardrt/plan.h"
#include "shardrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shardrt_ctx shardrt_ctx;

typedef enum shardrt_device_kind { SHARDRT_DEVICE_CPU = 0, SHARDRT_DEVICE_CUDA = 1 } shardrt_device_kind;

typedef struct shardrt_ctx_params {
  uint32_t struct_size;   /* sizeof(shardrt_ctx_params), set by the defaults function */
  const char *device;     /* "cpu", "cuda", or "auto" (cuda when a GPU is present) */
  const char *comm;       /* "auto" (nccl on cuda, else mpi), "mpi", "nccl" */
  const shardrt_plan *plan; /* copied; NULL = shardrt_plan_default() */
  void *mpi_comm;         /* optional MPI_Comm* to use instead of MPI_COMM_WORLD */
  int fail_alloc_after;   /* testing: the N+1-th allocation fails; <0 = never */
} shardrt_ctx_params;

SHARDRT_API void shardrt_ctx_params_default(shardrt_ctx_params *p);

/* Collective over the MPI communicator. Initialises MPI when the program has
 * not (and then finalises it in destroy). Resolves the plan against the
 * world size. On failure *out is NULL and shardrt_last_error() says why. */
SHARDRT_API shardrt_status shardrt_ctx_create(const shardrt_ctx_params *p, shardrt_ctx **out);
/* NULL-safe. Frees every buffer the context owns. */
SHARDRT_API void shardrt_ctx_destroy(shardrt_ctx *ctx);

SHARDRT_API int shardrt_rank(const shardrt_ctx *ctx);
SHARDRT_API int shardrt_world_size(const shardrt_ctx *ctx);
SHARDRT_API int shardrt_local_rank(const shardrt_ctx *ctx);
/* Hosts the ranks run on (MPI's shared-memory split). libshardrt numbers its
 * ranks host by host: shardrt_rank() is the MPI rank when the launch placed
 * ranks contiguously by host (shardrt launch does), else it is renumbered. */
SHARDRT_API int shardrt_num_hosts(const shardrt_ctx *ctx);
SHARDRT_API shardrt_device_kind shardrt_device(const shardrt_ctx *ctx);
SHARDRT_API const char *shardrt_comm_name(const shardrt_ctx *ctx); /* "mpi" | "nccl" */
SHARDRT_API const shardrt_plan *shardrt_get_plan(const shardrt_ctx *ctx);
/* The CUDA stream (cudaStream_t) the program must run its kernels on; NULL on cpu. */
SHARDRT_API void *shardrt_cuda_stream(const shardrt_ctx *ctx);

/* ---- model registry (before finalize) ---- */

/* Registers a module. Dotted names nest: "h.0.attn" belongs to "h.0".
 * class_name is what the wrap policy matches. Registration order is the
 * default forward order. */
SHARDRT_API shardrt_status shardrt_add_module(shardrt_ctx *ctx, const char *name,
                                              const char *class_name, int *module_id);
/* Registers a parameter of a module; its full name is "<module>.<name>". */
SHARDRT_API shardrt_status shardrt_add_param(shardrt_ctx *ctx, int module_id, const char *name,
                                             int ndim, const int64_t *shape, int *param_id);
/* Declares the model's block classes: comma-separated class names (as given
 * to shardrt_add_module) of the modules that must not be split across units
 * — the C counterpart of a transformers model's _no_split_modules. A plan
 * with TRANSFORMER_BASED_WRAP and no fsdp_transformer_layer_cls_to_wrap
 * wraps every module of these classes, as accelerate does; class names the
 * config gives win. Before shardrt_finalize; a later call replaces the list.
 * Copies the string. */
SHARDRT_API shardrt_status shardrt_set_block_classes(shardrt_ctx *ctx, const char *class_names);
/* Collective. Checks every rank registered the same model, forms units by the
 * wrap policy, allocates the flat buffers (zero-filled). */
SHARDRT_API shardrt_status shardrt_finalize(shardrt_ctx *ctx);

SHARDRT_API int shardrt_num_params(const shardrt_ctx *ctx);
SHARDRT_API int shardrt_num_units(const shardrt_ctx *ctx);
SHARDRT_API int64_t shardrt_total_numel(const shardrt_ctx *ctx); /* unpadded */
SHARDRT_API shardrt_status shardrt_find_param(const shardrt_ctx *ctx, const char *full_name, int *param_id);

typedef struct shardrt_param_info {
  const char *name;   /* full name, owned by the context */
  int module_id;
  int unit;
  int ndim;
  int64_t shape[8];
  int64_t numel;
  int64_t offset;     /* element offset inside the unit's flat buffer */
} shardrt_param_info;
SHARDRT_API shardrt_status shardrt_param_info_get(const shardrt_ctx *ctx, int param_id, shardrt_param_info *out);

typedef struct shardrt_unit_info {
  const char *name;        /* the wrapped module's name, or "root" */
  int num_params;
  int64_t numel;           /* unpadded */
  int64_t padded_numel;    /* multiple of group size x alignment */
  int64_t shard_numel;     /* padded_numel / shard group size */
  int64_t shard_offset;    /* this rank's shard start inside the flat buffer */
  bool sharded_params;     /* this unit's params are sharded (persistence may say no) */
} shardrt_unit_info;
SHARDRT_API shardrt_status shardrt_unit_info_get(const shardrt_ctx *ctx, int unit, shardrt_unit_info *out);

/* ---- parameter values ---- */

/* Sets a parameter from a full host fp32 tensor: every rank passes the same
 * values and stores the part it owns. Not collective. */
SHARDRT_API shardrt_status shardrt_param_set(shardrt_ctx *ctx, int param_id, const float *values);
/* Collective (sync_module_states): rank `root` passes the full tensor, the
 * others pass NULL; every rank stores the part it owns. */
SHARDRT_API shardrt_status shardrt_param_set_from_root(shardrt_ctx *ctx, int param_id, const float *values,
                                                       int root);
/* Collective: every rank receives the full parameter as host fp32 (from the
 * optimizer's copy: master weights when the plan keeps them). */
SHARDRT_API shardrt_status shardrt_param_get(shardrt_ctx *ctx, int param_id, float *out);

/* ---- unit lifecycle (collective per unit) ---- */

typedef struct shardrt_view {
  void *data;          /* device pointer on cuda, host pointer on cpu */
  shardrt_dtype dtype; /* the plan's compute dtype */
  int64_t numel;
} shardrt_view;

/* Micro-batch `index` of `count` begins (optional: default 1 per step). */
SHARDRT_API shardrt_status shardrt_begin_micro_batch(shardrt_ctx *ctx, int index, int count);
SHARDRT_API shardrt_status shardrt_begin_forward(shardrt_ctx *ctx, int unit);
SHARDRT_API shardrt_status shardrt_end_forward(shardrt_ctx *ctx, int unit);
SHARDRT_API shardrt_status shardrt_begin_backward(shardrt_ctx *ctx, int unit);
SHARDRT_API shardrt_status shardrt_end_backward(shardrt_ctx *ctx, int unit);
/* Valid while the param's unit is gathered (forward or backward). */
SHARDRT_API shardrt_status shardrt_param_view(shardrt_ctx *ctx, int param_id, shardrt_view *out);
/* Valid between begin_backward and end_backward of the param's unit. */
SHARDRT_API shardrt_status shardrt_grad_view(shardrt_ctx *ctx, int param_id, shardrt_view *out);

/* ---- optimizer ---- */

typedef enum shardrt_optimizer_kind { SHARDRT_OPTIM_ADAMW = 0, SHARDRT_OPTIM_SGD } shardrt_optimizer_kind;

typedef struct shardrt_optim_params {
  shardrt_optimizer_kind kind;
  double lr;
  double beta1, beta2, eps;  /* AdamW */
  double weight_decay;       /* AdamW: decoupled; SGD: L2 added to the gradient (as torch) */
  double momentum;           /* SGD */
} shardrt_optim_params;

/* AdamW, lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
SHARDRT_API void shardrt_optim_params_default(shardrt_optim_params *p);
/* Before finalize (it sizes the optimizer state).
 * When the plan carries a config optimizer (DeepSpeed JSON "optimizer",
 * plan.optimizer), its type and every hyper-parameter it gives explicitly
 * win; the values here fill what it leaves "auto" or absent. */
SHARDRT_API shardrt_status shardrt_set_optimizer(shardrt_ctx *ctx, const shardrt_optim_params *p);
/* The program's learning rate, from the next step on. With a config LR
 * schedule (plan.scheduler) the schedule sets every step's lr and this value
 * only fills its "auto" warmup_max_lr (and the cosine schedule's base when the
 * config optimizer leaves lr "auto"); an explicit config optimizer lr wins. */
SHARDRT_API shardrt_status shardrt_set_lr(shardrt_ctx *ctx, double lr);
/* The program's plan: total optimizer steps of the run and warmup steps
 * (0 = not known), for a config LR schedule that leaves total_num_steps or
 * warmup_num_steps to the program ("auto"). Give the whole run's count, also
 * when resuming: the schedule follows the saved step counter. A schedule that
 * needs a count it was never given fails at shardrt_step with
 * SHARDRT_ERR_STATE. Any time before that step. */
SHARDRT_API shardrt_status shardrt_set_train_steps(shardrt_ctx *ctx, int64_t total_steps, int64_t warmup_steps);
/* The learning rate the most recent shardrt_step used (for a step skipped on
 * fp16 overflow, the one it would have used); NAN before the first step. */
SHARDRT_API double shardrt_last_lr(const shardrt_ctx *ctx);
/* The learning rate the next shardrt_step will use. Fails as that step
 * would when a schedule lacks a step count. */
SHARDRT_API shardrt_status shardrt_next_lr(const shardrt_ctx *ctx, double *lr);

typedef struct shardrt_step_info {
  double grad_norm;   /* global L2 norm of the (unscaled) gradient, before clipping */
  double loss_scale;  /* the scale used for this step (1 without fp16) */
  bool skipped;       /* fp16 overflow: no update was made */
  int64_t step;       /* optimizer steps taken so far (skipped ones excluded) */
} shardrt_step_info;

/* Collective. Unscale, clip by global norm, optimizer on the local shards,
 * refresh replicated params, zero grads. out may be NULL. */
SHARDRT_API shardrt_status shardrt_step(shardrt_ctx *ctx, shardrt_step_info *out);
/* Current fp16 loss scale (1.0 when the plan does not scale). */
SHARDRT_API double shardrt_loss_scale(const shardrt_ctx *ctx);

/* Collective: sums `n` doubles over all ranks in place (losses, counts). */
SHARDRT_API shardrt_status shardrt_allreduce_sum_f64(shardrt_ctx *ctx, double *vals, int n);

/* ---- accounting ---- */

typedef enum shardrt_coll_kind {
  SHARDRT_COLL_ALL_GATHER = 0,
  SHARDRT_COLL_REDUCE_SCATTER,
  SHARDRT_COLL_ALL_REDUCE,
  SHARDRT_COLL_BROADCAST,
  SHARDRT_COLL_COUNT_
} shardrt_coll_kind;

/* Per collective kind, since the last reset, counted by this rank: number of
 * calls and bytes of each call's full buffer (nccl-tests' S: the gathered
 * output of an all-gather, the unreduced input of a reduce-scatter, the
 * buffer of an all-reduce or broadcast). */
typedef struct shardrt_comm_stats {
  uint64_t calls[SHARDRT_COLL_COUNT_];
  uint64_t bytes[SHARDRT_COLL_COUNT_];
  double time_s[SHARDRT_COLL_COUNT_]; /* wall time spent in (or waiting on) the collective */
  double exposed_s;                   /* time compute waited on communication */
  /* Bytes (the same S) of the collectives whose group spans more than one
   * host, by group: [0] world, [1] shard group, [2] replica group (HYBRID's
   * all-reduce across shard groups). Zero on one host. */
  uint64_t cross_host_bytes[3];
} shardrt_comm_stats;
SHARDRT_API void shardrt_comm_stats_get(const shardrt_ctx *ctx, shardrt_comm_stats *out);
SHARDRT_API void shardrt_comm_stats_reset(shardrt_ctx *ctx);
SHARDRT_API const char *shardrt_coll_kind_name(shardrt_coll_kind k);

/* Bytes this rank's context holds, by role. params/grads/master/optimizer are
 * the persistent model state (what is held between steps); gathered is the
 * transient full-parameter and full-gradient buffers alive right now; pooled
 * is transient buffers kept idle for reuse by the next step (bounded by the
 * transient in-use high-water; docs/architecture.md); current is everything
 * held now (pooled included) and peak its high-water mark (device side). */
typedef struct shardrt_mem_stats {
  uint64_t params, grads, master, optimizer;
  uint64_t model_state; /* params + grads + master + optimizer */
  uint64_t gathered;
  uint64_t offloaded;   /* part of model_state that lives in host memory / on nvme */
  uint64_t current, peak;
  uint64_t pooled;
} shardrt_mem_stats;
SHARDRT_API void shardrt_mem_stats_get(const shardrt_ctx *ctx, shardrt_mem_stats *out);
SHARDRT_API void shardrt_mem_stats_reset_peak(shardrt_ctx *ctx);

/* ---- timeline ---- */

/* Starts writing a Chrome/Perfetto trace (JSON) of this rank to `path`
 * ("%r" in path is replaced by the rank): compute spans per unit and phase,
 * each collective with its bytes, and the waits on communication. Ranks
 * never share a file: at world size > 1 a path without "%r" gets the rank
 * before its extension (trace.json -> trace.rank0.json, trace.rank1.json),
 * with a warning from rank 0. tools/merge_traces.py joins the ranks' files
 * into one trace with a process track per rank. */
SHARDRT_API shardrt_status shardrt_trace_start(shardrt_ctx *ctx, const char *path);
/* Flushes and closes the trace (also done by shardrt_ctx_destroy). */
SHARDRT_API shardrt_status shardrt_trace_stop(shardrt_ctx *ctx);
/* Adds a program-defined span (seconds from shardrt_now()) to the trace. */
SHARDRT_API void shardrt_trace_span(shardrt_ctx *ctx, const char *name, double t0, double t1);
/* Monotonic seconds, the clock the trace uses. */
SHARDRT_API double shardrt_now(void);

#ifdef __cplusplus
}
#endif
#endif
