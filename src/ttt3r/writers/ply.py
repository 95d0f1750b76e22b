"""The fused, coloured point cloud as a binary PLY (``points.ply``).

Vertices carry ``x y z`` (float32, world frame = first camera's OpenCV frame,
the reconstruction's units), ``nx ny nz`` (float32 unit normal, facing the
cameras that saw the point; 0 where unknown), ``red green blue`` (uint8),
``confidence`` (float32, the mean network confidence of the fused pixels, >= 1)
and ``count`` (uint32, how many input points were averaged into the vertex).
The points are the depth maps back-projected with the intrinsics (see
:mod:`ttt3r.writers.fusion`), the same as every other cloud ttt3r writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from ..io.atomic import atomic_open
from ..results import FrameResult
from .fusion import VoxelFusion

__all__ = ["PlyWriter", "write_ply"]


def write_ply(path: str | os.PathLike, xyz: np.ndarray, rgb: np.ndarray, count: np.ndarray | None = None,
              conf: np.ndarray | None = None, normals: np.ndarray | None = None) -> None:
    """Write (N, 3) points with (N, 3) uint8 colours (and optional (N,) counts, (N,) confidences,
    (N, 3) normals) as binary PLY, atomically."""
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    rgb = np.asarray(rgb, np.uint8).reshape(-1, 3)
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if normals is not None:
        fields += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
    fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if conf is not None:
        fields.append(("confidence", "f4"))
    if count is not None:
        fields.append(("count", "u4"))
    v = np.empty(len(xyz), dtype=fields)
    v["x"], v["y"], v["z"] = xyz.T
    v["red"], v["green"], v["blue"] = rgb.T
    if normals is not None:
        v["nx"], v["ny"], v["nz"] = np.asarray(normals, np.float32).reshape(-1, 3).T
    if conf is not None:
        v["confidence"] = np.asarray(conf, np.float32).reshape(-1)
    if count is not None:
        v["count"] = np.minimum(np.asarray(count), np.iinfo(np.uint32).max)
    ply = PlyData([PlyElement.describe(v, "vertex")], text=False, byte_order="<",
                  comments=["ttt3r fused point cloud; world frame = first camera (OpenCV axes)"])
    with atomic_open(path, "wb") as f:
        ply.write(f)


class PlyWriter:
    """Writes ``points.ply`` from a :class:`VoxelFusion` at :meth:`flush` / :meth:`close`.

    Args:
        path: output file.
        fusion: a shared fusion grid fed by someone else (e.g. :class:`RunWriter`);
            ``None``: this writer owns one (built from ``fusion_kwargs``) and feeds it.
        every: rewrite the file every ``every`` frames (0: only at close).
    """

    def __init__(self, path: str | os.PathLike, fusion: VoxelFusion | None = None, every: int = 100,
                 **fusion_kwargs) -> None:
        self.path = Path(path)
        self.owns_fusion = fusion is None
        self.fusion = fusion if fusion is not None else VoxelFusion(**fusion_kwargs)
        self.every = int(every)
        self.n_frames = 0

    def add(self, frame: FrameResult) -> None:
        if self.owns_fusion:
            self.fusion.add_frame(frame)
        self.n_frames += 1
        if self.every > 0 and self.n_frames % self.every == 0:
            self.flush()

    def flush(self) -> None:
        c = self.fusion.fused()
        write_ply(self.path, c.xyz, c.rgb, c.count, conf=c.conf, normals=c.normals)

    def close(self, interrupted: bool = False) -> None:
        self.flush()
