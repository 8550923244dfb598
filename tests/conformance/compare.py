#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compares `shardrt plan --format json` with the peers' golden plans.

usage: compare.py SHARDRT_BIN [-v] [--raw] [CONFIG ...]

For each config in configs/, the golden file (gen_golden.py: what accelerate
1.15.0 and DeepSpeed 0.19.8 would run) is compared field by field with
libshardrt's resolved plan; a golden error must be a libshardrt error.
differences.json lists the few configs where libshardrt deliberately does
something else (a feature it lacks is named; a path accelerate cannot find
is found beside the config): there the listed expectation is checked
instead. Needs only the Python standard library; exit status 1 when any
config disagrees."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def plan_of(binary, name):
    r = subprocess.run([binary, "plan", "--format", "json", "--config_file", os.path.join("configs", name)],
                       cwd=HERE, capture_output=True, text=True, timeout=60)
    plan = None
    if r.returncode == 0:
        try:
            plan = json.loads(r.stdout)
        except ValueError:
            pass
    return r.returncode, plan, r.stderr


def same(want, have):
    if want == "auto":
        return isinstance(have, str) and have.startswith("auto")
    if isinstance(want, float) or isinstance(have, float):
        try:
            return abs(float(want) - float(have)) <= 1e-9 * max(1.0, abs(float(want)))
        except (TypeError, ValueError):
            return False
    return want == have


def check(binary, name, golden, diff):
    rc, plan, err = plan_of(binary, name)
    if diff:  # a documented choice of libshardrt
        kind, frag = diff["expect"], diff.get("match", "")
        if kind == "error":
            return (rc != 0 and frag in err), f"expected an error with '{frag}', got rc {rc}: {err.strip()[:300]}"
        if rc != 0:
            return False, f"expected a plan, got: {err.strip()[:300]}"
        if kind == "warning" and frag not in err and frag not in json.dumps(plan):
            return False, f"expected a warning with '{frag}', got: {err.strip()[:300]}"
        golden = dict(golden, **diff.get("fields", {}))
        if "error" in golden and kind in ("warning", "plan"):
            return True, ""
    if "error" in golden:
        return rc != 0, f"peers refuse it ({golden['error'][:160]}) but libshardrt gives a plan"
    if rc != 0 or plan is None:
        return False, f"peers run it, libshardrt refuses: {err.strip()[:300]}"
    bad = [f"{k}: peers {golden[k]!r}, libshardrt {plan.get(k, '(missing)')!r}" for k in sorted(golden)
           if not k.startswith("_") and not same(golden[k], plan.get(k))]
    return not bad, "; ".join(bad)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    verbose = "-v" in sys.argv[2:]
    only = [a for a in sys.argv[2:] if a not in ("-v", "--raw")]
    with open(os.path.join(HERE, "differences.json")) as f:
        diffs = json.load(f)
    if "--raw" in sys.argv[2:]:  # against the peers alone, no documented choices
        diffs = {}
    cdir = os.path.join(HERE, "configs")
    names = sorted(n for n in os.listdir(cdir) if os.path.isfile(os.path.join(cdir, n)))
    agree = documented = 0
    failed = []
    for name in names:
        if only and name not in only:
            continue
        with open(os.path.join(HERE, "golden", name + ".json")) as f:
            golden = json.load(f)
        ok, why = check(binary, name, golden, diffs.get(name))
        if ok:
            agree += 1
            documented += name in diffs
            if verbose:
                print(f"ok   {name}")
        else:
            failed.append(name)
            print(f"DIFF {name}: {why}")
    for name in sorted(diffs):
        if name not in names:
            failed.append(name)
            print(f"DIFF {name}: listed in differences.json but not in configs/")
    print(f"conformance: {agree} agree ({documented} of them documented differences), {len(failed)} disagree, "
          f"of {agree + len(failed)} configs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
