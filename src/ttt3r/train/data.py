"""Training data: a pool of rendered synthetic sequences and seeded random clips from it.

The pool lives in ``data.dir``::

    DIR/train/<motion>_s<seed>/     one sequence per training seed (ttt3r.synth layout)
    DIR/heldout/<motion>_s<seed>/   sequences with unseen seeds, for evaluation only

:func:`prepare_pool` renders whatever is missing (an interrupted render resumes).
:class:`ClipSampler` draws batches of clips; batch ``k`` depends only on
``(seed, k)``, so a resumed run sees exactly the batches it would have seen.

A batch (:class:`Batch`) holds, for ``B`` clips of ``L`` frames of ``H x W`` pixels:

* ``img`` (B, L, 3, H, W) float32 in [-1, 1];
* ``pts_self`` (B, L, H, W, 3) ground-truth points in each frame's own camera
  (OpenCV axes, metres);
* ``pts_world`` (B, L, H, W, 3) the same points in the clip's first camera;
* ``valid`` (B, L, H, W) bool, pixels with a finite, positive depth;
* ``pose`` (B, L, 7) camera-to-first-camera poses ``(tx, ty, tz, qw, qx, qy, qz)``
  (metres; unit quaternion with ``qw >= 0``), the network's pose encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import TTT3RError
from ..geometry import rotation_to_quaternion, unproject
from .config import DataConfig


def sequence_dirs(data: DataConfig, split: str) -> list[tuple[Path, int, str]]:
    """(folder, seed, motion) of every sequence of ``split`` ('train' or 'heldout')."""
    if split == "train":
        seeds = range(data.train_seed0, data.train_seed0 + data.train_sequences)
    elif split == "heldout":
        seeds = range(data.heldout_seed0, data.heldout_seed0 + data.heldout_sequences)
    else:
        raise ValueError(f"unknown split {split!r}")
    out = []
    for s in seeds:
        m = data.motions[s % len(data.motions)]
        out.append((Path(data.dir) / split / f"{m}_s{s}", s, m))
    return out


def _missing(data: DataConfig, split: str) -> list[tuple[Path, int, str]]:
    """The sequences of ``split`` that are not on disk complete, at the pool's length and size."""
    from ..synth import load_sequence

    todo = []
    for path, seed, motion in sequence_dirs(data, split):
        try:
            seq = load_sequence(path)
            if len(seq) == data.frames and tuple(seq.size) == tuple(data.size):
                continue
        except TTT3RError:
            pass
        todo.append((path, seed, motion))
    return todo


def _render_one(path: Path, seed: int, motion: str, frames: int, size: tuple[int, int]) -> None:
    from ..synth import render_sequence

    render_sequence(path, frames=frames, seed=seed, motion=motion, size=size, progress=False)


def prepare_pool(data: DataConfig, splits: tuple[str, ...] = ("train", "heldout"), log=print,
                 workers: int = 1) -> None:
    """Render every missing sequence of ``splits`` (complete ones are left as they are).

    ``workers`` processes render whole sequences side by side (each sequence is a pure
    function of its seed, so the files do not depend on it); a failed render stops the
    pool with its error after the sequences in flight finish, and a rerun resumes.
    """
    from ..synth.render import import_pybullet

    for split in splits:
        todo = _missing(data, split)
        if not todo:
            continue
        import_pybullet()  # a missing renderer is one line, before any process starts
        args = [(path, seed, motion, data.frames, tuple(data.size)) for path, seed, motion in todo]
        if workers <= 1 or len(todo) == 1:
            for i, a in enumerate(args):
                _render_one(*a)
                log(f"rendered {split} sequence {i + 1}/{len(todo)}: {a[0]}")
            continue
        _render_many(args, split, workers, log)


def _render_many(args: list[tuple], split: str, workers: int, log) -> None:
    import collections
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from ..synth.render import process_context

    done_count = 0
    with ProcessPoolExecutor(min(workers, len(args)), mp_context=process_context()) as ex:
        pending: dict = {}
        queue = collections.deque(args)
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:  # bounded queue
                    a = queue.popleft()
                    pending[ex.submit(_render_one, *a)] = a
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    a = pending.pop(f)
                    f.result()
                    done_count += 1
                    log(f"rendered {split} sequence {done_count}/{len(args)}: {a[0]}")
        except BaseException:
            ex.shutdown(wait=True, cancel_futures=True)
            raise


