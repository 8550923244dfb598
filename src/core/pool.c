/* SPDX-License-Identifier: Apache-2.0 */
/* The transient-buffer pool: gathered params, gradient views, reduction
 * inputs and outputs, and staging live only within a step, but a step needs
 * the same sizes again and again. Returning them to the allocator costs a
 * fresh mapping and one page fault per 4 KiB at the next use (glibc serves
 * large blocks with mmap and trims its heap), and on a GPU cudaFree
 * synchronises the device. So a freed transient buffer is kept here and
 * handed out again for a request of exactly its size.
 *
 * Footprint. FULL_SHARD frees gathered memory so that only a few units are
 * gathered at once; the pool must not turn that into the whole model. An
 * idle buffer is kept only while the idle bytes stay within twice the
 * high-water mark of transient bytes in use (ctx->pool.hw): the oldest idle buffers go
 * back to the allocator first. The context's held memory is therefore at
 * most model state + 3 x the transient in-use peak, and in steady state it
 * is the transient buffers one step needs (the sizes a step repeats). The
 * accounting reports it as it is: mem_stats.pooled is the idle bytes,
 * current and peak count them (what the process holds).
 *
 * SHARDRT_BUFFER_POOL=0 turns the pool off (every transient buffer goes back
 * to the allocator), for comparisons. */
#include <stdlib.h>
#include <string.h>

#include "src/core/ctx.h"

/* Host-memory devices only. The CUDA backend already keeps freed blocks in
 * its own stream-ordered pool (cudaFreeAsync on the compute stream, with the
 * release threshold raised: no driver call and no device synchronisation per
 * step), and its reuse is ordered on that stream. A block handed out again
 * from here would be reusable at once, while kernels queued on the compute
 * stream may still read it and a collective on the comm stream would write
 * it: a race that only events per buffer would close. */
bool shardrt__pool_poolable(const shardrt_ctx *ctx, const shardrt__buf *b) {
  return !ctx->dev.is_cuda && b->loc == SHARDRT__LOC_DEVICE &&
         (b->cat == SHARDRT__MEM_GATHERED || b->cat == SHARDRT__MEM_STAGING);
}

/* Idle bytes allowed per byte of the transient in-use high-water. One step
 * needs, per size, as many buffers as are ever alive together; summed over
 * sizes that exceeds the in-use peak (buffers of different sizes peak at
 * different moments): a FULL_SHARD step with a large root unit and smaller
 * blocks needs about 1.1x its in-use peak idle between steps
 * (tests/unit/test_step_faults.c), and a bound of 1x would evict what the
 * next step reuses. 2x keeps that with room, and bounds the worst case
 * (every unit a different size) at twice the in-use peak. */
enum { POOL_IDLE_FACTOR = 2 };

static bool pool_on(shardrt_ctx *ctx) {
  shardrt__pool *pl = &ctx->pool;
  if (!pl->read_env) {
    const char *e = getenv("SHARDRT_BUFFER_POOL");
    pl->off = e && strcmp(e, "0") == 0;
    pl->read_env = true;
  }
  return !pl->off;
}

static void drop(shardrt_ctx *ctx, int i) {
  shardrt__pool *pl = &ctx->pool;
  ctx->dev.i->free(ctx->dev.self, pl->e[i].p);
  pl->idle_bytes -= pl->e[i].bytes;
  memmove(&pl->e[i], &pl->e[i + 1], sizeof pl->e[0] * (size_t)(pl->n - i - 1));
  pl->n--;
}

void *shardrt__pool_take(shardrt_ctx *ctx, size_t bytes) {
  shardrt__pool *pl = &ctx->pool;
  if (!pool_on(ctx)) return NULL;
  /* Newest first: the buffer freed last is the one still in cache. */
  for (int i = pl->n - 1; i >= 0; i--) {
    if (pl->e[i].bytes != bytes) continue;
    void *p = pl->e[i].p;
    pl->idle_bytes -= bytes;
    memmove(&pl->e[i], &pl->e[i + 1], sizeof pl->e[0] * (size_t)(pl->n - i - 1));
    pl->n--;
    return p;
  }
  return NULL;
}

void shardrt__pool_note_use(shardrt_ctx *ctx) {
  uint64_t in_use = ctx->mem[SHARDRT__MEM_GATHERED] + ctx->mem[SHARDRT__MEM_STAGING];
  if (in_use > ctx->pool.hw) ctx->pool.hw = in_use;
}

bool shardrt__pool_put(shardrt_ctx *ctx, void *p, size_t bytes) {
  shardrt__pool *pl = &ctx->pool;
  uint64_t limit = POOL_IDLE_FACTOR * pl->hw;
  if (!pool_on(ctx) || bytes > limit) return false;
  while (pl->n > 0 && pl->idle_bytes + bytes > limit) drop(ctx, 0);
  if (pl->n == pl->cap_n) {
    int nc = pl->cap_n ? 2 * pl->cap_n : 16;
    void *ne = realloc(pl->e, sizeof pl->e[0] * (size_t)nc);
    if (!ne) return false; /* the caller frees it: correct, only slower */
    pl->e = ne;
    pl->cap_n = nc;
  }
  pl->e[pl->n].p = p;
  pl->e[pl->n].bytes = bytes;
  pl->n++;
  pl->idle_bytes += bytes;
  return true;
}

void shardrt__pool_release(shardrt_ctx *ctx) {
  shardrt__pool *pl = &ctx->pool;
  while (pl->n > 0) drop(ctx, pl->n - 1);
  free(pl->e);
  pl->e = NULL;
  pl->cap_n = 0;
}
