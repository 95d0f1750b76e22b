"""Point-cloud reconstruction metrics: accuracy, completeness, normal consistency; ICP.

Point clouds are ``(N, 3)`` float arrays in one world frame and unit (metres for
7-Scenes and NRGBD); normals are ``(N, 3)`` unit vectors (sign ignored).

Protocol of the TTT3R paper (as in Spann3R / CUT3R):

1. The predicted cloud is registered to the ground truth with point-to-point
   ICP from the identity, with a maximum correspondence distance of 0.1 m and
   at most 30 iterations (:func:`icp_point_to_point`).
2. Normals are estimated for both clouds by PCA over the 30 nearest neighbours
   (:func:`estimate_normals`) unless given.
3. Accuracy: distance from each predicted point to its nearest ground-truth
   point (mean and median). Completeness: distance from each ground-truth point
   to its nearest predicted point (mean and median). Normal consistency:
   ``|n_pred . n_gt|`` over the same nearest-neighbour pairs, for both
   directions; ``nc`` is the mean of the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..errors import TTT3RError
from ..geometry import umeyama


def _points(x: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(x, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise TTT3RError(f"{name} must be an (N, 3) array, got shape {p.shape}")
    if len(p) == 0:
        raise TTT3RError(f"{name} is empty")
    if not np.isfinite(p).all():
        raise TTT3RError(f"{name} contains non-finite coordinates")
    return p


def nearest_neighbors(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (M, 3) ``query`` point: distance to and index of its nearest (N, 3) ``reference`` point."""
    d, i = cKDTree(reference).query(query, k=1, workers=-1)
    return np.asarray(d, dtype=np.float64), np.asarray(i, dtype=int)


def estimate_normals(points: np.ndarray, k: int = 30) -> np.ndarray:
    """Unoriented unit normals (N, 3) by PCA of each point's ``k`` nearest neighbours (itself included)."""
    p = _points(points, "points")
    k = int(min(k, len(p)))
    if k < 3:
        raise TTT3RError(f"need at least 3 points to estimate normals, got {len(p)}")
    _, idx = cKDTree(p).query(p, k=k, workers=-1)
    nb = p[idx]  # (N, k, 3)
    centred = nb - nb.mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", centred, centred) / k
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues
    return vecs[:, :, 0]


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class IcpResult:
    """Result of :func:`icp_point_to_point`.

    Attributes:
        transform: (4, 4) rigid transform mapping the source onto the target.
        fitness: fraction of source points with a correspondence within the threshold.
        inlier_rmse: RMSE of those correspondences' distances.
        iterations: number of transform updates performed.
    """

    transform: np.ndarray
    fitness: float
    inlier_rmse: float
    iterations: int


