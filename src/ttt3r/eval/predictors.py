"""Predictors: what maps one sequence's frames to per-frame predictions for the evaluation runner.

The seam: anything with ``predict(seq, rule, task) -> Prediction`` and
``describe() -> dict`` (JSON-ready settings that identify its outputs; part of
the cache fingerprint). Registered predictors (:func:`create_predictor`, used by
``ttt3r eval``):

* ``session`` (:class:`SessionPredictor`): the network, streamed through a
  :class:`ttt3r.Session` per (sequence, rule);
* ``oracle`` (:class:`GroundTruthPredictor`): the ground truth itself
  (optionally scaled or perturbed), to check the pipeline without a network;
* ``oracle_drift`` (:class:`DriftOraclePredictor`): the ground truth made into
  what a chunked feed-forward network gives (per-chunk scale, rotation drift,
  noise; :mod:`ttt3r.chunking.oracle`), put together by the same chunk aligner
  as the network's chunks (``--oracle-drift SPEC``).

A new predictor is a small class registered with :func:`register_predictor`;
a perturbed oracle subclasses :class:`GroundTruthPredictor` and overrides
:meth:`GroundTruthPredictor.poses` or :meth:`GroundTruthPredictor.depth`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import TTT3RError
from .datasets.base import Sequence
from .protocols import CropView, Prediction


class Predictor(Protocol):
    """Maps one sequence's frames to per-frame predictions."""

    def predict(self, seq: Sequence, rule: str, task: str) -> Prediction:
        """Predict every frame of ``seq`` with update rule ``rule``; ``task`` (a registered
        :mod:`ttt3r.eval.tasks` name) says which network heads are needed."""
        ...

    def describe(self) -> dict:
        """JSON-ready settings that determine the outputs (part of the cache fingerprint)."""
        ...


@dataclass(frozen=True)
class PredictorOptions:
    """The command-line settings a predictor may read (``ttt3r eval``'s options of the same names)."""

    weights: str | None = None
    device: str = "auto"
    dtype: str = "fp32"
    size: int | None = None
    reset_every: int = 0
    chunk: int = 0
    overlap: int | None = None
    chunk_align: str = "sim3"
    oracle_drift: str | None = None
    loop_closure: bool = False
    loop_every: int | None = None  # with loop_closure: also optimise every M chunks during the stream
    known: str | None = None  # "intrinsics" or "poses": feed the ground-truth cameras (see SessionPredictor)

    def chunks(self):
        """The :class:`ttt3r.chunking.ChunkSettings` of ``--chunk/--overlap/--chunk-align`` (None: no chunks)."""
        from ..chunking import check_chunk_options, chunk_settings

        check_chunk_options(self.chunk, self.overlap, self.chunk_align, self.reset_every)
        from ..loops.online import check_loop_every

        if self.loop_closure and not self.chunk:
            raise TTT3RError("--loop-closure needs --chunk N (the pose graph's nodes are the chunks)")
        check_loop_every(self.loop_every, self.loop_closure)
        return chunk_settings(self.chunk, self.overlap, self.chunk_align)


#: what ``--known`` may name: the ground-truth cameras fed to the network
KNOWN_CAMERAS = ("intrinsics", "poses")

_PREDICTORS: dict[str, Callable[[PredictorOptions], Predictor]] = {}


def register_predictor(name: str) -> Callable[[Callable[[PredictorOptions], Predictor]], Callable]:
    """Decorator: make ``factory(options) -> Predictor`` available as :func:`create_predictor` ``(name, ...)``."""

    def deco(factory):
        _PREDICTORS[name] = factory
        return factory

    return deco


def create_predictor(name: str, options: PredictorOptions) -> Predictor:
    """A registered predictor built from ``options`` (a one-line :class:`TTT3RError` for an unknown name)."""
    try:
        factory = _PREDICTORS[name]
    except KeyError:
        raise TTT3RError(f"unknown predictor {name!r}; choose one of {', '.join(_PREDICTORS)}") from None
    return factory(options)


