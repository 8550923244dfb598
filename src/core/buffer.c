/* SPDX-License-Identifier: Apache-2.0 */
/* Role buffers: allocation by location (device, pinned host, NVMe-backed
 * mapping), memory accounting by category, and dtype-converting copies that
 * cross locations. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "src/core/ctx.h"

shardrt__device *shardrt__ops(shardrt_ctx *ctx, shardrt__loc loc) {
  return (loc == SHARDRT__LOC_DEVICE) ? &ctx->dev : &ctx->host;
}

static bool model_state(shardrt__mem_cat c) { return c <= SHARDRT__MEM_OPTIM; }

static const char *nvme_dir(const shardrt_ctx *ctx, shardrt__mem_cat cat) {
  return cat == SHARDRT__MEM_PARAMS ? ctx->plan.offload_param_nvme_path : ctx->plan.offload_optimizer_nvme_path;
}

static shardrt_status nvme_map(shardrt_ctx *ctx, shardrt__buf *b, size_t bytes) {
  char path[SHARDRT_PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/shardrt-r%d-%d.XXXXXX", nvme_dir(ctx, b->cat), ctx->rank, ctx->nvme_seq++);
  int fd = mkstemp(path);
  if (fd < 0)
    return shardrt__error(SHARDRT_ERR_IO, "nvme offload: cannot create a file in '%s' (check the nvme_path exists "
                          "and is writable)", nvme_dir(ctx, b->cat));
  /* Reserve every block now: a sparse file would fault (SIGBUS) at the first
   * write into a page the full disk cannot back. posix_fallocate returns the
   * error number itself. */
  int fe = posix_fallocate(fd, 0, (off_t)bytes);
  /* The mapping keeps the space; the name is gone so a crash leaves nothing. */
  unlink(path);
  if (fe != 0) {
    close(fd);
    return shardrt__error(SHARDRT_ERR_IO, "nvme offload: cannot allocate %zu bytes for '%s' in '%s': %s (free space on "
                          "that disk, or point nvme_path elsewhere)", bytes, path, nvme_dir(ctx, b->cat), strerror(fe));
  }
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return shardrt__error(SHARDRT_ERR_IO, "nvme offload: mmap of %zu bytes in '%s' failed", bytes,
                          nvme_dir(ctx, b->cat));
  b->p = p;
  return SHARDRT_OK;
}

shardrt_status shardrt__buf_alloc(shardrt_ctx *ctx, shardrt__buf *b, shardrt__mem_cat cat, shardrt__loc loc,
                                  shardrt_dtype dt, int64_t n) {
  memset(b, 0, sizeof *b);
  b->n = n;
  b->dt = dt;
  b->loc = loc;
  b->cat = cat;
  b->bytes = (size_t)n * shardrt_dtype_size(dt);
  if (n <= 0) return SHARDRT_OK;
  if (ctx->fail_alloc_after >= 0 && ctx->nallocs >= ctx->fail_alloc_after)
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "allocation %d of %zu bytes refused (fail_alloc_after=%d)",
                          ctx->nallocs, b->bytes, ctx->fail_alloc_after);
  shardrt_status rc = SHARDRT_OK;
  void *kept = shardrt__pool_poolable(ctx, b) ? shardrt__pool_take(ctx, b->bytes) : NULL;
  if (kept) {
    b->p = kept;
  } else if (loc == SHARDRT__LOC_NVME) {
    rc = nvme_map(ctx, b, b->bytes);
  } else {
    /* Host-side state comes from the device's pinned allocator when it has
     * one (fast copies to and from the GPU), else from plain host memory. */
    shardrt__device *d = &ctx->dev;
    rc = loc == SHARDRT__LOC_DEVICE ? d->i->alloc(d->self, b->bytes, &b->p)
         : d->i->host_alloc         ? d->i->host_alloc(d->self, b->bytes, &b->p)
                                    : ctx->host.i->alloc(NULL, b->bytes, &b->p);
  }
  if (rc != SHARDRT_OK) {
    b->p = NULL;
    return rc;
  }
  ctx->nallocs++;
  ctx->mem[cat] += b->bytes;
  if (model_state(cat) && loc != SHARDRT__LOC_DEVICE) ctx->mem_offloaded += b->bytes;
  ctx->mem_current += b->bytes;
  /* What the context holds: in use plus the pool's idle buffers. */
  uint64_t held = ctx->mem_current + ctx->pool.idle_bytes;
  if (held > ctx->mem_peak) ctx->mem_peak = held;
  if (shardrt__pool_poolable(ctx, b)) shardrt__pool_note_use(ctx);
  return SHARDRT_OK;
}

void shardrt__buf_free(shardrt_ctx *ctx, shardrt__buf *b) {
  if (!b || !b->p) return;
  if (shardrt__pool_poolable(ctx, b) && shardrt__pool_put(ctx, b->p, b->bytes)) { /* kept for the next use */
  } else if (b->loc == SHARDRT__LOC_NVME) munmap(b->p, b->bytes);
  else if (b->loc == SHARDRT__LOC_DEVICE) ctx->dev.i->free(ctx->dev.self, b->p);
  else if (ctx->dev.i->host_free) ctx->dev.i->host_free(ctx->dev.self, b->p);
  else ctx->host.i->free(NULL, b->p);
  ctx->mem[b->cat] -= b->bytes;
  if (model_state(b->cat) && b->loc != SHARDRT__LOC_DEVICE) ctx->mem_offloaded -= b->bytes;
  ctx->mem_current -= b->bytes;
  b->p = NULL;
}

shardrt_status shardrt__buf_zero(shardrt_ctx *ctx, shardrt__buf *b) {
  if (!b->p) return SHARDRT_OK;
  shardrt__device *d = shardrt__ops(ctx, b->loc);
  return d->i->fill_zero(d->self, b->p, b->bytes);
}

