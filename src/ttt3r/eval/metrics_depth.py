"""Video depth metrics: Abs Rel and threshold accuracy after per-sequence alignment.

Inputs are depth maps in any matching shape, typically ``(T, H, W)`` for a whole
sequence or ``(H, W)`` for one frame: ``pred`` (the estimate, resized to the
ground-truth resolution) and ``gt`` (metres; ``<= 0``, NaN or inf mark missing
values). A pixel is valid when ``gt`` is finite, ``gt > 0``, ``gt < max_depth``
(if a cap is given) and the optional boolean ``mask`` is set.

One scale (and shift) is fitted over all valid pixels of the sequence jointly:

* ``median``: ``s = median(gt) / median(pred)`` (no shift).
* ``scale``: least-squares scale ``s = sum(pred * gt) / sum(pred ** 2)``.
* ``scale_shift``: least-squares ``s, t`` minimising ``|| s pred + t - gt ||^2``.
* ``scale_l1``: the TTT3R paper's "scale" mode: a robust (approximately L1)
  scale by 10 iterations of iteratively reweighted least squares (weights
  ``1 / (|s pred - gt| + 1e-8)``), started from ``mean(gt) / mean(pred)`` and
  clamped to at least 1e-3.
* ``metric``: none (``s = 1, t = 0``).

Note: the paper's "scale&shift" mode fits an L1 objective by gradient descent
from the median scale; ``scale_shift`` here is the closed-form least-squares fit
(both are exact when a perfect fit exists).

After alignment the prediction may be clipped (``clip_max``; the paper clips at
70 m on Sintel). Metrics (over valid pixels):

* ``abs_rel = mean(|p - g| / g)``, ``sq_rel = mean((p - g)^2 / g)``,
  ``rmse = sqrt(mean((p - g)^2))``, ``log_rmse`` (with ``p`` clamped to 1e-5);
* ``delta_k = mean(max(p / g, g / p) < 1.25 ** k)`` for k = 1, 2, 3
  (with ``p`` clamped to 1e-5).

Per-dataset numbers average the per-sequence metrics weighted by their number
of valid pixels (:func:`aggregate_depth_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import numpy as np

from ..errors import TTT3RError

DepthAlign = Literal["median", "scale", "scale_shift", "scale_l1", "metric"]
DEPTH_ALIGN_MODES: tuple[str, ...] = get_args(DepthAlign)

_MIN_PRED = 1e-5


@dataclass(frozen=True)
class DepthMetrics:
    """Depth errors of one sequence (or frame) after alignment.

    Attributes:
        abs_rel: mean absolute relative error (unitless).
        sq_rel: mean squared error divided by gt (metres).
        rmse: root mean squared error (metres).
        log_rmse: RMSE of natural-log depths.
        delta_1, delta_2, delta_3: fraction of pixels with ratio below 1.25, 1.25^2, 1.25^3.
        num_valid: number of valid pixels the metrics average over.
        scale, shift: the alignment applied, ``p = scale * pred + shift``.
    """

    abs_rel: float
    sq_rel: float
    rmse: float
    log_rmse: float
    delta_1: float
    delta_2: float
    delta_3: float
    num_valid: int
    scale: float
    shift: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def valid_depth_mask(
    gt: np.ndarray, max_depth: float | None = None, mask: np.ndarray | None = None
) -> np.ndarray:
    """Boolean array of pixels with usable ground truth (finite, > 0, < ``max_depth``, in ``mask``)."""
    g = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(g) & (g > 0)
        if max_depth is not None:
            valid &= g < max_depth
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != g.shape:
            raise TTT3RError(f"depth mask shape {m.shape} does not match ground truth {g.shape}")
        valid &= m
    return valid


def fit_depth_alignment(pred: np.ndarray, gt: np.ndarray, mode: DepthAlign) -> tuple[float, float]:
    """Fit ``(scale, shift)`` so that ``scale * pred + shift ~ gt`` on 1-D valid values."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    g = np.asarray(gt, dtype=np.float64).reshape(-1)
    if mode == "metric":
        return 1.0, 0.0
    if mode == "median":
        mp = float(np.median(p))
        if mp == 0:
            raise TTT3RError("cannot median-align depth: the median predicted depth is 0")
        return float(np.median(g)) / mp, 0.0
    if mode == "scale":
        den = float(p @ p)
        if den == 0:
            raise TTT3RError("cannot scale-align depth: the predicted depth is all zero")
        return float(p @ g) / den, 0.0
    if mode == "scale_l1":
        if not np.any(p):
            raise TTT3RError("cannot scale-align depth: the predicted depth is all zero")
        s = float(np.mean(g) / np.mean(p))
        for _ in range(10):
            w = 1.0 / (np.abs(s * p - g) + 1e-8)
            s = float(np.sum(w * p * g) / np.sum(w * p * p))
        return max(s, 1e-3), 0.0
    if mode == "scale_shift":
        a = np.stack([p, np.ones_like(p)], axis=1)
        (s, t), *_ = np.linalg.lstsq(a, g, rcond=None)
        return float(s), float(t)
    raise TTT3RError(f"unknown depth alignment {mode!r}; choose one of {', '.join(DEPTH_ALIGN_MODES)}")


