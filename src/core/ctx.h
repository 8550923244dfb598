/* SPDX-License-Identifier: Apache-2.0 */
/* The context's internals: model registry, units and their flat buffers. */
#ifndef SHARDRT_CTX_H
#define SHARDRT_CTX_H

#include <mpi.h>

#include "shardrt/runtime.h"
#include "src/comm/comm.h"
#include "src/core/error.h"
#include "src/device/device.h"

/* Where a buffer lives. NVME buffers are file-backed mappings in the plan's
 * nvme path (host-addressable, paged by the OS). */
typedef enum shardrt__loc { SHARDRT__LOC_DEVICE = 0, SHARDRT__LOC_HOST, SHARDRT__LOC_NVME } shardrt__loc;

typedef enum shardrt__mem_cat {
  SHARDRT__MEM_PARAMS = 0,
  SHARDRT__MEM_GRADS,
  SHARDRT__MEM_MASTER,
  SHARDRT__MEM_OPTIM,
  SHARDRT__MEM_GATHERED, /* transient full params / grads */
  SHARDRT__MEM_STAGING,
  SHARDRT__MEM_COUNT_
} shardrt__mem_cat;

/* One allocation of one role: elements of one dtype. */
typedef struct shardrt__buf {
  void *p;
  int64_t n;
  shardrt_dtype dt;
  shardrt__loc loc;
  shardrt__mem_cat cat;
  size_t bytes;
} shardrt__buf;

typedef struct shardrt__module {
  char *name;
  char *cls;
  int unit;
} shardrt__module;

typedef struct shardrt__param {
  char *name;
  int module;
  int ndim;
  int64_t shape[8];
  int64_t numel;
  int unit;
  int64_t offset; /* in the unit's flat coordinates */
} shardrt__param;

typedef enum shardrt__unit_phase { SHARDRT__IDLE = 0, SHARDRT__FORWARD, SHARDRT__BACKWARD } shardrt__unit_phase;

struct shardrt__strategy_i;

typedef struct shardrt__unit {
  char *name;
  int *params;
  int nparams;
  int64_t numel, padded;   /* unpadded / padded element count */
  int64_t shard_n;         /* padded / shard group size */
  int64_t shard_off;       /* this rank's shard start */
  int64_t opt_off, opt_n;  /* the optimizer partition this rank updates */
  const struct shardrt__strategy_i *strat;
  bool shard_params, shard_grads, shard_optim;
  bool ignored; /* fsdp_ignored_modules: kept replicated */

  /* Persistent state. */
  shardrt__buf param;  /* stored params: full or this rank's shard */
  shardrt__buf master; /* optimizer-dtype copy of the optimizer partition (optional) */
  shardrt__buf grad;   /* reduced grads: full or shard */
  shardrt__buf m, v;   /* optimizer moments over the optimizer partition */

  /* Transient state. */
  shardrt__buf full;   /* full params in compute dtype (alias of param when possible) */
  bool full_alias, full_valid;
  shardrt__req *gather_req;
  shardrt__buf gview;  /* the grad view handed to the program (compute dtype) */
  bool gview_alias;
  shardrt__buf accum;  /* no_sync: full local gradient sum across micro-batches */
  bool accum_alias;
  shardrt__buf red;    /* reduce-dtype staging for a collective in flight */
  shardrt__buf red_out;
  shardrt__req *reduce_req;
  /* Hybrid: red_out holds the shard group's sum while its replica
   * all-reduce (replica_req; NULL once complete) runs; added into grad at
   * shardrt__finish_reduce (src/strategy/common.c). */
  bool replica_stage;
  shardrt__req *replica_req;
  shardrt__unit_phase phase;
  int fwd_pos;         /* position in the recorded forward order (-1: unseen) */
  double t_begin;      /* start of the current forward/backward compute span (trace) */
} shardrt__unit;

typedef struct shardrt__trace shardrt__trace;

/* Idle transient buffers kept for reuse (src/core/pool.c), oldest first. */
typedef struct shardrt__pool {
  struct shardrt__pool_ent {
    void *p;
    size_t bytes;
  } *e;
  int n, cap_n;
  uint64_t idle_bytes; /* sum of e[].bytes */
  uint64_t hw;         /* high-water of transient bytes in use: bounds idle_bytes (2x) */
  bool read_env, off;  /* SHARDRT_BUFFER_POOL=0: off */
} shardrt__pool;

