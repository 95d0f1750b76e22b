"""Chunk alignment on long synthetic sequences: ATE, time and memory per frame.

Sequences: ``ttt3r synth`` loop, walk and forward (rendered at 128x96 into
``--data`` if missing). Two predictors, the same chunk aligner:

* the drift oracle (``--oracle-drift scale=2,rot=0.05,noise=0.01``; no
  network, so the full ``--frames`` (1,000) are cheap), seeds 0-2;
* the bundled small network (``src/ttt3r/assets/models/synth_small``), on the
  first ``--network-frames`` frames only (it runs on the CPU here).

Configurations: no chunks (one state for the whole sequence), the SE(3) chain
(``--chunk N --overlap 1 --chunk-align se3`` = ``--reset-every N``), and Sim(3)
with overlap 1, 4 and 16. ATE is the RMSE after a Sim(3) alignment to the
ground truth. Time per frame is wall time of the stream (prediction, re-feeds,
fits); peak memory is tracemalloc's peak of Python/numpy allocations during
the stream (torch's CPU allocator is not traced), outputs not kept.

    PYTHONPATH=src python benchmarks/chunk_alignment.py            # ~15 min on 2 busy cores
    PYTHONPATH=src python benchmarks/chunk_alignment.py --parts network   # rerun one part, keep the other
    -> benchmarks/results/chunk_alignment.json, docs/figures/chunk_alignment.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

from ttt3r.chunking import ChunkedSession, ChunkSettings
from ttt3r.chunking.oracle import DriftOracle, DriftSpec
from ttt3r.eval.metrics_pose import absolute_trajectory_error

MOTIONS = ("loop", "walk", "forward")
ROOT = Path(__file__).resolve().parents[1]


def configs(n: int) -> dict[str, ChunkSettings | None]:
    return {"none": None, "se3 chain K=1": ChunkSettings(n, 1, "se3"), "sim3 K=1": ChunkSettings(n, 1, "sim3"),
            "sim3 K=4": ChunkSettings(n, 4, "sim3"), "sim3 K=16": ChunkSettings(n, 16, "sim3")}


def load(data: Path, motion: str, frames: int):
    from ttt3r.synth import load_sequence
    from ttt3r.synth.render import render_sequence

    folder = data / f"{motion}{frames}"
    if not (folder / "meta.json").is_file() or not json.loads((folder / "meta.json").read_text()).get("complete"):
        render_sequence(folder, frames=frames, seed=0, motion=motion, size=(128, 96), progress=False)
    return load_sequence(folder)


def stream(cs: ChunkedSession, frames) -> tuple[np.ndarray, float, float]:
    """Poses, seconds per frame and peak traced MiB of streaming ``frames`` through ``cs``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    poses = np.stack([cs.step(f).pose for f in frames])
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return poses, dt / len(poses), peak


def record(poses, gt, per_frame, peak, cs: ChunkedSession) -> dict:
    al = cs.alignments[1:]
    return {"ate": float(absolute_trajectory_error(gt, poses).rmse), "ms_per_frame": 1e3 * per_frame,
            "peak_traced_mib": peak, "chunks": len(cs.alignments) or 1,
            "fit_ms_per_chunk": 1e3 * float(np.mean([a.seconds for a in al])) if al else 0.0,
            "confidence_mean": float(np.mean([a.confidence for a in al])) if al else None,
            "scale_range": [float(min(a.scale for a in al)), float(max(a.scale for a in al))] if al else None}


def oracle_part(data: Path, frames: int, chunk: int, spec_text: str, seeds) -> dict:
    out: dict = {}
    for motion in MOTIONS:
        seq = load(data, motion, frames)
        gt = np.asarray(seq.poses)
        K = np.tile(seq.intrinsics, (len(seq), 1, 1))
        depth = [seq.depth(i) for i in range(len(seq))]
        out[motion] = {}
        for name, st in configs(chunk).items():
            runs = []
            for seed in seeds:
                spec = DriftSpec.parse(f"{spec_text},seed={seed}")
                cs = ChunkedSession(DriftOracle(spec, gt, K, depth.__getitem__, key=motion), st)
                poses, per_frame, peak = stream(cs, range(len(seq)))
                runs.append(record(poses, gt, per_frame, peak, cs))
            out[motion][name] = {k: (float(np.mean([r[k] for r in runs])) if isinstance(runs[0][k], float) else
                                     runs[0][k]) for k in runs[0]} | {"ate_per_seed": [r["ate"] for r in runs]}
            print(f"oracle {motion:8s} {name:14s} ATE {out[motion][name]['ate']:.4f} "
                  f"{out[motion][name]['ms_per_frame']:.2f} ms/frame", flush=True)
    return out


