#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark (not a test; needs one GPU): train_gpt against PyTorch FSDP2 on
# the same model, batch and GPU, in one call. GPT-2 124M shape (+ untied
# head), seq 1024, bf16, world 1:
#   shardrt NO_SHARD, shardrt FULL_SHARD   (build/bin/train_gpt, --mixed_precision bf16),
#   shardrt FULL_SHARD --flash_attention   (the fused attention kernel, opt-in until verified)
#   torch eager, torch compile             (tests/bench/torch_gpt_fsdp2.py: fully_shard +
#                                           bf16 MixedPrecisionPolicy + fused AdamW)
# For each: tokens/s (median step after warm-up), MFU (llm.c: 6N + 6 L C T FLOP
# per token over the GPU's bf16 dense peak), peak GPU memory (nvidia-smi's
# used memory sampled every 100 ms minus the idle level: the same yardstick
# for both, and it counts the CUDA context and allocator caches), and the
# ratios the targets are stated in. Losses are printed as a sanity check only
# (each side has its own initial draw and data). Writes OUTDIR/summary.txt (the
# summary), OUTDIR/*.log and *.jsonl; exits non-zero if a run failed.
#
#   tests/bench/gpu_gpt_vs_torch.sh OUTDIR
# Environment: GB (global batch in sequences, 16), STEPS (20), WARMUP (5),
#   PRESET (gpt2), PEAK_TFLOPS (bf16 dense peak; default from the GPU name),
#   TORCH_PYTHON (python3), SHARDRT_BIN_DIR (build/bin), DEVICE (cuda; cpu runs the
#   same plumbing on the CPU with gloo, e.g. DEVICE=cpu PRESET=tiny, to check the
#   script itself without a GPU: no memory or MFU figures then).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
mkdir -p "$1" && OUT=$(cd "$1" && pwd) || exit 2
BIN=${SHARDRT_BIN_DIR:-$ROOT/build/bin}
GB=${GB:-16} STEPS=${STEPS:-20} WARMUP=${WARMUP:-5} PRESET=${PRESET:-gpt2} PY=${TORCH_PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
SUMMARY=$OUT/summary.txt
if [ "$DEVICE" = cpu ]; then
  GPU="CPU (plumbing check)" PEAK_TFLOPS=${PEAK_TFLOPS:-0}
elif ! GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 2>/dev/null); then
  echo "gpu_gpt_vs_torch: no GPU (nvidia-smi failed): nothing measured" | tee "$SUMMARY" >&2
  exit 2
fi
if [ ! -x "$BIN/train_gpt" ]; then
  echo "gpu_gpt_vs_torch: $BIN/train_gpt is missing (build with CUDA first)" | tee "$SUMMARY" >&2
  exit 2
fi
# dense bf16 peaks from the vendors' data sheets (SXM parts)
if [ -z "${PEAK_TFLOPS:-}" ]; then
  case $GPU in
    *H100*|*H200*|*GH200*) PEAK_TFLOPS=989.4;;
    *B200*) PEAK_TFLOPS=2250;;
    *A100*) PEAK_TFLOPS=312;;
    *L40S*) PEAK_TFLOPS=362;;
    *) PEAK_TFLOPS=0; echo "unknown GPU '$GPU': set PEAK_TFLOPS for MFU" >&2;;
  esac
fi

# nvidia-smi's used memory every 100 ms while "$@" runs -> OUT/NAME.mem
failed=0
measured() { # NAME command...
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 >"$OUT/$name.mem" 2>/dev/null
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 >>"$OUT/$name.mem" 2>/dev/null &
  local sampler=$!
  local t0=$SECONDS
  if "$@" >"$OUT/$name.log" 2>&1; then
    echo "ok     $name ($((SECONDS - t0)) s)"
  else
    echo "FAILED $name ($((SECONDS - t0)) s): see $name.log"
    failed=1
  fi
  kill "$sampler" 2>/dev/null
  wait "$sampler" 2>/dev/null
}

