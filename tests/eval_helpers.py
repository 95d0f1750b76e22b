"""Synthetic evaluation sequences written directly in the ``ttt3r synth`` layout (no rendering).

64x48 images, ``N`` frames, a helical camera path and smooth positive depth, so every
expected number in the evaluation tests follows from the arrays written here.
Tests import it by name (``from eval_helpers import ...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ttt3r.synth.render import tum_text

W, H, N = 64, 48, 8
K = np.array([[50.0, 0.0, (W - 1) / 2], [0.0, 50.0, (H - 1) / 2], [0.0, 0.0, 1.0]])


def _rot(axis: int, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def gt_poses(seed: int, n: int = N) -> np.ndarray:
    """(n, 4, 4) camera-to-world: a helix with turning cameras (3-D spread, no degeneracy)."""
    t = np.linspace(0, 1.5, n) + 0.3 * seed
    P = np.tile(np.eye(4), (n, 1, 1))
    P[:, 0, 3], P[:, 1, 3], P[:, 2, 3] = 2 * np.cos(t), 2 * np.sin(t), 0.4 * t + seed
    for i in range(n):
        P[i, :3, :3] = _rot(2, t[i]) @ _rot(0, 0.2 * np.sin(3 * t[i]))
    return P


def gt_depth(seed: int, i: int) -> np.ndarray:
    """(H, W) float32 metres in [1.5, 3.5]."""
    v, u = np.mgrid[0:H, 0:W]
    return (2.5 + 0.8 * np.sin(u / 9.0 + i + seed) * np.cos(v / 7.0 - i)).astype(np.float32)


def write_synth(folder: Path, seed: int, n: int = N) -> Path:
    """One sequence in the ``ttt3r synth`` layout with the arrays above."""
    rng = np.random.default_rng(seed)
    poses = gt_poses(seed, n)
    for sub in ("rgb", "depth", "camera"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / "rgb" / f"{i:06d}.png")
        np.save(folder / "depth" / f"{i:06d}.npy", gt_depth(seed, i))
        np.savez(folder / "camera" / f"{i:06d}.npz", pose=poses[i], intrinsics=K)
    (folder / "trajectory.txt").write_text(tum_text(poses, 30.0))
    meta = {"generator": "ttt3r.synth", "complete": True, "frames": n, "width": W, "height": H, "fps": 30.0,
            "intrinsics": K.tolist()}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder
