"""Peak host memory of the whole ``ttt3r reconstruct`` pipeline against sequence length.

Generates a synthetic video of N frames, writes a tiny formula-weight checkpoint in the
released layout (no download), runs ``ttt3r reconstruct`` (network, every writer: demo
layout, trajectory, fused PLY, COLMAP, preview) in a fresh subprocess per length and
reports its peak RSS. Usage::

    python benchmarks/reconstruct_memory.py --lengths 100 1000 --out benchmarks/results/reconstruct_memory.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np


def make_video(path: Path, n: int, w: int = 320, h: int = 240) -> None:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            r = 127 + 120 * np.sin((xx + 3 * i) / 11.0)
            g = 127 + 120 * np.cos((yy - 2 * i) / 9.0)
            b = 127 + 120 * np.sin((xx + yy + i) / 17.0)
            img = np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def tiny_checkpoint(path: Path) -> None:
    import torch
    from omegaconf import OmegaConf

    from ttt3r.bench import NETWORKS_FILE
    from ttt3r.config import ModelConfig
    from ttt3r.formula import formula_state_dict
    from ttt3r.weights import build_model

    constructor = json.loads(NETWORKS_FILE.read_text())["tiny224"]["model"]
    model = build_model(ModelConfig.from_constructor(constructor), "meta")
    sd = formula_state_dict([(k, tuple(v.shape)) for k, v in model.state_dict().items()])
    torch.save({"args": OmegaConf.create({"model": constructor}), "model": sd}, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lengths", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--exports", default="demo,trajectory,ply,colmap,preview")
    ap.add_argument("--out", default="benchmarks/results/reconstruct_memory.json")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "tiny224.pth"
        tiny_checkpoint(ckpt)
        for n in args.lengths:
            video = tmp / f"v{n}.mp4"
            make_video(video, n)
            code = ("import resource, sys; from ttt3r.cli import main; "
                    f"rc = main(['reconstruct', {str(video)!r}, '--out', {str(tmp / f'out{n}')!r}, '--weights', "
                    f"{str(ckpt)!r}, '--export', {args.exports!r}, '--quiet', '--device', 'cpu']); "
                    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            dt = time.perf_counter() - t0
            peak = int(out.split("PEAK_KB")[-1].split()[0]) / 1024
            done = json.loads((tmp / f"out{n}" / "run.json").read_text())["frames_done"]
            if done != n:
                raise SystemExit(f"{n}-frame run finished {done} frames")
            results.append({"frames": n, "peak_rss_mib": round(peak, 1), "seconds": round(dt, 1),
                            "s_per_frame": round(dt / n, 4)})
            print(f"{n:6d} frames: peak RSS {peak:8.1f} MiB, {dt:7.1f} s ({dt / n * 1000:.0f} ms/frame)")
    if len(results) > 1:
        a, b = results[0], results[-1]
        growth = b["peak_rss_mib"] / a["peak_rss_mib"] - 1
        print(f"peak at {b['frames']} frames vs {a['frames']}: {growth * 100:+.1f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"exports": args.exports, "runs": results,
                                          "machine": "2-core x86 dev machine, CPU only"}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
