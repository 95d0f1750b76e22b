"""A COLMAP model with point tracks, at source resolution, ready for gsplat / nerfstudio / COLMAP::

    colmap/images/000000.png          the frames (source size, or the network's)
    colmap/sparse/0/cameras.txt       PINHOLE fx fy cx cy: one shared camera when all intrinsics are
                                      equal, else one per distinct intrinsics
    colmap/sparse/0/images.txt        world-to-camera pose QW QX QY QZ TX TY TZ, CAMERA_ID, NAME,
                                      and its observations X Y POINT3D_ID
    colmap/sparse/0/points3D.txt      the fused points seen in >= 2 images, with ERROR and TRACK
    colmap/sparse/0/*.bin             the same model in COLMAP's binary format

Resolution (``resolution``): ``"source"`` (the default) writes each frame at the
size of its source image (re-read from its file, or decoded again from the video
at close, using :attr:`FrameResult.source <ttt3r.results.FrameResult.source>`),
with the intrinsics mapped back through the preprocessing's resize and crop
(:func:`ttt3r.preprocess.network_to_source_intrinsics`); ``"network"`` writes the
images the network saw and their intrinsics. A frame without a source reference
(e.g. fed to :class:`~ttt3r.writers.run.RunWriter` from memory) is written at the
network's size either way.

Tracks: every point lists the frames it was fused from (at most the fusion's
``track_length``, the earliest) and, in each, the mean pixel of that frame's
pixels in the point's voxel, mapped to the written resolution. As COLMAP's own
``filter_max_reproj_error`` does, an observation farther than
``max_reproj_error`` (1 px of the written images by default) from the point's
projection is left out of the track and of ``images.txt``, and a point left with
fewer than :data:`MIN_TRACK_LENGTH` observations is left out of ``points3D``:
every written observation reprojects within the bound. ``ERROR`` is the mean of these
distances, so bundle adjustment has work to do and something to improve.

The distances come from the voxel's size (about ``auto_pixels``, two network
pixels): a frame's few pixels in a voxel are not its mean point. On the writer
tests' scene at fusion pixel stride 2, 25% of the points keep two observations
within 1 px at source resolution (2.5 times the network's), 95% at network
resolution; at stride 1 (``WriterOptions.fusion_pixel_stride``) there are more
points at source resolution than stride 2 gives unfiltered. Taking the frame's
pixel nearest the fused point instead of the mean does not help (1.55 source px
from the projection on average, the mean 1.49).

COLMAP's camera axes are OpenCV's, so only the direction changes: ttt3r's
camera-to-world ``(R, c)`` becomes ``R^T``, ``-R^T c``. COLMAP puts pixel
centres at half-integers (ttt3r and OpenCV at integers), so every image
coordinate gains 0.5 px: ``cx = K[0, 2] + 0.5``, ``x = u + 0.5``. Image names are
relative to ``colmap/images`` (e.g. ``gsplat --data_dir OUT/colmap``, nerfstudio
``ns-train splatfacto colmap --data OUT/colmap --colmap-path sparse/0``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import project, quaternion_to_rotation, rotation_to_quaternion
from ..io.atomic import atomic_open, atomic_write_bytes, atomic_write_text
from ..results import FrameResult
from .base import pose_is_valid, warn_invalid_pose
from .fusion import FusedCloud, VoxelFusion
from .source_images import RESOLUTIONS, SourceImages

__all__ = ["COLMAP_RESOLUTIONS", "DEFAULT_MAX_REPROJ_ERROR", "MIN_TRACK_LENGTH", "ColmapWriter", "world_to_camera"]

#: The values of ``--colmap-res``.
COLMAP_RESOLUTIONS = RESOLUTIONS
#: ``points3D`` keeps the fused points seen in at least this many images (COLMAP's bundle
#: adjustment refuses a point with a shorter track, and one view is no multi-view evidence).
MIN_TRACK_LENGTH = 2
#: Observations reproject within this many pixels of the written images (COLMAP's
#: ``filter_max_reproj_error`` is 4; the export promises 1).
DEFAULT_MAX_REPROJ_ERROR = 1.0


def world_to_camera(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) camera-to-world -> (COLMAP quaternion (qw, qx, qy, qz), (3,) translation) of world-to-camera."""
    pose = np.asarray(pose, np.float64)
    x, y, z, w = rotation_to_quaternion(pose[:3, :3].T)  # qw >= 0
    t = -(quaternion_to_rotation(np.array([x, y, z, w])) @ pose[:3, 3])
    return np.array([w, x, y, z]), t


