"""Cross-view completion masks: exact counts, frame 0 untouched, seeded, and what train_step feeds the network."""

from __future__ import annotations

import pytest
import torch

from ttt3r.train import loop
from ttt3r.train.losses import rgb_loss
from ttt3r.train.masking import mask_later_frames

from train_helpers import fake_sampler, tiny_cfg


def _hidden_squares(img: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, L, n) bool: squares whose every value is exactly 0."""
    b, length, c, h, w = img.shape
    sq = img.view(b, length, c, h // patch, patch, w // patch, patch)
    return (sq == 0).all(dim=(2, 4, 6)).flatten(2)


def test_masks_hide_exactly_the_asked_share_of_later_frames():
    img = torch.rand(3, 4, 3, 48, 64) * 2 - 0.99  # no exact zeros in the input
    out = mask_later_frames(img, 0.75, 16, seed=7)
    hidden = _hidden_squares(out, 16)
    assert not hidden[:, 0].any() and torch.equal(out[:, 0], img[:, 0])
    assert (hidden[:, 1:].sum(-1) == 9).all()  # round(0.75 * 12)
    kept = ~hidden[:, 1:].view(3, 3, 1, 3, 1, 4, 1).expand(-1, -1, 3, -1, 16, -1, 16).reshape(3, 3, 3, 48, 64)
    assert torch.equal(out[:, 1:][kept], img[:, 1:][kept])  # the visible squares are the input's
    assert not torch.equal(hidden[:, 1], hidden[:, 2])  # drawn per frame
    assert torch.equal(out, mask_later_frames(img, 0.75, 16, seed=7))
    assert not torch.equal(out, mask_later_frames(img, 0.75, 16, seed=8))
    assert not _hidden_squares(img, 16).any()  # the input is not modified in place


def test_no_mask_returns_the_input():
    img = torch.rand(2, 3, 3, 32, 32)
    assert mask_later_frames(img, 0.0, 16, seed=0) is img
    one = img[:, :1]
    assert mask_later_frames(one, 0.9, 16, seed=0) is one  # a one-frame clip has no later frames
    assert mask_later_frames(img, 0.1, 16, seed=0) is img  # round(0.1 * 4) = 0 squares


def test_train_step_feeds_masked_frames_and_scores_whole_ones(monkeypatch):
    cfg = tiny_cfg("loss.mask_ratio=0.5")
    batch = fake_sampler(cfg).batch(0, 2)
    seen = {}
    real = loop.forward_clip

    def spy(model, img, rule="cut3r", want_rgb=True):
        seen["img"] = img
        seen["pred"] = real(model, img, rule, want_rgb)
        return seen["pred"]

    monkeypatch.setattr(loop, "forward_clip", spy)
    model = loop.build_training_model(cfg, torch.device("cpu"))
    parts = loop.train_step(model, loop.make_optimizer(model, cfg), batch, cfg, 1e-3, step=5)
    hidden = _hidden_squares(seen["img"], 16)
    assert not hidden[:, 0].any() and (hidden[:, 1:].sum(-1) == 2).all()  # 32x32: 4 squares, half hidden
    assert torch.equal(seen["img"], mask_later_frames(batch.img, 0.5, 16, seed=cfg.seed * 1_000_003 + 5))
    # the colour loss compares with the whole frames, not with what the network saw
    whole = float(rgb_loss(seen["pred"].rgb.detach(), batch.img))
    masked = float(rgb_loss(seen["pred"].rgb.detach(), seen["img"]))
    assert parts["rgb"] == pytest.approx(whole, rel=1e-6) and whole != pytest.approx(masked, rel=1e-3)
