"""Shared fixtures: formula-weight checkpoints in the released layout, markers, options."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
PARITY = DATA / "parity"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption("--device", default="cpu", help="device for the parity tests (cpu or cuda; default cpu)")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def device(pytestconfig) -> str:
    """``--device``; on CUDA, float32 stays float32 (no TF32 matrix products or convolutions)."""
    dev = pytestconfig.getoption("--device")
    if torch.device(dev).type == "cuda":
        if not torch.cuda.is_available():
            pytest.exit(f"--device {dev}: CUDA is not available", returncode=4)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return dev


def normal_file_mode() -> int:
    """The permissions of a file created with open(): 0666 minus the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def parity_meta(preset: str) -> dict:
    return json.loads((PARITY / preset / "meta.json").read_text())


def parity_schema(preset: str) -> dict:
    return json.loads((PARITY / preset / "schema.json").read_text())


def save_released_layout(path: Path, constructor: str, state_dict: dict, **extra) -> Path:
    """Write a checkpoint exactly as the released files are laid out (omegaconf args)."""
    from omegaconf import OmegaConf

    torch.save({"args": OmegaConf.create({"model": constructor}), "model": state_dict, "epoch": 0, **extra}, path)
    return path


@pytest.fixture(scope="session")
def released_ckpt(tmp_path_factory):
    """Factory: preset name -> path of a released-layout .pth with formula weights."""
    from ttt3r.formula import formula_state_dict

    cache: dict[str, Path] = {}

    def make(preset: str) -> Path:
        if preset not in cache:
            meta = parity_meta(preset)
            sd = formula_state_dict(parity_schema(preset), meta.get("salt", ""))
            p = tmp_path_factory.mktemp("ckpt") / f"{preset}.pth"
            cache[preset] = save_released_layout(p, meta["model"], sd)
        return cache[preset]

    return make
