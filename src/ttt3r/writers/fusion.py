"""A bounded voxel grid that fuses per-frame depth maps into one coloured cloud.

Each occupied voxel keeps the running means of the points (xyz, world frame, the
reconstruction's units), colours (RGB), confidences and normals that fell into
it, and their count. The points of a frame are its depth map back-projected
with its intrinsics (:meth:`ttt3r.results.FrameResult.cloud_points_cam`, then
the camera-to-world pose): one pinhole geometry for every cloud ttt3r writes.

Optionally (``track_length > 0``) each voxel also keeps a track: for at most
``track_length`` frames (the earliest), the mean pixel ``(u, v)`` (network
pixels, centres at integers) of that frame's pixels that fell into the voxel,
and how many there were. COLMAP's ``points3D`` tracks are these.

Memory is bounded: when the number of voxels exceeds ``max_points`` the voxel
size is doubled and the voxels are re-merged (count-weighted means, tracks of
the same frame merged the same way), as many times as needed. New points are
buffered per frame (already reduced to one entry per voxel) and merged in
batches, so the per-frame cost does not grow with the size of the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..results import FrameResult

__all__ = ["FusedCloud", "VoxelFusion", "depth_normals"]

_BITS = 21  # bits per axis of the packed voxel key
_OFF = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
# columns of a voxel's mean attributes
_XYZ, _RGB, _CONF, _NRM = slice(0, 3), slice(3, 6), 6, slice(7, 10)
_NATTR = 10


def _pack(ijk: np.ndarray) -> np.ndarray:
    """(N, 3) int64 voxel coordinates in [-2^20, 2^20) -> (N,) int64 keys."""
    u = (ijk + _OFF).astype(np.int64)
    return (u[:, 0] << (2 * _BITS)) | (u[:, 1] << _BITS) | u[:, 2]


def _weighted_means(inv: np.ndarray, n_groups: int, values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(N, D) values, (N,) weights, group of each row -> (n_groups, D) weighted means (float64)."""
    tot = np.bincount(inv, weights=w, minlength=n_groups)
    out = np.empty((n_groups, values.shape[1]), np.float64)
    unit = bool((w == 1).all())
    for d in range(values.shape[1]):
        out[:, d] = np.bincount(inv, weights=values[:, d] if unit else values[:, d] * w, minlength=n_groups)
    return out / np.maximum(tot, 1e-300)[:, None]


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 keys -> (sorted unique keys, (N,) index of each key among them).

    One ``argsort`` (numpy's default introsort: ``np.unique`` and stable sorts are
    several times slower on int64 keys).
    """
    order = np.argsort(keys)
    ks = keys[order]
    new = np.empty(len(ks), bool)
    new[:1] = True
    np.not_equal(ks[1:], ks[:-1], out=new[1:])
    inv = np.empty(len(keys), np.int64)
    inv[order] = np.cumsum(new) - 1
    return ks[new], inv


def _reduce(keys: np.ndarray, attr: np.ndarray, cnt: np.ndarray):
    """Merge entries with equal keys: count-weighted mean attributes, summed counts.

    Returns ``(unique keys (sorted), (M, D) attributes, (M,) counts, (N,) group of each input entry)``.
    """
    uk, inv = _group(keys)
    out = np.empty((len(uk), attr.shape[1]), np.float64)
    n = np.empty(len(uk), np.int64)
    if len(uk) == len(keys):
        out[inv], n[inv] = attr, cnt
        return uk, out, n, inv
    alone = np.bincount(inv, minlength=len(uk))[inv] == 1  # most entries: copied as they are
    a = np.flatnonzero(alone)
    ia = inv[a]
    out[ia], n[ia] = attr.take(a, axis=0), cnt[a]
    shared = np.flatnonzero(~alone)
    groups, sub = _group(inv[shared])
    w = cnt[shared]
    out[groups] = _weighted_means(sub, len(groups), attr.take(shared, axis=0), w.astype(np.float64))
    n[groups] = np.bincount(sub, weights=w, minlength=len(groups)).astype(np.int64)
    return uk, out, n, inv


def _merge_tracks(inv: np.ndarray, n_groups: int, frame: np.ndarray, uv: np.ndarray, cnt: np.ndarray,
                  length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine tracks of entries merged into ``n_groups`` voxels.

    Args:
        inv: (N,) the voxel of each input entry.
        frame, cnt: (N, L) frame index (-1: empty slot) and pixel count of each observation.
        uv: (N, L, 2) mean pixel of each observation.

    Returns:
        ``(frame (M, length), uv (M, length, 2), cnt (M, length))``: per voxel, one
        observation per frame (the count-weighted mean pixel), the earliest ``length`` frames.
    """
    rows = np.repeat(inv, frame.shape[1])
    f = frame.reshape(-1)
    ok = f >= 0
    rows, f, c, p = rows[ok], f[ok], cnt.reshape(-1)[ok], uv.reshape(-1, 2)[ok]
    out_f = np.full((n_groups, length), -1, np.int32)
    out_uv = np.zeros((n_groups, length, 2), np.float32)
    out_c = np.zeros((n_groups, length), np.int32)
    if len(f) == 0:
        return out_f, out_uv, out_c
    g, ginv = _group((rows.astype(np.int64) << 32) | f.astype(np.int64))
    g_uv = _weighted_means(ginv, len(g), p.astype(np.float64), c.astype(np.float64))
    g_c = np.bincount(ginv, weights=c, minlength=len(g))
    g_row, g_f = g >> 32, g & 0xFFFFFFFF  # sorted by row, then frame
    first = np.searchsorted(g_row, g_row, side="left")
    rank = np.arange(len(g)) - first
    keep = rank < length
    r, k = g_row[keep], rank[keep]
    out_f[r, k] = g_f[keep]
    out_uv[r, k] = g_uv[keep]
    out_c[r, k] = np.minimum(g_c[keep], np.iinfo(np.int32).max)
    return out_f, out_uv, out_c


