"""One geometry for every cloud: points.ply, COLMAP points3D, scene.glb and the viewer all back-project
depth with K, and the PLY carries confidence and normals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from ttt3r.writers import RunWriter
from writer_scene import FLOOR_Y, WALL_Z, make_frames, surface_distance

N = 6


def _not_pinhole(frames):
    """The same frames with a self-view pointmap whose x, y are 8 % off the pinhole back-projection
    (depth, K and pose stay exact), like the bundled model's pointmap."""
    out = []
    for f in frames:
        p = f.pts3d_cam.copy()
        p[..., :2] *= 1.08
        out.append(replace(f, pts3d_cam=p))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    frames = _not_pinhole(make_frames(N))
    out = tmp_path_factory.mktemp("geom") / "out"
    with RunWriter(out, ["ply", "colmap", "glb"]) as rw:
        for f in frames:
            rw.add(f)
        voxel = rw.fusion.voxel_size
    return out, frames, voxel


def _ply(out: Path):
    return PlyData.read(str(out / "points.ply"))["vertex"]


def test_ply_is_depth_and_k_not_the_pointmap(run) -> None:
    out, frames, voxel = run
    v = _ply(out)
    xyz = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
    # on the true planes: the distorted pointmap would put them up to 8 % of the depth off
    assert surface_distance(xyz).max() <= voxel * np.sqrt(3) + 1e-5
    assert np.mean(surface_distance(xyz) < 1e-4) > 0.9


def test_fusion_back_projects_depth_with_k() -> None:
    from scipy.spatial import cKDTree

    from ttt3r.geometry import transform_points, unproject
    from ttt3r.writers import VoxelFusion

    f = _not_pinhole(make_frames(2))[1]
    fusion = VoxelFusion(voxel_size=1e-4, pixel_stride=1)  # one pixel per voxel: the fused points are the inputs
    fusion.add_frame(f)
    xyz = fusion.cloud()[0].astype(np.float64)
    keep = f.conf > 1.5
    pinhole = transform_points(f.pose, unproject(f.depth, f.intrinsics))[keep]
    pointmap = f.points_world()[keep].astype(np.float64)
    assert len(xyz) == keep.sum()
    assert cKDTree(pinhole).query(xyz)[0].max() < 1e-5
    assert np.median(cKDTree(pointmap).query(xyz)[0]) > 1e-2  # the pointmap would be a different cloud


def test_ply_confidence_and_normals(run) -> None:
    out, _, _ = run
    v = _ply(out)
    assert v["confidence"].dtype == np.float32 and v["nx"].dtype == np.float32
    np.testing.assert_allclose(v["confidence"], 5.0)  # every kept pixel of the scene has conf 5
    xyz = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
    n = np.stack([v["nx"], v["ny"], v["nz"]], 1).astype(np.float64)
    on_wall = (np.abs(xyz[:, 2] - WALL_Z) < 1e-4) & (xyz[:, 1] < FLOOR_Y - 0.2)
    on_floor = (np.abs(xyz[:, 1] - FLOOR_Y) < 1e-4) & (xyz[:, 2] < WALL_Z - 0.3)
    assert on_wall.sum() > 200 and on_floor.sum() > 50
    # unit normals facing the cameras (which are in front of the wall and above the floor)
    assert np.median(n[on_wall] @ [0, 0, -1]) > 0.999 and np.median(n[on_floor] @ [0, -1, 0]) > 0.999
    np.testing.assert_allclose(np.linalg.norm(n[on_wall | on_floor], axis=1), 1.0, atol=1e-5)
    trimesh = pytest.importorskip("trimesh")
    cloud = trimesh.load(str(out / "points.ply"))
    assert len(cloud.vertices) == len(xyz)


def test_colmap_and_glb_use_the_ply_points(run) -> None:
    out, _, _ = run
    v = _ply(out)
    ply = {tuple(p) for p in np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32).tolist()}
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction()
    rec.read_binary(str(out / "colmap" / "sparse" / "0"))
    assert rec.num_points3D() > 0.5 * len(ply)
    assert all(tuple(np.float32(p.xyz).tolist()) in ply for p in rec.points3D.values())
    trimesh = pytest.importorskip("trimesh")
    from ttt3r.writers.glb import GLTF_FROM_OPENCV

    scene = trimesh.load(str(out / "scene.glb"), file_type="glb")
    node = next(n for n in scene.graph.nodes_geometry
                if isinstance(scene.geometry[scene.graph[n][1]], trimesh.PointCloud))
    pc = scene.geometry[scene.graph[node][1]]
    world = trimesh.transform_points(pc.vertices, np.linalg.inv(GLTF_FROM_OPENCV) @ scene.graph[node][0])
    np.testing.assert_allclose(np.sort(world[:, 0]), np.sort(v["x"]), atol=1e-5)


def test_viewer_shows_depth_and_k_points(run) -> None:
    pytest.importorskip("viser")
    from ttt3r.viewer import LiveViewer

    _, frames, _ = run
    v = LiveViewer(port=0, conf_threshold=1.5)
    try:
        for f in frames:
            v.add(f)
        pts, _ = v.visible_points()
    finally:
        v.close()
    assert len(pts) > 100
    assert surface_distance(pts.astype(np.float64)).max() < 1e-4  # each shown point is an exact surface point


def test_project_inverts_unproject() -> None:
    from ttt3r.geometry import project, unproject

    f = make_frames(1)[0]
    uv = project(unproject(f.depth, f.intrinsics), f.intrinsics)
    v, u = np.mgrid[0:f.hw[0], 0:f.hw[1]]
    np.testing.assert_allclose(uv, np.stack([u, v], -1), atol=1e-9)
    with pytest.raises(ValueError, match="points must have shape"):
        project(np.zeros((4, 2)), f.intrinsics)
