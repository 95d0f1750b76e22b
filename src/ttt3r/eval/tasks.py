"""Evaluation tasks: one registered object per benchmark protocol (pose, depth, recon).

A task owns everything that differs between protocols, so the runner and the
table writer never ask which task they run:

* ``heads``: the extra network outputs its predictions need (:class:`ttt3r.Session` ``want``);
* ``fingerprint``: the protocol settings that determine its results (part of the cache key);
* ``evaluate``: one sequence's prediction -> a JSON-ready result dict
  (``{"metrics": ..., ...}``, via :mod:`ttt3r.eval.protocols`);
* ``columns`` / ``sections`` / ``flat`` / ``mean``: its table (per sequence
  and the paper's dataset mean, optionally one section per alignment);
* ``headline``: a short text of one result for the progress line;
* ``length_columns`` and ``plot_record``: its figures.

A new task is a subclass registered with :func:`register_task` (as the update
rules of :mod:`ttt3r.update`); ``ttt3r eval`` lists the registered names.

    from ttt3r.eval.tasks import get_task
    get_task("pose").headline(record["result"]["metrics"])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import TTT3RError

if TYPE_CHECKING:
    from .datasets.base import Sequence
    from .protocols import Prediction

@dataclass(frozen=True)
class ProtocolSettings:
    """Protocol options of a run (defaults: :class:`ttt3r.eval.runner.EvalConfig`); each task reads its own.

    Attributes:
        depth_aligns: depth alignment modes (:data:`ttt3r.eval.metrics_depth.DEPTH_ALIGN_MODES`).
        depth_resize: ``original`` (prediction resized to GT) or ``crop`` (GT mapped onto the crop).
        pose_align: trajectory alignment (``sim3``, ``se3`` or ``none``; the paper: ``sim3``).
    """

    depth_aligns: tuple[str, ...]
    depth_resize: str
    pose_align: str


#: (key, header) of one table column
Column = tuple[str, str]
#: (section label or None, record -> the metrics dict of that section)
Section = tuple["str | None", Callable[[dict], dict]]


class EvalTask:
    """One benchmark protocol. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    help: ClassVar[str]
    #: extra network outputs the prediction needs (``"world"``: the world-frame pointmap head)
    heads: ClassVar[tuple[str, ...]] = ()
    #: per-sequence table columns
    columns: ClassVar[tuple[Column, ...]]
    #: the columns drawn against sequence length
    length_columns: ClassVar[tuple[Column, ...]]
    #: label of the table's mean row
    mean_label: ClassVar[str] = "**mean**"

    def fingerprint(self, settings: ProtocolSettings) -> dict:
        """The settings that determine this task's results (JSON-ready; added to the cache fingerprint)."""
        return {}

    def evaluate(self, seq: Sequence, pred: Prediction, settings: ProtocolSettings, family: str | None) -> dict:
        """One sequence's result: ``{"metrics": ..., ...}`` (JSON-ready). ``family``: the loader's name."""
        raise NotImplementedError

    def sections(self, records: Iterable[dict]) -> list[Section]:
        """The table sections of a group of records: one unnamed section by default."""
        return [(None, lambda r: r["result"]["metrics"])]

    def flat(self, metrics: dict) -> dict[str, float]:
        """One section's metrics as ``{column key: value}``."""
        return {k: metrics[k] for k, _ in self.columns}

    def mean(self, per_seq: dict[str, dict]) -> dict[str, float]:
        """The dataset mean of ``{sequence: section metrics}`` (keys: the column keys, and more)."""
        raise NotImplementedError

    def headline(self, metrics: dict) -> str:
        """A short text of one record's main metrics (progress output)."""
        raise NotImplementedError

    def plot_record(self, record: dict, path: str | os.PathLike) -> bool:
        """Draw one record's figure to ``path`` (PNG); False when the task or record has none."""
        return False


_TASKS: dict[str, EvalTask] = {}


def register_task(cls: type[EvalTask]) -> type[EvalTask]:
    """Class decorator: make an :class:`EvalTask` subclass available by its ``name``."""
    _TASKS[cls.name] = cls()
    return cls


def get_task(task: str | EvalTask) -> EvalTask:
    """The registered task of that name (a one-line :class:`TTT3RError` for an unknown one)."""
    if isinstance(task, EvalTask):
        return task
    try:
        return _TASKS[task]
    except KeyError:
        raise TTT3RError(f"unknown task {task!r}; choose one of {', '.join(_TASKS)}") from None


def task_names() -> list[str]:
    """Registered task names, in registration order (the order of tables and summaries)."""
    return list(_TASKS)


# ---------------------------------------------------------------------------
# the paper's three protocols


