/* SPDX-License-Identifier: Apache-2.0 */
/* NVMe offload on a full filesystem (issue #14, item 4): the offload files
 * are allocated up front, so finalize returns SHARDRT_ERR_IO naming the
 * folder and the bytes instead of dying with SIGBUS at the first write into
 * a page the disk cannot back. usage: test_nvme_full DIR (a small
 * filesystem: nvme_full.sh mounts a 1 MiB tmpfs) */
#include <stdio.h>
#include <string.h>

#include "shardrt.h"

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.flavor = SHARDRT_FLAVOR_DEEPSPEED; /* FSDP offloads all or nothing */
  p.distributed_type = SHARDRT_DIST_DEEPSPEED;
  p.offload_optimizer = SHARDRT_OFFLOAD_NVME;
  snprintf(p.offload_optimizer_nvme_path, sizeof p.offload_optimizer_nvme_path, "%s", argv[1]);
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.plan = &p;
  shardrt_ctx *ctx;
  if (shardrt_ctx_create(&cp, &ctx) != SHARDRT_OK) {
    fprintf(stderr, "create: %s\n", shardrt_last_error());
    return 1;
  }
  int mod, w;
  int64_t shape[2] = {1024, 1024}; /* 4 MiB of fp32 per optimizer moment: more than the disk holds */
  int fail = 0;
  if (shardrt_add_module(ctx, "m", "Linear", &mod) || shardrt_add_param(ctx, mod, "weight", 2, shape, &w)) fail = 1;
  shardrt_status rc = fail ? SHARDRT_OK : shardrt_finalize(ctx);
  const char *msg = shardrt_last_error();
  if (rc != SHARDRT_ERR_IO) {
    fprintf(stderr, "FAIL: finalize on a full disk returned %s (%s), expected SHARDRT_ERR_IO\n", shardrt_status_str(rc), msg);
    fail = 1;
  } else if (!strstr(msg, argv[1]) || !strstr(msg, "4194304 bytes") || !strstr(msg, "No space")) {
    fprintf(stderr, "FAIL: the error does not name the folder, the bytes and the cause: %s\n", msg);
    fail = 1;
  } else {
    printf("ok: %s\n", msg);
  }
  shardrt_ctx_destroy(ctx);
  return fail;
}
