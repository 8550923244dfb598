/* SPDX-License-Identifier: Apache-2.0 */
/* The start-up choice of OpenBLAS kernel (examples/common/blas_kernel.c):
 * which detected cores are replaced, by what, and the banner note. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blas_kernel.h"

/* A BLAS call, so the linker keeps OpenBLAS (as it does for train_gpt):
 * blas_kernel.c's weak reference alone does not pull the library in. */
float cblas_sdot(const int n, const float *x, const int incx, const float *y, const int incy);

static void fallback_cores_are_replaced_by_the_best_the_cpu_has(void **state) {
  (void)state;
  /* the case the issue measured: 0.3.21 on an AVX-512 Xeon it does not know */
  assert_string_equal(ex_blas_pick("Prescott", 1, 1), "SkylakeX");
  assert_string_equal(ex_blas_pick("PRESCOTT", 1, 1), "SkylakeX");
  assert_string_equal(ex_blas_pick("Nehalem", 0, 1), "Haswell");
  assert_string_equal(ex_blas_pick("Sandybridge", 0, 1), "Haswell");
  assert_string_equal(ex_blas_pick("Core2", 1, 0), "SkylakeX");
}

static void deliberate_choices_are_kept(void **state) {
  (void)state;
  /* cores OpenBLAS picks on purpose for a CPU it knows */
  const char *kept[] = {"SkylakeX", "Cooperlake", "SapphireRapids", "Haswell", "Zen", "Skylake"};
  for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) assert_null(ex_blas_pick(kept[i], 1, 1));
  /* a genuinely old CPU: its fallback is right */
  assert_null(ex_blas_pick("Prescott", 0, 0));
  assert_null(ex_blas_pick("Sandybridge", 0, 0));
  /* not OpenBLAS */
  assert_null(ex_blas_pick(NULL, 1, 1));
}

static void note_names_the_kernel_and_its_origin(void **state) {
  (void)state;
  const float one = 1.0f;
  assert_true(cblas_sdot(1, &one, 1, &one, 1) == 1.0f);
  char note[320];
  ex_blas_note(note, sizeof note);
  /* linked against OpenBLAS: the note names its kernel */
  assert_non_null(strstr(note, "OpenBLAS kernel "));
  if (getenv("OPENBLAS_CORETYPE"))
    assert_non_null(strstr(note, "set by OPENBLAS_CORETYPE"));
  else
    assert_true(strstr(note, "(detected)") || strstr(note, "chosen at start-up"));
  /* a truncating buffer stays terminated */
  char small[8];
  ex_blas_note(small, sizeof small);
  assert_int_equal(strlen(small), sizeof small - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fallback_cores_are_replaced_by_the_best_the_cpu_has),
      cmocka_unit_test(deliberate_choices_are_kept),
      cmocka_unit_test(note_names_the_kernel_and_its_origin),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