def predictor_names() -> list[str]:
    return list(_PREDICTORS)


# ---------------------------------------------------------------------------
# the network


_MODELS: dict[tuple[str, str, str], Any] = {}


def _cached_model(weights: str, device: str, dtype: str):
    """Load a network once per process (a Ray worker keeps it across tasks)."""
    key = (str(weights), str(device), str(dtype))
    if key not in _MODELS:
        from ..api import load_model

        _MODELS[key] = load_model(weights, device=device, dtype=dtype, quiet=True)
    return _MODELS[key]


class SessionPredictor:
    """The default predictor: a :class:`ttt3r.Session` per (sequence, rule).

    Args:
        weights: checkpoint path or known name (see :func:`ttt3r.load_model`).
        device, dtype: where and how the network runs.
        size: preprocessing size (512 or 224); default: the checkpoint's.
        reset_every: reset the state every N frames (0: never).
        model: an already loaded network (then ``weights`` only labels it).
        chunks: overlapping chunks (:class:`ttt3r.chunking.ChunkSettings`), or None.
        known: feed the ground-truth cameras as ray maps (:mod:`ttt3r.cameras`; the
            paper evaluates without them): ``"poses"``: every frame its image and the
            ray map of its ground-truth camera (intrinsics and pose, relative to the
            first); the predicted poses are then those given poses and the intrinsics
            the given K at network resolution (the network's pose-head poses are not
            evaluated). ``"intrinsics"``: the first frame also gets its ray map (its
            pose is the world frame, the identity), later frames their image alone,
            as ``ttt3r reconstruct --intrinsics`` does; the predicted intrinsics are
            the given K at network resolution; poses and depth stay the network's.

    The depth is the self-view pointmap's z on the preprocessed crop, the poses
    camera-to-world relative to the first frame, the intrinsics the Weiszfeld
    focal fit; the heads the task asks for (``heads`` of
    :mod:`ttt3r.eval.tasks`, e.g. the world-frame pointmap for ``recon``) are
    returned as well.
    """

    def __init__(self, weights: str | os.PathLike, device: str = "auto", dtype: str = "fp32",
                 size: int | None = None, reset_every: int = 0, model: Any = None, chunks=None,
                 known: str | None = None, loop_closure: bool = False, loop_every: int | None = None) -> None:
        if known is not None and known not in KNOWN_CAMERAS:
            raise TTT3RError(f"--known: {known!r} is not one of {', '.join(KNOWN_CAMERAS)}")
        if known == "poses" and reset_every:
            raise TTT3RError("--known poses with --reset-every is not supported (each chunk would need its own "
                             "reference camera)")
        if known is not None and chunks is not None:
            raise TTT3RError("--known with --chunk is not supported (each chunk would need its own reference camera)")
        self.known = known
        self.weights = str(weights)
        self.chunks = chunks
        self.loop_closure = bool(loop_closure)
        self.loop_every = loop_every if self.loop_closure else None
        self.device = device
        self.dtype = dtype
        self.size = size
        self.reset_every = int(reset_every)
        self._model = model

    def __getstate__(self) -> dict:  # ship settings, not the network, to Ray workers
        d = dict(self.__dict__)
        if d.get("_model") is not None and Path(self.weights).exists():
            d["_model"] = None
        return d

    def ray_gpus(self) -> float:
        """GPUs a Ray task of this predictor asks for: 0 on CPU, else 1 (``auto``: 1 if the cluster has any)."""
        if str(self.device) == "cpu":
            return 0.0
        if str(self.device) == "auto":
            import ray

            return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return 1.0

    def model(self):
        if self._model is None:
            self._model = _cached_model(self.weights, self.device, self.dtype)
        return self._model

    def describe(self) -> dict:
        w = Path(self.weights)
        ident = {"name": w.name, "bytes": w.stat().st_size, "mtime": int(w.stat().st_mtime)} if w.is_file() else self.weights
        out = {"predictor": "session", "weights": ident, "size": self.size, "dtype": self.dtype,
               "reset_every": self.reset_every}
        if self.chunks is not None:
            out["chunks"] = self.chunks.to_json()
        if self.known is not None:  # absent otherwise, so earlier caches stay valid
            out["known"] = self.known
        if self.loop_closure:
            out["loop_closure"] = True
        if self.loop_every is not None:
            out["loop_every"] = int(self.loop_every)
        return out

    def predict(self, seq: Sequence, rule: str, task: str) -> Prediction:
        from ..preprocess import preprocess
        from ..session import Session
        from .tasks import get_task

        if self.chunks is not None:
            from ..chunking import ChunkedSession

            session = ChunkedSession.for_network(self.model(), self.chunks, update=rule, size=self.size,
                                                 want=get_task(task).heads)
        else:
            session = Session(self.model(), update=rule, reset_every=self.reset_every, size=self.size,
                              want=get_task(task).heads)
        depth, poses, Ks, world = [], [], [], []
        closing = self.loop_closure and self.chunks is not None
        online = store = None
        if closing:
            from ..loops.descriptors import encoder_descriptor
            from ..loops.refine import pair_measure
            from ..loops.retrieval import DescriptorStore

            def pair(i, j):  # the network on a two-frame session
                two = Session(self.model(), update=rule, size=self.size)
                return tuple(two.step(preprocess(seq.image_paths[k], session.size, seq.image_paths[k].name))
                             for k in (i, j))

            measure = pair_measure(pair, lambda i: depth[i])
            online = _online_loops(session, measure, self.loop_every)
            store = DescriptorStore() if online is None else online.store  # the network's descriptors
        src_hw = None
        t0 = time.perf_counter()
        for i, path in enumerate(seq.image_paths):
            pre = preprocess(path, session.size, path.name)
            if src_hw is None:
                src_hw = pre.source_hw
            elif pre.source_hw != src_hw:
                raise TTT3RError(f"{path}: image size {pre.source_hw} differs from the sequence's first frame {src_hw}")
            rays = None
            if self.known is not None:
                if i == 0:
                    cams = _known_cameras(seq, pre.source_hw, session.size, self.known)
                K_net, rays = cams(i)
            # a ChunkedSession takes no ray maps (--known with --chunk is refused above)
            r = session.step(pre, path.name) if rays is None else session.step(pre, path.name, rays=rays)
            if self.known is not None:
                r.intrinsics = K_net
                if self.known == "poses":
                    r.pose = _gt_relative(seq)[i]
            depth.append(r.depth.astype(np.float32))
            poses.append(r.pose)
            Ks.append(r.intrinsics)
            if r.pts3d_world is not None:
                world.append(r.pts3d_world)
            if store is not None:
                feat = r.extras.get("global_feat")
                desc = None if feat is None else encoder_descriptor(feat)
                if online is not None:
                    online.add(i, r.pose, desc)  # a frame without one: no optimisation during the run
                elif desc is not None:
                    store.add(i, desc)
        assert src_hw is not None
        depth_a, poses_a, extras = np.stack(depth), np.stack(poses), {}
        if closing:
            kind = "encoder" if len(store) == len(seq.image_paths) else "image"
            if kind == "encoder":
                desc = store.descriptors
            else:  # a step without the pooled token: describe the images instead
                from ..loops.refine import image_paths_descriptors

                desc = image_paths_descriptors(seq.image_paths)
            poses_a, scales, extras["loop_closure"] = _close_loops(session.alignments, poses_a, desc, measure, kind,
                                                                   online)
            depth_a = depth_a * scales[:, None, None].astype(np.float32)
        return Prediction(
            depth=depth_a,
            poses=poses_a,
            intrinsics=np.stack(Ks),
            view=CropView.for_size(src_hw, session.size),
            points_world=np.stack(world) if world else None,
            seconds=time.perf_counter() - t0,
            extras=extras,
        )


