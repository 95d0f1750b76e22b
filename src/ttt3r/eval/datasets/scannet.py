"""ScanNet (v2 test scans) camera pose, as cut by the paper's preprocessing.

Layout under ``root`` (one folder per scan, every folder is used)::

    <scene>/color_<N>/frame_0000.jpg ...  every 3rd frame of the scan, the first N of them
    <scene>/depth_<N>/frame_0000.png ...  16-bit depth, metres = value / 1000, 0 = missing
    <scene>/pose_<N>.txt                  one camera-to-world 4x4 a line (16 numbers, row-major)
    <scene>/intrinsic/intrinsic_color.txt optional 4x4 colour intrinsics (ScanNet export)

``"scannet"`` is the 90-frame split; ``"scannet_s3_<N>"`` the long splits
(N = 50 .. 1000). ScanNet marks frames without tracking with ``-inf`` poses:
they are kept as NaN matrices and flagged in ``Sequence.pose_valid``.
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import TTT3RError
from ...io.trajectory import read_pose_matrices
from .base import DatasetLoader, Sequence, list_images, read_png_depth

SCANNET_LONG_FRAMES = (50, 90, 100, *range(150, 1001, 50))


def _read_scannet_depth(path) -> np.ndarray:
    return read_png_depth(path, 1000.0)


class ScanNet(DatasetLoader):
    """ScanNet clips of ``num_frames`` frames at stride 3 (see the module docstring)."""

    name = "scannet"
    tasks = ("pose",)

    def __init__(self, root: str | os.PathLike, num_frames: int = 90) -> None:
        super().__init__(root)
        self.num_frames = int(num_frames)

    def sequence_names(self) -> list[str]:
        return self._subdirs(self.root)

    def load(self, name: str) -> Sequence:
        seq_dir = self._dir(self.root / name, "scene folder")
        n = self.num_frames
        images = self._images(seq_dir / f"color_{n}", f"images of scene {name}")
        pose_path = self._file(seq_dir / f"pose_{n}.txt", "camera poses")
        poses = read_pose_matrices(pose_path, allow_16=True, finite=False)
        self._check_count(name, "poses", len(poses), len(images), pose_path)
        valid = np.isfinite(poses).all(axis=(1, 2))
        poses[~valid] = np.nan
        depth_dir = seq_dir / f"depth_{n}"
        depths = list_images(depth_dir) if depth_dir.is_dir() else None
        if depths is not None:
            self._check_count(name, "depth maps", len(depths), len(images), depth_dir)
        K = None
        k_path = seq_dir / "intrinsic" / "intrinsic_color.txt"
        if k_path.is_file():
            K = np.tile(_read_k(k_path), (len(images), 1, 1))
        return self._sequence(
            name,
            images,
            poses=poses,
            timestamps=np.arange(len(images), dtype=np.float64),
            pose_valid=valid,
            depth_paths=depths,
            depth_reader=_read_scannet_depth if depths else None,
            intrinsics=K,
        )


def _read_k(path) -> np.ndarray:
    """(3, 3) from a ScanNet 4x4 intrinsics text file (four rows of four numbers)."""
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except ValueError as e:
        raise TTT3RError(f"{path}: not a 4x4 intrinsics matrix ({e})") from None
    if m.shape != (4, 4):
        raise TTT3RError(f"{path}: expected a 4x4 intrinsics matrix, got shape {m.shape}")
    return m[:3, :3]