@register_task
class PoseTask(EvalTask):
    """Camera pose: ATE and RPE (translation, rotation in degrees) after the chosen alignment."""

    name = "pose"
    help = "camera pose: ATE / RPE after Sim(3) alignment (sintel, tum, scannet, tum_s1_N, scannet_s3_N, synth)"
    columns = (("ate", "ATE"), ("rpe_trans", "RPE trans"), ("rpe_rot", "RPE rot (deg)"))
    length_columns = columns

    def fingerprint(self, settings: ProtocolSettings) -> dict:
        return {"pose_align": settings.pose_align}

    def evaluate(self, seq, pred, settings, family):
        from .protocols import evaluate_pose

        return evaluate_pose(seq, pred, settings.pose_align)  # type: ignore[arg-type]

    def flat(self, metrics: dict) -> dict[str, float]:
        return {"ate": metrics["ate"]["rmse"], "rpe_trans": metrics["rpe_trans"]["rmse"],
                "rpe_rot": metrics["rpe_rot_deg"]["rmse"]}

    def mean(self, per_seq: dict[str, dict]) -> dict[str, float]:
        from .align import Sim3
        from .metrics_pose import ErrorStats, PoseMetrics
        from .report import pose_summary

        def obj(m: dict) -> PoseMetrics:
            return PoseMetrics(ErrorStats(**m["ate"]), ErrorStats(**m["rpe_trans"]), ErrorStats(**m["rpe_rot_deg"]),
                               Sim3(np.eye(3), np.zeros(3), float(m.get("scale") or 1.0)), m["align"],
                               int(m["delta"]), bool(m["all_pairs"]))

        return pose_summary({s: obj(m) for s, m in per_seq.items()})

    def headline(self, metrics: dict) -> str:
        m = metrics
        return f"ATE {m['ate']['rmse']:.4f} RPE {m['rpe_trans']['rmse']:.4f}/{m['rpe_rot_deg']['rmse']:.3f}deg"

    def plot_record(self, record: dict, path: str | os.PathLike) -> bool:
        """The trajectory against ground truth, aligned as its metrics were (the record's ``align``)."""
        from .plots import plot_trajectories

        traj = record["result"].get("trajectory")
        if not traj:
            return False
        gt, est = np.asarray(traj["gt"], dtype=np.float64), np.asarray(traj["est"], dtype=np.float64)
        if len(gt) < 3:
            return False
        align = record["result"]["metrics"]["align"]
        plot_trajectories(path, gt, est, align=align,
                          title=f"{record['variant']} {record['sequence']} ({record['rule']})")
        return True


@register_task
class DepthTask(EvalTask):
    """Video depth: Abs Rel and delta < 1.25, one table section per alignment mode."""

    name = "depth"
    help = "video depth: Abs Rel / delta<1.25 per alignment (sintel, bonn, kitti, bonn_s1_N, kitti_s1_N, synth)"
    columns = (("abs_rel", "Abs Rel"), ("delta_1", "delta < 1.25"))
    length_columns = (("abs_rel", "Abs Rel"),)
    mean_label = "**weighted mean**"

    def fingerprint(self, settings: ProtocolSettings) -> dict:
        return {"depth_aligns": list(settings.depth_aligns), "depth_resize": settings.depth_resize}

    def evaluate(self, seq, pred, settings, family):
        from .protocols import evaluate_depth

        return evaluate_depth(seq, pred, tuple(settings.depth_aligns), settings.depth_resize,  # type: ignore[arg-type]
                              family)

    def sections(self, records: Iterable[dict]) -> list[Section]:
        aligns: list[str] = []
        for r in records:
            for a in r["result"]["metrics"]:
                if a not in aligns:
                    aligns.append(a)
        return [(a, (lambda r, a=a: r["result"]["metrics"][a])) for a in aligns]

    def mean(self, per_seq: dict[str, dict]) -> dict[str, float]:
        from .metrics_depth import DepthMetrics
        from .report import depth_summary

        fields = DepthMetrics.__dataclass_fields__
        return depth_summary({s: DepthMetrics(**{k: m[k] for k in fields}) for s, m in per_seq.items()})

    def headline(self, metrics: dict) -> str:
        return " ".join(f"AbsRel[{a}] {v['abs_rel']:.4f}" for a, v in metrics.items())


@register_task
class ReconTask(EvalTask):
    """Reconstruction: accuracy, completeness and normal consistency after ICP, from the world-frame head."""

    name = "recon"
    help = "reconstruction: accuracy / completeness / normal consistency after ICP (7scenes, nrgbd)"
    heads = ("world",)
    columns = (("accuracy", "Acc"), ("accuracy_median", "Acc med"), ("completeness", "Comp"),
               ("completeness_median", "Comp med"), ("nc", "NC"), ("nc_median", "NC med"))
    length_columns = (("accuracy", "Acc"), ("completeness", "Comp"))

    def evaluate(self, seq, pred, settings, family):
        from .protocols import evaluate_recon

        return evaluate_recon(seq, pred)

    def mean(self, per_seq: dict[str, dict]) -> dict[str, float]:
        from .metrics_recon import ReconMetrics
        from .report import recon_summary

        def obj(m: dict) -> ReconMetrics:
            d = {k: m[k] for k in ReconMetrics.__dataclass_fields__ if k != "icp_transform"}
            return ReconMetrics(**d, icp_transform=np.asarray(m["icp_transform"]))

        return recon_summary({s: obj(m) for s, m in per_seq.items()})

    def headline(self, metrics: dict) -> str:
        m = metrics
        return f"Acc {m['accuracy']:.4f} Comp {m['completeness']:.4f} NC {m['nc']:.3f}"


__all__ = ["Column", "DepthTask", "EvalTask", "PoseTask", "ProtocolSettings", "ReconTask", "get_task",
           "register_task", "task_names"]
