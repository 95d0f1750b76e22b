"""``ttt3r reconstruct --intrinsics --poses`` on the known-camera parity fixtures, against the original.

The run is the command a user types::

    ttt3r reconstruct FRAMES --weights W --intrinsics K_source.txt --poses poses_tum.txt --size S

and its folder must hold the original's depth and confidence (within the fixture
tolerances), ``camera/*.npz`` ``pose`` = the given poses, ``intrinsics`` = ``K_net``
and ``pose_pred`` = the original's pose-head pose mapped into the poses' world frame.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import PARITY, close_pixels, parity_meta
from ttt3r.cli import main
from ttt3r.geometry import rotation_to_quaternion, unproject
from ttt3r.io.layout import DEMO_LAYOUT
from ttt3r.io.trajectory import read_tum

POSE_TOL = 1.5e-4  # tests/model/test_known_parity.py: tiny224's saved rotations sit at the fixture's float32 noise


def _user_frame() -> np.ndarray:
    """A rigid transform far from the identity: the user's world frame in the fixture's."""
    a = 0.7
    G = np.eye(4)
    G[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    G[:3, 3] = [3.0, -1.0, 2.5]
    return G


def write_tum(path, poses: np.ndarray) -> None:
    q = rotation_to_quaternion(poses[:, :3, :3])
    rows = [f"{i} {' '.join(f'{x:.12g}' for x in (*T[:3, 3], *qi))}" for i, (T, qi) in enumerate(zip(poses, q))]
    path.write_text("# t tx ty tz qx qy qz qw\n" + "\n".join(rows) + "\n")


def run_known_cli(tmp_path, ckpt, preset: str, rule: str, poses_file=None, extra=()) -> tuple:
    d, meta = PARITY / preset, parity_meta(preset)
    out = tmp_path / "run"
    rc = main(["reconstruct", str(d / "frames"), "--out", str(out), "--weights", str(ckpt),
               "--intrinsics", str(d / "K_source.txt"), "--poses", str(poses_file or d / "poses_tum.txt"),
               "--size", str(meta["size"]), "--update", rule, "--device", "cpu", "--quiet", *extra])
    assert rc == 0
    return out, meta


def check_against_original(out, meta, preset: str, rule: str, given: np.ndarray, G: np.ndarray) -> None:
    """The bar: depth, conf, pose = given, intrinsics = K_net, pose_pred = G @ the original's pose."""
    exp = np.load(PARITY / preset / f"expected_known_{rule}.npz")
    s, n = meta["pixel_stride"], meta["runs"][f"known_{rule}"]["frames_saved"]
    frames = [dict(np.load(DEMO_LAYOUT.paths(out, i)["camera"])) for i in range(n)]
    assert not DEMO_LAYOUT.paths(out, n)["camera"].exists()
    for name in ("depth", "conf"):
        got = np.stack([np.load(DEMO_LAYOUT.paths(out, i)[name]) for i in range(n)])[:, ::s, ::s]
        ok, err, tol = close_pixels(got, exp[f"saved/{name}"])
        assert ok, f"{name}: max err {err:.3g} > tol {tol:.3g}"
    pose = np.stack([f["pose"] for f in frames])
    np.testing.assert_allclose(pose, given, rtol=0, atol=1e-9)
    K = np.stack([f["intrinsics"] for f in frames])
    np.testing.assert_allclose(K, np.broadcast_to(np.array(meta["K_net"]), K.shape), rtol=0, atol=1e-9)
    pred = np.stack([f["pose_pred"] for f in frames])
    want = G @ exp["saved/pose"]
    assert np.abs(pred - want).max() <= POSE_TOL * max(1.0, np.abs(G[:3, 3]).max())
    # the run's other outputs are in the same (given) frame
    traj = read_tum(out / "trajectory.txt")
    np.testing.assert_allclose(traj.poses, given, rtol=0, atol=1e-6)
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["intrinsics"].endswith("K_source.txt") and settings["poses"]


def test_reconstruct_with_known_cameras_equals_the_original(tmp_path, released_ckpt):
    """The exact command of the bar, on known_tiny224 with the fixture's own pose file."""
    preset, rule = "known_tiny224", "ttt3r"
    out, meta = run_known_cli(tmp_path, released_ckpt(preset), preset, rule)
    given = np.load(PARITY / preset / "poses_c2w.npy")[: meta["runs"][f"known_{rule}"]["frames_saved"]]
    check_against_original(out, meta, preset, rule, given, np.eye(4))


