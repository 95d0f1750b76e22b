"""``scene.glb``: the fused point cloud plus camera frustums and path (needs trimesh).

glTF is y-up, OpenCV is y-down / z-forward, so the whole scene is rotated by
180 degrees about x (``(x, y, z) -> (x, -y, -z)``) to stand upright in glTF
viewers; undo it with the same flip to get ttt3r's world frame back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import TTT3RError
from ..io.atomic import atomic_write_bytes
from ..results import FrameResult
from .base import pose_is_valid
from .fusion import VoxelFusion

__all__ = ["GLTF_FROM_OPENCV", "GlbWriter", "frustum_segments"]

#: World transform applied to everything in the GLB (OpenCV world -> glTF y-up).
GLTF_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def _trimesh():
    try:
        import trimesh
    except ImportError as e:
        raise TTT3RError("writing scene.glb needs trimesh: pip install trimesh") from e
    return trimesh


def frustum_segments(pose: np.ndarray, K: np.ndarray, hw: tuple[int, int], depth: float) -> np.ndarray:
    """(8, 2, 3) world-frame line segments of a camera frustum of the given depth (apex -> 4 corners, rim)."""
    h, w = hw
    # image borders: pixel centres are at integers, so edges at -0.5 and size - 0.5
    corners_px = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) - 0.5
    Kinv = np.linalg.inv(np.asarray(K, np.float64))
    rays = (Kinv @ np.column_stack([corners_px, np.ones(4)]).T).T * depth
    pts = rays @ pose[:3, :3].T + pose[:3, 3]
    c = pose[:3, 3]
    segs = [[c, p] for p in pts] + [[pts[i], pts[(i + 1) % 4]] for i in range(4)]
    return np.asarray(segs)


class GlbWriter:
    """Writes ``scene.glb`` at :meth:`close` (see module doc).

    Args:
        path: output file.
        fusion: the fused cloud (shared, fed elsewhere); ``None``: owned and fed here.
        max_points: at most this many cloud points (random subset).
        max_cameras: at most this many frustums (evenly spaced; the path uses all poses).
    """

    def __init__(self, path: str | os.PathLike, fusion: VoxelFusion | None = None, max_points: int = 1_000_000,
                 max_cameras: int = 300, **fusion_kwargs) -> None:
        _trimesh()  # fail early with a clear message
        self.path = Path(path)
        self.owns_fusion = fusion is None
        self.fusion = fusion if fusion is not None else VoxelFusion(**fusion_kwargs)
        self.max_points = int(max_points)
        self.max_cameras = int(max_cameras)
        self._poses: list[np.ndarray] = []
        self._K: list[np.ndarray] = []
        self._hw: list[tuple[int, int]] = []

    def add(self, frame: FrameResult) -> None:
        if self.owns_fusion:
            self.fusion.add_frame(frame)
        if not pose_is_valid(frame.pose):
            return
        self._poses.append(np.asarray(frame.pose, np.float64).copy())
        self._K.append(np.asarray(frame.intrinsics, np.float64).copy())
        self._hw.append(frame.hw)

    def flush(self) -> None:
        pass

    def scene(self):
        """The ``trimesh.Scene`` that :meth:`close` writes (already in glTF axes)."""
        trimesh = _trimesh()
        scene = trimesh.Scene()
        xyz, rgb = self.fusion.sample(self.max_points)
        if len(xyz):
            colors = np.column_stack([rgb, np.full(len(rgb), 255, np.uint8)])
            scene.add_geometry(trimesh.PointCloud(xyz.astype(np.float64), colors=colors), geom_name="points")
        if self._poses:
            centres = np.array([p[:3, 3] for p in self._poses])
            if len(xyz):
                lo, hi = np.percentile(xyz, [5, 95], axis=0)
                size = 0.04 * float(np.linalg.norm(hi - lo))
            else:
                size = 0.1 * max(float(np.ptp(centres, axis=0).max()), 1.0)
            size = size if size > 0 else 0.1
            n = len(self._poses)
            pick = np.unique(np.linspace(0, n - 1, min(n, self.max_cameras)).round().astype(int))
            segs = np.concatenate([frustum_segments(self._poses[i], self._K[i], self._hw[i], size) for i in pick])
            cmap = _colormap(pick / max(n - 1, 1))
            seg_colors = np.repeat(cmap, 8, axis=0)
            scene.add_geometry(_segments(trimesh, segs, seg_colors), geom_name="cameras")
            if n > 1:
                white = np.full((n - 1, 4), 255, np.uint8)
                scene.add_geometry(_segments(trimesh, np.stack([centres[:-1], centres[1:]], axis=1), white),
                                   geom_name="camera_path")
        scene.apply_transform(GLTF_FROM_OPENCV)
        return scene

    def close(self, interrupted: bool = False) -> None:
        data = self.scene().export(file_type="glb")
        atomic_write_bytes(self.path, data)


def _segments(trimesh, segs: np.ndarray, colors: np.ndarray):
    """A Path3D of (K, 2, 3) independent line segments with (K, 4) uint8 colours."""
    from trimesh.path.entities import Line

    k = len(segs)
    entities = [Line(points=np.array([2 * i, 2 * i + 1])) for i in range(k)]
    return trimesh.path.Path3D(entities=entities, vertices=segs.reshape(-1, 3), colors=colors, process=False)


def _colormap(t: np.ndarray) -> np.ndarray:
    """(N,) in [0, 1] -> (N, 4) uint8 RGBA along matplotlib's viridis."""
    from matplotlib import colormaps

    return (colormaps["viridis"](np.asarray(t, np.float64)) * 255).round().astype(np.uint8)
