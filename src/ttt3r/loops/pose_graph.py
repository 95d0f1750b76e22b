"""A Sim(3) pose graph over chunk nodes, solved by ``scipy.optimize.least_squares``.

Nodes are similarity transforms ``T_i`` from node ``i``'s frame (a chunk's own
frame, in its own unit) to the world, stored as (4, 4) matrices
``[[s R, t], [0, 1]]`` (``x_world = s R x_i + t``). An edge ``(i, j, M)`` says
``T_i^-1 T_j ~= M``: node ``j``'s frame expressed in node ``i``'s. Sequential
edges join consecutive chunks (their overlap alignment), loop edges join
chunks that see the same place.

The error of an edge is ``E = M^-1 T_i^-1 T_j`` (identity when the edge is met),
written as 7 numbers ``(log s_E, rotvec(R_E), t_E)`` and whitened by
``sigma_scale`` (log units), ``sigma_rot`` (radians) and ``sigma_trans`` times a
characteristic length (the median length of the sequential edges' translations
in the destination node's unit, so the setting is unitless), times
``sqrt(weight)`` of the edge. Its ``chi2`` is the squared norm of the whitened
error (about 7 for an edge that is met within its sigmas).

Solver: each node is 7 parameters ``(log s, rotation vector, translation)``;
node 0 is held at its initial value (the gauge: world = first chunk). The
Jacobian is sparse (an edge touches two nodes): it is built edge by edge,
14 vectorised evaluations of all the edges per Jacobian (``_Problem.jacobian``),
and given to ``least_squares`` as a sparse matrix, so a solve costs O(edges).

Robustness, in two steps. (1) Rejection: the graph is solved in plain least
squares (a loop must be able to pull a drifted map back, which a robust kernel
started far from the solution does not let it do); then the loop edge with the
largest ``chi2`` above ``chi2_reject`` is rejected and the graph solved again
without it, until every remaining loop edge fits. One false loop costs one
extra solve and leaves the map as if it had never been there. Sequential
edges are never rejected. (2) A robust polish: one more solve from there with
``least_squares``' robust ``loss`` (``soft_l1``, a smooth Huber, by default; it
acts on each whitened component, in sigmas, with ``f_scale``), which
down-weights an edge that misfits by less than the rejection threshold. (The
polish is capped at ``polish_nfev`` evaluations: scipy's ``huber`` and
``cauchy`` can take thousands here, ``soft_l1`` converges in a few.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import TTT3RError

__all__ = ["PoseEdge", "PoseGraphResult", "optimize_pose_graph", "sim3_inverse", "sim3_matrix", "sim3_split"]

EdgeKind = Literal["sequential", "loop"]
Loss = Literal["linear", "huber", "soft_l1", "cauchy", "arctan"]


# ------------------------------------------------------------------ Sim(3) matrices


def sim3_matrix(s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(4, 4) ``[[s R, t], [0, 1]]`` from a scale, a (3, 3) rotation and a (3,) translation."""
    m = np.eye(4)
    m[:3, :3] = float(s) * np.asarray(R, np.float64)
    m[:3, 3] = np.asarray(t, np.float64)
    return m


def sim3_split(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 4, 4) Sim(3) matrices -> scales (...,), rotations (..., 3, 3), translations (..., 3)."""
    m = np.asarray(m, np.float64)
    if m.shape[-2:] != (4, 4):
        raise ValueError(f"Sim(3) matrices must be (..., 4, 4), got {m.shape}")
    det = np.linalg.det(m[..., :3, :3])
    if np.any(det <= 0):
        raise ValueError("Sim(3) matrices need a positive determinant (s > 0, det R = +1)")
    s = np.cbrt(det)
    return s, m[..., :3, :3] / s[..., None, None], m[..., :3, 3].copy()


def sim3_inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of (..., 4, 4) Sim(3) matrices: ``(1/s, R^T, -R^T t / s)``."""
    s, R, t = sim3_split(m)
    out = np.zeros(np.shape(m))
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt / s[..., None, None]
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t) / s[..., None]
    out[..., 3, 3] = 1.0
    return out


# ------------------------------------------------------------------ graph


@dataclass(frozen=True, eq=False)
class PoseEdge:
    """One constraint ``T_i^-1 T_j ~= measurement``.

    Attributes:
        i, j: node numbers (``i != j``).
        measurement: (4, 4) Sim(3) matrix, node ``j``'s frame in node ``i``'s.
        weight: information multiplier (> 0): the edge counts as ``weight`` edges
            (e.g. a verification confidence).
        kind: ``sequential`` (never rejected) or ``loop``.
    """

    i: int
    j: int
    measurement: np.ndarray
    weight: float = 1.0
    kind: EdgeKind = "loop"


