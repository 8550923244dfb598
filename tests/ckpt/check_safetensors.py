#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reads files libshardrt wrote with the Python `safetensors` package (the
reference reader). Skips (exit 77) when safetensors or numpy is absent.

usage: check_safetensors.py MERGE_BIN [WEIGHTS_BIN]
  MERGE_BIN    test_ckpt_merge; with --fixture DIR it writes a synthetic
               3-rank checkpoint and its merges, whose values are recomputed here.
  WEIGHTS_BIN  test_ckpt_weights; with --fixture FILE it saves a live model's
               weights through shardrt_save_weights (parameter p, element k =
               exact(p, k)).
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as e:  # CI may not have them
    print(f"skip: {e}")
    sys.exit(77)

# Mirror of tests/ckpt/ck_synth.c.
PARAMS = [("emb.weight", 0, (7, 5), 0), ("h.0.w", 1, (5, 5), 0), ("h.0.b", 1, (5,), 25),
          ("h.1.w", 1, (5, 3), 31), ("head.bias", 1, (3,), 46)]


def exact(tensor, k):
    return ((k * 7 + tensor * 13) % 256 - 128) / 4.0


def expected(unit, role, offset, shape):
    n = int(np.prod(shape))
    return np.array([exact(unit * 3 + role, offset + k) for k in range(n)], dtype=np.float32).reshape(shape)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.argv[1], "--fixture", d], check=True)
        t = load_file(os.path.join(d, "merged_fp32.safetensors"))
        assert len(t) == 3 * len(PARAMS), sorted(t)
        for name, unit, shape, off in PARAMS:
            for role, suffix in enumerate(["", ".exp_avg", ".exp_avg_sq"]):
                a = t[name + suffix]
                assert a.dtype == np.float32 and a.shape == shape, (name + suffix, a.dtype, a.shape)
                np.testing.assert_array_equal(a, expected(unit, role, off, shape))
        t16 = load_file(os.path.join(d, "merged_fp16.safetensors"))
        for name, unit, shape, off in PARAMS:
            assert t16[name].dtype == np.float16
            np.testing.assert_array_equal(t16[name].astype(np.float32), expected(unit, 0, off, shape))
        # numpy has no bfloat16: check dtype, shape and metadata through safe_open.
        with safe_open(os.path.join(d, "merged_bf16.safetensors"), framework="np") as f:
            meta = f.metadata()
            assert meta.get("format") == "pt", meta
            assert "shardrt.header_crc32c" in meta
            assert sorted(f.keys()) == sorted(p[0] for p in PARAMS)
        if len(sys.argv) > 2:
            path = os.path.join(d, "weights.safetensors")
            subprocess.run([sys.argv[2], "--fixture", path], check=True)
            t = load_file(path)
            # Registration order of tests/ckpt/ck_model.c's small model.
            names = [("embed.weight", (13, 7))]
            for b in range(3):
                names += [(f"blocks.{b}.weight", (9, 7)), (f"blocks.{b}.bias", (9,))]
            names += [("norm.scale", (5,)), ("head.weight", (3, 5)), ("head.bias", (3,))]
            assert sorted(t) == sorted(n for n, _ in names), sorted(t)
            for p, (name, shape) in enumerate(names):
                want = np.array([exact(p, k) for k in range(int(np.prod(shape)))], dtype=np.float32).reshape(shape)
                np.testing.assert_array_equal(t[name], want)
    print("safetensors package read every file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
