"""Helpers shared by tests: the checked-in parity data, checkpoints in the released layout, file modes.

Tests import it by name (``from helpers import ...``); ``tests/`` is on the import path
because ``conftest.py`` lives there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"
PARITY = DATA / "parity"


def normal_file_mode() -> int:
    """The permissions of a file created with open(): 0666 minus the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def parity_meta(preset: str) -> dict:
    return json.loads((PARITY / preset / "meta.json").read_text())


def parity_schema(preset: str) -> dict:
    return json.loads((PARITY / preset / "schema.json").read_text())


def formula_model(cfg, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, salt: str = ""):
    """A network of ``cfg`` filled with formula weights (the whole fp32 state dict at
    once, then cast), in eval mode: the reference for :func:`ttt3r.bench.build_formula_model`."""
    from ttt3r.formula import formula_state_dict
    from ttt3r.weights import build_model

    model = build_model(cfg, "meta")
    schema = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    model.load_state_dict(formula_state_dict(schema, salt), strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def save_released_layout(path: Path, constructor: str, state_dict: dict, **extra) -> Path:
    """Write a checkpoint exactly as the released files are laid out (omegaconf args)."""
    from omegaconf import OmegaConf

    torch.save({"args": OmegaConf.create({"model": constructor}), "model": state_dict, "epoch": 0, **extra}, path)
    return path
