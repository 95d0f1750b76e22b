"""``flythrough.mp4``: the reconstruction growing along the camera path, rendered headless.

Each video frame shows the fused cloud as it was when a given input frame had
been added (the voxels whose earliest frame is at most that one,
``FusedCloud.first_frame``), seen from a virtual camera that follows the real
one: its pose moved back along its viewing axis and up (OpenCV ``-y``) by a
fraction of the scene's median depth, looking at the same point, with the
first camera's field of view. Points are splatted as squares about a voxel's
footprint (2 to 12 px) with a z-buffer (nearest wins), in numpy; the camera path so far is drawn over them
(green to red). At most ``max_frames`` frames are rendered (input frames evenly
spaced), at ``width`` px wide, and encoded with PyAV (H.264 when available,
else MPEG-4 Part 2), so the cost is bounded whatever the sequence length.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..geometry import project
from ..io.atomic import atomic_path
from ..results import FrameResult
from .base import pose_is_valid
from .fusion import FusedCloud, VoxelFusion

__all__ = ["VideoWriter", "follow_camera", "render_points"]

_BG = np.array([16, 17, 20], np.uint8)


def follow_camera(pose: np.ndarray, back: float) -> np.ndarray:
    """(4, 4) camera-to-world -> a camera ``back`` behind and ``back / 2`` above it, tilted to look at the
    point ``2 * back`` in front of the original camera."""
    pose = np.asarray(pose, np.float64)
    R, c = pose[:3, :3], pose[:3, 3]
    target = c + 2 * back * R[:, 2]
    eye = c - back * R[:, 2] - 0.5 * back * R[:, 1]  # camera y is down: -y is up
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(R[:, 1], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    out = np.eye(4)
    out[:3, :3] = np.stack([x, y, z], axis=1)
    out[:3, 3] = eye
    return out


def render_points(xyz: np.ndarray, rgb: np.ndarray, pose: np.ndarray, K: np.ndarray, hw: tuple[int, int],
                  splat: int = 2) -> np.ndarray:
    """(N, 3) world points, (N, 3) uint8 colours seen by a pinhole camera (camera-to-world ``pose``, ``K``)
    -> (H, W, 3) uint8 image, each point a ``splat`` x ``splat`` square, the nearest in front."""
    h, w = hw
    img = np.empty((h, w, 3), np.uint8)
    img[:] = _BG
    if len(xyz) == 0:
        return img
    T = np.linalg.inv(np.asarray(pose, np.float64))
    pc = np.asarray(xyz, np.float64) @ T[:3, :3].T + T[:3, 3]
    front = pc[:, 2] > 1e-6
    pc, col = pc[front], np.asarray(rgb)[front]
    uv = np.floor(project(pc, K) + 0.5).astype(np.int64)  # the nearest pixel centre (centres at integers)
    u, v = uv[:, 0], uv[:, 1]
    order = np.argsort(-pc[:, 2], kind="stable")  # far to near: nearer points are written last and win
    u, v, col = u[order], v[order], col[order]
    for du in range(splat):
        for dv in range(splat):
            uu, vv = u + du, v + dv
            ok = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
            img[vv[ok], uu[ok]] = col[ok]
    return img


def _path_points(centres: np.ndarray, per_segment: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Points along the camera path and their colours (green at the start, red at the end)."""
    if len(centres) < 2:
        return centres.reshape(-1, 3), np.zeros((len(centres), 3), np.uint8)
    t = np.linspace(0, 1, per_segment, endpoint=False)
    seg = centres[:-1, None, :] + (centres[1:] - centres[:-1])[:, None, :] * t[None, :, None]
    pts = seg.reshape(-1, 3)
    s = np.linspace(0, 1, len(pts))[:, None]
    col = (np.array([60, 220, 90]) * (1 - s) + np.array([240, 60, 50]) * s).astype(np.uint8)
    return pts, col


