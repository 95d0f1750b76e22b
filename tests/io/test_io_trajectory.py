"""Trajectory files (ttt3r.io.trajectory): round trips, agreement with evo's readers, malformed input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ttt3r.errors import TTT3RError
from ttt3r.io.trajectory import (
    Trajectory,
    read_euroc,
    read_kitti,
    read_trajectory,
    read_tum,
    write_trajectory,
)

DATA = Path(__file__).parents[1] / "data" / "trajectories"


def _random_traj(n=25, seed=0) -> Trajectory:
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = Rotation.random(n, random_state=rng).as_matrix()
    poses[:, :3, 3] = rng.normal(scale=3.0, size=(n, 3))
    stamps = 1305031102.160407 + np.cumsum(rng.uniform(0.01, 0.05, n))
    return Trajectory(stamps, poses)


@pytest.mark.parametrize("fmt", ["tum", "kitti", "euroc"])
def test_round_trip(tmp_path, fmt):
    traj = _random_traj()
    path = tmp_path / f"traj.{fmt}"
    write_trajectory(path, traj, fmt)
    back = read_trajectory(path, fmt)
    np.testing.assert_allclose(back.poses, traj.poses, atol=1e-12)
    if fmt == "tum":
        np.testing.assert_array_equal(back.timestamps, traj.timestamps)
    elif fmt == "euroc":
        np.testing.assert_allclose(back.timestamps, traj.timestamps, atol=1e-9)
    else:
        np.testing.assert_array_equal(back.timestamps, np.arange(len(traj)))


def test_tum_reader_matches_evo():
    fi = pytest.importorskip("evo.tools.file_interface")
    for name in ("freiburg1_xyz-groundtruth.txt", "freiburg1_xyz-rgbdslam.txt"):
        ours = read_tum(DATA / name)
        theirs = fi.read_tum_trajectory_file(str(DATA / name))
        np.testing.assert_array_equal(ours.timestamps, theirs.timestamps)
        np.testing.assert_allclose(ours.poses, np.array(theirs.poses_se3), atol=1e-12)


def test_written_files_read_by_evo(tmp_path):
    fi = pytest.importorskip("evo.tools.file_interface")
    traj = _random_traj(seed=3)
    write_trajectory(tmp_path / "a.txt", traj, "tum")
    write_trajectory(tmp_path / "a.kitti", traj, "kitti")
    write_trajectory(tmp_path / "a.csv", traj, "euroc")
    np.testing.assert_allclose(np.array(fi.read_tum_trajectory_file(str(tmp_path / "a.txt")).poses_se3), traj.poses, atol=1e-12)
    np.testing.assert_allclose(np.array(fi.read_kitti_poses_file(str(tmp_path / "a.kitti")).poses_se3), traj.poses, atol=1e-12)
    e = fi.read_euroc_csv_trajectory(str(tmp_path / "a.csv"))
    np.testing.assert_allclose(np.array(e.poses_se3), traj.poses, atol=1e-12)
    np.testing.assert_allclose(e.timestamps, traj.timestamps, atol=1e-9)


def test_euroc_quaternion_order(tmp_path):
    # 90 degrees about z: q_w = q_z = sqrt(1/2); position (1, 2, 3); 1 s = 1e9 ns.
    h = np.sqrt(0.5)
    p = tmp_path / "data.csv"
    p.write_text(f"#timestamp [ns],p_x,p_y,p_z,q_w,q_x,q_y,q_z,v_x\n1000000000,1,2,3,{h},0,0,{h},9\n")
    t = read_euroc(p)
    assert t.timestamps[0] == 1.0
    np.testing.assert_allclose(t.poses[0, :3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(t.poses[0, :3, 3], [1, 2, 3])


def test_kitti_row_major(tmp_path):
    p = tmp_path / "k.txt"
    p.write_text("1 0 0 10 0 1 0 20 0 0 1 30\n")
    t = read_kitti(p)
    np.testing.assert_array_equal(t.poses[0], [[1, 0, 0, 10], [0, 1, 0, 20], [0, 0, 1, 30], [0, 0, 0, 1]])


@pytest.mark.parametrize(
    ("fmt", "text", "pattern"),
    [
        ("tum", "# c\n0 0 0 0 0 0 0 1\n1 0 0 0 0 0 1\n", r":3: expected 8 numbers"),
        ("tum", "0 0 0 0 0 0 0 1\n1 0 x 0 0 0 0 1\n", r":2: 'x' is not a number"),
        ("tum", "0 0 0 nan 0 0 0 1\n", r":1: non-finite"),
        ("tum", "0 0 0 0 0 0 0 0\n", r"zero quaternion"),
        ("tum", "# only a comment\n\n", r"no poses found"),
        ("kitti", "1 0 0 0 0 1 0 0 0 0 1\n", r":1: expected 12 numbers"),
        ("euroc", "#h\n1,2,3\n", r":2: expected at least 8 numbers"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, fmt, text, pattern):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(TTT3RError, match=pattern) as info:
        read_trajectory(p, fmt)
    msg = str(info.value)
    assert str(p) in msg and "\n" not in msg


def test_pose_matrix_rows_must_not_change_width(tmp_path):
    from ttt3r.io.trajectory import read_pose_matrices

    p = tmp_path / "poses.txt"
    p.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
    with pytest.raises(TTT3RError, match=r"poses.txt:2: 16 numbers, but the lines before have 12"):
        read_pose_matrices(p, allow_16=True)
    p.write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n-inf -inf -inf -inf -inf -inf -inf -inf -inf -inf -inf -inf 0 0 0 1\n")
    poses = read_pose_matrices(p, allow_16=True, finite=False)
    assert poses.shape == (2, 4, 4) and np.isinf(poses[1, :3]).all()
    with pytest.raises(TTT3RError, match=r":2: non-finite"):
        read_pose_matrices(p, allow_16=True)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(TTT3RError, match="not found"):
        read_tum(tmp_path / "nope.txt")
    with pytest.raises(TTT3RError, match="unknown trajectory format"):
        read_trajectory(tmp_path / "x", "ply")  # type: ignore[arg-type]


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    traj = _random_traj(3)
    write_trajectory(tmp_path / "t.txt", traj)
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_tum_line_digits_and_header(tmp_path):
    from ttt3r.io.trajectory import format_tum, pose_to_tum, tum_line, tum_to_pose, write_tum

    h = np.sqrt(0.5)
    pose = np.eye(4)
    pose[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
    pose[:3, 3] = [1.0, 2.0, 1.0 / 3.0]
    row = pose_to_tum(pose)
    np.testing.assert_allclose(row, [1.0, 2.0, 1.0 / 3.0, 0.0, 0.0, h, h], atol=1e-15)
    np.testing.assert_allclose(tum_to_pose(row), pose, atol=1e-15)
    assert tum_line(0.5, row, (6, 9)).split()[:4] == ["0.500000", "1", "2", "0.333333333"]
    assert tum_line(0.5, row).split()[3] == repr(1.0 / 3.0)  # shortest round trip
    text = format_tum(Trajectory([0.5], pose[None]), header="# mine", digits=(9, 12))
    assert text.splitlines()[0] == "# mine" and text.splitlines()[1].startswith("0.500000000 1 2 0.333333333333 ")
    with pytest.raises(ValueError, match="header"):
        write_tum(tmp_path / "t.txt", Trajectory([0.5], pose[None]), header="no comment")
