"""Held-out evaluation of a trained model against trivial baselines.

For each held-out synthetic sequence (seeds never used for training) the model
streams ``frames`` frames taken every ``stride`` frames, with each update rule
asked for. Reported per sequence and on average:

* **depth Abs Rel** after median scaling (one scale per sequence), of the
  self-view depth (z of ``pts3d_self``) against the exact ground truth;
  baseline: a constant depth map (median-scaled too, i.e. the GT median);
* **ATE** (RMSE of camera centres after a Sim(3) alignment) divided by the
  trajectory extent (largest distance between two ground-truth camera
  centres); baseline: every camera at the first pose, whose best Sim(3)
  alignment puts all of them at the centroid of the ground-truth centres, so
  its ATE is the RMS distance of the centres from their centroid;
* **RPE** between consecutive frames after the same alignment (translation
  over the extent, rotation in degrees); baseline: the same static camera, whose
  RPE is the ground truth's own frame-to-frame motion. A model whose RPE
  rotation is near that baseline does not estimate rotation at all.

Numbers below 1 for "model / baseline" mean the model beats the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import TTT3RError
from .config import TrainConfig
from .data import SeqArrays, sequence_dirs


@dataclass
class SeqResult:
    name: str
    rule: str
    abs_rel: float
    abs_rel_const: float
    ate_frac: float
    ate_frac_static: float
    extent_m: float
    rpe_trans_frac: float = float("nan")
    rpe_rot_deg: float = float("nan")
    rpe_trans_frac_static: float = float("nan")
    rpe_rot_deg_static: float = float("nan")


def static_ate(ref_centres: np.ndarray) -> float:
    """ATE RMSE (metres) of a trajectory that never moves, after the best Sim(3): centres (N, 3)."""
    c = np.asarray(ref_centres, dtype=np.float64)
    return float(np.sqrt(np.mean(np.sum((c - c.mean(0)) ** 2, axis=1))))


def extent(centres: np.ndarray) -> float:
    """Largest distance between two of the (N, 3) camera centres (metres)."""
    c = np.asarray(centres, dtype=np.float64)
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    return float(d.max())


def predict_sequence(model: torch.nn.Module, rgb: np.ndarray, rule: str,
                     reset_every: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stream (T, H, W, 3) uint8 frames through a :class:`ttt3r.Session` (no resizing).

    Returns depth (T, H, W) (camera z, the model's scale) and (T, 4, 4)
    camera-to-first-camera poses; with ``reset_every=N`` the state is reset after
    every N frames and the chunks are chained as in ``ttt3r reconstruct``.
    """
    from ..preprocess import Preprocessed, normalize
    from ..session import Session

    session = Session(model, update=rule, reset_every=reset_every)
    depths, poses = [], []
    for t in range(len(rgb)):
        frame = np.ascontiguousarray(rgb[t])
        res = session.step(Preprocessed(normalize(frame), frame, frame.shape[:2]))
        depths.append(res.depth)
        poses.append(res.pose)
    return np.stack(depths), np.stack(poses).astype(np.float64)


