"""Camera motions have the promised shapes and stay where cameras may go."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet_data")

from ttt3r.geometry import quaternion_to_rotation, rotation_to_quaternion  # noqa: E402
from ttt3r.synth.camera import look_at  # noqa: E402
from ttt3r.synth.motion import LAYOUT_FOR_MOTION, MOTIONS, camera_path, corridor_length  # noqa: E402
from ttt3r.synth.scene import make_scene  # noqa: E402


def _path(motion, n, seed, scene_seed=None):
    layout = LAYOUT_FOR_MOTION[motion]
    spec = make_scene(seed if scene_seed is None else scene_seed, layout, corridor_length(n) if layout == "corridor" else None)
    return spec, camera_path(motion, n, seed, spec.camera_zone)


@pytest.mark.parametrize("motion", MOTIONS)
@pytest.mark.parametrize("seed", range(8))
def test_poses_are_rigid_inside_the_scene_and_above_low_objects(motion, seed):
    spec, poses = _path(motion, (400, 60, 2500)[seed % 3], seed)
    R = poses[:, :3, :3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(R), 1.0)
    assert np.allclose(poses[:, 3], [0, 0, 0, 1])
    lo, hi = np.array(spec.bounds[0]), np.array(spec.bounds[1])
    eye = poses[:, :3, 3]
    for o in spec.objects:  # objects stay inside the enclosure
        assert (np.array(o.position[:2]) - o.radius >= lo[:2] - 1e-9).all() and o.top <= hi[2]
        assert (np.array(o.position[:2]) + o.radius <= hi[:2] + 1e-9).all()
    assert (eye[:, :2] > lo[:2] + 0.5).all() and (eye[:, :2] < hi[:2] - 0.5).all()
    low_tops = [o.top for o in spec.objects if o.top <= 1.3]
    assert eye[:, 2].min() >= max(low_tops) + 0.3 - 1e-9
    assert eye[:, 2].max() <= hi[2] - 0.3
    # tall objects (pillars, shelves) are never within their footprint of a camera
    for o in spec.objects:
        if o.top > 1.3:
            d = np.hypot(eye[:, 0] - o.position[0], eye[:, 1] - o.position[1])
            assert d.min() > o.radius + 0.05, (o.name, d.min(), o.radius)
    # smooth: no jumps between consecutive frames (short orbits/loops go round in
    # fewer frames, so their steps are longer)
    steps = np.linalg.norm(np.diff(eye, axis=0), axis=1)
    assert steps.max() < (0.5 if len(poses) < 240 else 0.15)
    acc = np.linalg.norm(np.diff(eye, 2, axis=0), axis=1)
    assert acc.max() < 0.25 * steps.max() + 1e-3  # no kinks
    # same arguments -> same poses; another seed -> other poses
    assert np.array_equal(poses, _path(motion, len(poses), seed)[1])
    assert not np.allclose(poses, _path(motion, len(poses), seed + 10, scene_seed=seed)[1])


def test_orbit_is_a_circle_around_the_centre_looking_at_the_axis():
    for seed in range(4):
        _, poses = _path("orbit", 120, seed)
        eye = poses[:, :3, 3]
        radius = np.hypot(eye[:, 0], eye[:, 1])
        assert np.ptp(radius) < 1e-9 and radius[0] > 1.0
        assert np.ptp(eye[:, 2]) < 1e-12
        # the optical axis passes through the vertical axis x = y = 0
        z = poses[:, :3, 2]
        t = -(eye[:, 0] * z[:, 0] + eye[:, 1] * z[:, 1]) / (z[:, 0] ** 2 + z[:, 1] ** 2)
        closest = eye[:, :2] + t[:, None] * z[:, :2]
        assert np.abs(closest).max() < 1e-9
        # it goes all the way round once in 120 frames (< 240 frames per revolution)
        ang = np.unwrap(np.arctan2(eye[:, 1], eye[:, 0]))
        assert abs(ang[-1] - ang[0]) == pytest.approx(2 * np.pi * 119 / 120, rel=1e-9)


def test_loop_returns_exactly_to_its_start_after_going_somewhere():
    for seed, n in [(0, 50), (1, 300), (2, 1000)]:
        _, poses = _path("loop", n, seed)
        assert np.allclose(poses[-1], poses[0], atol=1e-9)
        eye = poses[:, :3, 3]
        assert np.linalg.norm(eye - eye[0], axis=1).max() > 2.0
        assert np.linalg.norm(eye[n // 2] - eye[0]) > 0.5 or n >= 600  # several laps may meet mid-way


def test_forward_moves_along_the_corridor_looking_ahead():
    spec, poses = _path("forward", 200, 3)
    eye = poses[:, :3, 3]
    assert (np.diff(eye[:, 0]) > 0).all()
    assert eye[-1, 0] - eye[0, 0] > 3.0
    assert (poses[:, 0, 2] > 0.9).all()  # optical axis within ~25 deg of +x
    # long sequences stay inside the (capped) corridor
    spec, poses = _path("forward", 5000, 3)
    assert poses[-1, 0, 3] < spec.bounds[1][0] - 1.0


def test_walk_wanders():
    _, poses = _path("walk", 600, 5)
    eye = poses[:, :3, 3]
    assert np.linalg.norm(eye - eye[0], axis=1).max() > 1.0
    acc = np.linalg.norm(np.diff(eye, 2, axis=0), axis=1)
    assert acc.max() < 5e-3  # C2-smooth spline: no kinks


def test_look_at_is_opencv_and_quaternions_round_trip():
    pose = look_at([1.0, 2.0, 1.5], [4.0, 2.0, 1.5])
    # looking along +x with z up: camera z = +x, camera y = down (-z), camera x = right (-y)
    assert np.allclose(pose[:3, 2], [1, 0, 0])
    assert np.allclose(pose[:3, 1], [0, 0, -1])
    assert np.allclose(pose[:3, 0], [0, -1, 0])
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        R = quaternion_to_rotation(q)
        assert np.allclose(quaternion_to_rotation(rotation_to_quaternion(R)), R, atol=1e-12)


def test_pan_only_turns_on_a_tripod_sweeping_about_the_room_centre():
    from scipy.spatial.transform import Rotation

    for seed, n in [(0, 64), (1, 400), (2, 1000)]:
        _, poses = _path("pan", n, seed)
        eye = poses[:, :3, 3]
        assert np.ptp(eye, axis=0).max() == 0.0  # one fixed point: every motion is a pure rotation
        rel = np.linalg.inv(poses[:-1]) @ poses[1:]
        step = np.degrees(np.linalg.norm(Rotation.from_matrix(rel[:, :3, :3]).as_rotvec(), axis=1))
        assert 0.3 < step.mean() < 5.0 and step.max() < 8.0
        z = poses[:, :3, 2]
        assert (z[:, 2] < 0.2).all()  # never looks up much; looks down on average
        assert z[:, 2].mean() < 0.0
        # the sweep centres on the direction of the room's centre (within its amplitude)
        to_centre = -eye[0, :2] / np.linalg.norm(eye[0, :2])
        heading = z[:, :2] / np.linalg.norm(z[:, :2], axis=1, keepdims=True)
        assert np.degrees(np.arccos(np.clip(heading @ to_centre, -1, 1))).max() < 110.0
        yaw = np.unwrap(np.arctan2(z[:, 1], z[:, 0]))
        assert np.ptp(yaw) > np.radians(20 if n < 100 else 60)  # it really sweeps
