"""The rendered ground truth is exact: depth, intrinsics and OpenCV poses agree with geometry.

Truth here is independent of the renderer's own bookkeeping: analytic planes of
an empty room, the known position of a bright sphere, and the same surface seen
from two cameras.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pybullet")

from ttt3r.geometry import transform_points, unproject  # noqa: E402
from ttt3r.synth import camera as cam  # noqa: E402
from ttt3r.synth.motion import camera_path  # noqa: E402
from ttt3r.synth.render import Renderer  # noqa: E402
from ttt3r.synth.scene import LightSpec, ObjectSpec, SceneSpec, make_scene  # noqa: E402

W, H = 96, 64


def _plain_room(objects, color=(0.1, 0.1, 0.1, 1.0), shadow=False) -> SceneSpec:
    surfaces = {
        n: {"texture": None, "tile": 1.0, "color": color}
        for n in ("floor", "ceiling", "wall_xmin", "wall_xmax", "wall_ymin", "wall_ymax")
    }
    light = LightSpec((0.3, 0.2, 0.9), (1, 1, 1), 10.0, 0.9, 0.1, 0.0, shadow)
    return SceneSpec(0, "room", ((-3.0, -2.5, 0.0), (3.5, 2.0, 2.7)), surfaces, objects, light, {})


POSES = [
    cam.look_at([-1.0, 0.5, 1.4], [1.0, -0.3, 0.6]),
    cam.look_at([1.5, -1.0, 2.0], [-2.0, 1.0, 0.3], roll_rad=0.4),
    cam.look_at([0.2, 0.1, 0.8], [3.0, 1.9, 2.5], roll_rad=-1.1),
]


@pytest.mark.parametrize("fov", [50.0, 90.0])
def test_depth_lands_on_the_analytic_walls_of_an_empty_room(fov):
    spec = _plain_room([])
    (x0, y0, z0), (x1, y1, z1) = spec.bounds
    K = cam.intrinsics_from_fov(W, H, fov)
    with Renderer(spec, (W, H), K) as r:
        for pose in POSES:
            _, depth = r.render(pose)
            assert (depth > 0).all(), "an enclosed room leaves no pixel without geometry"
            pts = transform_points(pose, unproject(depth, K))
            # distance of each point to the nearest of the six planes, relative to its depth
            d = np.min(
                np.abs(np.stack([pts[..., 0] - x0, pts[..., 0] - x1, pts[..., 1] - y0, pts[..., 1] - y1, pts[..., 2] - z0, pts[..., 2] - z1])),
                axis=0,
            )
            rel = d / depth
            assert np.median(rel) < 1e-5
            assert np.quantile(rel, 0.99) < 1e-4, np.quantile(rel, 0.99)


def test_bright_sphere_appears_where_K_and_the_pose_project_it():
    rng = np.random.default_rng(3)
    centres = [np.array([0.6, -0.4, 0.9]), np.array([-1.2, 0.7, 0.4]), np.array([1.8, 1.2, 1.5])]
    r_s = 0.04
    for c in centres:
        sphere = ObjectSpec("ball", "sphere", (float(c[0]), float(c[1]), float(c[2] - r_s)), 0.0, float(c[2] + r_s), r_s, dims=(r_s,), color=(1, 1, 1, 1))
        spec = _plain_room([sphere])
        K = cam.intrinsics_from_fov(W, H, 70.0)
        with Renderer(spec, (W, H), K) as r:
            for _ in range(3):
                # camera 1.2 .. 2 m away, looking near (not at) the sphere, rolled
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                eye = c + direction * rng.uniform(1.2, 2.0)
                eye = np.clip(eye, [-2.8, -2.3, 0.2], [3.3, 1.8, 2.5])
                target = c + rng.normal(0.0, 0.15, 3)
                pose = cam.look_at(eye, target, roll_rad=float(rng.uniform(-math.pi, math.pi)))
                rgb, depth = r.render(pose)
                uv, z = cam.project(K, pose, c[None])
                assert 3 < uv[0, 0] < W - 4 and 3 < uv[0, 1] < H - 4
                mask = rgb.mean(axis=2) > 128
                assert mask.sum() >= 3
                vs, us = np.nonzero(mask)
                assert abs(us.mean() - uv[0, 0]) < 0.35 and abs(vs.mean() - uv[0, 1]) < 0.35, (us.mean(), vs.mean(), uv)
                # nearest surface point of the sphere is z - r along the axis (to the pixel grid)
                assert depth[mask].min() == pytest.approx(z[0] - r_s, abs=0.01)


def test_two_frames_of_a_seeded_scene_agree_in_world_space():
    spec = make_scene(11, "room")
    K = cam.intrinsics_from_fov(W, H, 70.0)
    poses = camera_path("walk", 90, 4, spec.camera_zone)
    a, b = poses[0], poses[60]
    assert np.linalg.norm(a[:3, 3] - b[:3, 3]) > 0.3  # a real baseline
    with Renderer(spec, (W, H), K) as r:
        _, da = r.render(a)
        _, db = r.render(b)
    pts = transform_points(a, unproject(da, K)).reshape(-1, 3)
    rel, frac_inside = _reprojection_error(K, b, pts, db)
    assert frac_inside > 0.3
    # inverse depth is affine in pixels on a plane, so bilinear lookup is exact on
    # flat patches; object edges and occlusions make a minority disagree
    assert np.median(rel) < 1e-4, np.median(rel)
    assert (rel < 1e-3).mean() > 0.7, (rel < 1e-3).mean()
    # sensitivity: the same check with frame B's camera turned by 1 degree fails
    c, s_ = math.cos(math.radians(1.0)), math.sin(math.radians(1.0))
    turn = np.array([[c, 0, s_, 0], [0, 1, 0, 0], [-s_, 0, c, 0], [0, 0, 0, 1]])
    rel_bad, _ = _reprojection_error(K, b @ turn, pts, db)
    assert np.median(rel_bad) > 1e-3 and (rel_bad < 1e-3).mean() < 0.3


def _reprojection_error(K, pose, pts, depth):
    """Relative |depth(u, v) - z| of world points projected into a depth map (bilinear in 1/depth)."""
    uv, z = cam.project(K, pose, pts)
    u0, v0 = np.floor(uv[:, 0]), np.floor(uv[:, 1])
    inside = (z > 0.05) & (u0 >= 0) & (u0 < W - 1) & (v0 >= 0) & (v0 < H - 1)
    u0, v0, z = u0[inside].astype(int), v0[inside].astype(int), z[inside]
    fu, fv = uv[inside, 0] - u0, uv[inside, 1] - v0
    inv = 1.0 / depth.astype(np.float64)
    i = (
        inv[v0, u0] * (1 - fu) * (1 - fv)
        + inv[v0, u0 + 1] * fu * (1 - fv)
        + inv[v0 + 1, u0] * (1 - fu) * fv
        + inv[v0 + 1, u0 + 1] * fu * fv
    )
    return np.abs(1.0 / i - z) / z, inside.mean()
