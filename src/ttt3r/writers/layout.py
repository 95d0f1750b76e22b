"""The original CUT3R demo's output layout, so scripts written for it keep working.

::

    depth/000000.npy    (H, W) float32 depth along the camera z axis
    conf/000000.npy     (H, W) float32 confidence (>= 1)
    color/000000.png    (H, W, 3) the preprocessed RGB image the network saw
    camera/000000.npz   pose: (4, 4) float64 camera-to-world (OpenCV axes),
                        intrinsics: (3, 3) float64 pinhole matrix in pixels of color/
                        pose_pred: (4, 4), only with given poses: the network's own pose

Numbers are ``FrameResult.index`` (``%06d``). Every file is written atomically.
File names and formats are :data:`ttt3r.io.layout.DEMO_LAYOUT`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.layout import DEMO_LAYOUT, read_frame_files
from ..results import FrameResult

__all__ = ["DemoLayoutWriter", "demo_paths", "read_demo_frame", "write_demo_frame"]


def demo_paths(out_dir: str | os.PathLike, index: int) -> dict[str, Path]:
    """The four files of frame ``index``: keys ``depth``, ``conf``, ``color``, ``camera``."""
    return DEMO_LAYOUT.paths(out_dir, index)


def write_demo_frame(out_dir: str | os.PathLike, frame: FrameResult) -> dict[str, Path]:
    """Write one frame in the demo layout (atomically, file by file, camera last); returns the paths."""
    return DEMO_LAYOUT.write(out_dir, frame.index, frame.rgb, frame.depth, frame.pose, frame.intrinsics,
                             conf=frame.conf, pose_pred=frame.pose_pred)


def read_demo_frame(out_dir: str | os.PathLike, index: int) -> dict[str, np.ndarray]:
    """Read frame ``index`` back: ``depth``, ``conf``, ``color`` (uint8 RGB), ``pose``, ``intrinsics``."""
    return read_frame_files(DEMO_LAYOUT, out_dir, index)


class DemoLayoutWriter:
    """Writes ``depth/``, ``conf/``, ``color/``, ``camera/`` per frame (see module doc)."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        self.n_frames = 0

    def add(self, frame: FrameResult) -> None:
        write_demo_frame(self.out_dir, frame)
        self.n_frames += 1

    def flush(self) -> None:
        pass

    def close(self, interrupted: bool = False) -> None:
        pass
