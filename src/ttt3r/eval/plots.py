"""Figures for evaluation results (matplotlib, headless, written atomically as PNG).

* :func:`plot_trajectories`: ground-truth and estimated camera centres
  (``(N, 4, 4)`` camera-to-world poses), the estimate aligned to the ground
  truth with the given mode, projected on the two world axes along which the
  ground truth varies most (:func:`trajectory_positions` computes the
  positions, :func:`draw_trajectories` draws them).
* :func:`plot_lines`: panels of lines, e.g. mean error against sequence length per rule.
"""

from __future__ import annotations

import os

import numpy as np

from ..io.atomic import atomic_open
from .align import AlignMode, align_trajectory


def trajectory_positions(ref_poses: np.ndarray, est_poses: np.ndarray,
                         align: AlignMode = "sim3") -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) reference camera centres and (N, 3) estimated ones after ``align`` to the reference (its unit)."""
    ref = np.asarray(ref_poses, dtype=np.float64)
    est, _ = align_trajectory(est_poses, ref, align)
    return ref[:, :3, 3], est[:, :3, 3]


def plot_trajectories(
    path: str | os.PathLike,
    ref_poses: np.ndarray,
    est_poses: np.ndarray,
    align: AlignMode = "sim3",
    title: str = "",
) -> None:
    """Save a PNG of the reference (dashed grey) and the estimate aligned by ``align`` (blue)."""
    ref, est = trajectory_positions(ref_poses, est_poses, align)
    draw_trajectories(path, ref, est, label=f"estimate ({align})", title=title)


def draw_trajectories(path: str | os.PathLike, ref_xyz: np.ndarray, est_xyz: np.ndarray,
                      label: str = "estimate", title: str = "") -> None:
    """Draw (N, 3) reference and estimated positions, as given, on the reference's two widest axes."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or window state

    order = np.argsort(np.var(ref_xyz, axis=0))
    a, b = int(order[2]), int(order[1])
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot(111)
    ax.plot(ref_xyz[:, a], ref_xyz[:, b], "--", color="gray", label="ground truth")
    ax.plot(est_xyz[:, a], est_xyz[:, b], "-", color="tab:blue", label=label)
    ax.set_xlabel("xyz"[a])
    ax.set_ylabel("xyz"[b])
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend()
    if title:
        ax.set_title(title)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)


def plot_lines(path: str | os.PathLike, series: dict[str, dict[str, list[tuple[float, float]]]], title: str,
               xlabel: str = "sequence length (frames)") -> None:
    """One panel per key of ``series`` (its y label), one line per ``{label: [(x, y), ...]}`` (sorted by x)."""
    from matplotlib.figure import Figure

    panels = list(series)
    fig = Figure(figsize=(4.5 * len(panels), 4))
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for label, pts in sorted(series[panel].items()):
            pts = sorted(pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(panel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
