"""Trajectory files (TUM, KITTI, EuRoC) and timestamp association.

A :class:`Trajectory` holds ``timestamps`` (N,) float64 seconds and ``poses``
(N, 4, 4) float64 camera-to-world matrices. Formats:

* TUM: one pose a line, ``t tx ty tz qx qy qz qw`` separated by spaces; lines
  starting with ``#`` and blank lines are ignored.
* KITTI: one pose a line, the 12 numbers of the 3x4 ``[R | t]`` row-major; no
  timestamps (frame index ``0, 1, 2, ...`` is used as the timestamp).
* EuRoC: CSV ``#timestamp [ns], p_x, p_y, p_z, q_w, q_x, q_y, q_z[, ...]``;
  timestamps are integer nanoseconds in the file and seconds in memory.

Malformed files raise :class:`ttt3r.errors.TTT3RError` naming the file and line.
Writes are atomic.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import TTT3RError
from ..io.atomic import atomic_write_text

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
        if len(quat):
            poses[:, :3, :3] = Rotation.from_quat(quat).as_matrix()
        poses[:, :3, 3] = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        return Trajectory(timestamps, poses)

    def quaternions_xyzw(self) -> np.ndarray:
        """(N, 4) unit quaternions ``(qx, qy, qz, qw)`` of the rotations, ``qw >= 0``."""
        if len(self) == 0:
            return np.zeros((0, 4))
        q = Rotation.from_matrix(self.poses[:, :3, :3]).as_quat()
        q[q[:, 3] < 0] *= -1.0
        return q


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


def _num(x: float) -> str:
    return repr(float(x))


def write_tum(path: str | os.PathLike, traj: Trajectory) -> None:
    """Write ``traj`` as a TUM file (shortest round-trip decimal representation)."""
    q = traj.quaternions_xyzw()
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for t, pos, quat in zip(traj.timestamps, traj.positions, q):
        lines.append(" ".join(_num(v) for v in (t, *pos, *quat)))
    atomic_write_text(path, "\n".join(lines) + "\n")


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


# ---------------------------------------------------------------- association


def matching_time_indices(
    stamps_1: np.ndarray, stamps_2: np.ndarray, max_diff: float = 0.01, offset_2: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i1, i2)`` pairing each stamp of ``stamps_1`` with its nearest in ``stamps_2 + offset_2``.

    Stamps of ``stamps_1`` with no partner within ``max_diff`` seconds are
    dropped; an index of ``stamps_2`` may be used more than once. On a tie the
    earlier stamp of ``stamps_2`` wins.
    """
    s1 = np.asarray(stamps_1, dtype=np.float64)
    s2 = np.asarray(stamps_2, dtype=np.float64) + offset_2
    if len(s1) == 0 or len(s2) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    if np.all(np.diff(s2) >= 0):
        in_range = (s1 >= s2[0] - max_diff) & (s1 <= s2[-1] + max_diff)
        idx = np.minimum(np.searchsorted(s2, s1, side="right"), len(s2) - 1)
        diff_ub = s2[idx] - s1
        diff_lb = np.where(idx > 0, s1 - s2[np.maximum(idx - 1, 0)], np.inf)
        take_ub = (diff_ub <= max_diff) & (diff_ub < diff_lb)
        take_lb = ~take_ub & (diff_lb <= max_diff) & (diff_lb <= diff_ub)
        keep = in_range & (take_ub | take_lb)
        best = np.where(take_ub, idx, idx - 1)
        return np.flatnonzero(keep), best[keep].astype(int)
    diffs = np.abs(s2[None, :] - s1[:, None])
    best = np.argmin(diffs, axis=1)
    keep = diffs[np.arange(len(s1)), best] <= max_diff
    return np.flatnonzero(keep), best[keep].astype(int)


def associate(
    traj_1: Trajectory, traj_2: Trajectory, max_diff: float = 0.01, offset_2: float = 0.0
) -> tuple[Trajectory, Trajectory]:
    """Pair poses of two trajectories by nearest timestamp (as evo's ``associate_trajectories``).

    Every pose of the shorter trajectory is matched to the nearest pose of the
    longer one within ``max_diff`` seconds (``offset_2`` is added to the times of
    ``traj_2``); unmatched poses are dropped. Returns ``(traj_1', traj_2')`` of
    equal length, in the order of the shorter trajectory.

    Raises:
        TTT3RError: no pair of timestamps is within ``max_diff``.
    """
    second_longer = len(traj_2) > len(traj_1)
    short, long_ = (traj_1, traj_2) if second_longer else (traj_2, traj_1)
    i_short, i_long = matching_time_indices(
        short.timestamps, long_.timestamps, max_diff, offset_2 if second_longer else -offset_2
    )
    if len(i_short) == 0:
        raise TTT3RError(
            f"no matching timestamps between the trajectories (max difference {max_diff} s, offset {offset_2} s)"
        )
    a, b = short.subset(i_short), long_.subset(i_long)
    return (a, b) if second_longer else (b, a)
