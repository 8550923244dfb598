/* SPDX-License-Identifier: Apache-2.0 */
/* Shard math: every element of a flat buffer belongs to exactly one shard,
 * shards are equal and aligned, padding is minimal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "src/core/shard.h"

static void test_cover_exactly_once(void **state) {
  const int64_t sizes[] = {1, 2, 3, 7, 31, 32, 33, 63, 64, 65, 1000, 4097, 123457};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (int g = 1; g <= 8; g++) {
      int64_t next = 0;
      for (int r = 0; r < g; r++) {
        shardrt__shard s = shardrt__shard_of(sizes[i], g, r, SHARDRT__ALIGN_ELEMS);
        assert_int_equal(s.offset, next); /* contiguous, in rank order */
        assert_int_equal(s.size * g, s.padded);
        assert_int_equal(s.size % SHARDRT__ALIGN_ELEMS, 0);
        next += s.size;
      }
      shardrt__shard s0 = shardrt__shard_of(sizes[i], g, 0, SHARDRT__ALIGN_ELEMS);
      assert_int_equal(next, s0.padded);
      assert_true(s0.padded >= sizes[i]);
      assert_true(s0.padded - sizes[i] < (int64_t)g * SHARDRT__ALIGN_ELEMS); /* minimal padding */
    }
}

static void test_unit_smaller_than_world(void **state) {
  /* 3 elements over 8 ranks: every rank still gets an equal (padded) shard. */
  for (int r = 0; r < 8; r++) {
    shardrt__shard s = shardrt__shard_of(3, 8, r, 1);
    assert_int_equal(s.size, 1);
    assert_int_equal(s.padded, 8);
    assert_int_equal(s.offset, r);
  }
}

static void test_degenerate(void **state) {
  shardrt__shard s = shardrt__shard_of(0, 4, 1, 32);
  assert_int_equal(s.padded, 0);
  assert_int_equal(s.size, 0);
  s = shardrt__shard_of(10, 0, 0, 32);
  assert_int_equal(s.padded, 0);
}

static void test_overlap(void **state) {
  int64_t st;
  assert_int_equal(shardrt__overlap(0, 10, 5, 20, &st), 5);
  assert_int_equal(st, 5);
  assert_int_equal(shardrt__overlap(0, 10, 10, 20, &st), 0);
  assert_int_equal(shardrt__overlap(3, 4, 0, 100, &st), 1);
  assert_int_equal(st, 3);
  assert_int_equal(shardrt__overlap(50, 60, 0, 10, &st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cover_exactly_once),
      cmocka_unit_test(test_unit_smaller_than_world),
      cmocka_unit_test(test_degenerate),
      cmocka_unit_test(test_overlap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
