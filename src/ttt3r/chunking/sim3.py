"""A confidence-weighted, robust Sim(3) / SE(3) fit between corresponding point sets.

The fit minimises ``sum_i w_i * rho(||dst_i - (s R src_i + t)||)`` with
``rho`` the Huber kernel, by iteratively reweighted least squares (IRLS):
each iteration is a weighted Umeyama fit (:func:`ttt3r.geometry.umeyama`)
with weights ``w_i * huber_weight(r_i)``. The Huber threshold follows the
residuals: ``delta = huber_k * sigma`` with ``sigma = 1.4826 * weighted
median(r)`` (the MAD estimate of the inlier spread), floored at a tiny fraction
of the point cloud's size so that noiseless data stays exact.

Shapes: ``src``, ``dst`` are (N, 3) in any consistent unit (``dst``'s unit is
the output's); ``weights`` (N,) >= 0, e.g. the product of two confidences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TTT3RError
from ..geometry import Sim3, umeyama

__all__ = ["RobustFit", "fit_residuals", "robust_sim3"]


@dataclass(frozen=True, eq=False)
class RobustFit:
    """The result of :func:`robust_sim3`.

    Attributes:
        sim: the fitted transform ``dst ~= s R src + t``.
        residual: weighted RMS distance of the inliers after the fit, in ``dst``'s unit.
        residual_rel: ``residual`` divided by the RMS spread of ``dst`` about its
            weighted centroid (unitless; 0 for a perfect fit).
        inlier_fraction: share of correspondences within the Huber threshold.
        confidence: share of the input weight (confidence mass) on correspondences whose
            residual is within ``rel_tol`` of their distance ``ref_dist`` (scale-free agreement), in [0, 1].
        threshold: the final Huber threshold ``delta`` in ``dst``'s unit.
        iterations: IRLS iterations run.
        points: correspondences used.
    """

    sim: Sim3
    residual: float
    residual_rel: float
    inlier_fraction: float
    confidence: float
    threshold: float
    iterations: int
    points: int


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][min(int(np.searchsorted(cw, 0.5 * cw[-1])), len(x) - 1)])


def fit_residuals(sim: Sim3, src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None, *,
                  huber_k: float = 1.345, ref_dist: np.ndarray | None = None, rel_tol: float = 0.05,
                  iterations: int = 0) -> RobustFit:
    """Residual statistics of a given transform on (N, 3) correspondences (no fitting).

    Used for the fit itself and to report how well a transform found another
    way (e.g. the SE(3) pose chain) explains the same overlap.
    """
    x, y, w = _check(src, dst, weights)
    r = np.linalg.norm(y - sim.apply_points(x), axis=1)
    return _stats(sim, r, w, y, _threshold(r, w, y, huber_k), iterations, _ref(ref_dist, y, w), rel_tol)


def robust_sim3(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None, *,
                with_scale: bool = True, huber_k: float = 1.345, max_iter: int = 20,
                tol: float = 1e-8, ref_dist: np.ndarray | None = None, rel_tol: float = 0.05) -> RobustFit:
    """Robust weighted fit of ``dst ~= s R src + t`` (see the module doc).

    Args:
        src, dst: (N, 3) corresponding points (N >= 3, not all collinear).
        weights: (N,) non-negative prior weights (confidences); None: all 1.
        with_scale: Sim(3) when True, SE(3) (``s = 1``) otherwise.
        huber_k: Huber threshold in units of the robust residual spread (1.345:
            95% efficiency under Gaussian noise).
        max_iter: IRLS iterations at most.
        tol: stop when the transform's matrix changes by less than this
            (relative to the cloud's size).
        ref_dist: (N,) positive distances the residuals are judged against for
            ``confidence`` (e.g. each point's distance to its camera); None: the
            distance of ``dst`` from its weighted centroid.
        rel_tol: a correspondence agrees when its residual is below ``rel_tol * ref_dist``.

    Raises:
        TTT3RError: shapes differ, weights are invalid, or the points are degenerate.
    """
    x, y, w = _check(src, dst, weights)
    sim = umeyama(x, y, with_scale=with_scale, weights=w)
    size = _spread(y, w)
    it = 0
    for it in range(1, max_iter + 1):
        r = np.linalg.norm(y - sim.apply_points(x), axis=1)
        delta = _threshold(r, w, y, huber_k)
        hw = np.where(r <= delta, 1.0, delta / np.maximum(r, 1e-300))
        new = umeyama(x, y, with_scale=with_scale, weights=w * hw)
        change = float(np.abs(new.matrix - sim.matrix).max())
        sim = new
        if change <= tol * max(size, 1e-300):
            break
    r = np.linalg.norm(y - sim.apply_points(x), axis=1)
    return _stats(sim, r, w, y, _threshold(r, w, y, huber_k), it, _ref(ref_dist, y, w), rel_tol)


def _check(src, dst, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(src, dtype=np.float64)
    y = np.asarray(dst, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3:
        raise TTT3RError(f"cannot fit a Sim(3) to point sets of shapes {x.shape} and {y.shape}; need (N, 3) each")
    if len(x) < 3:
        raise TTT3RError(f"cannot fit a Sim(3) to {len(x)} correspondences; need at least 3")
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(x),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise TTT3RError(f"Sim(3) weights must be ({len(x)},), finite, >= 0 and not all 0; got shape {w.shape}")
    return x, y, w


def _spread(y: np.ndarray, w: np.ndarray) -> float:
    """RMS distance of ``y`` from its ``w``-weighted centroid."""
    c = (w @ y) / w.sum()
    return float(np.sqrt((w @ np.sum((y - c) ** 2, axis=1)) / w.sum()))


def _threshold(r: np.ndarray, w: np.ndarray, y: np.ndarray, huber_k: float) -> float:
    sigma = 1.4826 * _weighted_median(r, w)
    return max(huber_k * sigma, 1e-9 * max(_spread(y, w), 1e-300))


def _ref(ref_dist: np.ndarray | None, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    if ref_dist is None:
        return np.linalg.norm(y - (w @ y) / w.sum(), axis=1)
    d = np.asarray(ref_dist, dtype=np.float64)
    if d.shape != (len(y),):
        raise TTT3RError(f"ref_dist must be ({len(y)},), got {d.shape}")
    return d


def _stats(sim: Sim3, r: np.ndarray, w: np.ndarray, y: np.ndarray, delta: float, iterations: int,
           ref_dist: np.ndarray, rel_tol: float) -> RobustFit:
    inl = r <= delta
    agree = r <= rel_tol * ref_dist
    wi = w * inl
    resid = float(np.sqrt((wi @ r**2) / wi.sum())) if wi.sum() > 0 else float("inf")
    spread = _spread(y, w)
    return RobustFit(sim=sim, residual=resid, residual_rel=resid / spread if spread > 0 else float("inf"),
                     inlier_fraction=float(inl.mean()), confidence=float((w @ agree) / w.sum()),
                     threshold=float(delta), iterations=int(iterations), points=int(len(r)))