def depth_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    align: DepthAlign = "median",
    max_depth: float | None = None,
    mask: np.ndarray | None = None,
    clip_max: float | None = None,
) -> DepthMetrics:
    """Depth metrics of ``pred`` against ``gt`` (same shape) with one alignment over all valid pixels.

    Args:
        pred: predicted depth, e.g. (T, H, W) for a sequence.
        gt: ground-truth depth in metres, same shape; non-positive or
            non-finite values are missing.
        align: alignment mode, see the module docstring.
        max_depth: ground truth at or beyond this depth is ignored (metres).
        mask: optional boolean array, False excludes a pixel.
        clip_max: clip the aligned prediction to at most this depth.

    Raises:
        TTT3RError: shapes differ, no valid pixel, or the prediction is
            non-finite on a valid pixel.
    """
    p_all = np.asarray(pred, dtype=np.float64)
    g_all = np.asarray(gt, dtype=np.float64)
    if p_all.shape != g_all.shape:
        raise TTT3RError(f"predicted depth shape {p_all.shape} does not match ground truth {g_all.shape}")
    if align not in DEPTH_ALIGN_MODES:
        raise TTT3RError(f"unknown depth alignment {align!r}; choose one of {', '.join(DEPTH_ALIGN_MODES)}")
    valid = valid_depth_mask(g_all, max_depth, mask)
    n = int(valid.sum())
    if n == 0:
        raise TTT3RError("no valid ground-truth depth pixels to evaluate")
    p, g = p_all[valid], g_all[valid]
    bad = int((~np.isfinite(p)).sum())
    if bad:
        raise TTT3RError(f"predicted depth is not finite at {bad} of {n} valid pixels")
    s, t = fit_depth_alignment(p, g, align)
    p = s * p + t
    if clip_max is not None:
        p = np.minimum(p, clip_max)
    err = p - g
    abs_rel = float(np.mean(np.abs(err) / g))
    sq_rel = float(np.mean(err**2 / g))
    rmse = float(np.sqrt(np.mean(err**2)))
    pc = np.maximum(p, _MIN_PRED)
    log_rmse = float(np.sqrt(np.mean((np.log(pc) - np.log(g)) ** 2)))
    ratio = np.maximum(pc / g, g / pc)
    d1, d2, d3 = (float(np.mean(ratio < 1.25**k)) for k in (1, 2, 3))
    return DepthMetrics(abs_rel, sq_rel, rmse, log_rmse, d1, d2, d3, n, float(s), float(t))


_AVERAGED = ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta_1", "delta_2", "delta_3")


def aggregate_depth_metrics(results: Sequence[DepthMetrics]) -> dict[str, float]:
    """Average per-sequence metrics weighted by their valid-pixel counts (the paper's protocol)."""
    if not results:
        raise TTT3RError("no depth results to aggregate")
    w = np.array([r.num_valid for r in results], dtype=np.float64)
    out = {k: float(np.average([getattr(r, k) for r in results], weights=w)) for k in _AVERAGED}
    out["num_valid"] = float(w.sum())
    out["num_sequences"] = float(len(results))
    return out