@dataclass
class PoseGraphResult:
    """What :func:`optimize_pose_graph` found.

    Attributes:
        nodes: (N, 4, 4) optimised node-to-world Sim(3) matrices (node 0 unchanged).
        chi2: (E,) each edge's whitened squared error at the solution (edges in
            the order given; a rejected edge is evaluated but did not count).
        rejected: (E,) bool, loop edges left out because they did not fit.
        cost: final value of the robust cost (``least_squares``' ``cost``).
        solves: how many times the graph was solved.
        success: the last solve converged.
        length: the characteristic length the translation errors were divided by
            (in the destination node's unit).
    """

    nodes: np.ndarray
    chi2: np.ndarray
    rejected: np.ndarray
    cost: float
    solves: int
    success: bool
    length: float
    edges: list[PoseEdge] = field(default_factory=list)

    def corrections(self, initial: np.ndarray) -> np.ndarray:
        """(N, 4, 4) world-to-world Sim(3) ``T_new T_old^-1`` of each node: applied on the left
        of anything expressed in the old world through node ``i`` it gives the new world."""
        return self.nodes @ sim3_inverse(initial)


def _params_to_nodes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from scipy.spatial.transform import Rotation

    p = x.reshape(-1, 7)
    return np.exp(p[:, 0]), Rotation.from_rotvec(p[:, 1:4]).as_matrix(), p[:, 4:7]


def _nodes_to_params(nodes: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    s, R, t = sim3_split(nodes)
    return np.concatenate([np.log(s)[:, None], Rotation.from_matrix(R).as_rotvec(), t], axis=1)


class _Problem:
    """The whitened edge errors as a function of the free nodes' parameters."""

    def __init__(self, n: int, edges: list[PoseEdge], fixed: np.ndarray, sig: np.ndarray) -> None:
        self.n = n
        self.fixed = fixed  # (7,) parameters of node 0
        self.ii = np.array([e.i for e in edges], np.int64)
        self.jj = np.array([e.j for e in edges], np.int64)
        ms, mR, mt = sim3_split(np.stack([e.measurement for e in edges]))
        self.m_s, self.m_Rt, self.m_t = ms, np.swapaxes(mR, 1, 2), mt
        w = np.sqrt(np.array([e.weight for e in edges], np.float64))
        self.scale = w[:, None] / sig[None, :]  # (E, 7)

    def _params(self, x_free: np.ndarray) -> np.ndarray:
        return np.concatenate([self.fixed, x_free]).reshape(-1, 7)

    def edge_errors(self, pi: np.ndarray, pj: np.ndarray, sel=slice(None)) -> np.ndarray:
        """(E, 7) unwhitened errors ``(log s_E, rotvec R_E, t_E)`` of the edges ``sel`` (a mask or
        slice of all edges) from their two end nodes' (E, 7) parameters."""
        from scipy.spatial.transform import Rotation

        s_i, R_i, t_i = np.exp(pi[:, 0]), Rotation.from_rotvec(pi[:, 1:4]).as_matrix(), pi[:, 4:7]
        s_j, R_j, t_j = np.exp(pj[:, 0]), Rotation.from_rotvec(pj[:, 1:4]).as_matrix(), pj[:, 4:7]
        Ri_t = np.swapaxes(R_i, 1, 2)
        s_ij = s_j / s_i
        R_ij = Ri_t @ R_j
        t_ij = np.einsum("eab,eb->ea", Ri_t, t_j - t_i) / s_i[:, None]
        m_s, m_Rt, m_t = self.m_s[sel], self.m_Rt[sel], self.m_t[sel]
        s_e = s_ij / m_s
        R_e = m_Rt @ R_ij
        t_e = np.einsum("eab,eb->ea", m_Rt, t_ij - m_t) / m_s[:, None]
        return np.concatenate([np.log(s_e)[:, None], Rotation.from_matrix(R_e).as_rotvec(), t_e], axis=1)

    def errors(self, x_free: np.ndarray) -> np.ndarray:
        """(E, 7) unwhitened errors ``(log s_E, rotvec R_E, t_E)``."""
        p = self._params(x_free)
        return self.edge_errors(p[self.ii], p[self.jj])

    def residuals(self, x_free: np.ndarray, active: np.ndarray) -> np.ndarray:
        return (self.errors(x_free) * self.scale)[active].ravel()

    def jacobian(self, x_free: np.ndarray, active: np.ndarray):
        """The sparse Jacobian of :meth:`residuals` by forward differences, edge by edge.

        An edge's error depends on its two end nodes only, so the derivative by one
        parameter of every edge's first (or second) node is one vectorised evaluation
        of all edges: 14 evaluations whatever the graph's size (the generic sparse
        finite differences need one per colour of the sparsity, and their bookkeeping).
        """
        from scipy.sparse import csr_matrix

        p = self._params(x_free)
        ii, jj = self.ii[active], self.jj[active]
        pi, pj = p[ii], p[jj]
        w = self.scale[active]
        base = self.edge_errors(pi, pj, active)
        e = len(ii)
        rows, cols, vals = [], [], []
        r_idx = (7 * np.arange(e))[:, None] + np.arange(7)[None, :]  # (E, 7) residual rows
        for end, nodes in ((0, ii), (1, jj)):
            free = nodes > 0
            for k in range(7):
                h = 1.4901161193847656e-08 * max(1.0, float(np.abs(p[:, k]).max()))  # sqrt(eps) scaled
                qi, qj = pi.copy(), pj.copy()
                (qi if end == 0 else qj)[:, k] += h
                d = (self.edge_errors(qi, qj, active) - base) / h * w  # (E, 7) derivative of each edge's residuals
                rows.append(r_idx[free].ravel())
                cols.append(np.repeat(7 * (nodes[free] - 1) + k, 7))
                vals.append(d[free].ravel())
        return csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(7 * e, 7 * (self.n - 1)))


