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

    PYTHONPATH=src python benchmarks/chunk_alignment.py            # under an hour on 2 busy cores
    PYTHONPATH=src python benchmarks/chunk_alignment.py --parts network   # rerun parts, keep the others
    (parts: oracle, floor, network, refeed)
    -> benchmarks/results/chunk_alignment.json, docs/figures/chunk_alignment.png
"""

from __future__ import annotations

import os

# one BLAS / OpenMP thread: on a shared 2-core machine more threads make every step several times slower
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ttt3r.chunking import ChunkedSession, ChunkSettings  # noqa: E402
from ttt3r.chunking.oracle import DriftOracle, DriftSpec  # noqa: E402
from ttt3r.eval.metrics_pose import absolute_trajectory_error  # noqa: E402

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


FLOOR = "floor: sim3 K=4, no scale drift"


def floor_spec(spec_text: str) -> str:
    """The same drift without per-chunk scales: same seeds, so the same rotation axes and noise."""
    items = [x for x in spec_text.split(",") if x.strip() and not x.strip().startswith("scale=")]
    return ",".join(items + ["scale=1"])


def oracle_part(data: Path, frames: int, chunk: int, spec_text: str, seeds, only: dict | None = None) -> dict:
    """ATE, time and memory of each configuration (``only``: these named configurations instead)."""
    out: dict = {}
    for motion in MOTIONS:
        seq = load(data, motion, frames)
        gt = np.asarray(seq.poses)
        K = np.tile(seq.intrinsics, (len(seq), 1, 1))
        depth = [seq.depth(i) for i in range(len(seq))]
        out[motion] = {}
        for name, st in (only or configs(chunk)).items():
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


def refeed_part(network: str, threads: int, reps: int, e2e_frames: int, e2e_chunk: int, e2e_overlap: int) -> dict:
    """What a re-fed overlap frame costs on a full-size network (formula weights: the speed is the weights').

    Times, alternating on one session (one load), a full step and a re-feed
    from the kept encoder output (decoder + self-view head), then streams
    ``e2e_frames`` frames without chunks and with ``--chunk e2e_chunk
    --overlap e2e_overlap`` to check the predicted extra time end to end.
    """
    import torch

    import ttt3r
    from ttt3r.bench import build_formula_model, model_config, synthetic_frames
    from ttt3r.chunking import NetworkChunks
    from ttt3r.preprocess import preprocess

    torch.set_num_threads(threads)
    cfg, salt = model_config(network)
    model = build_formula_model(cfg, torch.float32, salt=salt)
    size = cfg.default_size
    frames = [preprocess(f, size) for f in synthetic_frames(max(reps + 1, e2e_frames), (288, 512))]
    chunks = NetworkChunks(ttt3r.Session(model))
    chunks.predict(frames[0], None)
    full, refeed, encode = [], [], []
    for f in frames[1:reps + 1]:
        t0 = time.perf_counter()
        chunks.predict(f, None)
        full.append(time.perf_counter() - t0)
        kept = chunks.keep(f)
        t0 = time.perf_counter()
        chunks.predict(kept, None)
        refeed.append(time.perf_counter() - t0)
        with torch.inference_mode():
            t0 = time.perf_counter()
            model.encode_image(f.tensor)
            encode.append(time.perf_counter() - t0)
    t_full, t_refeed, t_enc = (float(np.median(x)) for x in (full, refeed, encode))
    print(f"refeed {network}: full step {t_full:.3f} s, re-feed {t_refeed:.3f} s "
          f"({100 * t_refeed / t_full:.0f}%), encoder {t_enc:.3f} s", flush=True)
    e2e: dict = {}
    if e2e_frames:  # the two streams step in turn, frame by frame: the machine's load hits both alike
        named = {"none": None, f"sim3 N={e2e_chunk} K={e2e_overlap}": ChunkSettings(e2e_chunk, e2e_overlap, "sim3")}
        streams = {name: ChunkedSession(NetworkChunks(ttt3r.Session(model)), st) for name, st in named.items()}
        spent = dict.fromkeys(named, 0.0)
        for f in frames[:e2e_frames]:
            for name, cs in streams.items():
                t0 = time.perf_counter()
                cs.step(f)
                spent[name] += time.perf_counter() - t0
        for name, cs in streams.items():
            fits = [a.seconds for a in cs.alignments[1:]]
            e2e[name] = {"s_per_frame": spent[name] / e2e_frames,
                         "fit_s_per_chunk": float(np.mean(fits)) if fits else 0.0,
                         "refeeds": e2e_overlap * (len(cs.alignments) - 1) if named[name] else 0}
            print(f"refeed e2e {name}: {e2e[name]['s_per_frame']:.3f} s/frame", flush=True)
    fit = 0.0
    if e2e:
        base, chunked = e2e["none"], e2e[f"sim3 N={e2e_chunk} K={e2e_overlap}"]
        fit = chunked["fit_s_per_chunk"]
        predicted = (chunked["refeeds"] * t_refeed + len(range(e2e_chunk, e2e_frames, e2e_chunk)) * fit) / (
            e2e_frames * t_full)
        e2e |= {"measured_extra_pct": 100 * (chunked["s_per_frame"] / base["s_per_frame"] - 1),
                "predicted_extra_pct": 100 * predicted}
    from ttt3r.bench import machine_info

    return {"machine": machine_info(), "network": network, "input_hw": list(frames[0].rgb.shape[:2]), "threads": torch.get_num_threads(),
            "full_step_s": t_full, "refeed_step_s": t_refeed, "encoder_s": t_enc,
            "refeed_share_of_step": t_refeed / t_full,
            "end_to_end": e2e, "fit_s_per_chunk": fit,
            "extra_time_pct_N100": {f"K={k}": 100 * (k * t_refeed + fit) / (100 * t_full) for k in (1, 4, 8, 16)},
            "extra_time_pct_N100_full_refeed": {f"K={k}": 100 * (k * t_full + fit) / (100 * t_full)
                                                for k in (1, 4, 8, 16)}}


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
    ap.add_argument("--network-frames", type=int, default=500)
    ap.add_argument("--network-chunk", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads for the network (1: steady timings on a shared machine)")
    ap.add_argument("--refeed-networks", default="cut3r_512_dpt_4_64,cut3r_224_linear_4",
                    help="the full-size architectures timed by the refeed part (the 224 one also end to end)")
    ap.add_argument("--refeed-threads", type=int, default=2)
    ap.add_argument("--refeed-e2e", type=int, nargs=3, default=(80, 20, 4), metavar=("FRAMES", "N", "K"),
                    help="the end-to-end check on the 224 network: frames, --chunk, --overlap")
    ap.add_argument("--parts", default="oracle,floor,network,refeed",
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
    if "floor" in parts:  # what any alignment of chunk pairs is left with: the rotation drift alone
        floor = oracle_part(args.data, args.frames, args.chunk, floor_spec(res["settings"]["oracle_drift"]),
                            res["settings"]["seeds"], only={FLOOR: ChunkSettings(args.chunk, 4, "sim3")})
        for motion in MOTIONS:
            res["oracle"][motion][FLOOR] = floor[motion][FLOOR]
        save()
    if "network" in parts:
        res["settings"] |= {"network_frames": args.network_frames, "network_chunk": args.network_chunk}
        res["network"] = network_part(args.data, args.frames, args.network_frames, args.network_chunk, args.threads)
    if "refeed" in parts:
        res["refeed"] = {}
        for net in args.refeed_networks.split(","):
            small = "224" in net  # the end-to-end check runs on the cheaper network only
            res["refeed"][net] = refeed_part(net, args.refeed_threads, reps=5,
                                             e2e_frames=args.refeed_e2e[0] if small else 0,
                                             e2e_chunk=args.refeed_e2e[1], e2e_overlap=args.refeed_e2e[2])
            save()
    summary = {}
    for part in ("oracle", "oracle_extra", "network"):
        if part not in res:
            continue
        summary[part] = {m: {"se3_over_sim3_K4": res[part][m]["se3 chain K=1"]["ate"] / res[part][m]["sim3 K=4"]["ate"],
                             **({"sim3_K4_over_floor": res[part][m]["sim3 K=4"]["ate"] / res[part][m][FLOOR]["ate"],
                                 "se3_over_floor": res[part][m]["se3 chain K=1"]["ate"] / res[part][m][FLOOR]["ate"]}
                                if FLOOR in res[part][m] else {}),
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