class VideoWriter:
    """Writes ``flythrough.mp4`` at :meth:`close` (see module doc); keeps only the poses (16 floats a frame).

    Args:
        path: output file.
        fusion: the fused cloud (shared); ``None``: owned and fed here.
        max_frames: at most this many video frames.
        width: video width in pixels (the height follows the frames' aspect; both even).
        fps: video frame rate.
        max_points: points drawn at most (a random subset of the cloud).
    """

    def __init__(self, path: str | os.PathLike, fusion: VoxelFusion | None = None, max_frames: int = 120,
                 width: int = 480, fps: int = 15, max_points: int = 300_000) -> None:
        self.path = Path(path)
        self.owns_fusion = fusion is None
        self.fusion = fusion if fusion is not None else VoxelFusion()
        self.max_frames = max(1, int(max_frames))
        self.width = max(16, int(width) // 2 * 2)
        self.fps = int(fps)
        self.max_points = int(max_points)
        self._poses: dict[int, np.ndarray] = {}
        self._K: np.ndarray | None = None
        self._hw: tuple[int, int] | None = None
        self._depths: list[float] = []

    def add(self, frame: FrameResult) -> None:
        if self.owns_fusion:
            self.fusion.add_frame(frame)
        if not pose_is_valid(frame.pose):
            return
        self._poses[int(frame.index)] = np.asarray(frame.pose, np.float64).copy()
        if self._K is None:
            self._K, self._hw = np.asarray(frame.intrinsics, np.float64).copy(), frame.hw
        d = np.asarray(frame.depth)
        d = d[np.isfinite(d) & (d > 0)]
        if d.size and len(self._depths) < 64:
            self._depths.append(float(np.median(d)))

    def flush(self) -> None:
        pass

    def frame_indices(self) -> list[int]:
        """The input frame indices the video shows, one per video frame, evenly spaced."""
        idx = sorted(self._poses)
        if len(idx) <= self.max_frames:
            return idx
        pick = np.unique(np.linspace(0, len(idx) - 1, self.max_frames).round().astype(int))
        return [idx[i] for i in pick]

    def render(self, cloud: FusedCloud) -> list[np.ndarray]:
        """Every video frame, as (H, W, 3) uint8 images."""
        if self._K is None or self._hw is None:
            return []
        h0, w0 = self._hw
        s = self.width / w0
        hw = (max(16, int(round(h0 * s)) // 2 * 2), self.width)
        K = self._K.copy()
        K[0, :] *= hw[1] / w0
        K[1, :] *= hw[0] / h0
        depth = float(np.median(self._depths)) if self._depths else 1.0
        back = 0.3 * depth
        # a voxel's footprint in video pixels at the typical distance (points are drawn about that big)
        voxel = self.fusion.voxel_size or 0.0
        splat = int(np.clip(np.ceil(voxel * K[0, 0] / (depth + back)), 2, 12))
        centres = np.stack([self._poses[i][:3, 3] for i in sorted(self._poses)])
        order = sorted(self._poses)
        out = []
        for i in self.frame_indices():
            seen = cloud.first_frame <= i
            path, path_rgb = _path_points(centres[: order.index(i) + 1])
            xyz = np.concatenate([cloud.xyz[seen], path])
            rgb = np.concatenate([cloud.rgb[seen], path_rgb])
            out.append(render_points(xyz, rgb, follow_camera(self._poses[i], back), K, hw, splat=splat))
        return out

    def close(self, interrupted: bool = False) -> None:
        import av

        frames = self.render(self.fusion.fused().sample(self.max_points))
        if not frames:
            frames = [np.tile(_BG, (64, 64, 1))]
        h, w = frames[0].shape[:2]
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        with atomic_path(self.path) as tmp:
            with av.open(os.fspath(tmp), mode="w", format="mp4") as container:
                stream = container.add_stream(codec, rate=self.fps)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": "23", "preset": "veryfast"}
                for img in frames:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
