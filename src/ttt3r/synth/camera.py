"""Pinhole camera helpers shared by the renderer and the motions (pure numpy).

Conventions (the package's, see :mod:`ttt3r.results`):

* camera axes are OpenCV's: x right, y down, z forward;
* poses are camera-to-world 4x4 float64 matrices, ``X_world = pose @ X_cam``;
* the synthetic world is pybullet's: z up, metres;
* pixel ``(u, v)`` is the centre of column ``u``, row ``v`` (OpenCV), so the
  image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.

pybullet's TinyRenderer samples each pixel at integer screen coordinates with the
y axis flipped; :func:`projection_matrix` folds that in so that the rendered
image obeys ``K`` exactly (checked by the tests to ~1e-6 relative depth).
"""

from __future__ import annotations

import math

import numpy as np

#: OpenGL camera axes (x right, y up, z backward) <-> OpenCV axes.
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> np.ndarray:
    """(3, 3) float64 pinhole matrix for a *horizontal* field of view in degrees.

    Square pixels (fx = fy) and the principal point at the exact image centre
    ``((W - 1) / 2, (H - 1) / 2)``.
    """
    f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array(
        [[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]],
        dtype=np.float64,
    )


def projection_matrix(K: np.ndarray, width: int, height: int, near: float, far: float) -> list[float]:
    """pybullet projection matrix (16 floats, column-major) reproducing ``K`` in TinyRenderer.

    TinyRenderer maps NDC to pixels as ``u = (x_ndc + 1) W / 2`` and
    ``v = H - 1 - (y_ndc + 1) H / 2``; solving for the off-axis terms gives
    the entries below. Depth terms are the standard OpenGL ones, so the z-buffer
    converts to metric depth with :func:`zbuffer_to_depth`.
    """
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * fx / width
    P[0, 2] = 1.0 - 2.0 * cx / width
    P[1, 1] = 2.0 * fy / height
    P[1, 2] = (cy - height / 2.0 + 1.0) * 2.0 / height
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P.T.reshape(-1).tolist()  # column-major


def view_matrix(pose: np.ndarray) -> list[float]:
    """pybullet view matrix (16 floats, column-major) for a camera-to-world OpenCV pose."""
    world_to_gl = GL_TO_CV @ np.linalg.inv(np.asarray(pose, dtype=np.float64))
    return world_to_gl.T.reshape(-1).tolist()


def zbuffer_to_depth(zbuf: np.ndarray, near: float, far: float) -> np.ndarray:
    """(H, W) float32 metric depth (z along the optical axis) from a [0, 1] z-buffer.

    Pixels where nothing was drawn (z-buffer 1) get depth 0.
    """
    z = np.asarray(zbuf, dtype=np.float64)
    depth = far * near / (far - (far - near) * z)
    depth[z >= 1.0] = 0.0
    return depth.astype(np.float32)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0), roll_rad: float = 0.0) -> np.ndarray:
    """(4, 4) camera-to-world OpenCV pose at ``eye`` looking at ``target``.

    ``up`` is the world direction that appears upward in the image (z by default);
    ``roll_rad`` rotates the camera about its own optical (z) axis, right-handed.
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    n = np.linalg.norm(x)
    if n < 1e-9:  # looking straight along up: pick any x
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
        n = np.linalg.norm(x)
    x /= n
    y = np.cross(z, x)
    if roll_rad:
        c, s = math.cos(roll_rad), math.sin(roll_rad)
        x, y = c * x + s * y, -s * x + c * y
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def project(K: np.ndarray, pose: np.ndarray, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, 3) world points: returns (N, 2) pixel ``(u, v)`` and (N,) depth z."""
    w2c = np.linalg.inv(pose)
    pc = np.asarray(points_world, dtype=np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (pc @ np.asarray(K, dtype=np.float64).T)[:, :2] / z[:, None]
    return uv, z
