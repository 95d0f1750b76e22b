"""A camera going round a textured round room (exact depth and colour): the loop-closure tests' revisiting scene."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

LAP, H, W, F, ROOM = 48, 24, 32, 16.0, 4.0
K = np.array([[F, 0, W // 2], [0, F, H // 2], [0, 0, 1.0]])


def truth_poses(laps: int = 2) -> np.ndarray:
    """A camera on a circle of radius 1 inside a round room, looking outwards, ``laps`` times."""
    out = []
    for k in range(laps * LAP):
        a = 2 * np.pi * k / LAP
        p = np.eye(4)
        p[:3, :3] = Rotation.from_euler("y", a).as_matrix()
        p[:3, 3] = [np.sin(a), 0.0, np.cos(a)]
        out.append(p)
    return np.stack(out)


def view(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth and colour of the room's wall (a cylinder of radius ROOM about the y axis, textured by angle and height)."""
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    d = np.stack([(u - K[0, 2]) / F, (v - K[1, 2]) / F, np.ones_like(u, float)], -1) @ pose[:3, :3].T
    c = pose[:3, 3]
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = 2 * (c[0] * d[..., 0] + c[2] * d[..., 2])
    cc = c[0] ** 2 + c[2] ** 2 - ROOM**2
    t = (-b + np.sqrt(b * b - 4 * a * cc)) / (2 * a)  # depth along z (d has z = 1 in the camera)
    hit = c + t[..., None] * d
    th = np.arctan2(hit[..., 0], hit[..., 2])
    rng = np.random.default_rng(7)
    col = []
    for ch in range(3):
        f = sum(rng.normal() * np.sin((k + 1) * th + rng.uniform(0, 6)) for k in range(8))
        col.append(128 + 60 * np.tanh(f) * np.cos(1.3 * hit[..., 1] + ch))
    return t.astype(np.float32), np.clip(np.stack(col, -1), 0, 255).astype(np.uint8)


def room_sequence(truth: np.ndarray, folder):
    """The room seen from ``truth`` (N, 4, 4) as an eval :class:`Sequence`: images written to
    ``folder`` (a pathlib.Path), exact depth read on demand, the ground-truth poses and intrinsics."""
    from PIL import Image

    from ttt3r.eval.datasets.base import Sequence

    paths = []
    for i in range(len(truth)):
        paths.append(folder / f"{i:04d}.png")
        Image.fromarray(view(truth[i])[1]).save(paths[-1])
    seq = Sequence("synthetic", "room", paths, poses=truth, intrinsics=np.tile(K, (len(truth), 1, 1)))
    seq.depth_paths = list(range(len(truth)))
    seq.depth_reader = lambda i: view(truth[i])[0]
    return seq
