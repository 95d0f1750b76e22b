"""Figures for evaluation results (matplotlib, headless).

:func:`plot_trajectories` draws ground-truth and estimated camera centres
(``(N, 4, 4)`` camera-to-world poses) projected on the two world axes along
which the ground truth varies most, after aligning the estimate.
"""

from __future__ import annotations

import os

import numpy as np

from ..io.atomic import atomic_open
from .align import AlignMode, align_trajectory


def plot_trajectories(
    path: str | os.PathLike,
    ref_poses: np.ndarray,
    est_poses: np.ndarray,
    align: AlignMode = "sim3",
    title: str = "",
) -> None:
    """Save a PNG of the reference (dashed grey) and aligned estimate (blue) trajectories."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or window state

    ref = np.asarray(ref_poses, dtype=np.float64)
    est, _ = align_trajectory(est_poses, ref, align)
    order = np.argsort(np.var(ref[:, :3, 3], axis=0))
    a, b = int(order[2]), int(order[1])
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot(111)
    ax.plot(ref[:, a, 3], ref[:, b, 3], "--", color="gray", label="ground truth")
    ax.plot(est[:, a, 3], est[:, b, 3], "-", color="tab:blue", label=f"estimate ({align})")
    ax.set_xlabel("xyz"[a])
    ax.set_ylabel("xyz"[b])
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend()
    if title:
        ax.set_title(title)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
