"""Precision and device paths (the CUDA ones run only where a GPU is present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ttt3r
from ttt3r.config import ModelConfig
from helpers import PARITY, formula_model, parity_meta

FRAMES = sorted((PARITY / "tiny224" / "frames").glob("*.png"))[:3]


def _run(model):
    return list(ttt3r.Session(model, update="ttt3r").run(FRAMES))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_runs_on_cpu(dtype):
    model = formula_model(ModelConfig.from_constructor(parity_meta("tiny224")["model"]), dtype=dtype)
    res = _run(model)
    assert all(np.isfinite(r.depth).all() and np.isfinite(r.pose).all() for r in res)
    assert res[0].depth.dtype == np.float32  # outputs are float32 whatever the compute dtype


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_cpu(dtype, monkeypatch):
    # exact float32 on the GPU for the comparison (cuDNN convolutions default to TF32)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cfg = ModelConfig.from_constructor(parity_meta("tiny224")["model"])
    cpu = _run(formula_model(cfg))
    gpu = _run(formula_model(cfg, device="cuda", dtype=dtype))
    tol = 1e-3 if dtype == torch.float32 else 5e-2
    for a, b in zip(cpu, gpu):
        rng = a.depth.max() - a.depth.min()
        assert np.abs(a.depth - b.depth).max() <= tol * rng + 1e-6
        assert np.abs(a.pose - b.pose).max() <= (1e-4 if dtype == torch.float32 else 5e-2)


def test_attention_under_cpu_bf16_autocast_runs_in_float32():
    """Training with precision = "bf16": attention is computed in float32 (faster backward on CPU)."""
    from ttt3r.model.layers import _attend

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g, requires_grad=True) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = _attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), 0.3)
        with torch.no_grad():  # inference under autocast keeps the bfloat16 kernel
            y_inf = _attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), 0.3)
    assert y.dtype == torch.float32 and y_inf.dtype == torch.bfloat16
    torch.testing.assert_close(y, ref, rtol=0, atol=2e-2)  # inputs rounded to bfloat16 only
    y.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
    assert torch.equal(_attend(q, k, v, 0.3), ref)  # no autocast: the plain kernel
