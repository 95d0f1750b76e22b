"""MPI Sintel (training split): camera pose and video depth.

Layout under ``root`` (the official archives unpacked side by side)::

    training/final/<seq>/frame_0001.png ...        input frames (the "final" pass)
    training/camdata_left/<seq>/frame_0001.cam ... intrinsics + world-to-camera extrinsics
    training/depth/<seq>/frame_0001.dpt ...        depth in metres (float32)

``.cam``: float32 tag 202021.25, then the 3x3 intrinsics and the 3x4
world-to-camera matrix as float64 row-major. ``.dpt``: float32 tag 202021.25,
int32 width, int32 height, then width*height float32 depths. Both little-endian.

The paper evaluates the 14 sequences of :data:`SINTEL_SEQUENCES` (pass
``full=True`` for every folder of ``training/final``); poses are the inverted
extrinsics, timestamps the frame numbers; depth is capped and clipped at 70 m.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import TTT3RError
from .base import DatasetLoader, Sequence, frame_numbers

TAG_FLOAT = 202021.25

SINTEL_SEQUENCES: tuple[str, ...] = (
    "alley_2", "ambush_4", "ambush_5", "ambush_6", "cave_2", "cave_4", "market_2",
    "market_5", "market_6", "shaman_3", "sleeping_1", "sleeping_2", "temple_2", "temple_3",
)  # fmt: skip


def _read_tagged(path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise TTT3RError(f"{path}: file not found") from None
    if len(data) < 4 or np.frombuffer(data[:4], "<f4")[0] != np.float32(TAG_FLOAT):
        raise TTT3RError(f"{path}: not a Sintel file (wrong tag)")
    return data


def read_sintel_cam(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a Sintel ``.cam``: (3, 3) intrinsics and (3, 4) world-to-camera extrinsics, float64."""
    data = _read_tagged(Path(path))
    if len(data) < 4 + 21 * 8:
        raise TTT3RError(f"{path}: truncated Sintel camera file ({len(data)} bytes)")
    vals = np.frombuffer(data[4 : 4 + 21 * 8], "<f8")
    return vals[:9].reshape(3, 3).copy(), vals[9:].reshape(3, 4).copy()


def write_sintel_cam(path: str | os.PathLike, K: np.ndarray, world_to_cam: np.ndarray) -> None:
    """Write a Sintel ``.cam`` file (used to make test fixtures)."""
    payload = np.float32(TAG_FLOAT).tobytes() + np.concatenate(
        [np.asarray(K, "<f8").reshape(-1), np.asarray(world_to_cam, "<f8")[:3].reshape(-1)]
    ).astype("<f8").tobytes()
    Path(path).write_bytes(payload)


def read_sintel_depth(path: str | os.PathLike) -> np.ndarray:
    """Read a Sintel ``.dpt`` depth map as (H, W) float32 metres."""
    data = _read_tagged(Path(path))
    if len(data) < 12:
        raise TTT3RError(f"{path}: truncated Sintel depth file")
    w, h = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    if w <= 0 or h <= 0 or w * h > 100_000_000:
        raise TTT3RError(f"{path}: invalid depth size {w}x{h}")
    if len(data) != 12 + 4 * w * h:
        raise TTT3RError(f"{path}: expected {w}x{h} depths, file has {len(data)} bytes")
    return np.frombuffer(data[12:], "<f4").reshape(h, w).copy()


def write_sintel_depth(path: str | os.PathLike, depth: np.ndarray) -> None:
    """Write a (H, W) depth map as a Sintel ``.dpt`` file (used to make test fixtures)."""
    d = np.asarray(depth, "<f4")
    h, w = d.shape
    Path(path).write_bytes(np.float32(TAG_FLOAT).tobytes() + np.array([w, h], "<i4").tobytes() + d.tobytes())


class Sintel(DatasetLoader):
    """Sintel camera pose and video depth (see the module docstring for the layout)."""

    name = "sintel"
    tasks = ("pose", "depth")
    max_depth = 70.0
    depth_clip_max = 70.0

    def __init__(self, root: str | os.PathLike, full: bool = False) -> None:
        super().__init__(root)
        self.full = full
        self.images_root = self._dir(self.root / "training" / "final", "Sintel final-pass images")

    def sequence_names(self) -> list[str]:
        return self._subdirs(self.images_root) if self.full else list(SINTEL_SEQUENCES)

    def load(self, name: str) -> Sequence:
        images = self._images(self.images_root / name, f"images of sequence {name}")
        cam_dir = self._dir(self.root / "training" / "camdata_left" / name, f"cameras of sequence {name}")
        depth_dir = self.root / "training" / "depth" / name
        stems = [p.stem for p in images]
        cams = [read_sintel_cam(self._file(cam_dir / f"{s}.cam", "camera file")) for s in stems]
        K = np.stack([c[0] for c in cams])
        w2c = np.tile(np.eye(4), (len(cams), 1, 1))
        w2c[:, :3, :] = np.stack([c[1] for c in cams])
        poses = np.linalg.inv(w2c)
        stamps = frame_numbers(stems)
        depths = None
        if depth_dir.is_dir():
            depths = [self._file(depth_dir / f"{s}.dpt", "depth file") for s in stems]
        return self._sequence(
            name,
            images,
            poses=poses,
            timestamps=stamps,
            depth_paths=depths,
            depth_reader=read_sintel_depth if depths else None,
            intrinsics=K,
        )
