"""The numpy geometry core (ttt3r.geometry): hand-computed cases and scipy as the reference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import ttt3r
from ttt3r.cameras import ray_map
from ttt3r.errors import TTT3RError
from ttt3r.geometry import (
    Sim3,
    intrinsics_from_focal,
    nearest_rotation,
    quaternion_to_rotation,
    rotation_to_quaternion,
    transform_points,
    umeyama,
    unproject,
)

H = np.sqrt(0.5)


def test_importing_the_core_imports_neither_torch_nor_scipy():
    src = str(Path(ttt3r.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    code = "import sys, ttt3r.geometry; print('torch' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_unproject_hand_computed():
    K = np.array([[2.0, 0.0, 1.0], [0.0, 4.0, 0.5], [0.0, 0.0, 1.0]])
    depth = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 3.0]], dtype=np.float32)
    pts = unproject(depth, K)
    assert pts.shape == (2, 3, 3) and pts.dtype == np.float64
    # pixel (u=2, v=1), z = 3: ((2 - 1) / 2 * 3, (1 - 0.5) / 4 * 3, 3)
    np.testing.assert_array_equal(pts[1, 2], [1.5, 0.375, 3.0])
    # pixel (u=0, v=0), z = 1: ((0 - 1) / 2, (0 - 0.5) / 4, 1)
    np.testing.assert_array_equal(pts[0, 0], [-0.5, -0.125, 1.0])
    np.testing.assert_array_equal(pts[1, 1], [0.0, 0.0, 0.0])  # zero depth: the camera centre
    # pixel centres at integers: the principal point's ray is the optical axis
    K2 = np.array([[5.0, 0, 2.0], [0, 5.0, 1.0], [0, 0, 1]])
    np.testing.assert_array_equal(unproject(np.full((3, 5), 7.0), K2)[1, 2], [0.0, 0.0, 7.0])


def test_transform_points_hand_computed():
    T = np.eye(4)
    T[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
    T[:3, 3] = [10, 20, 30]
    np.testing.assert_array_equal(transform_points(T, np.array([1.0, 2.0, 3.0])), [8.0, 21.0, 33.0])
    pts = np.arange(24.0).reshape(2, 4, 3)
    assert transform_points(T, pts).shape == (2, 4, 3)
    np.testing.assert_array_equal(transform_points(T, pts)[1, 3], [-22.0 + 10, 21.0 + 20, 23.0 + 30])


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: unproject(np.zeros((2, 3, 1)), np.eye(3)), "depth"),
        (lambda: unproject(np.zeros((2, 3)), np.eye(4)), "K"),
        (lambda: transform_points(np.eye(3), np.zeros((5, 3))), "T"),
        (lambda: transform_points(np.eye(4), np.zeros((5, 4))), "pts"),
        (lambda: rotation_to_quaternion(np.zeros((4, 3))), "R"),
        (lambda: quaternion_to_rotation(np.zeros(3)), "q"),
        (lambda: umeyama(np.zeros((4, 2)), np.zeros((4, 2))), "src"),
        (lambda: umeyama(np.zeros((4, 3)), np.zeros((5, 3))), "src and dst"),
        (lambda: Sim3.identity().apply_poses(np.zeros((2, 3, 4))), "poses"),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name} must have") as info:
        call()
    assert "\n" not in str(info.value)


def test_quaternions_known_values_tum_order():
    Rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z
    np.testing.assert_allclose(rotation_to_quaternion(Rz), [0.0, 0.0, H, H], atol=1e-15)
    np.testing.assert_allclose(quaternion_to_rotation([0.0, 0.0, H, H]), Rz, atol=1e-15)
    np.testing.assert_allclose(rotation_to_quaternion(np.eye(3)), [0, 0, 0, 1])
    Rx180 = np.diag([1.0, -1.0, -1.0])
    np.testing.assert_allclose(np.abs(rotation_to_quaternion(Rx180)), [1, 0, 0, 0], atol=1e-15)
    # any norm is accepted: the quaternion is normalised first
    np.testing.assert_allclose(quaternion_to_rotation([0.0, 0.0, 3.0, 3.0]), Rz, atol=1e-15)


def test_quaternion_round_trip_against_scipy():
    rng = np.random.default_rng(0)
    rots = Rotation.random(200, random_state=rng)
    q = rotation_to_quaternion(rots.as_matrix())
    assert q.shape == (200, 4) and (q[:, 3] >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    ref = rots.as_quat()
    ref[ref[:, 3] < 0] *= -1
    np.testing.assert_allclose(q, ref, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_rotation(q), rots.as_matrix(), atol=1e-12)
    # batch shapes are kept
    assert quaternion_to_rotation(q.reshape(10, 20, 4)).shape == (10, 20, 3, 3)
    assert rotation_to_quaternion(np.zeros((0, 3, 3))).shape == (0, 4)


def test_nearest_rotation_repairs_drift_and_reflections():
    R = Rotation.from_rotvec([0.2, -0.4, 1.1]).as_matrix()
    noisy = R + 1e-4 * np.random.default_rng(1).normal(size=(3, 3))
    fixed = nearest_rotation(noisy)
    np.testing.assert_allclose(fixed @ fixed.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(fixed) == pytest.approx(1.0)
    np.testing.assert_allclose(fixed, R, atol=1e-3)
    np.testing.assert_allclose(nearest_rotation(R), R, atol=1e-14)
    assert np.linalg.det(nearest_rotation(np.diag([1.0, 1.0, -1.0]))) == pytest.approx(1.0)


def test_umeyama_recovers_a_known_sim3_exactly():
    # corners of a unit tetrahedron, mapped by s = 2, 90 degrees about z, t = (1, 2, 3)
    src = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    dst = np.array([[1.0, 2, 3], [1, 4, 3], [-1, 2, 3], [1, 2, 5]])  # by hand: 2 R p + t
    fit = umeyama(src, dst)
    np.testing.assert_allclose(fit.R, R, atol=1e-14)
    np.testing.assert_allclose(fit.t, [1, 2, 3], atol=1e-14)
    assert fit.s == pytest.approx(2.0, abs=1e-14)
    np.testing.assert_allclose(fit.apply_points(src), dst, atol=1e-14)
    rigid = umeyama(src, dst, with_scale=False)
    assert rigid.s == 1.0
    np.testing.assert_allclose(rigid.R, R, atol=1e-14)
    # a pose is moved by the similarity: position scaled and shifted, orientation rotated
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 0.0, 0.0]
    moved = fit.apply_poses(pose[None])[0]
    np.testing.assert_allclose(moved[:3, :3], R, atol=1e-14)
    np.testing.assert_allclose(moved[:3, 3], [1, 4, 3], atol=1e-14)
    np.testing.assert_allclose(fit.matrix, [[0, -2, 0, 1], [2, 0, 0, 2], [0, 0, 2, 3], [0, 0, 0, 1]], atol=1e-14)


def test_umeyama_degenerate_points_are_a_user_error():
    line = np.outer(np.arange(5.0), [1.0, 0.0, 0.0])
    with pytest.raises(TTT3RError, match="degenerate"):
        umeyama(line, line)
    same = np.ones((4, 3))
    with pytest.raises(TTT3RError, match="degenerate"):
        umeyama(same, same + 1.0)


def test_intrinsics_from_focal():
    np.testing.assert_array_equal(intrinsics_from_focal(300.0, 288, 512), [[300, 0, 256], [0, 300, 144], [0, 0, 1]])
    np.testing.assert_array_equal(intrinsics_from_focal(10.0, 5, 7)[:2, 2], [3, 2])  # (W // 2, H // 2)


def test_ray_map_hand_computed():
    K = np.array([[2.0, 0, 1.0], [0, 2.0, 1.0], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, 3] = [0.5, -1.0, 2.0]
    rays = ray_map(pose, K, 3, 3, convention="unit_direction")  # the clean direction (not the training one)
    assert rays.shape == (3, 3, 6) and rays.dtype == np.float32
    np.testing.assert_array_equal(rays[..., :3], np.broadcast_to([0.5, -1.0, 2.0], (3, 3, 3)))
    np.testing.assert_allclose(rays[1, 1, 3:], [0, 0, 1])  # the principal point looks down the optical axis
    np.testing.assert_allclose(rays[1, 2, 3:], np.array([0.5, 0, 1]) / np.sqrt(1.25), rtol=1e-6)  # u = 2
