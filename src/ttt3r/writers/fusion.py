"""A bounded voxel grid that fuses per-frame point maps into one coloured cloud.

Each occupied voxel keeps the running mean of the points (xyz, world frame, the
reconstruction's units) and colours (RGB) that fell into it, and their count.
Memory is bounded: when the number of voxels exceeds ``max_points`` the voxel
size is doubled and the voxels are re-merged (count-weighted means), as many
times as needed. New points are buffered per frame (already reduced to one entry
per voxel) and merged in batches, so the per-frame cost does not grow with the
size of the cloud.
"""

from __future__ import annotations

import numpy as np

from ..results import FrameResult

__all__ = ["VoxelFusion"]

_BITS = 21  # bits per axis of the packed voxel key
_OFF = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


def _pack(ijk: np.ndarray) -> np.ndarray:
    """(N, 3) int64 voxel coordinates in [-2^20, 2^20) -> (N,) int64 keys."""
    u = (ijk + _OFF).astype(np.int64)
    return (u[:, 0] << (2 * _BITS)) | (u[:, 1] << _BITS) | u[:, 2]


def _reduce(keys: np.ndarray, xyz: np.ndarray, rgb: np.ndarray, cnt: np.ndarray):
    """Merge entries with equal keys: count-weighted means of xyz and rgb, summed counts."""
    uk, inv = np.unique(keys, return_inverse=True)
    if len(uk) == len(keys):
        order = np.argsort(keys, kind="stable")
        return keys[order], xyz[order], rgb[order], cnt[order]
    w = cnt.astype(np.float64)
    n = np.bincount(inv, weights=w, minlength=len(uk))
    out_xyz = np.empty((len(uk), 3), np.float64)
    out_rgb = np.empty((len(uk), 3), np.float64)
    for d in range(3):
        out_xyz[:, d] = np.bincount(inv, weights=xyz[:, d] * w, minlength=len(uk))
        out_rgb[:, d] = np.bincount(inv, weights=rgb[:, d] * w, minlength=len(uk))
    out_xyz /= n[:, None]
    out_rgb /= n[:, None]
    out_cnt = np.bincount(inv, weights=cnt, minlength=len(uk)).astype(np.int64)
    return uk, out_xyz, out_rgb, out_cnt


