"""cut3r vs ttt3r update rule as the sequence grows (16 / 64 / 256 / 1000 frames).

Renders (once, cached) long held-out synthetic sequences with the training
resolution of the model, streams each with both rules and reports, for each
prefix length N, the depth Abs Rel after per-sequence median scaling and the
ATE after Sim(3) alignment as a fraction of the trajectory extent (see
:mod:`ttt3r.train.evaluate`), with the constant-depth and static-camera baselines.

Example (a few minutes per 1000-frame sequence on one CPU thread at 128x96)::

    python benchmarks/length_experiment.py --model runs/small/model --out runs/length \\
        --lengths 16,64,256,1000 --motions walk,loop --seed0 950000

Writes ``OUT/results.json`` and prints a table. Prefixes share one streaming
pass per rule: the state after N frames is the same whether or not more follow.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="weights folder (e.g. runs/small/model)")
    p.add_argument("--out", required=True, help="output folder (rendered sequences cached in OUT/data)")
    p.add_argument("--lengths", default="16,64,256,1000", help="prefix lengths in frames")
    p.add_argument("--motions", default="walk,loop,orbit,forward", help="one sequence per motion")
    p.add_argument("--seed0", type=int, default=950000, help="seed of the first sequence (unseen in training)")
    p.add_argument("--stride", type=int, default=1, help="use every N-th rendered frame")
    p.add_argument("--size", default="128x96", help="WxH of the rendered frames (the model's training size)")
    p.add_argument("--rules", default="cut3r,ttt3r")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)

    from ttt3r.api import load_model
    from ttt3r.eval.metrics_depth import depth_metrics
    from ttt3r.eval.metrics_pose import pose_metrics
    from ttt3r.synth import render_sequence
    from ttt3r.train.data import SeqArrays
    from ttt3r.train.evaluate import extent, predict_sequence, static_ate

    torch.set_num_threads(a.threads)
    lengths = sorted(int(x) for x in a.lengths.split(","))
    w, h = (int(v) for v in a.size.lower().split("x"))
    out = Path(a.out)
    model = load_model(a.model, device="cpu")
    rows = []
    for i, motion in enumerate(a.motions.split(",")):
        seed = a.seed0 + i
        n_render = (lengths[-1] - 1) * a.stride + 1
        path = render_sequence(out / "data" / f"{motion}_s{seed}_{n_render}", frames=n_render, seed=seed,
                               motion=motion, size=(w, h), progress=False)
        seq = SeqArrays.load(path)
        idx = np.arange(lengths[-1]) * a.stride
        gt_depth = seq.depth[idx]
        gt_poses = np.linalg.inv(seq.poses[0])[None] @ seq.poses[idx]
        for rule in a.rules.split(","):
            t0 = time.perf_counter()
            depth, poses = predict_sequence(model, seq.rgb[idx], rule)
            fps = len(idx) / (time.perf_counter() - t0)
            for n in lengths:
                g, c = gt_depth[:n], gt_poses[:n, :3, 3]
                ext = extent(c)
                row = dict(motion=motion, seed=seed, rule=rule, frames=n, fps=fps,
                           abs_rel=depth_metrics(np.maximum(depth[:n], 1e-6), g, "median").abs_rel,
                           abs_rel_const=depth_metrics(np.ones_like(g), g, "median").abs_rel,
                           ate_frac=(pose_metrics(gt_poses[:n], poses[:n]).ate.rmse / ext
                                     if np.isfinite(poses[:n]).all() else float("nan")),
                           ate_frac_static=static_ate(c) / ext)
                rows.append(row)
                print(f"{motion:<8} {rule:<6} N={n:<5} AbsRel {row['abs_rel']:.3f} (const {row['abs_rel_const']:.3f})"
                      f"  ATE/ext {row['ate_frac']:.3f} (static {row['ate_frac_static']:.3f})", flush=True)
    summary = {}
    for rule in a.rules.split(","):
        for n in lengths:
            rs = [r for r in rows if r["rule"] == rule and r["frames"] == n]
            summary[f"{rule}@{n}"] = {k: float(np.mean([r[k] for r in rs]))
                                      for k in ("abs_rel", "abs_rel_const", "ate_frac", "ate_frac_static")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1) + "\n")
    print("\nmean over sequences:")
    for k, m in summary.items():
        print(f"  {k:<12} AbsRel {m['abs_rel']:.3f} (const {m['abs_rel_const']:.3f})  "
              f"ATE/ext {m['ate_frac']:.3f} (static {m['ate_frac_static']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
