"""Preprocessing: the original's resize/crop geometry, by hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ttt3r.errors import InputError
from ttt3r.preprocess import crop_geometry, preprocess


@pytest.mark.parametrize("w0,h0,size,out_wh", [
    (1920, 1080, 512, (512, 288)),   # 16:9 video
    (640, 480, 512, (512, 384)),
    (480, 640, 512, (384, 512)),     # portrait stays portrait
    (500, 500, 512, (512, 384)),     # square -> 4:3 crop
    (170, 120, 512, (512, 352)),     # the parity fixtures: 512x361 -> 352 rows
    (640, 480, 224, (224, 224)),     # short side -> 224, centre square
    (120, 90, 224, (224, 224)),
])
def test_output_sizes(w0, h0, size, out_wh):
    (_, _), (l, t, r, b) = crop_geometry(w0, h0, size)
    assert (r - l, b - t) == out_wh
    img = Image.fromarray(np.zeros((h0, w0, 3), np.uint8))
    p = preprocess(img, size)
    assert p.rgb.shape[:2] == out_wh[::-1] and p.tensor.shape == (1, 3, out_wh[1], out_wh[0])


def test_normalisation_and_centre_crop():
    a = np.zeros((288, 1024, 3), np.uint8)
    a[:, 256:768] = 255  # the centre half is white
    p = preprocess(a, 512)  # 1024x288 -> 512x144 -> crop 512x144
    assert p.rgb.shape == (144, 512, 3)
    assert p.tensor.min() == -1.0 and p.tensor.max() == 1.0
    assert np.isclose(p.tensor[0, :, :, 256].numpy(), 1.0).all()


def test_too_small_and_bad_arrays():
    with pytest.raises(InputError, match="smaller than one 16x16 patch"):
        preprocess(np.zeros((10, 40, 3), np.uint8), 512)
    with pytest.raises(InputError, match="shape"):
        preprocess(np.zeros((20, 20, 2), np.uint8), 512)
    g16 = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    assert preprocess(g16, 224).rgb.dtype == np.uint8
