"""The compiled and CUDA-graph step paths compute what the eager step computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ttt3r
from ttt3r.config import ModelConfig
from ttt3r.errors import TTT3RError
from ttt3r.formula import formula_model
from ttt3r.preprocess import preprocess
from ttt3r.step_graph import GraphStepper, TensorStep
from helpers import PARITY, parity_meta

FRAMES = sorted((PARITY / "tiny224" / "frames").glob("*.png"))


@pytest.fixture(scope="module")
def tiny():
    return formula_model(ModelConfig.from_constructor(parity_meta("tiny224")["model"]))


def _run(model, step_graph="none", frames=FRAMES, reset_every=0):
    raws = []
    sess = ttt3r.Session(model, update="ttt3r", reset_every=reset_every, want={"world", "rgb"},
                         raw_hook=raws.append, step_graph=step_graph)
    return list(sess.run(frames)), raws


def test_tensor_step_is_the_eager_step(tiny):
    """The function that is compiled or captured, called directly, gives the eager step's outputs bit for bit."""
    model = tiny
    imgs = [preprocess(f, 224).tensor for f in FRAMES[:3]]
    with torch.inference_mode():
        state = model.init_state(1)
        _, state = model.step(imgs[0], state, "ttt3r")  # the fresh frame stays eager
        fn = TensorStep(model, "ttt3r", frozenset({"world", "rgb"}))
        for img in imgs[1:]:
            ref, ref_state = model.step(img, state, "ttt3r", want={"world", "rgb"})
            got = fn(img, state.feat, state.pos, state.mem)
            names = ("pts3d_self", "conf_self", "pose", "pts3d_world", "conf_world", "rgb")
            for name, t in zip(names, got):
                assert torch.equal(t, getattr(ref, name)), name
            assert torch.equal(got[-2], ref_state.feat) and torch.equal(got[-1], ref_state.mem)
            state = ref_state


def test_graph_stepper_routing_matches_eager(tiny, monkeypatch):
    """GraphStepper with the compiler stubbed out (identity): fresh, reset and later frames
    all equal the eager Session's, and one runner serves every non-fresh frame."""
    made = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: made.append(kw) or fn)
    ref, ref_raw = _run(tiny, "none", reset_every=3)
    got, got_raw = _run(tiny, "compile", reset_every=3)
    assert made == [{"dynamic": False, "fullgraph": True}]
    assert len(got_raw) == len(ref_raw) == len(FRAMES) + 1  # the reset frame is fed twice
    for a, b in zip(ref_raw, got_raw):
        for name in ("pts3d_self", "conf_self", "pose", "pts3d_world", "conf_world", "rgb"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a.pose, b.pose)
        np.testing.assert_array_equal(a.depth, b.depth)


def test_bad_step_graph_modes(tiny):
    with pytest.raises(TTT3RError, match="needs a network on CUDA"):
        ttt3r.Session(tiny, step_graph="cudagraph")
    with pytest.raises(TTT3RError, match="step_graph='fast'"):
        GraphStepper(tiny, "fast")


def _assert_close(ref, got, tol):
    for a, b in zip(ref, got):
        rng = a.depth.max() - a.depth.min()
        assert np.abs(a.depth - b.depth).max() <= tol * rng + 1e-6
        assert np.abs(a.pose - b.pose).max() <= tol


@pytest.mark.slow
def test_compiled_step_matches_eager(tiny, monkeypatch):
    """Real torch.compile (inductor) on CPU: ~2 min of CPU time compiling (10 min wall on a
    busy 2-core machine); compiled once, then reused for every later frame (no recompiles)."""
    import torch._dynamo

    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    ref, _ = _run(tiny, "none")
    got, _ = _run(tiny, "compile")
    _assert_close(ref, got, 1e-4)


@pytest.mark.gpu
def test_cudagraph_step_matches_eager(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model = formula_model(ModelConfig.from_constructor(parity_meta("tiny224")["model"]), device="cuda")
    ref, _ = _run(model, "none", reset_every=3)
    got, _ = _run(model, "cudagraph", reset_every=3)
    _assert_close(ref, got, 1e-5)
