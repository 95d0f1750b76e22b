"""Exact synthetic geometry for writer tests: cameras looking at a wall and a floor.

World = first camera's OpenCV frame (x right, y down, z forward). The wall is
the plane z = WALL_Z, the floor the plane y = FLOOR_Y (below the cameras). The
colour of a surface point is a linear function of its position (so a voxel's
mean colour is the colour of its mean position).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ttt3r.results import FrameResult

WALL_Z = 4.0
FLOOR_Y = 1.0
H, W = 48, 64
FX = 50.0


def intrinsics(h: int = H, w: int = W, f: float = FX) -> np.ndarray:
    return np.array([[f, 0, w // 2], [0, f, h // 2], [0, 0, 1]], np.float64)


def true_color(p: np.ndarray) -> np.ndarray:
    """(N, 3) world points -> (N, 3) float colours in [0, 255]."""
    r = 128 + 30 * p[:, 0]
    g = 128 + 30 * p[:, 1]
    b = 60 + 30 * p[:, 2]
    return np.clip(np.stack([r, g, b], axis=1), 0, 255)


def surface_distance(p: np.ndarray) -> np.ndarray:
    """Distance of world points to the nearer of the two planes."""
    return np.minimum(np.abs(p[:, 2] - WALL_Z), np.abs(p[:, 1] - FLOOR_Y))


def make_pose(i: int) -> np.ndarray:
    """Camera-to-world pose of frame i: sliding right and yawing, pose 0 = identity."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("yxz", [4.0 * i, 1.5 * i, 0.5 * i], degrees=True).as_matrix()
    T[:3, 3] = [0.15 * i, -0.02 * i, 0.05 * i]
    return T


def make_frame(i: int, h: int = H, w: int = W, bad_stripe: bool = True, f: float = FX) -> FrameResult:
    """Ray-cast frame i. A stripe of low-confidence pixels carries wrong points (must be filtered)."""
    K = intrinsics(h, w, f)
    pose = make_pose(i)
    u, v = np.meshgrid(np.arange(w), np.arange(h))  # pixel centres at integers (OpenCV, as ttt3r)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # z = 1
    R, c = pose[:3, :3], pose[:3, 3]
    rays_w = rays_cam @ R.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = (WALL_Z - c[2]) / rays_w[..., 2]
        t_floor = (FLOOR_Y - c[1]) / rays_w[..., 1]
    t_wall = np.where(t_wall > 0, t_wall, np.inf)
    t_floor = np.where(t_floor > 0, t_floor, np.inf)
    depth = np.minimum(t_wall, t_floor)
    assert np.isfinite(depth).all()
    pts_cam = (rays_cam * depth[..., None]).astype(np.float32)
    pw = pts_cam.reshape(-1, 3).astype(np.float64) @ R.T + c
    rgb = np.rint(true_color(pw)).astype(np.uint8).reshape(h, w, 3)
    conf = np.full((h, w), 5.0, np.float32)
    if bad_stripe:
        conf[:, :4] = 1.2  # below the default threshold 1.5
        pts_cam[:, :4] *= 0.5  # and wrong
    return FrameResult(index=i, name=f"frame{i}.png", pts3d_cam=pts_cam, conf=conf, pose=pose,
                       intrinsics=K, rgb=rgb, time_s=0.01 * (i + 1))


def make_frames(n: int = 8, **kw) -> list[FrameResult]:
    return [make_frame(i, **kw) for i in range(n)]