@pytest.fixture(scope="module")
def user_frame_run(tmp_path_factory, released_ckpt):
    """known_tiny224, rule cut3r, poses in another world frame G (every pixel fused)."""
    preset, rule = "known_tiny224", "cut3r"
    tmp_path = tmp_path_factory.mktemp("user_frame")
    G = _user_frame()
    n = parity_meta(preset)["runs"][f"known_{rule}"]["frames_saved"]
    c2w = np.load(PARITY / preset / "poses_c2w.npy")
    write_tum(tmp_path / "poses.txt", G @ c2w[:n])
    out, meta = run_known_cli(tmp_path, released_ckpt(preset), preset, rule, tmp_path / "poses.txt",
                              ["--conf-threshold", "0", "--voxel-size", "1e-4"])
    return out, meta, G, G @ c2w, n


def test_known_cameras_in_the_users_world_frame(user_frame_run):
    """Poses in another world frame G: the network sees the same relative cameras (same depth),
    every output is in G's frame, pose_pred = G @ the original's pose."""
    preset, rule = "known_tiny224", "cut3r"
    out, meta, G, all_given, n = user_frame_run
    given = all_given[:n]
    check_against_original(out, meta, preset, rule, given, G)
    from plyfile import PlyData
    from scipy.spatial import cKDTree

    v = PlyData.read(str(out / "points.ply"))["vertex"]
    ply = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float64)
    exp = np.load(PARITY / preset / f"expected_known_{rule}.npz")
    s = meta["pixel_stride"]
    K_s = np.diag([1.0 / s, 1.0 / s, 1.0]) @ np.array(meta["K_net"])  # the fixture's strided pixel grid
    for i in range(n):  # the fixture's pixels (every 4th; fusion takes every 2nd) in G's frame
        # every cloud is the depth (the self-view pointmap's z) back-projected with the given K_net
        z = exp[f"raw/{i:03d}/pts3d_in_self_view"][0, ..., 2].astype(np.float64)
        pts = unproject(z, K_s).reshape(-1, 3)
        want = pts @ given[i, :3, :3].T + given[i, :3, 3]
        dist, _ = cKDTree(ply).query(want)
        tol = 3e-3 * (pts.max() - pts.min()) + 2e-4  # + a voxel diagonal
        assert dist.max() <= tol, f"frame {i}: fused points {dist.max():.3g} from the given-frame points"


def test_render_view_equals_the_originals_query(user_frame_run, tmp_path, capsys):
    """ttt3r render-view on the run, asking for the fixture's extra camera (in G's frame):
    the original's ray-only query view (raw/N), no state update."""
    preset, rule = "known_tiny224", "cut3r"
    out, meta, G, all_given, n = user_frame_run
    write_tum(tmp_path / "query.txt", all_given[n:])
    rc = main(["render-view", str(out), "--poses", str(tmp_path / "query.txt"),
               "--intrinsics", str(PARITY / preset / "K_source.txt"), "--out", str(tmp_path / "views")])
    assert rc == 0
    exp = np.load(PARITY / preset / f"expected_known_{rule}.npz")
    s, q = meta["pixel_stride"], meta["runs"][f"known_{rule}"]["query_view"]
    view = dict(np.load(DEMO_LAYOUT.paths(tmp_path / "views", 0)["camera"]))
    assert not DEMO_LAYOUT.paths(tmp_path / "views", 1)["camera"].exists()
    np.testing.assert_allclose(view["pose"], all_given[n], rtol=0, atol=1e-9)
    np.testing.assert_allclose(view["intrinsics"], np.array(meta["K_net"]), rtol=0, atol=1e-9)
    raw_pose = exp[f"raw/{q:03d}/camera_pose"][0]  # the pose encoding: t, then quaternion (qw, qx, qy, qz)
    np.testing.assert_allclose(view["pose_pred"][:3, 3], (G @ np.append(raw_pose[:3], 1))[:3], atol=1e-4)
    depth = np.load(DEMO_LAYOUT.paths(tmp_path / "views", 0)["depth"])
    ok, err, tol = close_pixels(depth[None, ::s, ::s], exp[f"raw/{q:03d}/pts3d_in_self_view"][..., 2])
    assert ok, f"query depth: max err {err:.3g} > tol {tol:.3g}"
    from PIL import Image

    rgb = np.asarray(Image.open(DEMO_LAYOUT.paths(tmp_path / "views", 0)["color"]), np.float64)
    want = (exp[f"raw/{q:03d}/rgb"][0] + 1) * 127.5  # the RGB head's [-1, 1], written as uint8
    assert np.abs(rgb[::s, ::s] - want).max() <= 1.0 + 1e-3 * 255


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["ttt3r", "cut3r"])
def test_reconstruct_with_known_cameras_tiny512(tmp_path, released_ckpt, rule):
    preset = "known_tiny512"
    out, meta = run_known_cli(tmp_path, released_ckpt(preset), preset, rule)
    given = np.load(PARITY / preset / "poses_c2w.npy")[: meta["runs"][f"known_{rule}"]["frames_saved"]]
    check_against_original(out, meta, preset, rule, given, np.eye(4))


