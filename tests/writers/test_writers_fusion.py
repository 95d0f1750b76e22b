"""VoxelFusion: bounded size, exact means, automatic voxel size."""

from __future__ import annotations

import numpy as np
import pytest

from ttt3r.writers import VoxelFusion
from writer_scene import FX, make_frame, surface_distance


def test_single_voxel_mean_is_exact() -> None:
    f = VoxelFusion(voxel_size=1.0)
    pts = np.array([[0.1, 0.2, 0.3], [0.5, 0.6, 0.7], [0.9, 0.1, 0.2], [3.5, 3.5, 3.5]])
    rgb = np.array([[0, 0, 0], [100, 50, 10], [200, 100, 20], [7, 8, 9]], np.uint8)
    f.add_points(pts[:2], rgb[:2])
    f.add_points(pts[2:], rgb[2:])  # merged across calls
    xyz, col, cnt = f.cloud()
    order = np.argsort(cnt)[::-1]
    np.testing.assert_allclose(xyz[order[0]], pts[:3].mean(0), atol=1e-6)
    np.testing.assert_array_equal(col[order[0]], [100, 50, 10])
    np.testing.assert_allclose(xyz[order[1]], pts[3], atol=1e-6)
    assert sorted(cnt.tolist()) == [1, 3]


def test_max_points_bound_and_mass_preserved() -> None:
    rng = np.random.default_rng(0)
    f = VoxelFusion(voxel_size=0.01, max_points=5000, batch_points=20_000)
    total = np.zeros(3)
    n = 0
    for _ in range(30):
        p = rng.uniform(-1, 1, size=(10_000, 3))
        f.add_points(p, rng.integers(0, 255, size=(10_000, 3)))
        total += p.sum(0)
        n += len(p)
        assert len(f._keys) <= 5000  # never above the bound after a merge
    xyz, rgb, cnt = f.cloud()
    assert 0 < len(xyz) <= 5000
    assert f.n_coarsen >= 1 and f.voxel_size == pytest.approx(0.01 * 2**f.n_coarsen)
    assert cnt.sum() == n == f.n_input
    # count-weighted mean of the voxels equals the mean of every input point
    np.testing.assert_allclose((xyz.astype(np.float64) * cnt[:, None]).sum(0) / cnt.sum(), total / n, atol=1e-5)
    # no two voxels share a cell at the final size
    cells = np.floor(xyz / f.voxel_size).astype(np.int64)
    assert len(np.unique(cells, axis=0)) == len(cells)
    # the buffered input never grows past the batch size
    assert f._buf_n == 0


def test_auto_voxel_size_and_conf_filter() -> None:
    fr = make_frame(0)
    f = VoxelFusion(conf_threshold=1.5, pixel_stride=1)
    f.add_frame(fr)
    expected = 2 * np.median(fr.depth[fr.conf > 1.5]) / FX
    assert f.voxel_size == pytest.approx(expected)
    xyz, _, cnt = f.cloud()
    assert cnt.sum() == int((fr.conf > 1.5).sum())  # the low-confidence stripe is out
    assert surface_distance(xyz).max() < f.voxel_size * np.sqrt(3)


def test_non_finite_and_far_points_dropped() -> None:
    f = VoxelFusion(voxel_size=0.001)
    pts = np.array([[0, 0, 1], [np.nan, 0, 1], [np.inf, 0, 0], [1e9, 0, 0]], np.float64)
    f.add_points(pts, np.zeros((4, 3), np.uint8))
    assert len(f) == 1 and f.n_dropped == 3


def test_empty_and_all_low_conf() -> None:
    fr = make_frame(1)
    fr.conf[:] = 1.0
    f = VoxelFusion()
    f.add_frame(fr)
    assert len(f) == 0 and f.voxel_size is None
    xyz, rgb, cnt = f.cloud()
    assert xyz.shape == (0, 3) and rgb.shape == (0, 3)