def _central_difference(p: np.ndarray, axis: int) -> np.ndarray:
    """Differences of neighbours along ``axis`` (one-sided at the borders), as ``np.gradient`` up to a factor."""
    d = np.empty_like(p)
    a = np.moveaxis(p, axis, 0)
    o = np.moveaxis(d, axis, 0)
    np.subtract(a[2:], a[:-2], out=o[1:-1])
    np.subtract(a[1], a[0], out=o[0])
    np.subtract(a[-1], a[-2], out=o[-1])
    return d


def depth_normals(points: np.ndarray) -> np.ndarray:
    """(H, W, 3) camera-frame point grid -> (H, W, 3) float32 unit normals facing the camera (0 where undefined).

    The cross product of the grid's differences along rows and columns; at depth
    edges this is the normal of the step (fused normals average it away).
    """
    p = np.asarray(points, np.float32)
    if p.shape[0] < 2 or p.shape[1] < 2:
        return np.zeros_like(p)
    with np.errstate(invalid="ignore", over="ignore"):
        n = np.cross(_central_difference(p, 1), _central_difference(p, 0))
        norm = np.sqrt(np.einsum("...i,...i->...", n, n))[..., None]
        facing = np.einsum("...i,...i->...", n, p)[..., None] > 0  # flip to face the camera (at the origin)
        n = np.where(norm > 0, n / np.where(norm > 0, norm, 1), 0) * np.where(facing, -1, 1).astype(np.float32)
    return np.nan_to_num(n, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class FusedCloud:
    """The fused cloud (N voxels).

    Attributes:
        xyz: (N, 3) float32 world points. rgb: (N, 3) uint8. count: (N,) int64 input points per voxel.
        conf: (N,) float32 mean confidence. normals: (N, 3) float32 unit normals (0 where unknown).
        first_frame: (N,) int32 earliest frame index that added to the voxel (-1: points added without one).
        track_frame: (N, L) int32 frame indices (-1: empty slot), or ``None`` without tracks.
        track_uv: (N, L, 2) float32 mean pixel (network pixels, centres at integers) in that frame.
        track_count: (N, L) int32 pixels of that frame in the voxel.
    """

    xyz: np.ndarray
    rgb: np.ndarray
    count: np.ndarray
    conf: np.ndarray
    normals: np.ndarray
    first_frame: np.ndarray
    track_frame: np.ndarray | None = None
    track_uv: np.ndarray | None = None
    track_count: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.xyz)

    def subset(self, idx: np.ndarray) -> FusedCloud:
        """The voxels ``idx`` (indices or a mask)."""
        def pick(a):
            return None if a is None else a[idx]
        return FusedCloud(self.xyz[idx], self.rgb[idx], self.count[idx], self.conf[idx], self.normals[idx],
                          self.first_frame[idx], pick(self.track_frame), pick(self.track_uv), pick(self.track_count))

    def sample(self, n: int, seed: int = 0) -> FusedCloud:
        """At most ``n`` voxels, chosen uniformly at random (deterministic), in their order."""
        if len(self) <= n:
            return self
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))


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
        track_length: observations (frames) kept per voxel (0: no tracks); see the module doc.
    """

    def __init__(self, voxel_size: float | None = None, max_points: int = 2_000_000,
                 conf_threshold: float = 1.5, auto_pixels: float = 2.0, pixel_stride: int = 2,
                 batch_points: int = 1_000_000, track_length: int = 0) -> None:
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
        self.track_length = max(0, int(track_length))
        self.n_coarsen = 0  # how many times the voxel size was doubled
        self.n_input = 0  # points accepted so far
        self.n_dropped = 0  # points beyond the key range (far outliers) or not finite
        L = self.track_length
        self._keys = np.empty(0, np.int64)
        self._attr = np.empty((0, _NATTR), np.float32)
        self._cnt = np.empty(0, np.int64)
        self._first = np.empty(0, np.int32)  # earliest frame index that added to the voxel (-1: none)
        self._tf = np.empty((0, L), np.int32)
        self._tuv = np.empty((0, L, 2), np.float32)
        self._tc = np.empty((0, L), np.int32)
        self._buf: list[tuple] = []
        self._buf_n = 0

    # ------------------------------------------------------------------ input
    def add_frame(self, frame: FrameResult) -> None:
        """Add a frame's confident world points (``frame.cloud_points_cam()``, the depth
        back-projected with the intrinsics, moved by ``pose``), coloured by ``rgb``, where
        ``conf > conf_threshold``, with their normals and (``track_length > 0``) pixels.

        Only every ``pixel_stride``-th pixel in each direction is used (the
        voxels are larger than a pixel's footprint, so this loses little and
        is ``pixel_stride**2`` times faster).
        """
        s = self.pixel_stride
        conf = np.asarray(frame.conf)[::s, ::s]
        mask = conf > self.conf_threshold
        if not mask.any():
            return
        K = np.asarray(frame.intrinsics, np.float64)
        grid = frame.cloud_points_cam(stride=s)
        pc = grid[mask]
        if self.voxel_size is None:
            z = pc[:, 2]
            z = z[np.isfinite(z) & (z > 0)]
            if z.size == 0:
                return
            fx = float(K[0, 0])
            self.voxel_size = float(self.auto_pixels * np.median(z) / fx) if fx > 0 else float(np.median(z) / 250)
        pose = np.asarray(frame.pose, np.float64)
        R = np.ascontiguousarray(pose[:3, :3].T)
        pts = pc @ R + pose[:3, 3]
        normals = depth_normals(grid)[mask] @ R
        v, u = np.nonzero(mask)
        uv = np.stack([u * s, v * s], axis=1).astype(np.float64)
        self._add(pts, np.asarray(frame.rgb)[::s, ::s][mask], conf[mask], normals, int(frame.index), uv)

    def add_points(self, xyz: np.ndarray, rgb: np.ndarray) -> None:
        """Add (N, 3) world points with (N, 3) uint8 colours (confidence 1, no normal, no track).

        If ``voxel_size`` is still unknown it is set from the points' spread
        (median distance to their median / 200).
        """
        xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
        self._add(xyz, rgb, np.ones(len(xyz)), np.zeros((len(xyz), 3)), -1, np.zeros((len(xyz), 2)))

    def _add(self, xyz: np.ndarray, rgb: np.ndarray, conf: np.ndarray, normals: np.ndarray, frame: int,
             uv: np.ndarray) -> None:
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
        if len(xyz) == 0 or not ok.any():
            return
        L = self.track_length
        with_uv = bool(L and frame >= 0)
        attr = np.empty((int(ok.sum()), _NATTR + 2 * with_uv), np.float64)
        attr[:, _XYZ], attr[:, _RGB] = xyz[ok], rgb[ok]
        attr[:, _CONF], attr[:, _NRM] = np.asarray(conf).reshape(-1)[ok], np.asarray(normals).reshape(-1, 3)[ok]
        if with_uv:
            attr[:, _NATTR:] = np.asarray(uv).reshape(-1, 2)[ok]
        self.n_input += len(attr)
        keys = _pack(ijk[ok].astype(np.int64))
        k, a, c, _ = _reduce(keys, attr, np.ones(len(keys), np.int64))
        n = len(k)
        if with_uv:  # one observation per voxel: this frame, the mean pixel of its points there
            tf = np.full((n, 1), frame, np.int32)
            tuv = a[:, _NATTR:].astype(np.float32).reshape(n, 1, 2)
            tc = np.minimum(c, np.iinfo(np.int32).max).astype(np.int32).reshape(n, 1)
        else:
            tf, tuv, tc = np.full((n, 1), -1, np.int32), np.zeros((n, 1, 2), np.float32), np.zeros((n, 1), np.int32)
        self._buf.append((k, a[:, :_NATTR], c, np.full(n, frame, np.int32), tf, tuv, tc))
        self._buf_n += n
        if self._buf_n >= self.batch_points or self._buf_n + len(self._keys) > 4 * self.max_points:
            self._merge()

    # ------------------------------------------------------------------ merging
    def _combine(self, keys, attr, cnt, first, tf, tuv, tc) -> None:
        """Reduce the given entries (equal keys merged) into the grid's arrays."""
        k, a, n, inv = _reduce(keys, attr, cnt)
        self._keys, self._attr, self._cnt = k, a.astype(np.float32), n
        big = np.iinfo(np.int32).max
        first = np.where(first >= 0, first, big).astype(np.int64)
        f = np.full(len(k), big, np.int64)
        alone = np.bincount(inv, minlength=len(k))[inv] == 1
        f[inv[alone]] = first[alone]
        np.minimum.at(f, inv[~alone], first[~alone])  # only where entries meet
        self._first = np.where(f == big, -1, f).astype(np.int32)
        if self.track_length:
            # a voxel with one contributing entry keeps that entry's track as it is; only the
            # voxels where entries meet (the ones this batch touched) are merged
            L = self.track_length
            alone = np.bincount(inv, minlength=len(k))[inv] == 1
            out_f = np.full((len(k), L), -1, np.int32)
            out_uv = np.zeros((len(k), L, 2), np.float32)
            out_c = np.zeros((len(k), L), np.int32)
            out_f[inv[alone]], out_uv[inv[alone]], out_c[inv[alone]] = tf[alone], tuv[alone], tc[alone]
            if not alone.all():
                groups, compact = _group(inv[~alone])
                merged = _merge_tracks(compact, len(groups), tf[~alone], tuv[~alone], tc[~alone], L)
                out_f[groups], out_uv[groups], out_c[groups] = merged
            self._tf, self._tuv, self._tc = out_f, out_uv, out_c
        else:
            L = 0
            self._tf = np.empty((len(k), L), np.int32)
            self._tuv = np.empty((len(k), L, 2), np.float32)
            self._tc = np.empty((len(k), L), np.int32)

    def _merge(self) -> None:
        if self._buf:
            L = self.track_length
            mine = (self._keys, self._attr, self._cnt, self._first, self._tf, self._tuv, self._tc)
            if L:  # pad the buffer's single observations to L slots
                parts = [mine]
                for k, a, c, fr, tf, tuv, tc in self._buf:
                    pad = L - 1
                    parts.append((k, a, c, fr, np.pad(tf, ((0, 0), (0, pad)), constant_values=-1),
                                  np.pad(tuv, ((0, 0), (0, pad), (0, 0))), np.pad(tc, ((0, 0), (0, pad)))))
            else:
                parts = [mine, *((k, a, c, fr, tf[:, :0], tuv[:, :0], tc[:, :0])
                                 for k, a, c, fr, tf, tuv, tc in self._buf)]
            self._buf, self._buf_n = [], 0
            self._combine(*(np.concatenate([p[j] for p in parts]) for j in range(7)))
        while len(self._keys) > self.max_points:
            self._coarsen()

    def _coarsen(self) -> None:
        assert self.voxel_size is not None
        self.voxel_size *= 2.0
        self.n_coarsen += 1
        attr = self._attr.astype(np.float64)
        keys = _pack(np.floor(attr[:, _XYZ] / self.voxel_size).astype(np.int64))
        self._combine(keys, attr, self._cnt, self._first, self._tf, self._tuv, self._tc)

    # ------------------------------------------------------------------ output
    def __len__(self) -> int:
        self._merge()
        return len(self._keys)

    def fused(self) -> FusedCloud:
        """The fused cloud with every attribute (a copy), N <= max_points."""
        self._merge()
        a = self._attr
        rgb = np.clip(np.rint(a[:, _RGB]), 0, 255).astype(np.uint8)
        nrm = a[:, _NRM].astype(np.float64)
        norm = np.linalg.norm(nrm, axis=1, keepdims=True)
        nrm = np.where(norm > 1e-6, nrm / np.where(norm > 1e-6, norm, 1), 0.0).astype(np.float32)
        tracks = (self._tf.copy(), self._tuv.copy(), self._tc.copy()) if self.track_length else (None, None, None)
        return FusedCloud(np.ascontiguousarray(a[:, _XYZ]), rgb, self._cnt.copy(), a[:, _CONF].copy(), nrm,
                          self._first.copy(), *tracks)

    def cloud(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fused cloud: ((N, 3) float32 xyz, (N, 3) uint8 rgb, (N,) int64 counts), N <= max_points."""
        c = self.fused()
        return c.xyz, c.rgb, c.count

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """At most ``n`` points of the cloud, chosen uniformly at random (deterministic): (xyz, rgb)."""
        c = self.fused().sample(n, seed)
        return c.xyz, c.rgb
