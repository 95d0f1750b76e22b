"""Least-squares similarity alignment of point sets and trajectories (Umeyama 1991).

Shapes and frames:

* ``src`` and ``dst`` point sets are ``(N, 3)`` float arrays of corresponding
  points, in any (consistent) unit.
* Poses are ``(N, 4, 4)`` camera-to-world matrices (rotation part orthonormal).

The fitted transform maps ``src`` onto ``dst``: ``dst ~= s * R @ src + t``.
Applied to a pose ``P = [R_i | t_i]`` it gives ``[R @ R_i | s * R @ t_i + t]``:
positions are transformed by the similarity, orientations only rotated, so the
result is again a rigid pose (the convention of evo's ``PosePath3D.align``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from ..errors import TTT3RError

AlignMode = Literal["sim3", "se3", "none"]
"""``sim3``: rotation, translation and scale; ``se3``: rotation and translation;
``none``: identity."""

ALIGN_MODES: tuple[str, ...] = get_args(AlignMode)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Sim3:
    """A similarity transform ``x -> s * R @ x + t``.

    Attributes:
        R: (3, 3) rotation matrix (det +1).
        t: (3,) translation, in the destination frame's unit.
        s: positive scale factor (1.0 for SE(3) and identity fits).
    """

    R: np.ndarray
    t: np.ndarray
    s: float = 1.0

    def __iter__(self):
        """Unpack as ``R, t, s = sim``."""
        return iter((self.R, self.t, self.s))

    @staticmethod
    def identity() -> Sim3:
        return Sim3(np.eye(3), np.zeros(3), 1.0)

    @property
    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous matrix ``[[s R, t], [0, 1]]``."""
        m = np.eye(4)
        m[:3, :3] = self.s * self.R
        m[:3, 3] = self.t
        return m

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """Transform (..., 3) points; returns a new float64 array."""
        p = np.asarray(points, dtype=np.float64)
        return self.s * (p @ self.R.T) + self.t

    def apply_poses(self, poses: np.ndarray) -> np.ndarray:
        """Transform (N, 4, 4) camera-to-world poses (positions scaled, rotations rotated)."""
        p = np.array(poses, dtype=np.float64, copy=True)
        p[..., :3, :3] = self.R @ p[..., :3, :3]
        p[..., :3, 3] = self.apply_points(p[..., :3, 3])
        return p


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True,
            weights: np.ndarray | None = None) -> Sim3:
    """Least-squares ``Sim3`` (or rigid, if ``with_scale`` is False) mapping ``src`` to ``dst``.

    Args:
        src: (N, 3) source points.
        dst: (N, 3) corresponding destination points.
        with_scale: also estimate the scale (Sim(3)); otherwise ``s = 1`` (SE(3)).
        weights: optional (N,) non-negative weights of the correspondences
            (weighted means, covariance and variance); None: all equal.

    Raises:
        TTT3RError: shapes differ, or the points are degenerate (fewer than two
            independent directions, e.g. all identical or collinear).
    """
    x = np.asarray(src, dtype=np.float64)
    y = np.asarray(dst, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3:
        raise TTT3RError(f"cannot align point sets of shapes {x.shape} and {y.shape}; need (N, 3) each")
    n = x.shape[0]
    if weights is None:
        mx, my = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - mx, y - my
        var_x = float(np.sum(xc**2)) / n
        cov = yc.T @ xc / n  # (3, 3) = sum of outer(y_i, x_i) / n
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise TTT3RError(f"cannot align with weights of shape {w.shape}: need ({n},) finite, >= 0, not all 0")
        w = w / w.sum()
        mx, my = w @ x, w @ y
        xc, yc = x - mx, y - my
        var_x = float(w @ np.sum(xc**2, axis=1))
        cov = (yc * w[:, None]).T @ xc
    u, d, vt = np.linalg.svd(cov)
    if np.count_nonzero(d > np.finfo(d.dtype).eps) < 2:
        raise TTT3RError(f"cannot align {n} positions: they are degenerate (identical or collinear)")
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0.0:
        sign[2, 2] = -1.0
    R = u @ sign @ vt
    s = float(np.trace(np.diag(d) @ sign) / var_x) if with_scale else 1.0
    t = my - s * (R @ mx)
    return Sim3(R, t, s)


def fit_alignment(src: np.ndarray, dst: np.ndarray, mode: AlignMode) -> Sim3:
    """Fit the transform of ``mode`` mapping (N, 3) ``src`` onto ``dst``."""
    check_align_mode(mode)
    if mode == "none":
        return Sim3.identity()
    return umeyama(src, dst, with_scale=(mode == "sim3"))


def align_trajectory(
    est_poses: np.ndarray, ref_poses: np.ndarray, mode: AlignMode = "sim3"
) -> tuple[np.ndarray, Sim3]:
    """Align estimated (N, 4, 4) camera-to-world poses to reference poses by their positions.

    Returns the aligned poses (a new array) and the fitted transform.
    """
    est = np.asarray(est_poses, dtype=np.float64)
    ref = np.asarray(ref_poses, dtype=np.float64)
    if est.shape != ref.shape or est.ndim != 3 or est.shape[1:] != (4, 4):
        raise TTT3RError(f"cannot align trajectories of shapes {est.shape} and {ref.shape}; need (N, 4, 4) each")
    check_align_mode(mode)
    centres = ref[:, :3, 3]
    if mode != "none" and centres_fixed(centres):
        raise TTT3RError(f"cannot align to {len(ref)} reference poses whose camera centres never move (a camera "
                         f"that only turns): ATE is undefined, only rotation errors are")
    sim = fit_alignment(est[:, :3, 3], centres, mode)
    return sim.apply_poses(est), sim


def centres_fixed(centres: np.ndarray) -> bool:
    """True when the (N, 3) camera centres all coincide (to rounding): a camera that
    never moves, or one that only turns. No alignment by positions exists for them."""
    c = np.asarray(centres, dtype=np.float64)
    return bool(np.ptp(c, axis=0).max() <= 1e-12 * max(1.0, float(np.abs(c).max())))


def check_align_mode(mode: str) -> None:
    """Raise TTT3RError if ``mode`` is not one of :data:`ALIGN_MODES`."""
    if mode not in ALIGN_MODES:
        raise TTT3RError(f"unknown alignment {mode!r}; choose one of {', '.join(ALIGN_MODES)}")
