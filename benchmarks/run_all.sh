#!/usr/bin/env bash
# Reproduce the figures in docs/performance.md (CPU). Run from the repository root with
# the virtual environment active. Each configuration runs in its own subprocess; run
# nothing else heavy at the same time (timings on a shared machine are noisy).
set -euo pipefail
R=benchmarks/results

# full-size 512 network, 512x288, depth+pose only (default), both rules, fp32 and bf16
python -m ttt3r.bench --suite speed --dtype fp32 bf16 --update ttt3r cut3r --frames 4 --warmup 1 \
    --out $R/speed_cpu.json
# the same with one thread (a fairer figure when other processes share the 2 cores)
python -m ttt3r.bench --suite speed --dtype fp32 bf16 --update ttt3r --frames 4 --warmup 1 --threads 1 \
    --keep-outputs 0 --out $R/speed_cpu_1thread.json
# reference: all three DPT heads (world points and RGB too), as the original computes them
python -m ttt3r.bench --suite speed --dtype fp32 --update ttt3r --heads all --frames 3 --warmup 1 \
    --keep-outputs 0 --out $R/speed_cpu_allheads.json
# memory against sequence length (small network), with plot
python -m ttt3r.bench --suite sweep --dtype fp32 bf16 --lengths 10 100 1000 --out $R/sweep_cpu.json
# start-up: a 3.2 GB released-layout checkpoint, loaded in fp32 and bf16
python -m ttt3r.bench --suite startup --dtype fp32 bf16 --out $R/startup_cpu.json

# On a CUDA machine (not measured here):
#   python -m ttt3r.bench --suite speed --device cuda --dtype fp32 bf16 --frames 20 --warmup 3 --out $R/speed_cuda.json
#   python -m ttt3r.bench --suite speed --device cuda --dtype bf16 --compile --frames 20 --warmup 5 --out $R/speed_cuda_compile.json