# ---------------------------------------------------------------- bad input: one line, exit 2, no folder


def _bad_run(tmp_path, capsys, intrinsics=None, poses=None, frames=None) -> str:
    d = PARITY / "known_tiny224"
    out = tmp_path / "never"
    argv = ["reconstruct", str(frames or d / "frames"), "--out", str(out), "--weights", str(tmp_path / "no.pth"),
            "--intrinsics", str(intrinsics or d / "K_source.txt"), "--quiet"]
    if poses is not False:
        argv += ["--poses", str(poses or d / "poses_tum.txt")]
    assert main(argv) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_bad_intrinsics_are_one_line_naming_the_file(tmp_path, capsys):
    k = tmp_path / "K.txt"
    k.write_text("-108 0 61\n0 108 43.5\n0 0 1\n")
    assert str(k) in (e := _bad_run(tmp_path, capsys, intrinsics=k)) and "focal" in e
    k.write_text("108 0 130\n0 108 43.5\n0 0 1\n")  # the frames are 120x90
    assert str(k) in (e := _bad_run(tmp_path, capsys, intrinsics=k)) and "principal point" in e
    assert "120x90" in e
    assert "principal point" in _bad_run(tmp_path, capsys, intrinsics="108,108,61,95", poses=False)


def test_bad_poses_are_one_line_naming_the_file_and_line(tmp_path, capsys):
    lines = (PARITY / "known_tiny224" / "poses_tum.txt").read_text().splitlines()
    p = tmp_path / "poses.txt"
    p.write_text("\n".join(lines[:4]) + "\n")  # 4 poses for 6 frames (timestamps 0..3 match 0..3)
    e = _bad_run(tmp_path, capsys, poses=p)
    assert str(p) in e and "holds 4 poses but the input has 6 frames" in e and "4 of the 6" in e
    p.write_text("\n".join(str(int(x.split()[0]) + 100) + x[1:] for x in lines[:4]) + "\n")  # no time matches
    e = _bad_run(tmp_path, capsys, poses=p)
    assert str(p) in e and "holds 4 poses but the input has 6 frames" in e
    bad = lines[:2] + ["2 0 0 0 0.5 0 0 0.5"] + lines[3:]  # |q| = 0.707: not a rotation
    p.write_text("\n".join(bad) + "\n")
    assert f"{p}:3:" in (e := _bad_run(tmp_path, capsys, poses=p)) and "not a rotation" in e
    kitti = tmp_path / "poses_kitti.txt"
    rows = ["1 0 0 0 0 1 0 0 0 0 1 0"] * 6
    rows[4] = "1 0 0 0 0 1 0 0 0 0 -1 0"  # a reflection
    kitti.write_text("# kitti\n" + "\n".join(rows) + "\n")
    assert f"{kitti}:6:" in (e := _bad_run(tmp_path, capsys, poses=kitti)) and "determinant" in e
    rows[4] = rows[0]
    kitti.write_text("\n".join(rows[:5]) + "\n")  # KITTI has no timestamps: by order, one short
    assert "holds 5 poses but the input has 6 frames" in _bad_run(tmp_path, capsys, poses=kitti)


def test_poses_need_intrinsics_and_no_reset(tmp_path, capsys):
    d = PARITY / "known_tiny224"
    base = ["reconstruct", str(d / "frames"), "--out", str(tmp_path / "o"), "--weights", "x", "--quiet"]
    assert main(base + ["--poses", str(d / "poses_tum.txt")]) == 2
    assert "--poses needs --intrinsics" in capsys.readouterr().err
    assert main(base + ["--poses", str(d / "poses_tum.txt"), "--intrinsics", str(d / "K_source.txt"),
                        "--reset-every", "3"]) == 2
    assert "--reset-every" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