shardrt() { # STRATEGY [LOG_SUFFIX train_gpt flags...]
  local strat=$1 suffix=${2:-}; shift; [ $# -gt 0 ] && shift
  mpirun --oversubscribe --bind-to none -np 1 "$BIN/train_gpt" --quiet --device "$DEVICE" --preset "$PRESET" \
    --steps "$STEPS" --global_batch "$GB" --mixed_precision bf16 --use_fsdp --fsdp_sharding_strategy "$strat" \
    --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP --fsdp_transformer_layer_cls_to_wrap GPT2Block \
    --fsdp_forward_prefetch true --fsdp_backward_prefetch BACKWARD_PRE --log "$OUT/shardrt_$strat$suffix.jsonl" "$@"
}
torchrun_() { # NAME extra flags...
  local name=$1; shift
  "$PY" "$ROOT/tests/bench/torch_gpt_fsdp2.py" --preset "$PRESET" --batch "$GB" --steps "$STEPS" --warmup "$WARMUP" \
    --device "$DEVICE" --peak_tflops "$PEAK_TFLOPS" --json "$OUT/$name.json" "$@"
}

echo "$GPU; preset $PRESET, global batch $GB sequences, $STEPS steps (first $WARMUP excluded), bf16 peak $PEAK_TFLOPS TFLOP/s"
measured shardrt_NO_SHARD shardrt NO_SHARD
measured shardrt_FULL_SHARD shardrt FULL_SHARD
[ "$DEVICE" = cpu ] || measured shardrt_FULL_SHARD_flash shardrt FULL_SHARD _flash --flash_attention
measured torch_eager torchrun_ torch_eager
measured torch_compile torchrun_ torch_compile --compile

"$PY" - "$OUT" "$WARMUP" "$PEAK_TFLOPS" "$GB" "$GPU" "$PRESET" >"$SUMMARY" <<'PY'
import json, os, statistics, sys
out, warm, peak, gb, gpu, preset = sys.argv[1:3] + [float(sys.argv[3]), int(sys.argv[4])] + sys.argv[5:7]
warm = int(warm)
L, C, T = {"tiny": (2, 32, 32), "small": (4, 256, 128), "gpt2": (12, 768, 1024)}[preset]  # gpt_model.c
rows = {}
def mem_peak(name):
    try:
        v = [float(l) for l in open(os.path.join(out, name + ".mem")) if l.strip()]
        return (max(v) - v[0]) * 2**20 if v else None  # MiB -> bytes, above idle
    except (OSError, ValueError):
        return None
for s in ("NO_SHARD", "FULL_SHARD", "FULL_SHARD_flash"):
    try:
        recs = [json.loads(l) for l in open(os.path.join(out, f"shardrt_{s}.jsonl"))]
    except OSError:
        continue
    if len(recs) <= warm:
        continue
    n = recs[0]["num_params"]
    step = statistics.median(r["step_time_s"] for r in recs[warm:])
    rows[f"shardrt {s}"] = dict(tok=None, step=step, n=n, mem=mem_peak(f"shardrt_{s}"),
                                loss=(recs[0]["loss"], recs[-1]["loss"]))
for name in ("torch_eager", "torch_compile"):
    try:
        r = json.load(open(os.path.join(out, name + ".json")))
    except (OSError, ValueError):
        continue
    rows[name.replace("_", " ")] = dict(tok=r["tokens_per_s"], step=r["step_s"], n=r["num_params"],
                                        mem=mem_peak(name), loss=(r["first_loss"], r["last_loss"]),
                                        alloc=r.get("peak_alloc_bytes"))
if not rows:
    print("no run produced figures")
    sys.exit(1)
any_row = next(iter(rows.values()))
print(f"{gpu}: preset {preset} ({any_row['n']/1e6:.1f}M params), global batch {gb} x {T} tokens, world 1, bf16")
print(f"{'run':20} {'step ms':>8} {'tokens/s':>10} {'MFU %':>6} {'peak GiB':>9} {'loss first->last':>18}")
for k, r in rows.items():
    if r["tok"] is None:
        r["tok"] = gb * T / r["step"]
    fpt = 6 * r["n"] + 6 * L * C * T  # llm.c's FLOP per token
    r["mfu"] = r["tok"] * fpt / (peak * 1e12) if peak > 0 else float("nan")
    mem = f"{r['mem']/2**30:9.2f}" if r["mem"] is not None else f"{'?':>9}"
    print(f"{k:20} {r['step']*1e3:8.1f} {r['tok']:10.0f} {100*r['mfu']:6.1f} {mem} "
          f"{r['loss'][0]:8.3f}->{r['loss'][1]:.3f}")
def ratio(a, b, what, target=None, higher=True):
    if a in rows and b in rows:
        x = rows[a]["tok"] / rows[b]["tok"]
        verdict = "" if target is None else ("  (target met)" if (x >= target if higher else x <= target) else "  (target NOT met)")
        print(f"{what:44} {x:6.3f}{verdict}")
ratio("shardrt FULL_SHARD", "torch eager", "tokens/s FULL_SHARD / torch eager (>= 1)", 1.0)
ratio("shardrt FULL_SHARD", "torch compile", "tokens/s FULL_SHARD / torch compile")
ratio("shardrt FULL_SHARD", "shardrt NO_SHARD", "tokens/s FULL_SHARD / NO_SHARD (>= 0.97)", 0.97)
ratio("shardrt FULL_SHARD_flash", "torch eager", "tokens/s FULL_SHARD flash / torch eager")
ratio("shardrt FULL_SHARD_flash", "shardrt FULL_SHARD", "tokens/s flash / materialised attention")
ratio("torch compile", "torch eager", "tokens/s torch compile / eager")
if "shardrt FULL_SHARD" in rows and peak > 0:
    m = rows["shardrt FULL_SHARD"]["mfu"]
    print(f"{'MFU FULL_SHARD (>= 40%)':44} {100*m:6.1f}%" + ("  (target met)" if m >= 0.4 else "  (target NOT met)"))
PY
cat "$SUMMARY"
exit $failed
