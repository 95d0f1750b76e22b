"""Camera trajectory metrics: absolute trajectory error (ATE) and relative pose error (RPE).

Inputs are two ``(N, 4, 4)`` float arrays of camera-to-world poses whose rows
correspond (same frame ``i`` in both; associate timestamps first with
:func:`ttt3r.eval.trajectory.associate`). Translations are in the unit of the
reference trajectory (metres for the benchmarks); rotation errors are in degrees.

The definitions follow the TUM RGB-D benchmark as implemented by evo (the
evaluation protocol of the TTT3R paper):

* The estimate is first aligned to the reference with Umeyama on the positions
  (``sim3``, ``se3`` or ``none``, see :mod:`ttt3r.eval.align`).
* ATE: per-frame ``|| p_est_aligned_i - p_ref_i ||``.
* RPE: for each index pair ``(i, j)``, ``E = (Q_i^-1 Q_j)^-1 (P_i^-1 P_j)`` with
  ``Q`` reference and ``P`` aligned estimate; the translation error is ``|| t(E) ||``
  and the rotation error the angle of ``R(E)`` in degrees. Pairs are
  ``(i, i + delta)`` for every ``i`` (``all_pairs=True``) or the consecutive
  pairs of the subsampled sequence ``0, delta, 2 delta, ...`` (``all_pairs=False``).
  Only the scale of a ``sim3`` alignment changes RPE (a rigid motion of the whole
  trajectory cancels in relative poses).

Statistics are those of evo: rmse, mean, median, std (population), min, max, sse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import TTT3RError
from ..geometry import Sim3
from .align import AlignMode, align_trajectory


@dataclass(frozen=True)
class ErrorStats:
    """Summary statistics of a 1-D array of non-negative errors."""

    rmse: float
    mean: float
    median: float
    std: float
    min: float
    max: float
    sse: float
    count: int

    @staticmethod
    def from_errors(errors: np.ndarray) -> ErrorStats:
        e = np.asarray(errors, dtype=np.float64).reshape(-1)
        if e.size == 0:
            raise TTT3RError("cannot compute error statistics of an empty set of errors")
        sq = e**2
        return ErrorStats(
            rmse=float(np.sqrt(np.mean(sq))),
            mean=float(np.mean(e)),
            median=float(np.median(e)),
            std=float(np.std(e)),
            min=float(np.min(e)),
            max=float(np.max(e)),
            sse=float(np.sum(sq)),
            count=int(e.size),
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class PoseMetrics:
    """ATE and RPE of one estimated trajectory against its reference.

    Attributes:
        ate: absolute translation error after alignment (reference unit).
        rpe_trans: relative translation error (reference unit).
        rpe_rot: relative rotation error (degrees).
        alignment: the transform applied to the estimate.
        align: the alignment mode used.
        delta: the frame distance of RPE pairs.
        all_pairs: whether RPE used every pair ``(i, i + delta)``.
    """

    ate: ErrorStats
    rpe_trans: ErrorStats
    rpe_rot: ErrorStats
    alignment: Sim3
    align: str
    delta: int
    all_pairs: bool

    def to_dict(self) -> dict:
        """JSON-ready dict: statistics, alignment scale and settings."""
        return {
            "ate": self.ate.to_dict(),
            "rpe_trans": self.rpe_trans.to_dict(),
            "rpe_rot_deg": self.rpe_rot.to_dict(),
            "align": self.align,
            "scale": self.alignment.s,
            "delta": self.delta,
            "all_pairs": self.all_pairs,
            "num_poses": self.ate.count,
        }


def _check_pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    if ref.ndim != 3 or ref.shape[1:] != (4, 4) or ref.shape != est.shape:
        raise TTT3RError(
            f"reference and estimate must both be (N, 4, 4) pose arrays; got {ref.shape} and {est.shape}"
        )
    if ref.shape[0] == 0:
        raise TTT3RError("cannot evaluate an empty trajectory")
    if not (np.isfinite(ref).all() and np.isfinite(est).all()):
        raise TTT3RError("trajectories contain non-finite pose values")
    return ref, est


def pair_indices(n: int, delta: int = 1, all_pairs: bool = True) -> np.ndarray:
    """(M, 2) int index pairs ``(i, j)`` with ``j - i == delta`` used by RPE.

    ``all_pairs``: every ``i`` with ``i + delta < n``; otherwise consecutive
    entries of ``0, delta, 2 delta, ...``.
    """
    if delta < 1:
        raise TTT3RError(f"RPE delta must be a positive number of frames, got {delta}")
    if all_pairs:
        i = np.arange(0, max(n - delta, 0))
    else:
        ids = np.arange(0, n, delta)
        i = ids[:-1]
    return np.stack([i, i + delta], axis=1).astype(int)


def _inv_se3(p: np.ndarray) -> np.ndarray:
    out = np.zeros_like(p)
    rt = np.swapaxes(p[..., :3, :3], -1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -(rt @ p[..., :3, 3, None])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def absolute_trajectory_error(
    ref_poses: np.ndarray, est_poses: np.ndarray, align: AlignMode = "sim3"
) -> ErrorStats:
    """ATE statistics of (N, 4, 4) ``est_poses`` against ``ref_poses`` after ``align``."""
    ref, est = _check_pair(ref_poses, est_poses)
    aligned, _ = align_trajectory(est, ref, align)
    return ErrorStats.from_errors(np.linalg.norm(aligned[:, :3, 3] - ref[:, :3, 3], axis=1))


def relative_pose_errors(
    ref_poses: np.ndarray, est_poses: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair RPE: (M,) translation errors and (M,) rotation errors in degrees (no alignment)."""
    ref, est = _check_pair(ref_poses, est_poses)
    pairs = np.asarray(pairs, dtype=int).reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    q_rel = _inv_se3(ref[i]) @ ref[j]
    p_rel = _inv_se3(est[i]) @ est[j]
    e = _inv_se3(q_rel) @ p_rel
    trans = np.linalg.norm(e[:, :3, 3], axis=1)
    rot = np.degrees(Rotation.from_matrix(e[:, :3, :3]).magnitude()) if len(e) else np.zeros(0)
    return trans, np.abs(rot)


