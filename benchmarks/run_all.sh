#!/usr/bin/env bash
# Reproduce the figures in docs/performance.md (CPU). Run from the repository root with
# the virtual environment active. Each configuration runs in its own subprocess; run
# nothing else heavy at the same time. On a shared 2-core machine use --threads 1
# (see docs/performance.md); on an idle machine also run the default (all cores).
set -euo pipefail
R=benchmarks/results
T=${THREADS:-1}

# full-size 512 network, 512x288, depth+pose only (default heads), fp32 and bf16
python -m ttt3r.bench --suite speed --dtype fp32 bf16 --update ttt3r --frames 3 --warmup 1 --threads $T \
    --out $R/speed_cpu_1thread.json
python -m ttt3r.bench --suite speed --dtype fp32 bf16 --update cut3r --frames 3 --warmup 1 --threads $T \
    --out $R/speed_cpu_1thread_cut3r.json
# reference: all three DPT heads (world points and RGB too), as the original always computes them
python -m ttt3r.bench --suite speed --dtype fp32 bf16 --update ttt3r --heads all --frames 2 --warmup 1 \
    --threads $T --keep-outputs 0 --out $R/speed_cpu_1thread_allheads.json
# a longer bf16 run (steadier timing, RSS after each of 31 frames)
python -m ttt3r.bench --suite speed --dtype bf16 --frames 30 --warmup 1 --threads $T --keep-outputs 0 \
    --out $R/speed_cpu_bf16_30frames.json
# torch.compile (inductor, CPU): the blocks and the self-view DPT; ~40 s of compilation on the first frames
TORCHINDUCTOR_COMPILE_THREADS=1 python -m ttt3r.bench --suite speed --dtype fp32 bf16 --frames 3 --warmup 2 \
    --threads $T --compile --keep-outputs 5 --out $R/speed_cpu_1thread_compile.json
# two threads (on the shared machine this is the pathological case, see the docs)
python -m ttt3r.bench --suite speed --dtype fp32 bf16 --frames 3 --warmup 1 --threads 2 --keep-outputs 0 \
    --out $R/speed_cpu_2threads.json
# memory against sequence length (small network), with plot
python -m ttt3r.bench --suite sweep --dtype fp32 bf16 --lengths 10 100 1000 --threads $T --out $R/sweep_cpu.json
# start-up: a 3.2 GB released-layout checkpoint, loaded in fp32 and bf16
python -m ttt3r.bench --suite startup --dtype fp32 bf16 --threads $T --out $R/startup_cpu.json
# A/B in one process on the same frames: fp32, bf16 weights, fp32 under bf16 autocast, compiled bf16
TORCHINDUCTOR_COMPILE_THREADS=1 python benchmarks/ab_one_process.py --threads $T --frames 3 --warmup 2 --out $R/ab
# tables for docs/performance.md
python benchmarks/summarize.py

# On a CUDA machine (not measured here):
#   python -m ttt3r.bench --suite speed --device cuda --dtype fp32 bf16 --frames 20 --warmup 3 --out $R/speed_cuda.json
#   python -m ttt3r.bench --suite speed --device cuda --dtype bf16 --compile --frames 20 --warmup 5 --out $R/speed_cuda_compile.json