static bool host_side(const shardrt_ctx *ctx, shardrt__loc loc) {
  return loc != SHARDRT__LOC_DEVICE || !ctx->dev.is_cuda;
}

/* The kept staging buffer of side `to`, at least `bytes` long. Allocating
 * pinned memory per transfer cost about a millisecond, and freeing it
 * (cudaFreeHost) synchronises the whole device; so one buffer per side is
 * kept for the context's life and only grown, to the largest transfer seen
 * (a unit's shard or gradient). */
static shardrt_status stage_buf(shardrt_ctx *ctx, shardrt__loc to, size_t bytes, void **out) {
  shardrt__buf *c = &ctx->stage_cache[to == SHARDRT__LOC_DEVICE ? 1 : 0];
  if (!c->p || c->bytes < bytes) {
    shardrt__buf_free(ctx, c);
    /* in fp32 words: the dtype of the buffer itself does not matter */
    SHARDRT__CHECK(shardrt__buf_alloc(ctx, c, SHARDRT__MEM_STAGING, to == SHARDRT__LOC_DEVICE ? SHARDRT__LOC_DEVICE
                                                                                               : SHARDRT__LOC_HOST,
                                      SHARDRT_F32, (int64_t)((bytes + 3) / 4)));
  }
  *out = c->p;
  return SHARDRT_OK;
}

void shardrt__stage_release(shardrt_ctx *ctx) {
  for (int i = 0; i < 2; i++) shardrt__buf_free(ctx, &ctx->stage_cache[i]);
}

/* Moves n elements of src (at soff) into the staging buffer of location
 * `to`; returns a pointer usable there, and *staged says whether it is the
 * staging buffer (which the caller must not reuse before a device sync). */
static shardrt_status stage(shardrt_ctx *ctx, const shardrt__buf *src, int64_t soff, int64_t n, shardrt__loc to,
                            bool *staged, const void **out) {
  *staged = false;
  if (host_side(ctx, src->loc) == host_side(ctx, to)) {
    *out = shardrt__at(src, soff);
    return SHARDRT_OK;
  }
  size_t bytes = (size_t)n * shardrt_dtype_size(src->dt);
  void *p = NULL;
  SHARDRT__CHECK(stage_buf(ctx, to == SHARDRT__LOC_DEVICE ? SHARDRT__LOC_DEVICE : SHARDRT__LOC_HOST, bytes, &p));
  *staged = true;
  shardrt__copy_kind k = host_side(ctx, to) ? SHARDRT__D2H : SHARDRT__H2D;
  shardrt_status rc = ctx->dev.i->copy(ctx->dev.self, p, shardrt__at(src, soff), bytes, k);
  if (rc == SHARDRT_OK && k == SHARDRT__D2H) rc = ctx->dev.i->sync(ctx->dev.self);
  *out = p;
  return rc;
}

/* Runs cast (accumulate=false) or add (true) of src into dst, staging src
 * to dst's side of the host/device boundary first when they differ. */
static shardrt_status cross_op(shardrt_ctx *ctx, shardrt__buf *dst, int64_t doff, const shardrt__buf *src,
                               int64_t soff, int64_t n, bool accumulate) {
  if (n <= 0) return SHARDRT_OK;
  bool staged = false;
  const void *s;
  shardrt_status rc = stage(ctx, src, soff, n, dst->loc, &staged, &s);
  if (rc == SHARDRT_OK) {
    shardrt__device *d = shardrt__ops(ctx, host_side(ctx, dst->loc) ? SHARDRT__LOC_HOST : SHARDRT__LOC_DEVICE);
    rc = accumulate ? d->i->add(d->self, shardrt__at(dst, doff), dst->dt, s, src->dt, (size_t)n)
                    : d->i->cast(d->self, shardrt__at(dst, doff), dst->dt, s, src->dt, (size_t)n);
  }
  /* The next transfer overwrites the staging buffer: this op must be done
   * with it first (the free did this implicitly before). */
  if (staged) {
    shardrt_status srs = ctx->dev.i->sync(ctx->dev.self);
    if (rc == SHARDRT_OK) rc = srs;
  }
  return rc;
}

shardrt_status shardrt__buf_cast(shardrt_ctx *ctx, shardrt__buf *dst, int64_t doff, const shardrt__buf *src,
                                 int64_t soff, int64_t n) {
  return cross_op(ctx, dst, doff, src, soff, n, false);
}

shardrt_status shardrt__buf_add(shardrt_ctx *ctx, shardrt__buf *dst, int64_t doff, const shardrt__buf *src,
                                int64_t soff, int64_t n) {
  return cross_op(ctx, dst, doff, src, soff, n, true);
}

shardrt_status shardrt__buf_read_f32(shardrt_ctx *ctx, const shardrt__buf *b, int64_t off, int64_t n, float *out) {
  if (n <= 0) return SHARDRT_OK;
  shardrt__buf host = {.p = out, .n = n, .dt = SHARDRT_F32, .loc = SHARDRT__LOC_HOST};
  SHARDRT__CHECK(shardrt__buf_cast(ctx, &host, 0, b, off, n));
  return ctx->dev.i->sync(ctx->dev.self);
}

shardrt_status shardrt__buf_write_f32(shardrt_ctx *ctx, shardrt__buf *b, int64_t off, int64_t n, const float *in) {
  if (n <= 0) return SHARDRT_OK;
  shardrt__buf host = {.p = (void *)in, .n = n, .dt = SHARDRT_F32, .loc = SHARDRT__LOC_HOST};
  SHARDRT__CHECK(shardrt__buf_cast(ctx, b, off, &host, 0, n));
  return ctx->dev.i->sync(ctx->dev.self);
}
