"""One global descriptor per frame, for finding revisits: (D,) float32, unit length.

Two sources:

* :func:`encoder_descriptor`: the network's own. CUT3R mean-pools its image
  encoder tokens to query the pose memory; the session keeps that vector
  (``FrameResult.extras["global_feat"]``, (enc_dim,), 1024 for the released
  checkpoints), so the descriptor costs nothing beyond normalising it.
* :func:`image_descriptor`: for runs without a network (``--oracle-drift``):
  scikit-image's HOG (gradient-orientation histograms, Dalal and Triggs 2005)
  of a small grey thumbnail, next to the image's coarse colour layout.
  Needs scikit-image (``pip install 'ttt3r[loops]'``).

Descriptors of one run are compared by cosine similarity (the dot product of
unit vectors); :mod:`ttt3r.loops.retrieval` centres them on the run's mean
first, which removes what every frame shares.
"""

from __future__ import annotations

import numpy as np

from ..errors import TTT3RError

__all__ = ["CELL", "MIN_SIMILARITY", "THUMB_HW", "encoder_descriptor", "image_descriptor", "normalize"]

#: default cosine (of centred descriptors) a loop candidate needs, per descriptor kind: the two
#: spread differently. Image descriptors: at 2,000 frames the best pair 200+ frames apart on the
#: never-revisiting synth ``forward`` corridor has 0.35, and 0.6 finds 98% of the revisiting chunk
#: pairs of ``loop`` (benchmarks/loop_closure.py); the network's pooled tokens: 0.8.
MIN_SIMILARITY = {"encoder": 0.8, "image": 0.6}

#: (height, width) of the thumbnail the image descriptor is computed on, and its HOG cell (pixels)
THUMB_HW = (24, 32)
CELL = 4


def normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (..., D) scaled to unit length (a zero row stays zero), float32."""
    x = np.asarray(x)
    x = x if x.dtype == np.float32 else x.astype(np.float64)  # float32 stays float32 (retrieval's (N, D))
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, eps)).astype(np.float32, copy=False)


def encoder_descriptor(global_feat: np.ndarray) -> np.ndarray:
    """(D,) unit descriptor from the network's mean encoder token.

    Args:
        global_feat: (enc_dim,) ``FrameResult.extras["global_feat"]``, or
            (N, enc_dim) encoder tokens (mean-pooled here).
    """
    f = np.asarray(global_feat, np.float64)
    if f.ndim == 2:
        f = f.mean(axis=0)
    if f.ndim != 1 or not np.all(np.isfinite(f)):
        raise ValueError(f"global_feat must be a finite (enc_dim,) or (N, enc_dim) array, got shape {f.shape}")
    return normalize(f)


def image_descriptor(rgb: np.ndarray, thumb_hw: tuple[int, int] = THUMB_HW, cell: int = CELL,
                     colour_hw: tuple[int, int] = (4, 4)) -> np.ndarray:
    """(D,) unit descriptor of an image from its pixels alone.

    The image is shrunk by area averaging (Pillow's box filter) to ``thumb_hw``;
    the descriptor is scikit-image's HOG of its grey levels (9 orientations,
    ``cell`` x ``cell`` pixel cells, 2 x 2 cell blocks, L2-Hys) joined with its
    mean colour on a ``colour_hw`` grid (box filter too; centred, weighted to a
    quarter of the HOG's length), then normalised.
    D = 9 * 4 * (h / cell - 1) * (w / cell - 1) + 3 * colour cells (1,308 by default:
    6 x 8 cells of 4 x 4 pixels on a 24 x 32 thumbnail).

    Args:
        rgb: (H, W, 3) uint8 (or float in [0, 1]) image.
    """
    try:
        from skimage.feature import hog
    except ImportError:
        raise TTT3RError("the image descriptor needs scikit-image: pip install scikit-image "
                         "(or pip install 'ttt3r[loops]')") from None
    from PIL import Image

    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"rgb must be an (H, W, 3) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(np.asarray(a, np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    im = Image.fromarray(a)
    small = np.asarray(im.resize(thumb_hw[::-1], Image.Resampling.BOX), np.float32) / 255.0
    grey = small @ np.array([0.299, 0.587, 0.114], np.float32)
    h = hog(grey, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), block_norm="L2-Hys",
            feature_vector=True)
    colour = np.asarray(im.resize(colour_hw[::-1], Image.Resampling.BOX), np.float64).ravel() / 255.0
    colour = colour - colour.mean()
    colour *= 0.25 * np.linalg.norm(h) / max(float(np.linalg.norm(colour)), 1e-12)
    return normalize(np.concatenate([h, colour]))
