"""Textures and meshes the scenes draw from exist and are usable."""

from __future__ import annotations

import os

import numpy as np
import pytest

pybullet_data = pytest.importorskip("pybullet_data")

from ttt3r.synth.scene import MESHES, _mesh_bounds  # noqa: E402
from ttt3r.synth.textures import FILE_TEXTURES, PROCEDURAL, texture_image  # noqa: E402

DATA = pybullet_data.getDataPath()


@pytest.mark.parametrize("kind", PROCEDURAL)
def test_procedural_textures_are_seeded_and_not_flat(kind):
    a = texture_image({"kind": kind, "seed": 1})
    assert a.shape == (256, 256, 3) and a.dtype == np.uint8
    assert np.array_equal(a, texture_image({"kind": kind, "seed": 1}))
    assert not np.array_equal(a, texture_image({"kind": kind, "seed": 2}))
    # texture everywhere: every 16x16 block varies (matching needs it)
    blocks = a.reshape(16, 16, 16, 16, 3).std(axis=(1, 3))
    assert (blocks.max(axis=-1) > 1.0).all()


@pytest.mark.parametrize("path", FILE_TEXTURES)
def test_file_textures_ship_with_pybullet_data(path):
    img = texture_image({"kind": "file", "path": path}, DATA)
    assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 8


@pytest.mark.parametrize("name", sorted(MESHES))
def test_catalogue_meshes_exist_with_finite_bounds(name):
    path, up, (lo_ext, hi_ext), _, _ = MESHES[name]
    assert os.path.isfile(os.path.join(DATA, path))
    lo, hi = _mesh_bounds(DATA, path, up)
    assert np.isfinite(lo).all() and np.isfinite(hi).all() and (hi - lo).min() > 0
    assert 0 < lo_ext < hi_ext
