"""A nerfstudio dataset (``ns-train splatfacto --data OUT/nerfstudio``)::

    nerfstudio/transforms.json     cameras, file paths, ply_file_path
    nerfstudio/images/000000.png   the frames, at source size (``--colmap-res``) or the network's
    nerfstudio/depth/000000.png    16-bit depth in millimetres, on the image's pixel grid (0: unknown)
    nerfstudio/sparse_pc.ply       the fused cloud (the same points as points.ply), splatfacto's init

The conventions are those of nerfstudio 1.1.5's ``Nerfstudio`` dataparser
(``nerfstudio/data/dataparsers/nerfstudio_dataparser.py``) and of its COLMAP
converter (``nerfstudio/process_data/colmap_utils.py``, ``colmap_to_json``),
read from the released wheel:

* ``transform_matrix``: camera-to-world, 4x4, with OpenGL camera axes (x right,
  y up, z backwards): ttt3r's OpenCV pose with its y and z columns negated. The
  world frame is ttt3r's (no ``applied_transform``); nerfstudio orients and
  centres it itself (``orientation_method``, ``auto_scale_poses``) and applies
  the same transform to the ``ply_file_path`` points.
* ``fl_x fl_y cx cy w h``: pixels of the image file, with pixel centres at
  half-integers (``cx = K[0, 2] + 0.5``, as COLMAP's, which the converter copies
  unchanged); at the top level when every frame has the same values, else per frame.
* ``file_path`` / ``depth_file_path``: relative to the folder; depth for every
  frame or for none. The parser reads 16-bit PNGs with ``cv2.IMREAD_ANYDEPTH``
  and multiplies by its ``depth_unit_scale_factor`` option (default ``1e-3``, so
  millimetres); ``depth_unit_scale_factor`` is also recorded in the JSON for
  people reading it. Depth is the network's depth map sampled (nearest) on the
  image's pixel grid, 0 outside the network's crop, where ``conf`` is at or
  below the threshold, and beyond 65.535 units.
* ``ply_file_path``: relative to the folder; read with open3d (x y z, red green blue).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_bytes
from ..io.strict_json import write_json
from ..results import FrameResult
from .base import pose_is_valid, warn_invalid_pose
from .fusion import VoxelFusion
from .ply import write_ply
from .source_images import SourceImages, WrittenImage

__all__ = ["DEPTH_UNIT_SCALE", "NerfstudioWriter", "opengl_camera_to_world"]

#: Metres (reconstruction units) per unit of the 16-bit depth PNGs.
DEPTH_UNIT_SCALE = 1e-3
_INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


def opengl_camera_to_world(pose: np.ndarray) -> np.ndarray:
    """(4, 4) camera-to-world with OpenCV axes -> the same camera with OpenGL axes (y, z negated)."""
    T = np.array(pose, np.float64, copy=True)
    T[:3, 1:3] *= -1
    return T


def depth_on_image_grid(depth: np.ndarray, keep: np.ndarray, img: WrittenImage) -> np.ndarray:
    """(h, w) network depth and keep-mask -> (H, W) float64 depth on the written image's grid (0: unknown)."""
    u, v = img.network_grid()
    ui, vi = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
    h, w = depth.shape
    inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
    out = np.zeros(img.hw)
    d = depth[vi[inside], ui[inside]].astype(np.float64)
    ok = keep[vi[inside], ui[inside]] & np.isfinite(d) & (d > 0)
    out[inside] = np.where(ok, d, 0.0)
    return out


def depth_png(depth: np.ndarray) -> bytes:
    """(H, W) depth in reconstruction units -> 16-bit PNG in ``DEPTH_UNIT_SCALE`` units (0 beyond range)."""
    from PIL import Image

    q = np.rint(np.asarray(depth, np.float64) / DEPTH_UNIT_SCALE)
    q = np.where((q > 0) & (q <= 65535), q, 0).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(q).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class NerfstudioWriter:
    """Writes the nerfstudio folder ``root`` (see module doc).

    Args:
        root: the ``nerfstudio`` folder.
        fusion: the fused cloud for ``sparse_pc.ply``; ``None``: this writer owns one.
        resolution: ``"source"`` or ``"network"`` (see :mod:`ttt3r.writers.source_images`).
        depth: write ``depth/`` and ``depth_file_path``.
        conf_threshold: depth pixels with ``conf <= conf_threshold`` are 0 (unknown).
        every: rewrite ``transforms.json`` every ``every`` frames (0: only at close).
    """

    def __init__(self, root: str | os.PathLike, fusion: VoxelFusion | None = None, resolution: str = "source",
                 depth: bool = True, conf_threshold: float = 1.5, every: int = 100) -> None:
        self.root = Path(root)
        self.owns_fusion = fusion is None
        self.fusion = fusion if fusion is not None else VoxelFusion(conf_threshold=conf_threshold)
        self.sources = SourceImages(self.root / "images", resolution, option="--colmap-res")
        self.depth = bool(depth)
        self.conf_threshold = float(conf_threshold)
        self.every = int(every)
        self._frames: list[dict] = []
        self._n_added = 0

    def add(self, frame: FrameResult) -> None:
        if self.owns_fusion:
            self.fusion.add_frame(frame)
        self._n_added += 1
        if not pose_is_valid(frame.pose):
            warn_invalid_pose("nerfstudio", frame)
        else:
            img = self.sources.add(frame)
            K = img.K
            entry = {"file_path": f"images/{img.name}",
                     "transform_matrix": opengl_camera_to_world(frame.pose).tolist(),
                     "fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]),
                     "cx": float(K[0, 2]) + 0.5, "cy": float(K[1, 2]) + 0.5,  # pixel centres at +0.5
                     "w": int(img.hw[1]), "h": int(img.hw[0])}
            if self.depth:
                keep = np.asarray(frame.conf) > self.conf_threshold
                d = depth_on_image_grid(np.asarray(frame.depth), keep, img)
                atomic_write_bytes(self.root / "depth" / img.name, depth_png(d))
                entry["depth_file_path"] = f"depth/{img.name}"
            self._frames.append(entry)
        if self.every > 0 and self._n_added % self.every == 0:
            self.flush()

    def transforms(self) -> dict:
        """The ``transforms.json`` object for the frames so far."""
        frames = [dict(f) for f in self._frames]
        meta: dict = {"camera_model": "OPENCV"}
        shared = {k: frames[0][k] for k in _INTRINSICS} if frames else {}
        if frames and all(all(f[k] == shared[k] for k in _INTRINSICS) for f in frames):
            meta.update(shared)
            for f in frames:
                for k in _INTRINSICS:
                    del f[k]
        if self.depth:
            meta["depth_unit_scale_factor"] = DEPTH_UNIT_SCALE
        meta["ply_file_path"] = "sparse_pc.ply"
        meta["frames"] = frames
        return meta

    def flush(self) -> None:
        write_json(self.root / "transforms.json", self.transforms(), indent=2)

    def close(self, interrupted: bool = False) -> None:
        self.sources.close()
        c = self.fusion.fused()
        write_ply(self.root / "sparse_pc.ply", c.xyz, c.rgb)
        self.flush()
