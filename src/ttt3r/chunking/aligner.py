"""Putting per-chunk predictions into one world frame, chunk by chunk, as they stream.

A :class:`ChunkAligner` sees only per-chunk predictions (:class:`FrameResult`
in the chunk's own frame): the overlap frames of a new chunk, then its new
frames. From the overlap it estimates the chunk-to-world transform ``T``:

* ``sim3``: the same pixels of the same frames, once in the previous chunk's
  (already aligned) world points and once in the new chunk's points, are dense
  correspondences; :func:`ttt3r.chunking.sim3.robust_sim3` fits ``T`` with
  weights ``conf_prev * conf_new`` (IRLS, Huber kernel).
* ``se3``: ``T`` is the previous chunk's pose of the first overlap frame (the
  chunk's frame is that camera): the original demo's chain.

World points of a frame are its self-view points under its pose
(:meth:`FrameResult.points_world`). A new frame is returned transformed at
once: pose ``[R R_i | s R t_i + t]``, camera points and depth times ``s``
(depth stays consistent with the world), world-head points by ``T``;
confidences and intrinsics unchanged.

Loop closure during the run (``--loop-every M``, :mod:`ttt3r.loops.online`)
moves the map between two chunks: :meth:`ChunkAligner.correct` applies a
world-to-world Sim(3) ``C`` to the finished chunk's transform and to the world
points of its last frames that the next chunk is aligned against, so the next
chunk lands on the corrected map. That chunk's record then keeps the
transform it was aligned to (``aligned_to``, ``C T``): its overlap measured
``aligned_to^-1 T_next``, the sequential edge of the pose graph, while
``matrix`` stays the transform its frames were written with.

Memory: of the previous chunk only a grid of at most ``max_points`` pixels of
its last ``K`` frames is kept (points, confidences), and the ``K`` overlap
predictions of the current chunk while they are collected (same grid).
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..errors import TTT3RError
from ..geometry import Sim3
from ..results import FrameResult
from .settings import ChunkSettings
from .sim3 import fit_residuals, robust_sim3

__all__ = ["ChunkAligner", "ChunkAlignment", "apply_sim3"]


@dataclass
class ChunkAlignment:
    """How one chunk was put into the world frame (recorded in ``run.json``).

    Attributes:
        chunk: chunk number (0 = the first, which defines the world).
        first_frame: index of the chunk's first new frame.
        overlap: ``[start, stop)`` indices of its re-fed overlap frames (empty for chunk 0).
        mode: ``sim3``, ``se3``, ``world`` (chunk 0), or ``se3-fallback`` when
            the Sim(3) fit was impossible (degenerate overlap) or explained the
            overlap worse (lower ``confidence``) than the SE(3) chain.
        matrix: (4, 4) ``[[s R, t], [0, 1]]`` chunk frame -> world.
        scale: ``s``.
        residual: weighted RMS distance of the overlap inliers after ``T``, world units
            (None for chunk 0).
        residual_rel: ``residual`` over the overlap cloud's RMS spread (unitless).
        inlier_fraction: share of the overlap correspondences within the Huber threshold.
        confidence: share of the overlap's confidence mass (``conf_prev * conf_new``)
            on pixels where the two chunks agree within 5% of the point's distance
            to its camera after ``T``, in [0, 1]: 1 means they agree everywhere.
        points: correspondences used.
        seconds: time of the fit.
        aligned_to: (4, 4) the previous chunk's transform this chunk was aligned to when
            :meth:`ChunkAligner.correct` had moved it (loop closure during the run); None:
            the previous chunk's ``matrix`` (the sequential edge is ``aligned_to^-1 matrix``).
    """

    chunk: int
    first_frame: int
    overlap: tuple[int, int]
    mode: str
    matrix: np.ndarray
    scale: float = 1.0
    residual: float | None = None
    residual_rel: float | None = None
    inlier_fraction: float | None = None
    confidence: float | None = None
    points: int = 0
    seconds: float = 0.0
    aligned_to: np.ndarray | None = None

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["matrix"] = np.round(self.matrix, 10).tolist()
        d["overlap"] = list(self.overlap)
        if self.aligned_to is None:  # absent unless a correction moved the previous chunk
            del d["aligned_to"]
        else:
            d["aligned_to"] = np.round(self.aligned_to, 10).tolist()
        return d


def apply_sim3(r: FrameResult, base: np.ndarray, scale: float) -> FrameResult:
    """``r`` (chunk frame) in the world: ``base`` is the (4, 4) ``[[s R, t], [0, 1]]``, ``scale`` its ``s``.

    With ``scale == 1`` the arithmetic is exactly :class:`ttt3r.Session`'s chain
    (``base @ pose``, world points ``p @ R.T + t``), so an SE(3) chain matches it bit for bit.
    """
    pose = base @ r.pose
    if scale != 1.0:
        pose[:3, :3] /= scale
    pts = r.pts3d_cam if scale == 1.0 else (r.pts3d_cam * np.float32(scale))
    world = r.pts3d_world
    if world is not None:
        world = (world.astype(np.float64) @ base[:3, :3].T + base[:3, 3]).astype(np.float32)
    return dataclasses.replace(r, pose=pose, pts3d_cam=pts, pts3d_world=world, extras=dict(r.extras))


@dataclass
class _Samples:
    """A frame's grid of sample pixels: (M, 3) float64 points and (M,) confidences."""

    index: int
    points: np.ndarray
    conf: np.ndarray
    pose: np.ndarray = field(repr=False)
    scale: float = 1.0  # the corrections' scale so far (the SE(3) chain's scale; 1 without corrections)

    def distances(self) -> np.ndarray:
        """(M,) distance of each point from the frame's camera centre."""
        return np.linalg.norm(self.points - self.pose[:3, 3], axis=1)