def relative_pose_error(
    ref_poses: np.ndarray,
    est_poses: np.ndarray,
    align: AlignMode = "sim3",
    delta: int = 1,
    all_pairs: bool = True,
) -> tuple[ErrorStats, ErrorStats]:
    """RPE statistics (translation, rotation in degrees) after ``align``."""
    ref, est = _check_pair(ref_poses, est_poses)
    aligned, _ = align_trajectory(est, ref, align)
    return _rpe_stats(ref, aligned, delta, all_pairs)


def _rpe_stats(ref: np.ndarray, aligned: np.ndarray, delta: int, all_pairs: bool) -> tuple[ErrorStats, ErrorStats]:
    pairs = pair_indices(len(ref), delta, all_pairs)
    if len(pairs) == 0:
        raise TTT3RError(f"RPE with delta={delta} needs more than {delta} poses; the trajectory has {len(ref)}")
    trans, rot = relative_pose_errors(ref, aligned, pairs)
    return ErrorStats.from_errors(trans), ErrorStats.from_errors(rot)


def pose_metrics(
    ref_poses: np.ndarray,
    est_poses: np.ndarray,
    align: AlignMode = "sim3",
    delta: int = 1,
    all_pairs: bool = True,
    valid: np.ndarray | None = None,
) -> PoseMetrics:
    """ATE, RPE-translation and RPE-rotation of ``est_poses`` against ``ref_poses``.

    Both are (N, 4, 4) camera-to-world with corresponding rows. Defaults are the
    TTT3R paper's protocol (Sim(3) alignment, ``delta = 1`` frame, all pairs).
    ``valid``: optional (N,) bool; frames with an unknown reference pose
    (e.g. ScanNet's ``-inf`` poses) are dropped from both before evaluation.
    """
    if valid is not None:
        keep = np.asarray(valid, dtype=bool)
        ref_a, est_a = np.asarray(ref_poses), np.asarray(est_poses)
        if keep.shape != (len(ref_a),) or len(est_a) != len(ref_a):
            raise TTT3RError(
                f"valid mask of shape {keep.shape} does not match {len(ref_a)} reference and {len(est_a)} estimated poses"
            )
        ref_poses, est_poses = ref_a[keep], est_a[keep]
    ref, est = _check_pair(ref_poses, est_poses)
    aligned, sim = align_trajectory(est, ref, align)
    ate = ErrorStats.from_errors(np.linalg.norm(aligned[:, :3, 3] - ref[:, :3, 3], axis=1))
    rpe_t, rpe_r = _rpe_stats(ref, aligned, delta, all_pairs)
    return PoseMetrics(ate, rpe_t, rpe_r, sim, align, int(delta), bool(all_pairs))
