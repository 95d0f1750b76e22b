"""Shared pieces of the benchmark loaders: the per-sequence record, the loader base, file helpers.

Conventions for every loader:

* ``Sequence.poses``: (N, 4, 4) float64 camera-to-world, OpenCV camera axes
  (x right, y down, z forward), in the dataset's world frame and unit (metres).
* ``Sequence.intrinsics``: (N, 3, 3) float64 pinhole matrices in pixels of the
  images as stored on disk.
* ``Sequence.read_depth(i)``: (H, W) float32 depth in metres along the camera z
  axis; 0 where the ground truth is missing.
* Missing files raise :class:`ttt3r.errors.TTT3RError` naming what is missing
  and where it was expected.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...errors import TTT3RError
from ...io.trajectory import Trajectory

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

DepthReader = Callable[[Path], np.ndarray]


@dataclass
class Sequence:
    """One benchmark sequence.

    Attributes:
        dataset: registry name of the dataset (e.g. ``"tum_s1_500"``).
        name: sequence name within the dataset (e.g. ``"rgbd_dataset_freiburg3_walking_xyz"``).
        image_paths: the N input frames in temporal order.
        poses: (N, 4, 4) float64 camera-to-world ground truth (OpenCV axes), or None.
        timestamps: (N,) float64 timestamps in seconds (frame numbers where the
            dataset has no clock), or None.
        pose_valid: (N,) bool, False where the ground-truth pose is unknown, or None.
        depth_paths: the N ground-truth depth files, or None.
        depth_reader: turns one of ``depth_paths`` into (H, W) float32 metres (0 = missing).
        intrinsics: (N, 3, 3) float64 pinhole matrices in pixels, or None.
        max_depth: depth-evaluation cap of the benchmark in metres (ground truth
            at or beyond it is ignored), or None.
        depth_clip_max: clip applied to the aligned prediction in metres, or None.
    """

    dataset: str
    name: str
    image_paths: list[Path]
    poses: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    pose_valid: np.ndarray | None = None
    depth_paths: list[Path] | None = None
    depth_reader: DepthReader | None = None
    intrinsics: np.ndarray | None = None
    max_depth: float | None = None
    depth_clip_max: float | None = None

    def __len__(self) -> int:
        return len(self.image_paths)

    def read_depth(self, index: int) -> np.ndarray:
        """(H, W) float32 ground-truth depth of frame ``index`` in metres; 0 where missing."""
        if self.depth_paths is None or self.depth_reader is None:
            raise TTT3RError(f"{self.dataset}/{self.name}: this dataset has no ground-truth depth")
        return self.depth_reader(self.depth_paths[index])

    def read_depths(self) -> np.ndarray:
        """(N, H, W) float32 ground-truth depth of the whole sequence in metres; 0 where missing."""
        return np.stack([self.read_depth(i) for i in range(len(self))])

    def trajectory(self) -> Trajectory:
        """Ground-truth poses as a :class:`Trajectory` (timestamps default to frame indices)."""
        if self.poses is None:
            raise TTT3RError(f"{self.dataset}/{self.name}: this dataset has no ground-truth poses")
        t = self.timestamps if self.timestamps is not None else np.arange(len(self.poses), dtype=np.float64)
        return Trajectory(t, self.poses)


class DatasetLoader(ABC):
    """Lists the sequences of one benchmark under ``root`` and loads them.

    Subclasses set ``name``, ``tasks`` (which of ``"pose"``, ``"depth"``,
    ``"recon"`` they serve) and, for depth benchmarks, the evaluation cap
    ``max_depth`` and post-alignment clip ``depth_clip_max`` in metres.
    """

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]]
    max_depth: ClassVar[float | None] = None
    depth_clip_max: ClassVar[float | None] = None

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise TTT3RError(f"{self.name}: dataset root not found: {self.root}")

    @abstractmethod
    def sequence_names(self) -> list[str]:
        """Names of the sequences evaluated, in a fixed order."""

    @abstractmethod
    def load(self, name: str) -> Sequence:
        """Load sequence ``name`` (one of :meth:`sequence_names`)."""

    def __iter__(self) -> Iterator[Sequence]:
        for n in self.sequence_names():
            yield self.load(n)

    def __len__(self) -> int:
        return len(self.sequence_names())

    # -- helpers for subclasses

    def _sequence(self, name: str, image_paths: list[Path], **fields) -> Sequence:
        """A :class:`Sequence` of this dataset carrying its depth-evaluation cap and clip."""
        return Sequence(
            self.name, name, image_paths, max_depth=self.max_depth, depth_clip_max=self.depth_clip_max, **fields
        )

    def _dir(self, path: Path, what: str) -> Path:
        if not path.is_dir():
            raise TTT3RError(f"{self.name}: {what} not found: expected folder {path}")
        return path

    def _file(self, path: Path, what: str) -> Path:
        if not path.is_file():
            raise TTT3RError(f"{self.name}: {what} not found: expected file {path}")
        return path

    def _images(self, folder: Path, what: str = "image folder") -> list[Path]:
        files = list_images(self._dir(folder, what))
        if not files:
            raise TTT3RError(f"{self.name}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
        return files

    def _subdirs(self, folder: Path) -> list[str]:
        return sorted(p.name for p in self._dir(folder, "dataset folder").iterdir() if p.is_dir())

    def _check_count(self, seq: str, what: str, n: int, n_images: int, where: Path) -> None:
        if n != n_images:
            raise TTT3RError(f"{self.name}/{seq}: {n} {what} in {where} for {n_images} images")


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder`` sorted by name.

    Plain string order, as the benchmarks name frames with zero-padded numbers
    or fixed-width timestamps (``1341846313.553992.png``), for which it is the
    temporal order (a "natural" digit-run order would misplace decimal fractions).
    """
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: p.name)


