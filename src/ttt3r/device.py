"""Where and in what precision the network runs: the one reader of ``device`` and ``dtype`` settings.

Used by :func:`ttt3r.load_model` (and so by ``reconstruct`` and ``eval``), by the
training loop and by the benchmark, so a name means the same everywhere.
"""

from __future__ import annotations

from typing import Literal

import torch

from .errors import TTT3RError

DTypeName = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
           "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for a name: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
    ``"cuda"``, ``"cuda:N"``, or a :class:`torch.device` (checked the same way).

    Raises :class:`TTT3RError` for an unknown name, a device type other than CPU and
    CUDA (``mps``, ``meta``, ...: the network is not tested there), a CUDA device
    without CUDA, or a CUDA index this machine does not have.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise TTT3RError(f"unknown device {str(device)!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise TTT3RError(f"device {str(device)!r} is not supported (ttt3r runs on auto, cpu, cuda or cuda:N)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TTT3RError(f"device {str(device)!r} was asked for but CUDA is not available (use cpu or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TTT3RError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def resolve_dtype(dtype: str | torch.dtype = "fp32") -> torch.dtype:
    """The torch dtype for ``"fp32"``, ``"bf16"``, ``"fp16"`` (or their long names, or a torch dtype)."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise TTT3RError(f"unsupported dtype {dtype} (use fp32, bf16 or fp16)")
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise TTT3RError(f"unknown dtype {dtype!r} (use fp32, bf16 or fp16)") from None


def dtype_name(dtype: str | torch.dtype) -> str:
    """The short name (``"fp32"``, ``"bf16"``, ``"fp16"``) of a dtype, as the command line spells it."""
    t = resolve_dtype(dtype)
    return next(k for k, v in _DTYPES.items() if v == t and len(k) == 4)
