"""Summaries of per-sequence results: dataset means (the paper's averaging), and JSON output.

* Pose: the mean over sequences of each sequence's ATE / RPE RMSE.
* Depth: per-sequence metrics averaged with weights = valid pixels
  (:func:`ttt3r.eval.metrics_depth.aggregate_depth_metrics`).
* Reconstruction: plain mean over sequences.

The tables that show them are rendered by :func:`ttt3r.eval.tables.markdown_table`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..errors import TTT3RError
from ..io.atomic import atomic_write_text
from ..io.strict_json import dumps
from .metrics_depth import DepthMetrics, aggregate_depth_metrics
from .metrics_pose import PoseMetrics
from .metrics_recon import ReconMetrics

RECON_COLUMNS = ("accuracy", "accuracy_median", "completeness", "completeness_median", "nc", "nc_median")


def _nonempty(results: Mapping, what: str) -> None:
    if not results:
        raise TTT3RError(f"no {what} results to summarise")


def pose_summary(results: Mapping[str, PoseMetrics]) -> dict[str, float]:
    """Mean over sequences of ATE, RPE-translation and RPE-rotation (degrees) RMSEs."""
    _nonempty(results, "pose")
    return {
        "ate": float(np.mean([r.ate.rmse for r in results.values()])),
        "rpe_trans": float(np.mean([r.rpe_trans.rmse for r in results.values()])),
        "rpe_rot": float(np.mean([r.rpe_rot.rmse for r in results.values()])),
        "num_sequences": float(len(results)),
    }


def depth_summary(results: Mapping[str, DepthMetrics]) -> dict[str, float]:
    """Valid-pixel-weighted average of per-sequence depth metrics."""
    _nonempty(results, "depth")
    return aggregate_depth_metrics(list(results.values()))


def recon_summary(results: Mapping[str, ReconMetrics]) -> dict[str, float]:
    """Mean over sequences of the reconstruction metrics."""
    _nonempty(results, "reconstruction")
    out = {k: float(np.mean([getattr(r, k) for r in results.values()])) for k in RECON_COLUMNS}
    out["num_sequences"] = float(len(results))
    return out


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically (objects with ``to_dict`` are converted)."""

    def default(o: object):
        if hasattr(o, "to_dict"):
            return o.to_dict()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(f"cannot write {type(o).__name__} as JSON")

    atomic_write_text(path, dumps(obj, indent=2, default=default) + "\n")
