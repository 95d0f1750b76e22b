"""The network's pose encoding and focal estimate (torch; the numpy geometry is :mod:`ttt3r.geometry`).

Conventions: OpenCV camera axes (x right, y down, z forward); camera-to-world
poses; the network's quaternions are real part first ``(qw, qx, qy, qz)``
(unlike the files, which use TUM's ``(qx, qy, qz, qw)``); pixel coordinates
with (0, 0) at the centre of the top-left pixel.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["estimate_focal_weiszfeld", "pose_encoding_to_matrix", "quaternion_to_matrix"]


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """(..., 4) quaternions ``(w, x, y, z)`` (any norm) -> (..., 3, 3) rotation matrices."""
    w, x, y, z = q.unbind(-1)
    two_s = 2.0 / (q * q).sum(-1)
    m = torch.stack(
        (
            1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
            two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
            two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
        ),
        -1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def pose_encoding_to_matrix(enc: Tensor) -> Tensor:
    """(B, 7) ``(t, q)`` camera-to-world encodings -> (B, 4, 4) camera-to-world matrices."""
    b = enc.shape[0]
    m = torch.eye(4, dtype=enc.dtype, device=enc.device).repeat(b, 1, 1)
    m[:, :3, :3] = quaternion_to_matrix(enc[:, 3:7])
    m[:, :3, 3] = enc[:, :3]
    return m


def estimate_focal_weiszfeld(pts3d: Tensor, pp: Tensor, iters: int = 10) -> Tensor:
    """Focal length (pixels) that best projects camera-frame points to their pixels.

    Args:
        pts3d: (B, H, W, 3) points in the camera frame (pixel (i, j) at row i, column j).
        pp: (B, 2) principal point ``(cx, cy)`` in pixels.
        iters: Weiszfeld re-weighting iterations (robust L1 fit), 10 as the original.

    Returns:
        (B,) focal lengths, fx = fy.
    """
    b, h, w, _ = pts3d.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=pts3d.device), torch.arange(w, device=pts3d.device),
                            indexing="ij")
    pix = torch.stack([xs, ys], dim=-1).view(1, -1, 2).to(pts3d.dtype) - pp.view(-1, 1, 2)
    p = pts3d.flatten(1, 2)
    xy = (p[..., :2] / p[..., 2:3]).nan_to_num(posinf=0, neginf=0)
    dot_xy_px = (xy * pix).sum(-1)
    dot_xy_xy = xy.square().sum(-1)
    focal = dot_xy_px.mean(1) / dot_xy_xy.mean(1)
    for _ in range(iters):
        dis = (pix - focal.view(-1, 1, 1) * xy).norm(dim=-1)
        wgt = dis.clip(min=1e-8).reciprocal()
        focal = (wgt * dot_xy_px).mean(1) / (wgt * dot_xy_xy).mean(1)
    return focal
