"""Frame descriptors: the network's pooled encoder token comes out of the session for free; the
image descriptor is unit length, invariant to what it should be, and tells places apart."""

from __future__ import annotations

import numpy as np
import pytest

import ttt3r
from ttt3r.config import ModelConfig
from ttt3r.loops.descriptors import encoder_descriptor, image_descriptor
from ttt3r.preprocess import preprocess
from helpers import formula_model, parity_meta


def test_session_keeps_the_mean_encoder_token():
    model = formula_model(ModelConfig.from_constructor(parity_meta("tiny224")["model"]))
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(2)]  # fresh, then from memory
    sess = ttt3r.Session(model, update="ttt3r")
    for img in imgs:
        res = sess.step(img)
        tokens, _ = model.encode_image(preprocess(img, 224).tensor)  # independent: encoder tokens, pooled here
        feat = res.extras["global_feat"]
        assert feat.shape == (model.cfg.enc_embed_dim,)
        np.testing.assert_allclose(feat, tokens[0].mean(dim=0).numpy(), rtol=1e-5, atol=1e-6)
        d = encoder_descriptor(feat)
        assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(d, encoder_descriptor(tokens[0].numpy()), atol=1e-5)


def test_image_descriptor():
    rng = np.random.default_rng(1)
    from scipy.ndimage import gaussian_filter

    def scene(seed):
        r = np.random.default_rng(seed)
        return (np.stack([gaussian_filter(r.random((96, 128)), 4) for _ in range(3)], -1) * 255).astype(np.uint8)

    a, b = scene(1), scene(2)
    da, db = image_descriptor(a), image_descriptor(b)
    assert da.shape == db.shape and da.dtype == np.float32
    assert np.linalg.norm(da) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(a.astype(float) * 1.1 + rng.normal(0, 3, a.shape), 0, 255).astype(np.uint8)
    big = np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)  # the same view at twice the resolution
    assert float(da @ image_descriptor(noisy)) > 0.9
    assert float(da @ image_descriptor(big)) > 0.95
    assert float(da @ db) < float(da @ image_descriptor(noisy)) - 0.1
    with pytest.raises(ValueError, match="rgb must be an \\(H, W, 3\\)"):
        image_descriptor(np.zeros((4, 4)))
