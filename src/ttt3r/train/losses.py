"""CUT3R's training losses (re-implemented from the paper's description and DUSt3R's losses).

For a clip of ``L`` frames the network predicts, per frame, a self-view pointmap
(own camera), a world pointmap (first camera), their confidences, a pose and an
image. The loss is::

    total = 2 * mean_over_maps(conf_loss) + pose_weight * pose_loss + rgb_weight * rgb_loss

* **Scale normalisation** (``avg_dis``): the ground truth is divided by ``z_gt``,
  the mean distance to the origin of all valid ground-truth points of the clip,
  self-view and world maps together; the prediction by its own ``z_pred``
  computed the same way from the predicted maps. Predictions are therefore
  only defined up to scale (what a monocular network can know).
* **Confidence-aware regression**, per map (self or world, one per frame):
  ``mean_pixels( c * ||p/z_pred - g/z_gt|| - alpha * log c )`` over valid pixels,
  ``c >= 1`` the predicted confidence. Minimal (for a fixed error) at
  ``c = alpha / err``, clipped at 1: with a perfect prediction and ``c = 1`` it is 0.
* **Pose**: ground-truth camera-to-first-camera poses, translation divided by
  ``z_gt``; predicted translation divided by ``z_pred``;
  ``mean ||t_pred - t_gt|| + mean ||q_pred - q_gt||`` (quaternions unit, ``qw >= 0``).
* **RGB**: mean squared error of the predicted image against the input, both in [-1, 1].
* **Quaternion scale** (ours, not CUT3R's; ``quat_norm_weight``, 0 turns it off):
  ``mean (||q_raw|| - 1)^2`` over the pose MLP's unnormalised quaternions. The
  pose loss sees ``q_raw / ||q_raw||``, whose gradient shrinks as ``1 / ||q_raw||``;
  trained from scratch, ``||q_raw||`` drifts up (to ~47 in our first runs) while
  the clips' small rotations favour the identity, and rotation then stops being
  learnt. The term keeps the scale near 1; it does not change what the pose means.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .data import Batch


@dataclass
class ClipPrediction:
    """Per-frame network outputs stacked over a clip (B clips, L frames).

    pts_self / pts_world (B, L, H, W, 3), conf_self / conf_world (B, L, H, W),
    pose (B, L, 7), rgb (B, L, H, W, 3) in [-1, 1] or None, pose_raw (B, L, 7) the pose
    MLP's raw outputs (unnormalised quaternion in ``[..., 3:7]``) or None.
    """

    pts_self: Tensor
    conf_self: Tensor
    pts_world: Tensor
    conf_world: Tensor
    pose: Tensor
    rgb: Tensor | None = None
    pose_raw: Tensor | None = None


def avg_distance(maps: list[Tensor], valid: Tensor, eps: float = 1e-8) -> Tensor:
    """Mean norm of the valid points of several (B, L, H, W, 3) maps -> (B,) scale factors.

    ``valid`` (B, L, H, W) applies to every map.
    """
    v = valid.to(maps[0].dtype)
    total = sum((m.norm(dim=-1) * v).flatten(1).sum(1) for m in maps)
    count = v.flatten(1).sum(1) * len(maps)
    return total / (count + eps)


def conf_regression(pred: Tensor, gt: Tensor, conf: Tensor, valid: Tensor, alpha: float) -> Tensor:
    """Confidence-weighted Euclidean regression of one map per frame -> (L,) losses.

    pred, gt (B, L, H, W, 3) already normalised; conf (B, L, H, W) >= 1;
    valid (B, L, H, W). Each frame's loss is the mean over its valid pixels of
    ``conf * ||pred - gt|| - alpha * log(conf)`` (pooled over the batch).
    """
    err = (pred - gt).norm(dim=-1)
    per_pixel = conf * err - alpha * torch.log(conf)
    v = valid.to(per_pixel.dtype)
    num = (per_pixel * v).sum(dim=(0, 2, 3))
    den = v.sum(dim=(0, 2, 3)).clamp(min=1.0)
    return num / den


def pose_loss(pred: Tensor, gt: Tensor, scale_pred: Tensor, scale_gt: Tensor, eps: float = 1e-3) -> Tensor:
    """Camera pose loss. pred, gt (B, L, 7) ``(t, q)``; scale_* (B,) normalisers -> scalar."""
    tp = pred[..., :3] / scale_pred.clamp(min=eps)[:, None, None]
    tg = gt[..., :3] / scale_gt.clamp(min=eps)[:, None, None]
    return (tp - tg).norm(dim=-1).mean() + (pred[..., 3:7] - gt[..., 3:7]).norm(dim=-1).mean()


def rgb_loss(pred: Tensor, img: Tensor) -> Tensor:
    """MSE of predicted (B, L, H, W, 3) colours against the input images (B, L, 3, H, W), both in [-1, 1]."""
    return (pred - img.permute(0, 1, 3, 4, 2)).square().mean()


def raw_quat_norm(pose_raw: Tensor) -> Tensor:
    """``||q_raw||`` of raw (..., 7) pose outputs ``(t, q_raw)`` -> (...)."""
    return pose_raw[..., 3:7].norm(dim=-1)


def quat_scale_loss(pose_raw: Tensor) -> Tensor:
    """``mean (||q_raw|| - 1)^2`` of raw (..., 7) pose outputs -> scalar."""
    return (raw_quat_norm(pose_raw) - 1.0).square().mean()


def cut3r_loss(pred: ClipPrediction, batch: Batch, alpha: float = 0.2, pose_weight: float = 1.0,
               rgb_weight: float = 1.0, eps: float = 1e-3,
               quat_norm_weight: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """The total training loss of a clip batch and its parts (floats, for logging).

    Parts: ``conf_self``, ``conf_world`` (mean over frames of the confidence
    losses), ``reg_self``, ``reg_world`` (the plain normalised point errors,
    monitoring only), ``pose``, ``rgb``, ``quat_norm`` (mean ``||q_raw||``,
    monitoring, when ``pose_raw`` is given), ``total``.
    """
    valid = batch.valid
    z_gt = avg_distance([batch.pts_self, batch.pts_world], valid).clamp(min=eps)
    z_pr = avg_distance([pred.pts_self, pred.pts_world], valid).clamp(min=eps)
    shape = (-1, 1, 1, 1, 1)
    gs, gw = batch.pts_self / z_gt.view(shape), batch.pts_world / z_gt.view(shape)
    ps, pw = pred.pts_self / z_pr.view(shape), pred.pts_world / z_pr.view(shape)
    l_self = conf_regression(ps, gs, pred.conf_self, valid, alpha)
    l_world = conf_regression(pw, gw, pred.conf_world, valid, alpha)
    conf_total = torch.cat([l_self, l_world]).mean() * 2.0
    l_pose = pose_loss(pred.pose, batch.pose, z_pr, z_gt, eps)
    total = conf_total + pose_weight * l_pose
    parts = {"conf_self": float(l_self.detach().mean()), "conf_world": float(l_world.detach().mean()),
             "pose": float(l_pose.detach())}
    if pred.rgb is not None and rgb_weight > 0:
        l_rgb = rgb_loss(pred.rgb, batch.img)
        total = total + rgb_weight * l_rgb
        parts["rgb"] = float(l_rgb.detach())
    if pred.pose_raw is not None:
        if quat_norm_weight > 0:
            total = total + quat_norm_weight * quat_scale_loss(pred.pose_raw)
        parts["quat_norm"] = float(raw_quat_norm(pred.pose_raw.detach()).mean())
    with torch.no_grad():
        v = valid.float()
        n = v.sum().clamp(min=1)
        parts["reg_self"] = float(((ps - gs).norm(dim=-1) * v).sum() / n)
        parts["reg_world"] = float(((pw - gw).norm(dim=-1) * v).sum() / n)
    parts["total"] = float(total.detach())
    return total, parts
