"""Geometric verification of loop candidates.

A candidate pair ``(i, j)`` (:mod:`ttt3r.loops.retrieval`) is measured by an
injected callable (``measure(i, j)``): the network on a two-frame session of
the two images, or, with ``--oracle-drift``, the drift predictor on a
two-frame chunk. It returns a :class:`PairMeasurement`: frame ``j``'s camera
in frame ``i``'s, as a Sim(3) in the run's units (:func:`pair_to_run_units`
converts a two-frame prediction), and a confidence in [0, 1].

A measurement is kept when its confidence is high enough and it agrees with
the current estimate (the run's poses, drift and all) within loose bounds on
rotation, scale and, optionally, translation. The bounds only catch gross
errors (a wrong place that looks alike): drift is what loop closure corrects,
so a true loop may disagree with the current estimate by the drift; the pose
graph (:mod:`ttt3r.loops.pose_graph`) rejects what still does not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..progress import progress_bar
from .pose_graph import sim3_inverse, sim3_matrix, sim3_split
from .retrieval import LoopCandidate

__all__ = ["PairMeasurement", "VerifiedLoop", "VerifySettings", "depth_ratio", "pair_to_run_units",
           "verify_candidates"]


@dataclass(frozen=True, eq=False)
class PairMeasurement:
    """What a two-frame prediction says about a pair.

    Attributes:
        relative: (4, 4) Sim(3) ``[[s R, t], [0, 1]]``: points in frame ``j``'s camera
            (run units at ``j``) -> frame ``i``'s camera (run units at ``i``).
        confidence: in [0, 1] (e.g. the share of confident, mutually consistent pixels).
    """

    relative: np.ndarray
    confidence: float


@dataclass(frozen=True)
class VerifySettings:
    """Bounds a measurement must meet to be kept.

    Attributes:
        min_confidence: smallest accepted confidence.
        max_rot_deg: largest rotation between measurement and current estimate, degrees (60:
            a chunked run's rotation drift reaches 30-45 degrees after 13 laps of the synth
            ``orbit``, and true loops must pass; the pose graph rejects what does not fit).
        max_scale_ratio: largest scale ratio (either way) between them.
        max_trans: largest translation difference, in units of ``scene_scale``
            (``None``: not checked).
    """

    min_confidence: float = 0.3
    max_rot_deg: float = 60.0
    max_scale_ratio: float = 1.5
    max_trans: float | None = None


@dataclass
class VerifiedLoop:
    """A measured candidate, kept or not (recorded in ``run.json``).

    Attributes:
        i, j: frames (``i`` later). similarity: descriptor cosine.
        relative: the measurement (4, 4), or None when ``measure`` gave none.
        confidence: the measurement's.
        rot_err_deg, scale_err, trans_err: disagreement with the current estimate
            (degrees, ``|log|`` of the scale ratio, translation in ``scene_scale`` units).
        accepted: passed every check. reason: why not (empty when accepted).
    """

    i: int
    j: int
    similarity: float
    relative: np.ndarray | None
    confidence: float
    rot_err_deg: float
    scale_err: float
    trans_err: float
    accepted: bool
    reason: str = ""

    def to_json(self) -> dict:
        return {"i": self.i, "j": self.j, "similarity": round(self.similarity, 5),
                "confidence": round(self.confidence, 5), "rot_err_deg": round(self.rot_err_deg, 4),
                "scale_err": round(self.scale_err, 5), "trans_err": round(self.trans_err, 5),
                "accepted": self.accepted, "reason": self.reason}


def depth_ratio(run_depth: np.ndarray, pair_depth: np.ndarray, conf: np.ndarray | None = None,
                conf_threshold: float = 1.5) -> float:
    """Median of ``run_depth / pair_depth`` over valid (and confident) pixels of one frame: the
    factor from a two-frame prediction's unit to the run's (NaN when no pixel is valid).

    Args:
        run_depth, pair_depth: (H, W) the frame's depth in the run and in the pair prediction.
        conf: optional (H, W) confidence; pixels with ``conf > conf_threshold`` count.
    """
    a, b = np.asarray(run_depth, np.float64), np.asarray(pair_depth, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"run_depth and pair_depth must have the same shape, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if conf is not None:
        ok &= np.asarray(conf) > conf_threshold
    return float(np.median(a[ok] / b[ok])) if ok.any() else float("nan")


def pair_to_run_units(relative_pose: np.ndarray, ratio_i: float, ratio_j: float) -> np.ndarray:
    """A two-frame prediction's rigid pose of ``j`` in ``i`` ((4, 4), pair units) as the Sim(3)
    ``S(ratio_i) [R | t] S(1 / ratio_j)`` between the frames' cameras in the run's units
    (``ratio_*``: :func:`depth_ratio` of each frame)."""
    p = np.asarray(relative_pose, np.float64)
    return sim3_matrix(ratio_i / ratio_j, p[:3, :3], ratio_i * p[:3, 3])


def _disagreement(measured: np.ndarray, current: np.ndarray, scene_scale: float) -> tuple[float, float, float]:
    s, R, t = sim3_split(sim3_inverse(measured) @ current)
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos))), float(abs(np.log(s))), float(np.linalg.norm(t) / scene_scale)


def verify_candidates(candidates: Iterable[LoopCandidate], measure: Callable[[int, int], PairMeasurement | None],
                      poses: Callable[[int], np.ndarray] | np.ndarray, settings: VerifySettings | None = None,
                      scene_scale: float = 1.0, progress: bool = False) -> list[VerifiedLoop]:
    """Measure and check each candidate (see the module doc).

    Args:
        candidates: from :func:`~ttt3r.loops.retrieval.find_loop_candidates`.
        measure: ``measure(i, j)`` -> :class:`PairMeasurement`, or None when the
            pair cannot be measured.
        poses: the current estimate: (N, 4, 4) camera-to-world poses (or Sim(3)
            matrices) indexed by frame, or a function of the frame index.
        settings: :class:`VerifySettings`.
        scene_scale: the unit of the translation check (e.g. the median depth).
        progress: show a progress bar (pairs measured, rate, ETA) on stderr.

    Returns:
        One :class:`VerifiedLoop` per candidate, in the order given.
    """
    st = settings or VerifySettings()
    get = poses if callable(poses) else (lambda k, _p=np.asarray(poses, np.float64): _p[k])
    candidates = list(candidates)
    out = []
    with progress_bar(len(candidates), "loop closure: verify", unit="pair", enabled=progress) as bar:
        for c in candidates:
            out.append(_verify_one(c, measure(c.i, c.j), get, st, scene_scale))
            bar.update(1)
    return out


def _verify_one(c: LoopCandidate, m: PairMeasurement | None, get: Callable[[int], np.ndarray],
                st: VerifySettings, scene_scale: float) -> VerifiedLoop:
    """One candidate's check against the current estimate ``get`` (see the module doc)."""
    if m is None or not np.all(np.isfinite(m.relative)):
        return VerifiedLoop(c.i, c.j, c.similarity, None, 0.0, np.nan, np.nan, np.nan, False, "no measurement")
    current = sim3_inverse(get(c.i)) @ np.asarray(get(c.j), np.float64)
    rot, sc, tr = _disagreement(np.asarray(m.relative, np.float64), current, scene_scale)
    reason = ""
    if m.confidence < st.min_confidence:
        reason = f"confidence {m.confidence:.3g} < {st.min_confidence:g}"
    elif rot > st.max_rot_deg:
        reason = f"rotation differs by {rot:.3g} deg > {st.max_rot_deg:g}"
    elif sc > np.log(st.max_scale_ratio):
        reason = f"scale differs by x{np.exp(sc):.3g} > x{st.max_scale_ratio:g}"
    elif st.max_trans is not None and tr > st.max_trans:
        reason = f"translation differs by {tr:.3g} > {st.max_trans:g}"
    return VerifiedLoop(c.i, c.j, c.similarity, np.asarray(m.relative, np.float64), float(m.confidence),
                        rot, sc, tr, not reason, reason)
