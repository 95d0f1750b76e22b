"""ttt3r.known: pose files read (TUM, KITTI, EuRoC, COLMAP images.txt) and matched to frames."""

from __future__ import annotations

import numpy as np
import pytest

from ttt3r.errors import TTT3RError
from ttt3r.geometry import quaternion_to_rotation
from ttt3r.known import FrameKey, GivenCameras, frame_timestamp, match_poses, read_pose_file


def _pose(q_xyzw, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation(np.asarray(q_xyzw, float) / np.linalg.norm(q_xyzw))
    T[:3, 3] = t
    return T


def test_formats_read_the_same_pose(tmp_path):
    q, t = (0.1, -0.2, 0.3, 0.9), (1.0, 2.0, -3.0)
    qn = np.array(q) / np.linalg.norm(q)
    T = _pose(q, t)
    (tmp_path / "p.txt").write_text(f"# tum\n5.5 {' '.join(map(str, t))} {' '.join(map(str, qn))}\n")
    (tmp_path / "k.txt").write_text(" ".join(f"{x:.15g}" for x in T[:3].ravel()) + "\n")
    (tmp_path / "e.csv").write_text(f"#timestamp,x,y,z,qw,qx,qy,qz\n5500000000,{','.join(map(str, t))},"
                                    f"{qn[3]},{qn[0]},{qn[1]},{qn[2]}\n")
    # COLMAP: world-to-camera (qw qx qy qz), then a POINTS2D line that looks like numbers
    R = T[:3, :3].T
    tw = -R @ T[:3, 3]
    from ttt3r.geometry import rotation_to_quaternion

    x, y, z, w = rotation_to_quaternion(R)
    (tmp_path / "images.txt").write_text(
        "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME\n"
        f"1 {w} {x} {y} {z} {tw[0]} {tw[1]} {tw[2]} 1 a.png\n"
        "1 2 3 4 5 6 7 8 9 10 11 12\n")
    tum, kitti = read_pose_file(tmp_path / "p.txt"), read_pose_file(tmp_path / "k.txt")
    euroc, colmap = read_pose_file(tmp_path / "e.csv"), read_pose_file(tmp_path / "images.txt")
    for pf in (tum, kitti, euroc, colmap):
        np.testing.assert_allclose(pf.c2w[0], T, atol=1e-9)
    assert tum.timestamps.tolist() == [5.5] and euroc.timestamps.tolist() == [5.5]
    assert kitti.timestamps is None and colmap.names == ["a.png"] and tum.lines == [2]
    np.testing.assert_allclose(read_pose_file(tmp_path).c2w, colmap.c2w)  # a model folder


def test_frame_timestamps():
    assert frame_timestamp("000012.png") == 12.0
    assert frame_timestamp("1305031102.175304.png") == pytest.approx(1305031102.175304)
    assert frame_timestamp("frame_12.png") is None
    assert frame_timestamp("clip.mp4#3", 0.1) == 0.1


def _tum(n: int, t0: float = 0.0, dt: float = 1.0, path=None):
    from ttt3r.known import PoseFile

    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, 0, 3] = np.arange(n)
    return PoseFile(path or __import__("pathlib").Path("poses.txt"), c2w, list(range(1, n + 1)),
                    t0 + dt * np.arange(n))


def test_match_by_timestamp_with_a_frame_interval():
    keys = [FrameKey(i, f"{i:06d}.png", float(i)) for i in (0, 2, 4)]
    assert match_poses(_tum(6), keys, 6) == [0, 2, 4]
    keys = [FrameKey(i, f"{10 * i:06d}.png", 10.0 * i) for i in range(3)]  # names are times, not indices
    assert match_poses(_tum(30), keys, 3) == [0, 10, 20]
    # one frame without a pose at its time: by order, and then the counts disagree
    with pytest.raises(TTT3RError, match=r"poses.txt: holds 30 poses but the input has 4 frames \(matched by "
                                         r"order: 3 of the 4 frames' timestamps match"):
        match_poses(_tum(30), keys + [FrameKey(3, "000030.png", 30.0)], 4)
    # names 0..5, TUM times in seconds at 30 fps: only frame 0 matches, so by order
    keys = [FrameKey(i, f"{i:06d}.png", float(i)) for i in range(6)]
    assert match_poses(_tum(6, dt=1 / 30), keys, 6) == list(range(6))


def test_match_by_order_when_no_time_matches():
    keys = [FrameKey(i, f"img{i}.png") for i in range(4)]
    assert match_poses(_tum(4, t0=1e9), keys, 4) == [0, 1, 2, 3]
    with pytest.raises(TTT3RError, match="holds 3 poses but the input has 4 frames"):
        match_poses(_tum(3, t0=1e9), keys, 4)
    with pytest.raises(TTT3RError, match="holds 5 poses but the input has 4 frames"):
        match_poses(_tum(5, t0=1e9), keys, 4)


def test_given_cameras_user_frame_round_trip():
    from ttt3r.cameras import Intrinsics
    from ttt3r.results import FrameResult

    G = _pose((0.2, 0.1, -0.3, 0.9), (5, -2, 1))
    poses = {0: G, 1: G @ _pose((0, 0, 0.1, 1), (0.5, 0, 0))}
    K = np.array([[100.0, 0, 60], [0, 100, 45], [0, 0, 1]])
    cams = GivenCameras(Intrinsics(K, "K"), poses, (120, 90)).at_size(224)
    r0 = cams.rays(0, (120, 90), first=True)
    np.testing.assert_allclose(r0[..., :3], 0, atol=1e-12)  # the first camera is the network's origin
    r1 = cams.rays(1, (120, 90), first=False)
    np.testing.assert_allclose(r1[0, 0, :3], [0.5, 0, 0], atol=1e-6)  # relative to the first given pose
    with pytest.raises(TTT3RError, match="frame 1 is 64x48"):
        cams.rays(1, (64, 48), first=False)
    pred = _pose((0, 0.05, 0, 1), (0.4, 0.1, 0))
    res = FrameResult(1, "b", np.ones((224, 224, 3), np.float32), np.ones((224, 224), np.float32), pred.copy(),
                      np.eye(3), np.zeros((224, 224, 3), np.uint8))
    cams.apply(res, 1)
    np.testing.assert_array_equal(res.pose, poses[1])
    np.testing.assert_allclose(res.pose_pred, G @ pred, atol=1e-12)
    np.testing.assert_array_equal(res.intrinsics, cams.K_net)


def test_intrinsics_alone_condition_the_first_frame_only():
    from ttt3r.cameras import Intrinsics, ray_map

    K = np.array([[100.0, 0, 60], [0, 100, 45], [0, 0, 1]])
    cams = GivenCameras(Intrinsics(K, "K"), None, (120, 90)).at_size(224)
    np.testing.assert_array_equal(cams.rays(0, (120, 90), first=True), ray_map(np.eye(4), cams.K_net, *cams.hw))
    assert cams.rays(1, (120, 90), first=False) is None
