"""Error against sequence length (16 / 64 / 256 / 1000 frames) for several state-update rules.

Renders (once, cached in ``OUT/data``) long held-out synthetic sequences at the
model's training resolution, streams each one with every rule asked for and
reports, for each prefix length N:

* depth **Abs Rel** after per-sequence median scaling (constant-depth baseline);
* **ATE** after Sim(3) alignment, as a fraction of the trajectory extent
  (static-camera baseline);
* **RPE** between consecutive frames after the same alignment: translation as a
  fraction of the extent and rotation in degrees (static-camera baselines: the
  ground truth's own frame-to-frame motion).

Rules are update-rule names, optionally with periodic resets:
``cut3r``, ``ttt3r``, ``cut3r+reset64`` (state reset after every 64 frames, chunks
chained as in ``ttt3r reconstruct``).

Example (about a minute per 1000 frames and rule on one CPU thread at 128x96)::

    python benchmarks/length_experiment.py --model src/ttt3r/assets/models/synth_small \\
        --out runs/length --lengths 16,64,256,1000 --rules cut3r,ttt3r,cut3r+reset64

Writes ``OUT/results.json``, ``OUT/length.png`` and ``OUT/table.md`` and prints the
table. Prefixes share one streaming pass per rule: without resets the outputs of
the first N frames do not depend on what follows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

METRICS = ("abs_rel", "ate_frac", "rpe_trans_frac", "rpe_rot_deg")


def parse_rule(spec: str) -> tuple[str, int]:
    """``"cut3r+reset64"`` -> ``("cut3r", 64)``; ``"ttt3r"`` -> ``("ttt3r", 0)``."""
    m = re.fullmatch(r"([A-Za-z0-9_]+)(?:\+reset(\d+))?", spec.strip())
    if not m:
        raise SystemExit(f"length_experiment: bad rule {spec!r} (expected NAME or NAME+resetN)")
    return m.group(1), int(m.group(2) or 0)


def summarise(rows: list[dict], rules: list[str], lengths: list[int]) -> dict:
    out = {}
    for rule in rules:
        for n in lengths:
            rs = [r for r in rows if r["rule"] == rule and r["frames"] == n]
            keys = METRICS + ("abs_rel_const", "ate_frac_static", "rpe_trans_frac_static", "rpe_rot_deg_static")
            out[f"{rule}@{n}"] = {k: float(np.mean([r[k] for r in rs])) for k in keys}
    return out


def markdown_table(summary: dict, rules: list[str], lengths: list[int]) -> str:
    lines = ["| frames | rule | Abs Rel | constant depth | ATE / extent | static camera | RPE trans / extent "
             "| static camera | RPE rot (deg) | static camera |", "|---|---|---|---|---|---|---|---|---|---|"]
    for n in lengths:
        for rule in rules:
            m = summary[f"{rule}@{n}"]
            lines.append(f"| {n} | {rule} | {m['abs_rel']:.3f} | {m['abs_rel_const']:.3f} | {m['ate_frac']:.3f} "
                         f"| {m['ate_frac_static']:.3f} | {m['rpe_trans_frac']:.4f} | {m['rpe_trans_frac_static']:.4f} "
                         f"| {m['rpe_rot_deg']:.2f} | {m['rpe_rot_deg_static']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, rules: list[str], lengths: list[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [("abs_rel", "depth Abs Rel", "abs_rel_const", "constant depth"),
              ("ate_frac", "ATE / extent (Sim(3))", "ate_frac_static", "static camera"),
              ("rpe_trans_frac", "RPE translation / extent", "rpe_trans_frac_static", "static camera"),
              ("rpe_rot_deg", "RPE rotation (deg)", "rpe_rot_deg_static", "static camera")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (key, label, base, base_label) in zip(axes, panels):
        for rule in rules:
            ax.plot(lengths, [summary[f"{rule}@{n}"][key] for n in lengths], marker="o", label=rule)
        if base:
            ax.plot(lengths, [summary[f"{rules[0]}@{n}"][base] for n in lengths], "k--", lw=1, label=base_label)
        ax.set_xscale("log"), ax.set_xlabel("frames"), ax.set_title(label), ax.grid(alpha=0.3)
        ax.set_xticks(lengths, [str(n) for n in lengths])
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="weights folder (e.g. src/ttt3r/assets/models/synth_small)")
    p.add_argument("--out", required=True, help="output folder (rendered sequences cached in OUT/data)")
    p.add_argument("--lengths", default="16,64,256,1000", help="prefix lengths in frames")
    p.add_argument("--motions", default="walk,loop,orbit,forward", help="motions, cycled over the sequences")
    p.add_argument("--sequences", type=int, default=4, help="number of sequences (seeds seed0, seed0+1, ...)")
    p.add_argument("--seed0", type=int, default=950000, help="seed of the first sequence (unseen in training)")
    p.add_argument("--stride", type=int, default=1, help="use every N-th rendered frame")
    p.add_argument("--size", default="128x96", help="WxH of the rendered frames (the model's training size)")
    p.add_argument("--rules", default="cut3r,ttt3r,cut3r+reset64", help="rules, NAME or NAME+resetN")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)

    from ttt3r.api import load_model
    from ttt3r.synth import render_sequence
    from ttt3r.train.data import SeqArrays
    from ttt3r.train.evaluate import predict_sequence, sequence_metrics

    torch.set_num_threads(a.threads)
    lengths = sorted(int(x) for x in a.lengths.split(","))
    rules = [r.strip() for r in a.rules.split(",") if r.strip()]
    parsed = {r: parse_rule(r) for r in rules}
    motions = [m.strip() for m in a.motions.split(",") if m.strip()]
    w, h = (int(v) for v in a.size.lower().split("x"))
    out = Path(a.out)
    model = load_model(a.model, device="cpu")
    rows = []
    for i in range(a.sequences):
        motion, seed = motions[i % len(motions)], a.seed0 + i
        n_render = (lengths[-1] - 1) * a.stride + 1
        path = render_sequence(out / "data" / f"{motion}_s{seed}_{n_render}", frames=n_render, seed=seed,
                               motion=motion, size=(w, h), progress=False)
        seq = SeqArrays.load(path)
        idx = np.arange(lengths[-1]) * a.stride
        gt_depth = seq.depth[idx]
        gt_poses = np.linalg.inv(seq.poses[0])[None] @ seq.poses[idx]
        for rule in rules:
            name, reset = parsed[rule]
            t0 = time.perf_counter()
            depth, poses = predict_sequence(model, seq.rgb[idx], name, reset_every=reset)
            fps = len(idx) / (time.perf_counter() - t0)
            for n in lengths:
                row = dict(motion=motion, seed=seed, rule=rule, frames=n, fps=fps,
                           **sequence_metrics(depth[:n], poses[:n], gt_depth[:n], gt_poses[:n]))
                rows.append(row)
                print(f"{motion:<8} s{seed} {rule:<14} N={n:<5} AbsRel {row['abs_rel']:.3f} "
                      f"(const {row['abs_rel_const']:.3f})  ATE/ext {row['ate_frac']:.3f} "
                      f"(static {row['ate_frac_static']:.3f})  RPE {row['rpe_trans_frac']:.4f} "
                      f"{row['rpe_rot_deg']:.2f} deg  {fps:.1f} fps", flush=True)
    summary = summarise(rows, rules, lengths)
    out.mkdir(parents=True, exist_ok=True)
    setup = dict(model=str(a.model), sequences=a.sequences, motions=motions, seed0=a.seed0, stride=a.stride,
                 size=[w, h], lengths=lengths, rules=rules)
    (out / "results.json").write_text(json.dumps({"setup": setup, "rows": rows, "summary": summary}, indent=1) + "\n")
    table = markdown_table(summary, rules, lengths)
    (out / "table.md").write_text(table)
    plot(summary, rules, lengths, out / "length.png",
         f"{Path(a.model).name}: mean over {a.sequences} unseen sequences ({', '.join(motions)}), stride {a.stride}")
    print(f"\nmean over {a.sequences} sequences:\n{table}\nwrote {out / 'results.json'}, {out / 'length.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
