"""KITTI depth (official validation selection) video depth, as gathered by the paper's preprocessing.

Layout under ``root`` = ``depth_selection/val_selection_cropped``::

    image_gathered[_<N>]/<drive>_02/<frame>.png               left colour frames
    groundtruth_depth_gathered[_<N>]/<drive>_02/<frame>.png   16-bit depth, metres = value / 256, 0 = missing

``"kitti"`` uses the folders without suffix; ``"kitti_s1_<N>"`` the first N
frames of each drive (N = 50 .. 500). Frames are paired with depth maps by file
name. There are no poses or intrinsics in this layout. Depth is evaluated up to
80 m (the range of the projected LiDAR ground truth).
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import TTT3RError
from .base import DatasetLoader, Sequence, list_images, read_png_depth

KITTI_LONG_FRAMES = (50, 100, 110, *range(150, 501, 50))


def _read_kitti_depth(path) -> np.ndarray:
    return read_png_depth(path, 256.0)


class KittiDepth(DatasetLoader):
    """KITTI video depth clips (see the module docstring)."""

    name = "kitti"
    tasks = ("depth",)
    max_depth = 80.0

    def __init__(self, root: str | os.PathLike, num_frames: int | None = None) -> None:
        super().__init__(root)
        self.num_frames = num_frames
        suffix = "" if num_frames is None else f"_{int(num_frames)}"
        self.image_root = self._dir(self.root / f"image_gathered{suffix}", "KITTI image folder")
        self.depth_root = self._dir(self.root / f"groundtruth_depth_gathered{suffix}", "KITTI depth folder")

    def sequence_names(self) -> list[str]:
        return self._subdirs(self.image_root)

    def load(self, name: str) -> Sequence:
        images = self._images(self.image_root / name, f"images of drive {name}")
        depth_dir = self._dir(self.depth_root / name, f"depth of drive {name}")
        depth_by_name = {p.name: p for p in list_images(depth_dir)}
        missing = [p.name for p in images if p.name not in depth_by_name]
        if missing:
            raise TTT3RError(f"{self.name}: no depth map for frame {missing[0]}: expected file {depth_dir / missing[0]}")
        depths = [depth_by_name[p.name] for p in images]
        return self._sequence(name, images, depth_paths=depths, depth_reader=_read_kitti_depth)
