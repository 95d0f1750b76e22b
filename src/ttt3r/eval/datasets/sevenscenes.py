"""7-Scenes (test split) 3D reconstruction, in the layout prepared by Spann3R / CUT3R.

Layout under ``root``::

    <scene>/TestSplit.txt                       lines "sequenceK" -> folder seq-0K
    <scene>/seq-0K/frame-000000.color.png ...   colour frames
    <scene>/seq-0K/frame-000000.depth.proj.png  16-bit depth registered to the colour
                                                camera, millimetres; 65535 = missing
    <scene>/seq-0K/frame-000000.pose.txt        4x4 camera-to-world, metres

Every ``kf_every``-th frame is used (2 in the paper), at most ``max_frames``.
Depths beyond 10 m are treated as missing. Intrinsics: fx = fy = 525,
(cx, cy) = (320, 240) for the 640x480 frames.
"""

from __future__ import annotations


import numpy as np

from ...errors import TTT3RError
from .base import KeyframeReconLoader, Sequence, pinhole, read_png_depth

SEVENSCENES_INTRINSICS = (525.0, 525.0, 320.0, 240.0)


def _read_7scenes_depth(path) -> np.ndarray:
    return read_png_depth(path, 1000.0, max_valid=10.0, invalid_raw=65535)


def _read_pose(path) -> np.ndarray:
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except FileNotFoundError:
        raise TTT3RError(f"{path}: pose file not found") from None
    except ValueError as e:
        raise TTT3RError(f"{path}: not a 4x4 pose matrix ({e})") from None
    if m.shape != (4, 4):
        raise TTT3RError(f"{path}: expected a 4x4 pose matrix, got shape {m.shape}")
    return m


class SevenScenes(KeyframeReconLoader):
    """7-Scenes test sequences for reconstruction (see the module docstring)."""

    name = "7scenes"

    def sequence_names(self) -> list[str]:
        names = []
        for scene in self._subdirs(self.root):
            split = self._file(self.root / scene / "TestSplit.txt", f"test split of scene {scene}")
            for line in split.read_text().split():
                digits = "".join(c for c in line if c.isdigit())
                if digits:
                    names.append(f"{scene}/seq-{int(digits):02d}")
        return names

    def load(self, name: str) -> Sequence:
        seq_dir = self._dir(self.root / name, "sequence folder")
        n = sum(1 for p in seq_dir.iterdir() if p.name.endswith(".color.png"))
        if n == 0:
            raise TTT3RError(f"{self.name}: no frame-*.color.png images in {seq_dir}")
        ids = list(range(n))[:: self.kf_every][: self.max_frames]
        stems = [seq_dir / f"frame-{i:06d}" for i in ids]
        images = [self._file(s.with_name(s.name + ".color.png"), "colour frame") for s in stems]
        depths = [self._file(s.with_name(s.name + ".depth.proj.png"), "registered depth") for s in stems]
        poses = np.stack([_read_pose(self._file(s.with_name(s.name + ".pose.txt"), "pose file")) for s in stems])
        return self._sequence(
            name,
            images,
            poses=poses,
            timestamps=np.array(ids, dtype=np.float64),
            depth_paths=depths,
            depth_reader=_read_7scenes_depth,
            intrinsics=pinhole(*SEVENSCENES_INTRINSICS, len(images)),
        )
