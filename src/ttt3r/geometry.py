"""Camera geometry: pose encodings, focal estimation, intrinsics, unprojection.

Conventions: OpenCV camera axes (x right, y down, z forward); camera-to-world
poses; quaternions real part first ``(qw, qx, qy, qz)`` in the network's pose
encoding; pixel coordinates with (0, 0) at the centre of the top-left pixel.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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


def intrinsics_from_focal(focal: Tensor | float, h: int, w: int) -> np.ndarray:
    """3x3 pinhole matrix with fx = fy = focal and principal point (W//2, H//2)."""
    k = np.eye(3)
    k[0, 0] = k[1, 1] = float(focal)
    k[0, 2], k[1, 2] = w // 2, h // 2
    return k


def unproject_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) depth and 3x3 K -> (H, W, 3) float32 camera-frame points."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    z = depth.astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=-1).astype(np.float32)


def transform_points(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (..., 3) points."""
    return pts @ T[:3, :3].T + T[:3, 3]

