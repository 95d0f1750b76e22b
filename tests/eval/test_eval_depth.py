"""Depth metrics on hand-computed cases and on the Middlebury motorcycle ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from ttt3r.errors import TTT3RError
from ttt3r.eval.metrics_depth import (
    DepthMetrics,
    aggregate_depth_metrics,
    depth_metrics,
    fit_depth_alignment,
    valid_depth_mask,
)

F_PX, DOFFS, BASELINE_MM = 994.978, 31.086, 193.001


@pytest.fixture(scope="module")
def motorcycle_depth() -> np.ndarray:
    """(500, 741) metric depth in metres from the Middlebury 2014 disparity; 0 where unknown."""
    data = pytest.importorskip("skimage.data")
    _, _, disp = data.stereo_motorcycle()
    disp = disp.astype(np.float64)
    with np.errstate(divide="ignore"):
        z = F_PX * BASELINE_MM / (disp + DOFFS) / 1000.0
    z[~np.isfinite(disp)] = 0.0
    return z


def test_hand_computed_metric():
    gt = np.array([1.0, 2.0, 4.0])
    pred = np.array([1.1, 2.0, 3.0])
    m = depth_metrics(pred, gt, align="metric")
    assert m.abs_rel == pytest.approx((0.1 + 0.0 + 0.25) / 3)
    assert m.sq_rel == pytest.approx((0.01 / 1 + 0 + 1 / 4) / 3)
    assert m.rmse == pytest.approx(np.sqrt((0.01 + 0 + 1) / 3))
    assert m.delta_1 == pytest.approx(2 / 3)  # ratios 1.1, 1.0, 1.333
    assert m.delta_2 == 1.0
    assert (m.scale, m.shift, m.num_valid) == (1.0, 0.0, 3)


def test_hand_computed_alignments():
    gt = np.array([1.0, 2.0, 4.0, 8.0, 3.0])
    assert fit_depth_alignment(2 * gt, gt, "median") == (0.5, 0.0)
    s, t = fit_depth_alignment(3 * gt, gt, "scale")
    assert (s, t) == (pytest.approx(1 / 3), 0.0)
    s, t = fit_depth_alignment((gt - 0.3) / 2, gt, "scale_shift")
    assert s == pytest.approx(2.0) and t == pytest.approx(0.3)
    # Least-squares scale of pred = [1, 1] to gt = [1, 3]: (1 + 3) / 2 = 2; median ratio 2/1 = 2.
    assert fit_depth_alignment(np.array([1.0, 1.0]), np.array([1.0, 3.0]), "scale")[0] == pytest.approx(2.0)
    # Median ratio uses separate medians: median(gt) / median(pred) = 3 / 2.
    assert fit_depth_alignment(np.array([1.0, 2.0, 9.0]), np.array([3.0, 3.0, 3.0]), "median")[0] == 1.5


def test_validity_mask_rules():
    gt = np.array([[0.0, -1.0, np.nan, np.inf], [1.0, 5.0, 69.9, 70.0]])
    valid = valid_depth_mask(gt, max_depth=70.0)
    assert valid.tolist() == [[False] * 4, [True, True, True, False]]
    user = np.array([[True] * 4, [False, True, True, True]])
    assert valid_depth_mask(gt, 70.0, user).sum() == 2
    pred = np.full_like(gt, 2.0)
    pred[0] = np.nan  # prediction at invalid pixels is ignored
    assert depth_metrics(pred, gt, "metric", max_depth=70.0, mask=user).num_valid == 2


@pytest.mark.parametrize("align", ["median", "scale", "scale_shift"])
def test_global_scale_is_removed_by_alignment(motorcycle_depth, align):
    gt = motorcycle_depth
    m = depth_metrics(1.7 * gt, gt, align=align)
    assert m.abs_rel < 1e-12 and m.rmse < 1e-9 and m.delta_1 == 1.0
    assert m.scale == pytest.approx(1 / 1.7)


def test_global_scale_without_alignment(motorcycle_depth):
    gt = motorcycle_depth
    m = depth_metrics(1.4 * gt, gt, align="metric")
    assert m.abs_rel == pytest.approx(0.4)
    assert m.delta_1 == 0.0 and m.delta_2 == 1.0  # ratio 1.4 lies in (1.25, 1.5625)
    assert depth_metrics(1.7 * gt, gt, align="metric").delta_2 == 0.0  # 1.7 > 1.5625
    assert m.num_valid == int((gt > 0).sum())
    assert m.num_valid == 500 * 741 - 27226  # pixels with known disparity


def test_scale_and_shift_recovered(motorcycle_depth):
    gt = motorcycle_depth
    pred = 0.4 * gt - 0.25  # gt = 2.5 * pred + 0.625
    m = depth_metrics(pred, gt, align="scale_shift")
    assert m.scale == pytest.approx(2.5) and m.shift == pytest.approx(0.625)
    assert m.abs_rel < 1e-12
    # A scale-only fit cannot remove the shift.
    assert depth_metrics(pred, gt, align="median").abs_rel > 0.01


def test_noise_of_known_size(motorcycle_depth):
    gt = motorcycle_depth
    # +-8% relative error in a checkerboard: abs rel is exactly 0.08, all within 1.25.
    sign = np.where((np.indices(gt.shape).sum(axis=0) % 2) == 0, 1.0, -1.0)
    m = depth_metrics(gt * (1 + 0.08 * sign), gt, align="metric")
    assert m.abs_rel == pytest.approx(0.08)
    assert m.delta_1 == 1.0
    # Additive Gaussian noise sigma = 5 cm: RMSE is sigma within sampling error.
    rng = np.random.default_rng(0)
    noisy = gt + rng.normal(0.0, 0.05, gt.shape)
    m = depth_metrics(noisy, gt, align="metric")
    assert m.rmse == pytest.approx(0.05, rel=0.01)


def test_max_depth_cap_and_clip(motorcycle_depth):
    gt = motorcycle_depth
    cap = 3.0
    m = depth_metrics(gt, gt, align="metric", max_depth=cap)
    assert m.num_valid == int(((gt > 0) & (gt < cap)).sum())
    assert 0 < m.num_valid < int((gt > 0).sum())
    # Clipping the prediction at 3 m after alignment: pixels beyond are pulled in.
    far = (gt > 0) & (gt >= 3.5)
    clipped = depth_metrics(gt + 1.0, gt, align="metric", clip_max=3.0)
    expected = np.mean(np.abs(np.minimum(gt[gt > 0] + 1.0, 3.0) - gt[gt > 0]) / gt[gt > 0])
    assert far.any() and clipped.abs_rel == pytest.approx(expected)


def test_sequence_alignment_is_joint():
    gt = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 2.0)])
    pred = np.stack([np.full((2, 2), 2.0), np.full((2, 2), 2.0)])
    # One scale for the sequence: median(gt)=1.5, median(pred)=2 -> s=0.75; frame errors 0.5 and 0.25.
    m = depth_metrics(pred, gt, "median")
    assert m.scale == 0.75
    assert m.abs_rel == pytest.approx((0.5 + 0.25) / 2)


def test_aggregate_weights_by_valid_pixels():
    a = DepthMetrics(0.1, 0, 0, 0, 1.0, 1, 1, num_valid=100, scale=1, shift=0)
    b = DepthMetrics(0.4, 0, 0, 0, 0.0, 1, 1, num_valid=300, scale=1, shift=0)
    agg = aggregate_depth_metrics([a, b])
    assert agg["abs_rel"] == pytest.approx(0.325)
    assert agg["delta_1"] == pytest.approx(0.25)
    assert agg["num_valid"] == 400 and agg["num_sequences"] == 2


def test_depth_errors():
    gt = np.ones((2, 2))
    with pytest.raises(TTT3RError, match="shape"):
        depth_metrics(np.ones((2, 3)), gt)
    with pytest.raises(TTT3RError, match="no valid"):
        depth_metrics(gt, np.zeros((2, 2)))
    with pytest.raises(TTT3RError, match="not finite at 1 of 4"):
        depth_metrics(np.array([[1.0, np.inf], [1.0, 1.0]]), gt)
    with pytest.raises(TTT3RError, match="unknown depth alignment"):
        depth_metrics(gt, gt, align="affine")  # type: ignore[arg-type]
    with pytest.raises(TTT3RError):
        aggregate_depth_metrics([])


def test_scale_l1_is_robust_to_outliers(motorcycle_depth):
    # 71 exact pixels and 30 predicted 10x too close: the L1 optimum (weighted
    # median of gt/pred with weights pred) is 1; least squares is pulled to
    # (71 + 3) / (71 + 0.3).
    gt = np.ones(101)
    pred = np.ones(101)
    pred[:30] = 0.1
    s, t = fit_depth_alignment(pred, gt, "scale_l1")
    assert s == pytest.approx(1.0, abs=1e-6) and t == 0.0
    assert fit_depth_alignment(pred, gt, "scale")[0] == pytest.approx(74 / 71.3)
    m = depth_metrics(0.25 * motorcycle_depth, motorcycle_depth, "scale_l1")
    assert m.scale == pytest.approx(4.0) and m.abs_rel < 1e-9
