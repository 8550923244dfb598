#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Joins the per-rank Chrome/Perfetto traces libshardrt writes (--trace) into
one trace with a process track per rank, on one time axis.

usage: merge_traces.py OUT.json RANK0.json RANK1.json ...

Each trace records the clock origin of its timestamps (otherData.clock_origin_s,
seconds of the monotonic clock); events are shifted by their trace's origin
less the earliest origin. The monotonic clock is per host: traces of ranks on
different hosts keep their own origin (aligned at their first event).
"""
import json
import sys


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    out, inputs = argv[0], argv[1:]
    traces = []
    for path in inputs:
        try:
            with open(path) as f:
                traces.append((path, json.load(f)))
        except (OSError, ValueError) as e:
            sys.exit(f"merge_traces: {path}: {e}")
    origins = [t.get("otherData", {}).get("clock_origin_s") for _, t in traces]
    known = [o for o in origins if isinstance(o, (int, float))]
    base = min(known) if known else 0.0
    events, ranks = [], []
    for (path, t), origin in zip(traces, origins):
        shift = (origin - base) * 1e6 if isinstance(origin, (int, float)) else 0.0
        ranks.append(t.get("otherData", {}).get("rank"))
        for e in t.get("traceEvents", []):
            if "ts" in e:
                e = dict(e, ts=e["ts"] + shift)
            events.append(e)
    merged = {"displayTimeUnit": "ms", "otherData": {"merged_from": inputs, "ranks": ranks}, "traceEvents": events}
    with open(out, "w") as f:
        json.dump(merged, f)
    print(f"merge_traces: {len(events)} events of {len(inputs)} traces -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
