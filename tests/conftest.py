"""Markers, options and fixtures: formula-weight checkpoints in the released layout.

Helpers that tests import by name live in ``helpers.py`` (tests never import this file).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import parity_meta, parity_schema, save_released_layout


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
