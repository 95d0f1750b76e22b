"""Alignment policy for evaluation: which transform (``sim3``, ``se3``, ``none``) to fit,
and aligning trajectories by their camera centres.

The fit itself (Umeyama 1991) and the :class:`~ttt3r.geometry.Sim3` type are
in :mod:`ttt3r.geometry`. Poses are ``(N, 4, 4)`` camera-to-world matrices
(rotation part orthonormal); the fitted transform maps the estimate onto the
reference, ``ref ~= s * R @ est + t`` (positions scaled, orientations rotated).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from ..errors import TTT3RError
from ..geometry import Sim3, umeyama

__all__ = ["ALIGN_MODES", "AlignMode", "align_trajectory", "centres_fixed", "check_align_mode", "fit_alignment"]

AlignMode = Literal["sim3", "se3", "none"]
"""``sim3``: rotation, translation and scale; ``se3``: rotation and translation;
``none``: identity."""

ALIGN_MODES: tuple[str, ...] = get_args(AlignMode)


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
