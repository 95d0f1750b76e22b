"""Load a network: a checkpoint path or a known name to a :class:`CUT3R` on a device."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .device import resolve_device, resolve_dtype
from .model.cut3r import CUT3R


def load_model(weights: str | os.PathLike, device: str | torch.device = "auto",
               dtype: str | torch.dtype = "fp32", quiet: bool = False) -> CUT3R:
    """Load a network from a checkpoint path (released ``.pth`` or converted folder) or a
    known name (``cut3r_512_dpt_4_64``, ``cut3r_224_linear_4``; downloaded on first use).

    Returns the network in eval mode on ``device`` in ``dtype``.
    """
    from .hub import resolve_weights
    from .weights import load_weights_file

    dev, dt = resolve_device(device), resolve_dtype(dtype)  # a bad setting fails before any download
    path = Path(weights) if Path(weights).exists() else resolve_weights(str(weights), quiet=quiet)
    return load_weights_file(path, device=dev, dtype=dt)

