"""Every output of RunWriter, read back with the format's own tools, against exact synthetic geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData
from scipy.spatial.transform import Rotation

from ttt3r.writers import EXPORTS, RunWriter, WriterOptions, read_demo_frame
from ttt3r.writers.glb import GLTF_FROM_OPENCV
from writer_scene import FX, H, W, make_frames, surface_distance, true_color

N = 8
FPS = 12.5


@pytest.fixture(scope="module")
def frames():
    return make_frames(N)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, frames) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    with RunWriter(out, EXPORTS, fps=FPS, info={"input": "synthetic", "weights": "none"},
                   options=WriterOptions(flush_every=3)) as rw:
        for f in frames:
            rw.add(f)
    return out


def test_demo_layout(run_dir: Path, frames) -> None:
    for f in frames:
        back = read_demo_frame(run_dir, f.index)
        assert back["depth"].dtype == np.float32 and back["depth"].shape == (H, W)
        np.testing.assert_array_equal(back["depth"], f.depth)
        np.testing.assert_array_equal(back["conf"], f.conf)
        np.testing.assert_array_equal(back["color"], f.rgb)
        np.testing.assert_array_equal(back["pose"], f.pose)
        np.testing.assert_array_equal(back["intrinsics"], f.intrinsics)
    assert sorted(p.name for p in (run_dir / "depth").iterdir()) == [f"{i:06d}.npy" for i in range(N)]
    # no temporary files left anywhere
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_trajectory_matches_cameras(run_dir: Path, frames) -> None:
    from evo.tools import file_interface

    traj = file_interface.read_tum_trajectory_file(str(run_dir / "trajectory.txt"))
    assert traj.num_poses == N
    np.testing.assert_allclose(traj.timestamps, np.arange(N) / FPS, atol=1e-6)
    for i in range(N):
        with np.load(run_dir / "camera" / f"{i:06d}.npz") as cam:
            pose = cam["pose"]
        np.testing.assert_allclose(traj.poses_se3[i], pose, atol=1e-6)
        np.testing.assert_allclose(pose, frames[i].pose, atol=0)


def test_ply_points_on_geometry(run_dir: Path, frames) -> None:
    ply = PlyData.read(str(run_dir / "points.ply"))
    v = ply["vertex"]
    xyz = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
    rgb = np.stack([v["red"], v["green"], v["blue"]], 1).astype(np.float64)
    assert v["x"].dtype == np.float32 and v["red"].dtype == np.uint8
    assert len(xyz) > 1000
    voxel = 2 * np.median(frames[0].depth[frames[0].conf > 1.5]) / FX  # documented auto voxel size
    # every fused point is a mean of surface points from one voxel -> within a voxel diagonal of a plane
    assert surface_distance(xyz).max() <= voxel * np.sqrt(3) + 1e-5
    # and most lie exactly on one plane (voxels not touching the wall/floor edge)
    assert np.mean(surface_distance(xyz) < 1e-4) > 0.9
    # the low-confidence stripe carried wrong points: none of them made it (they'd be far off the planes)
    # colours are the texture at the point (linear texture, so a mean colour is the mean position's colour)
    assert np.abs(rgb - true_color(xyz)).max() <= 1.5
    # the cloud covers what the cameras saw: wall points across the whole union of views
    assert xyz[:, 0].max() > 2.0 and xyz[:, 0].min() < -2.0


@pytest.mark.parametrize("fmt", ["text", "binary"])
def test_colmap_model(run_dir: Path, frames, fmt: str) -> None:
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction()
    getattr(rec, f"read_{fmt}")(str(run_dir / "colmap" / "sparse" / "0"))
    assert rec.num_images() == N and rec.num_points3D() > 1000
    # all intrinsics equal -> one shared camera
    assert rec.num_cameras() == 1
    cam = next(iter(rec.cameras.values()))
    assert cam.model.name == "PINHOLE" and (cam.width, cam.height) == (W, H)
    # COLMAP's pixel centres are at +0.5
    np.testing.assert_allclose(cam.params, [FX, FX, W // 2 + 0.5, H // 2 + 0.5])
    by_name = {im.name: im for im in rec.images.values()}
    for f in frames:
        im = by_name[f"{f.index:06d}.png"]
        T_cw = np.eye(4)
        T_cw[:3, :] = im.cam_from_world().matrix()
        np.testing.assert_allclose(np.linalg.inv(T_cw), f.pose, atol=1e-6)
        img = np.asarray(Image.open(run_dir / "colmap" / "images" / im.name))
        np.testing.assert_array_equal(img, f.rgb)
        # a world point on the surface projects to the pixel it came from (pixel (20, 30)'s
        # centre is (30.5, 20.5) in COLMAP's image coordinates)
        pw = f.points_world()[20, 30]
        uv = cam.img_from_cam(im.cam_from_world() * pw)
        np.testing.assert_allclose(uv, [30.5, 20.5], atol=1e-3)
    pts = np.array([p.xyz for p in rec.points3D.values()])
    cols = np.array([p.color for p in rec.points3D.values()])
    assert surface_distance(pts).max() < 0.2
    # the same points as points.ply: those of its points seen in at least two images (COLMAP tracks)
    v = PlyData.read(str(run_dir / "points.ply"))["vertex"]
    ply = {tuple(p): tuple(c) for p, c in zip(np.stack([v["x"], v["y"], v["z"]], 1).tolist(),
                                              np.stack([v["red"], v["green"], v["blue"]], 1).tolist())}
    assert 0.5 * len(ply) < len(pts) <= len(ply)
    for p, c in zip(pts.astype(np.float32).tolist(), cols.tolist()):
        assert ply[tuple(p)] == tuple(c)


def test_glb(run_dir: Path) -> None:
    trimesh = pytest.importorskip("trimesh")
    scene = trimesh.load(str(run_dir / "scene.glb"), file_type="glb")
    geoms = {type(g).__name__ for g in scene.geometry.values()}
    assert "PointCloud" in geoms and "Path3D" in geoms
    pc = next(g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud))
    ply = PlyData.read(str(run_dir / "points.ply"))["vertex"]
    assert len(pc.vertices) == len(ply["x"])
    # points are in glTF axes: undo the node transform and the flip and they lie on the synthetic planes
    node = next(n for n in scene.graph.nodes_geometry
                if isinstance(scene.geometry[scene.graph[n][1]], trimesh.PointCloud))
    T = scene.graph[node][0]
    world = trimesh.transform_points(pc.vertices, np.linalg.inv(GLTF_FROM_OPENCV) @ T)
    assert surface_distance(world).max() < 0.2
    np.testing.assert_allclose(np.sort(world[:, 0]), np.sort(ply["x"]), atol=1e-5)


def test_preview(run_dir: Path) -> None:
    with Image.open(run_dir / "preview.png") as im:
        assert im.format == "PNG" and im.width >= 1000 and im.height >= 600
        a = np.asarray(im.convert("RGB"))
    assert a.std() > 20  # not a blank picture


def test_run_json(run_dir: Path) -> None:
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["interrupted"] is False
    assert info["frames_done"] == N and info["input"] == "synthetic" and info["weights"] == "none"
    assert info["versions"]["ttt3r"] and info["versions"]["numpy"] == np.__version__
    assert info["memory"]["host_rss_peak_mib"] > 10
    assert info["per_frame_s"]["network_mean"] == pytest.approx(np.mean([0.01 * (i + 1) for i in range(N)]))
    assert info["exports"] == list(EXPORTS)
    assert info["writer_options"]["flush_every"] == 3


def test_manifest_lists_only_ttt3r_patterns(run_dir: Path) -> None:
    m = json.loads((run_dir / ".ttt3r-manifest.json").read_text())
    assert m["tool"] == "ttt3r" and "trajectory\\.txt" in m["patterns"]


def test_timestamps_from_extras(tmp_path: Path) -> None:
    fr = make_frames(3)
    for f, t in zip(fr, (0.0, 0.5, 2.0)):
        f.extras["timestamp"] = t
    with RunWriter(tmp_path / "o", ["trajectory"], fps=30.0) as rw:
        for f in fr:
            rw.add(f)
    data = np.loadtxt(tmp_path / "o" / "trajectory.txt")
    np.testing.assert_allclose(data[:, 0], [0.0, 0.5, 2.0])
    q = data[:, 4:8]  # qx qy qz qw
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), [f.pose[:3, :3] for f in fr], atol=1e-7)


def test_mixed_frame_sizes(tmp_path: Path) -> None:
    from writer_scene import make_frame

    frames = [make_frame(0, h=24, w=32, f=25.0), make_frame(1, h=32, w=24, f=30.0), make_frame(2, h=24, w=32, f=25.0)]
    with RunWriter(tmp_path / "o", EXPORTS) as rw:
        for f in frames:
            rw.add(f)
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction(str(tmp_path / "o" / "colmap" / "sparse" / "0"))
    assert rec.num_images() == 3 and rec.num_cameras() == 2
    sizes = sorted((c.width, c.height) for c in rec.cameras.values())
    assert sizes == [(24, 32), (32, 24)]
    by_name = {im.name: im for im in rec.images.values()}
    assert by_name["000000.png"].camera_id == by_name["000002.png"].camera_id != by_name["000001.png"].camera_id
    assert (tmp_path / "o" / "preview.png").stat().st_size > 1000
