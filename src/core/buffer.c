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
  shardrt_status rc;
  if (loc == SHARDRT__LOC_NVME) {
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
  if (ctx->mem_current > ctx->mem_peak) ctx->mem_peak = ctx->mem_current;
  return SHARDRT_OK;
}

void shardrt__buf_free(shardrt_ctx *ctx, shardrt__buf *b) {
  if (!b || !b->p) return;
  if (b->loc == SHARDRT__LOC_NVME) munmap(b->p, b->bytes);
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

/* Moves n elements of src (at soff) into a temporary of src's dtype at
 * location `to`; returns a pointer usable there. */
static shardrt_status stage(shardrt_ctx *ctx, const shardrt__buf *src, int64_t soff, int64_t n, shardrt__loc to,
                            shardrt__buf *tmp, const void **out) {
  if (host_side(ctx, src->loc) == host_side(ctx, to)) {
    *out = shardrt__at(src, soff);
    return SHARDRT_OK;
  }
  SHARDRT__CHECK(shardrt__buf_alloc(ctx, tmp, SHARDRT__MEM_STAGING, to == SHARDRT__LOC_DEVICE ? SHARDRT__LOC_DEVICE
                                                                                                : SHARDRT__LOC_HOST,
                                    src->dt, n));
  shardrt__copy_kind k = host_side(ctx, to) ? SHARDRT__D2H : SHARDRT__H2D;
  shardrt_status rc = ctx->dev.i->copy(ctx->dev.self, tmp->p, shardrt__at(src, soff), tmp->bytes, k);
  if (rc == SHARDRT_OK && k == SHARDRT__D2H) rc = ctx->dev.i->sync(ctx->dev.self);
  *out = tmp->p;
  return rc;
}

/* Runs cast (accumulate=false) or add (true) of src into dst, staging src
 * to dst's side of the host/device boundary first when they differ. */
static shardrt_status cross_op(shardrt_ctx *ctx, shardrt__buf *dst, int64_t doff, const shardrt__buf *src,
                               int64_t soff, int64_t n, bool accumulate) {
  if (n <= 0) return SHARDRT_OK;
  shardrt__buf tmp = {0};
  const void *s;
  shardrt_status rc = stage(ctx, src, soff, n, dst->loc, &tmp, &s);
  if (rc == SHARDRT_OK) {
    shardrt__device *d = shardrt__ops(ctx, host_side(ctx, dst->loc) ? SHARDRT__LOC_HOST : SHARDRT__LOC_DEVICE);
    rc = accumulate ? d->i->add(d->self, shardrt__at(dst, doff), dst->dt, s, src->dt, (size_t)n)
                    : d->i->cast(d->self, shardrt__at(dst, doff), dst->dt, s, src->dt, (size_t)n);
  }
  if (tmp.p) {
    ctx->dev.i->sync(ctx->dev.self);
    shardrt__buf_free(ctx, &tmp);
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
