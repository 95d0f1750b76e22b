"""A tiny training setup shared by the training tests: a few-layer config and exact fake sequences.

Imported by name (``from train_helpers import ...``), like ``helpers.py``.
"""

from __future__ import annotations

import numpy as np

from ttt3r.train.config import TrainConfig, apply_overrides
from ttt3r.train.data import ClipSampler, SeqArrays

TINY = [
    "model.enc_embed_dim=32", "model.enc_depth=1", "model.enc_num_heads=2",
    "model.dec_embed_dim=32", "model.dec_depth=2", "model.dec_num_heads=2", "model.state_dec_num_heads=2",
    "model.state_size=4", "model.local_mem_size=2", "model.ray_enc_depth=1",
    "data.size=[32, 32]", "data.frames=12", "data.clip_min=3", "data.clip_max=3", "data.stride_max=2",
    "optim.batch=2", "optim.warmup=0", "optim.lr=2e-3", "optim.min_lr=2e-3", "threads=1", "device=\"cpu\"",
]


def tiny_cfg(*extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), TINY + list(extra))


def fake_sequence(seed: int, frames: int = 12, size: int = 32) -> SeqArrays:
    """A camera translating in front of a tilted, textured plane (exact depth, no renderer)."""
    rng = np.random.default_rng(seed)
    f = size * 0.8
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]])
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    rgb, depth, poses = [], [], []
    for t in range(frames):
        pose = np.eye(4)
        pose[:3, 3] = [0.05 * t, 0.02 * t * rng.uniform(0.5, 1.5), 0.0]
        d = 2.0 + 0.02 * (u - pose[0, 3] * 40) + 0.01 * v
        img = np.stack([(np.sin(0.4 * (u + 40 * pose[0, 3])) + 1) * 120, (v * 7) % 255, np.full_like(u, 60.0)], -1)
        rgb.append(img.astype(np.uint8))
        depth.append(d.astype(np.float32))
        poses.append(pose)
    return SeqArrays(np.stack(rgb), np.stack(depth), np.stack(poses), K)


def fake_sampler(cfg: TrainConfig) -> ClipSampler:
    return ClipSampler([fake_sequence(0), fake_sequence(1)], cfg.data, cfg.seed)
