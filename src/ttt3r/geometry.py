"""Camera geometry on numpy arrays: the one place for unprojection, point transforms,
rotation <-> quaternion, Umeyama Sim(3)/SE(3) fits, intrinsics and ray maps.

Pure functions (numpy and scipy only; importing this module imports neither
torch nor, until a rotation is converted, scipy; the network's torch pose
encoding is :mod:`ttt3r.model.pose_encoding`).

Conventions, for every function here:

* camera axes are OpenCV's: x right, y down, z forward;
* poses are (4, 4) camera-to-world matrices, ``X_world = pose @ X_cam``;
* pixel ``(u, v)`` is the centre of column ``u``, row ``v``: pixel centres sit
  at integer coordinates, (0, 0) is the centre of the top-left pixel;
* intrinsics ``K`` are (3, 3) pinhole matrices in pixels;
* quaternions are TUM's (and scipy's) order, scalar last: ``(qx, qy, qz, qw)``,
  Hamilton convention, returned with ``qw >= 0``.

Shapes are checked where a function starts; a wrong one raises ``ValueError``
naming the argument and the shape expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import TTT3RError

__all__ = [
    "Sim3",
    "intrinsics_from_focal",
    "nearest_rotation",
    "quaternion_to_rotation",
    "ray_map",
    "rotation_to_quaternion",
    "transform_points",
    "umeyama",
    "unproject",
]


def _check(name: str, a: np.ndarray, ndim: int | None = None, tail: tuple[int, ...] = ()) -> None:
    """Raise ValueError unless ``a`` has ``ndim`` axes (any, if None) ending in ``tail``."""
    shape = np.shape(a)
    ok = (ndim is None or len(shape) == ndim) and len(shape) >= len(tail)
    ok = ok and tuple(shape[len(shape) - len(tail):]) == tuple(tail)
    if not ok:
        axes = ["..."] if ndim is None else [chr(ord("A") + i) for i in range(ndim - len(tail))]
        want = ", ".join([*axes, *map(str, tail)])
        raise ValueError(f"{name} must have shape ({want}), got {shape}")


# ---------------------------------------------------------------- intrinsics


def intrinsics_from_focal(focal: float, h: int, w: int) -> np.ndarray:
    """(3, 3) float64 pinhole matrix with fx = fy = ``focal`` (pixels) and principal
    point ``(w // 2, h // 2)`` (the network's convention for an (h, w) frame)."""
    k = np.eye(3)
    k[0, 0] = k[1, 1] = float(focal)
    k[0, 2], k[1, 2] = w // 2, h // 2
    return k


# ---------------------------------------------------------------- points


def unproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points of every pixel of a depth map.

    Args:
        depth: (H, W) depth along the camera z axis (any unit; 0 gives the camera centre).
        K: (3, 3) pinhole intrinsics in pixels of the (H, W) grid.

    Returns:
        (H, W, 3) float64 points: pixel (u, v) maps to
        ``((u - cx) / fx * z, (v - cy) / fy * z, z)`` (as CUT3R/DUSt3R's
        ``depthmap_to_camera_coordinates``, pixel centres at integers).
    """
    _check("depth", depth, 2)
    _check("K", K, 2, (3, 3))
    h, w = np.shape(depth)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    z = np.asarray(depth).astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=-1)


def transform_points(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) rigid or similarity transform to (..., 3) points: ``R @ p + t``.

    ``T`` is e.g. a camera-to-world pose (camera points -> world points). The
    last row of ``T`` is ignored (no projective part).
    """
    _check("T", T, 2, (4, 4))
    _check("pts", pts, None, (3,))
    return pts @ T[:3, :3].T + T[:3, 3]


# ---------------------------------------------------------------- rotations


def nearest_rotation(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) matrices -> the nearest rotations (Frobenius norm, det +1), by SVD.

    Re-orthonormalises a rotation that picked up rounding (or float32) error.
    """
    _check("R", R, None, (3, 3))
    u, _, vt = np.linalg.svd(np.asarray(R, dtype=np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions ``(qx, qy, qz, qw)``, ``qw >= 0``.

    TUM order (scalar last, as scipy). A matrix that is not exactly orthonormal
    is first approximated by a rotation (scipy's ``Rotation.from_matrix``).
    """
    _check("R", R, None, (3, 3))
    R = np.asarray(R, dtype=np.float64)
    flat = R.reshape(-1, 3, 3)
    if len(flat) == 0:
        return np.zeros(R.shape[:-2] + (4,))
    from scipy.spatial.transform import Rotation  # lazy: ~1 s to import

    q = Rotation.from_matrix(flat).as_quat()
    q[q[:, 3] < 0] *= -1.0
    return q.reshape(R.shape[:-2] + (4,))


def quaternion_to_rotation(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions ``(qx, qy, qz, qw)`` (TUM order, any non-zero norm; normalised
    first) -> (..., 3, 3) float64 rotation matrices."""
    _check("q", q, None, (4,))
    q = np.asarray(q, dtype=np.float64)
    flat = q.reshape(-1, 4)
    if len(flat) == 0:
        return np.zeros(q.shape[:-1] + (3, 3))
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(flat).as_matrix().reshape(q.shape[:-1] + (3, 3))


# ---------------------------------------------------------------- similarity fits (Umeyama 1991)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Sim3:
    """A similarity transform ``x -> s * R @ x + t``.

    Applied to a pose ``P = [R_i | t_i]`` it gives ``[R @ R_i | s * R @ t_i + t]``:
    positions are transformed by the similarity, orientations only rotated, so
    the result is again a rigid pose (the convention of evo's ``PosePath3D.align``).

    Attributes:
        R: (3, 3) rotation matrix (det +1).
        t: (3,) translation, in the destination frame's unit.
        s: positive scale factor (1.0 for SE(3) and identity fits).
    """

    R: np.ndarray
    t: np.ndarray
    s: float = 1.0

    def __iter__(self):
        """Unpack as ``R, t, s = sim``."""
        return iter((self.R, self.t, self.s))

    @staticmethod
    def identity() -> Sim3:
        return Sim3(np.eye(3), np.zeros(3), 1.0)

    @property
    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous matrix ``[[s R, t], [0, 1]]``."""
        m = np.eye(4)
        m[:3, :3] = self.s * self.R
        m[:3, 3] = self.t
        return m

    def apply_points(self, points: np.ndarray) -> np.ndarray:
        """Transform (..., 3) points; returns a new float64 array."""
        _check("points", points, None, (3,))
        p = np.asarray(points, dtype=np.float64)
        return self.s * (p @ self.R.T) + self.t

    def apply_poses(self, poses: np.ndarray) -> np.ndarray:
        """Transform (N, 4, 4) camera-to-world poses (positions scaled, rotations rotated)."""
        _check("poses", poses, None, (4, 4))
        p = np.array(poses, dtype=np.float64, copy=True)
        p[..., :3, :3] = self.R @ p[..., :3, :3]
        p[..., :3, 3] = self.apply_points(p[..., :3, 3])
        return p


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True,
            weights: np.ndarray | None = None) -> Sim3:
    """Least-squares :class:`Sim3` (or rigid, if ``with_scale`` is False) mapping ``src`` to ``dst``.

    Args:
        src: (N, 3) source points.
        dst: (N, 3) corresponding destination points, any (consistent) unit.
        with_scale: also estimate the scale (Sim(3)); otherwise ``s = 1`` (SE(3)).
        weights: optional (N,) non-negative weights of the correspondences
            (weighted means, covariance and variance); None: all equal.

    Returns:
        The fit with ``dst ~= s * R @ src + t``.

    Raises:
        ValueError: ``src`` or ``dst`` is not (N, 3), or their shapes differ, or
            ``weights`` is not (N,) finite, non-negative and not all zero.
        TTT3RError: the points are degenerate (fewer than two independent
            directions, e.g. all identical or collinear): no unique fit.
    """
    _check("src", src, 2, (3,))
    _check("dst", dst, 2, (3,))
    x = np.asarray(src, dtype=np.float64)
    y = np.asarray(dst, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"src and dst must have the same shape (N, 3), got {x.shape} and {y.shape}")
    n = x.shape[0]
    if weights is None:
        mx, my = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - mx, y - my
        var_x = float(np.sum(xc**2)) / n
        cov = yc.T @ xc / n  # (3, 3) = sum of outer(y_i, x_i) / n
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be ({n},), finite, >= 0 and not all 0; got shape {w.shape}")
        w = w / w.sum()
        mx, my = w @ x, w @ y
        xc, yc = x - mx, y - my
        var_x = float(w @ np.sum(xc**2, axis=1))
        cov = (yc * w[:, None]).T @ xc  # (3, 3) weighted sum of outer(y_i, x_i)
    u, d, vt = np.linalg.svd(cov)
    if np.count_nonzero(d > np.finfo(d.dtype).eps) < 2:
        raise TTT3RError(f"cannot align {n} positions: they are degenerate (identical or collinear)")
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0.0:
        sign[2, 2] = -1.0
    R = u @ sign @ vt
    s = float(np.trace(np.diag(d) @ sign) / var_x) if with_scale else 1.0
    t = my - s * (R @ mx)
    return Sim3(R, t, s)


# ---------------------------------------------------------------- ray maps


def ray_map(cam_to_ref: np.ndarray, K: np.ndarray, h: int, w: int) -> np.ndarray:
    """The 6-channel ray map CUT3R accepts for a frame of known camera.

    Args:
        cam_to_ref: 4x4 pose of the frame's camera in the reference (first-frame) camera.
        K: 3x3 intrinsics in pixels of the (preprocessed) H x W frame.

    Returns:
        (H, W, 6) float32: ray origin (the camera centre, same for every pixel) and
        unit ray direction through each pixel, both in the reference frame.
    """
    _check("cam_to_ref", cam_to_ref, 2, (4, 4))
    _check("K", K, 2, (3, 3))
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3)
    d = pix @ np.linalg.inv(K).T @ cam_to_ref[:3, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = np.broadcast_to(cam_to_ref[:3, 3], d.shape)
    return np.concatenate([o, d], axis=-1).reshape(h, w, 6).astype(np.float32)