def _correspond(tree: cKDTree, src: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    d, j = tree.query(src, k=1, distance_upper_bound=max_distance, workers=-1)
    inl = np.isfinite(d)
    n = int(inl.sum())
    fitness = n / len(src)
    rmse = float(np.sqrt(np.mean(d[inl] ** 2))) if n else 0.0
    return np.flatnonzero(inl), j[inl], fitness, rmse


def icp_point_to_point(
    source: np.ndarray,
    target: np.ndarray,
    max_distance: float,
    init: np.ndarray | None = None,
    max_iterations: int = 30,
    relative_fitness: float = 1e-6,
    relative_rmse: float = 1e-6,
) -> IcpResult:
    """Rigidly register (N, 3) ``source`` to (M, 3) ``target`` by point-to-point ICP.

    Each iteration pairs every transformed source point with its nearest target
    point within ``max_distance`` and solves the rigid least-squares fit
    (Umeyama without scale) on the pairs. Stops after ``max_iterations`` or when
    both fitness and inlier RMSE change less than the relative tolerances.
    """
    src0 = _points(source, "source points")
    tgt = _points(target, "target points")
    T = np.eye(4) if init is None else np.asarray(init, dtype=np.float64).copy()
    tree = cKDTree(tgt)
    src = src0 @ T[:3, :3].T + T[:3, 3]
    si, ti, fitness, rmse = _correspond(tree, src, max_distance)
    it = 0
    for it in range(1, max_iterations + 1):
        if len(si) < 3:
            it -= 1
            break
        sim = umeyama(src[si], tgt[ti], with_scale=False)
        step = np.eye(4)
        step[:3, :3], step[:3, 3] = sim.R, sim.t
        T = step @ T
        src = src0 @ T[:3, :3].T + T[:3, 3]
        prev_f, prev_r = fitness, rmse
        si, ti, fitness, rmse = _correspond(tree, src, max_distance)
        if abs(prev_f - fitness) < relative_fitness and abs(prev_r - rmse) < relative_rmse:
            break
    return IcpResult(T, fitness, rmse, it)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ReconMetrics:
    """Reconstruction quality of a predicted point cloud against ground truth.

    Distances are in the clouds' unit; normal consistencies are in [0, 1].
    ``nc_pred`` pairs each predicted point with its nearest ground-truth point
    (the paper's NC1), ``nc_gt`` the reverse (NC2); ``nc`` is their mean.
    ``icp_transform`` is the (4, 4) registration applied to the prediction.
    """

    accuracy: float
    accuracy_median: float
    completeness: float
    completeness_median: float
    nc_pred: float
    nc_pred_median: float
    nc_gt: float
    nc_gt_median: float
    nc: float
    nc_median: float
    icp_transform: np.ndarray

    def to_dict(self) -> dict:
        d = asdict(self)
        d["icp_transform"] = self.icp_transform.tolist()
        return d


def reconstruction_metrics(
    pred_points: np.ndarray,
    gt_points: np.ndarray,
    pred_normals: np.ndarray | None = None,
    gt_normals: np.ndarray | None = None,
    icp_threshold: float | None = 0.1,
    normal_k: int = 30,
) -> ReconMetrics:
    """Accuracy, completeness and normal consistency of ``pred_points`` against ``gt_points``.

    Args:
        pred_points: (N, 3) predicted cloud.
        gt_points: (M, 3) ground-truth cloud, same frame and unit.
        pred_normals, gt_normals: optional (N, 3) / (M, 3) normals; estimated by
            PCA of ``normal_k`` neighbours when missing. Given predicted normals
            are rotated with the ICP transform.
        icp_threshold: ICP maximum correspondence distance; None skips ICP.
    """
    pred = _points(pred_points, "predicted points")
    gt = _points(gt_points, "ground-truth points")
    T = np.eye(4)
    if icp_threshold is not None:
        T = icp_point_to_point(pred, gt, icp_threshold).transform
        pred = pred @ T[:3, :3].T + T[:3, 3]
    if pred_normals is None:
        n_pred = estimate_normals(pred, normal_k)
    else:
        n_pred = _normals(pred_normals, len(pred), "predicted normals") @ T[:3, :3].T
    n_gt = estimate_normals(gt, normal_k) if gt_normals is None else _normals(gt_normals, len(gt), "ground-truth normals")

    d_acc, i_acc = nearest_neighbors(pred, gt)
    d_comp, i_comp = nearest_neighbors(gt, pred)
    nc1 = np.abs(np.sum(n_gt[i_acc] * n_pred, axis=1))
    nc2 = np.abs(np.sum(n_gt * n_pred[i_comp], axis=1))
    return ReconMetrics(
        accuracy=float(d_acc.mean()),
        accuracy_median=float(np.median(d_acc)),
        completeness=float(d_comp.mean()),
        completeness_median=float(np.median(d_comp)),
        nc_pred=float(nc1.mean()),
        nc_pred_median=float(np.median(nc1)),
        nc_gt=float(nc2.mean()),
        nc_gt_median=float(np.median(nc2)),
        nc=float((nc1.mean() + nc2.mean()) / 2),
        nc_median=float((np.median(nc1) + np.median(nc2)) / 2),
        icp_transform=T,
    )


def _normals(n: np.ndarray, count: int, name: str) -> np.ndarray:
    a = np.asarray(n, dtype=np.float64)
    if a.shape != (count, 3):
        raise TTT3RError(f"{name} must have shape ({count}, 3), got {a.shape}")
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norm > 0, norm, 1.0)