def network_part(data: Path, frames: int, net_frames: int, chunk: int, threads: int) -> dict:
    import torch

    import ttt3r
    from ttt3r.chunking import NetworkChunks
    from ttt3r.pipeline import BUNDLED_MODEL
    from ttt3r.preprocess import preprocess

    torch.set_num_threads(threads)
    model = ttt3r.load_model(str(BUNDLED_MODEL), device="cpu", quiet=True)
    out: dict = {"threads": torch.get_num_threads()}
    for motion in MOTIONS:
        seq = load(data, motion, frames)
        gt = np.asarray(seq.poses)[:net_frames]
        pre = [preprocess(seq.rgb(i), model.cfg.default_size) for i in range(net_frames)]
        out[motion] = {}
        for name, st in configs(chunk).items():
            cs = ChunkedSession(NetworkChunks(ttt3r.Session(model, update="ttt3r")), st)
            poses, per_frame, peak = stream(cs, pre)
            out[motion][name] = record(poses, gt, per_frame, peak, cs)
            print(f"network {motion:8s} {name:14s} ATE {out[motion][name]['ate']:.4f} "
                  f"{out[motion][name]['ms_per_frame']:.1f} ms/frame", flush=True)
    return out


def plot(res: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    parts = [("oracle", f"drift oracle ({res['settings']['oracle_drift']}), {res['settings']['frames']} frames, "
                        f"N={res['settings']['chunk']}")]
    if "oracle_extra" in res:
        parts.append(("oracle_extra", f"drift oracle ({res['settings']['oracle_drift_extra']}), "
                                      f"{res['settings']['frames']} frames, N={res['settings']['chunk']}"))
    parts += [("network", f"bundled small network, {res['settings']['network_frames']} frames, "
                         f"N={res['settings']['network_chunk']}")]
    fig = Figure(figsize=(5.2 * len(parts), 4.4), dpi=110)
    for k, (part, title) in enumerate(parts):
        ax = fig.add_subplot(1, len(parts), k + 1)
        names = list(next(iter(res[part][m] for m in MOTIONS)).keys())
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            ax.bar(np.arange(len(MOTIONS)) + (j - (len(names) - 1) / 2) * width,
                   [res[part][m][name]["ate"] for m in MOTIONS], width, label=name)
        ax.set_xticks(np.arange(len(MOTIONS)), MOTIONS)
        ax.set_yscale("log")
        ax.set_ylabel("ATE RMSE (m, after Sim(3))")
        ax.set_title(title, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        if k == 0:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "ttt3r_chunk_bench")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--oracle-drift", default="scale=2,rot=0.05,noise=0.01")
    ap.add_argument("--oracle-drift-extra", default="scale=2,noise=0.01",
                    help="a second oracle setting (default: the same without rotation drift)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--network-frames", type=int, default=100)
    ap.add_argument("--network-chunk", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads for the network (1: steady timings on a shared machine)")
    ap.add_argument("--parts", default="oracle,network",
                    help="which parts to run; the others are kept from an existing --out file")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "chunk_alignment.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "figures" / "chunk_alignment.png")
    args = ap.parse_args()
    from ttt3r.io.atomic import atomic_write_text

    t0 = time.perf_counter()
    parts = {x.strip() for x in args.parts.split(",")}
    res: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    res.setdefault("settings", {})
    res["settings"] |= {"synth_size": [128, 96], "frames": args.frames}
    res["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")

    if "oracle" in parts:
        res["settings"] |= {"chunk": args.chunk, "oracle_drift": args.oracle_drift, "seeds": list(range(args.seeds)),
                            "oracle_drift_extra": args.oracle_drift_extra}
        res["oracle"] = oracle_part(args.data, args.frames, args.chunk, args.oracle_drift, range(args.seeds))
        save()
        if args.oracle_drift_extra:
            res["oracle_extra"] = oracle_part(args.data, args.frames, args.chunk, args.oracle_drift_extra,
                                              range(args.seeds))
        save()
    if "network" in parts:
        res["settings"] |= {"network_frames": args.network_frames, "network_chunk": args.network_chunk}
        res["network"] = network_part(args.data, args.frames, args.network_frames, args.network_chunk, args.threads)
    summary = {}
    for part in ("oracle", "oracle_extra", "network"):
        if part not in res:
            continue
        summary[part] = {m: {"se3_over_sim3_K4": res[part][m]["se3 chain K=1"]["ate"] / res[part][m]["sim3 K=4"]["ate"],
                             "extra_time_sim3_K4_vs_se3_pct": 100 * (res[part][m]["sim3 K=4"]["ms_per_frame"]
                                                                     / res[part][m]["se3 chain K=1"]["ms_per_frame"] - 1),
                             "extra_time_sim3_K1_vs_none_pct": 100 * (res[part][m]["sim3 K=1"]["ms_per_frame"]
                                                                      / res[part][m]["none"]["ms_per_frame"] - 1)}
                         for m in MOTIONS}
    res["summary"] = summary
    res["seconds"] = time.perf_counter() - t0
    save()
    if "network" in res and "oracle" in res:
        plot(res, args.plot)
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out} and {args.plot} in {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()
