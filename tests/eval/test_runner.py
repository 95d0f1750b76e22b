"""Evaluation runner: protocols on exact synthetic ground truth, cache resume, shards, Ray, CLI.

Sequences are written directly in the ``ttt3r synth`` layout (no rendering):
64x48 images, 8 frames, a helical camera path and smooth positive depth, so
every expected number below follows from the arrays written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ttt3r.errors import TTT3RError
from ttt3r.eval.cache import iter_records, record_path
from ttt3r.eval.datasets import get_dataset
from ttt3r.eval.datasets.synth import SynthDataset
from ttt3r.eval.distributed import parse_shard, shard_items
from ttt3r.eval.protocols import CropView, resize_cubic
from ttt3r.eval.predictors import GroundTruthPredictor
from ttt3r.eval.runner import EvalConfig, merge, run_evaluation
from eval_helpers import H, K, N, W, gt_depth, gt_poses, write_synth


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_synth(root / "seq_a", 0)
    write_synth(root / "seq_b", 1)
    return root


def _cfg(root, out, task="pose", **kw) -> EvalConfig:
    kw.setdefault("plots", False)
    kw.setdefault("rules", ("cut3r", "ttt3r"))
    return EvalConfig(task=task, datasets=("synth",), out=out, root=root, **kw)


def _metrics(summary, rule="ttt3r") -> dict[str, dict]:
    return {r["sequence"]: r["result"]["metrics"] for r in summary.records if r["rule"] == rule}


# ---------------------------------------------------------------- dataset


def test_synth_loader_reads_exact_ground_truth(synth_root):
    ds = get_dataset("synth", root=synth_root)
    assert ds.sequence_names() == ["seq_a", "seq_b"]
    seq = ds.load("seq_b")
    assert len(seq) == N and seq.poses.shape == (N, 4, 4)
    np.testing.assert_array_equal(seq.poses, gt_poses(1))
    np.testing.assert_array_equal(seq.intrinsics[3], K)
    np.testing.assert_array_equal(seq.read_depth(5), gt_depth(1, 5))
    np.testing.assert_allclose(seq.timestamps, np.arange(N) / 30.0)
    # a sequence folder itself is a one-sequence dataset
    assert SynthDataset(synth_root / "seq_a").sequence_names() == ["seq_a"]


# ---------------------------------------------------------------- protocols against independent truth


def test_ground_truth_prediction_gives_zero_errors(synth_root, tmp_path):
    pose = run_evaluation(_cfg(synth_root, tmp_path / "p"), GroundTruthPredictor())
    assert pose.failures == [] and len(pose.records) == 4
    for m in _metrics(pose).values():
        assert m["ate"]["rmse"] < 1e-9 and m["rpe_trans"]["rmse"] < 1e-9 and m["rpe_rot_deg"]["rmse"] < 1e-5
        assert m["num_poses"] == N
    depth = run_evaluation(_cfg(synth_root, tmp_path / "d", "depth"), GroundTruthPredictor())
    for m in _metrics(depth).values():
        assert set(m) == {"metric", "scale_l1", "scale_shift"}
        for a in m.values():
            assert a["abs_rel"] < 1e-6 and a["delta_1"] == 1.0 and a["num_valid"] == N * W * H


def test_global_scale_is_removed_by_sim3_and_depth_alignment(synth_root, tmp_path):
    pred = GroundTruthPredictor(scale=2.5)
    pose = run_evaluation(_cfg(synth_root, tmp_path / "p"), pred)
    for m in _metrics(pose).values():
        assert m["ate"]["rmse"] < 1e-9 and m["rpe_trans"]["rmse"] < 1e-9
        assert m["scale"] == pytest.approx(1 / 2.5)
    cfg = _cfg(synth_root, tmp_path / "d", "depth", depth_aligns=("metric", "median", "scale_l1", "scale_shift"))
    for m in _metrics(run_evaluation(cfg, pred)).values():
        assert m["metric"]["abs_rel"] == pytest.approx(1.5, rel=1e-6)  # |2.5 g - g| / g
        for a in ("median", "scale_l1", "scale_shift"):
            assert m[a]["abs_rel"] < 1e-6 and m[a]["delta_1"] == 1.0


class _HolePoses(SynthDataset):
    """Frame 2 without a ground-truth pose (as ScanNet's -inf poses)."""

    def load(self, name):
        seq = super().load(name)
        seq.poses[2] = np.nan
        seq.pose_valid = np.arange(len(seq)) != 2
        return seq


def test_frames_without_ground_truth_pose_are_dropped(synth_root, tmp_path):
    noise = {"seq_a": _orthogonal_noise(gt_poses(0), 7, 0.1)}
    cfg = _cfg(synth_root, tmp_path, loader=_HolePoses(synth_root))
    res = _metrics(run_evaluation(cfg, GroundTruthPredictor(translation_noise=noise)))
    assert res["seq_b"]["num_poses"] == N - 1 and res["seq_b"]["ate"]["rmse"] < 1e-9
    # seq_a: the ATE over the N - 1 kept frames equals a direct evaluation of those frames
    from ttt3r.eval.metrics_pose import pose_metrics

    keep = np.arange(N) != 2
    direct = pose_metrics(gt_poses(0)[keep], (gt_poses(0) + np.pad(noise["seq_a"][:, :, None], ((0, 0), (0, 1), (3, 0))))[keep])
    assert res["seq_a"]["ate"]["rmse"] == pytest.approx(direct.ate.rmse, rel=1e-9)


def _orthogonal_noise(poses: np.ndarray, seed: int, size: float) -> np.ndarray:
    """(N, 3) offsets with zero mean and zero cross-covariance with the positions."""
    p = poses[:, :3, 3]
    A = np.column_stack([np.ones(len(p)), p - p.mean(0)])
    r = np.random.default_rng(seed).normal(size=p.shape)
    n = r - A @ np.linalg.lstsq(A, r, rcond=None)[0]
    return size * n / np.sqrt(np.mean(np.sum(n**2, 1)))


def test_translation_noise_gives_the_hand_computed_ate(synth_root, tmp_path):
    noise = {"seq_a": _orthogonal_noise(gt_poses(0), 0, 0.05), "seq_b": _orthogonal_noise(gt_poses(1), 1, 0.2)}
    res = _metrics(run_evaluation(_cfg(synth_root, tmp_path), GroundTruthPredictor(translation_noise=noise)))
    for name, seed in (("seq_a", 0), ("seq_b", 1)):
        p = gt_poses(seed)[:, :3, 3]
        var_p = np.mean(np.sum((p - p.mean(0)) ** 2, 1))
        m_n = np.mean(np.sum(noise[name] ** 2, 1))
        # Umeyama on est = p + n with n orthogonal to p: R = I, s = var_p / (var_p + m_n),
        # residual_i = s n_i - (1 - s)(p_i - mean p)
        s = var_p / (var_p + m_n)
        expected = np.sqrt(s**2 * m_n + (1 - s) ** 2 * var_p)
        assert res[name]["ate"]["rmse"] == pytest.approx(expected, rel=1e-9)
        assert res[name]["ate"]["rmse"] > 0.01


@pytest.mark.parametrize("factor, abs_rel, delta_1", [(1.1, 0.1, 1.0), (0.7, 0.3, 0.0)])
def test_depth_bias_gives_the_expected_abs_rel(synth_root, tmp_path, factor, abs_rel, delta_1):
    cfg = _cfg(synth_root, tmp_path, "depth", depth_aligns=("metric", "median"))
    for m in _metrics(run_evaluation(cfg, GroundTruthPredictor(depth_factor=factor))).values():
        assert m["metric"]["abs_rel"] == pytest.approx(abs_rel, rel=1e-5)
        assert m["metric"]["delta_1"] == delta_1
        assert m["median"]["abs_rel"] < 1e-6  # a pure scale error vanishes after median alignment


def test_depth_resize_modes_on_a_cropped_prediction(synth_root, tmp_path):
    """A prediction on a 224 crop of the 64x48 frames: exact GT mapped onto the crop scores 0 in 'crop' mode."""

    class CropPredictor(GroundTruthPredictor):
        def predict(self, seq, rule, task):
            p = super().predict(seq, rule, task)
            view = CropView.for_size((H, W), 224)
            p.depth = np.stack([view.map_depth(d) for d in p.depth])
            p.intrinsics = np.stack([view.map_intrinsics(k) for k in p.intrinsics])
            p.view = view
            return p

    crop = _metrics(run_evaluation(_cfg(synth_root, tmp_path / "c", "depth", depth_resize="crop"), CropPredictor()))
    orig = _metrics(run_evaluation(_cfg(synth_root, tmp_path / "o", "depth"), CropPredictor()))
    for s in ("seq_a", "seq_b"):
        assert crop[s]["metric"]["abs_rel"] == 0.0
        assert crop[s]["metric"]["num_valid"] == N * 224 * 224
        # the original stretches the crop over the full frame: a real, non-zero error
        assert orig[s]["metric"]["num_valid"] == N * W * H
        assert 0.01 < orig[s]["metric"]["abs_rel"] < 0.5


def test_crop_view_matches_preprocessing():
    from ttt3r.preprocess import resize_and_crop

    for w0, h0 in [(64, 48), (640, 480), (1024, 436), (1242, 375), (480, 640), (300, 300)]:
        for size in (224, 512):
            out = resize_and_crop(Image.new("RGB", (w0, h0)), size)
            assert CropView.for_size((h0, w0), size).hw == (out.size[1], out.size[0])
    # intrinsics and depth sampling agree: a pixel's ray through the mapped K hits the source pixel it sampled
    view = CropView.for_size((480, 640), 224)
    K0 = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    K1 = view.map_intrinsics(K0)
    xx, yy = view.source_coords()
    ray_x1 = (np.arange(view.hw[1]) - K1[0, 2]) / K1[0, 0]
    np.testing.assert_allclose(ray_x1, (xx[0] - K0[0, 2]) / K0[0, 0], atol=1e-12)
    np.testing.assert_allclose(resize_cubic(np.full((10, 12), 3.0), (40, 7)), 3.0, rtol=1e-6)


def test_resize_cubic_uses_the_opencv_kernel():
    # halving: output j samples source x = 2j + 0.5, taps 2j-1..2j+2 with OpenCV's (a = -0.75)
    # weights at t = 0.5: -0.09375, 0.59375, 0.59375, -0.09375; borders replicate
    x = np.array([[1.0, 2, 4, 8, 16, 32, 64, 128]])
    out = resize_cubic(x, (1, 4))[0]
    w = np.array([-0.09375, 0.59375, 0.59375, -0.09375])
    assert out[1] == pytest.approx(w @ [2, 4, 8, 16])
    assert out[0] == pytest.approx(w @ [1, 1, 2, 4])
    assert out[3] == pytest.approx(w @ [32, 64, 128, 128])


class _Recon(SynthDataset):
    tasks = ("pose", "depth", "recon")


def test_recon_protocol_on_ground_truth(synth_root, tmp_path):
    from ttt3r.eval.protocols import recon_point_clouds
    from ttt3r.geometry import transform_points, unproject

    # the ground-truth cloud is the world unprojection of every GT pixel (64x48 fits in the 224 crop)
    seq = _Recon(synth_root).load("seq_a")
    pr, gt = recon_point_clouds(seq, GroundTruthPredictor(scale=3.0).predict(seq, "ttt3r", "recon"))
    direct = np.concatenate([transform_points(gt_poses(0)[i], unproject(gt_depth(0, i), K)).reshape(-1, 3) for i in range(N)])
    np.testing.assert_allclose(gt, direct, atol=1e-9)
    np.testing.assert_allclose(pr, direct, atol=1e-5)  # scale 3 and the first-camera frame are undone
    cfg = _cfg(synth_root, tmp_path / "r", "recon", loader=_Recon(synth_root))
    for m in _metrics(run_evaluation(cfg, GroundTruthPredictor(scale=3.0))).values():
        assert m["accuracy"] < 1e-6 and m["completeness"] < 1e-6
        assert m["nc"] == pytest.approx(1.0, abs=1e-9)
        assert m["num_points_pred"] == m["num_points_gt"] == N * W * H  # 64x48 is inside the 224 centre crop


# ---------------------------------------------------------------- cache, shards, merge, Ray


class _Interrupt(GroundTruthPredictor):
    def __init__(self, stop_at: int) -> None:
        super().__init__(scale=1.7)
        self.stop_at = stop_at

    def predict(self, seq, rule, task):
        if self.calls + 1 == self.stop_at:
            raise KeyboardInterrupt
        return super().predict(seq, rule, task)

    def describe(self):
        return GroundTruthPredictor(scale=1.7).describe()


def test_cache_resumes_an_interrupted_run(synth_root, tmp_path):
    cfg = _cfg(synth_root, tmp_path)
    first = _Interrupt(stop_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(cfg, first)
    assert first.calls == 2
    assert len(list(iter_records(tmp_path))) == 2
    second = GroundTruthPredictor(scale=1.7)
    s2 = run_evaluation(cfg, second)
    assert second.calls == 2 and s2.cached == 2 and s2.computed == 2 and len(s2.records) == 4
    third = GroundTruthPredictor(scale=1.7)
    run_evaluation(cfg, third)
    assert third.calls == 0
    record_path(tmp_path, "pose", "synth", "ttt3r", "seq_b").unlink()
    fourth = GroundTruthPredictor(scale=1.7)
    run_evaluation(cfg, fourth)
    assert fourth.calls == 1
    # other settings -> different fingerprint -> recomputed
    fifth = GroundTruthPredictor(scale=2.0)
    run_evaluation(cfg, fifth)
    assert fifth.calls == 4


def test_shards_partition_and_merge_equals_unsharded(synth_root, tmp_path):
    noise = {"seq_a": _orthogonal_noise(gt_poses(0), 3, 0.1), "seq_b": _orthogonal_noise(gt_poses(1), 4, 0.1)}
    noise4 = {k: v for k, v in noise.items()}  # same noise; the 4-frame variant uses its first rows
    pred = GroundTruthPredictor(translation_noise=noise4)
    full = tmp_path / "full"
    run_evaluation(_cfg(synth_root, full, frames=(None, 5), plots=True), pred)
    sharded = tmp_path / "sharded"
    seen = []
    for i in range(3):
        s = run_evaluation(_cfg(synth_root, sharded, frames=(None, 5), shard=(i, 3), plots=True), pred)
        seen += [(r["variant"], r["sequence"]) for r in s.records if r["rule"] == "cut3r"]
        assert s.files == []  # shards only fill the cache
    assert sorted(seen) == sorted({("synth", "seq_a"), ("synth", "seq_b"), ("synth@5", "seq_a"), ("synth@5", "seq_b")})
    assert len(seen) == 4  # disjoint
    merge(sharded)
    for rel in ["tables/pose/synth.md", "tables/pose/synth.csv", "tables/pose/synth.json",
                "tables/pose/synth@5.md", "tables/pose/synth@5.csv", "tables/pose/synth@5.json", "summary_pose.md"]:
        assert (sharded / rel).read_text() == (full / rel).read_text(), rel
    assert (sharded / "plots/pose/length_synth.png").is_file()


def test_missing_ray_is_a_one_line_error(synth_root, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(TTT3RError, match=r"--ray needs Ray.*pip install"):
        run_evaluation(_cfg(synth_root, tmp_path), GroundTruthPredictor(), ray="local")


def test_session_predictor_loads_its_network_once_per_process(monkeypatch, tmp_path):
    import pickle

    import ttt3r.api
    from ttt3r.eval import predictors

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    loads = []
    monkeypatch.setattr(ttt3r.api, "load_model", lambda w, **kw: loads.append(w) or object())
    monkeypatch.setattr(predictors, "_MODELS", {})
    a = predictors.SessionPredictor(weights, device="cpu")
    m = a.model()
    b = pickle.loads(pickle.dumps(a))  # what a Ray worker receives: settings, not the network
    assert b._model is None
    assert b.model() is m and predictors.SessionPredictor(weights, device="cpu").model() is m
    assert len(loads) == 1


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    assert shard_items(range(7), (1, 3)) == [1, 4]
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(TTT3RError, match="--shard"):
            parse_shard(bad)


def test_ray_run_equals_local_run(synth_root, tmp_path, released_ckpt):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[default]')")
    from ttt3r.eval.predictors import SessionPredictor

    noise = {"seq_a": _orthogonal_noise(gt_poses(0), 5, 0.1)}
    pred = GroundTruthPredictor(scale=1.3, depth_factor=1.05, translation_noise=noise)
    local = run_evaluation(_cfg(synth_root, tmp_path / "local", "depth"), pred)
    local_pose = run_evaluation(_cfg(synth_root, tmp_path / "local_p"), pred)
    net = SessionPredictor(released_ckpt("tiny224"), device="cpu")
    net_cfg = {"frames": (3,), "rules": ("ttt3r",), "seqs": ("seq_a",)}
    local_net = run_evaluation(_cfg(synth_root, tmp_path / "local_n", **net_cfg), net)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_evaluation(_cfg(synth_root, tmp_path / "ray", "depth"), pred, ray="local")
        remote_pose = run_evaluation(_cfg(synth_root, tmp_path / "ray_p"), pred, ray="local")
        # the real network in a Ray worker (loaded there from the checkpoint path)
        remote_net = run_evaluation(_cfg(synth_root, tmp_path / "ray_n", **net_cfg), net, ray="local")
    finally:
        ray.shutdown()
    assert remote_net.failures == [] and remote_net.computed == 1
    a, b = local_net.records[0]["result"]["metrics"], remote_net.records[0]["result"]["metrics"]
    assert b["ate"]["rmse"] == pytest.approx(a["ate"]["rmse"], rel=1e-3)  # thread counts may differ
    assert b["rpe_rot_deg"]["rmse"] == pytest.approx(a["rpe_rot_deg"]["rmse"], rel=1e-3)
    assert remote.computed == 4 and remote.failures == []

    def strip(s):
        return sorted((r["rule"], r["sequence"], json.dumps(r["result"], sort_keys=True)) for r in s.records)

    assert strip(remote) == strip(local)
    assert strip(remote_pose) == strip(local_pose)
    assert (tmp_path / "ray" / "tables/depth/synth.csv").read_text() == (tmp_path / "local" / "tables/depth/synth.csv").read_text()


# ---------------------------------------------------------------- real network, CLI, errors


def test_session_predictor_end_to_end_via_cli(synth_root, tmp_path, released_ckpt, capsys):
    from ttt3r.cli import main

    ckpt = released_ckpt("tiny224")
    out = tmp_path / "out"
    common = ["--dataset", "synth", "--root", str(synth_root), "--weights", str(ckpt), "--device", "cpu",
              "--out", str(out), "--seqs", "seq_a"]
    rc = main(["eval", "pose", *common, "--frames", "3"])
    assert rc == 0, capsys.readouterr().err
    rc = main(["eval", "depth", *common, "--frames", "2", "--update", "ttt3r"])
    assert rc == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "[1/1] depth synth@2 ttt3r seq_a" in err and "ETA" in err
    for t in ("pose/synth@3", "depth/synth@2"):
        for ext in ("md", "csv", "json"):
            assert (out / "tables" / f"{t}.{ext}").stat().st_size > 0
    js = json.loads((out / "tables/pose/synth@3.json").read_text())
    assert js["rules"] == ["cut3r", "ttt3r"] and js["sequences"] == ["seq_a"]
    for rule in ("cut3r", "ttt3r"):
        assert np.isfinite(js["mean"][rule]["ate"]) and js["mean"][rule]["ate"] > 0
        assert js["per_sequence"]["seq_a"][rule]["num_poses"] == 3
    dj = json.loads((out / "tables/depth/synth@2.json").read_text())
    assert set(dj["mean"]) == {"metric", "scale_l1", "scale_shift"}
    assert all(np.isfinite(v["abs_rel"]) for a in dj["mean"].values() for v in a.values())
    assert len(list((out / "plots/pose/synth@3").rglob("*.png"))) == 2  # trajectories, one per rule
    md = (out / "tables/pose/synth@3.md").read_text()
    assert "ATE cut3r" in md and "ATE ttt3r" in md and "**mean**" in md
    assert "pose: synth@3" in (out / "summary_pose.md").read_text()
    assert "depth: synth@2" in (out / "summary_depth.md").read_text()
    assert json.loads((out / "run.json").read_text())["argv"][:3] == ["ttt3r", "eval", "depth"]
    # rerun: everything cached, nothing recomputed
    rc = main(["eval", "pose", *common, "--frames", "3"])
    assert rc == 0 and "2 cached result(s) reused" in capsys.readouterr().err


def test_session_predictor_recon_uses_world_head(synth_root, released_ckpt):
    from ttt3r.eval.protocols import recon_point_clouds
    from ttt3r.eval.predictors import SessionPredictor
    from ttt3r.eval.runner import truncate

    seq = truncate(_Recon(synth_root).load("seq_a"), 2)
    pred = SessionPredictor(released_ckpt("tiny224"), device="cpu").predict(seq, "ttt3r", "recon")
    # 64x48 -> 299x224 -> centre 224x224 crop; the world head's points come along for recon
    assert pred.depth.shape == (2, 224, 224) and pred.points_world.shape == (2, 224, 224, 3)
    assert pred.view == CropView.for_size((H, W), 224)
    pr, gt = recon_point_clouds(seq, pred)
    assert pr.shape == gt.shape == (2 * 224 * 224, 3) and np.isfinite(pr).all()
    # after the protocol's normalisation both clouds share the ground truth's median depth in camera 1
    z_gt = (gt - gt_poses(0)[0, :3, 3]) @ gt_poses(0)[0, :3, :3]
    z_pr = (pr - gt_poses(0)[0, :3, 3]) @ gt_poses(0)[0, :3, :3]
    assert np.median(z_pr[:, 2]) == pytest.approx(np.median(z_gt[:, 2]), rel=1e-6)


def test_missing_files_are_one_line_errors(synth_root, tmp_path, capsys):
    import shutil

    from ttt3r.cli import main

    broken = tmp_path / "broken"
    shutil.copytree(synth_root, broken)
    (broken / "seq_b" / "depth" / "000003.npy").unlink()
    rc = main(["eval", "depth", "--dataset", "synth", "--root", str(broken), "--oracle", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [ln for ln in err.splitlines() if "failed" in ln]
    assert len(lines) == 2 and all("seq_b/depth/000003.npy" in ln for ln in lines)
    md = (tmp_path / "o/tables/depth/synth.md").read_text()
    assert "| seq_a | 8 |" in md and "seq_b" not in md  # the good sequence still ran

    rc = main(["eval", "pose", "--dataset", "synth", "--root", str(tmp_path / "nope"), "--oracle", "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "dataset root not found" in err and "nope" in err
    assert not (tmp_path / "o2").exists()  # nothing written for a run that cannot start

    rc = main(["eval", "recon", "--dataset", "synth", "--root", str(broken), "--oracle", "--out", str(tmp_path / "o3")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "no recon benchmark" in err

    rc = main(["eval", "merge", str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "no result cache" in err


# ---------------------------------------------------------------- --known: the ground-truth cameras fed


def _record_rays(monkeypatch) -> list:
    """Every ray map a Session is stepped with (None for an image alone)."""
    from ttt3r.session import Session

    seen, step = [], Session.step

    def spy(self, image, name=None, rays=None):
        seen.append(None if rays is None else np.array(rays))
        return step(self, image, name, rays=rays)

    monkeypatch.setattr(Session, "step", spy)
    return seen


def test_known_poses_feeds_every_camera_and_gives_zero_ate(synth_root, tmp_path, released_ckpt, monkeypatch):
    from ttt3r.cameras import intrinsics_to_network, ray_map, relative_poses
    from ttt3r.cli import main

    seen = _record_rays(monkeypatch)
    rc = main(["eval", "pose", "--dataset", "synth", "--root", str(synth_root), "--seqs", "seq_a",
               "--weights", str(released_ckpt("tiny224")), "--update", "ttt3r", "--frames", "3",
               "--device", "cpu", "--known", "poses", "--no-plots", "--out", str(tmp_path / "o")])
    assert rc == 0
    rec = next(iter_records(tmp_path / "o"))
    assert rec["result"]["metrics"]["ate"]["rmse"] < 1e-6 and rec["result"]["metrics"]["num_poses"] == 3
    K_net = intrinsics_to_network(K, (W, H), 224)
    rel = relative_poses(gt_poses(0)[:3])
    assert len(seen) == 3
    for i, r in enumerate(seen):  # the network got each frame's ground-truth camera
        np.testing.assert_allclose(r, ray_map(rel[i], K_net, 224, 224), atol=1e-6)


def test_known_intrinsics_conditions_only_the_first_frame(synth_root, released_ckpt, monkeypatch):
    from ttt3r import Session, load_model
    from ttt3r.cameras import intrinsics_to_network, ray_map
    from ttt3r.eval.predictors import SessionPredictor

    from ttt3r.eval.runner import truncate

    seq = truncate(get_dataset("synth", root=synth_root).load("seq_a"), 3)
    model = load_model(released_ckpt("tiny224"), device="cpu")
    seen = _record_rays(monkeypatch)
    known = SessionPredictor("tiny224", device="cpu", model=model, known="intrinsics").predict(seq, "ttt3r", "pose")
    K_net = intrinsics_to_network(K, (W, H), 224)
    rays0 = ray_map(np.eye(4), K_net, 224, 224)
    assert len(seen) == len(seq) and all(r is None for r in seen[1:])
    np.testing.assert_allclose(seen[0], rays0, atol=1e-6)
    np.testing.assert_allclose(known.intrinsics, np.broadcast_to(K_net, known.intrinsics.shape), atol=1e-9)
    # otherwise the plain pipeline: the poses are the network's, as a Session fed the same inputs gives
    sess = Session(model, update="ttt3r", size=224)
    manual = [sess.step(p, p.name, rays=rays0 if i == 0 else None).pose for i, p in enumerate(seq.image_paths)]
    np.testing.assert_array_equal(known.poses, np.stack(manual))
    plain = SessionPredictor("tiny224", device="cpu", model=model).predict(seq, "ttt3r", "pose")
    assert np.abs(plain.poses - known.poses).max() > 1e-4  # the conditioning reached the network
    assert plain.view == known.view and plain.depth.shape == known.depth.shape