def _gt_relative(seq: Sequence) -> np.ndarray:
    """(N, 4, 4) ground-truth camera-to-world relative to the first camera (all must be known)."""
    from ..cameras import relative_poses

    if seq.poses is None or not np.isfinite(seq.poses).all():
        raise TTT3RError(f"{seq.dataset}/{seq.name}: --known poses needs every frame's ground-truth pose")
    return relative_poses(seq.poses, f"{seq.dataset}/{seq.name}")


def _known_cameras(seq: Sequence, source_hw: tuple[int, int], size: int, known: str):
    """frame index -> (K_net (3, 3), ray map (h, w, 6) or None) from ``seq``'s ground truth."""
    from ..cameras import intrinsics_to_network, network_hw, ray_map

    if seq.intrinsics is None:
        raise TTT3RError(f"{seq.dataset}/{seq.name}: --known {known} needs the dataset's intrinsics")
    wh = (source_hw[1], source_hw[0])
    h, w = network_hw(wh, size)
    rel = _gt_relative(seq) if known == "poses" else None

    def cams(i: int):
        K_net = intrinsics_to_network(seq.intrinsics[i], wh, size)
        if rel is not None:
            return K_net, ray_map(rel[i], K_net, h, w)
        return K_net, (ray_map(np.eye(4), K_net, h, w) if i == 0 else None)

    return cams


