"""The Sim(3) pose graph: exact recovery from noiseless edges, a false loop rejected, drift halved."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ttt3r.errors import TTT3RError
from ttt3r.loops.pose_graph import PoseEdge, chain, optimize_pose_graph, sim3_inverse, sim3_matrix, sim3_split


def circle_nodes(n: int = 20, radius: float = 5.0, seed: int = 0) -> np.ndarray:
    """Chunk nodes around a circle, each with its own scale (as chunks of a feed-forward network)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = 2 * np.pi * k / n
        R = Rotation.from_euler("y", -a).as_matrix()  # facing along the circle
        t = radius * np.array([np.sin(a), 0.1 * np.cos(3 * a), np.cos(a)])
        out.append(sim3_matrix(float(np.exp(rng.uniform(-0.5, 0.5))), R, t))
    return np.stack(out)


def sequential(nodes: np.ndarray) -> list[np.ndarray]:
    return [sim3_inverse(nodes[k]) @ nodes[k + 1] for k in range(len(nodes) - 1)]


def drift(m: np.ndarray, scale: float = 1.03, deg: float = 2.0) -> np.ndarray:
    """A relative transform with scale and rotation drift added (as a chunk alignment that drifted)."""
    return m @ sim3_matrix(scale, Rotation.from_euler("xz", [deg, deg / 2], degrees=True).as_matrix(), np.zeros(3))


def gauge_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest entry of ``a_0^-1 a_i - b_0^-1 b_i`` (the poses compared in node 0's frame)."""
    ra = sim3_inverse(a[0]) @ a
    rb = sim3_inverse(b[0]) @ b
    return float(np.abs(ra - rb).max())


def test_sim3_helpers_roundtrip():
    m = sim3_matrix(2.5, Rotation.from_rotvec([0.3, -0.2, 0.1]).as_matrix(), [1.0, 2.0, 3.0])
    s, R, t = sim3_split(m)
    assert s == pytest.approx(2.5)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(sim3_inverse(m) @ m, np.eye(4), atol=1e-12)


def test_recovers_drifted_loop_exactly_from_noiseless_edges():
    truth = circle_nodes()
    rel = sequential(truth)
    edges = [PoseEdge(k, k + 1, m, kind="sequential") for k, m in enumerate(rel)]
    edges.append(PoseEdge(19, 0, sim3_inverse(truth[19]) @ truth[0]))
    initial = chain([drift(m) for m in rel], truth[0])  # accumulated scale and rotation drift
    assert gauge_error(initial, truth) > 1.0
    res = optimize_pose_graph(initial, edges)
    assert res.success and not res.rejected.any()
    assert gauge_error(res.nodes, truth) < 1e-6
    np.testing.assert_allclose(res.nodes, truth, atol=1e-6)  # node 0 is the gauge: equal to truth itself
    assert res.chi2.max() < 1e-8


def test_false_loop_is_rejected_and_leaves_the_map_unchanged():
    truth = circle_nodes(seed=1)
    rel = sequential(truth)
    initial = chain([drift(m, 1.02, 1.0) for m in rel], truth[0])
    edges = [PoseEdge(k, k + 1, m, kind="sequential") for k, m in enumerate(rel)]
    edges.append(PoseEdge(19, 0, sim3_inverse(truth[19]) @ truth[0]))
    edges.append(PoseEdge(12, 2, sim3_inverse(truth[12]) @ truth[2]))
    false = PoseEdge(9, 4, sim3_matrix(1.0, np.eye(3), [0.0, 0.0, 0.5]))  # 9 and 4 are 90 degrees and 7 m apart
    without = optimize_pose_graph(initial, edges)
    assert not without.rejected.any()
    with_false = optimize_pose_graph(initial, [*edges, false])
    assert with_false.rejected.tolist() == [False] * len(edges) + [True]
    assert with_false.chi2[-1] > 1e3
    assert gauge_error(with_false.nodes, without.nodes) < 1e-6
    assert gauge_error(without.nodes, truth) < 1e-6


def test_loop_edge_halves_the_drift_of_drifted_sequential_edges():
    truth = circle_nodes(seed=2)
    rel = [drift(m, 1.01, 0.5) for m in sequential(truth)]  # the sequential measurements themselves drift
    edges = [PoseEdge(k, k + 1, m, kind="sequential") for k, m in enumerate(rel)]
    loop = PoseEdge(19, 0, sim3_inverse(truth[19]) @ truth[0])
    initial = chain(rel, truth[0])

    def ate(nodes):
        return float(np.sqrt(np.mean(np.sum((nodes[:, :3, 3] - truth[:, :3, 3]) ** 2, axis=1))))

    res = optimize_pose_graph(initial, [*edges, loop])
    assert not res.rejected.any()
    assert ate(res.nodes) < 0.5 * ate(initial)


def test_bad_graphs_get_one_line_errors():
    nodes = circle_nodes(4)
    rel = sequential(nodes)
    with pytest.raises(TTT3RError, match="node 3 is not connected"):
        optimize_pose_graph(nodes, [PoseEdge(0, 1, rel[0], kind="sequential"), PoseEdge(1, 2, rel[1])])
    with pytest.raises(TTT3RError, match="edge 0: nodes \\(0, 7\\)"):
        optimize_pose_graph(nodes, [PoseEdge(0, 7, rel[0])])
    with pytest.raises(TTT3RError, match="weight must be > 0"):
        optimize_pose_graph(nodes, [PoseEdge(0, 1, rel[0], weight=0.0)])


def test_edgewise_jacobian_equals_generic_finite_differences():
    """The solver's edge-by-edge Jacobian is the Jacobian scipy's own sparse finite differences give."""
    from scipy.optimize._numdiff import approx_derivative

    from ttt3r.loops.pose_graph import _nodes_to_params, _Problem

    rng = np.random.default_rng(3)
    n = 7
    nodes = np.stack([sim3_matrix(np.exp(rng.normal(0, 0.2)), Rotation.from_rotvec(rng.normal(0, 0.5, 3)).as_matrix(),
                                  rng.normal(0, 2, 3)) for _ in range(n)])
    pairs = [(c, c + 1) for c in range(n - 1)] + [(0, 4), (2, 6), (1, 5), (5, 1)]
    edges = [PoseEdge(i, j, sim3_matrix(np.exp(rng.normal(0, 0.1)), Rotation.from_rotvec(rng.normal(0, 0.3, 3))
                                        .as_matrix(), rng.normal(0, 1, 3)), float(rng.uniform(0.5, 2)),
                      "sequential" if j == i + 1 else "loop") for i, j in pairs]
    x0 = _nodes_to_params(nodes)
    prob = _Problem(n, edges, x0[0], np.array([0.05, 0.05, 0.05, 0.05, 0.3, 0.3, 0.3]))
    active = np.ones(len(edges), bool)
    active[7] = False  # a left-out edge has no rows
    x = x0[1:].ravel()
    got = prob.jacobian(x, active).toarray()
    want = approx_derivative(lambda v: prob.residuals(v, active), x, method="3-point")
    assert got.shape == want.shape == (7 * active.sum(), 7 * (n - 1))
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())
    assert np.count_nonzero(got[:7, :7]) == 19 and np.all(got[:7, 7:] == 0)  # edge (0, 1): node 1 only; 1 + 9 + 9 (its t error does not depend on its s, R)
    assert np.all(got[7 * 3:7 * 4, :7] == 0)  # edge (3, 4) does not touch node 1
