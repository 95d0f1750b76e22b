"""Loop closure on a finished chunked run folder: what ``ttt3r refine RUN_DIR`` and
``ttt3r reconstruct --chunk N --loop-closure`` run after the last frame.

1. The chunk graph is read from the folder: ``run.json``'s chunk records
   (chunk-to-world ``matrix``, ``first_frame``, ``confidence``, ``aligned_to``) and
   the camera files' *raw* poses (``pose_raw``, the pose if never rewritten). The
   chunk records describe the poses as the run first wrote them, and a rewrite
   changes neither, so a refined run is refined again from its raw outputs: the
   same settings give the same poses and depth, other settings replace the first
   refinement's corrections rather than stack on them (docs/loop_closure.md).
   A measurement must be in the units of the raw depth (:func:`~ttt3r.loops.rewrite.raw_depth`;
   :func:`run_depth_reader`).
2. Descriptors: given (the network's, collected while the run streamed), or
   image descriptors of ``color/*.png`` (:func:`~ttt3r.loops.descriptors.image_descriptor`).
3. Candidates (:func:`~ttt3r.loops.retrieval.find_loop_candidates`), measured by a
   two-frame predictor (:func:`pair_measure`: the network on a two-frame
   session, or the drift oracle on a two-frame chunk) and verified.
4. :func:`~ttt3r.loops.closure.close_loops`, then :func:`~ttt3r.loops.rewrite.rewrite_run`
   with the loops and their residuals recorded in ``run.json``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import TTT3RError
from ..io.layout import DEMO_LAYOUT
from ..io.strict_json import write_json
from ..results import FrameResult
from .closure import close_loops
from .retrieval import find_loop_candidates
from .rewrite import _read_json, raw_camera, raw_depth, recover_rewrite, rewrite_run, run_frames
from .verify import PairMeasurement, VerifiedLoop, VerifySettings, depth_ratio, pair_to_run_units, verify_candidates

__all__ = ["LoopSettings", "RefineSummary", "alignment_graph", "chunk_graph", "detect_and_close", "pair_measure",
           "refine_run", "run_depth_reader"]


@dataclass
class LoopSettings:
    """Loop detection settings (``ttt3r refine`` / ``--loop-closure`` options).

    Attributes:
        min_gap: frames a pair must be apart (None: twice the chunk size).
        top_k: candidates per frame.
        min_similarity: descriptor cosine a candidate needs (None: the descriptor kind's
            default, :data:`~ttt3r.loops.descriptors.MIN_SIMILARITY`).
        max_candidates: candidates measured at most.
        verify_budget: the most the two-frame verifications may cost, as a share of the
            run's frames: each candidate is two network steps, so at most
            ``floor(verify_budget * frames / 2)`` candidates are measured (0.04: 2% of
            the frames, i.e. 4% more network steps than the run). None: no budget.
        per_chunk_pair: keep at most one candidate per pair of chunks (the most
            similar pair of frames between them) and spread the budget over the
            chunks (:func:`~ttt3r.loops.retrieval.find_loop_candidates` ``groups``);
            False: the ``top_k`` most similar per frame, most similar first.
        verify: :class:`VerifySettings`.
        conf_threshold: pixels above this confidence count for depth ratios and confidence.
    """

    min_gap: int | None = None
    top_k: int = 1
    min_similarity: float | None = None
    max_candidates: int = 200
    verify_budget: float | None = 0.04
    per_chunk_pair: bool = True
    verify: VerifySettings = field(default_factory=VerifySettings)
    conf_threshold: float = 1.5

    def similarity_for(self, kind: str) -> float:
        """The threshold for descriptors of ``kind`` (``"encoder"`` or ``"image"``)."""
        from .descriptors import MIN_SIMILARITY

        return float(MIN_SIMILARITY[kind] if self.min_similarity is None else self.min_similarity)

    def candidate_cap(self, frames: int) -> int:
        """Candidates measured at most on a run of ``frames`` frames: ``max_candidates``, and
        ``floor(verify_budget * frames / 2)`` when there is a budget."""
        if self.max_candidates < 0 or (self.verify_budget is not None and not 0.0 <= self.verify_budget <= 2.0):
            raise TTT3RError(f"loop closure: need max_candidates >= 0 and verify_budget in [0, 2], "
                             f"got {self.max_candidates}, {self.verify_budget}")
        cap = int(self.max_candidates)
        if self.verify_budget is not None:
            cap = min(cap, int(np.floor(self.verify_budget * frames / 2 + 1e-9)))
        return cap


@dataclass
class RefineSummary:
    """What :func:`refine_run` did: candidates measured, loops kept by verification and by the graph,
    frames rewritten (0 when no loop was kept: then nothing moved and no file is rewritten), seconds (detection + graph, and the rewrite), and ``timings``: seconds of
    each step (``descriptors_s`` (0 when given), ``retrieval_s``, ``verify_s``, ``graph_s``,
    ``rewrite_s``)."""

    candidates: int
    verified: int
    kept: int
    frames: int
    seconds: float
    rewrite_s: float
    timings: dict = field(default_factory=dict)


def chunk_graph(run_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """A chunked run's graph from disk: (C, 4, 4) chunk-to-world nodes, (N,) chunk of each frame,
    (N, 4, 4) camera poses, (C - 1,) sequential weights (the chunks' alignment confidences), frames.

    The poses are the raw ones (``pose_raw`` of a rewritten camera file), the poses the chunk
    records' matrices describe: on a refined run the graph is the unrefined run's.

    Raises:
        TTT3RError: the folder is not a chunked ttt3r run (one line).
    """
    run_dir = Path(run_dir)
    info = _read_json(run_dir / "run.json", "run.json")
    recs = info.get("chunks")
    if not isinstance(recs, list) or not recs:
        raise TTT3RError(f"{run_dir}: not a chunked ttt3r run (run.json has no chunk records; "
                         "reconstruct with --chunk N)")
    try:
        recs = sorted(recs, key=lambda r: int(r["chunk"]))
        nodes = np.array([r["matrix"] for r in recs], np.float64)
        starts = np.array([int(r["first_frame"]) for r in recs])
        conf = [r.get("confidence") for r in recs[1:]]
    except (KeyError, TypeError, ValueError) as e:
        raise TTT3RError(f"{run_dir / 'run.json'}: malformed chunk records ({type(e).__name__}: {e})") from None
    if nodes.shape != (len(recs), 4, 4):
        raise TTT3RError(f"{run_dir / 'run.json'}: chunk matrices must be 4x4")
    frames = run_frames(run_dir)
    poses = np.stack([raw_camera(run_dir, i)[0] for i in frames])
    chunk_of = np.searchsorted(starts, np.asarray(frames), side="right") - 1
    weights = np.array([1.0 if c is None else max(float(c), 0.05) for c in conf])
    return nodes, np.maximum(chunk_of, 0), poses, weights, frames


def run_depth_reader(run_dir: str | os.PathLike) -> Callable[[int], np.ndarray]:
    """``run_depth`` for :func:`pair_measure` on a run folder: frame -> (H, W) raw depth
    (:func:`~ttt3r.loops.rewrite.raw_depth`), the units :func:`refine_run` solves in."""
    return lambda i: raw_depth(run_dir, i)


def pair_measure(predict_pair: Callable[[int, int], tuple[FrameResult, FrameResult]],
                 run_depth: Callable[[int], np.ndarray], conf_threshold: float = 1.5
                 ) -> Callable[[int, int], PairMeasurement | None]:
    """A verification measurement from a two-frame predictor.

    Args:
        predict_pair: ``(i, j) -> (r_i, r_j)``: the two frames predicted together, in
            the pair's own frame and unit (e.g. a fresh two-frame session).
        run_depth: frame index -> (H, W) depth in the run's units (on a run folder its raw
            depth, :func:`run_depth_reader`).

    The relative pose is ``r_i.pose^-1 r_j.pose``, converted to the run's units by
    each frame's median depth ratio; the confidence is the mean share of the two
    frames' pixels above ``conf_threshold``.
    """

    def measure(i: int, j: int) -> PairMeasurement | None:
        ri, rj = predict_pair(i, j)
        ki = depth_ratio(run_depth(i), ri.depth, ri.conf, conf_threshold)
        kj = depth_ratio(run_depth(j), rj.depth, rj.conf, conf_threshold)
        if not (np.isfinite(ki) and np.isfinite(kj) and ki > 0 and kj > 0):
            return None
        rel = np.linalg.inv(ri.pose) @ rj.pose
        conf = 0.5 * (float(np.mean(ri.conf > conf_threshold)) + float(np.mean(rj.conf > conf_threshold)))
        return PairMeasurement(pair_to_run_units(rel, ki, kj), conf)

    return measure


def network_pair(model, run_dir: str | os.PathLike, update: str = "ttt3r", size: int | None = None):
    """``predict_pair`` for :func:`pair_measure`: the network on a two-frame session of the run's
    saved images (``color/``, the images the network saw), preprocessed at ``size`` (the run's)."""
    from ..session import Session

    run_dir = Path(run_dir)

    def predict(i: int, j: int):
        sess = Session(model, update=update, size=size)
        paths = [DEMO_LAYOUT.paths(run_dir, k)["color"] for k in (i, j)]
        return sess.step(paths[0]), sess.step(paths[1])

    return predict


def oracle_pair(spec, poses: np.ndarray, intrinsics: np.ndarray, read_depth: Callable[[int], np.ndarray],
                key: str = ""):
    """``predict_pair`` for :func:`pair_measure` with ``--oracle-drift``: the drift oracle
    (:class:`ttt3r.chunking.oracle.DriftOracle`, the same ``spec``) on a two-frame chunk of
    frames ``i`` and ``j``, fed one after the other (one frame of drift, its own scale).

    Args:
        poses: (N, 4, 4) ground-truth camera-to-world; intrinsics: (N, 3, 3);
        read_depth: frame -> (H, W) ground-truth depth.
    """
    from ..chunking.oracle import DriftOracle

    poses, intrinsics = np.asarray(poses, np.float64), np.asarray(intrinsics, np.float64)

    def predict(i: int, j: int):
        o = DriftOracle(spec, poses[[i, j]], intrinsics[[i, j]], lambda k: read_depth((i, j)[k]), key=f"{key}/{i}/{j}")
        return o.predict(0, None), o.predict(1, None)

    return predict


def image_paths_descriptors(paths, progress: bool = False) -> np.ndarray:
    """(N, D) image descriptors of image files, one image in memory at a time (``progress``: a
    progress bar on stderr)."""
    from PIL import Image

    from ..progress import progress_bar
    from .descriptors import image_descriptor

    paths = list(paths)
    out = []
    with progress_bar(len(paths), "loop closure: descriptors", enabled=progress) as bar:
        for p in paths:
            with Image.open(p) as im:
                out.append(image_descriptor(np.asarray(im.convert("RGB"))))
            bar.update(1)
    return np.stack(out)


def image_descriptors(run_dir: str | os.PathLike, frames: list[int], progress: bool = False) -> np.ndarray:
    """(N, D) image descriptors of the run's ``color/`` images."""
    return image_paths_descriptors((DEMO_LAYOUT.paths(run_dir, i)["color"] for i in frames), progress)


def detect_and_close(nodes: np.ndarray, chunk_of: np.ndarray, poses: np.ndarray, descriptors: np.ndarray,
                     measure: Callable[[int, int], PairMeasurement | None], settings: LoopSettings, *,
                     frames: list[int] | None = None, scene_scale: float = 1.0,
                     sequential_weights: np.ndarray | None = None, graph_options: dict | None = None,
                     aligned_to: list | None = None, known: dict[tuple[int, int], VerifiedLoop] | None = None,
                     kind: str = "encoder", measure_limit: int | None = None, progress: bool = False):
    """Candidates, verification and the chunk pose graph, in memory (no files): ``(closure,
    JSON records of the loops with frame indices, number of candidates)``.

    Args:
        nodes, chunk_of, poses, sequential_weights, aligned_to: as :func:`~ttt3r.loops.closure.close_loops`.
        descriptors: (N, D), one per frame in ``poses``' order.
        measure: ``(frame_i, frame_j) -> PairMeasurement | None`` (frame indices).
        settings: :class:`LoopSettings` (``min_gap`` None: twice the largest chunk).
        frames: the frame index of each row (default ``0..N-1``).
        scene_scale: the unit of the verification's translation check.
        known: pairs ``(i, j)`` (frame indices) verified before (loop closure during the run):
            a candidate among them is not measured again, and every one of them is used
            (after the candidates, in their order), whether it is a candidate now or not.
            With ``settings.per_chunk_pair`` a chunk pair joined by a known pair is covered:
            another pair of its frames (the descriptors, centred on the frames so far, may rank
            one first now) comes after the candidates of chunk pairs not joined yet, so that a
            budget (``measure_limit``, the cap) goes to those first.
        kind: the descriptors' kind, ``"encoder"`` or ``"image"`` (their default threshold).
        measure_limit: at most this many candidates not in ``known`` are measured, the first
            in candidate order (best first); the later ones are not candidates of this solve
            (the rest of a run's verification budget, :meth:`ttt3r.loops.online.OnlineLoops.remaining`).
            None: every candidate (at most ``settings.candidate_cap(N)``) is measured.
        progress: a progress bar of the verification on stderr.

    ``closure.loops`` are the loops used with frame indices: the candidates' in their
    order, then the known pairs that are not candidates now; ``closure.measured`` is the
    number of pairs measured (calls of ``measure``).
    """
    frames = list(range(len(poses))) if frames is None else list(frames)
    min_gap = settings.min_gap if settings.min_gap is not None else 2 * int(np.bincount(chunk_of).max())
    pos = {f: k for k, f in enumerate(frames)}
    known = known or {}
    t0 = time.perf_counter()
    cap = settings.candidate_cap(len(frames))
    cands = find_loop_candidates(descriptors, np.asarray(frames), min_gap=min_gap, top_k=settings.top_k,
                                 min_similarity=settings.similarity_for(kind),
                                 max_candidates=None if known and settings.per_chunk_pair else cap,
                                 groups=np.asarray(chunk_of) if settings.per_chunk_pair else None)
    if known and settings.per_chunk_pair:  # chunk pairs not joined yet first: see ``known``
        chunk = lambda f: int(chunk_of[pos[f]])  # noqa: E731
        covered = {(chunk(i), chunk(j)) for i, j in known}
        again = lambda c: (c.i, c.j) not in known and (chunk(c.i), chunk(c.j)) in covered  # noqa: E731
        cands = ([c for c in cands if not again(c)] + [c for c in cands if again(c)])[:cap]
    if measure_limit is not None:  # the known candidates, and the first measure_limit new ones
        budget = max(int(measure_limit), 0)
        kept = []
        for c in cands:
            if (c.i, c.j) not in known:
                if not budget:
                    continue
                budget -= 1
            kept.append(c)
        cands = kept
    t1 = time.perf_counter()
    fresh = verify_candidates([c for c in cands if (c.i, c.j) not in known], measure, lambda f: poses[pos[f]],
                              settings.verify, scene_scale=scene_scale, progress=progress)
    t2 = time.perf_counter()
    by_pair = {**known, **{(v.i, v.j): v for v in fresh}}
    pairs = [(c.i, c.j) for c in cands]
    pairs += [p for p in known if p not in set(pairs)]
    loops = [by_pair[p] for p in pairs]
    local = [replace(v, i=pos[v.i], j=pos[v.j]) for v in loops]
    closed = close_loops(nodes, chunk_of, poses, local, sequential_weights, aligned_to, **(graph_options or {}))
    records = closed.records()
    for r, v in zip(records, loops):
        r["i"], r["j"] = v.i, v.j
    closed.loops = loops
    closed.measured = len(fresh)
    closed.timings = {"retrieval_s": t1 - t0, "verify_s": t2 - t1, "graph_s": time.perf_counter() - t2}
    return closed, records, len(cands)


def alignment_graph(alignments) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """A chunk graph from the aligner's records (:class:`~ttt3r.chunking.ChunkAlignment`, or their
    JSON, e.g. ``run.json``'s ``chunks``): (C, 4, 4) nodes, (C,) first frames, (C - 1,) sequential
    weights (the alignment confidences, at least 0.05; 1 where there is none), (C - 1,) ``aligned_to``."""
    def get(a, key):
        return a.get(key) if isinstance(a, dict) else getattr(a, key)

    nodes = np.stack([np.asarray(get(a, "matrix"), np.float64) for a in alignments])
    starts = np.array([int(get(a, "first_frame")) for a in alignments])
    conf = [get(a, "confidence") for a in alignments[1:]]
    weights = np.array([1.0 if c is None else max(float(c), 0.05) for c in conf])
    aligned = [None if get(a, "aligned_to") is None else np.asarray(get(a, "aligned_to"), np.float64)
               for a in alignments[1:]]
    return nodes, starts, weights, aligned


def refine_run(run_dir: str | os.PathLike, measure: Callable[[int, int], PairMeasurement | None],
               settings: LoopSettings | None = None, descriptors: np.ndarray | None = None,
               graph_options: dict | None = None, known: dict[tuple[int, int], VerifiedLoop] | None = None,
               during_run: dict | None = None, measure_limit: int | None = None,
               progress: bool = False) -> RefineSummary:
    """Close the loops of a finished chunked run and rewrite its outputs (see the module doc).

    Args:
        run_dir: a chunked ttt3r run folder.
        measure: ``(i, j) -> PairMeasurement | None`` (e.g. :func:`pair_measure`).
        settings: :class:`LoopSettings`.
        descriptors: (N, D), one per camera file in frame order (the network's);
            None: image descriptors of ``color/``.
        graph_options: passed to :func:`~ttt3r.loops.pose_graph.optimize_pose_graph`.
        known: pairs verified during the run (:func:`detect_and_close`; ``--loop-every``).
        during_run: recorded as ``run.json``'s ``loop_closure.during_run`` (the optimisations
            during the run, :meth:`ttt3r.loops.online.OnlineLoops.record`).
        measure_limit: new pairs measured at most (:func:`detect_and_close`; with ``known``, the
            rest of the run's verification budget, :meth:`ttt3r.loops.online.OnlineLoops.remaining`).
        progress: progress bars (descriptors, verification, rewrite) on stderr.

    ``run.json``'s ``loop_closure`` records ``measured`` (pairs measured after the last frame)
    and ``measurements`` (the whole run's: with ``known`` included), at most
    ``settings.candidate_cap`` when the run had a verification budget.

    The sequential edges follow the chunk records' ``aligned_to`` where loop closure
    during the run moved a chunk before the next was aligned to it.

    The graph starts from the run's raw outputs (:func:`chunk_graph`), so ``measure`` must
    measure in the units of the raw depth (:func:`run_depth_reader`), and refining a refined
    run replaces its loop-closure record and corrections (``pose_raw`` stays the first pose;
    ``during_run``, what happened while the run streamed, is kept when none is given).
    """
    t0 = time.perf_counter()
    st = settings or LoopSettings()
    run_dir = Path(run_dir)
    recover_rewrite(run_dir)
    nodes, chunk_of, poses, weights, frames = chunk_graph(run_dir)
    info = _read_json(run_dir / "run.json", "run.json")
    try:
        aligned = alignment_graph(sorted(info["chunks"], key=lambda r: int(r["chunk"])))[3]
    except (KeyError, TypeError, ValueError) as e:
        raise TTT3RError(f"{run_dir / 'run.json'}: malformed chunk records ({type(e).__name__}: {e})") from None
    chunk = int((info.get("settings") or {}).get("chunk") or 0) or int(np.bincount(chunk_of).max())
    min_gap = st.min_gap if st.min_gap is not None else 2 * chunk
    t_desc = time.perf_counter()
    desc = image_descriptors(run_dir, frames, progress) if descriptors is None else np.asarray(descriptors, np.float32)
    t_desc = time.perf_counter() - t_desc if descriptors is None else 0.0
    if len(desc) != len(frames):
        raise TTT3RError(f"{run_dir}: {len(desc)} descriptors for {len(frames)} frames")
    scene = float(np.median(raw_depth(run_dir, frames[0])))  # translation unit
    kind = "image" if descriptors is None else "encoder"
    closed, records, n_cands = detect_and_close(nodes, chunk_of, poses, desc, measure, replace(st, min_gap=min_gap),
                                                kind=kind,
                                                frames=frames, scene_scale=scene, sequential_weights=weights,
                                                graph_options=graph_options, aligned_to=aligned, known=known,
                                                measure_limit=measure_limit, progress=progress)
    loops = closed.loops
    kept = sum(1 for r in records if r["rejected_by_graph"] is False)
    seconds = time.perf_counter() - t0
    timings = {"descriptors_s": t_desc, **closed.timings}
    record = {"loops": records, "candidates": n_cands, "verified": sum(v.accepted for v in loops), "kept": kept,
              "measured": closed.measured, "measurements": len(known or {}) + closed.measured,
              "settings": {**asdict(st), "min_gap": min_gap, "min_similarity": st.similarity_for(kind),
                           "descriptors": kind, "candidate_cap": st.candidate_cap(len(frames))},
              "detect_and_solve_s": round(seconds, 3), "timings": {k: round(v, 4) for k, v in timings.items()},
              "graph_solves": closed.graph.solves if closed.graph is not None else 0}
    prev = info.get("loop_closure")
    prev = prev if isinstance(prev, dict) else None
    if during_run is None and prev is not None:  # a refined run refined again: what happened during its run holds
        during_run = prev.get("during_run")
    if during_run is not None:
        record["during_run"] = during_run
    never_rewritten = prev is None or prev.get("rewritten") is False
    if not kept and never_rewritten:  # no loop kept and the files hold the raw outputs: nothing to rewrite
        t1 = time.perf_counter()
        info["loop_closure"] = {**record, "status": "done", "frames": 0, "rewritten": False, "rewrite_s": 0.0}
        write_json(run_dir / "run.json", info, indent=2)
        return RefineSummary(n_cands, sum(v.accepted for v in loops), 0, 0, seconds, 0.0,
                             timings | {"rewrite_s": time.perf_counter() - t1})
    rw = rewrite_run(run_dir, closed.poses, closed.depth_scales, record=record | {"rewritten": True},
                     progress=progress)
    return RefineSummary(n_cands, sum(v.accepted for v in loops), kept, rw.frames, seconds, rw.seconds,
                         timings | {"rewrite_s": rw.seconds})
