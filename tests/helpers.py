"""Helpers shared by tests: the checked-in parity data, checkpoints in the released layout, file modes.

Tests import it by name (``from helpers import ...``); ``tests/`` is on the import path
because ``conftest.py`` lives there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
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


# ---- the parity fixtures' comparison (tolerances: tests/data/parity/README.md)

RAW_KEYS = {  # fixture key -> (StepOutput attribute, "want" entry needed)
    "pts3d_in_self_view": "pts3d_self",
    "conf_self": "conf_self",
    "pts3d_in_other_view": "pts3d_world",
    "conf": "conf_world",
    "rgb": "rgb",
}


def close_pixels(a, b):
    """Pixel arrays within the fixtures' tolerance: max |a-b| <= 1e-3 * range(b) + 1e-6."""
    tol = 1e-3 * (b.max() - b.min()) + 1e-6
    return np.abs(a - b).max() <= tol, float(np.abs(a - b).max()), float(tol)


def assert_raw_outputs_match(raws, exp, stride: int, heads: bool) -> None:
    """Every fed view's raw outputs (``StepOutput`` list ``raws``) equal the fixture ``exp``'s
    ``raw/i/*`` within the fixtures' tolerances; heads not run are allowed only when ``heads`` is off."""
    for i, out in enumerate(raws):
        for key, attr in RAW_KEYS.items():
            if getattr(out, attr) is None:
                assert not heads and attr in ("pts3d_world", "conf_world", "rgb")
                continue
            got = getattr(out, attr).float().cpu().numpy()[:, ::stride, ::stride]
            ok, err, tol = close_pixels(got, exp[f"raw/{i:03d}/{key}"])
            assert ok, f"view {i} {key}: max err {err:.3g} > tol {tol:.3g}"
        pose_err = np.abs(out.pose.float().cpu().numpy() - exp[f"raw/{i:03d}/camera_pose"]).max()
        assert pose_err <= 1e-4, f"view {i} camera_pose err {pose_err}"