def frame_numbers(stems: list[str]) -> np.ndarray:
    """(N,) float64 of the last number in each file stem (``frame_0012`` -> 12); indices if any lacks one."""
    nums = [re.findall(r"\d+", s) for s in stems]
    if all(nums):
        return np.array([float(n[-1]) for n in nums])
    return np.arange(len(stems), dtype=np.float64)


def read_png_depth(path: Path, scale: float, max_valid: float | None = None, invalid_raw: int | None = None) -> np.ndarray:
    """Read a 16-bit PNG depth map as (H, W) float32 metres: ``raw / scale``; 0 where missing.

    Raw 0 (and ``invalid_raw`` if given) are missing; depths above ``max_valid``
    metres are set to 0.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            raw = np.array(im)
    except FileNotFoundError:
        raise TTT3RError(f"{path}: depth file not found") from None
    except OSError as e:
        raise TTT3RError(f"{path}: cannot read depth PNG ({e})") from None
    if raw.ndim != 2 or raw.dtype.kind not in "ui":
        raise TTT3RError(f"{path}: expected a single-channel 16-bit depth PNG, got {raw.dtype} {raw.shape}")
    missing = raw == 0
    if invalid_raw is not None:
        missing |= raw == invalid_raw
    depth = raw.astype(np.float32) / np.float32(scale)
    depth[missing] = 0.0
    if max_valid is not None:
        depth[depth > max_valid] = 0.0
    return depth


def pinhole(fx: float, fy: float, cx: float, cy: float, n: int) -> np.ndarray:
    """(n, 3, 3) copies of the pinhole matrix with the given focal lengths and principal point (pixels)."""
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return np.tile(K, (n, 1, 1))


class KeyframeReconLoader(DatasetLoader):
    """A reconstruction dataset sampled every ``kf_every``-th frame, at most ``max_frames``."""

    tasks: ClassVar[tuple[str, ...]] = ("recon",)

    def __init__(self, root: str | os.PathLike, kf_every: int = 2, max_frames: int | None = None) -> None:
        super().__init__(root)
        if kf_every < 1:
            raise TTT3RError(f"{self.name}: kf_every must be >= 1, got {kf_every}")
        self.kf_every = kf_every
        self.max_frames = max_frames
