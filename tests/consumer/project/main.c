/* SPDX-License-Identifier: Apache-2.0 */
/* Trains one parameter for a few steps through the installed library. */
#include <shardrt.h>
#include <stdio.h>

int main(void) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  shardrt_ctx *ctx = NULL;
  if (shardrt_ctx_create(&cp, &ctx)) {
    fprintf(stderr, "consumer: %s\n", shardrt_last_error());
    return 1;
  }
  int m, w;
  int64_t shape[1] = {4};
  float init[4] = {1, 2, 3, 4}, out[4];
  shardrt_status rc = shardrt_add_module(ctx, "lin", "Linear", &m);
  if (!rc) rc = shardrt_add_param(ctx, m, "w", 1, shape, &w);
  if (!rc) rc = shardrt_finalize(ctx);
  if (!rc) rc = shardrt_param_set(ctx, w, init);
  for (int step = 0; !rc && step < 3; step++) {
    shardrt_view g;
    rc = shardrt_begin_forward(ctx, 0);
    if (!rc) rc = shardrt_end_forward(ctx, 0);
    if (!rc) rc = shardrt_begin_backward(ctx, 0);
    if (!rc) rc = shardrt_grad_view(ctx, w, &g);
    if (!rc) for (int i = 0; i < 4; i++) ((float *)g.data)[i] += 1.0f;
    if (!rc) rc = shardrt_end_backward(ctx, 0);
    if (!rc) rc = shardrt_step(ctx, NULL);
  }
  if (!rc) rc = shardrt_param_get(ctx, w, out);
  if (rc) fprintf(stderr, "consumer: %s: %s\n", shardrt_status_str(rc), shardrt_last_error());
  else printf("consumer: libshardrt %d, w[0] %.4f -> %.4f\n", shardrt_version(), init[0], out[0]);
  int ok = !rc && out[0] < init[0];
  shardrt_ctx_destroy(ctx);
  return ok ? 0 : 1;
}
