"""A COLMAP text model, ready for gsplat / nerfstudio / COLMAP itself::

    colmap/images/000000.png          the preprocessed RGB frames
    colmap/sparse/0/cameras.txt       PINHOLE fx fy cx cy, one camera per distinct intrinsics
    colmap/sparse/0/images.txt        world-to-camera pose QW QX QY QZ TX TY TZ, CAMERA_ID, NAME
    colmap/sparse/0/points3D.txt      the fused cloud (empty tracks)
    colmap/sparse/0/*.bin             the same model in COLMAP's binary format

COLMAP's camera axes are OpenCV's, so only the direction changes: ttt3r's
camera-to-world ``(R, c)`` becomes ``R^T``, ``-R^T c``. COLMAP puts pixel
centres at half-integers (ttt3r and OpenCV at integers), so the principal
point gains 0.5 px: ``cx = K[0, 2] + 0.5``, ``cy = K[1, 2] + 0.5``. Image names are relative
to ``colmap/images`` (e.g. ``gsplat --data_dir OUT/colmap``, nerfstudio
``ns-train splatfacto colmap --data OUT/colmap --colmap-path sparse/0``).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..geometry import quaternion_to_rotation, rotation_to_quaternion
from ..io.atomic import atomic_open, atomic_write_bytes, atomic_write_text
from ..io.layout import png_bytes
from ..results import FrameResult
from .base import pose_is_valid, warn_invalid_pose
from .fusion import VoxelFusion

__all__ = ["ColmapWriter", "world_to_camera"]


def world_to_camera(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) camera-to-world -> (COLMAP quaternion (qw, qx, qy, qz), (3,) translation) of world-to-camera."""
    pose = np.asarray(pose, np.float64)
    x, y, z, w = rotation_to_quaternion(pose[:3, :3].T)  # qw >= 0
    t = -(quaternion_to_rotation(np.array([x, y, z, w])) @ pose[:3, 3])
    return np.array([w, x, y, z]), t


class ColmapWriter:
    """Writes the COLMAP model under ``root`` (see module doc).

    Args:
        root: the ``colmap`` folder.
        fusion: the fused cloud for ``points3D.txt`` (shared, fed elsewhere);
            ``None``: this writer owns one (``fusion_kwargs``) and feeds it.
        max_points: at most this many points in ``points3D.txt`` (random subset).
        every: rewrite the model files every ``every`` frames (0: only at close).
        binary: also write ``cameras.bin``, ``images.bin``, ``points3D.bin`` (the
            same model; COLMAP and pycolmap read the binary files when present).
    """

    def __init__(self, root: str | os.PathLike, fusion: VoxelFusion | None = None, max_points: int = 500_000,
                 every: int = 100, binary: bool = True, **fusion_kwargs) -> None:
        self.root = Path(root)
        self.owns_fusion = fusion is None
        self.fusion = fusion if fusion is not None else VoxelFusion(**fusion_kwargs)
        self.max_points = int(max_points)
        self.every = int(every)
        self.binary = bool(binary)
        self._n_flush = 0
        self._n_added = 0
        self._cameras: dict[tuple, int] = {}
        self._images: list[tuple[int, np.ndarray, np.ndarray, int, str]] = []

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
            name = f"{frame.index:06d}.png"
            atomic_write_bytes(self.images_dir / name, png_bytes(frame.rgb))
            h, w = frame.hw
            K = np.asarray(frame.intrinsics, np.float64)
            # COLMAP puts pixel centres at +0.5, ttt3r (OpenCV) at integers
            params = (K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5)
            # equal intrinsics share a camera; 10 significant digits decide "equal"
            cam = (w, h, *(float(f"{float(v):.10g}") for v in params))
            cam_id = self._cameras.setdefault(cam, len(self._cameras) + 1)
            q, t = world_to_camera(frame.pose)
            self._images.append((frame.index + 1, q, t, cam_id, name))
        if self.every > 0 and self._n_added % self.every == 0:
            self.flush()

    def flush(self) -> None:
        """Rewrite the model (points only every 10th call: large text files are slow to write)."""
        self._n_flush += 1
        self._write(points=self._n_flush % 10 == 1)

    def _write(self, points: bool) -> None:
        d = self.sparse_dir
        lines = ["# Camera list with one line of data per camera:",
                 "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
                 f"# Number of cameras: {len(self._cameras)}"]
        for cam, cid in self._cameras.items():
            w, h, fx, fy, cx, cy = cam
            lines.append(f"{cid} PINHOLE {w} {h} {fx!r} {fy!r} {cx!r} {cy!r}")
        atomic_write_text(d / "cameras.txt", "\n".join(lines) + "\n")

        lines = ["# Image list with two lines of data per image:",
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
                 "#   POINTS2D[] as (X, Y, POINT3D_ID)",
                 f"# Number of images: {len(self._images)}, mean observations per image: 0"]
        for iid, q, t, cid, name in self._images:
            lines.append(f"{iid} " + " ".join(f"{v:.12g}" for v in (*q, *t)) + f" {cid} {name}")
            lines.append("")
        atomic_write_text(d / "images.txt", "\n".join(lines) + "\n")

        if not points:
            if self.binary:
                self._write_binary(None, None)
            return
        xyz, rgb = self.fusion.sample(self.max_points)
        with atomic_open(d / "points3D.txt", "w") as f:
            f.write("# 3D point list with one line of data per point:\n")
            f.write("#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n")
            f.write(f"# Number of points: {len(xyz)}, mean track length: 0\n")
            if len(xyz):
                ids = np.arange(1, len(xyz) + 1)
                np.savetxt(f, np.column_stack([ids, xyz.astype(np.float64), rgb, np.zeros(len(xyz))]),
                           fmt=["%d", "%.9g", "%.9g", "%.9g", "%d", "%d", "%d", "%.1f"])

        if self.binary:
            self._write_binary(xyz, rgb)

    def _write_binary(self, xyz: np.ndarray | None, rgb: np.ndarray | None) -> None:
        """The same model in COLMAP's binary format (``*.bin``), for readers that only take binary."""
        d = self.sparse_dir
        cam_dt = np.dtype([("id", "<u4"), ("model", "<i4"), ("w", "<u8"), ("h", "<u8"), ("p", "<f8", 4)])
        cams = np.empty(len(self._cameras), cam_dt)
        for j, (cam, cid) in enumerate(self._cameras.items()):
            cams[j] = (cid, 1, cam[0], cam[1], cam[2:])  # model 1 = PINHOLE
        atomic_write_bytes(d / "cameras.bin", struct.pack("<Q", len(cams)) + cams.tobytes())

        parts = [struct.pack("<Q", len(self._images))]
        for iid, q, t, cid, name in self._images:
            parts.append(struct.pack("<I7dI", iid, *q, *t, cid) + name.encode() + b"\0" + struct.pack("<Q", 0))
        atomic_write_bytes(d / "images.bin", b"".join(parts))
        if xyz is None or rgb is None:
            return

        pt_dt = np.dtype([("id", "<u8"), ("xyz", "<f8", 3), ("rgb", "u1", 3), ("err", "<f8"), ("track", "<u8")])
        pts = np.zeros(len(xyz), pt_dt)
        pts["id"] = np.arange(1, len(xyz) + 1)
        pts["xyz"], pts["rgb"] = xyz, rgb
        with atomic_open(d / "points3D.bin", "wb") as f:
            f.write(struct.pack("<Q", len(pts)))
            f.write(pts.tobytes())

    def close(self, interrupted: bool = False) -> None:
        self._write(points=True)
