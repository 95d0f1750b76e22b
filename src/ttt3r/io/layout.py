"""Per-frame folder layouts: one file per frame and kind, the frame number zero-padded to six digits.

The reconstruction output (:data:`DEMO_LAYOUT`, the original CUT3R demo's, so
scripts written for it keep working)::

    DIR/depth/000000.npy    (H, W) float32 depth along the camera z axis
    DIR/conf/000000.npy     (H, W) float32 confidence (>= 1)
    DIR/color/000000.png    (H, W, 3) uint8 RGB
    DIR/camera/000000.npz   pose: (4, 4) float64 camera-to-world (OpenCV axes),
                            intrinsics: (3, 3) float64 pinhole matrix in pixels of color/
                            pose_pred: (4, 4) float64, only when pose is a given camera:
                            the network's own pose estimate, same world frame

The synthetic ground truth (``ttt3r.synth``) is the same layout with the image
folder named ``rgb/`` and no ``conf/``. Every file is written atomically; the
camera file is written last, so a frame whose camera file exists is complete.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TTT3RError
from .atomic import atomic_open, atomic_write_bytes, staged_open

__all__ = ["DEMO_LAYOUT", "FrameLayout", "load_camera", "png_bytes", "read_frame_files", "save_camera", "save_map"]

#: the kinds of file a frame may have, in the order they are written
KINDS = ("color", "depth", "conf", "camera")


def png_bytes(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode an (H, W, 3) uint8 image as PNG (zlib level ``compress_level``, 0-9)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _opened(path: str | os.PathLike, staged: bool):
    """``atomic_open(path)``, or with ``staged`` :func:`ttt3r.io.atomic.staged_open` (no temporary
    file, no sync: for a staging folder synced and made visible as a whole by its caller)."""
    return staged_open(path) if staged else atomic_open(path)


def save_map(path: str | os.PathLike, arr: np.ndarray, staged: bool = False) -> None:
    """Write an (H, W) map (depth or confidence) as a float32 ``.npy``, atomically (``staged``:
    :func:`_opened`)."""
    with _opened(path, staged) as f:
        np.save(f, np.ascontiguousarray(arr, dtype=np.float32))


def save_camera(path: str | os.PathLike, pose: np.ndarray, K: np.ndarray, *, staged: bool = False,
                **extra: np.ndarray) -> None:
    """Write ``pose`` (4, 4) camera-to-world and ``intrinsics`` (3, 3) as float64 in an ``.npz``, atomically.

    ``extra``: more float64 arrays to store beside them, ``None`` ones left out
    (``pose_pred``: the network's pose beside a given one; loop closure keeps the
    pre-optimisation ``pose_raw`` and the ``depth_scale`` it applied). ``staged``: as
    :func:`save_map`.
    """
    arrays = {k: np.asarray(v, np.float64) for k, v in extra.items() if v is not None}
    with _opened(path, staged) as f:
        np.savez(f, pose=np.asarray(pose, np.float64), intrinsics=np.asarray(K, np.float64), **arrays)


def load_camera(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a camera file: ``(pose, K)``, (4, 4) camera-to-world and (3, 3) intrinsics, float64.

    Raises:
        TTT3RError: one line naming the file: missing, unreadable, no ``pose`` or
            ``intrinsics`` array, a pose that is not a finite 4x4 matrix, or
            intrinsics that are not a 3x3 pinhole matrix with fx, fy > 0.
    """
    path = Path(path)
    if not path.is_file():
        raise TTT3RError(f"{path}: missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            pose = np.asarray(z["pose"], dtype=np.float64)
            K = np.asarray(z["intrinsics"], dtype=np.float64)
    except KeyError as e:
        raise TTT3RError(f"{path}: no {e.args[0]!r} array (needs 'pose' and 'intrinsics')") from None
    except Exception as e:  # noqa: BLE001 - any read failure is a corrupt file
        why = " ".join(str(e).split())[:200]
        raise TTT3RError(f"{path}: cannot read .npz ({type(e).__name__}: {why})") from None
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise TTT3RError(f"{path}: 'pose' must be a finite 4x4 matrix, got shape {pose.shape}")
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise TTT3RError(f"{path}: 'intrinsics' must be a 3x3 pinhole matrix with fx, fy > 0")
    return pose, K


@dataclass(frozen=True)
class FrameLayout:
    """Folder names of a per-frame layout (``None``: the layout has no such kind).

    Attributes:
        color: folder of the ``%06d.png`` images.
        depth: folder of the ``%06d.npy`` depth maps.
        conf: folder of the ``%06d.npy`` confidence maps, or None.
        camera: folder of the ``%06d.npz`` cameras (``pose``, ``intrinsics``).
        png_level: zlib level of the written PNGs (pixels are the same at any level).
    """

    color: str = "color"
    depth: str = "depth"
    conf: str | None = "conf"
    camera: str = "camera"
    png_level: int = 1

    def paths(self, out_dir: str | os.PathLike, index: int) -> dict[str, Path]:
        """The files of frame ``index``, by kind (``color``, ``depth``, ``conf`` if any, ``camera``)."""
        d, name = Path(out_dir), f"{int(index):06d}"
        ext = {"color": ".png", "depth": ".npy", "conf": ".npy", "camera": ".npz"}
        folders = {k: getattr(self, k) for k in KINDS}
        return {k: d / f / f"{name}{ext[k]}" for k, f in folders.items() if f is not None}

    def write(
        self,
        out_dir: str | os.PathLike,
        index: int,
        rgb: np.ndarray,
        depth: np.ndarray,
        pose: np.ndarray,
        K: np.ndarray,
        conf: np.ndarray | None = None,
        pose_pred: np.ndarray | None = None,
    ) -> dict[str, Path]:
        """Write one frame, file by file (camera last); returns its paths.

        Args:
            rgb: (H, W, 3) uint8 image.
            depth: (H, W) depth along the camera z axis.
            pose: (4, 4) camera-to-world, OpenCV axes.
            K: (3, 3) intrinsics in pixels of the image.
            conf: (H, W) confidence; required when the layout has ``conf``, else ignored.
            pose_pred: (4, 4) the network's pose when ``pose`` is a given camera, or None.
        """
        p = self.paths(out_dir, index)
        if "conf" in p and conf is None:
            raise ValueError(f"conf is required by a layout with a {self.conf!r} folder")
        atomic_write_bytes(p["color"], png_bytes(rgb, self.png_level))
        save_map(p["depth"], depth)
        if "conf" in p:
            save_map(p["conf"], conf)
        save_camera(p["camera"], pose, K, pose_pred=pose_pred)
        return p


DEMO_LAYOUT = FrameLayout()


def read_frame_files(layout: FrameLayout, out_dir: str | os.PathLike, index: int) -> dict[str, np.ndarray]:
    """Read frame ``index`` back: ``color`` (uint8 RGB), ``depth``, ``conf`` (if the layout has it),
    ``pose`` and ``intrinsics`` (the camera checked by :func:`load_camera`; the maps are not checked)."""
    from PIL import Image

    p = layout.paths(out_dir, index)
    pose, K = load_camera(p["camera"])
    out = {"pose": pose, "intrinsics": K}
    with Image.open(p["color"]) as im:
        out["color"] = np.asarray(im.convert("RGB"))
    out["depth"] = np.load(p["depth"])
    if "conf" in p:
        out["conf"] = np.load(p["conf"])
    return out
