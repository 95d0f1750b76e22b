"""Timestamp association of two trajectories (as evo's ``associate_trajectories``).

Trajectory files and the :class:`~ttt3r.io.trajectory.Trajectory` type are in
:mod:`ttt3r.io.trajectory`; stamps are float64 seconds.
"""

from __future__ import annotations

import numpy as np

from ..errors import TTT3RError
from ..io.trajectory import Trajectory

__all__ = ["associate", "matching_time_indices"]



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
