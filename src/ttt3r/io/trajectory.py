"""Trajectory files: one type, one ``read_*`` / ``write_*`` pair per format (TUM, KITTI, EuRoC).

A :class:`Trajectory` holds ``timestamps`` (N,) float64 seconds and ``poses``
(N, 4, 4) float64 camera-to-world matrices (OpenCV camera axes). Quaternions
are TUM's ``(qx, qy, qz, qw)``, scalar last, converted by :mod:`ttt3r.geometry`.
Formats:

* TUM: one pose a line, ``t tx ty tz qx qy qz qw`` separated by spaces; lines
  starting with ``#`` and blank lines are ignored.
* KITTI: one pose a line, the 12 numbers of the 3x4 ``[R | t]`` row-major; no
  timestamps (frame index ``0, 1, 2, ...`` is used as the timestamp).
* EuRoC: CSV ``#timestamp [ns], p_x, p_y, p_z, q_w, q_x, q_y, q_z[, ...]``;
  timestamps are integer nanoseconds in the file and seconds in memory.

Malformed files raise :class:`ttt3r.errors.TTT3RError` naming the file and line.
Writes are atomic. Timestamp association is :mod:`ttt3r.eval.trajectory`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ..errors import TTT3RError
from ..geometry import quaternion_to_rotation, rotation_to_quaternion
from .atomic import atomic_write_text

__all__ = [
    "FORMATS",
    "TUM_HEADER",
    "Trajectory",
    "TrajectoryFormat",
    "format_tum",
    "pose_to_tum",
    "read_euroc",
    "read_kitti",
    "read_pose_matrices",
    "read_trajectory",
    "read_tum",
    "tum_line",
    "tum_to_pose",
    "write_euroc",
    "write_kitti",
    "write_trajectory",
    "write_tum",
]

TrajectoryFormat = Literal["tum", "kitti", "euroc"]
FORMATS: tuple[str, ...] = get_args(TrajectoryFormat)


@dataclass
class Trajectory:
    """Timestamped camera-to-world poses.

    Attributes:
        timestamps: (N,) float64 seconds (frame indices for formats without time).
        poses: (N, 4, 4) float64 camera-to-world matrices.
    """

    timestamps: np.ndarray
    poses: np.ndarray

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(-1)
        self.poses = np.asarray(self.poses, dtype=np.float64)
        if self.poses.ndim != 3 or self.poses.shape[1:] != (4, 4):
            raise ValueError(f"poses must be (N, 4, 4), got {self.poses.shape}")
        if len(self.timestamps) != len(self.poses):
            raise ValueError(f"{len(self.timestamps)} timestamps for {len(self.poses)} poses")

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) camera centres in the world frame."""
        return self.poses[:, :3, 3]

    def subset(self, indices: np.ndarray | list[int]) -> Trajectory:
        idx = np.asarray(indices, dtype=int)
        return Trajectory(self.timestamps[idx].copy(), self.poses[idx].copy())

    @staticmethod
    def from_positions_quaternions(
        timestamps: np.ndarray, positions: np.ndarray, quat_xyzw: np.ndarray
    ) -> Trajectory:
        """Build from (N,) times, (N, 3) positions and (N, 4) quaternions ``(qx, qy, qz, qw)``."""
        quat = np.asarray(quat_xyzw, dtype=np.float64).reshape(-1, 4)
        poses = np.tile(np.eye(4), (len(quat), 1, 1))
        poses[:, :3, :3] = quaternion_to_rotation(quat)
        poses[:, :3, 3] = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        return Trajectory(timestamps, poses)

    def quaternions_xyzw(self) -> np.ndarray:
        """(N, 4) unit quaternions ``(qx, qy, qz, qw)`` of the rotations, ``qw >= 0``."""
        return rotation_to_quaternion(self.poses[:, :3, :3])


# ---------------------------------------------------------------- reading


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise TTT3RError(f"{path}: trajectory file not found") from None
    except IsADirectoryError:
        raise TTT3RError(f"{path}: is a directory, expected a trajectory file") from None
    except UnicodeDecodeError:
        raise TTT3RError(f"{path}: not a text file") from None
    except OSError as e:
        raise TTT3RError(f"{path}: cannot read ({e.strerror})") from None