def _quat_wxyz(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (w, x, y, z) with w >= 0 (the network's order)."""
    return rotation_to_quaternion(R)[..., [3, 0, 1, 2]]


@dataclass
class SeqArrays:
    """One sequence in memory: rgb (F, H, W, 3) uint8, depth (F, H, W) float32 (or float16) metres,
    poses (F, 4, 4) float64 camera-to-world, K (3, 3) float64 pixels."""

    rgb: np.ndarray
    depth: np.ndarray
    poses: np.ndarray
    K: np.ndarray

    @classmethod
    def load(cls, path: str | Path, half_depth: bool = False) -> SeqArrays:
        """Read a rendered sequence; ``half_depth`` keeps the depth maps as float16
        (half the memory, relative rounding at most 2**-11)."""
        from ..synth import load_sequence

        seq = load_sequence(path)
        n = len(seq)
        rgb = np.stack([seq.rgb(i) for i in range(n)])
        depth = np.stack([seq.depth(i) for i in range(n)]).astype(np.float16 if half_depth else np.float32)
        poses = np.stack([seq.camera(i)[0] for i in range(n)])
        return cls(rgb, depth, poses, seq.intrinsics.astype(np.float64))


@dataclass
class Batch:
    """A batch of clips (shapes in the module docstring)."""

    img: Tensor
    pts_self: Tensor
    pts_world: Tensor
    valid: Tensor
    pose: Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in ("img", "pts_self", "pts_world", "valid", "pose")))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B, L, H, W)."""
        b, l, _, h, w = self.img.shape
        return b, l, h, w


#: the left-right mirror of OpenCV camera (and world) coordinates, x -> -x
MIRROR = np.diag([-1.0, 1.0, 1.0, 1.0])


def make_clip(seq: SeqArrays, frames: np.ndarray, flip: bool = False) -> dict[str, np.ndarray]:
    """Ground truth of one clip: the frames ``frames`` (indices) of ``seq``, in that order.

    With ``flip`` the clip is mirrored left-right: images and depth maps are
    flipped horizontally and every camera-to-world pose ``P`` becomes
    ``MIRROR @ P @ MIRROR``, the same cameras in the mirrored world (still
    rotations). That is exact only for a principal point at the image centre
    ``(W - 1) / 2``, which is checked.

    Returns numpy arrays with the per-clip shapes of :class:`Batch` (no batch axis).
    """
    frames = np.asarray(frames, dtype=int)
    rgb = seq.rgb[frames].astype(np.float32) / 127.5 - 1.0  # (L, H, W, 3)
    depth = seq.depth[frames].astype(np.float32, copy=False)
    poses = seq.poses[frames]
    L, H, W = depth.shape
    K = seq.K
    if flip:
        if abs(K[0, 2] - (W - 1) / 2) > 1e-6:
            raise TTT3RError(f"cannot mirror a clip whose principal point x {K[0, 2]} is off centre ({(W - 1) / 2})")
        rgb, depth = rgb[:, :, ::-1], depth[:, :, ::-1]
        poses = MIRROR[None] @ poses @ MIRROR[None]
    valid = np.isfinite(depth) & (depth > 0)
    d = np.where(valid, depth, 0.0)
    pts_self = np.stack([unproject(di, K) for di in d])  # (L, H, W, 3)
    rel = np.linalg.inv(poses[0])[None] @ poses  # (L, 4, 4) camera i -> first camera
    pts_world = np.einsum("lij,lhwj->lhwi", rel[:, :3, :3], pts_self) + rel[:, None, None, :3, 3]
    pose = np.concatenate([rel[:, :3, 3], _quat_wxyz(rel[:, :3, :3])], axis=1)
    return dict(img=rgb.transpose(0, 3, 1, 2), pts_self=pts_self, pts_world=pts_world, valid=valid, pose=pose)


def collate(clips: list[dict[str, np.ndarray]]) -> Batch:
    def cat(key: str, dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(np.stack([c[key] for c in clips])).to(dtype)

    return Batch(cat("img", torch.float32), cat("pts_self", torch.float32), cat("pts_world", torch.float32),
                 cat("valid", torch.bool), cat("pose", torch.float32))


class ClipSampler:
    """Seeded random clips from a list of in-memory sequences.

    Batch ``k`` (:meth:`batch`) is a pure function of ``(seed, k)``: the clip
    length (``clip_min..clip_max``, shared by the batch), then per clip the
    sequence, the stride (``1..stride_max``), the start and the direction.
    """

    def __init__(self, seqs: list[SeqArrays], data: DataConfig, seed: int):
        if not seqs:
            raise TTT3RError("no training sequences")
        self.seqs, self.data, self.seed = seqs, data, int(seed)

    @classmethod
    def from_pool(cls, data: DataConfig, seed: int, split: str = "train", workers: int = 1,
                  log=None) -> ClipSampler:
        """Load every sequence of ``split`` into memory (``workers`` threads decode the
        images; the order, and so every batch, does not depend on it). Depth is held
        as float16 when ``data.half_depth`` is set."""
        from concurrent.futures import ThreadPoolExecutor
        from functools import partial

        paths = [path for path, _, _ in sequence_dirs(data, split)]
        with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
            seqs = []
            for i, seq in enumerate(pool.map(partial(SeqArrays.load, half_depth=data.half_depth), paths)):
                seqs.append(seq)
                if log is not None and ((i + 1) % 200 == 0 or i + 1 == len(paths)):
                    log(f"loaded {i + 1}/{len(paths)} {split} sequences")
        return cls(seqs, data, seed)

    def clip_indices(self, rng: np.random.Generator, length: int) -> tuple[int, np.ndarray]:
        d = self.data
        si = int(rng.integers(len(self.seqs)))
        n = len(self.seqs[si].depth)
        stride = int(rng.integers(1, d.stride_max + 1))
        stride = max(1, min(stride, (n - 1) // max(length - 1, 1)))
        span = (length - 1) * stride + 1
        if span > n:
            raise TTT3RError(f"a clip of {length} frames does not fit in a {n}-frame sequence")
        start = int(rng.integers(0, n - span + 1))
        idx = start + stride * np.arange(length)
        if rng.random() < d.reverse_prob:
            idx = idx[::-1].copy()
        return si, idx

    def batch(self, k: int, batch_size: int) -> Batch:
        rng = np.random.default_rng([self.seed, int(k), 7919])
        length = int(rng.integers(self.data.clip_min, self.data.clip_max + 1))
        clips = []
        for _ in range(batch_size):
            si, idx = self.clip_indices(rng, length)
            # no draw when flipping is off, so such runs see the batches they always did
            flip = self.data.flip_prob > 0 and bool(rng.random() < self.data.flip_prob)
            clips.append(make_clip(self.seqs[si], idx, flip=flip))
        return collate(clips)
