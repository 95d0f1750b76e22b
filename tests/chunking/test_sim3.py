"""The robust Sim(3) estimator against known transforms (exact, noisy, 30% outliers)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ttt3r.chunking.sim3 import fit_residuals, robust_sim3
from ttt3r.errors import TTT3RError
from ttt3r.geometry import Sim3, umeyama

R_TRUE = Rotation.from_rotvec([0.4, -0.7, 1.1]).as_matrix()
S_TRUE, T_TRUE = 2.7, np.array([1.5, -2.0, 0.25])


def _cloud(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * [2.0, 1.0, 3.0] + [0.0, 0.0, 5.0]
    return rng, x, S_TRUE * x @ R_TRUE.T + T_TRUE


def _rot_err_deg(R):
    return float(np.degrees(Rotation.from_matrix(R @ R_TRUE.T).magnitude()))


def test_noiseless_exact():
    rng, x, y = _cloud()
    fit = robust_sim3(x, y, rng.uniform(1, 10, len(x)))
    assert np.abs(fit.sim.R - R_TRUE).max() < 1e-12
    assert abs(fit.sim.s - S_TRUE) < 1e-12
    assert np.abs(fit.sim.t - T_TRUE).max() < 1e-11
    assert fit.residual < 1e-10 and fit.inlier_fraction == 1.0 and fit.confidence == 1.0


def test_se3_mode_keeps_unit_scale():
    rng, x, _ = _cloud()
    y = x @ R_TRUE.T + T_TRUE
    fit = robust_sim3(x, y, with_scale=False)
    assert fit.sim.s == 1.0 and np.abs(fit.sim.R - R_TRUE).max() < 1e-12


def test_thirty_percent_outliers():
    rng, x, y = _cloud()
    y = y + rng.normal(size=y.shape) * 0.01
    out = rng.random(len(x)) < 0.3
    y[out] = rng.uniform(-15, 15, (out.sum(), 3))  # gross outliers spread over the scene
    plain = umeyama(x, y)  # least squares is ruined by them
    assert _rot_err_deg(plain.R) > 1.0 or abs(plain.s / S_TRUE - 1) > 0.05
    fit = robust_sim3(x, y)
    assert _rot_err_deg(fit.sim.R) < 0.02
    assert abs(fit.sim.s / S_TRUE - 1) < 2e-3
    assert np.abs(fit.sim.t - T_TRUE).max() < 0.02
    assert 0.6 < fit.inlier_fraction < 0.8  # ~70% of the points are inliers
    assert fit.residual < 0.05


def test_confidence_weights_matter():
    """Low-confidence outliers are ignored even before the robust kernel acts."""
    rng, x, y = _cloud(2000)
    out = rng.random(len(x)) < 0.4
    y[out] += rng.normal(size=(out.sum(), 3)) * 3.0
    w = np.where(out, 1e-9, 1.0)
    fit = robust_sim3(x, y, w)
    assert _rot_err_deg(fit.sim.R) < 1e-5 and abs(fit.sim.s - S_TRUE) < 1e-6


def test_residuals_of_a_wrong_transform():
    _, x, y = _cloud()
    good = fit_residuals(Sim3(R_TRUE, T_TRUE, S_TRUE), x, y)
    bad = fit_residuals(Sim3(R_TRUE, T_TRUE, 1.0), x, y)  # the right pose, the wrong scale
    assert good.confidence == 1.0 and good.residual < 1e-10
    assert bad.confidence < 0.05


def test_bad_input():
    with pytest.raises(TTT3RError, match="shapes"):
        robust_sim3(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(TTT3RError, match="weights"):
        robust_sim3(np.ones((5, 3)), np.ones((5, 3)), np.zeros(5))
    with pytest.raises(TTT3RError, match="degenerate"):
        robust_sim3(np.ones((5, 3)), np.ones((5, 3)))