struct shardrt_ctx {
  shardrt_plan plan;
  int rank, world, local_rank;
  /* Node layout (src/core/layout.c): ranks numbered host by host. */
  int local_size, nodes;
  int *host_of;                             /* [world]: host index of each runtime rank */
  bool group_cross[SHARDRT__GROUP_COUNT_];  /* this rank's group spans more than one host */
  bool own_mpi;
  MPI_Comm mpi_world, mpi_shard; /* host-side control traffic */
  shardrt__device dev;  /* the compute device */
  shardrt__device host; /* the CPU backend, for offloaded state */
  shardrt__comm comm;
  char comm_name[16];

  shardrt__module *modules;
  int nmodules, cap_modules;
  /* shardrt_set_block_classes: what TRANSFORMER_BASED_WRAP without names wraps */
  char block_classes[SHARDRT_MAX_WRAP_CLASSES][SHARDRT_NAME_MAX];
  int nblock_classes;
  shardrt__param *params;
  int nparams, cap_params;
  shardrt__unit *units;
  int nunits;
  bool finalized;
  bool finalize_failed; /* units half-built: the context cannot be finalized again */

  shardrt_optim_params opt;      /* what a step runs: prog_opt under the plan's config optimizer (schedule.c) */
  shardrt_optim_params prog_opt; /* the program's: shardrt_set_optimizer, shardrt_set_lr */
  int64_t total_steps, warmup_steps; /* shardrt_set_train_steps; <= 0: not given */
  double last_lr;                /* the lr of the last shardrt_step; NAN before the first */
  int64_t step;
  int micro_index, micro_count;
  /* fp16 loss scaler */
  double loss_scale;
  int64_t good_steps;
  int64_t hysteresis_left;

  /* Forward order recorded on the first step (for prefetch). */
  int *order;
  int norder;
  bool order_frozen;

  /* Accounting. */
  shardrt_comm_stats cstats;
  /* Collectives in flight, for their issue-to-completion time (coll.c). */
  struct shardrt__coll_rec *inflight;
  int ninflight, cap_inflight;
  /* Backend (device) timings at the last shardrt_comm_stats_reset (coll.c). */
  double dev_base_time_s[SHARDRT_COLL_COUNT_], dev_base_exposed_s;
  int coll_single_rank; /* SHARDRT_COLL_SINGLE_RANK: 0 not read yet, 1 off, 2 on */
  /* Host/device staging of cross-location casts and adds, kept and grown on
   * demand (buffer.c): [0] host (pinned with CUDA), [1] device. */
  shardrt__buf stage_cache[2];
  uint64_t mem[SHARDRT__MEM_COUNT_];
  uint64_t mem_offloaded;
  uint64_t mem_current, mem_peak; /* current: in use; peak: of in use + pool.idle_bytes */
  shardrt__pool pool;
  int fail_alloc_after;
  int nallocs;
  int nvme_seq;
  shardrt__trace *trace;

  /* Collective consistency (sync_check.c). */
  bool check_collectives; /* SHARDRT_DEBUG=collectives */
  int64_t sync_seq;       /* checks done so far: the same on every rank */
  double coll_timeout_s;  /* SHARDRT_COLL_TIMEOUT_S; 0: wait forever */
  bool comm_broken;       /* a collective timed out: MPI is left as it is */
};

/* ---- buffers (src/core/buffer.c) ---- */
shardrt_status shardrt__buf_alloc(shardrt_ctx *ctx, shardrt__buf *b, shardrt__mem_cat cat, shardrt__loc loc,
                                  shardrt_dtype dt, int64_t n);
void shardrt__buf_free(shardrt_ctx *ctx, shardrt__buf *b);
/* The transient-buffer pool (pool.c): take returns an idle buffer of exactly
 * `bytes` or NULL; put keeps a freed one (false: the caller frees it);
 * note_use records the transient in-use high-water after an allocation;
 * release frees every idle buffer (teardown). */
bool shardrt__pool_poolable(const shardrt_ctx *ctx, const shardrt__buf *b);
void *shardrt__pool_take(shardrt_ctx *ctx, size_t bytes);
bool shardrt__pool_put(shardrt_ctx *ctx, void *p, size_t bytes);
void shardrt__pool_note_use(shardrt_ctx *ctx);
void shardrt__pool_release(shardrt_ctx *ctx);
/* Frees the kept staging buffers (context teardown). */
void shardrt__stage_release(shardrt_ctx *ctx);
shardrt_status shardrt__buf_zero(shardrt_ctx *ctx, shardrt__buf *b);
/* The backend that can run ops on memory at `loc`. */
shardrt__device *shardrt__ops(shardrt_ctx *ctx, shardrt__loc loc);
/* dst[doff..+n] = cast(src[soff..+n]) across locations (staging as needed). */
shardrt_status shardrt__buf_cast(shardrt_ctx *ctx, shardrt__buf *dst, int64_t doff, const shardrt__buf *src,
                                 int64_t soff, int64_t n);
