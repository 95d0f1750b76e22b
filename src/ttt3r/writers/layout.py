"""The original CUT3R demo's output layout, so scripts written for it keep working.

::

    depth/000000.npy    (H, W) float32 depth along the camera z axis
    conf/000000.npy     (H, W) float32 confidence (>= 1)
    color/000000.png    (H, W, 3) the preprocessed RGB image the network saw
    camera/000000.npz   pose: (4, 4) float64 camera-to-world (OpenCV axes),
                        intrinsics: (3, 3) float64 pinhole matrix in pixels of color/

Numbers are ``FrameResult.index`` (``%06d``). Every file is written atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..io.atomic import atomic_open, atomic_write_bytes
from ..results import FrameResult

__all__ = ["DemoLayoutWriter", "demo_paths", "png_bytes", "read_demo_frame", "write_demo_frame"]


def demo_paths(out_dir: str | os.PathLike, index: int) -> dict[str, Path]:
    """The four files of frame ``index``: keys ``depth``, ``conf``, ``color``, ``camera``."""
    d = Path(out_dir)
    return {
        "depth": d / "depth" / f"{index:06d}.npy",
        "conf": d / "conf" / f"{index:06d}.npy",
        "color": d / "color" / f"{index:06d}.png",
        "camera": d / "camera" / f"{index:06d}.npz",
    }


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 image as PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_demo_frame(out_dir: str | os.PathLike, frame: FrameResult) -> dict[str, Path]:
    """Write one frame in the demo layout (atomically, file by file); returns the paths."""
    p = demo_paths(out_dir, frame.index)
    with atomic_open(p["depth"]) as f:
        np.save(f, np.ascontiguousarray(frame.depth, dtype=np.float32))
    with atomic_open(p["conf"]) as f:
        np.save(f, np.ascontiguousarray(frame.conf, dtype=np.float32))
    atomic_write_bytes(p["color"], png_bytes(frame.rgb))
    with atomic_open(p["camera"]) as f:
        np.savez(f, pose=np.asarray(frame.pose, np.float64), intrinsics=np.asarray(frame.intrinsics, np.float64))
    return p


def read_demo_frame(out_dir: str | os.PathLike, index: int) -> dict[str, np.ndarray]:
    """Read frame ``index`` back: ``depth``, ``conf``, ``color`` (uint8 RGB), ``pose``, ``intrinsics``."""
    p = demo_paths(out_dir, index)
    with np.load(p["camera"]) as cam:
        pose, K = cam["pose"], cam["intrinsics"]
    with Image.open(p["color"]) as im:
        color = np.asarray(im.convert("RGB"))
    return {"depth": np.load(p["depth"]), "conf": np.load(p["conf"]), "color": color, "pose": pose,
            "intrinsics": K}


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