def _online_loops(stream, measure, every: int | None, kind: str = "encoder"):
    """With ``every`` (``--loop-every M``): an :class:`ttt3r.loops.online.OnlineLoops` hooked into the
    chunked ``stream`` (its corrections move the chunk aligner between chunks); else None."""
    if every is None:
        return None
    from ..loops.online import OnlineLoops
    from ..loops.refine import LoopSettings

    online = OnlineLoops(measure, LoopSettings(), every, kind=kind)
    stream.between_chunks = lambda done: online.between_chunks(stream.alignments, done)
    return online


def _close_loops(alignments, poses: np.ndarray, descriptors: np.ndarray, measure, kind: str, online=None):
    """Loop closure over a chunked stream held in memory: (corrected poses, depth scales, JSON record).

    ``kind``: the descriptors' kind (``"encoder"`` or ``"image"``: their default similarity threshold).
    ``online``: the :class:`ttt3r.loops.online.OnlineLoops` of a ``--loop-every`` stream (its
    measured pairs are reused, the rest of its verification budget is this closure's, its
    optimisations are recorded). The record's ``measurements``: pairs measured over the whole run."""
    from ..loops.refine import LoopSettings, alignment_graph, detect_and_close

    t0 = time.perf_counter()
    nodes, starts, weights, aligned = alignment_graph(alignments)
    chunk_of = np.searchsorted(starts, np.arange(len(poses)), side="right") - 1
    known = None if online is None else online.measured
    closed, records, n = detect_and_close(nodes, chunk_of, poses, descriptors, measure, LoopSettings(),
                                          sequential_weights=weights, aligned_to=aligned, kind=kind, known=known,
                                          measure_limit=None if online is None else online.remaining(len(poses)))
    kept = sum(1 for r in records if r["rejected_by_graph"] is False)
    record = {"candidates": n, "verified": sum(1 for r in records if r["accepted"]), "kept": kept,
              "measured": closed.measured, "measurements": len(known or {}) + closed.measured,
              "candidate_cap": LoopSettings().candidate_cap(len(poses)),
              "seconds": round(time.perf_counter() - t0, 3),
              "timings": {k: round(v, 4) for k, v in closed.timings.items()}, "loops": records}
    if online is not None:
        record["during_run"] = online.record()
    return closed.poses, closed.depth_scales, record


@register_predictor("session")
def _session(opts: PredictorOptions) -> Predictor:
    if opts.weights is None:
        raise TTT3RError("--weights is required (a checkpoint path or known name), or --oracle")
    return SessionPredictor(opts.weights, device=opts.device, dtype=opts.dtype, size=opts.size,
                            reset_every=opts.reset_every, chunks=opts.chunks(), known=opts.known,
                            loop_closure=opts.loop_closure, loop_every=opts.loop_every)