/* dst[doff..+n] += cast(src[soff..+n]) across locations. */
shardrt_status shardrt__buf_add(shardrt_ctx *ctx, shardrt__buf *dst, int64_t doff, const shardrt__buf *src,
                                int64_t soff, int64_t n);
/* Host fp32 <-> buffer elements. */
shardrt_status shardrt__buf_read_f32(shardrt_ctx *ctx, const shardrt__buf *b, int64_t off, int64_t n, float *out);
shardrt_status shardrt__buf_write_f32(shardrt_ctx *ctx, shardrt__buf *b, int64_t off, int64_t n, const float *in);
static inline void *shardrt__at(const shardrt__buf *b, int64_t off) {
  return (char *)b->p + (size_t)off * shardrt_dtype_size(b->dt);
}

/* ---- collectives with accounting (src/core/coll.c) ---- */
/* `u` is the unit the collective serves (for SHARDRT_DEBUG=collectives). */
shardrt_status shardrt__all_gather(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, const void *send,
                                   void *recv, size_t count, shardrt_dtype dt, shardrt__req **req);
shardrt_status shardrt__reduce_scatter(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, const void *send,
                                       void *recv, size_t count, shardrt_dtype dt, shardrt__req **req);
shardrt_status shardrt__all_reduce(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, void *buf,
                                   size_t count, shardrt_dtype dt, shardrt__req **req);
/* Waits on a request; the time spent counts as exposed communication. */
shardrt_status shardrt__wait(shardrt_ctx *ctx, shardrt__req **req, shardrt_coll_kind kind);
double shardrt__now(void);

/* ---- collective consistency (src/core/sync_check.c) ---- */
/* What a rank is about to do at a point where all ranks must do the same. */
typedef enum shardrt__sync_op {
  SHARDRT__SYNC_ALL_GATHER = 0,
  SHARDRT__SYNC_REDUCE_SCATTER,
  SHARDRT__SYNC_ALL_REDUCE,
  SHARDRT__SYNC_STEP,
  SHARDRT__SYNC_SAVE,
  SHARDRT__SYNC_LOAD,
  SHARDRT__SYNC_USER_ALLREDUCE,
  SHARDRT__SYNC_COUNT_
} shardrt__sync_op;
/* Reads SHARDRT_DEBUG and SHARDRT_COLL_TIMEOUT_S into the context. */
shardrt_status shardrt__sync_setup(shardrt_ctx *ctx);
/* With SHARDRT_DEBUG=collectives: every rank shows the others what it is
 * about to do; all get SHARDRT_ERR_MISMATCH naming each rank's operation if
 * they differ, SHARDRT_ERR_TIMEOUT if some rank does not arrive. A no-op
 * otherwise. u may be NULL (not a unit's collective). */
shardrt_status shardrt__sync_check(shardrt_ctx *ctx, shardrt__sync_op op, const shardrt__unit *u, int64_t count,
                                   int dt, int group);

/* ---- node layout (src/core/layout.c) ---- */
/* Learns which ranks of `base` share a host, checks the plan's num_machines
 * and hybrid layout against it, and creates ctx->mpi_world with the ranks
 * numbered host by host. Collective over base. */
shardrt_status shardrt__layout_setup(shardrt_ctx *ctx, MPI_Comm base);
/* After the plan is resolved: shard groups must not straddle hosts; sets
 * ctx->group_cross. */
shardrt_status shardrt__layout_check_groups(shardrt_ctx *ctx);

/* ---- units (src/core/units.c) ---- */
shardrt_status shardrt__build_units(shardrt_ctx *ctx);
shardrt_status shardrt__alloc_unit_state(shardrt_ctx *ctx, shardrt__unit *u);
shardrt_status shardrt__check_unit(const shardrt_ctx *ctx, int unit, const char *fn);
/* SHARDRT_CHECK_FINITE=1: weights are checked as they load (src/ckpt/load.c)
 * and a step with a non-finite gradient and no loss scaling fails (step.c). */
bool shardrt__check_finite_on(void);
/* Completes every gradient reduction still in flight (lifecycle.c). */
shardrt_status shardrt__finish_all_reductions(shardrt_ctx *ctx);

#endif
