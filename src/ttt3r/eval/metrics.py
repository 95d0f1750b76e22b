"""All evaluation metrics in one namespace.

Pose metrics live in :mod:`ttt3r.eval.metrics_pose`, depth metrics in
:mod:`ttt3r.eval.metrics_depth` and reconstruction metrics in
:mod:`ttt3r.eval.metrics_recon`; see their docstrings for shapes, frames and units.
"""

from __future__ import annotations

from .metrics_depth import (
    DEPTH_ALIGN_MODES,
    DepthAlign,
    DepthMetrics,
    aggregate_depth_metrics,
    depth_metrics,
    fit_depth_alignment,
    valid_depth_mask,
)
from .metrics_pose import (
    ErrorStats,
    PoseMetrics,
    absolute_trajectory_error,
    pair_indices,
    pose_metrics,
    relative_pose_error,
    relative_pose_errors,
)
from .metrics_recon import (
    IcpResult,
    ReconMetrics,
    estimate_normals,
    icp_point_to_point,
    nearest_neighbors,
    reconstruction_metrics,
)

__all__ = [
    "DEPTH_ALIGN_MODES",
    "DepthAlign",
    "DepthMetrics",
    "ErrorStats",
    "IcpResult",
    "PoseMetrics",
    "ReconMetrics",
    "absolute_trajectory_error",
    "aggregate_depth_metrics",
    "depth_metrics",
    "estimate_normals",
    "fit_depth_alignment",
    "icp_point_to_point",
    "nearest_neighbors",
    "pair_indices",
    "pose_metrics",
    "reconstruction_metrics",
    "relative_pose_error",
    "relative_pose_errors",
    "valid_depth_mask",
]
