"""A/B of inference variants in one process, on the same frames (formula weights, no download).

Variants (``--variants``), each a ``ttt3r.Session`` over the same synthetic frames:

* ``fp32``: the network in float32 (the reference of every comparison);
* ``bf16``: the weights cast to bfloat16 (``load_model(..., dtype="bf16")``);
* ``autocast``: the float32 network under ``torch.autocast(device, bfloat16)``;
* ``compile``: the ``--compile-dtype`` network with its blocks and self-view DPT
  ``torch.compile``-d (compilation happens in the untimed warm-up frames).

Running them in one process, interleaved ``--repeats`` times, takes the machine's load
out of the differences between them (``ttt3r bench`` runs each in a fresh process for
clean peak-memory figures instead). Each variant reports the median and best seconds per
timed frame and, against ``fp32`` on the same frames, the median relative depth
difference and the largest pose differences (:func:`ttt3r.bench.compare_outputs`).
Prints a table and writes ``OUT/ab_one_process.json`` (``OUT`` is created)::

    python benchmarks/ab_one_process.py --threads 1 --frames 3 --out runs/ab
    python benchmarks/ab_one_process.py --network tiny224 --size 64x48 --frames 2 --out runs/ab_tiny
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = ("fp32", "bf16", "autocast", "compile")


def build_variant(name: str, cfg, salt: str, device, compile_dtype: str):
    """(network, autocast dtype or None) of one variant."""
    import torch

    from ttt3r.bench import _compile, build_formula_model

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "autocast": torch.float32,
             "compile": {"fp32": torch.float32, "bf16": torch.bfloat16}[compile_dtype]}[name]
    model = build_formula_model(cfg, dtype, device, salt)
    if name == "compile":
        _compile(model)
    return model, (torch.bfloat16 if name == "autocast" else None)


def run_variant(model, autocast, frames: list[np.ndarray], warmup: int, size: int, device):
    """Stream ``frames`` through a fresh session: (times of the frames after ``warmup`` in s,
    depth maps (N, H, W), poses (N, 4, 4)) of every frame."""
    import contextlib

    import torch

    from ttt3r.session import Session

    sess = Session(model, size=size)
    times, depths, poses = [], [], []
    ctx = torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with ctx:
        for i, img in enumerate(frames):
            t0 = time.perf_counter()
            res = sess.step(img)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            depths.append(res.depth.astype(np.float32))
            poses.append(res.pose.astype(np.float64))
    return times, np.stack(depths), np.stack(poses)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", default="cut3r_512_dpt_4_64", help="a name of ttt3r.bench.model_config")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    ap.add_argument("--compile-dtype", choices=("fp32", "bf16"), default="bf16")
    ap.add_argument("--frames", type=int, default=3, help="timed frames per variant and repeat")
    ap.add_argument("--warmup", type=int, default=1, help="untimed frames first (2 or more with compile)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds over the variants, interleaved")
    ap.add_argument("--size", default="512x288", help="input WxH")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--out", required=True, help="folder for ab_one_process.json (created)")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or "fp32" not in variants:
        print(f"ab_one_process: error: --variants must include fp32 and be some of {', '.join(VARIANTS)}, "
              f"got {args.variants!r}", file=sys.stderr)
        return 2

    import torch

    from ttt3r.api import resolve_device
    from ttt3r.bench import _parse_hw, compare_outputs, machine_info, model_config, synthetic_frames
    from ttt3r.io.atomic import atomic_write_text

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    hw = _parse_hw(args.size)
    cfg, salt = model_config(args.network)
    frames = list(synthetic_frames(args.warmup + args.frames, hw))
    models = {v: build_variant(v, cfg, salt, device, args.compile_dtype) for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    outputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for rep in range(args.repeats):
        for v in variants:
            t, d, p = run_variant(*models[v], frames, args.warmup, max(hw), device)
            times[v] += t
            outputs.setdefault(v, (d, p))
            print(f"round {rep + 1}/{args.repeats} {v}: " + " ".join(f"{x:.3f}" for x in t) + " s/frame", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="ttt3r_ab_") as tmp:
        for v in variants:
            np.savez(Path(tmp) / f"{v}.npz", depth=outputs[v][0], pose=outputs[v][1])
        for v in variants:
            t = np.asarray(times[v])
            row = {"variant": v, "s_per_frame_median": float(np.median(t)), "s_per_frame_min": float(t.min()),
                   "n_timed": len(t)}
            if v != "fp32":
                row["vs_fp32"] = compare_outputs(str(Path(tmp) / "fp32.npz"), str(Path(tmp) / f"{v}.npz"))
            rows.append(row)
    ref = next(r for r in rows if r["variant"] == "fp32")["s_per_frame_median"]
    print(f"\n{args.network}, {hw[1]}x{hw[0]}, {torch.get_num_threads()} thread(s), {device}:")
    for r in rows:
        line = f"  {r['variant']:9s} median {r['s_per_frame_median']:.3f} s/frame (best {r['s_per_frame_min']:.3f}), " \
               f"{r['s_per_frame_median'] / ref - 1:+.0%} vs fp32"
        if "vs_fp32" in r:
            c = r["vs_fp32"]
            line += f"; depth rel diff median {c['depth_rel_diff_median']:.2e}, rotation diff max " \
                    f"{c['pose_rot_diff_deg_max']:.2f} deg"
        print(line)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"network": args.network, "size": args.size, "device": str(device), "threads": torch.get_num_threads(),
              "frames": args.frames, "warmup": args.warmup, "repeats": args.repeats,
              "compile_dtype": args.compile_dtype, "machine": machine_info(), "variants": rows}
    atomic_write_text(out / "ab_one_process.json", json.dumps(result, indent=1) + "\n")
    print(f"wrote {out / 'ab_one_process.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