def _check_edges(n: int, edges: list[PoseEdge]) -> None:
    for k, e in enumerate(edges):
        if not (0 <= e.i < n and 0 <= e.j < n) or e.i == e.j:
            raise TTT3RError(f"pose graph edge {k}: nodes ({e.i}, {e.j}) must be two different nodes in [0, {n})")
        if np.shape(e.measurement) != (4, 4) or not np.all(np.isfinite(e.measurement)):
            raise TTT3RError(f"pose graph edge {k}: measurement must be a finite 4x4 Sim(3) matrix")
        if not e.weight > 0:
            raise TTT3RError(f"pose graph edge {k}: weight must be > 0, got {e.weight}")
        if e.kind not in ("sequential", "loop"):
            raise TTT3RError(f"pose graph edge {k}: kind must be 'sequential' or 'loop', got {e.kind!r}")


def chain(measurements: list[np.ndarray], first: np.ndarray | None = None) -> np.ndarray:
    """(N + 1, 4, 4) nodes from composing N sequential relative Sim(3) ``T_i^-1 T_{i+1}``
    (starting at ``first``, default identity): the estimate before any loop is closed."""
    out = [np.eye(4) if first is None else np.asarray(first, np.float64)]
    for m in measurements:
        out.append(out[-1] @ np.asarray(m, np.float64))
    return np.stack(out)


