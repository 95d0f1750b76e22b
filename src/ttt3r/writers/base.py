"""The streaming writer interface shared by every output."""

from __future__ import annotations

import warnings
from typing import Protocol, runtime_checkable

import numpy as np

from ..results import FrameResult

__all__ = ["Writer", "pose_is_valid", "warn_invalid_pose"]


def pose_is_valid(pose: np.ndarray) -> bool:
    """True when a (4, 4) pose is finite with a non-degenerate rotation block."""
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        return False
    return abs(float(np.linalg.det(pose[:3, :3]))) > 1e-6


def warn_invalid_pose(what: str, frame: FrameResult) -> None:
    """Warn (once per writer and frame) that a frame's pose is skipped."""
    warnings.warn(f"{what}: frame {frame.index} ({frame.name}) has a non-finite or degenerate pose; "
                  "left out", RuntimeWarning, stacklevel=3)


@runtime_checkable
class Writer(Protocol):
    """Receives frames one by one and finishes its files at :meth:`close`.

    ``add`` is called once per frame in index order; ``flush`` (periodically)
    brings files written in bulk up to date with the frames added so far;
    ``close(interrupted)`` writes the final files (also after an error, with
    ``interrupted=True``, so that finished frames are saved). Writers keep only
    small per-frame state (a pose, intrinsics), never images or point maps.
    """

    def add(self, frame: FrameResult) -> None: ...

    def flush(self) -> None: ...

    def close(self, interrupted: bool = False) -> None: ...
