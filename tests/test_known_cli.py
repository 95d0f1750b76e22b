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
from ttt3r.geometry import rotation_to_quaternion
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


def run_known_cli(tmp_path, ckpt, preset: str, rule: str, poses_file=None) -> tuple:
    d, meta = PARITY / preset, parity_meta(preset)
    out = tmp_path / "run"
    rc = main(["reconstruct", str(d / "frames"), "--out", str(out), "--weights", str(ckpt),
               "--intrinsics", str(d / "K_source.txt"), "--poses", str(poses_file or d / "poses_tum.txt"),
               "--size", str(meta["size"]), "--update", rule, "--device", "cpu", "--quiet"])
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


def test_known_cameras_in_the_users_world_frame(tmp_path, released_ckpt):
    """Poses in another world frame G: the network sees the same relative cameras (same depth),
    every output is in G's frame, pose_pred = G @ the original's pose."""
    preset, rule = "known_tiny224", "cut3r"
    G = _user_frame()
    n = parity_meta(preset)["runs"][f"known_{rule}"]["frames_saved"]
    given = G @ np.load(PARITY / preset / "poses_c2w.npy")[:n]
    write_tum(tmp_path / "poses.txt", given)
    out, meta = run_known_cli(tmp_path, released_ckpt(preset), preset, rule, tmp_path / "poses.txt")
    check_against_original(out, meta, preset, rule, given, G)
    from plyfile import PlyData

    xyz = PlyData.read(str(out / "points.ply"))["vertex"]
    centres = given[:, :3, 3]
    mean = np.array([np.mean(xyz[c]) for c in "xyz"])  # the fused cloud sits near the cameras in G's frame
    assert np.linalg.norm(mean - centres.mean(0)) < 5 * np.linalg.norm(centres.mean(0) - G[:3, 3]) + 5


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["ttt3r", "cut3r"])
def test_reconstruct_with_known_cameras_tiny512(tmp_path, released_ckpt, rule):
    preset = "known_tiny512"
    out, meta = run_known_cli(tmp_path, released_ckpt(preset), preset, rule)
    given = np.load(PARITY / preset / "poses_c2w.npy")[: meta["runs"][f"known_{rule}"]["frames_saved"]]
    check_against_original(out, meta, preset, rule, given, np.eye(4))