def optimize_pose_graph(
    initial: np.ndarray,
    edges: list[PoseEdge],
    *,
    sigma_rot: float = 0.05,
    sigma_scale: float = 0.05,
    sigma_trans: float = 0.05,
    loss: Loss = "soft_l1",
    f_scale: float = 3.0,
    chi2_reject: float = 24.3,
    max_rejections: int | None = None,
    max_nfev: int | None = None,
    length: float | None = None,
    polish_nfev: int = 100,
) -> PoseGraphResult:
    """Optimise the node transforms of a Sim(3) pose graph (see the module doc).

    Args:
        initial: (N, 4, 4) node-to-world Sim(3) matrices to start from (e.g. the
            chunk alignments, :func:`chain`); node 0 stays where it is.
        edges: the constraints; at least one, and they must connect every node.
        sigma_rot: rotation error of one edge at one sigma, radians.
        sigma_scale: log-scale error at one sigma.
        sigma_trans: translation error at one sigma, relative to the graph's
            characteristic length (see :attr:`PoseGraphResult.length`).
        loss: ``least_squares``' robust loss on each whitened component.
        f_scale: where the loss turns robust, in sigmas.
        chi2_reject: a loop edge whose whitened squared error stays above this
            after a solve is rejected (default: the 99.9% point of a chi-square
            with 7 degrees of freedom). The sigmas should cover the error of a
            chunk alignment (drift), or true loops are rejected with the false.
        max_rejections: stop rejecting after this many (default: all loop edges).
        max_nfev: passed to ``least_squares`` (default: its own).
        polish_nfev: evaluations the robust polish may take at most.
        length: the unit of ``sigma_trans`` (default: the median translation of
            the sequential edges, in the destination node's unit: for chunks
            whose frame is their first camera, the distance a chunk travels).

    Returns:
        :class:`PoseGraphResult`.

    Raises:
        TTT3RError: malformed nodes or edges, or a node no edge reaches.
    """
    from scipy.optimize import least_squares

    nodes0 = np.array(initial, dtype=np.float64)
    if nodes0.ndim != 3 or nodes0.shape[1:] != (4, 4) or len(nodes0) < 1 or not np.all(np.isfinite(nodes0)):
        raise TTT3RError(f"pose graph: initial nodes must be a finite (N, 4, 4) array, got shape {nodes0.shape}")
    n = len(nodes0)
    edges = list(edges)
    _check_edges(n, edges)
    if n == 1:
        return PoseGraphResult(nodes0, np.zeros(len(edges)), np.zeros(len(edges), bool), 0.0, 0, True, 1.0, edges)
    if not edges:
        raise TTT3RError("pose graph: no edges")
    reach = {0}
    frontier = [0]
    nbrs: dict[int, list[int]] = {}
    for e in edges:
        nbrs.setdefault(e.i, []).append(e.j)
        nbrs.setdefault(e.j, []).append(e.i)
    while frontier:
        for b in nbrs.get(frontier.pop(), []):
            if b not in reach:
                reach.add(b)
                frontier.append(b)
    if len(reach) < n:
        missing = min(set(range(n)) - reach)
        raise TTT3RError(f"pose graph: node {missing} is not connected to node 0 by any edge")

    if length is None:
        seq = [e for e in edges if e.kind == "sequential"] or edges
        lengths = [np.linalg.norm(e.measurement[:3, 3]) / np.cbrt(np.linalg.det(e.measurement[:3, :3])) for e in seq]
        length = float(np.median(lengths)) if np.median(lengths) > 0 else 1.0
    elif not length > 0:
        raise TTT3RError(f"pose graph: length must be > 0, got {length}")
    sig = np.array([sigma_scale, sigma_rot, sigma_rot, sigma_rot, *([sigma_trans * length] * 3)], np.float64)

    x0 = _nodes_to_params(nodes0)
    prob = _Problem(n, edges, x0[0], sig)
    x = x0[1:].ravel()
    is_loop = np.array([e.kind == "loop" for e in edges])
    rejected = np.zeros(len(edges), bool)
    limit = int(is_loop.sum()) if max_rejections is None else int(max_rejections)
    solves = 0

    def solve(x, active, robust):
        nonlocal solves
        solves += 1
        return least_squares(prob.residuals, x, jac=prob.jacobian, method="trf", tr_solver="lsmr",
                             loss=loss if robust else "linear", f_scale=f_scale, x_scale="jac", args=(active,),
                             max_nfev=polish_nfev if robust else max_nfev)

    while True:  # least squares, then leave out the worst misfitting loop edge, until every loop fits
        sol = solve(x, ~rejected, robust=False)
        x = sol.x
        chi2 = np.sum((prob.errors(x) * prob.scale) ** 2, axis=1)
        bad = np.where(is_loop & ~rejected & (chi2 > chi2_reject))[0]
        if len(bad) == 0 or int(rejected.sum()) >= limit:
            break
        rejected[bad[np.argmax(chi2[bad])]] = True
    if loss != "linear":  # robust polish: down-weights what misfits below the rejection threshold
        with np.errstate(all="ignore"):
            polished = solve(x, ~rejected, robust=True)
            chi2_p = np.sum((prob.errors(polished.x) * prob.scale) ** 2, axis=1)
        if np.all(np.isfinite(chi2_p)) and np.all(np.isfinite(polished.x)):  # else keep the least-squares one
            sol, x, chi2 = polished, polished.x, chi2_p
    s, R, t = _params_to_nodes(np.concatenate([x0[0], x]))
    nodes = np.stack([sim3_matrix(s[k], R[k], t[k]) for k in range(n)])
    nodes[0] = nodes0[0]
    return PoseGraphResult(nodes, chi2, rejected, float(sol.cost), solves, bool(sol.success), length, edges)
