"""``FrameResult.time_s`` is the network step alone; ``total_s`` the whole step (preprocessing, reset re-feed)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import ttt3r
import ttt3r.session as session_module
from ttt3r.config import ModelConfig
from helpers import formula_model, parity_meta

SLOW = 0.4  # seconds added to every preprocessing call and to every network call


@pytest.fixture(scope="module")
def tiny():
    return formula_model(ModelConfig.from_constructor(parity_meta("tiny224")["model"]))


@pytest.fixture
def slow(tiny, monkeypatch):
    """The tiny network with preprocessing and network steps that each take >= SLOW s; the
    network calls' own durations, measured around the network, are recorded in order."""
    model = tiny
    real_preprocess, real_step = session_module.preprocess, model.step
    calls: list[float] = []

    def slow_preprocess(*args, **kwargs):
        time.sleep(SLOW)
        return real_preprocess(*args, **kwargs)

    def slow_step(*args, **kwargs):
        t0 = time.perf_counter()
        time.sleep(SLOW)
        out = real_step(*args, **kwargs)
        calls.append(time.perf_counter() - t0)
        return out

    monkeypatch.setattr(session_module, "preprocess", slow_preprocess)
    model.step = slow_step  # an instance attribute over the class's method
    yield model, calls
    del model.step


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(n)]


def test_time_s_excludes_preprocessing(slow):
    model, calls = slow
    res = list(ttt3r.Session(model).run(_frames(2)))
    assert len(calls) == 2
    for r, own in zip(res, calls):
        assert own <= r.time_s < own + SLOW / 2  # this frame's network call, not the slow preprocessing
        assert r.total_s >= r.time_s + SLOW  # the total has the preprocessing


def test_time_s_excludes_the_reset_refeed(slow):
    model, calls = slow
    res = list(ttt3r.Session(model, reset_every=1).run(_frames(2)))
    assert len(calls) == 3  # frame 0; the re-feed of frame 0 (opening the second chunk), frame 1
    assert calls[0] <= res[0].time_s < calls[0] + SLOW / 2
    assert calls[2] <= res[1].time_s < calls[2] + SLOW / 2
    assert res[0].total_s >= res[0].time_s + SLOW
    assert res[1].total_s >= res[1].time_s + 2 * SLOW  # preprocessing + the re-feed