class VoxelFusion:
    """Fuse world-frame points into at most ``max_points`` voxel means.

    Args:
        voxel_size: voxel edge length in world units; ``None``: chosen on the
            first non-empty frame as ``auto_pixels * median_depth / fx`` (the
            footprint of ``auto_pixels`` pixels at the median depth of the
            confident points).
        max_points: upper bound on the number of voxels kept (>= 1).
        conf_threshold: :meth:`add_frame` keeps pixels with ``conf > conf_threshold``.
        auto_pixels: see ``voxel_size``.
        pixel_stride: :meth:`add_frame` uses every ``pixel_stride``-th pixel per axis.
        batch_points: buffered entries that trigger a merge.
    """

    def __init__(self, voxel_size: float | None = None, max_points: int = 2_000_000,
                 conf_threshold: float = 1.5, auto_pixels: float = 2.0, pixel_stride: int = 2,
                 batch_points: int = 1_000_000) -> None:
        if voxel_size is not None and not voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        self.voxel_size = voxel_size
        self.max_points = int(max_points)
        self.conf_threshold = float(conf_threshold)
        self.auto_pixels = float(auto_pixels)
        self.pixel_stride = max(1, int(pixel_stride))
        self.batch_points = int(batch_points)
        self.n_coarsen = 0  # how many times the voxel size was doubled
        self.n_input = 0  # points accepted so far
        self.n_dropped = 0  # points beyond the key range (far outliers) or not finite
        self._keys = np.empty(0, np.int64)
        self._xyz = np.empty((0, 3), np.float32)
        self._rgb = np.empty((0, 3), np.float32)
        self._cnt = np.empty(0, np.int64)
        self._buf: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._buf_n = 0

    # ------------------------------------------------------------------ input
    def add_frame(self, frame: FrameResult) -> None:
        """Add a frame's confident world points (``pose`` applied to ``pts3d_cam``, as
        ``FrameResult.points_world()``), coloured by ``rgb``, where ``conf > conf_threshold``.

        Only every ``pixel_stride``-th pixel in each direction is used (the
        voxels are larger than a pixel's footprint, so this loses little and
        is ``pixel_stride**2`` times faster).
        """
        s = self.pixel_stride
        conf = frame.conf[::s, ::s]
        mask = conf > self.conf_threshold
        if not mask.any():
            return
        pc = frame.pts3d_cam[::s, ::s][mask].astype(np.float64)
        if self.voxel_size is None:
            z = pc[:, 2]
            z = z[np.isfinite(z) & (z > 0)]
            if z.size == 0:
                return
            fx = float(frame.intrinsics[0, 0])
            self.voxel_size = float(self.auto_pixels * np.median(z) / fx) if fx > 0 else float(np.median(z) / 250)
        pose = np.asarray(frame.pose, np.float64)
        pts = pc @ np.ascontiguousarray(pose[:3, :3].T) + pose[:3, 3]
        self.add_points(pts, frame.rgb[::s, ::s][mask])

    def add_points(self, xyz: np.ndarray, rgb: np.ndarray) -> None:
        """Add (N, 3) world points with (N, 3) uint8 colours.

        If ``voxel_size`` is still unknown it is set from the points' spread
        (median distance to their median / 200).
        """
        xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
        rgb = np.asarray(rgb).reshape(-1, 3)
        ok = np.isfinite(xyz).all(axis=1)
        if self.voxel_size is None:
            if not ok.any():
                return
            p = xyz[ok]
            spread = float(np.median(np.linalg.norm(p - np.median(p, axis=0), axis=1)))
            self.voxel_size = spread / 200 if spread > 0 else 1e-3
        ijk = np.floor(xyz / self.voxel_size)
        with np.errstate(invalid="ignore"):
            ok &= (np.abs(ijk) < _OFF - 1).all(axis=1)
        self.n_dropped += int((~ok).sum())
        if not ok.all():
            xyz, rgb, ijk = xyz[ok], rgb[ok], ijk[ok]
        if len(xyz) == 0:
            return
        self.n_input += len(xyz)
        keys = _pack(ijk.astype(np.int64))
        entry = _reduce(keys, xyz, rgb.astype(np.float64), np.ones(len(keys), np.int64))
        self._buf.append(entry)
        self._buf_n += len(entry[0])
        if self._buf_n >= self.batch_points or self._buf_n + len(self._keys) > 4 * self.max_points:
            self._merge()

    # ------------------------------------------------------------------ merging
    def _merge(self) -> None:
        if self._buf:
            parts = [(self._keys, self._xyz, self._rgb, self._cnt), *self._buf]
            self._buf, self._buf_n = [], 0
            k, x, c, n = _reduce(
                np.concatenate([p[0] for p in parts]),
                np.concatenate([p[1].astype(np.float64) for p in parts]),
                np.concatenate([p[2].astype(np.float64) for p in parts]),
                np.concatenate([p[3] for p in parts]),
            )
            self._keys, self._xyz, self._rgb, self._cnt = k, x.astype(np.float32), c.astype(np.float32), n
        while len(self._keys) > self.max_points:
            self._coarsen()

    def _coarsen(self) -> None:
        assert self.voxel_size is not None
        self.voxel_size *= 2.0
        self.n_coarsen += 1
        xyz = self._xyz.astype(np.float64)
        keys = _pack(np.floor(xyz / self.voxel_size).astype(np.int64))
        k, x, c, n = _reduce(keys, xyz, self._rgb.astype(np.float64), self._cnt)
        self._keys, self._xyz, self._rgb, self._cnt = k, x.astype(np.float32), c.astype(np.float32), n

    # ------------------------------------------------------------------ output
    def __len__(self) -> int:
        self._merge()
        return len(self._keys)

    def cloud(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fused cloud: ((N, 3) float32 xyz, (N, 3) uint8 rgb, (N,) int64 counts), N <= max_points."""
        self._merge()
        rgb = np.clip(np.rint(self._rgb), 0, 255).astype(np.uint8)
        return self._xyz.copy(), rgb, self._cnt.copy()

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """At most ``n`` points of the cloud, chosen uniformly at random (deterministic): (xyz, rgb)."""
        xyz, rgb, _ = self.cloud()
        if len(xyz) > n:
            idx = np.sort(np.random.default_rng(seed).choice(len(xyz), n, replace=False))
            xyz, rgb = xyz[idx], rgb[idx]
        return xyz, rgb
