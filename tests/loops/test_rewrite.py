"""Rewriting a run's outputs with corrected poses, from disk: unchanged poses give the run's own
files back; changed poses give outputs that agree with each other; an interrupted rewrite leaves
valid outputs and is finished or discarded by the next call."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ttt3r.errors import TTT3RError
from ttt3r.geometry import unproject
from ttt3r.io.layout import load_camera
from ttt3r.io.trajectory import read_tum
from ttt3r.loops import rewrite as rw
from ttt3r.loops.pose_graph import sim3_matrix, sim3_split
from ttt3r.writers import RunWriter, WriterOptions
from writers.writer_scene import make_frame

N = 6
EXPORTS = ("demo", "trajectory", "ply", "colmap", "glb", "preview")
POSE_FILES = ("points.ply", "trajectory.txt", "colmap/sparse/0/images.txt", "colmap/sparse/0/images.bin",
              "colmap/sparse/0/points3D.txt", "colmap/sparse/0/points3D.bin", "colmap/sparse/0/cameras.txt",
              "scene.glb", "preview.png")


def pinhole_frames():
    """Frames whose camera points are exactly the unprojection of their (float32) depth."""
    out = []
    for i in range(N):
        f = make_frame(i, bad_stripe=False)
        f.pts3d_cam = unproject(f.depth, f.intrinsics).astype(np.float32)
        out.append(f)
    return out


@pytest.fixture(scope="module")
def written_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("loops") / "run"
    with RunWriter(out, EXPORTS, fps=10.0, info={"input": "synthetic"}, options=WriterOptions(flush_every=2)) as w:
        for f in pinhole_frames():
            w.add(f)
    return out


@pytest.fixture
def run(written_run: Path, tmp_path: Path) -> Path:
    """A fresh copy of one run written by RunWriter (all exports)."""
    return Path(shutil.copytree(written_run, tmp_path / "run"))


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def old_poses(d: Path) -> np.ndarray:
    return np.stack([load_camera(d / "camera" / f"{i:06d}.npz")[0] for i in range(N)])


def test_unchanged_poses_give_the_runs_own_files(run: Path):
    before = snapshot(run)
    summary = rw.rewrite_run(run, old_poses(run), record={"loops": []})
    after = snapshot(run)
    for name in POSE_FILES:  # re-fused from disk = fused during the run, byte for byte
        assert after[name] == before[name], name
    assert {k for k in after if k.startswith(("depth/", "color/", "conf/"))} == \
        {k for k in before if k.startswith(("depth/", "color/", "conf/"))}
    assert all(after[k] == before[k] for k in before if k.startswith(("depth/", "color/", "conf/")))
    for i in range(N):
        with np.load(run / "camera" / f"{i:06d}.npz") as z:
            np.testing.assert_array_equal(z["pose"], z["pose_raw"])
            assert float(z["depth_scale"]) == 1.0
    info = json.loads((run / "run.json").read_text())
    assert info["loop_closure"]["status"] == "done" and info["loop_closure"]["loops"] == []
    assert info["status"] == "finished"
    assert not (run / rw.STAGING).exists()
    assert summary.frames == N and summary.files[-1] == f"camera/{N - 1:06d}.npz"


def corrected(run: Path):
    """A Sim(3) correction per frame (scale 1.5 and a turn that grows with the frame): new poses, scales."""
    poses, new, scales = old_poses(run), [], []
    for i in range(N):
        c = sim3_matrix(1.5, Rotation.from_euler("y", 2.0 * i, degrees=True).as_matrix(), [0.1 * i, 0, 0])
        s, R, t = sim3_split(c @ poses[i])
        p = np.eye(4)
        p[:3, :3], p[:3, 3] = R, t
        new.append(p)
        scales.append(float(s))
    return poses, np.stack(new), np.array(scales)


def test_rewritten_outputs_agree_with_each_other(run: Path):
    pycolmap = pytest.importorskip("pycolmap")
    depth0 = [np.load(run / "depth" / f"{i:06d}.npy") for i in range(N)]
    stamps0 = read_tum(run / "trajectory.txt").timestamps
    raw, poses, scales = corrected(run)
    rw.rewrite_run(run, poses, scales)
    # npz: new pose, the old one kept, depth scaled
    cams = []
    for i in range(N):
        with np.load(run / "camera" / f"{i:06d}.npz") as z:
            np.testing.assert_allclose(z["pose"], poses[i], atol=1e-12)
            np.testing.assert_array_equal(z["pose_raw"], raw[i])
            assert float(z["depth_scale"]) == pytest.approx(scales[i])
            cams.append((z["pose"], z["intrinsics"]))
        np.testing.assert_allclose(np.load(run / "depth" / f"{i:06d}.npy"), depth0[i] * scales[i], rtol=1e-6)
    # TUM: the same poses, the same timestamps
    traj = read_tum(run / "trajectory.txt")
    np.testing.assert_array_equal(traj.timestamps, stamps0)
    np.testing.assert_allclose(traj.poses, poses, atol=1e-6)
    # COLMAP: the same cameras
    rec = pycolmap.Reconstruction(str(run / "colmap" / "sparse" / "0"))
    for im in rec.images.values():
        T = np.eye(4)
        T[:3, :] = im.cam_from_world().matrix()
        np.testing.assert_allclose(np.linalg.inv(T), poses[int(im.name[:6])], atol=1e-6)
    # PLY: every fused point lies on the surfaces seen through the new cameras and scaled depths
    world = np.concatenate([
        (unproject(np.load(run / "depth" / f"{i:06d}.npy"), K).reshape(-1, 3) @ P[:3, :3].T + P[:3, 3])
        for i, (P, K) in enumerate(cams)])
    v = PlyData.read(str(run / "points.ply"))["vertex"]
    ply = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
    vox = json.loads((run / "run.json").read_text())["writer_options"]["voxel_size"]
    d, _ = cKDTree(world).query(ply)
    assert len(ply) > 500 and d.max() < (vox or 0.2) * 3
    # and they are not where the old ones were
    old_world = np.concatenate([
        (unproject(depth0[i], K).reshape(-1, 3) @ raw[i][:3, :3].T + raw[i][:3, 3]) for i, (_, K) in enumerate(cams)])
    assert np.median(cKDTree(old_world).query(ply)[0]) > 0.5
    # COLMAP's points are PLY points (those with a track of two or more observations within 1 px)
    pts = np.array([p.xyz for p in rec.points3D.values()])
    assert len(pts) > 0
    assert cKDTree(ply).query(pts)[0].max() < 1e-5


def test_a_second_rewrite_keeps_the_first_raw_pose(run: Path):
    depth0 = [np.load(run / "depth" / f"{i:06d}.npy") for i in range(N)]
    raw, poses, scales = corrected(run)
    rw.rewrite_run(run, poses, scales)
    for i in range(N):
        assert rw.raw_camera(run, i)[2] == pytest.approx(scales[i])
        np.testing.assert_array_equal(rw.raw_camera(run, i)[0], raw[i])
        np.testing.assert_allclose(rw.raw_depth(run, i), depth0[i], rtol=1e-6)
    rw.rewrite_run(run, raw)  # back: scales are relative to the raw depth, not the saved one
    for i in range(N):
        with np.load(run / "camera" / f"{i:06d}.npz") as z:
            np.testing.assert_allclose(z["pose"], raw[i], atol=1e-12)
            np.testing.assert_array_equal(z["pose_raw"], raw[i])
            assert float(z["depth_scale"]) == 1.0
        np.testing.assert_allclose(np.load(run / "depth" / f"{i:06d}.npy"), depth0[i], rtol=1e-6)


def test_rewrites_replace_each_other_and_do_not_compound(run: Path):
    depth0 = [np.load(run / "depth" / f"{i:06d}.npy") for i in range(N)]
    raw, poses, scales = corrected(run)
    rw.rewrite_run(run, raw, 1.0 / scales)
    rw.rewrite_run(run, poses, scales)  # the depth is depth0 * scales, not depth0 * scales / scales
    once = snapshot(run)
    rw.rewrite_run(run, poses, scales)  # the same rewrite again changes nothing
    again = snapshot(run)
    assert again.keys() == once.keys()  # (an .npz holds its write time: camera files compared by content)
    assert all(again[k] == once[k] for k in once if not k.startswith("camera/"))
    for i in range(N):
        with np.load(run / "camera" / f"{i:06d}.npz") as z:
            np.testing.assert_array_equal(z["pose_raw"], raw[i])
            assert float(z["depth_scale"]) == scales[i]
        np.testing.assert_allclose(np.load(run / "depth" / f"{i:06d}.npy"), depth0[i] * scales[i], rtol=1e-6)


def test_interrupted_before_commit_leaves_the_run_untouched(run: Path, monkeypatch):
    before = snapshot(run)
    _, poses, scales = corrected(run)
    real, calls = rw.save_camera, []

    def flaky(*a, **k):  # the run is killed while the new files are being staged
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(rw, "save_camera", flaky)
    with pytest.raises(KeyboardInterrupt):
        rw.rewrite_run(run, poses, scales)
    monkeypatch.undo()
    after = {k: v for k, v in snapshot(run).items() if not k.startswith(rw.STAGING)}
    assert after == before  # every original file as it was
    assert (run / rw.STAGING).is_dir()
    assert not rw.recover_rewrite(run)  # incomplete staging: discarded
    assert not (run / rw.STAGING).exists() and snapshot(run) == before
    rw.rewrite_run(run, poses, scales)  # and a new rewrite works
    np.testing.assert_allclose(load_camera(run / "camera" / "000005.npz")[0], poses[5], atol=1e-12)


def test_interrupted_during_commit_is_finished_by_recover(run: Path, tmp_path: Path, monkeypatch):
    clean = tmp_path / "clean"
    shutil.copytree(run, clean)
    _, poses, scales = corrected(run)
    rw.rewrite_run(clean, poses, scales)
    real, calls = rw._move, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(rw, "_move", flaky)
    with pytest.raises(KeyboardInterrupt):
        rw.rewrite_run(run, poses, scales)
    monkeypatch.undo()
    # half committed: every file whole, the camera files (last) still the old ones
    for i in range(N):
        with np.load(run / "camera" / f"{i:06d}.npz") as z:
            assert "pose_raw" not in z.files
    assert json.loads((run / "run.json").read_text())["loop_closure"]["status"] == "committing"
    assert rw.recover_rewrite(run)
    a, b = snapshot(run), snapshot(clean)
    assert a.keys() == b.keys()
    for k in a:
        if k.endswith((".npz", ".npy", ".ply", ".txt", ".bin")):
            assert a[k] == b[k], k
    assert json.loads((run / "run.json").read_text())["loop_closure"]["status"] == "done"


def test_bad_input(tmp_path: Path, run: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TTT3RError, match="not a ttt3r run folder"):
        rw.rewrite_run(tmp_path / "empty", np.tile(np.eye(4), (N, 1, 1)))
    with pytest.raises(TTT3RError, match="need 6 finite 4x4 poses"):
        rw.rewrite_run(run, np.tile(np.eye(4), (N - 1, 1, 1)))
    with pytest.raises(TTT3RError, match="depth scales must be 6 positive"):
        rw.rewrite_run(run, old_poses(run), np.zeros(N))
