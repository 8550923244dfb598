#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Regenerates golden/ with the pinned peers: accelerate 1.15.0, deepspeed
# 0.19.8 and CPU torch in a throwaway virtual environment (DeepSpeed builds
# no ops: DS_BUILD_OPS=0; no GPU needed). PEERS_PYTHON=/path/to/python uses
# an existing interpreter with those versions instead. To move to newer
# peers, change the pins here and PINNED in gen_golden.py, then run this.
set -euo pipefail
cd "$(dirname "$0")"
export DS_BUILD_OPS=0
py=${PEERS_PYTHON:-}
if [ -z "$py" ]; then
  venv=$(mktemp -d)/peers
  trap 'rm -rf "$(dirname "$venv")"' EXIT
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu torch
  "$venv/bin/pip" install -q accelerate==1.15.0 deepspeed==0.19.8
  py=$venv/bin/python
fi
"$py" gen_golden.py "$@"
