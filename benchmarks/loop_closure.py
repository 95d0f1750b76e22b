"""Loop closure on long synthetic sequences: ATE with chunk alignment only and with loop closure,
loop precision and recall against ground-truth revisits, time and memory.

Sequences: ``ttt3r synth`` loop and orbit (several laps, each lap revisiting
the start) and forward (never revisits), rendered at 128x96 into ``--data``
if missing (the rendering of ``benchmarks/chunk_alignment.py``: the images
are needed for the image descriptors). Predictor: the drift oracle
(``--oracle-drift scale=2,rot=0.05,noise=0.01``, seeds 0-2) chunked with
Sim(3) alignment (``--chunk 100 --overlap 4``), as ``ttt3r eval pose --chunk
100 --overlap 4 --oracle-drift ... [--loop-closure]`` runs it. Loop closure is
the path ``--loop-closure`` takes with ``--oracle-drift``: HOG image
descriptors of the input images, candidates, each measured by the drift model
on a two-frame chunk and verified, then the chunk pose graph
(:func:`ttt3r.loops.refine.detect_and_close`), once after the last frame.
Three loop settings: the library's defaults (``LoopSettings()``: image
descriptors' cosine >= 0.6, one candidate per chunk pair spread over the
chunks, at most ``floor(0.04 * frames / 2)`` verified), the same with a higher
threshold (``--min-similarity``, 0.8), and the defaults before the
verification budget (cosine >= 0.8, each frame's most similar, the 200 most
similar overall).

``--parts network``: the bundled small model (``src/ttt3r/assets/models/synth_small``,
what ``ttt3r reconstruct`` falls back to offline) through the real pipeline,
``ttt3r reconstruct SEQ/rgb --chunk 100 --overlap 4 [--loop-closure]`` on the
CPU, one fresh process per run (reading, network, writers, loop closure, the
rewrite), on ``--net-frames`` frames of each sequence; the process's wall time
and peak RSS (``wait4``), ``run.json``'s stream time and loop-closure step
timings, ATE of ``pose_raw`` (chunks only) and ``pose`` (loop-closed) against
the synth ground truth, and the loops' precision and recall.
-> ``--net-out`` (benchmarks/results/loop_closure_network.json).

``--parts online``: loop closure during the run (``--loop-every M``) on the
same sequences, through the eval path itself (the ``oracle_drift``
predictor on the ``synth`` dataset's sequence, as ``ttt3r eval pose
--oracle-drift ... --chunk 100 --overlap 4 --loop-closure [--loop-every M]``
runs it), per seed: chunks only, loop closure after the last frame only, and
``--loop-every`` each of ``--online-every`` (5, 1). Per run: ATE, the
measurements (two-frame verifications, the whole run's) against the budget
``candidate_cap(N)``, the optimisations (during the run, and the final one),
loop-closure seconds (the records' retrieval, verification and graph
seconds, in all and per optimisation) and their share of the run's wall
time, the run's extra wall time over chunks only (image descriptors
included), and, on the first seed, tracemalloc's peak over the whole
prediction in a second, untimed pass. -> ``--online-out``
(benchmarks/results/loop_closure_online.json; written after each sequence).

Metrics:

* ATE: RMSE of camera centres after a Sim(3) alignment to the ground truth
  (:func:`ttt3r.eval.metrics_pose.absolute_trajectory_error`).
* A true revisit is a frame pair ``(i, j)``, ``i - j >= min_gap`` (the
  detector's, twice the chunk), whose ground-truth camera centres are within
  ``--revisit-dist`` metres and whose optical axes are within
  ``--revisit-deg`` degrees. Precision: the share of loops (candidates,
  verified ones, loops the graph kept) that are true revisits. Recall: the
  share of revisiting frames (later frames of a true revisit) that are the
  later frame of a kept true loop (at most ``max_candidates`` frames can be),
  and the share of revisiting chunk pairs joined by a kept true loop.
* Time: wall seconds of the chunked stream and of loop closure (descriptors,
  retrieval, verification, graph, correction). For a network run the
  descriptor is free (the encoder's pooled token) and each verification is a
  two-frame network session; the network share is estimated from the measured
  per-frame time of ``docs/performance.md`` (full-size network, 512x288, this
  machine, two threads: 1.20 s bf16, 3.56 s fp32) as
  ``L / (frames fed * t + L)``, ``L = 2 * candidates * t + s`` (``s``: the
  measured retrieval, verification and graph seconds), frames fed counting the
  chunk overlaps' re-feeds; an estimate, not a measurement.
* Peak memory: tracemalloc's peak of Python/numpy allocations during the stream
  (its poses and depth kept, as eval does) and during loop closure, on the
  first seed, in a second, untimed pass (tracemalloc triples the graph's time).

    PYTHONPATH=src python benchmarks/loop_closure.py      # ~4 min on 2 busy cores (one thread), after rendering (~3 min a sequence)
    -> benchmarks/results/loop_closure.json, docs/figures/loop_closure.png
    PYTHONPATH=src python benchmarks/loop_closure.py --parts network   # ~14 min: 6 runs of 2,000 frames
    PYTHONPATH=src python benchmarks/loop_closure.py --parts online    # ~17 min: 36 eval runs of 5,000 frames (+12 traced)
"""