def sequence_metrics(depth: np.ndarray, poses: np.ndarray, gt_depth: np.ndarray,
                     gt_poses: np.ndarray) -> dict[str, float]:
    """Metrics of one streamed prediction against the ground truth, with both baselines.

    depth, gt_depth (N, H, W); poses, gt_poses (N, 4, 4) camera-to-first-camera.
    Returns ``abs_rel`` / ``abs_rel_const`` (median-scaled), ``ate_frac`` /
    ``ate_frac_static`` (Sim(3)-aligned ATE over the extent), ``rpe_trans_frac``
    (consecutive-frame RPE translation RMSE over the extent, same alignment),
    ``rpe_rot_deg`` (consecutive-frame RPE rotation RMSE, degrees), their
    static-camera baselines ``rpe_trans_frac_static`` / ``rpe_rot_deg_static``
    and ``extent_m``. A predicted camera that never moves scores exactly the static
    baseline; pose metrics are NaN when a predicted pose is not finite or the
    predicted centres are collinear (no unique Sim(3) alignment). A camera that only
    turns (``pan``: every ground-truth centre the same) has no extent: the figures
    over the extent are NaN and only the RPE rotation is scored.
    """
    from ..eval.align import centres_fixed
    from ..eval.metrics_depth import depth_metrics

    centres = gt_poses[:, :3, 3]
    ext = extent(centres)
    turns_only = centres_fixed(centres)
    out = dict(abs_rel=depth_metrics(np.maximum(depth, 1e-6), gt_depth, align="median").abs_rel,
               abs_rel_const=depth_metrics(np.ones_like(gt_depth), gt_depth, align="median").abs_rel,
               ate_frac_static=np.nan if turns_only else static_ate(centres) / ext, extent_m=ext,
               ate_frac=np.nan, rpe_trans_frac=np.nan, rpe_rot_deg=np.nan)
    static = _pose_errors(np.repeat(np.eye(4)[None], len(gt_poses), axis=0), gt_poses, ext, out["ate_frac_static"])
    out.update(rpe_trans_frac_static=static.get("rpe_trans_frac", np.nan), rpe_rot_deg_static=static["rpe_rot_deg"])
    out.update(_pose_errors(poses, gt_poses, ext, out["ate_frac_static"]))
    return {k: float(v) for k, v in out.items()}


def _pose_errors(poses: np.ndarray, gt_poses: np.ndarray, ext: float, static_frac: float) -> dict[str, float]:
    """``ate_frac``, ``rpe_trans_frac``, ``rpe_rot_deg`` of :func:`sequence_metrics`; {} where undefined."""
    from ..eval.align import centres_fixed
    from ..eval.metrics_pose import pose_metrics

    if not np.isfinite(poses).all():
        return {}
    if centres_fixed(gt_poses[:, :3, 3]):  # the camera only turns: nothing to scale a translation error by
        pm = pose_metrics(gt_poses, poses, align="none", delta=1, all_pairs=True)
        return dict(rpe_rot_deg=pm.rpe_rot.rmse)
    est = poses[:, :3, 3]
    if centres_fixed(est):
        # a camera that never moves: its best Sim(3) puts it at the centroid of the ground
        # truth (scale 0), and its relative motions are zero whatever the alignment
        pm = pose_metrics(gt_poses, poses, align="none", delta=1, all_pairs=True)
        ate = static_frac
    else:
        try:
            pm = pose_metrics(gt_poses, poses, align="sim3", delta=1, all_pairs=True)
        except TTT3RError:  # collinear predicted centres: no unique alignment
            return {}
        ate = pm.ate.rmse / ext
    return dict(ate_frac=ate, rpe_trans_frac=pm.rpe_trans.rmse / ext, rpe_rot_deg=pm.rpe_rot.rmse)


def evaluate_model(model: torch.nn.Module, seq_paths: list[Path], frames: int = 16, stride: int = 2,
                   rules: tuple[str, ...] = ("cut3r", "ttt3r")) -> list[SeqResult]:
    """Metrics of ``model`` on each sequence (first ``frames`` frames at ``stride``) for each rule."""
    results = []
    for path in seq_paths:
        seq = SeqArrays.load(path)
        idx = np.arange(frames) * stride
        if idx[-1] >= len(seq.depth):
            raise TTT3RError(f"{path}: has {len(seq.depth)} frames, {frames} at stride {stride} need {idx[-1] + 1}")
        gt_depth = seq.depth[idx]
        gt_poses = np.linalg.inv(seq.poses[idx[0]])[None] @ seq.poses[idx]
        for rule in rules:
            depth, poses = predict_sequence(model, seq.rgb[idx], rule)
            m = sequence_metrics(depth, poses, gt_depth, gt_poses)
            results.append(SeqResult(Path(path).name, rule, **m))
    return results


