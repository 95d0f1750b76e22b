"""ttt3r.cameras: ray maps, the intrinsics transform, parsers and their errors, by hand-computed cases.

The network-level check of the ray-map convention is tests/model/test_known_parity.py.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ttt3r.cameras import (
    colmap_intrinsics_per_image,
    intrinsics_to_network,
    network_hw,
    parse_intrinsics,
    ray_map,
    read_colmap_cameras,
    read_poses,
    relative_poses,
)
from ttt3r.errors import TTT3RError


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


# ---------------------------------------------------------------- ray maps

K3 = np.array([[2.0, 0, 1], [0, 2.0, 1], [0, 0, 1]])  # 3x3 image, principal point at the centre pixel


def test_ray_map_training_convention_by_hand():
    r = ray_map(pose(np.eye(3), [1, 0, 0]), K3, 3, 3)
    assert r.shape == (3, 3, 6) and r.dtype == np.float32
    np.testing.assert_allclose(r[..., :3], np.broadcast_to([1, 0, 0], (3, 3, 3)))
    # centre pixel: unit-depth point (0, 0, 1), moved as a point by t -> (1, 0, 1)
    np.testing.assert_allclose(r[1, 1, 3:], np.array([1, 0, 1]) / np.sqrt(2), atol=1e-7)
    # top-left pixel (0, 0): (-0.5, -0.5, 1) + (1, 0, 0) = (0.5, -0.5, 1)
    np.testing.assert_allclose(r[0, 0, 3:], np.array([0.5, -0.5, 1]) / np.sqrt(1.5), atol=1e-7)


def test_ray_map_unit_direction_is_the_geometric_ray():
    T = pose(rot_z(30), [0.3, -0.2, 1.5])
    r = ray_map(T, K3, 3, 3, convention="unit_direction")
    np.testing.assert_allclose(r[1, 1, 3:], [0, 0, 1], atol=1e-7)  # z axis is unchanged by rot_z
    # the point at depth 4 through pixel (u=2, v=0) lies on origin + s * direction
    x = 4 * np.linalg.inv(K3) @ [2, 0, 1]
    p = T[:3, :3] @ x + T[:3, 3]
    d = (p - T[:3, 3]) / np.linalg.norm(p - T[:3, 3])
    np.testing.assert_allclose(r[0, 2, 3:], d, atol=1e-6)
    # at the reference camera (identity pose) both conventions agree
    np.testing.assert_array_equal(ray_map(np.eye(4), K3, 3, 3), ray_map(np.eye(4), K3, 3, 3, "unit_direction"))


def test_ray_map_rejects_bad_arguments():
    with pytest.raises(ValueError, match="convention"):
        ray_map(np.eye(4), K3, 3, 3, convention="clean")
    with pytest.raises(ValueError, match="cam_to_ref must be 4x4"):
        ray_map(np.eye(3), K3, 3, 3)


# ---------------------------------------------------------------- intrinsics transform


def test_intrinsics_to_network_by_hand():
    # 640x480 at 512: resize to 512x384 (sx = sy = 0.8), no crop
    K = np.array([[500.0, 0, 319.5], [0, 400.0, 239.5], [0, 0, 1]])
    np.testing.assert_allclose(intrinsics_to_network(K, (640, 480), 512),
                               [[400, 0, 255.5], [0, 320, 191.5], [0, 0, 1]], atol=1e-12)
    # 640x480 at 224: resize to 299x224, crop columns 37..261
    s = 299 / 640
    K2 = intrinsics_to_network(K, (640, 480), 224)
    np.testing.assert_allclose(K2[0], [500 * s, 0, 320 * s - 0.5 - 37], atol=1e-12)
    np.testing.assert_allclose(K2[1], [0, 400 * 224 / 480, 240 * 224 / 480 - 0.5], atol=1e-12)
    assert network_hw((640, 480), 512) == (384, 512) and network_hw((640, 480), 224) == (224, 224)
    assert network_hw((1920, 1080), 512) == (288, 512)


def test_intrinsics_to_network_agrees_with_the_eval_crop_view():
    from ttt3r.eval.protocols import CropView

    K = np.array([[700.0, 0, 600], [0, 710.0, 180], [0, 0, 1]])
    for size in (224, 512):
        np.testing.assert_allclose(intrinsics_to_network(K, (1242, 375), size),
                                   CropView.for_size((375, 1242), size).map_intrinsics(K), atol=1e-12)


# ---------------------------------------------------------------- parsers


def test_parse_intrinsics_numbers():
    intr = parse_intrinsics("500, 510,320,240", image_wh=(640, 480))
    np.testing.assert_array_equal(intr.K, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    for spec, msg in [("500,510,320", "expected 4 numbers"), ("500,x,320,240", "'x' is not a number"),
                      ("0,510,320,240", "focal length must be positive"), ("no_such_file", "no such file")]:
        with pytest.raises(TTT3RError, match=msg):
            parse_intrinsics(spec)
    with pytest.raises(TTT3RError, match=r"principal point \(700, 240\) is outside the 640x480 image"):
        parse_intrinsics("500,510,700,240", image_wh=(640, 480))
    parse_intrinsics("500,510,700,240").check_image((1280, 720))  # fine once the size is known


def test_parse_intrinsics_matrix_file(tmp_path):
    f = tmp_path / "K.txt"
    f.write_text("# intrinsics\n500 0 320\n0 510 240\n0 0 1\n")
    np.testing.assert_array_equal(parse_intrinsics(f).K, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    f.write_text("# intrinsics\n500 0 320\n0 -510 240\n0 0 1\n")
    with pytest.raises(TTT3RError, match=rf"^{f}:3: focal length must be positive"):
        parse_intrinsics(f)
    f.write_text("500 0 320\n0 510 240\n")
    with pytest.raises(TTT3RError, match=rf"^{f}: expected a 3x3 intrinsics matrix, got 2x3"):
        parse_intrinsics(f)
    f.write_text("500 0 320\n0 510 240\n0 1 1\n")
    with pytest.raises(TTT3RError, match=rf"^{f}:3: the last row must be 0 0 1"):
        parse_intrinsics(f)
    f.write_text("500, 0, 320\n0, 510, 240\n0, 0, 1\n")
    with pytest.raises(TTT3RError, match=rf"^{f}: not a 3x3 matrix of numbers"):
        parse_intrinsics(f)
    f.write_text("500 0 999\n0 510 240\n0 0 1\n")
    with pytest.raises(TTT3RError, match=rf"^{f}:1: principal point"):
        parse_intrinsics(f, image_wh=(640, 480))


@pytest.fixture
def colmap_model(tmp_path):
    """A COLMAP text model written by pycolmap (an independent writer of the format)."""
    import pycolmap  # a dev dependency
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model="PINHOLE", width=640, height=480,
                                                    params=[500, 510, 320, 240], camera_id=1))
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model="SIMPLE_PINHOLE", width=320, height=240,
                                                    params=[250, 160, 120], camera_id=2))
    rec.add_image_with_trivial_frame(pycolmap.Image(name="a b.png", camera_id=2, image_id=1), pycolmap.Rigid3d())
    rec.add_image_with_trivial_frame(pycolmap.Image(name="c.png", camera_id=1, image_id=2), pycolmap.Rigid3d())
    rec.write_text(str(tmp_path))
    return tmp_path


def test_colmap_cameras(colmap_model):
    cams = read_colmap_cameras(colmap_model / "cameras.txt")
    # COLMAP's pixel centres are at +0.5: cx = 320 there is 319.5 here
    np.testing.assert_array_equal(cams[1].K, [[500, 0, 319.5], [0, 510, 239.5], [0, 0, 1]])
    np.testing.assert_array_equal(cams[2].K, [[250, 0, 159.5], [0, 250, 119.5], [0, 0, 1]])
    assert cams[1].size_wh == (640, 480) and cams[2].size_wh == (320, 240)
    per_image = colmap_intrinsics_per_image(colmap_model)
    assert set(per_image) == {"a b.png", "c.png"}
    for name, cid in (("a b.png", 2), ("c.png", 1)):
        assert np.array_equal(per_image[name].K, cams[cid].K) and per_image[name].where == cams[cid].where
    with pytest.raises(TTT3RError, match="holds 2 cameras"):
        parse_intrinsics(colmap_model)
    with pytest.raises(TTT3RError, match=r":\d+: camera is 640x480 but the frames are 1280x720"):
        cams[1].check_image((1280, 720))


def test_colmap_single_camera_and_errors(tmp_path):
    f = tmp_path / "cameras.txt"
    f.write_text("# one camera\n1 SIMPLE_PINHOLE 640 480 500 320 240\n")
    intr = parse_intrinsics(tmp_path)  # the folder holding cameras.txt
    np.testing.assert_array_equal(intr.K, [[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    assert intr.where == f"{f}:2"
    other = tmp_path / "cams.txt"  # any name: recognised by its model field
    other.write_text("1 PINHOLE 640 480 500 510 320 240\n")
    np.testing.assert_array_equal(parse_intrinsics(other).K, [[500, 0, 319.5], [0, 510, 239.5], [0, 0, 1]])
    f.write_text("1 PINHOLE 640 480 500 510 320 240\n1 PINHOLE 640 480 500 510 320 240\n")
    with pytest.raises(TTT3RError, match=rf"^{f}:2: camera id 1 appears twice"):
        parse_intrinsics(f)
    for line, msg in [("1 OPENCV 640 480 500 500 320 240 0.1 0 0 0", r":2: camera model OPENCV is not supported"),
                      ("1 PINHOLE 640 480 500 320 240", r":2: PINHOLE takes 4 parameters, got 3"),
                      ("1 PINHOLE 640 480 -5 500 320 240", r":2: focal length must be positive"),
                      ("1 PINHOLE 640 480 500 500 900 240", r":2: principal point .* outside the 640x480 image")]:
        f.write_text(f"# one camera\n{line}\n")
        with pytest.raises(TTT3RError, match=rf"^{f}{msg}"):
            parse_intrinsics(f)


# ---------------------------------------------------------------- poses


def test_relative_poses_by_hand():
    c2w = np.stack([pose(rot_z(90), [1, 0, 0]), pose(rot_z(90), [1, 1, 0]), pose(rot_z(180), [0, 0, 2])])
    rel = relative_poses(c2w)
    np.testing.assert_allclose(rel[0], np.eye(4), atol=1e-12)
    # same rotation, moved +y in the world = +x in the first camera (rotated by 90 deg about z)
    np.testing.assert_allclose(rel[1], pose(np.eye(3), [1, 0, 0]), atol=1e-12)
    # inv(c2w0) @ c2w2: R = rot_z(90), t = rot_z(-90) @ ((0, 0, 2) - (1, 0, 0)) = (0, 1, 2)
    np.testing.assert_allclose(rel[2], pose(rot_z(90), [0, 1, 2]), atol=1e-12)


def test_relative_poses_rejects_non_rigid():
    good = pose(rot_z(10), [0, 0, 0])
    with pytest.raises(TTT3RError, match=r"^cams: pose 2: rotation is not orthonormal"):
        relative_poses(np.stack([good, pose(1.1 * rot_z(10), [0, 0, 0])]), "cams")
    with pytest.raises(TTT3RError, match=r"^cams: pose 3: rotation has determinant -1"):
        relative_poses(np.stack([good, good, pose(np.diag([1.0, 1, -1]), [0, 0, 0])]), "cams")
    bad_row = good.copy()
    bad_row[3, 0] = 1
    with pytest.raises(TTT3RError, match=r"^cams: pose 1: last row must be 0 0 0 1"):
        relative_poses(bad_row[None], "cams")
    with pytest.raises(TTT3RError, match=r"expected \(N, 4, 4\)"):
        relative_poses(np.eye(4), "cams")


def test_read_poses_checks_each_pose(tmp_path):
    f = tmp_path / "poses.txt"
    f.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n2 0 0 0 0 1 0 0 0 0 1 0\n")  # KITTI, second pose scaled in x
    with pytest.raises(TTT3RError, match=rf"^{f}: pose 2: rotation is not orthonormal"):
        read_poses(f, "kitti")
    f.write_text("0 1 2 3 0 0 0 1\n1 1 2 3 0 0 0.7071067812 0.7071067812\n")  # TUM: qx qy qz qw
    P = read_poses(f, "tum")
    np.testing.assert_allclose(P[1], pose(rot_z(90), [1, 2, 3]), atol=1e-9)


def test_cameras_module_does_not_import_torch():
    code = "import sys, ttt3r.cameras; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
