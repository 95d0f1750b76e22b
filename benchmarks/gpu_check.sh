#!/bin/sh
# The GPU check in one line: benchmarks/gpu_check.sh OUT_DIR [more benchmarks/gpu_check.py options]
# Uses python3 (or $PYTHON); a .whl folder at the repository root (e.g. omegaconf, for the parity
# tests) is installed offline first. Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.log.
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [options]}
shift
set -- --out "$out" "$@"
if [ -d "$root/.whl" ]; then set -- "$@" --wheels "$root/.whl"; fi
PYTHONUNBUFFERED=1 exec "${PYTHON:-python3}" "$root/benchmarks/gpu_check.py" "$@"
