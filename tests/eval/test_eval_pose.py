"""ATE / RPE against evo (the reference implementation of the paper's protocol).

evo is GPL: it is imported here only, never in ``src/``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ttt3r.cli import main as cli_main
from ttt3r.errors import TTT3RError
from ttt3r.eval.align import align_trajectory
from ttt3r.eval.metrics_pose import ErrorStats, pair_indices, pose_metrics
from ttt3r.eval.trajectory import associate
from ttt3r.geometry import Sim3, umeyama
from ttt3r.io.trajectory import read_tum

evo_sync = pytest.importorskip("evo.core.sync")
from evo.core.metrics import PoseRelation, Unit  # noqa: E402
import evo.main_ape as main_ape  # noqa: E402
import evo.main_rpe as main_rpe  # noqa: E402
from evo.tools import file_interface  # noqa: E402

DATA = Path(__file__).parents[1] / "data" / "trajectories"
GT = DATA / "freiburg1_xyz-groundtruth.txt"
ESTIMATES = [DATA / "freiburg1_xyz-ORB_kf_mono.txt", DATA / "freiburg1_xyz-rgbdslam.txt"]
EVO_ALIGN = {"sim3": (True, True), "se3": (True, False), "none": (False, False)}


def _evo_pair(est_path):
    ref = file_interface.read_tum_trajectory_file(str(GT))
    est = file_interface.read_tum_trajectory_file(str(est_path))
    return evo_sync.associate_trajectories(ref, est)


def _evo_stats(ref, est, mode, relation, rpe, delta=1, all_pairs=True):
    align, scale = EVO_ALIGN[mode]
    ref, est = copy.deepcopy(ref), copy.deepcopy(est)
    if rpe:
        return main_rpe.rpe(
            ref, est, pose_relation=relation, delta=delta, delta_unit=Unit.frames,
            rel_delta_tol=0.01, all_pairs=all_pairs, align=align, correct_scale=scale,
        ).stats
    return main_ape.ape(ref, est, pose_relation=relation, align=align, correct_scale=scale).stats


def _assert_stats(ours: ErrorStats, theirs: dict) -> None:
    for key in ("rmse", "mean", "median", "std", "min", "max", "sse"):
        assert getattr(ours, key) == pytest.approx(theirs[key], abs=1e-6, rel=1e-9), key


@pytest.mark.parametrize("est_path", ESTIMATES, ids=lambda p: p.stem)
def test_association_matches_evo(est_path):
    ref_e, est_e = _evo_pair(est_path)
    ref, est = associate(read_tum(GT), read_tum(est_path))
    np.testing.assert_array_equal(ref.timestamps, ref_e.timestamps)
    np.testing.assert_array_equal(est.timestamps, est_e.timestamps)
    np.testing.assert_allclose(ref.poses, np.array(ref_e.poses_se3), atol=1e-12)
    np.testing.assert_allclose(est.poses, np.array(est_e.poses_se3), atol=1e-12)


@pytest.mark.parametrize("est_path", ESTIMATES, ids=lambda p: p.stem)
@pytest.mark.parametrize("mode", ["sim3", "se3", "none"])
@pytest.mark.parametrize("all_pairs", [True, False])
@pytest.mark.parametrize("delta", [1, 3])
def test_ate_rpe_match_evo(est_path, mode, all_pairs, delta):
    ref_e, est_e = _evo_pair(est_path)
    ref, est = associate(read_tum(GT), read_tum(est_path))
    m = pose_metrics(ref.poses, est.poses, mode, delta=delta, all_pairs=all_pairs)
    _assert_stats(m.ate, _evo_stats(ref_e, est_e, mode, PoseRelation.translation_part, rpe=False))
    _assert_stats(
        m.rpe_trans,
        _evo_stats(ref_e, est_e, mode, PoseRelation.translation_part, True, delta, all_pairs),
    )
    _assert_stats(
        m.rpe_rot,
        _evo_stats(ref_e, est_e, mode, PoseRelation.rotation_angle_deg, True, delta, all_pairs),
    )


def test_pairs_match_evo_filter():
    from evo.core.filters import filter_pairs_by_index

    poses = [np.eye(4)] * 11
    for delta in (1, 2, 4):
        for all_pairs in (True, False):
            ours = [tuple(p) for p in pair_indices(11, delta, all_pairs).tolist()]
            assert ours == filter_pairs_by_index(poses, delta, all_pairs)


def _random_poses(rng, n):
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = Rotation.random(n, random_state=rng).as_matrix()
    poses[:, :3, 3] = rng.normal(size=(n, 3))
    return poses


def test_sim3_transformed_copy_has_zero_error():
    rng = np.random.default_rng(0)
    ref = _random_poses(rng, 20)
    sim = Sim3(Rotation.random(random_state=rng).as_matrix(), np.array([1.0, -2.0, 3.0]), 0.37)
    est = sim.apply_poses(ref)
    m = pose_metrics(ref, est, "sim3")
    assert m.ate.rmse < 1e-10 and m.rpe_trans.rmse < 1e-10 and m.rpe_rot.rmse < 1e-6
    assert m.alignment.s == pytest.approx(1 / 0.37)
    # Without scale correction the scale error remains.
    assert pose_metrics(ref, est, "se3").ate.rmse > 0.1


def test_umeyama_recovers_known_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    R = Rotation.from_rotvec([0.3, -0.2, 0.9]).as_matrix()
    dst = 2.5 * src @ R.T + np.array([0.5, 1.0, -1.0])
    fit = umeyama(src, dst, with_scale=True)
    np.testing.assert_allclose(fit.R, R, atol=1e-12)
    np.testing.assert_allclose(fit.t, [0.5, 1.0, -1.0], atol=1e-12)
    assert fit.s == pytest.approx(2.5)
    np.testing.assert_allclose(fit.apply_points(src), dst, atol=1e-12)
    np.testing.assert_allclose(fit.matrix[:3, :3], 2.5 * R, atol=1e-12)
    R2, t2, s2 = fit
    assert s2 == fit.s and R2 is fit.R and t2 is fit.t
    rigid = umeyama(src, dst, with_scale=False)
    assert rigid.s == 1.0
    np.testing.assert_allclose(rigid.R, R, atol=1e-12)  # rotation is independent of scale


def test_hand_computed_ate_without_alignment():
    ref = np.tile(np.eye(4), (3, 1, 1))
    ref[:, 0, 3] = [0.0, 1.0, 2.0]
    est = ref.copy()
    est[:, 1, 3] = [0.0, 0.0, 3.0]  # errors 0, 0, 3 -> rmse sqrt(3)
    m = pose_metrics(ref, est, "none")
    assert m.ate.rmse == pytest.approx(np.sqrt(3.0))
    assert m.ate.max == 3.0 and m.ate.median == 0.0
    # RPE pairs (0,1): 0 error; (1,2): relative translation differs by (0, 3, 0).
    assert m.rpe_trans.max == pytest.approx(3.0) and m.rpe_trans.min == 0.0


def test_degenerate_alignment_is_a_user_error():
    ref = np.tile(np.eye(4), (5, 1, 1))
    ref[:, 0, 3] = np.arange(5.0)  # collinear
    with pytest.raises(TTT3RError, match="degenerate"):
        align_trajectory(ref, ref, "sim3")
    turning = np.tile(np.eye(4), (5, 1, 1))  # a camera that only turns (the synthetic 'pan')
    turning[:, :3, 3] = [1.0, 2.0, 0.5]
    for k in range(5):
        c, s = np.cos(0.1 * k), np.sin(0.1 * k)
        turning[k, :3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    with pytest.raises(TTT3RError, match="never move .* only rotation errors"):
        align_trajectory(ref, turning, "sim3")
    aligned, _ = align_trajectory(turning, turning, "none")  # no alignment asked: fine
    np.testing.assert_array_equal(aligned, turning)


def test_bad_shapes_and_modes():
    with pytest.raises(TTT3RError):
        pose_metrics(np.zeros((3, 4, 4)), np.zeros((4, 4, 4)))
    eye = np.tile(np.eye(4), (3, 1, 1))
    with pytest.raises(TTT3RError, match="unknown alignment"):
        pose_metrics(eye, eye, "affine")  # type: ignore[arg-type]
    with pytest.raises(TTT3RError, match="delta"):
        pose_metrics(eye, eye, "none", delta=0)


def test_cli_pose_json_matches_evo(capsys):
    est_path = ESTIMATES[0]
    rc = cli_main(["metrics", "pose", str(GT), str(est_path), "--align", "se3", "--no-all-pairs"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    ref_e, est_e = _evo_pair(est_path)
    assert out["ate"]["rmse"] == pytest.approx(
        _evo_stats(ref_e, est_e, "se3", PoseRelation.translation_part, False)["rmse"], abs=1e-9
    )
    assert out["rpe_rot_deg"]["rmse"] == pytest.approx(
        _evo_stats(ref_e, est_e, "se3", PoseRelation.rotation_angle_deg, True, 1, False)["rmse"], abs=1e-9
    )
    assert out["align"] == "se3" and out["all_pairs"] is False and out["num_poses"] == ref_e.num_poses


def test_cli_user_error_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n")
    rc = cli_main(["metrics", "pose", str(GT), str(bad)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "\n" not in err and f"{bad}:1" in err


def test_valid_mask_drops_unknown_reference_poses():
    rng = np.random.default_rng(5)
    ref = _random_poses(rng, 12)
    est = _random_poses(rng, 12)
    valid = np.ones(12, bool)
    valid[[3, 7]] = False
    ref_bad = ref.copy()
    ref_bad[~valid] = np.nan  # as ScanNet's -inf poses after loading
    masked = pose_metrics(ref_bad, est, "sim3", valid=valid)
    subset = pose_metrics(ref[valid], est[valid], "sim3")
    assert masked.ate == subset.ate and masked.rpe_rot == subset.rpe_rot
    with pytest.raises(TTT3RError, match="non-finite"):
        pose_metrics(ref_bad, est, "sim3")
    with pytest.raises(TTT3RError, match="valid mask"):
        pose_metrics(ref, est, "sim3", valid=valid[:5])


@pytest.mark.parametrize(("fmt", "est_fmt"), [("kitti", None), ("euroc", None), ("tum", "euroc")])
def test_cli_other_formats(tmp_path, capsys, fmt, est_fmt):
    from ttt3r.io.trajectory import Trajectory, write_trajectory

    ref_t, est_t = associate(read_tum(GT), read_tum(ESTIMATES[1]))
    write_trajectory(tmp_path / "gt", ref_t, fmt)
    # give the estimate the reference's clock so both pair up by time as well as by line
    write_trajectory(tmp_path / "est", Trajectory(ref_t.timestamps, est_t.poses), est_fmt or fmt)
    argv = ["metrics", "pose", str(tmp_path / "gt"), str(tmp_path / "est"), "--format", fmt]
    if est_fmt:
        argv += ["--est-format", est_fmt]
    assert cli_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    expected = pose_metrics(ref_t.poses, est_t.poses, "sim3")
    assert out["match"] == ("index" if fmt == "kitti" else "time")
    assert out["num_poses"] == len(ref_t)
    assert out["ate"]["rmse"] == pytest.approx(expected.ate.rmse, abs=1e-9)
    assert out["rpe_trans"]["rmse"] == pytest.approx(expected.rpe_trans.rmse, abs=1e-9)
    assert out["rpe_rot_deg"]["rmse"] == pytest.approx(expected.rpe_rot.rmse, abs=1e-7)


def test_cli_index_match_needs_equal_lengths(tmp_path, capsys):
    from ttt3r.io.trajectory import write_trajectory

    t = read_tum(GT)
    write_trajectory(tmp_path / "a.txt", t.subset(np.arange(10)), "kitti")
    write_trajectory(tmp_path / "b.txt", t.subset(np.arange(9)), "kitti")
    assert cli_main(["metrics", "pose", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--format", "kitti"]) == 2
    assert "cannot pair by index" in capsys.readouterr().err
