"""Frames written as image files at their source size (or the network's), for COLMAP and nerfstudio.

A frame with a :class:`~ttt3r.results.SourceRef` is written at the size of its
source: an image file is read again at once (EXIF orientation applied, as the
network's input was), a video frame is decoded again at :meth:`SourceImages.close`,
in one pass per video, so that memory stays constant. A frame without one (fed
from memory) is written as the network saw it. Each written image comes with
its intrinsics and the map from network pixels to its pixels (both with pixel
centres at integers), from :func:`ttt3r.preprocess.network_to_source_affine`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TTT3RError
from ..io.atomic import atomic_write_bytes
from ..io.layout import png_bytes
from ..results import FrameResult, SourceRef

__all__ = ["RESOLUTIONS", "SourceImages", "WrittenImage", "read_source_image"]

#: The resolutions an image export can be written at.
RESOLUTIONS = ("source", "network")


def read_source_image(ref: SourceRef) -> np.ndarray:
    """The (H0, W0, 3) uint8 source image of an image-file :class:`SourceRef` (EXIF orientation applied)."""
    from ..io.frames import load_image

    img = load_image(ref.path)
    if img.shape[:2] != tuple(ref.hw):
        raise TTT3RError(f"{ref.path}: image is now {img.shape[1]}x{img.shape[0]}, was {ref.hw[1]}x{ref.hw[0]} "
                         f"when reconstructed")
    return img


@dataclass(frozen=True)
class WrittenImage:
    """One written image.

    Attributes:
        name: file name inside the folder (``000123.png``).
        hw: (H, W) of the written image.
        K: (3, 3) intrinsics in its pixels (centres at integers).
        affine: ``(ax, bx, ay, by)``: network pixel ``(u, v)`` is written pixel
            ``(ax * u + bx, ay * v + by)``.
    """

    name: str
    hw: tuple[int, int]
    K: np.ndarray
    affine: tuple[float, float, float, float]

    def from_network(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) network pixels -> (N, 2) pixels of the written image."""
        ax, bx, ay, by = self.affine
        uv = np.asarray(uv, np.float64)
        return np.stack([ax * uv[:, 0] + bx, ay * uv[:, 1] + by], axis=1)

    def network_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) network coordinates ``(u, v)`` of every pixel centre of the written image."""
        ax, bx, ay, by = self.affine
        v0, u0 = np.mgrid[0:self.hw[0], 0:self.hw[1]].astype(np.float64)
        return (u0 - bx) / ax, (v0 - by) / ay


class SourceImages:
    """Writes ``folder/%06d.png`` for each added frame (see module doc).

    Args:
        folder: where the images go.
        resolution: ``"source"`` or ``"network"`` (``"network"``: always the network's pixels).
        option: the option's name for error messages.
    """

    def __init__(self, folder: str | os.PathLike, resolution: str = "source", option: str = "resolution") -> None:
        if resolution not in RESOLUTIONS:
            raise TTT3RError(f"{option}: must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
        self.folder = Path(folder)
        self.resolution = resolution
        self._video: dict[str, dict[int, str]] = {}  # video path -> {decoded frame number: image name}

    def add(self, frame: FrameResult) -> WrittenImage:
        """Write (or schedule, for a video) the frame's image; its name, size and intrinsics."""
        name = f"{frame.index:06d}.png"
        K = np.asarray(frame.intrinsics, np.float64)
        ref = frame.source if self.resolution == "source" else None
        if ref is None:
            atomic_write_bytes(self.folder / name, png_bytes(frame.rgb))
            return WrittenImage(name, frame.hw, K, (1.0, 0.0, 1.0, 0.0))
        from ..preprocess import network_to_source_affine, network_to_source_intrinsics

        h, w = ref.hw
        if ref.video_frame is None:
            atomic_write_bytes(self.folder / name, png_bytes(read_source_image(ref)))
        else:
            self._video.setdefault(ref.path, {})[int(ref.video_frame)] = name
        return WrittenImage(name, (int(h), int(w)), network_to_source_intrinsics(K, w, h, size=ref.size),
                            network_to_source_affine(w, h, size=ref.size))

    def close(self) -> None:
        """Write the scheduled video frames: one decoding pass per video."""
        from ..io.frames import open_frames

        for path, wanted in self._video.items():
            left = dict(wanted)
            for fr in open_frames(path, skip_bad=True):
                name = left.pop(fr.source_index, None)
                if name is not None:
                    atomic_write_bytes(self.folder / name, png_bytes(fr.image))
                if not left:
                    break
            if left:
                raise TTT3RError(f"{path}: could not decode frame {min(left)} again for {self.folder.name}/")
        self._video.clear()
