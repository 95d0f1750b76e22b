"""The typed per-frame output of a reconstruction.

Conventions, stated once for the whole package:

* Camera axes are OpenCV's: x right, y down, z forward.
* Poses are camera-to-world 4x4 matrices (``X_world = pose @ X_cam``); the world
  frame is the camera frame of the first frame of the sequence.
* Quaternions are stored ``(qx, qy, qz, qw)`` when written to TUM files and
  ``(qw, qx, qy, qz)`` inside the network's pose encoding (as CUT3R).
* Units are those of the network's output: up to an unknown global scale for
  image inputs (metric-like for the released checkpoints).
* Images are H x W after preprocessing (e.g. 512 x 288 for a 16:9 video at 512).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry import transform_points, unproject


@dataclass(frozen=True)
class SourceRef:
    """Where a frame's source pixels are, so that writers can read them again at full size.

    Attributes:
        path: the image file, or the video file.
        hw: (H0, W0), the source image's size (after EXIF orientation / video rotation).
        video_frame: the decoded frame number in the video (``None`` for an image file).
        size: the preprocessing size the frame went through (512, 224, ...), which with
            ``hw`` fixes the crop and resize (:func:`ttt3r.preprocess.crop_geometry`).
    """

    path: str
    hw: tuple[int, int]
    video_frame: int | None = None
    size: int = 512


@dataclass
class FrameResult:
    """What the reconstruction produced for one input frame.

    Attributes:
        index: position of the frame in the processed sequence (0-based, after
            ``frame_interval`` subsampling).
        name: a name for the frame's source (file name, or ``video.mp4#123``).
        pts3d_cam: (H, W, 3) float32 pointmap in the frame's own camera frame
            (the network's self-view head); ``depth`` is its z.
        conf: (H, W) float32, confidence of the self-view pointmap (>= 1).
        pose: (4, 4) float64 camera-to-world, OpenCV axes.
        intrinsics: (3, 3) float64 pinhole matrix, fx = fy from the Weiszfeld
            focal fit, principal point (W // 2, H // 2), in pixels of the
            preprocessed image.
        rgb: (H, W, 3) uint8, the preprocessed input image the network saw.
        pts3d_world: optional (H, W, 3) float32 world-frame pointmap predicted
            directly by the network's second head (only when requested).
        rgb_pred: optional (H, W, 3) float32 RGB head output in [0, 1].
        pose_pred: optional (4, 4) float64 camera-to-world: the network's own pose
            estimate when ``pose`` holds a given camera (``--poses``, in the same
            world frame; see :mod:`ttt3r.known`); None otherwise.
        time_s: seconds of this frame's network step alone (no preprocessing, no
            re-feed of a reset frame, no post-processing).
        total_s: seconds of the whole :meth:`Session.step` for this frame:
            preprocessing (with reading the image when given a path), the re-feed
            that opens a new chunk after a reset, the network step and post-processing.
        source: where the source pixels are (a :class:`SourceRef`), when known:
            set by :func:`ttt3r.reconstruct` for files and videos; writers that
            want source resolution (COLMAP) read them from there.
        timestamp: the input's timestamp (:attr:`ttt3r.io.frames.Frame.timestamp`:
            a video frame's presentation time in seconds, or the number a numeric
            file name spells), or ``None``; see :meth:`time`.
        source_index: the input's position in its source (sorted folder, list, or
            decoded video frame number), or ``None`` when not read from a source.
    """

    index: int
    name: str
    pts3d_cam: np.ndarray
    conf: np.ndarray
    pose: np.ndarray
    intrinsics: np.ndarray
    rgb: np.ndarray
    pts3d_world: np.ndarray | None = None
    rgb_pred: np.ndarray | None = None
    pose_pred: np.ndarray | None = None
    time_s: float = 0.0
    total_s: float = 0.0
    extras: dict = field(default_factory=dict)
    source: SourceRef | None = None
    timestamp: float | None = None
    source_index: int | None = None

    def time(self, fps: float | None = None) -> float:
        """The frame's timestamp in trajectories and ``frames.csv``: :attr:`timestamp` when
        set (else ``extras["timestamp"]``), else ``index / fps`` when the frame rate is
        known, else the index."""
        ts = self.timestamp if self.timestamp is not None else (self.extras or {}).get("timestamp")
        if ts is not None:
            return float(ts)
        return self.index / fps if fps else float(self.index)

    @property
    def depth(self) -> np.ndarray:
        """(H, W) float32 depth along the camera z axis."""
        return self.pts3d_cam[..., 2]

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.pts3d_cam.shape[0]), int(self.pts3d_cam.shape[1])

    def points_world(self) -> np.ndarray:
        """(H, W, 3) float32 world-frame points: ``pose`` applied to ``pts3d_cam``.

        This is how the original demo builds its point cloud (not the world head).
        """
        return transform_points(self.pose, self.pts3d_cam.astype(np.float64)).astype(np.float32)

    def cloud_points_cam(self, stride: int = 1) -> np.ndarray:
        """(H, W, 3) float64 camera-frame points of ``depth`` back-projected with ``intrinsics``
        (``stride`` > 1: only every ``stride``-th pixel per axis, ``[::stride, ::stride]``).

        This is the geometry of every cloud ttt3r writes or shows (``points.ply``,
        COLMAP ``points3D``, ``scene.glb``, the preview, the video, the viewer): a
        pinhole model, so that each point projects with ``intrinsics`` exactly to
        the pixel it came from, which COLMAP tracks, nerfstudio and splatting assume.
        The self-view pointmap ``pts3d_cam`` has the same z but its x, y are not
        exactly pinhole (the focal is a robust fit to it), so it is not used.
        """
        K = np.asarray(self.intrinsics, np.float64)
        if stride > 1:  # pixel u' of the strided grid is pixel stride * u' of the frame
            K = np.diag([1.0 / stride, 1.0 / stride, 1.0]) @ K
        return unproject(np.asarray(self.depth)[::stride, ::stride], K)