# ---------------------------------------------------------------------------
# the ground truth


class GroundTruthPredictor:
    """Ground truth as the prediction, optionally perturbed: checks the pipeline without a network.

    Poses are re-expressed in the first camera's frame (as a reconstruction's are).

    Args:
        scale: global scale applied to positions and depth (a similarity the
            protocols must ignore under Sim(3) / median alignment).
        depth_factor: extra factor on the depth only (``depth * scale * depth_factor``).
        translation_noise: per-sequence (N, 3) offsets (first rows for shorter runs) added to the camera
            positions (in the ground-truth world frame, before re-expression).
    """

    def __init__(self, scale: float = 1.0, depth_factor: float = 1.0,
                 translation_noise: dict[str, np.ndarray] | None = None) -> None:
        self.scale = float(scale)
        self.depth_factor = float(depth_factor)
        self.translation_noise = {k: np.asarray(v, dtype=np.float64) for k, v in (translation_noise or {}).items()}
        self.calls = 0

    def describe(self) -> dict:
        noise = {k: np.round(v, 12).tolist() for k, v in sorted(self.translation_noise.items())}
        return {"predictor": "ground_truth", "scale": self.scale, "depth_factor": self.depth_factor, "noise": noise}

    def poses(self, seq: Sequence) -> np.ndarray:
        """(N, 4, 4) camera-to-world in the first camera's frame (identities when ``seq`` has none).

        Unknown ground-truth poses (ScanNet) hold the last known one; the noise is
        added in the ground-truth world frame, the scale after re-expression.
        """
        n = len(seq)
        if seq.poses is None:
            return np.tile(np.eye(4), (n, 1, 1))
        poses = np.array(seq.poses, dtype=np.float64)
        ok = np.isfinite(poses).all(axis=(1, 2))
        if ok.any() and not ok.all():
            idx = np.maximum.accumulate(np.where(ok, np.arange(n), 0))
            idx[: int(np.argmax(ok))] = int(np.argmax(ok))
            poses = poses[idx]
        noise = self.translation_noise.get(seq.name)
        if noise is not None:
            poses[:, :3, 3] += noise[:n]  # a --frames limit uses the first rows
        if np.isfinite(poses[0]).all():
            poses = np.linalg.inv(poses[0]) @ poses
        poses[:, :3, 3] *= self.scale
        return poses

    def depth(self, seq: Sequence) -> np.ndarray:
        """(N, H, W) float32 ground-truth depth times ``scale * depth_factor`` (ones when ``seq`` has none)."""
        n = len(seq)
        if seq.depth_paths is not None:
            depth = np.stack([seq.read_depth(i) for i in range(n)]).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(seq.image_paths[0]) as im:
                w, h = im.size
            depth = np.ones((n, h, w), np.float32)
        return depth * np.float32(self.scale * self.depth_factor)

    def predict(self, seq: Sequence, rule: str, task: str) -> Prediction:
        self.calls += 1
        n = len(seq)
        poses = self.poses(seq)
        depth = self.depth(seq)
        h, w = depth.shape[1:]
        K = seq.intrinsics if seq.intrinsics is not None else np.tile(
            np.array([[float(max(h, w)), 0, (w - 1) / 2], [0, float(max(h, w)), (h - 1) / 2], [0, 0, 1]]), (n, 1, 1))
        return Prediction(depth=depth, poses=poses, intrinsics=np.asarray(K, dtype=np.float64))


@register_predictor("oracle")
def _oracle(opts: PredictorOptions) -> Predictor:
    return GroundTruthPredictor()


