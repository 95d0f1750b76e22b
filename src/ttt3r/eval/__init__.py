"""Evaluation: alignment, pose/depth/reconstruction metrics, trajectory files, benchmark loaders.

Submodules:

* :mod:`ttt3r.eval.align` - Umeyama Sim(3)/SE(3) fits.
* :mod:`ttt3r.eval.metrics` - ATE/RPE, depth Abs Rel and delta, accuracy/completeness/NC.
* :mod:`ttt3r.eval.trajectory` - TUM, KITTI and EuRoC files; timestamp association.
* :mod:`ttt3r.eval.datasets` - loaders for the paper's benchmarks.
* :mod:`ttt3r.eval.tasks` - the benchmark protocols (pose, depth, recon) as registered task objects.
* :mod:`ttt3r.eval.predictors` - what produces predictions (the network session, the ground-truth oracle).
* :mod:`ttt3r.eval.runner` - work items, cache, shards and Ray; :mod:`ttt3r.eval.tables`,
  :mod:`ttt3r.eval.report` and :mod:`ttt3r.eval.plots` - tables, dataset means and figures.
"""

from __future__ import annotations

from .align import ALIGN_MODES, AlignMode, Sim3, align_trajectory, umeyama
from .metrics import (
    DepthMetrics,
    ErrorStats,
    PoseMetrics,
    ReconMetrics,
    depth_metrics,
    pose_metrics,
    reconstruction_metrics,
)
from .trajectory import Trajectory, associate, read_trajectory, write_trajectory

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