from __future__ import annotations

import os

# one BLAS / OpenMP thread: on a shared 2-core machine more threads make every step several times slower
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from chunk_alignment import load  # noqa: E402  (same folder: the sequence generation)

from ttt3r.chunking import ChunkedSession, ChunkSettings  # noqa: E402
from ttt3r.chunking.oracle import DriftOracle, DriftSpec  # noqa: E402
from ttt3r.eval.metrics_pose import absolute_trajectory_error  # noqa: E402
from ttt3r.loops.descriptors import image_descriptor  # noqa: E402
from ttt3r.loops.refine import LoopSettings, detect_and_close, oracle_pair, pair_measure  # noqa: E402
from ttt3r.loops.retrieval import find_loop_candidates  # noqa: E402

MOTIONS = ("loop", "orbit", "forward")
ROOT = Path(__file__).resolve().parents[1]
#: measured network seconds per frame (docs/performance.md, full-size network, 512x288, two threads)
NET_S_PER_FRAME = {"bf16": 1.20, "fp32": 3.56}


def revisits(gt: np.ndarray, dist: float, deg: float, min_gap: int) -> np.ndarray:
    """(M, 2) true revisit pairs ``(i, j)``, ``i - j >= min_gap``: camera centres of the (N, 4, 4)
    ground truth within ``dist`` and optical axes (camera z in the world) within ``deg`` degrees."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(gt[:, :3, 3]).query_pairs(dist, output_type="ndarray").reshape(-1, 2)
    pairs = np.sort(pairs, axis=1)[:, ::-1]
    z = gt[:, :3, 2]
    ok = (pairs[:, 0] - pairs[:, 1] >= min_gap) & (np.sum(z[pairs[:, 0]] * z[pairs[:, 1]], axis=1)
                                                    >= np.cos(np.radians(deg)))
    return pairs[ok]


def is_revisit(gt: np.ndarray, i: int, j: int, dist: float, deg: float) -> bool:
    """Frames ``i``, ``j`` of the ground truth meet the revisit thresholds (the gap aside)."""
    near = np.linalg.norm(gt[i, :3, 3] - gt[j, :3, 3]) <= dist
    return bool(near and gt[i, :3, 2] @ gt[j, :3, 2] >= np.cos(np.radians(deg)))


def scores(records: list[dict], gt: np.ndarray, truth: np.ndarray, chunk_of: np.ndarray, dist: float,
           deg: float) -> dict:
    """Precision of candidates / verified / kept loops and recall of the kept ones (module doc)."""
    def precision(rs):
        return float(np.mean([is_revisit(gt, r["i"], r["j"], dist, deg) for r in rs])) if rs else None

    verified = [r for r in records if r["accepted"]]
    kept = [r for r in records if r["rejected_by_graph"] is False]
    true_kept = [r for r in kept if is_revisit(gt, r["i"], r["j"], dist, deg)]
    out = {"candidates": len(records), "verified": len(verified), "kept": len(kept),
           "precision_candidates": precision(records), "precision_verified": precision(verified),
           "precision_kept": precision(kept), "recall_frames": None, "recall_chunk_pairs": None,
           "revisiting_frames": len(np.unique(truth[:, 0])) if len(truth) else 0}
    if len(truth):
        out["recall_frames"] = len({r["i"] for r in true_kept} & set(truth[:, 0].tolist())) / out["revisiting_frames"]
        pairs_c = {(int(a), int(b)) for a, b in zip(chunk_of[truth[:, 0]], chunk_of[truth[:, 1]])}
        found_c = {(int(chunk_of[r["i"]]), int(chunk_of[r["j"]])) for r in true_kept}
        out["revisiting_chunk_pairs"] = len(pairs_c)
        out["recall_chunk_pairs"] = len(pairs_c & found_c) / len(pairs_c)
    return out


def timed(fn):
    """``(fn(), wall seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def traced_peak(fn) -> float:
    """tracemalloc's peak MiB of Python/numpy allocations while ``fn()`` runs (its result dropped)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def stream(spec: DriftSpec, gt, K, depth, motion: str, chunk: ChunkSettings):
    """The chunked drift-oracle stream, poses and depth kept as eval keeps them (``depth``: frame ->
    ground-truth depth, read from disk): ((N, 4, 4) poses, (N, H, W) float32 depth, the chunk alignments)."""
    cs = ChunkedSession(DriftOracle(spec, gt, K, depth, key=motion), chunk)
    poses = np.empty((len(gt), 4, 4))
    run_depth = np.empty((len(gt), *depth(0).shape), np.float32)
    for i in range(len(gt)):
        r = cs.step(i)
        poses[i], run_depth[i] = r.pose, r.depth
    return poses, run_depth, cs.alignments


def run_sequence(seq, motion: str, spec_text: str, seeds, chunk: ChunkSettings, loop_settings: dict, dist: float,
                 deg: float) -> dict:
    gt = np.asarray(seq.poses)
    n = len(seq)
    K = np.tile(seq.intrinsics, (n, 1, 1))
    depth = seq.depth  # read from disk when needed, as eval does (the stream and the two-frame checks)
    t0 = time.perf_counter()
    desc = np.stack([image_descriptor(seq.rgb(i)) for i in range(n)])  # image decoding included
    desc_s = time.perf_counter() - t0
    min_gap = 2 * chunk.size
    truth = revisits(gt, dist, deg, min_gap)
    best = find_loop_candidates(desc, min_gap=min_gap, min_similarity=-1.0, max_candidates=1)
    az = np.unwrap(np.arctan2(gt[:, 1, 3], gt[:, 0, 3]))  # camera centre's azimuth about the scene's z axis
    out: dict = {"frames": n, "true_revisit_pairs": len(truth), "descriptor_s": desc_s,
                 "descriptor_ms_per_frame": 1e3 * desc_s / n,
                 "laps_about_centre": float(abs(az[-1] - az[0]) / (2 * np.pi)),
                 "best_similarity": best[0].similarity if best else None,
                 "path_length_m": float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum()), "seeds": []}
    seeds = list(seeds)
    for seed in seeds:
        spec = DriftSpec.parse(f"{spec_text},seed={seed}")
        (poses, run_depth, al), stream_s = timed(lambda spec=spec: stream(spec, gt, K, depth, motion, chunk))
        nodes = np.stack([np.asarray(a.matrix, np.float64) for a in al])
        starts = np.array([a.first_frame for a in al])
        chunk_of = np.searchsorted(starts, np.arange(n), side="right") - 1
        weights = np.array([1.0 if a.confidence is None else max(float(a.confidence), 0.05) for a in al[1:]])
        ate0 = float(absolute_trajectory_error(gt, poses).rmse)
        rec = {"seed": seed, "ate_chunks": ate0, "stream_s": stream_s, "chunks": len(al),
               "frames_fed": n + chunk.overlap * (len(al) - 1), "loop_closure": {}}
        if seed == seeds[0]:  # memory: the same work again under tracemalloc (which slows it, so not timed)
            rec["stream_peak_traced_mib"] = traced_peak(lambda spec=spec: stream(spec, gt, K, depth, motion, chunk))
        for name, st in loop_settings.items():
            measure = pair_measure(oracle_pair(spec, gt, K, depth, key=motion), run_depth.__getitem__)

            def close(st=st, measure=measure, graph=(nodes, chunk_of, poses), weights=weights):
                return detect_and_close(*graph, desc, measure, replace(st, min_gap=min_gap),
                                        sequential_weights=weights, kind="image")

            (closed, records, _), lc_s = timed(close)
            ate1 = float(absolute_trajectory_error(gt, closed.poses).rmse)
            sc = scores(records, gt, truth, chunk_of, dist, deg)
            cost = desc_s + lc_s
            net = {k: (2 * sc["candidates"] * t + lc_s) / (rec["frames_fed"] * t + 2 * sc["candidates"] * t + lc_s)
                   for k, t in NET_S_PER_FRAME.items()}
            rec["loop_closure"][name] = sc | {
                "ate": ate1, "ate_ratio": ate1 / ate0, "detect_and_close_s": lc_s, "seconds": cost,
                "timings": {"descriptors_s": desc_s, **closed.timings},
                "candidate_cap": replace(st, min_gap=min_gap).candidate_cap(n),
                "share_of_run": cost / (stream_s + cost), "network_share_estimate": net,
                "graph_solves": closed.graph.solves if closed.graph is not None else 0}
            if seed == seeds[0]:
                rec["loop_closure"][name]["peak_traced_mib"] = traced_peak(close)
            print(f"{motion:8s} seed {seed} {name:18s} ATE {ate0:.4f} -> {ate1:.4f} (x{ate1 / ate0:.3f})  "
                  f"cand {sc['candidates']} kept {sc['kept']} P {sc['precision_kept']} R {sc['recall_chunk_pairs']}  "
                  f"lc {cost:.2f} s ({lc_s:.2f} s + descriptors) / stream {stream_s:.2f} s", flush=True)
        out["seeds"].append(rec)
    return out


def summarize(res: dict) -> dict:
    """Means over seeds per sequence and loop setting, and the three targets."""
    out: dict = {}
    for motion, r in res["sequences"].items():
        s = r["seeds"]
        out[motion] = {"ate_chunks": float(np.mean([x["ate_chunks"] for x in s])),
                       "stream_s": float(np.mean([x["stream_s"] for x in s])),
                       "stream_peak_traced_mib": s[0]["stream_peak_traced_mib"]}
        for name in s[0]["loop_closure"]:
            lc = [x["loop_closure"][name] for x in s]

            def mean(key, lc=lc):
                v = [x[key] for x in lc if x[key] is not None]
                return float(np.mean(v)) if v else None

            out[motion][name] = {k: mean(k) for k in ("ate", "ate_ratio", "candidates", "kept", "precision_kept",
                                                       "recall_frames", "recall_chunk_pairs", "seconds",
                                                       "share_of_run")}
            out[motion][name]["peak_traced_mib"] = lc[0]["peak_traced_mib"]
            out[motion][name]["network_share_estimate"] = {
                k: float(np.mean([x["network_share_estimate"][k] for x in lc])) for k in NET_S_PER_FRAME}
            out[motion][name]["ate_ratio_max"] = float(max(x["ate_ratio"] for x in lc))
    targets = {}
    for name in next(iter(res["sequences"].values()))["seeds"][0]["loop_closure"]:
        rev = [m for m in out if m != "forward"]
        targets[name] = {
            "revisiting_halved": all(out[m][name]["ate_ratio_max"] <= 0.5 for m in rev),
            "forward_no_added_error": out["forward"][name]["ate_ratio_max"] <= 1.0 + 1e-9 if "forward" in out else None,
            "oracle_cost_under_10pct": all(out[m][name]["share_of_run"] < 0.1 for m in out),
            "network_cost_under_10pct_estimate": {k: all(out[m][name]["network_share_estimate"][k] < 0.1
                                                         for m in out) for k in NET_S_PER_FRAME}}
    return {"per_sequence": out, "targets": targets}


def plot(res: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    summ = res["summary"]["per_sequence"]
    motions = list(summ)
    names = ["chunks only"] + list(res["settings"]["loop_settings"])
    fig = Figure(figsize=(7.5, 4.4), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        x = np.arange(len(motions)) + (k - (len(names) - 1) / 2) * width
        y = [summ[m]["ate_chunks"] if k == 0 else summ[m][name]["ate"] for m in motions]
        ax.bar(x, y, width, label=name if k == 0 else f"loop closure, {name}")
        for xi, m in zip(x, motions):
            seeds = res["sequences"][m]["seeds"]
            ys = [s["ate_chunks"] if k == 0 else s["loop_closure"][name]["ate"] for s in seeds]
            ax.plot([xi] * len(ys), ys, "k.", ms=3)
    ax.set_xticks(np.arange(len(motions)), [f"{m} ({res['sequences'][m]['frames']} frames)" for m in motions])
    ax.set_yscale("log")
    ax.set_ylabel("ATE RMSE (m, after Sim(3)); dots: seeds")
    st = res["settings"]
    ax.set_title(f"drift oracle ({st['oracle_drift']}), chunk {st['chunk']} overlap {st['overlap']} Sim(3)",
                 fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor()
    return next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Model name")),
                platform.processor())


def network_run(folder: Path, out: Path, chunk: int, overlap: int, loop_closure: bool) -> dict:
    """One ``ttt3r reconstruct FOLDER/rgb --chunk --overlap [--loop-closure]`` in a fresh process (the
    bundled small model: no ``--weights``, offline), its wall seconds and peak RSS (``wait4``)."""
    cmd = [sys.executable, "-m", "ttt3r", "reconstruct", str(folder / "rgb"), "--out", str(out), "--chunk",
           str(chunk), "--overlap", str(overlap), "--device", "cpu", "--quiet", "--overwrite"]
    cmd += ["--loop-closure"] if loop_closure else []
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{text[-2000:]}")
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {"process_wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "info": info}


def network_sequence(seq_dir: Path, work: Path, motion: str, chunk: int, overlap: int, baseline: bool,
                     dist: float, deg: float) -> dict:
    """The network part for one sequence (module doc): with ``--loop-closure``, and, with ``baseline``,
    the same run without it."""
    from ttt3r.io.layout import DEMO_LAYOUT
    from ttt3r.loops.rewrite import run_frames
    from ttt3r.synth import load_sequence

    seq = load_sequence(seq_dir)
    gt = np.asarray(seq.poses)
    out: dict = {"frames": len(seq)}
    runs = {"loop_closure": True} | ({"chunks_only": False} if baseline else {})
    raw_poses = {}
    for name, lc in runs.items():
        r = network_run(seq_dir, work / f"{motion}_{name}", chunk, overlap, lc)
        info = r.pop("info")
        run_dir = work / f"{motion}_{name}"
        frames = run_frames(run_dir)
        cams = [np.load(DEMO_LAYOUT.paths(run_dir, i)["camera"]) for i in frames]
        poses = np.stack([c["pose"] for c in cams]).astype(np.float64)
        raw = np.stack([c["pose_raw"] if "pose_raw" in c.files else c["pose"] for c in cams]).astype(np.float64)
        raw_poses[name] = raw
        starts = np.array(sorted(int(c["first_frame"]) for c in info["chunks"]))
        chunk_of = np.searchsorted(starts, np.asarray(frames), side="right") - 1
        rec = r | {"stream_wall_s": info["wall_time_s"], "network_mean_s": info["per_frame_s"]["network_mean"],
                   "host_rss_peak_mib": info["memory"]["host_rss_peak_mib"], "chunks": len(starts),
                   "frames_fed": len(frames) + overlap * (len(starts) - 1),
                   "ate_chunks": float(absolute_trajectory_error(gt[frames], raw).rmse),
                   "ate": float(absolute_trajectory_error(gt[frames], poses).rmse)}
        if lc:
            lcr = info["loop_closure"]
            truth = revisits(gt, dist, deg, lcr["settings"]["min_gap"])
            sc = scores(lcr["loops"], gt, truth, chunk_of, dist, deg)
            steps = lcr["timings"] | {"rewrite_s": lcr["rewrite_s"]}
            total = sum(steps.values())
            rec |= {"loop_closure": sc | {"candidate_cap": lcr["settings"]["candidate_cap"], "timings": steps,
                                          "seconds": total, "verify_steps": 2 * sc["candidates"],
                                          "share_of_run": total / (info["wall_time_s"] + total)},
                    "ate_ratio": rec["ate"] / rec["ate_chunks"]}
        out[name] = rec
        print(f"network {motion:8s} {name:13s} ATE {rec['ate_chunks']:.4f} -> {rec['ate']:.4f}  stream "
              f"{rec['stream_wall_s']:.1f} s  process {rec['process_wall_s']:.1f} s  peak {rec['peak_rss_mib']:.0f} MiB"
              + (f"  lc {rec['loop_closure']['seconds']:.2f} s ({rec['loop_closure']['share_of_run']:.1%}) "
                 f"cand {rec['loop_closure']['candidates']} kept {rec['loop_closure']['kept']} "
                 f"P {rec['loop_closure']['precision_kept']}" if lc else ""), flush=True)
    if baseline:  # the same stream with and without --loop-closure: the cost seen from outside
        out["process_wall_difference_s"] = out["loop_closure"]["process_wall_s"] - out["chunks_only"]["process_wall_s"]
        ra, rb = raw_poses["loop_closure"], raw_poses["chunks_only"]
        out["raw_pose_max_diff_vs_chunks_only_run"] = float(np.abs(ra - rb).max()) if ra.shape == rb.shape else None
    return out


def network_part(args) -> dict:
    work = args.data / "network_runs"
    res: dict = {"settings": {"frames": args.net_frames, "synth_size": [128, 96], "chunk": args.chunk,
                              "overlap": args.overlap, "model": "bundled synth_small (src/ttt3r/assets/models)",
                              "device": "cpu", "loop_settings": asdict(LoopSettings()),
                              "revisit_dist_m": args.revisit_dist, "revisit_deg": args.revisit_deg},
                 "machine": machine(), "sequences": {}}
    t0 = time.perf_counter()
    for motion in (m.strip() for m in args.net_motions.split(",")):
        load(args.data, motion, args.net_frames)  # rendered if missing
        res["sequences"][motion] = network_sequence(args.data / f"{motion}{args.net_frames}", work, motion,
                                                    args.chunk, args.overlap, not args.no_baseline,
                                                    args.revisit_dist, args.revisit_deg)
    res["seconds"] = time.perf_counter() - t0
    return res


def online_run(seq, spec: str, chunk: int, overlap: int, loop_closure: bool, every: int | None) -> tuple:
    """One oracle-drift evaluation prediction of ``seq`` (the eval path of ``ttt3r eval pose``):
    (the :class:`~ttt3r.eval.predictors.Prediction`, its wall seconds)."""
    from ttt3r.eval.predictors import PredictorOptions, create_predictor

    opts = PredictorOptions(oracle_drift=spec, chunk=chunk, overlap=overlap, loop_closure=loop_closure,
                            loop_every=every)
    return timed(lambda: create_predictor("oracle_drift", opts).predict(seq, "ttt3r", "pose"))


def online_sequence(seq, spec_text: str, seeds, chunk: int, overlap: int, everys: list[int]) -> dict:
    """The online part for one sequence (module doc)."""
    gt = np.asarray(seq.poses)
    n = len(seq)
    cap = LoopSettings().candidate_cap(n)
    configs = {"chunks only": (False, None), "final only": (True, None)} | {
        f"every {m}": (True, m) for m in everys}
    out: dict = {"frames": n, "candidate_cap": cap, "seeds": []}
    seeds = list(seeds)
    for seed in seeds:
        spec = f"{spec_text},seed={seed}"
        rec: dict = {"seed": seed, "runs": {}}
        for name, (lc, every) in configs.items():
            pred, wall = online_run(seq, spec, chunk, overlap, lc, every)
            r = {"ate": float(absolute_trajectory_error(gt, pred.poses).rmse), "wall_s": wall,
                 "chunks": len(pred.extras["chunks"])}
            if lc:
                final = pred.extras["loop_closure"]
                during = final.get("during_run", {"optimisations": [], "seconds": 0.0, "measured": 0})
                opt = during["optimisations"]
                lc_s = float(final["seconds"]) + float(during["seconds"])
                r |= {"measurements": final["measurements"], "candidate_cap": final["candidate_cap"],
                      "within_budget": final["measurements"] <= cap,
                      "measured_during_run": during["measured"], "measured_final": final["measured"],
                      "optimisations": len(opt) + 1, "moved_during_run": sum(1 for o in opt if o.get("moved")),
                      "verified_final": final["verified"], "kept_final": final["kept"],
                      "loop_closure_s": lc_s, "loop_closure_s_per_optimisation": lc_s / (len(opt) + 1),
                      "final_s": float(final["seconds"]), "during_run_s": float(during["seconds"]),
                      "max_optimisation_s": max([float(o.get("seconds", 0.0)) for o in opt] + [float(final["seconds"])]),
                      "loop_closure_share": lc_s / wall,
                      "final_timings": final["timings"]}
            if seed == seeds[0]:  # memory: the same run again under tracemalloc (slower, so not timed)
                r["peak_traced_mib"] = traced_peak(lambda lc=lc, every=every: online_run(
                    seq, spec, chunk, overlap, lc, every))
            rec["runs"][name] = r
            del pred
        base = rec["runs"]["chunks only"]["wall_s"]
        for name, r in rec["runs"].items():
            r["extra_wall_share"] = (r["wall_s"] - base) / r["wall_s"]
            print(f"{seq.name:12s} seed {seed} {name:12s} ATE {r['ate']:.4f}  wall {r['wall_s']:.1f} s"
                  + (f"  meas {r['measurements']}/{cap}  opt {r['optimisations']}  lc {r['loop_closure_s']:.2f} s "
                     f"({r['loop_closure_share']:.1%})" if "measurements" in r else ""), flush=True)
        out["seeds"].append(rec)
    names = list(configs)
    out["summary"] = {}
    for name in names:
        runs = [x["runs"][name] for x in out["seeds"]]
        summ = {"ate_mean": float(np.mean([r["ate"] for r in runs])), "ate_worst": float(max(r["ate"] for r in runs)),
                "wall_s_mean": float(np.mean([r["wall_s"] for r in runs])),
                "extra_wall_share_mean": float(np.mean([r["extra_wall_share"] for r in runs])),
                "peak_traced_mib": runs[0].get("peak_traced_mib")}
        if "measurements" in runs[0]:
            for k in ("measurements", "optimisations", "loop_closure_s", "loop_closure_s_per_optimisation",
                      "loop_closure_share", "max_optimisation_s"):
                summ[k + "_mean"] = float(np.mean([r[k] for r in runs]))
            summ["measurements_max"] = int(max(r["measurements"] for r in runs))
            summ["within_budget"] = all(r["within_budget"] for r in runs)
        out["summary"][name] = summ
    return out


def online_part(args, out_path: Path) -> dict:
    from ttt3r.eval.datasets.synth import SynthDataset
    from ttt3r.io.atomic import atomic_write_text

    everys = [int(m) for m in args.online_every.split(",")]
    res: dict = {"settings": {"frames": args.frames, "synth_size": [128, 96], "chunk": args.chunk,
                              "overlap": args.overlap, "chunk_align": "sim3", "oracle_drift": args.oracle_drift,
                              "seeds": list(range(args.seeds)), "loop_every": everys,
                              "loop_settings": asdict(LoopSettings()),
                              "path": "ttt3r.eval.predictors oracle_drift predictor (ttt3r eval pose)"},
                 "machine": machine(), "sequences": {}}
    t0 = time.perf_counter()
    for motion in (m.strip() for m in args.motions.split(",")):
        load(args.data, motion, args.frames)  # rendered if missing
        folder = args.data / f"{motion}{args.frames}"
        seq = SynthDataset(folder).load(folder.name)
        res["sequences"][motion] = online_sequence(seq, args.oracle_drift, range(args.seeds), args.chunk,
                                                   args.overlap, everys)
        res["seconds"] = time.perf_counter() - t0
        out_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_path, json.dumps(res, indent=1) + "\n")  # after each sequence
    return res


def machine() -> dict:
    return {"cpu": cpu_name(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "threads": int(os.environ["OMP_NUM_THREADS"]),
            "load_average_at_start": list(os.getloadavg())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="oracle", help="comma list: oracle, network, online (default: oracle)")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "ttt3r_loop_bench")
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--motions", default=",".join(MOTIONS))
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--overlap", type=int, default=4)
    ap.add_argument("--oracle-drift", default="scale=2,rot=0.05,noise=0.01")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--min-similarity", type=float, default=0.8,
                    help="the second loop setting's descriptor threshold (the first: the library default, 0.6)")
    ap.add_argument("--revisit-dist", type=float, default=0.25, help="metres, ground-truth revisit threshold")
    ap.add_argument("--revisit-deg", type=float, default=20.0, help="degrees, ground-truth revisit threshold")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "loop_closure.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "figures" / "loop_closure.png")
    ap.add_argument("--net-frames", type=int, default=2000, help="network part: frames per sequence")
    ap.add_argument("--net-motions", default=",".join(MOTIONS))
    ap.add_argument("--no-baseline", action="store_true", help="network part: skip the runs without --loop-closure")
    ap.add_argument("--net-out", type=Path, default=ROOT / "benchmarks" / "results" / "loop_closure_network.json")
    ap.add_argument("--online-every", default="5,1", help="online part: comma list of --loop-every M")
    ap.add_argument("--online-out", type=Path, default=ROOT / "benchmarks" / "results" / "loop_closure_online.json")
    args = ap.parse_args()
    from ttt3r.io.atomic import atomic_write_text

    parts = {p.strip() for p in args.parts.split(",")}
    if not parts <= {"oracle", "network", "online"}:
        raise SystemExit(f"--parts: oracle, network and/or online, got {args.parts!r}")
    if "online" in parts:
        on = online_part(args, args.online_out)
        print(json.dumps({m: r["summary"] for m, r in on["sequences"].items()}, indent=1))
        print(f"wrote {args.online_out} in {on['seconds']:.0f} s")
    if "network" in parts:
        net = network_part(args)
        args.net_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.net_out, json.dumps(net, indent=1) + "\n")
        print(f"wrote {args.net_out} in {net['seconds']:.0f} s")
    if "oracle" not in parts:
        return
    t_all = time.perf_counter()
    default = LoopSettings()
    loop_settings = {
        "default": default,
        f"sim>={args.min_similarity:g}": replace(default, min_similarity=args.min_similarity),
        "before: per frame, max 200": replace(default, min_similarity=0.8, verify_budget=None,
                                              per_chunk_pair=False)}
    chunk = ChunkSettings(args.chunk, args.overlap, "sim3")
    res: dict = {"settings": {"frames": args.frames, "synth_size": [128, 96], "chunk": args.chunk,
                              "overlap": args.overlap, "chunk_align": "sim3", "oracle_drift": args.oracle_drift,
                              "seeds": list(range(args.seeds)), "min_gap": 2 * args.chunk,
                              "revisit_dist_m": args.revisit_dist, "revisit_deg": args.revisit_deg,
                              "loop_settings": {k: asdict(v) | {"min_gap": 2 * args.chunk}
                                                for k, v in loop_settings.items()},
                              "network_s_per_frame": NET_S_PER_FRAME},
                 "machine": machine(), "sequences": {}}
    for motion in (m.strip() for m in args.motions.split(",")):
        t0 = time.perf_counter()
        seq = load(args.data, motion, args.frames)
        print(f"{motion}: {len(seq)} frames ready in {time.perf_counter() - t0:.0f} s", flush=True)
        res["sequences"][motion] = run_sequence(seq, motion, args.oracle_drift, range(args.seeds), chunk,
                                                loop_settings, args.revisit_dist, args.revisit_deg)
    res["summary"] = summarize(res)
    res["seconds"] = time.perf_counter() - t_all
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")
    plot(res, args.plot)
    print(json.dumps(res["summary"], indent=1))
    print(f"wrote {args.out} and {args.plot} in {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()
