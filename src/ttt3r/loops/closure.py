"""Loop closure over a chunked run: chunk nodes, sequential and loop edges, corrected frames.

The chunk nodes are the chunk-to-world Sim(3) transforms the chunk aligner
found (``run.json``'s chunk records): the transforms the frames were written
with. Consecutive chunks are joined by their alignment (``T_c^-1 T_{c+1}``,
exactly met before loops are added; ``A_c^-1 T_{c+1}`` when loop closure during
the run had moved chunk ``c`` to ``A_c`` before chunk ``c + 1`` was aligned to it,
``aligned_to`` in the chunk record). A verified
loop between frames ``i`` (chunk ``a``) and ``j`` (chunk ``b``) with measured
relative ``M`` (:class:`~ttt3r.loops.verify.PairMeasurement`) becomes the chunk
edge ``T_a^-1 T_b ~= (T_a^-1 P_i) M (P_j^-1 T_b)``, ``P`` the frames' poses as the
nodes place them (on a run folder the raw ones, ``pose_raw``: the chunk records
describe those); pairs inside one chunk are left out (a chunk is one rigid prediction).

After the graph is solved, every frame of chunk ``c`` is moved by that chunk's
correction ``C_c = T_c' T_c^-1``: its rigid pose becomes the rotation and
translation of ``C_c P``, and its depth (and camera points) scale by ``C_c``'s
scale, so depth, pose and world points stay consistent.

A run without chunks can use one node per frame (``chunk_of = arange(N)``,
``nodes = poses``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import TTT3RError
from .pose_graph import PoseEdge, PoseGraphResult, optimize_pose_graph, sim3_inverse, sim3_split
from .verify import VerifiedLoop

__all__ = ["LoopClosure", "close_loops"]


@dataclass
class LoopClosure:
    """The outcome of :func:`close_loops`.

    Attributes:
        poses: (N, 4, 4) corrected camera-to-world poses (rigid, OpenCV axes).
        depth_scales: (N,) factor each frame's depth is multiplied by.
        graph: the solved pose graph (sequential edges first, then loop edges).
        loops: the loops given, in order; ``edge_of[k]`` is the graph edge of
            ``loops[k]`` (-1: not used: rejected by verification, or inside one chunk).
        timings: wall seconds of the steps, filled by the caller that timed them
            (:func:`ttt3r.loops.refine.detect_and_close`: retrieval, verification, graph).
        measured: pairs measured for this closure (calls of ``measure``), filled by
            :func:`ttt3r.loops.refine.detect_and_close` (0 here).
    """

    poses: np.ndarray
    depth_scales: np.ndarray
    graph: PoseGraphResult | None
    loops: list[VerifiedLoop]
    edge_of: list[int]
    timings: dict = field(default_factory=dict)
    measured: int = 0

    def records(self) -> list[dict]:
        """One JSON record per loop, with its graph residual and whether the graph kept it."""
        out = []
        for loop, e in zip(self.loops, self.edge_of):
            r = loop.to_json()
            if e >= 0 and self.graph is not None:
                r["chi2"] = round(float(self.graph.chi2[e]), 5)
                r["rejected_by_graph"] = bool(self.graph.rejected[e])
            else:
                r["chi2"], r["rejected_by_graph"] = None, None
            out.append(r)
        return out


def close_loops(nodes: np.ndarray, chunk_of: np.ndarray, poses: np.ndarray, loops: Sequence[VerifiedLoop],
                sequential_weights: np.ndarray | None = None, aligned_to: Sequence[np.ndarray | None] | None = None,
                **graph_options) -> LoopClosure:
    """Solve the chunk pose graph with the accepted ``loops`` and correct every frame.

    Args:
        nodes: (C, 4, 4) chunk-to-world Sim(3) of the run (chunk 0 defines the world).
        chunk_of: (N,) chunk of each frame.
        poses: (N, 4, 4) camera-to-world poses of the frames as ``nodes`` placed them.
        loops: verified candidates (only ``accepted`` ones become edges).
        sequential_weights: (C - 1,) weights of the sequential edges (default 1).
        aligned_to: (C - 1,) for each chunk ``c + 1``, the (4, 4) transform of chunk ``c`` it was
            aligned to, or None: ``nodes[c]`` (the default for all).
        graph_options: passed to :func:`~ttt3r.loops.pose_graph.optimize_pose_graph`.
    """
    nodes = np.asarray(nodes, np.float64)
    poses = np.asarray(poses, np.float64)
    chunk_of = np.asarray(chunk_of, np.int64)
    n_chunks = len(nodes)
    if poses.shape != (len(chunk_of), 4, 4):
        raise TTT3RError(f"loop closure: {len(chunk_of)} chunk numbers for poses of shape {poses.shape}")
    if len(chunk_of) and (chunk_of.min() < 0 or chunk_of.max() >= n_chunks or np.any(np.diff(chunk_of) < 0)):
        raise TTT3RError(f"loop closure: chunk numbers must be non-decreasing in [0, {n_chunks})")
    w = np.ones(max(0, n_chunks - 1)) if sequential_weights is None else np.asarray(sequential_weights, float)
    prev = [None] * max(0, n_chunks - 1) if aligned_to is None else list(aligned_to)
    if len(prev) != max(0, n_chunks - 1):
        raise TTT3RError(f"loop closure: {len(prev)} aligned_to transforms for {n_chunks} chunks")
    edges = [PoseEdge(c, c + 1, sim3_inverse(nodes[c] if prev[c] is None else np.asarray(prev[c], np.float64))
                      @ nodes[c + 1], float(w[c]), "sequential")
             for c in range(n_chunks - 1)]
    edge_of = []
    for loop in loops:
        a, b = int(chunk_of[loop.i]), int(chunk_of[loop.j])
        if not loop.accepted or loop.relative is None or a == b:
            edge_of.append(-1)
            continue
        m = sim3_inverse(nodes[a]) @ poses[loop.i] @ loop.relative @ sim3_inverse(poses[loop.j]) @ nodes[b]
        edge_of.append(len(edges))
        edges.append(PoseEdge(a, b, m, max(float(loop.confidence), 1e-6), "loop"))
    if not any(e >= 0 for e in edge_of):
        return LoopClosure(poses.copy(), np.ones(len(poses)), None, list(loops), edge_of)
    graph = optimize_pose_graph(nodes, edges, **graph_options)
    if all(graph.rejected[e] for e in edge_of if e >= 0):  # every loop rejected: the sequential edges alone
        return LoopClosure(poses.copy(), np.ones(len(poses)), graph, list(loops), edge_of)  # met as they were
    corr = graph.corrections(nodes)[chunk_of] @ poses
    s, R, t = sim3_split(corr)
    new = np.tile(np.eye(4), (len(poses), 1, 1))
    new[:, :3, :3], new[:, :3, 3] = R, t
    return LoopClosure(new, s, graph, list(loops), edge_of)