class ChunkAligner:
    """Streams per-chunk predictions into one world frame (see the module doc).

    Use: :meth:`open_chunk` at each chunk start, :meth:`add_overlap` for each
    of its re-fed frames (chunks >= 1), then :meth:`emit` for each new frame.
    """

    def __init__(self, settings: ChunkSettings) -> None:
        self.settings = settings
        self.records: list[ChunkAlignment] = []
        self._prev: deque[_Samples] = deque(maxlen=settings.overlap)
        self._overlap: list[_Samples] = []
        self._base = np.eye(4)
        self._scale = 1.0
        self._stride: int | None = None
        self._pending = False  # a chunk is waiting for its overlap frames
        self._first = 0  # the current chunk's first new frame
        self._moved = False  # correct() moved the last chunk since it was aligned
        self._chain_scale = 1.0  # product of the corrections' scales: the SE(3) chain's scale

    def _grid(self, hw: tuple[int, int]) -> tuple[slice, slice]:
        if self._stride is None:
            h, w = hw
            self._stride = max(1, int(np.ceil(np.sqrt(self.settings.overlap * h * w / self.settings.max_points))))
        s = self._stride
        return slice(s // 2, None, s), slice(s // 2, None, s)

    def _sample(self, r: FrameResult) -> _Samples:
        gy, gx = self._grid(r.hw)
        pc = r.pts3d_cam[gy, gx].reshape(-1, 3).astype(np.float64)
        pw = pc @ r.pose[:3, :3].T + r.pose[:3, 3]
        return _Samples(r.index, pw, r.conf[gy, gx].reshape(-1).astype(np.float64), r.pose, self._chain_scale)

    # ------------------------------------------------------------------
    def open_chunk(self, first_frame: int) -> None:
        """Start a chunk whose first new frame is ``first_frame``; chunks >= 1 then get their overlap."""
        if self._pending:
            raise RuntimeError("the previous chunk never received its overlap frames")
        chunk = len(self.records)
        if chunk == 0:
            self.records.append(ChunkAlignment(0, first_frame, (first_frame, first_frame), "world", np.eye(4)))
            return
        if len(self._prev) < self.settings.overlap:
            raise RuntimeError(f"chunk {chunk} starts after only {len(self._prev)} frames; "
                               f"need {self.settings.overlap}")
        self._overlap = []
        self._pending = True
        self._first = first_frame

    def add_overlap(self, r: FrameResult) -> None:
        """One re-fed overlap frame of the current chunk (``r.index`` = its sequence index)."""
        if not self._pending:
            raise RuntimeError("add_overlap outside a chunk's overlap")
        self._overlap.append(self._sample(r))
        if len(self._overlap) == self.settings.overlap:
            self._estimate()

    def emit(self, r: FrameResult) -> FrameResult:
        """A new frame of the current chunk, transformed into the world frame."""
        if self._pending:
            raise RuntimeError("emit before the chunk's overlap was complete")
        out = apply_sim3(r, self._base, self._scale)
        self._prev.append(self._sample(out))
        return out

    def correct(self, correction: np.ndarray) -> None:
        """Move the finished chunk by the world-to-world Sim(3) ``correction`` ((4, 4), e.g. its
        pose-graph correction ``T' T^-1``) before the next chunk is aligned to it: its transform
        becomes ``correction @ T`` and the kept world points and poses of its last frames move
        with it (poses: the rigid part of ``correction @ P``). Frames already emitted are not
        changed. Only between chunks (after a chunk's last frame, before :meth:`open_chunk`).
        """
        from ..loops.pose_graph import sim3_split

        if self._pending or not self.records:
            raise RuntimeError("correct() only between chunks")
        c = np.asarray(correction, np.float64)
        s, R, t = sim3_split(c)
        s = float(s)
        self._base = c @ self._base
        self._scale *= s
        self._chain_scale *= s
        for smp in self._prev:
            smp.points = (s * smp.points) @ R.T + t
            moved = c @ smp.pose
            smp.pose = np.eye(4)
            smp.pose[:3, :3], smp.pose[:3, 3] = moved[:3, :3] / s, moved[:3, 3]
            smp.scale = self._chain_scale
        self._moved = True

    # ------------------------------------------------------------------
    def _estimate(self) -> None:
        t0 = time.perf_counter()
        prev = {s.index: s for s in self._prev}
        missing = [s.index for s in self._overlap if s.index not in prev]
        if missing:
            raise RuntimeError(f"overlap frames {missing} are not among the previous chunk's last frames")
        dst = np.concatenate([prev[s.index].points for s in self._overlap])
        src = np.concatenate([s.points for s in self._overlap])
        w = np.concatenate([prev[s.index].conf * s.conf for s in self._overlap])
        dist = np.concatenate([prev[s.index].distances() for s in self._overlap])
        ok = np.isfinite(dst).all(axis=1) & np.isfinite(src).all(axis=1) & np.isfinite(w) & (w > 0) & (dist > 0)
        src, dst, w, dist = src[ok], dst[ok], w[ok], dist[ok]
        mode = self.settings.align
        first = self._overlap[0].index
        # the chain through the first overlap frame, exactly as the original (no scale; after
        # corrections, their scale, so that the map moved by C gives the chain moved by C)
        chain_base = prev[first].pose.copy()
        chain_scale = prev[first].scale
        # its residuals in the chunk frame's coordinates: T maps them as chain_base does
        chain = (fit_residuals(Sim3(chain_base[:3, :3], chain_base[:3, 3], chain_scale), src, dst, w, ref_dist=dist)
                 if len(src) >= 3 else None)
        if chain_scale != 1.0:
            chain_base[:3, :3] *= chain_scale
        fit = chain
        if mode == "sim3":
            try:
                fit = robust_sim3(src, dst, w, ref_dist=dist)
            except TTT3RError:
                mode, fit = "se3-fallback", chain
            if mode == "sim3" and chain is not None and chain.confidence > fit.confidence:
                mode, fit = "se3-fallback", chain  # the overlap agrees better with the chain than with the fit
        if mode != "sim3":
            base, scale = chain_base, chain_scale
        else:
            base, scale = fit.sim.matrix, float(fit.sim.s)
        aligned_to = self._base.copy() if self._moved else None
        self._base, self._scale, self._moved = base, scale, False
        self.records.append(ChunkAlignment(
            chunk=len(self.records), first_frame=self._first, overlap=(first, self._overlap[-1].index + 1),
            mode=mode, matrix=base.copy(), scale=scale,
            residual=None if fit is None else fit.residual, residual_rel=None if fit is None else fit.residual_rel,
            inlier_fraction=None if fit is None else fit.inlier_fraction,
            confidence=None if fit is None else fit.confidence, points=int(len(src)),
            seconds=time.perf_counter() - t0, aligned_to=aligned_to))
        self._overlap = []
        self._pending = False
