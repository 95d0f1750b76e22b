"""Reconstruction metrics against brute-force nearest neighbours; ICP on a known motion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.spatial.transform import Rotation

from ttt3r.errors import TTT3RError
from ttt3r.eval.metrics_recon import (
    estimate_normals,
    icp_point_to_point,
    nearest_neighbors,
    reconstruction_metrics,
)


def _surface(n: int, seed: int) -> np.ndarray:
    """Points on an asymmetric curved surface patch (about 1 m across)."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-0.5, 0.5, size=(n, 2))
    z = 0.2 * np.sin(3 * xy[:, 0]) * np.cos(2 * xy[:, 1]) + 0.3 * xy[:, 0] ** 2 + 0.1 * xy[:, 1]
    return np.column_stack([xy, z])


def _rigid(rotvec, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


def _apply(T, p):
    return p @ T[:3, :3].T + T[:3, 3]


def test_nearest_neighbors_match_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(200, 3))
    d, i = nearest_neighbors(a, b)
    full = cdist(a, b)
    np.testing.assert_allclose(d, full.min(axis=1), atol=1e-12)
    np.testing.assert_array_equal(i, full.argmin(axis=1))


def test_metrics_without_icp_match_brute_force():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(400, 3))
    pred = gt[:250] + rng.normal(scale=0.05, size=(250, 3))
    n_gt = rng.normal(size=(400, 3))
    n_gt /= np.linalg.norm(n_gt, axis=1, keepdims=True)
    n_pred = rng.normal(size=(250, 3))
    n_pred /= np.linalg.norm(n_pred, axis=1, keepdims=True)
    m = reconstruction_metrics(pred, gt, n_pred, n_gt, icp_threshold=None)
    full = cdist(pred, gt)  # (pred, gt)
    acc = full.min(axis=1)
    comp = full.min(axis=0)
    nc1 = np.abs(np.sum(n_gt[full.argmin(axis=1)] * n_pred, axis=1))
    nc2 = np.abs(np.sum(n_gt * n_pred[full.argmin(axis=0)], axis=1))
    assert m.accuracy == pytest.approx(acc.mean()) and m.accuracy_median == pytest.approx(np.median(acc))
    assert m.completeness == pytest.approx(comp.mean()) and m.completeness_median == pytest.approx(np.median(comp))
    assert m.nc_pred == pytest.approx(nc1.mean()) and m.nc_gt == pytest.approx(nc2.mean())
    assert m.nc == pytest.approx((nc1.mean() + nc2.mean()) / 2)
    assert m.nc_median == pytest.approx((np.median(nc1) + np.median(nc2)) / 2)
    np.testing.assert_array_equal(m.icp_transform, np.eye(4))
    # Missing part of the ground truth shows up in completeness, not accuracy.
    assert m.completeness > m.accuracy


def test_normals_of_plane_and_sphere():
    rng = np.random.default_rng(2)
    plane = np.column_stack([rng.uniform(-1, 1, (500, 2)), np.zeros(500)])
    R = Rotation.from_rotvec([0.4, 0.2, -0.3]).as_matrix()
    n = estimate_normals(plane @ R.T)
    np.testing.assert_allclose(np.abs(n @ R[:, 2]), 1.0, atol=1e-9)
    sphere = rng.normal(size=(3000, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    n = estimate_normals(sphere, k=10)
    assert np.min(np.abs(np.sum(n * sphere, axis=1))) > 0.99


def test_icp_recovers_known_small_motion():
    gt = _surface(3000, seed=3)
    T_true = _rigid([0.03, -0.02, 0.05], [0.02, -0.015, 0.01])  # ~3.5 degrees, 2.7 cm
    source = _apply(np.linalg.inv(T_true), gt)  # so that T_true maps source onto gt
    res = icp_point_to_point(source, gt, max_distance=0.1)  # the protocol: 0.1 m, at most 30 iterations
    np.testing.assert_allclose(res.transform, T_true, atol=1e-6)
    assert res.fitness == 1.0 and res.inlier_rmse < 1e-6
    # Starting from the truth, ICP stays there.
    res0 = icp_point_to_point(source, gt, 0.1, init=T_true)
    np.testing.assert_allclose(res0.transform, T_true, atol=1e-9)


def test_icp_threshold_limits_correspondences():
    gt = _surface(500, seed=4)
    far = _apply(_rigid([0, 0, 0], [5.0, 0, 0]), gt)
    res = icp_point_to_point(far, gt, max_distance=0.1)
    assert res.fitness == 0.0 and res.iterations == 0
    np.testing.assert_array_equal(res.transform, np.eye(4))


def test_recon_metrics_after_icp_undo_misregistration():
    gt = _surface(2000, seed=5)
    pred = _apply(_rigid([0.0, 0.02, -0.03], [0.01, 0.02, 0.0]), gt)
    before = reconstruction_metrics(pred, gt, icp_threshold=None)
    after = reconstruction_metrics(pred, gt, icp_threshold=0.1)
    assert before.accuracy > 0.005
    assert after.accuracy < 1e-5 and after.completeness < 1e-5
    assert after.nc > 0.999


def test_recon_input_errors():
    with pytest.raises(TTT3RError, match=r"\(N, 3\)"):
        reconstruction_metrics(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(TTT3RError, match="empty"):
        reconstruction_metrics(np.zeros((0, 3)), np.zeros((4, 3)))
    with pytest.raises(TTT3RError, match="non-finite"):
        reconstruction_metrics(np.full((4, 3), np.nan), np.zeros((4, 3)))
