"""The few functions most users need: load a network, reconstruct a sequence."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import torch

from .errors import TTT3RError
from .model.cut3r import CUT3R
from .results import FrameResult

DTypeName = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
           "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA request without CUDA is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TTT3RError("--device cuda was asked for but CUDA is not available (use --device cpu or auto)")
    return dev


def resolve_dtype(dtype: str | torch.dtype = "fp32") -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise TTT3RError(f"unknown dtype {dtype!r}; use fp32, bf16 or fp16") from None


def load_model(weights: str | os.PathLike, device: str | torch.device = "auto",
               dtype: str | torch.dtype = "fp32", quiet: bool = False) -> CUT3R:
    """Load a network from a checkpoint path (released ``.pth`` or converted folder) or a
    known name (``cut3r_512_dpt_4_64``, ``cut3r_224_linear_4``; downloaded on first use).

    Returns the network in eval mode on ``device`` in ``dtype``.
    """
    from .hub import resolve_weights
    from .weights import load_weights_file

    path = Path(weights) if Path(weights).exists() else resolve_weights(str(weights), quiet=quiet)
    return load_weights_file(path, device=resolve_device(device), dtype=resolve_dtype(dtype))


def reconstruct(frames: Iterable, model: CUT3R, update: str = "ttt3r", reset_every: int = 0,
                size: int | None = None, want: Iterable[str] = ()) -> Iterator[FrameResult]:
    """Stream :class:`FrameResult` objects for ``frames`` (paths, PIL images or arrays)."""
    from .session import Session

    yield from Session(model, update=update, reset_every=reset_every, size=size, want=want).run(frames)
