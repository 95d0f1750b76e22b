"""Reading a rendered synthetic sequence back (lazy, per frame)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TTT3RError
from ..geometry import transform_points, unproject
from ..io.layout import load_camera
from ..io.trajectory import read_tum
from .render import SYNTH_LAYOUT


@dataclass(frozen=True)
class SynthFrame:
    """One ground-truth frame.

    Attributes:
        index: 0-based frame index.
        rgb: (H, W, 3) uint8 image.
        depth: (H, W) float32 metres along the optical axis (0 = no geometry).
        pose: (4, 4) float64 camera-to-world, OpenCV axes, world z up (metres).
        intrinsics: (3, 3) float64 pinhole matrix in pixels.
    """

    index: int
    rgb: np.ndarray
    depth: np.ndarray
    pose: np.ndarray
    intrinsics: np.ndarray

    def points_cam(self) -> np.ndarray:
        """(H, W, 3) float32 pointmap in this camera's frame (OpenCV axes, metres)."""
        return unproject(self.depth, self.intrinsics).astype(np.float32)

    def points_world(self) -> np.ndarray:
        """(H, W, 3) float32 world points of every pixel (``pose`` applied to :meth:`points_cam`)."""
        return transform_points(self.pose, unproject(self.depth, self.intrinsics)).astype(np.float32)


@dataclass(frozen=True)
class SynthSequence:
    """A rendered sequence on disk; frames are read only when asked for.

    Attributes:
        root: the sequence folder.
        meta: the parsed ``meta.json``.
        timestamps: (N,) float64 seconds (``index / fps``) from ``trajectory.txt``.
        poses: (N, 4, 4) float64 camera-to-world ground truth from ``trajectory.txt``.
    """

    root: Path
    meta: dict
    timestamps: np.ndarray
    poses: np.ndarray

    def __len__(self) -> int:
        return int(self.poses.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.meta["width"]), int(self.meta["height"])

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) float64 pinhole matrix shared by all frames (pixels)."""
        return np.asarray(self.meta["intrinsics"], dtype=np.float64)

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    def poses_from_first(self) -> np.ndarray:
        """(N, 4, 4) ground truth re-expressed in frame 0's camera frame (as reconstructions are)."""
        return np.linalg.inv(self.poses[0]) @ self.poses

    def rgb(self, i: int) -> np.ndarray:
        """(H, W, 3) uint8 image of frame ``i``."""
        from PIL import Image

        path = SYNTH_LAYOUT.paths(self.root, self._index(i))["color"]
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise TTT3RError(f"{path}: cannot read image ({e})") from None

    def depth(self, i: int) -> np.ndarray:
        """(H, W) float32 depth of frame ``i`` in metres (0 = no geometry)."""
        path = SYNTH_LAYOUT.paths(self.root, self._index(i))["depth"]
        try:
            d = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise TTT3RError(f"{path}: cannot read depth ({e})") from None
        if d.shape != (self.size[1], self.size[0]):
            raise TTT3RError(f"{path}: depth has shape {d.shape}, expected {(self.size[1], self.size[0])}")
        return d.astype(np.float32, copy=False)

    def camera(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(pose (4, 4), intrinsics (3, 3)) of frame ``i``, float64, exact."""
        return load_camera(SYNTH_LAYOUT.paths(self.root, self._index(i))["camera"])

    def frame(self, i: int) -> SynthFrame:
        pose, K = self.camera(i)
        return SynthFrame(self._index(i), self.rgb(i), self.depth(i), pose, K)

    def __getitem__(self, i: int) -> SynthFrame:
        return self.frame(i)

    def __iter__(self) -> Iterator[SynthFrame]:
        for i in range(len(self)):
            yield self.frame(i)

    def _index(self, i: int) -> int:
        n = len(self)
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"frame {i} out of range for {n} frames in {self.root}")
        return j


def load_sequence(path: str | os.PathLike, allow_incomplete: bool = False) -> SynthSequence:
    """Open a folder written by :func:`ttt3r.synth.render_sequence`.

    Reads ``meta.json`` and ``trajectory.txt`` now, frames lazily. An unfinished
    render raises :class:`TTT3RError` unless ``allow_incomplete``.
    """
    root = Path(path)
    meta_path = root / "meta.json"
    if not root.is_dir():
        raise TTT3RError(f"{root}: not a folder")
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict) or meta.get("generator") != "ttt3r.synth":
            raise ValueError("not a ttt3r synth meta.json")
    except FileNotFoundError:
        raise TTT3RError(f"{meta_path}: missing; not a ttt3r synth sequence") from None
    except (OSError, ValueError) as e:
        raise TTT3RError(f"{meta_path}: unreadable ({e})") from None
    if not meta.get("complete") and not allow_incomplete:
        raise TTT3RError(f"{root}: render is incomplete; run the same 'ttt3r synth' command again to finish it")
    traj_path = root / "trajectory.txt"
    traj = read_tum(traj_path)  # errors name the file and line
    if len(traj) != int(meta.get("frames", -1)):
        raise TTT3RError(f"{traj_path}: {len(traj)} poses but meta.json says {meta.get('frames')} frames")
    return SynthSequence(root, meta, traj.timestamps, traj.poses)
