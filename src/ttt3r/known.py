"""Given cameras of a run: pose files matched to frames, ray maps fed, outputs in the user's frame.

What ``ttt3r reconstruct --intrinsics SPEC [--poses FILE]`` does with the
cameras a user knows (the ray maps themselves: :mod:`ttt3r.cameras`):

* :func:`read_pose_file` reads camera-to-world poses (TUM, KITTI, EuRoC, or a
  COLMAP ``images.txt``), each checked to be a rotation, errors naming the file
  and line.
* :func:`match_poses` gives each frame its pose: by name for COLMAP, by
  timestamp where the frames have timestamps (a video's presentation time, a
  numeric file stem such as ``000012.png`` or ``1305031102.175304.png``) and
  every frame's timestamp is one of the file's, otherwise by order.
* :class:`GivenCameras` makes each frame's ray map (poses re-expressed relative to
  the first frame's given pose, the network's world frame) and turns the
  network's result into the user's world frame (:meth:`GivenCameras.apply`).

Conventions: OpenCV camera axes, camera-to-world 4x4 poses, pixel centres at
integers, TUM quaternions ``(qx, qy, qz, qw)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from .cameras import (ROTATION_TOL, Intrinsics, data_lines, intrinsics_to_network, network_hw, ray_map,
                      rotation_problem)
from .errors import TTT3RError

PoseFormat = Literal["auto", "tum", "kitti", "euroc", "colmap"]
POSE_FORMATS: tuple[str, ...] = get_args(PoseFormat)
#: seconds: a frame and a pose with timestamps this close are the same instant
TIMESTAMP_TOL = 1e-3


@dataclass(frozen=True, eq=False)  # holds arrays
class PoseFile:
    """Camera-to-world poses as a file gives them.

    Attributes:
        path: the file.
        c2w: (N, 4, 4) float64 camera-to-world, the file's own world frame.
        lines: (N,) 1-based line number of each pose in the file.
        timestamps: (N,) float64 seconds, or None (KITTI, COLMAP).
        names: the image name of each pose (COLMAP), or None.
    """

    path: Path
    c2w: np.ndarray
    lines: list[int]
    timestamps: np.ndarray | None = None
    names: list[str] | None = None

    def where(self, i: int) -> str:
        return f"{self.path}:{self.lines[i]}"


def read_pose_file(path: str | os.PathLike, fmt: PoseFormat = "auto") -> PoseFile:
    """Read camera-to-world poses from ``path`` in ``fmt``.

    ``auto``: a folder or a file named ``images.txt`` is COLMAP, ``.csv`` EuRoC, a
    file whose first pose line has 12 numbers KITTI, else TUM. TUM, KITTI and EuRoC
    are read by :mod:`ttt3r.io.trajectory`; a COLMAP ``images.txt`` holds
    world-to-camera ``QW QX QY QZ TX TY TZ`` (inverted here). Every rotation must be
    orthonormal with determinant +1 and every quaternion of unit norm (within
    :data:`ttt3r.cameras.ROTATION_TOL`); errors name the file and line.
    """
    p = Path(path)
    if fmt not in POSE_FORMATS:
        raise TTT3RError(f"--poses-format: unknown format {fmt!r} (choose {', '.join(POSE_FORMATS)})")
    if p.is_dir():
        p, fmt = p / "images.txt", "colmap"
    if not p.is_file():
        raise TTT3RError(f"{p}: pose file not found")
    data = data_lines(p)
    if fmt == "auto":
        if p.name == "images.txt":
            fmt = "colmap"
        elif p.suffix.lower() == ".csv":
            fmt = "euroc"
        else:
            fmt = "kitti" if data and len(data[0][1]) == 12 else "tum"
    if fmt == "colmap":
        return _read_colmap_images(p)
    from .io.trajectory import read_trajectory

    traj = read_trajectory(p, fmt)
    lines = [n for n, _ in data]
    if fmt in ("tum", "euroc"):
        for n, words in data:  # both hold the quaternion in columns 4-7
            fields = " ".join(words).replace(",", " ").split()
            norm = math.sqrt(sum(float(x) ** 2 for x in fields[4:8]))
            if abs(norm - 1) > ROTATION_TOL:
                raise TTT3RError(f"{p}:{n}: quaternion has norm {norm:.6g}, not a rotation (expected 1)")
    _check_rotations(p, traj.poses, lines)
    times = None if fmt == "kitti" else traj.timestamps
    return PoseFile(p, traj.poses, lines, times)


def _read_colmap_images(p: Path) -> PoseFile:
    from .geometry import quaternion_to_rotation

    c2w, lines, names = [], [], []
    try:
        raw = p.read_text(encoding="utf-8-sig").splitlines()
    except (UnicodeDecodeError, OSError) as e:
        raise TTT3RError(f"{p}: cannot read the pose file ({type(e).__name__})") from None
    k = 0
    while k < len(raw):
        n, s = k + 1, raw[k].strip()
        k += 1
        if not s or s.startswith("#"):
            continue
        k += 1  # the POINTS2D line (possibly empty) that follows every image line
        fields = s.split(maxsplit=9)
        if len(fields) != 10 or not _numbers(fields[:9]):
            raise TTT3RError(f"{p}:{n}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        q = np.array([float(x) for x in fields[1:5]])  # qw qx qy qz
        if abs(np.linalg.norm(q) - 1) > ROTATION_TOL:
            raise TTT3RError(f"{p}:{n}: quaternion has norm {np.linalg.norm(q):.6g}, not a rotation (expected 1)")
        R = quaternion_to_rotation(q[[1, 2, 3, 0]])  # world-to-camera
        T = np.eye(4)
        T[:3, :3] = R.T
        T[:3, 3] = -R.T @ np.array([float(x) for x in fields[5:8]])
        c2w.append(T)
        lines.append(n)
        names.append(fields[9])
    if not c2w:
        raise TTT3RError(f"{p}: no images found (expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME lines)")
    return PoseFile(p, np.stack(c2w), lines, None, names)


def _check_rotations(p: Path, c2w: np.ndarray, lines: list[int]) -> None:
    for T, n in zip(c2w, lines):
        problem = rotation_problem(T[:3, :3])
        if problem:
            raise TTT3RError(f"{p}:{n}: {problem}")


def _numbers(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- matching


@dataclass(frozen=True)
class FrameKey:
    """What identifies a frame for matching: its position in the input, name and time.

    Attributes:
        source_index: position in the original sequence (before ``frame_interval``).
        name: the frame's name (file name, ``video.mp4#12``).
        timestamp: seconds (video presentation time, numeric file stem), or None.
    """

    source_index: int
    name: str
    timestamp: float | None = None


def frame_timestamp(name: str, timestamp: float | None = None) -> float | None:
    """A frame's time in seconds: ``timestamp`` when given (video), else its file
    stem read as a number (``000012.png`` -> 12.0, ``1305031102.175304.png``), else None."""
    if timestamp is not None:
        return float(timestamp)
    stem = Path(name).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    try:
        t = float(stem)
    except ValueError:
        return None
    return t if math.isfinite(t) else None


def match_poses(poses: PoseFile, frames: list[FrameKey], n_input: int | None) -> list[int]:
    """The index into ``poses`` of each frame in ``frames``.

    * COLMAP poses: by image name (the frame's name, or its base name).
    * By timestamp when every frame has one within :data:`TIMESTAMP_TOL` of one of
      the file's.
    * Otherwise by order: frame ``source_index`` takes pose ``source_index``; the
      file must hold ``n_input`` poses (the input's number of frames, when known)
      and at least one per frame.

    Raises :class:`TTT3RError`: one line naming the pose file and the frame.
    """
    if poses.names is not None:
        by_name = {n: i for i, n in enumerate(poses.names)}
        out = []
        for f in frames:
            i = by_name.get(f.name, by_name.get(Path(f.name).name))
            if i is None:
                raise TTT3RError(f"{poses.path}: no image named {f.name!r} (frame {f.source_index})")
            out.append(i)
        return out
    times = [f.timestamp for f in frames]
    matched = 0
    if poses.timestamps is not None and frames and all(t is not None for t in times):
        ts = poses.timestamps
        nearest = [int(np.argmin(np.abs(ts - t))) for t in times]
        hit = [abs(ts[i] - t) <= TIMESTAMP_TOL for i, t in zip(nearest, times)]
        if all(hit):
            return nearest
        matched = sum(hit)
    n = len(poses.c2w)
    need = max((f.source_index for f in frames), default=-1) + 1
    if n < need or (n_input is not None and n != n_input):
        what = f"the input has {n_input} frames" if n_input is not None else f"frame {need - 1} needs one"
        why = (f"{matched} of the {len(frames)} frames' timestamps match one of the file's"
               if poses.timestamps is not None and all(t is not None for t in times) else "no timestamps to match")
        raise TTT3RError(f"{poses.path}: holds {n} poses but {what} (matched by order: {why})")
    return [f.source_index for f in frames]


# ---------------------------------------------------------------- feeding and outputs


@dataclass(eq=False)
class GivenCameras:
    """The cameras a run is given, and how they enter and leave the network.

    Attributes:
        intrinsics: the source-image camera (one for all frames), or None.
        poses: camera-to-world pose of each frame in the user's world frame, by the
            frame's ``source_index``; None with intrinsics alone.
        source_wh: (W, H) of the input frames.

    The network's world frame is the first fed frame's camera; its given pose (the
    *reference*) maps the network's frame into the user's.
    """

    intrinsics: Intrinsics | None
    poses: dict[int, np.ndarray] | None
    source_wh: tuple[int, int]
    reference: np.ndarray | None = None
    K_net: np.ndarray | None = None
    hw: tuple[int, int] | None = None

    def at_size(self, size: int) -> GivenCameras:
        """Fix the network size (512, 224): sets ``K_net`` (3, 3, network pixels) and ``hw``."""
        if self.intrinsics is not None:
            self.K_net = intrinsics_to_network(self.intrinsics.K, self.source_wh, size)
        self.hw = network_hw(self.source_wh, size)
        return self

    def relative(self, c2w: np.ndarray) -> np.ndarray:
        """(..., 4, 4) user-frame poses -> relative to the reference (the network's world frame)."""
        ref = self.reference if self.reference is not None else np.eye(4)
        return np.linalg.inv(ref) @ np.asarray(c2w, np.float64)

    def to_user(self, c2w: np.ndarray) -> np.ndarray:
        """(..., 4, 4) network-frame poses -> the user's world frame."""
        ref = self.reference if self.reference is not None else np.eye(4)
        return ref @ np.asarray(c2w, np.float64)

    def rays(self, source_index: int, image_wh: tuple[int, int], first: bool) -> np.ndarray | None:
        """(h, w, 6) ray map for a frame (None: feed its image alone); ``first``: the
        first frame fed, whose given pose becomes the reference.

        With poses and intrinsics: every frame. With intrinsics alone: the first frame
        only, whose pose is the world frame (identity); later frames' poses are unknown.
        """
        if tuple(image_wh) != tuple(self.source_wh):
            raise TTT3RError(f"frame {source_index} is {image_wh[0]}x{image_wh[1]}, the given intrinsics are for "
                             f"{self.source_wh[0]}x{self.source_wh[1]} frames")
        if first and self.poses is not None:
            self.reference = self.poses[source_index]
        if self.K_net is None:
            return None
        if self.poses is None:
            return ray_map(np.eye(4), self.K_net, *self.hw) if first else None
        return ray_map(self.relative(self.poses[source_index]), self.K_net, *self.hw)

    def step(self, sess, frame):
        """Feed a :class:`ttt3r.io.frames.Frame` to ``sess`` (a :class:`ttt3r.Session`) with its
        ray map; returns its :class:`ttt3r.FrameResult` in the user's frame."""
        h, w = frame.image.shape[:2]
        rays = self.rays(frame.source_index, (w, h), first=sess.frames_done == 0)
        result = sess.step(frame.image, frame.name, rays=rays)
        self.apply(result, frame.source_index)
        return result

    def query(self, sess, c2w: np.ndarray, K_source: np.ndarray, name: str | None = None):
        """What the network sees from a camera no frame shows (:meth:`ttt3r.Session.query`).

        ``c2w`` (4, 4) in the user's world frame (the run's output frame), ``K_source``
        (3, 3) in source-image pixels. Returns the :class:`ttt3r.FrameResult` with ``pose``
        = ``c2w``, ``pose_pred`` = the network's pose (user frame), ``intrinsics`` = K at
        the network's resolution, ``rgb`` = the network's RGB prediction.
        """
        K = intrinsics_to_network(K_source, self.source_wh, sess.size)
        h, w = network_hw(self.source_wh, sess.size)
        result = sess.query(ray_map(self.relative(c2w), K, h, w), name)
        result.pose_pred = self.to_user(result.pose)
        result.pose = np.asarray(c2w, np.float64).copy()
        result.intrinsics = K
        return result

    def apply(self, result, source_index: int) -> None:
        """Put a :class:`ttt3r.FrameResult` in the user's frame, in place.

        With poses: ``pose_pred`` = reference @ the network's pose, ``pose`` = the given
        pose, ``pts3d_world`` (if any) mapped into the user's frame. With intrinsics:
        ``intrinsics`` = ``K_net``. Depth (the self-view pointmap) is untouched.
        """
        if self.poses is not None:
            result.pose_pred = self.to_user(result.pose)
            result.pose = self.poses[source_index].copy()
            if result.pts3d_world is not None:
                ref = self.reference
                w = result.pts3d_world.astype(np.float64)
                result.pts3d_world = (w @ ref[:3, :3].T + ref[:3, 3]).astype(np.float32)
        if self.K_net is not None:
            result.intrinsics = self.K_net.copy()


def frame_keys(source) -> list[FrameKey]:
    """The :class:`FrameKey` of every frame a :class:`ttt3r.io.frames.FrameSource` will yield.

    Image folders and lists: from the file names, nothing read. A video: decoded
    once to read its presentation times.
    """
    files = getattr(source, "files", None)
    if files is not None:
        idx = list(range(0, len(files), source.frame_interval))
        if source.max_frames is not None:
            idx = idx[: source.max_frames]
        return [FrameKey(i, source.names[i], frame_timestamp(source.names[i])) for i in idx]
    return [FrameKey(f.source_index, f.name, frame_timestamp(f.name, f.timestamp)) for f in source]


def given_cameras(source, intrinsics: str | os.PathLike | None, poses: str | os.PathLike | None,
                  poses_format: PoseFormat = "auto") -> GivenCameras | None:
    """Read and check ``--intrinsics`` and ``--poses`` against the frames of ``source``
    (the first frame is read for its size); None when neither is given.

    Everything is checked here, before any output is written: the intrinsics (positive
    focal, principal point inside the frames), every pose a rotation, and each frame
    matched to one pose (:func:`match_poses`). Errors: :class:`TTT3RError`, one line.
    """
    if intrinsics is None and poses is None:
        return None
    if poses is not None and intrinsics is None:
        raise TTT3RError("--poses needs --intrinsics (a ray map is made of both)")
    from .cameras import parse_intrinsics

    first = next(iter(source))
    h, w = first.image.shape[:2]
    intr = parse_intrinsics(intrinsics, (w, h))
    by_index = None
    if poses is not None:
        pf = read_pose_file(poses, poses_format)
        keys = frame_keys(source)
        n_input = len(source.files) if getattr(source, "files", None) is not None else None
        matched = match_poses(pf, keys, n_input)
        by_index = {k.source_index: pf.c2w[i] for k, i in zip(keys, matched)}
    return GivenCameras(intr, by_index, (w, h))
