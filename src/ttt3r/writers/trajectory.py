"""The run's camera trajectory, written as it grows, in TUM format (:mod:`ttt3r.io.trajectory`).

Poses are camera-to-world (OpenCV camera axes); the quaternion is the rotation
of the pose, Hamilton convention, scalar last (as TUM and scipy). Timestamps are
the inputs' (a video's presentation times, TUM-style numeric file names such as
``1305031102.175304.png``), else seconds when the frame rate is known, else frame
indices; ``frames.csv`` lists the same timestamps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_text
from ..io.trajectory import pose_to_tum, tum_line, tum_to_pose
from ..results import FrameResult
from .base import pose_is_valid, warn_invalid_pose

__all__ = ["TrajectoryWriter"]
# (the format and its readers, with errors that name the file and line: ttt3r.io.trajectory)

TUM_HEADER = "# timestamp tx ty tz qx qy qz qw (camera-to-world, OpenCV camera axes)"
#: decimals of the timestamp, significant digits of the pose values
DIGITS = (6, 9)


class TrajectoryWriter:
    """Keeps one TUM row per frame (8 floats) and rewrites the file atomically.

    Args:
        path: the ``trajectory.txt`` to write.
        fps: frames per second of the processed sequence. Timestamps are
            :meth:`FrameResult.time`: the frame's ``timestamp`` when set (a
            video's presentation time, a numeric file name's number), else
            ``index / fps``, else (``fps=None``) the frame index.
        every: rewrite the file every ``every`` frames (and at close).

    A frame whose pose is not finite is left out (with a ``RuntimeWarning``);
    its timestamp identifies the missing frame.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None, every: int = 10) -> None:
        self.path = Path(path)
        self.fps = fps
        self.every = max(1, int(every))
        self._rows: list[np.ndarray] = []
        self._lines: list[str] = [TUM_HEADER]  # formatted once (~100 bytes a frame)
        self._written = -1

    def timestamp(self, frame: FrameResult) -> float:
        return frame.time(self.fps)

    def add(self, frame: FrameResult) -> None:
        if not pose_is_valid(frame.pose):
            warn_invalid_pose(self.path.name, frame)
            return
        row = pose_to_tum(frame.pose)
        self._rows.append(row)
        self._lines.append(tum_line(self.timestamp(frame), row, DIGITS))
        if len(self._rows) % self.every == 0:
            self.flush()

    def flush(self) -> None:
        if self._written == len(self._rows):
            return
        atomic_write_text(self.path, "\n".join(self._lines) + "\n")
        self._written = len(self._rows)

    def close(self, interrupted: bool = False) -> None:
        self.flush()

    @property
    def poses(self) -> np.ndarray:
        """(N, 4, 4) camera-to-world poses added so far (rotation re-orthonormalised)."""
        return np.stack([tum_to_pose(r) for r in self._rows]) if self._rows else np.empty((0, 4, 4))