def summarise(results: list[SeqResult]) -> dict:
    """Per-rule means of every metric (and the model / baseline ratios)."""
    out: dict = {}
    for rule in sorted({r.rule for r in results}):
        rs = [r for r in results if r.rule == rule]
        m = {k: _mean([getattr(r, k) for r in rs]) for k in
             ("abs_rel", "abs_rel_const", "ate_frac", "ate_frac_static", "rpe_rot_deg", "rpe_rot_deg_static")}
        m["abs_rel_ratio"] = m["abs_rel"] / m["abs_rel_const"]
        m["ate_ratio"] = m["ate_frac"] / m["ate_frac_static"]
        m["sequences"] = len(rs)
        m["beats_depth_baseline"] = sum(r.abs_rel < r.abs_rel_const for r in rs)
        m["beats_pose_baseline"] = sum(r.ate_frac < r.ate_frac_static for r in rs)
        out[rule] = m
    return out


def _mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none, e.g. ATE of pure rotations)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def evaluate_run(out: str | Path, cfg: TrainConfig, frames: int = 16, stride: int = 2,
                 rules: tuple[str, ...] = ("cut3r", "ttt3r")) -> dict:
    """Evaluate ``out/model`` on the held-out pool of ``cfg``; writes ``out/eval_f<frames>_s<stride>.json``."""
    from ..api import load_model
    from ..io.strict_json import dumps
    from ..io.atomic import atomic_write_text
    from .data import prepare_pool

    out = Path(out)
    if not (out / "model").exists():
        raise TTT3RError(f"{out}: no trained weights (model/) to evaluate")
    if cfg.data.heldout_sequences < 1:
        raise TTT3RError("data.heldout_sequences is 0: nothing to evaluate on")
    prepare_pool(cfg.data, splits=("heldout",), workers=cfg.threads)
    torch.set_num_threads(cfg.threads)
    model = load_model(out / "model", device="cpu")
    paths = [p for p, _, _ in sequence_dirs(cfg.data, "heldout")]
    results = evaluate_model(model, paths, frames, stride, rules)
    report = {"frames": frames, "stride": stride, "summary": summarise(results),
              "sequences": [r.__dict__ for r in results]}
    atomic_write_text(out / f"eval_f{frames}_s{stride}.json", dumps(report, indent=1) + "\n")
    return report


def format_report(report: dict) -> str:
    lines = [f"held-out sequences, {report['frames']} frames at stride {report['stride']}",
             f"{'sequence':<22} {'rule':<6} {'AbsRel':>7} {'const':>7} {'ATE/ext':>8} {'static':>7} "
             f"{'RPErot':>7} {'static':>7}"]
    for r in report["sequences"]:
        lines.append(f"{r['name']:<22} {r['rule']:<6} {r['abs_rel']:7.3f} {r['abs_rel_const']:7.3f} "
                     f"{r['ate_frac']:8.3f} {r['ate_frac_static']:7.3f} {r['rpe_rot_deg']:7.2f} "
                     f"{r['rpe_rot_deg_static']:7.2f}")
    for rule, m in report["summary"].items():
        if np.isfinite(m["ate_frac_static"]):
            ate = (f"ATE/extent {m['ate_frac']:.3f} vs static {m['ate_frac_static']:.3f} "
                   f"(beats it on {m['beats_pose_baseline']}/{m['sequences']})")
        else:
            ate = "ATE/extent n/a (the cameras only turn)"
        lines.append(f"mean {rule}: AbsRel {m['abs_rel']:.3f} vs constant {m['abs_rel_const']:.3f} "
                     f"(beats it on {m['beats_depth_baseline']}/{m['sequences']}); {ate}; "
                     f"RPE rotation {m['rpe_rot_deg']:.2f} deg vs static {m['rpe_rot_deg_static']:.2f}")
    return "\n".join(lines)
