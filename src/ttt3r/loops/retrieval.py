"""Loop candidates: pairs of frames far apart in time whose descriptors are close.

Descriptors (one (D,) unit vector per frame, :mod:`ttt3r.loops.descriptors`) are
kept as one (N, D) float32 array: O(frames) floats, never images. The search
is a ``scipy.spatial.cKDTree`` over the centred, re-normalised descriptors; for
unit vectors the squared distance is ``2 - 2 * cosine``, so the similarity
threshold is a ball radius.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TTT3RError
from .descriptors import normalize

__all__ = ["DescriptorStore", "LoopCandidate", "find_loop_candidates", "revisit_pairs"]


@dataclass(frozen=True)
class LoopCandidate:
    """Frame ``i`` (the later one) looks like frame ``j`` (``i - j >= min_gap``).

    Attributes:
        i, j: frame indices, ``i > j``.
        similarity: cosine of their centred descriptors, in [-1, 1].
    """

    i: int
    j: int
    similarity: float


class DescriptorStore:
    """Collects one descriptor per frame as the run streams (``add``), in frame order.

    Memory: ``N * D`` float32 (5,000 frames of the released checkpoint's
    1,024-dim descriptor: 20 MB), grown by doubling.
    """

    def __init__(self) -> None:
        self._data: np.ndarray | None = None
        self._frames: list[int] = []

    def add(self, frame: int, descriptor: np.ndarray) -> None:
        d = np.asarray(descriptor, np.float32).ravel()
        if self._data is None:
            self._data = np.empty((16, d.size), np.float32)
        elif d.size != self._data.shape[1]:
            raise ValueError(f"descriptor of frame {frame} has {d.size} values, the earlier ones {self._data.shape[1]}")
        n = len(self._frames)
        if n == len(self._data):
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._data[n] = d
        self._frames.append(int(frame))

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def frames(self) -> np.ndarray:
        """(N,) frame indices, in the order added."""
        return np.array(self._frames, np.int64)

    @property
    def descriptors(self) -> np.ndarray:
        """(N, D) float32 descriptors (a view; (0, 0) when empty)."""
        return np.empty((0, 0), np.float32) if self._data is None else self._data[: len(self._frames)]


def find_loop_candidates(descriptors: np.ndarray, frames: np.ndarray | None = None, *, min_gap: int = 50,
                         top_k: int = 1, min_similarity: float = 0.8, center: bool = True,
                         max_candidates: int | None = None) -> list[LoopCandidate]:
    """Revisit candidates among a run's frames.

    Args:
        descriptors: (N, D) one descriptor per frame.
        frames: (N,) their frame indices (default ``0..N-1``), increasing.
        min_gap: only pairs at least this many frames apart are candidates (so a
            frame's temporal neighbours, which always look alike, never are).
        top_k: at most this many candidates per later frame (its most similar).
        min_similarity: keep pairs whose cosine similarity is at least this.
        center: subtract the run's mean descriptor and re-normalise first.
        max_candidates: keep only the most similar this many overall.

    Returns:
        Candidates ``(i, j, similarity)`` with ``i - j >= min_gap``, each pair once,
        most similar first.
    """
    from scipy.spatial import cKDTree

    x = np.asarray(descriptors, np.float32)
    if x.ndim != 2:
        raise ValueError(f"descriptors must be (N, D), got shape {x.shape}")
    idx = np.arange(len(x)) if frames is None else np.asarray(frames, np.int64)
    if idx.shape != (len(x),) or np.any(np.diff(idx) <= 0):
        raise ValueError("frames must be (N,) increasing frame indices")
    if min_gap < 1 or top_k < 1 or not -1.0 <= min_similarity <= 1.0:
        raise TTT3RError(f"loop retrieval: need min_gap >= 1, top_k >= 1 and min_similarity in [-1, 1], "
                         f"got {min_gap}, {top_k}, {min_similarity}")
    if len(x) < 2:
        return []
    if center:
        x = x - x.mean(axis=0, keepdims=True)
    x = normalize(x)
    tree = cKDTree(x)
    radius = float(np.sqrt(max(0.0, 2.0 - 2.0 * min_similarity)))
    out: list[LoopCandidate] = []
    for a, near in enumerate(tree.query_ball_point(x, radius + 1e-6)):
        near = np.asarray(near, np.int64)
        near = near[idx[a] - idx[near] >= min_gap] if len(near) else near
        if not len(near):
            continue
        sim = x[near] @ x[a]
        keep = np.argsort(-sim, kind="stable")[:top_k]
        out.extend(LoopCandidate(int(idx[a]), int(idx[near[k]]), float(sim[k])) for k in keep
                   if sim[k] >= min_similarity)
    out.sort(key=lambda c: (-c.similarity, c.i, c.j))
    return out[:max_candidates] if max_candidates is not None else out


def revisit_pairs(positions: np.ndarray, radius: float, min_gap: int = 50) -> set[tuple[int, int]]:
    """Ground-truth revisits: pairs ``(i, j)``, ``i - j >= min_gap``, whose camera centres
    ((N, 3), any unit) are within ``radius`` of each other (to score retrieval)."""
    from scipy.spatial import cKDTree

    p = np.asarray(positions, np.float64)
    pairs = cKDTree(p).query_pairs(float(radius), output_type="ndarray")
    return {(int(max(a, b)), int(min(a, b))) for a, b in pairs if abs(int(a) - int(b)) >= min_gap}