class DriftOraclePredictor:
    """The ground truth as a chunked feed-forward network would give it, put together by the chunk aligner.

    Each chunk is predicted in its own frame by :class:`ttt3r.chunking.oracle.DriftOracle`
    (per-chunk scale, rotation drift, translation and depth noise, confidences)
    and assembled by the same :class:`ttt3r.chunking.ChunkedSession` as the
    network's chunks: the aligner never sees the ground truth.

    Args:
        spec: the drift (:class:`ttt3r.chunking.oracle.DriftSpec`).
        chunks: :class:`ttt3r.chunking.ChunkSettings`, or None: the whole sequence is one chunk
            (the drift of a network run without resets).
    """

    def __init__(self, spec, chunks=None, loop_closure: bool = False, loop_every: int | None = None) -> None:
        self.spec = spec
        self.chunks = chunks
        self.loop_closure = bool(loop_closure)
        self.loop_every = loop_every if self.loop_closure else None
        self.last_alignments: list = []

    def describe(self) -> dict:
        d = {"predictor": "oracle_drift", "spec": self.spec.to_json(),
             "chunks": None if self.chunks is None else self.chunks.to_json()}
        return (d | ({"loop_closure": True} if self.loop_closure else {})
                | ({"loop_every": int(self.loop_every)} if self.loop_every is not None else {}))

    def predict(self, seq: Sequence, rule: str, task: str) -> Prediction:
        from ..chunking import ChunkedSession
        from ..chunking.oracle import DriftOracle

        t0 = time.perf_counter()
        gt = GroundTruthPredictor()
        poses = gt.poses(seq)  # first camera's frame; unknown poses hold the last known one
        n = len(seq)
        if seq.depth_paths is not None:
            read_depth = seq.read_depth
            h, w = read_depth(0).shape
        else:
            from PIL import Image

            with Image.open(seq.image_paths[0]) as im:
                w, h = im.size
            read_depth = lambda i: np.ones((h, w), np.float32)  # noqa: E731
        K = seq.intrinsics if seq.intrinsics is not None else np.tile(
            np.array([[float(max(h, w)), 0, (w - 1) / 2], [0, float(max(h, w)), (h - 1) / 2], [0, 0, 1]]), (n, 1, 1))
        K = np.asarray(K, dtype=np.float64)
        stream = ChunkedSession(DriftOracle(self.spec, poses, K, read_depth, key=seq.name), self.chunks)
        depth = np.empty((n, h, w), np.float32)
        out_poses = np.empty((n, 4, 4))
        closing = self.loop_closure and self.chunks is not None
        online = None
        if closing:
            from ..loops.refine import image_paths_descriptors, oracle_pair, pair_measure

            # the same drift model on a two-frame chunk
            measure = pair_measure(oracle_pair(self.spec, poses, K, read_depth, key=seq.name), lambda i: depth[i])
            online = _online_loops(stream, measure, self.loop_every, "image")
        for i in range(n):
            r = stream.step(i)
            depth[i] = r.depth
            out_poses[i] = r.pose
            if online is not None:
                online.add(i, r.pose, image_paths_descriptors([seq.image_paths[i]])[0])
        self.last_alignments = stream.alignments
        extras = {"chunks": [a.to_json() for a in stream.alignments]}
        if closing:
            desc = image_paths_descriptors(seq.image_paths) if online is None else online.store.descriptors
            out_poses, scales, extras["loop_closure"] = _close_loops(stream.alignments, out_poses, desc, measure,
                                                                      "image", online)
            depth *= scales[:, None, None].astype(np.float32)
        return Prediction(depth=depth, poses=out_poses, intrinsics=K, seconds=time.perf_counter() - t0,
                          extras=extras)


@register_predictor("oracle_drift")
def _oracle_drift(opts: PredictorOptions) -> Predictor:
    from ..chunking.oracle import DriftSpec

    return DriftOraclePredictor(DriftSpec.parse(opts.oracle_drift or ""), opts.chunks(), opts.loop_closure,
                                opts.loop_every)


__all__ = ["DriftOraclePredictor", "GroundTruthPredictor", "Predictor", "PredictorOptions", "SessionPredictor",
           "create_predictor", "predictor_names", "register_predictor"]