@dataclass
class _Image:
    """One registered image: COLMAP ids, world-to-camera pose, intrinsics at the written size."""

    image_id: int
    q: np.ndarray  # (4,) qw qx qy qz
    t: np.ndarray  # (3,)
    camera_id: int
    name: str
    K: np.ndarray  # (3, 3) at the written size, pixel centres at integers
    affine: tuple[float, float, float, float]  # network pixel -> written pixel: (ax, bx, ay, by)


class ColmapWriter:
    """Writes the COLMAP model under ``root`` (see module doc).

    Args:
        root: the ``colmap`` folder.
        fusion: the fused cloud for ``points3D`` (shared, fed elsewhere; with
            ``track_length > 0`` for tracks); ``None``: this writer owns one
            (``fusion_kwargs``, ``track_length`` 8 unless given) and feeds it.
        max_points: at most this many points in ``points3D`` (random subset).
        every: rewrite the model files every ``every`` frames (0: only at close).
        binary: also write ``cameras.bin``, ``images.bin``, ``points3D.bin`` (the
            same model; COLMAP and pycolmap read the binary files when present).
        resolution: ``"source"`` or ``"network"`` (see module doc).
        max_reproj_error: observations farther than this (pixels of the written
            images) from their point's projection are left out (see module doc);
            ``inf``: none.
    """

    def __init__(self, root: str | os.PathLike, fusion: VoxelFusion | None = None, max_points: int = 500_000,
                 every: int = 100, binary: bool = True, resolution: str = "source",
                 max_reproj_error: float = DEFAULT_MAX_REPROJ_ERROR, **fusion_kwargs) -> None:
        if not max_reproj_error > 0:
            raise ValueError(f"max_reproj_error must be > 0 pixels, got {max_reproj_error}")
        self.max_reproj_error = float(max_reproj_error)
        self.root = Path(root)
        self.sources = SourceImages(self.images_dir, resolution, option="--colmap-res")
        self.owns_fusion = fusion is None
        if fusion is None:
            fusion_kwargs.setdefault("track_length", 8)
            fusion = VoxelFusion(**fusion_kwargs)
        self.fusion = fusion
        self.max_points = int(max_points)
        self.every = int(every)
        self.binary = bool(binary)
        self.resolution = resolution
        self._n_flush = 0
        self._n_added = 0
        self._cameras: dict[tuple, int] = {}
        self._images: dict[int, _Image] = {}  # by frame index
        self._last_obs: tuple[np.ndarray, ...] | None = None  # the observations of the points3D on disk

    @property
    def sparse_dir(self) -> Path:
        return self.root / "sparse" / "0"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def add(self, frame: FrameResult) -> None:
        if self.owns_fusion:
            self.fusion.add_frame(frame)
        self._n_added += 1
        if not pose_is_valid(frame.pose):
            warn_invalid_pose("colmap", frame)
        else:
            self._add_image(frame)
        if self.every > 0 and self._n_added % self.every == 0:
            self.flush()

    def _add_image(self, frame: FrameResult) -> None:
        img = self.sources.add(frame)
        name, (h, w), K, affine = img.name, img.hw, img.K, img.affine
        # COLMAP puts pixel centres at +0.5, ttt3r (OpenCV) at integers
        params = (K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5)
        # equal intrinsics share a camera; 10 significant digits decide "equal"
        cam = (int(w), int(h), *(float(f"{float(v):.10g}") for v in params))
        cam_id = self._cameras.setdefault(cam, len(self._cameras) + 1)
        q, t = world_to_camera(frame.pose)
        self._images[int(frame.index)] = _Image(frame.index + 1, q, t, cam_id, name, K, affine)

    def flush(self) -> None:
        """Rewrite the model (points only every 10th call: large text files are slow to write)."""
        self._n_flush += 1
        self._write(points=self._n_flush % 10 == 1)

    # ------------------------------------------------------------------ the model
    def _observations(self, cloud: FusedCloud) -> tuple[np.ndarray, ...]:
        """The observations of the cloud that reproject within ``max_reproj_error``, sorted by image then point.

        Returns ``(point row, image id, x, y, point2D index, error)`` arrays (one entry per
        kept observation), with ``x, y`` in COLMAP's image coordinates of the written images
        (centres at +0.5) and ``error`` the distance in written pixels between ``x, y`` and
        the point's projection (``inf`` where the point is not in front of the camera).
        """
        empty = (np.empty(0, np.int64),) * 2 + (np.empty(0),) * 2 + (np.empty(0, np.int64), np.empty(0))
        if cloud.track_frame is None or not self._images:
            return empty
        rows, slots = np.nonzero(cloud.track_frame >= 0)
        fidx = cloud.track_frame[rows, slots].astype(np.int64)
        n_frames = max(max(self._images) + 1, int(fidx.max(initial=-1)) + 1)
        table = np.full((n_frames, 5), np.nan)  # image id, ax, bx, ay, by per frame index
        for i, im in self._images.items():
            table[i] = (im.image_id, *im.affine)
        tab = table[fidx]
        ok = np.isfinite(tab[:, 0])  # frames without a registered image (invalid pose) are left out
        rows, tab, uv = rows[ok], tab[ok], cloud.track_uv[rows[ok], slots[ok]].astype(np.float64)
        iid = tab[:, 0].astype(np.int64)
        x = tab[:, 1] * uv[:, 0] + tab[:, 2] + 0.5
        y = tab[:, 3] * uv[:, 1] + tab[:, 4] + 0.5
        err = self._reprojection_errors(cloud, rows, iid, x, y)
        keep = ~(err > self.max_reproj_error)  # (inf: every observation, even behind the camera)
        rows, iid, x, y, err = rows[keep], iid[keep], x[keep], y[keep], err[keep]
        order = np.lexsort((rows, iid))
        rows, iid, x, y, err = rows[order], iid[order], x[order], y[order], err[order]
        first = np.searchsorted(iid, iid, side="left")
        return rows, iid, x, y, np.arange(len(iid)) - first, err

    def _reprojection_errors(self, cloud: FusedCloud, rows: np.ndarray, iid: np.ndarray, x: np.ndarray,
                             y: np.ndarray) -> np.ndarray:
        """(M,) distance in written pixels between each observation ``x, y`` (COLMAP's
        coordinates) and the projection of its point ``cloud.xyz[rows]`` into image ``iid``
        (``inf`` where the point is not in front of the camera)."""
        by_id = {im.image_id: im for im in self._images.values()}
        d = np.full(len(rows), np.inf)
        p = cloud.xyz[rows].astype(np.float64)
        for image_id in np.unique(iid):
            sel = np.flatnonzero(iid == image_id)
            im = by_id[int(image_id)]
            R = quaternion_to_rotation(np.array([*im.q[1:], im.q[0]]))
            pc = p[sel] @ R.T + im.t
            front = pc[:, 2] > 0
            uv = project(pc[front], im.K) + 0.5  # COLMAP's pixel centres at +0.5
            d[sel[front]] = np.hypot(uv[:, 0] - x[sel[front]], uv[:, 1] - y[sel[front]])
        return np.nan_to_num(d, nan=np.inf)

    def _write(self, points: bool) -> None:
        d = self.sparse_dir
        lines = ["# Camera list with one line of data per camera:",
                 "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
                 f"# Number of cameras: {len(self._cameras)}"]
        for cam, cid in self._cameras.items():
            w, h, fx, fy, cx, cy = cam
            lines.append(f"{cid} PINHOLE {w} {h} {fx!r} {fy!r} {cx!r} {cy!r}")
        atomic_write_text(d / "cameras.txt", "\n".join(lines) + "\n")
        if self.binary:
            self._write_cameras_bin()

        if not points:  # the points3D on disk stay valid: keep their observations, new images have none yet
            self._write_images(self._last_obs)
            return
        cloud = self.fusion.fused()
        n_obs = np.bincount(self._observations(cloud)[0], minlength=len(cloud))
        cloud = cloud.subset(n_obs >= MIN_TRACK_LENGTH).sample(self.max_points)
        obs = self._observations(cloud)  # the same observations: each one's error depends on it alone
        rows, err = obs[0], obs[5]
        n = np.bincount(rows, minlength=len(cloud))
        err = np.bincount(rows, weights=np.minimum(err, 1e6), minlength=len(cloud)) / np.maximum(n, 1)
        self._write_images(obs)
        self._write_points(cloud, obs, err)
        self._last_obs = obs

    def _write_cameras_bin(self) -> None:
        cam_dt = np.dtype([("id", "<u4"), ("model", "<i4"), ("w", "<u8"), ("h", "<u8"), ("p", "<f8", 4)])
        cams = np.empty(len(self._cameras), cam_dt)
        for j, (cam, cid) in enumerate(self._cameras.items()):
            cams[j] = (cid, 1, cam[0], cam[1], cam[2:])  # model 1 = PINHOLE
        atomic_write_bytes(self.sparse_dir / "cameras.bin", struct.pack("<Q", len(cams)) + cams.tobytes())

    def _write_images(self, obs: tuple[np.ndarray, ...] | None) -> None:
        images = sorted(self._images.values(), key=lambda im: im.image_id)
        rows, iid, x, y = obs[:4] if obs is not None else (np.empty(0, np.int64),) * 2 + (np.empty(0),) * 2
        starts = np.searchsorted(iid, [im.image_id for im in images], side="left")
        ends = np.searchsorted(iid, [im.image_id for im in images], side="right")
        n_obs = len(iid)
        text = ["# Image list with two lines of data per image:",
                "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
                "#   POINTS2D[] as (X, Y, POINT3D_ID)",
                f"# Number of images: {len(images)}, mean observations per image: "
                f"{n_obs / len(images) if images else 0:g}"]
        binary = [struct.pack("<Q", len(images))]
        obs_dt = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
        for im, a, b in zip(images, starts, ends):
            text.append(f"{im.image_id} " + " ".join(f"{v:.12g}" for v in (*im.q, *im.t)) + f" {im.camera_id} "
                        f"{im.name}")
            o = np.empty(b - a, obs_dt)
            o["x"], o["y"], o["id"] = x[a:b], y[a:b], rows[a:b] + 1  # point ids are rows + 1
            text.append(" ".join(f"{u:.6f} {v:.6f} {p}" for u, v, p in zip(o["x"], o["y"], o["id"])))
            binary.append(struct.pack("<I7dI", im.image_id, *im.q, *im.t, im.camera_id) + im.name.encode() + b"\0"
                          + struct.pack("<Q", len(o)) + o.tobytes())
        atomic_write_text(self.sparse_dir / "images.txt", "\n".join(text) + "\n")
        if self.binary:
            atomic_write_bytes(self.sparse_dir / "images.bin", b"".join(binary))

    def _write_points(self, cloud: FusedCloud, obs: tuple[np.ndarray, ...], err: np.ndarray) -> None:
        rows, iid, p2d = obs[0], obs[1], obs[4]
        order = np.argsort(rows, kind="stable")  # observations grouped by point
        rows, iid, p2d = rows[order], iid[order], p2d[order]
        n_track = np.bincount(rows, minlength=len(cloud))
        start = np.concatenate([[0], np.cumsum(n_track)])
        xyz, rgb = cloud.xyz.astype(np.float64), cloud.rgb
        mean_track = len(rows) / len(cloud) if len(cloud) else 0
        text_parts, bin_parts = [], [struct.pack("<Q", len(cloud))]
        for length in np.unique(n_track):  # one fixed-size record per track length
            sel = np.flatnonzero(n_track == length)
            k = np.arange(int(length))
            idx = start[sel][:, None] + k[None, :]  # (n, length) positions in the sorted observations
            dt = np.dtype([("id", "<u8"), ("xyz", "<f8", 3), ("rgb", "u1", 3), ("err", "<f8"), ("n", "<u8"),
                           ("track", "<u4", (int(length), 2))])
            rec = np.zeros(len(sel), dt)
            rec["id"], rec["xyz"], rec["rgb"], rec["err"], rec["n"] = sel + 1, xyz[sel], rgb[sel], err[sel], length
            rec["track"][..., 0], rec["track"][..., 1] = iid[idx], p2d[idx]
            bin_parts.append(rec.tobytes())
            cols = [sel + 1, xyz[sel], rgb[sel], err[sel]]
            track = np.stack([iid[idx], p2d[idx]], axis=-1).reshape(len(sel), -1)
            text_parts.append((np.column_stack([*cols, track]), ["%d", "%.9g", "%.9g", "%.9g", "%d", "%d", "%d",
                                                                 "%.6g"] + ["%d"] * track.shape[1]))
        with atomic_open(self.sparse_dir / "points3D.txt", "w") as f:
            f.write("# 3D point list with one line of data per point:\n")
            f.write("#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n")
            f.write(f"# Number of points: {len(cloud)}, mean track length: {mean_track:g}\n")
            for table, fmt in text_parts:
                np.savetxt(f, table, fmt=fmt)
        if self.binary:
            with atomic_open(self.sparse_dir / "points3D.bin", "wb") as f:
                for part in bin_parts:
                    f.write(part)

    # ------------------------------------------------------------------ close
    def close(self, interrupted: bool = False) -> None:
        self.sources.close()
        self._write(points=True)