def _parse_rows(
    path: Path,
    sep: str | None,
    counts: tuple[int, ...],
    what: str,
    at_least: bool = False,
    finite: bool = True,
) -> np.ndarray:
    """Parse non-comment lines into an (N, k) float array; every row must have a count in ``counts``."""
    rows: list[list[float]] = []
    width: int | None = None
    for lineno, line in enumerate(_read_lines(path), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        fields = [f.strip() for f in s.split(sep)] if sep else s.split()
        n = len(fields)
        ok = (n >= counts[0]) if at_least else (n in counts)
        if not ok:
            want = f"at least {counts[0]}" if at_least else " or ".join(map(str, counts))
            raise TTT3RError(f"{path}:{lineno}: expected {want} numbers ({what}), got {n}")
        if width is not None and not at_least and n != width:
            raise TTT3RError(f"{path}:{lineno}: {n} numbers, but the lines before have {width}")
        try:
            vals = [float(f) for f in fields[: (counts[0] if at_least else n)]]
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise TTT3RError(f"{path}:{lineno}: {bad!r} is not a number") from None
        if finite and not all(math.isfinite(v) for v in vals):
            raise TTT3RError(f"{path}:{lineno}: non-finite value in pose")
        width = n
        rows.append(vals)
    if not rows:
        raise TTT3RError(f"{path}: no poses found")
    return np.array(rows, dtype=np.float64)


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _check_quaternions(path: Path, quat: np.ndarray) -> None:
    norms = np.linalg.norm(quat, axis=1)
    bad = np.flatnonzero(norms < 1e-8)
    if len(bad):
        raise TTT3RError(f"{path}: pose {bad[0] + 1} has a zero quaternion")


def read_tum(path: str | os.PathLike) -> Trajectory:
    """Read a TUM trajectory (``t tx ty tz qx qy qz qw`` a line)."""
    p = Path(path)
    m = _parse_rows(p, None, (8,), "t tx ty tz qx qy qz qw")
    _check_quaternions(p, m[:, 4:8])
    return Trajectory.from_positions_quaternions(m[:, 0], m[:, 1:4], m[:, 4:8])


def read_pose_matrices(path: str | os.PathLike, allow_16: bool = False, finite: bool = True) -> np.ndarray:
    """Read one 3x4 (12 numbers) or, if ``allow_16``, 4x4 (16 numbers) row-major pose a line.

    Returns (N, 4, 4) float64 (the last row is always ``0 0 0 1``). With
    ``finite=False``, ``inf``/``nan`` entries (unknown poses) are kept.
    Used for KITTI files and ScanNet/Replica pose lists.
    """
    p = Path(path)
    counts = (12, 16) if allow_16 else (12,)
    what = "row-major 3x4 or 4x4 pose" if allow_16 else "row-major 3x4 pose"
    m = _parse_rows(p, None, counts, what, finite=finite)
    poses = np.tile(np.eye(4), (len(m), 1, 1))
    poses[:, :3, :] = m[:, :12].reshape(-1, 3, 4)
    return poses


def read_kitti(path: str | os.PathLike) -> Trajectory:
    """Read a KITTI pose file (12 numbers a line); timestamps are frame indices."""
    poses = read_pose_matrices(path)
    return Trajectory(np.arange(len(poses), dtype=np.float64), poses)


def read_euroc(path: str | os.PathLike) -> Trajectory:
    """Read an EuRoC CSV (``timestamp[ns], p_x, p_y, p_z, q_w, q_x, q_y, q_z, ...``)."""
    p = Path(path)
    m = _parse_rows(p, ",", (8,), "timestamp, p_x, p_y, p_z, q_w, q_x, q_y, q_z", at_least=True)
    _check_quaternions(p, m[:, 4:8])
    quat_xyzw = m[:, [5, 6, 7, 4]]
    return Trajectory.from_positions_quaternions(m[:, 0] / 1e9, m[:, 1:4], quat_xyzw)


def read_trajectory(path: str | os.PathLike, fmt: TrajectoryFormat = "tum") -> Trajectory:
    """Read ``path`` in format ``fmt`` (``tum``, ``kitti`` or ``euroc``)."""
    readers = {"tum": read_tum, "kitti": read_kitti, "euroc": read_euroc}
    if fmt not in readers:
        raise TTT3RError(f"unknown trajectory format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return readers[fmt](path)


# ---------------------------------------------------------------- writing


TUM_HEADER = "# timestamp tx ty tz qx qy qz qw"


def pose_to_tum(pose: np.ndarray) -> np.ndarray:
    """(4, 4) camera-to-world -> (7,) ``tx ty tz qx qy qz qw`` (rotation projected onto SO(3), qw >= 0)."""
    pose = np.asarray(pose, np.float64)
    return np.concatenate([pose[:3, 3], rotation_to_quaternion(pose[:3, :3])])


def tum_to_pose(row: np.ndarray) -> np.ndarray:
    """(7,) ``tx ty tz qx qy qz qw`` -> (4, 4) camera-to-world."""
    row = np.asarray(row, np.float64)
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation(row[3:7])
    T[:3, 3] = row[:3]
    return T


def _num(x: float) -> str:
    return repr(float(x))


def tum_line(timestamp: float, row: np.ndarray, digits: tuple[int, int] | None = None) -> str:
    """One TUM line ``t tx ty tz qx qy qz qw`` from a timestamp and a (7,) :func:`pose_to_tum` row.

    ``digits``: None writes every number in its shortest round-trip decimal form;
    ``(d_t, d_v)`` writes the timestamp with ``d_t`` decimals and the pose values
    with ``d_v`` significant digits.
    """
    if digits is None:
        return " ".join(_num(v) for v in (timestamp, *row))
    d_t, d_v = digits
    return f"{float(timestamp):.{d_t}f} " + " ".join(f"{float(v):.{d_v}g}" for v in row)


def format_tum(traj: Trajectory, header: str = TUM_HEADER, digits: tuple[int, int] | None = None) -> str:
    """Text of a TUM file: the ``header`` comment line, then one :func:`tum_line` per pose."""
    rows = np.concatenate([traj.positions, traj.quaternions_xyzw()], axis=1)
    return "\n".join([header, *(tum_line(t, r, digits) for t, r in zip(traj.timestamps, rows))]) + "\n"


def write_tum(path: str | os.PathLike, traj: Trajectory, header: str = TUM_HEADER,
              digits: tuple[int, int] | None = None) -> None:
    """Write ``traj`` as a TUM file (see :func:`format_tum`; default: shortest round-trip decimals)."""
    if not header.startswith("#"):
        raise ValueError(f"header must be a comment line starting with '#', got {header!r}")
    atomic_write_text(path, format_tum(traj, header, digits))


def write_kitti(path: str | os.PathLike, traj: Trajectory) -> None:
    """Write ``traj`` as a KITTI file (timestamps are dropped)."""
    lines = [" ".join(_num(v) for v in pose[:3, :].reshape(-1)) for pose in traj.poses]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def write_euroc(path: str | os.PathLike, traj: Trajectory) -> None:
    """Write ``traj`` as an EuRoC CSV; timestamps are rounded to integer nanoseconds."""
    q = traj.quaternions_xyzw()
    lines = ["#timestamp [ns], p_x [m], p_y [m], p_z [m], q_w [], q_x [], q_y [], q_z []"]
    for t, pos, (qx, qy, qz, qw) in zip(traj.timestamps, traj.positions, q):
        ns = int(round(float(t) * 1e9))
        lines.append(",".join([str(ns)] + [_num(v) for v in (*pos, qw, qx, qy, qz)]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_trajectory(path: str | os.PathLike, traj: Trajectory, fmt: TrajectoryFormat = "tum") -> None:
    """Write ``traj`` to ``path`` in format ``fmt``."""
    writers = {"tum": write_tum, "kitti": write_kitti, "euroc": write_euroc}
    if fmt not in writers:
        raise TTT3RError(f"unknown trajectory format {fmt!r}; choose one of {', '.join(FORMATS)}")
    writers[fmt](path, traj)
