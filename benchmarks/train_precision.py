"""Training-step time in float32 against precision = "bf16", on the same batches.

Renders a few synthetic sequences (or reads them from a pool), then alternates
fp32 and bf16 trainers over the same batches, so both see the same machine load;
prints seconds per step and milliseconds per frame, and the bf16 speed-up.

    python benchmarks/train_precision.py --config configs/experiments/train_small_stage10.toml \
        --batch 8 16 --steps 6 --out benchmarks/results/train_precision_cpu.json

Run nothing else heavy at the same time (the figures are ratios within one run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import torch

from ttt3r.io.atomic import atomic_write_text
from ttt3r.train.config import load_config
from ttt3r.train.data import ClipSampler, prepare_pool
from ttt3r.train.loop import build_training_model, make_optimizer, train_step


def time_steps(cfg, seqs, steps: int) -> dict[str, float]:
    """Mean wall time of ``steps`` steps after one warm-up step (fresh model per call)."""
    sampler = ClipSampler(seqs, cfg.data, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_training_model(cfg, torch.device("cpu"))
    opt = make_optimizer(model, cfg)
    train_step(model, opt, sampler.batch(0, cfg.optim.batch), cfg, cfg.optim.lr, 0)
    frames, t = 0, 0.0
    for k in range(1, steps + 1):
        batch = sampler.batch(k, cfg.optim.batch)
        t0 = time.perf_counter()
        train_step(model, opt, batch, cfg, cfg.optim.lr, k)
        t += time.perf_counter() - t0
        frames += batch.img.shape[0] * batch.img.shape[1]
    return {"s_per_step": t / steps, "ms_per_frame": 1000 * t / frames}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/experiments/train_small_stage10.toml")
    ap.add_argument("--pool", help="pool folder to read training sequences from (default: render 8 into a temp dir)")
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2, help="fp32/bf16 alternations per batch size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="JSON file for the figures")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args.config, [f"data.train_sequences={args.sequences}", "data.heldout_sequences=0",
                                        f"data.dir={json.dumps(args.pool or tmp)}", f"threads={args.threads}"])
        if not args.pool:
            prepare_pool(cfg.data, splits=("train",), log=lambda s: None)
        seqs = ClipSampler.from_pool(cfg.data, cfg.seed, workers=args.threads).seqs

    rows = []
    for batch in args.batch:
        for rep in range(args.repeats):
            for prec in ("fp32", "bf16"):
                c = dataclasses.replace(cfg, precision=prec, optim=dataclasses.replace(cfg.optim, batch=batch))
                r = dict(batch=batch, precision=prec, repeat=rep, **time_steps(c, seqs, args.steps))
                rows.append(r)
                print(f"batch {batch:3d} {prec}: {r['s_per_step']:.2f} s/step, {r['ms_per_frame']:.1f} ms/frame",
                      flush=True)
    summary = {}
    for batch in args.batch:
        ms = {p: min(r["ms_per_frame"] for r in rows if r["batch"] == batch and r["precision"] == p)
              for p in ("fp32", "bf16")}
        summary[str(batch)] = dict(**{f"{p}_ms_per_frame": v for p, v in ms.items()}, speedup=ms["fp32"] / ms["bf16"])
        print(f"batch {batch}: bf16 {summary[str(batch)]['speedup']:.2f}x faster per frame (best of {args.repeats})")
    if args.out:
        report = dict(config=args.config, threads=args.threads, steps=args.steps, torch=torch.__version__,
                      rows=rows, summary=summary)
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
