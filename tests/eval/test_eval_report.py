"""Report summaries, the one table renderer and the trajectory plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ttt3r.errors import TTT3RError
from ttt3r.eval.metrics_depth import depth_metrics
from ttt3r.eval.metrics_pose import pose_metrics
from ttt3r.eval.metrics_recon import reconstruction_metrics
from ttt3r.eval.plots import plot_trajectories
from ttt3r.eval.report import depth_summary, pose_summary, recon_summary, write_json
from ttt3r.eval.tables import markdown_table


def _table(task, results):
    """The renderer's table of one unnamed rule: ``{sequence: metrics object}``."""
    return markdown_table(task, {"": {name: r.to_dict() for name, r in results.items()}})


def _circle(n=40, radius=1.0):
    a = np.linspace(0, np.pi, n)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 0, 3] = radius * np.cos(a)
    poses[:, 1, 3] = radius * np.sin(a)
    poses[:, 2, 3] = 0.1 * a
    return poses


def test_pose_summary_is_mean_of_sequence_rmse():
    ref = _circle()
    est_a = ref.copy()
    est_b = ref.copy()
    est_b[:, 2, 3] += np.where(np.arange(len(ref)) % 2 == 0, 0.01, -0.01)
    res = {"a": pose_metrics(ref, est_a, "none"), "b": pose_metrics(ref, est_b, "none")}
    s = pose_summary(res)
    assert s["ate"] == pytest.approx(0.01 / 2)
    table = _table("pose", res)
    assert table.splitlines()[0] == "| sequence | ATE | RPE trans | RPE rot (deg) |"
    assert "| b | 0.0100 |" in table and "| **mean** | 0.0050 |" in table


def test_depth_summary_weighted_and_table():
    gt = np.array([1.0, 2.0, 4.0, 0.0])
    r1 = depth_metrics(np.array([1.1, 2.0, 4.0, 9.0]), gt, "metric")  # abs rel 0.1/3, 3 pixels
    r2 = depth_metrics(np.array([1.0]), np.array([1.0]), "metric")  # 0, 1 pixel
    s = depth_summary({"x": r1, "y": r2})
    assert s["abs_rel"] == pytest.approx((0.1 / 3 * 3 + 0) / 4)
    assert "| **weighted mean** |" in _table("depth", {"x": r1, "y": r2})


def test_recon_summary_and_table():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(100, 3))
    r = reconstruction_metrics(pts, pts, icp_threshold=None)
    assert recon_summary({"s": r})["accuracy"] == 0.0
    assert _table("recon", {"s": r}).count("\n") == 4
    with pytest.raises(TTT3RError, match="no reconstruction results"):
        recon_summary({})


def test_write_json_converts_results(tmp_path):
    res = pose_metrics(_circle(), _circle(), "sim3")
    write_json(tmp_path / "r.json", {"seq": res, "arr": np.arange(2), "x": np.float32(1.5)})
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["seq"]["ate"]["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert data["arr"] == [0, 1] and data["x"] == 1.5


def test_plot_trajectories_writes_png(tmp_path):
    ref = _circle()
    est = ref.copy()
    est[:, :3, 3] *= 3.0
    out = tmp_path / "traj.png"
    plot_trajectories(out, ref, est, title="circle")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (600, 600)
