"""Image preprocessing, exactly as the original CUT3R demo and evaluation do it.

* size 512: resize so the long side is 512 (Lanczos when shrinking, bicubic when
  enlarging), then crop around ``(W//2, H//2)`` to half-sizes rounded down to
  multiples of 8 (so both sides are multiples of 16); a square image gets a 4:3
  crop instead. A 1920x1080 video becomes 512x288.
* size 224: resize so the *short* side is about 224 (long side
  ``round(224 * long / short)``), then a centre square crop of half-size
  ``min(W//2, H//2)``.
* pixels to float32 in [-1, 1]: ``(x / 255 - 0.5) / 0.5``.

EXIF orientation is applied when reading from files (see :mod:`ttt3r.io.frames`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .errors import InputError

ImageLike = "str | os.PathLike | Image.Image | np.ndarray"


@dataclass
class Preprocessed:
    """A frame ready for the network.

    Attributes:
        tensor: (1, 3, H, W) float32 in [-1, 1] (None for a ray-map-only frame).
        rgb: (H, W, 3) uint8, the same pixels (what the network saw).
        source_hw: (H0, W0) size of the input before resizing and cropping.
    """

    tensor: torch.Tensor | None
    rgb: np.ndarray
    source_hw: tuple[int, int]


def crop_geometry(w0: int, h0: int, size: int = 512, square_ok: bool = False
                  ) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Where :func:`resize_and_crop` puts a ``w0`` x ``h0`` image.

    Returns:
        ``(w1, h1)``, the size after resizing, and the crop box ``(left, top, right,
        bottom)`` in resized pixels (the output is ``right - left`` x ``bottom - top``).
    """
    long_edge = round(size * max(w0 / h0, h0 / w0)) if size == 224 else size
    s = max(w0, h0)
    w1, h1 = (int(round(x * long_edge / s)) for x in (w0, h0))
    cx, cy = w1 // 2, h1 // 2
    if size == 224:
        half = min(cx, cy)
        box = (cx - half, cy - half, cx + half, cy + half)
    else:
        halfw, halfh = ((2 * cx) // 16) * 8, ((2 * cy) // 16) * 8
        if not square_ok and w1 == h1:
            halfh = 3 * halfw / 4
        box = (cx - halfw, cy - halfh, cx + halfw, cy + halfh)
    return (w1, h1), tuple(int(round(v)) for v in box)  # PIL rounds float boxes the same way


def network_to_source_affine(w0: int, h0: int, size: int = 512, square_ok: bool = False
                             ) -> tuple[float, float, float, float]:
    """How network pixels map back to the pixels of the ``w0`` x ``h0`` source image.

    The inverse of :func:`crop_geometry`'s resize and crop, with pixel centres at
    integers on both sides: the resize scales pixel *edges* (``u1 + 0.5 =
    (u0 + 0.5) * w1 / w0``) and the crop shifts by ``left``, so a network pixel
    ``u`` is the source pixel ``u0 = (u + left + 0.5) * w0 / w1 - 0.5`` (and
    likewise for ``v`` with ``top`` and ``h0 / h1``).

    Returns:
        ``(ax, bx, ay, by)``: ``u0 = ax * u + bx``, ``v0 = ay * v + by``.
    """
    (w1, h1), (left, top, _, _) = crop_geometry(w0, h0, size=size, square_ok=square_ok)
    ax, ay = w0 / w1, h0 / h1
    return ax, (left + 0.5) * ax - 0.5, ay, (top + 0.5) * ay - 0.5


def network_to_source_intrinsics(K: np.ndarray, w0: int, h0: int, size: int = 512,
                                 square_ok: bool = False) -> np.ndarray:
    """(3, 3) pinhole matrix in network pixels -> the same camera in pixels of the ``w0`` x ``h0`` source.

    ``fx0 = ax * fx``, ``cx0 = ax * cx + bx`` (and ``y`` alike) with
    :func:`network_to_source_affine`; a point projecting to network pixel ``u``
    projects to source pixel ``ax * u + bx``.
    """
    ax, bx, ay, by = network_to_source_affine(w0, h0, size=size, square_ok=square_ok)
    A = np.array([[ax, 0.0, bx], [0.0, ay, by], [0.0, 0.0, 1.0]])
    return A @ np.asarray(K, np.float64)


def resize_and_crop(img: Image.Image, size: int = 512, square_ok: bool = False) -> Image.Image:
    """The original's resize + centre crop for ``size`` 512 (or any multiple of 16) or 224."""
    (w1, h1), box = crop_geometry(*img.size, size=size, square_ok=square_ok)
    interp = Image.LANCZOS if max(img.size) > max(w1, h1) else Image.BICUBIC
    return img.resize((w1, h1), interp).crop(box)


def to_pil(image: str | os.PathLike | Image.Image | np.ndarray) -> Image.Image:
    """Any supported image input as an RGB PIL image (EXIF orientation applied to files).

    Files are read by :func:`ttt3r.io.frames.load_image` and PIL images converted by
    :func:`ttt3r.io.frames.pil_to_rgb8` (grayscale, 16-bit, alpha: see that module).
    """
    from .io.frames import load_image, pil_to_rgb8

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else Image.fromarray(pil_to_rgb8(image))
    if isinstance(image, np.ndarray):
        return Image.fromarray(_array_to_rgb8(image))
    if isinstance(image, (str, os.PathLike)):
        return Image.fromarray(load_image(image))
    raise InputError(f"unsupported image input of type {type(image).__name__}")


def _array_to_rgb8(a: np.ndarray) -> np.ndarray:
    """HxW, HxWx1/3/4 arrays of uint8, uint16 or floats in [0, 1] -> HxWx3 uint8."""
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise InputError(f"image array must be HxW or HxWx{{1,3,4}}, got shape {a.shape}")
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.uint16:
        return (a.astype(np.float64) / 257.0).round().astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        return (np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    raise InputError(f"unsupported image array dtype {a.dtype}")


def normalize(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [-1, 1]."""
    t = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float() / 255.0
    return ((t - 0.5) / 0.5)[None]


def preprocess(image: str | os.PathLike | Image.Image | np.ndarray, size: int = 512,
               name: str | None = None) -> Preprocessed:
    """Resize, crop and normalise one image for a network trained at ``size`` (512 or 224)."""
    if size != 224 and (size % 16 or size < 32):
        raise InputError(f"size must be 224 or a multiple of 16 >= 32, got {size}")
    pil = to_pil(image)
    w0, h0 = pil.size
    label = name or (str(image) if isinstance(image, (str, os.PathLike)) else "image")
    if min(w0, h0) < 16:
        raise InputError(f"{label}: image is {w0}x{h0}, smaller than one 16x16 patch")
    out = resize_and_crop(pil, size)
    if out.size[0] < 16 or out.size[1] < 16:
        raise InputError(f"{label}: image {w0}x{h0} is too elongated: crops to {out.size[0]}x{out.size[1]}")
    rgb = np.asarray(out, dtype=np.uint8)
    return Preprocessed(normalize(rgb), rgb, (h0, w0))
