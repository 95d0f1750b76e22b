"""Summaries of per-sequence results: dataset means (the paper's averaging) and Markdown tables.

* Pose: the mean over sequences of each sequence's ATE / RPE RMSE.
* Depth: per-sequence metrics averaged with weights = valid pixels
  (:func:`ttt3r.eval.metrics_depth.aggregate_depth_metrics`).
* Reconstruction: plain mean over sequences.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from ..errors import TTT3RError
from ..io.atomic import atomic_write_text
from .metrics_depth import DepthMetrics, aggregate_depth_metrics
from .metrics_pose import PoseMetrics
from .metrics_recon import ReconMetrics

POSE_COLUMNS = ("ate", "rpe_trans", "rpe_rot")
DEPTH_COLUMNS = ("abs_rel", "delta_1")
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


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def pose_table(results: Mapping[str, PoseMetrics], digits: int = 4) -> str:
    """Markdown table: one row per sequence (RMSEs) and a final mean row."""
    mean = pose_summary(results)
    rows = [
        (name, _fmt(r.ate.rmse, digits), _fmt(r.rpe_trans.rmse, digits), _fmt(r.rpe_rot.rmse, digits))
        for name, r in results.items()
    ]
    rows.append(("**mean**", *(_fmt(mean[c], digits) for c in POSE_COLUMNS)))
    return _table(("sequence", "ATE", "RPE trans", "RPE rot (deg)"), rows)


def depth_table(results: Mapping[str, DepthMetrics], digits: int = 4) -> str:
    """Markdown table of Abs Rel and delta < 1.25 per sequence and the weighted mean."""
    mean = depth_summary(results)
    rows = [(n, _fmt(r.abs_rel, digits), _fmt(r.delta_1, digits), str(r.num_valid)) for n, r in results.items()]
    rows.append(("**weighted mean**", _fmt(mean["abs_rel"], digits), _fmt(mean["delta_1"], digits), str(int(mean["num_valid"]))))
    return _table(("sequence", "Abs Rel", "delta < 1.25", "valid pixels"), rows)


def recon_table(results: Mapping[str, ReconMetrics], digits: int = 4) -> str:
    """Markdown table of accuracy, completeness and normal consistency (means and medians)."""
    mean = recon_summary(results)
    rows = [(n, *(_fmt(getattr(r, c), digits) for c in RECON_COLUMNS)) for n, r in results.items()]
    rows.append(("**mean**", *(_fmt(mean[c], digits) for c in RECON_COLUMNS)))
    return _table(("sequence", "Acc", "Acc med", "Comp", "Comp med", "NC", "NC med"), rows)


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

    atomic_write_text(path, json.dumps(obj, indent=2, default=default) + "\n")
