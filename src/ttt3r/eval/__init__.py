"""Evaluation: alignment, pose/depth/reconstruction metrics, trajectory files, benchmark loaders.

Submodules:

* :mod:`ttt3r.eval.align` - alignment modes (the Umeyama fit is :mod:`ttt3r.geometry`).
* :mod:`ttt3r.eval.metrics` - ATE/RPE, depth Abs Rel and delta, accuracy/completeness/NC.
* :mod:`ttt3r.eval.trajectory` - timestamp association (the files are :mod:`ttt3r.io.trajectory`).
* :mod:`ttt3r.eval.datasets` - loaders for the paper's benchmarks.
* :mod:`ttt3r.eval.tasks` - the benchmark protocols (pose, depth, recon) as registered task objects.
* :mod:`ttt3r.eval.predictors` - what produces predictions (the network session, the ground-truth oracle).
* :mod:`ttt3r.eval.runner` - work items, cache, shards and Ray; :mod:`ttt3r.eval.tables`,
  :mod:`ttt3r.eval.report` and :mod:`ttt3r.eval.plots` - tables, dataset means and figures.
"""

from __future__ import annotations

from ..geometry import Sim3, umeyama
from ..io.trajectory import Trajectory, read_trajectory, write_trajectory
from .align import ALIGN_MODES, AlignMode, align_trajectory
from .metrics import (
    DepthMetrics,
    ErrorStats,
    PoseMetrics,
    ReconMetrics,
    depth_metrics,
    pose_metrics,
    reconstruction_metrics,
)
from .trajectory import associate

__all__ = [
    "ALIGN_MODES",
    "AlignMode",
    "DepthMetrics",
    "ErrorStats",
    "PoseMetrics",
    "ReconMetrics",
    "Sim3",
    "Trajectory",
    "align_trajectory",
    "associate",
    "depth_metrics",
    "pose_metrics",
    "read_trajectory",
    "reconstruction_metrics",
    "umeyama",
    "write_trajectory",
]
