/* SPDX-License-Identifier: Apache-2.0 */
/* The scalars of an optimizer update, formed in double once per unit and
 * step on the host, then rounded to the fp32 the element-wise kernels use
 * (CPU and CUDA alike), the way PyTorch's AdamW hands its Python floats to
 * an fp32 kernel. */
#include <math.h>

#include "src/device/device.h"

void shardrt__adamw_args_make(shardrt__adamw_args *a, double lr, double beta1, double beta2, double eps,
                              double weight_decay, double t, float grad_scale) {
  double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
  a->decay = (float)(1.0 - lr * weight_decay);
  a->one_minus_beta1 = (float)(1.0 - beta1);
  a->beta2 = (float)beta2;
  a->one_minus_beta2 = (float)(1.0 - beta2);
  a->neg_step_size = (float)(-(lr / bc1));
  a->bc2_sqrt = (float)sqrt(bc2);
  a->eps = (float)eps;
  a->grad_scale = grad_scale;
}
