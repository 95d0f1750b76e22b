"""TUM RGB-D family: TUM-dynamics (camera pose) and Bonn RGB-D Dynamic (video depth).

Both ship TUM-format ground truth (``t tx ty tz qx qy qz qw``, camera-to-world)
and are cut by the paper's preprocessing into clips of ``N`` frames.

TUM-dynamics, ``root`` holding one folder per sequence (every folder is used)::

    <seq>/rgb_<N>/<timestamp>.png      the N frames (N = 90 for "tum", stride 3;
    <seq>/groundtruth_<N>.txt          N = 50..1000 for "tum_s1_<N>", stride 1)

Bonn, ``root`` = the ``rgbd_bonn_dataset`` folder::

    rgbd_bonn_<seq>/rgb_<N>/*.png      frames 30 .. 30+N of the recording (N = 110 for "bonn")
    rgbd_bonn_<seq>/depth_<N>/*.png    16-bit depth, metres = value / 5000, 0 = missing
    rgbd_bonn_<seq>/groundtruth_<N>.txt

The paper evaluates the Bonn sequences of :data:`BONN_SEQUENCES` with depth capped
at 70 m (Bonn poses are loaded as published: they are those of the motion-capture
markers, not of the camera, and the paper does not use them). Intrinsics are the datasets' published calibrations (TUM by the
``freiburgK`` in the sequence name).
"""

from __future__ import annotations

import os

import numpy as np

from ...io.trajectory import read_tum
from .base import DatasetLoader, Sequence, list_images, pinhole, read_png_depth

# Published pinhole calibrations (fx, fy, cx, cy) in pixels of the 640x480 images.
TUM_INTRINSICS: dict[str, tuple[float, float, float, float]] = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}
BONN_INTRINSICS = (542.822841, 542.576870, 315.593520, 237.756098)
BONN_DEPTH_SCALE = 5000.0

TUM_LONG_FRAMES = (50, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
BONN_LONG_FRAMES = (50, 100, 110, 150, 200, 250, 300, 350, 400, 450, 500)
BONN_SEQUENCES = ("balloon2", "crowd2", "crowd3", "person_tracking2", "synchronous")


def _read_bonn_depth(path) -> np.ndarray:
    return read_png_depth(path, BONN_DEPTH_SCALE)


class TumDynamics(DatasetLoader):
    """TUM-dynamics clips of ``num_frames`` frames (see the module docstring)."""

    name = "tum"
    tasks = ("pose",)

    def __init__(self, root: str | os.PathLike, num_frames: int = 90) -> None:
        super().__init__(root)
        self.num_frames = int(num_frames)

    def sequence_names(self) -> list[str]:
        return self._subdirs(self.root)

    def load(self, name: str) -> Sequence:
        seq_dir = self._dir(self.root / name, "sequence folder")
        images = self._images(seq_dir / f"rgb_{self.num_frames}", f"images of sequence {name}")
        gt_path = self._file(seq_dir / f"groundtruth_{self.num_frames}.txt", "ground-truth trajectory")
        traj = read_tum(gt_path)
        self._check_count(name, "poses", len(traj), len(images), gt_path)
        K = None
        for key, (fx, fy, cx, cy) in TUM_INTRINSICS.items():
            if key in name:
                K = pinhole(fx, fy, cx, cy, len(images))
        return self._sequence(name, images, poses=traj.poses, timestamps=traj.timestamps, intrinsics=K)


class Bonn(DatasetLoader):
    """Bonn RGB-D Dynamic clips of ``num_frames`` frames with depth (see the module docstring)."""

    name = "bonn"
    tasks = ("depth",)
    max_depth = 70.0

    def __init__(self, root: str | os.PathLike, num_frames: int = 110, full: bool = False) -> None:
        super().__init__(root)
        self.num_frames = int(num_frames)
        self.full = full

    def sequence_names(self) -> list[str]:
        if self.full:
            return [d.removeprefix("rgbd_bonn_") for d in self._subdirs(self.root) if d.startswith("rgbd_bonn_")]
        return list(BONN_SEQUENCES)

    def load(self, name: str) -> Sequence:
        seq_dir = self._dir(self.root / f"rgbd_bonn_{name}", "sequence folder")
        n = self.num_frames
        images = self._images(seq_dir / f"rgb_{n}", f"images of sequence {name}")
        depth_dir = self._dir(seq_dir / f"depth_{n}", f"depth of sequence {name}")
        depths = list_images(depth_dir)
        self._check_count(name, "depth maps", len(depths), len(images), depth_dir)
        poses = stamps = None
        gt_path = seq_dir / f"groundtruth_{n}.txt"
        if gt_path.is_file():
            traj = read_tum(gt_path)
            self._check_count(name, "poses", len(traj), len(images), gt_path)
            poses, stamps = traj.poses, traj.timestamps
        return self._sequence(
            name,
            images,
            poses=poses,
            timestamps=stamps,
            depth_paths=depths,
            depth_reader=_read_bonn_depth,
            intrinsics=pinhole(*BONN_INTRINSICS, len(images)),
        )
