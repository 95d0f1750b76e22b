"""Verification and closing loops over chunks: a drifted two-lap circle is pulled back onto the truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from ttt3r.loops.closure import close_loops
from ttt3r.loops.pose_graph import sim3_inverse, sim3_matrix, sim3_split
from ttt3r.loops.retrieval import LoopCandidate
from ttt3r.loops.verify import PairMeasurement, VerifySettings, depth_ratio, pair_to_run_units, verify_candidates

LAP, CHUNK = 60, 10


def truth_poses(laps: int = 2) -> np.ndarray:
    out = []
    for k in range(laps * LAP):
        a = 2 * np.pi * k / LAP
        p = np.eye(4)
        p[:3, :3] = Rotation.from_euler("y", -a).as_matrix()
        p[:3, 3] = 4.0 * np.array([np.sin(a), 0.0, np.cos(a)])
        out.append(p)
    return np.stack(out)


def drifted_run(truth: np.ndarray, seed: int = 0):
    """What a chunked run gives: chunk c's frame is its first camera, in its own unit; each chunk's
    alignment is off by a little scale, rotation and translation, accumulating from chunk to chunk."""
    rng = np.random.default_rng(seed)
    n_chunks = len(truth) // CHUNK
    chunk_of = np.arange(len(truth)) // CHUNK
    true_nodes = np.stack([truth[c * CHUNK] @ sim3_matrix(np.exp(rng.uniform(-0.7, 0.7)), np.eye(3), np.zeros(3))
                           for c in range(n_chunks)])
    drift = sim3_matrix(1.02, Rotation.from_euler("xy", [1.0, 1.5], degrees=True).as_matrix(), [0.02, 0, 0])
    corr = [np.eye(4)]
    for _ in range(1, n_chunks):
        corr.append(corr[-1] @ drift)  # world-to-world error of each chunk
    corr = np.stack(corr)
    nodes = corr @ true_nodes
    sim = corr[chunk_of] @ truth
    s, R, t = sim3_split(sim)
    poses = np.tile(np.eye(4), (len(truth), 1, 1))
    poses[:, :3, :3], poses[:, :3, 3] = R, t
    return nodes, chunk_of, poses, s


def ate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((a[:, :3, 3] - b[:, :3, 3]) ** 2, axis=1))))


def test_verified_loops_pull_a_drifted_run_back():
    truth = truth_poses()
    nodes, chunk_of, poses, scales = drifted_run(truth)

    def measure(i, j):  # an exact two-frame prediction, in the run's units at each frame
        if (i, j) == (100, 5):  # a place that looks alike: the network takes it for the same view
            return PairMeasurement(np.eye(4), 0.9)
        rel = sim3_inverse(truth[i]) @ truth[j]
        return PairMeasurement(pair_to_run_units(rel, scales[i], scales[j]), 0.9)

    cands = [LoopCandidate(i, i - LAP, 0.9) for i in range(LAP, 2 * LAP, 5)]
    cands.append(LoopCandidate(100, 5, 0.95))  # another place, 150 degrees away
    loops = verify_candidates(cands, measure, poses, VerifySettings(max_rot_deg=40))
    assert [v.accepted for v in loops[:-1]] == [True] * (len(cands) - 1)
    wrong = loops[-1]
    assert not wrong.accepted and "rotation" in wrong.reason
    res = close_loops(nodes, chunk_of, poses, loops)
    assert not res.graph.rejected.any()
    before, after = ate(poses, truth), ate(res.poses, truth)
    assert after < 0.35 * before, (before, after)  # the drifted sequential edges keep part of the error
    # the depth scale undoes most of each frame's unit error (new x old scale -> truth's, 1)
    assert np.abs(np.log(res.depth_scales * scales)).mean() < 0.5 * np.abs(np.log(scales)).mean()
    recs = res.records()
    assert len(recs) == len(cands) and recs[-1]["chi2"] is None and recs[0]["chi2"] < 1.0


def test_low_confidence_and_missing_measurements_are_rejected():
    truth = truth_poses(1)
    cands = [LoopCandidate(50, 1, 0.9), LoopCandidate(40, 2, 0.9)]
    meas = {(50, 1): PairMeasurement(sim3_inverse(truth[50]) @ truth[1], 0.1)}
    loops = verify_candidates(cands, lambda i, j: meas.get((i, j)), truth)
    assert [v.accepted for v in loops] == [False, False]
    assert "confidence" in loops[0].reason and loops[1].reason == "no measurement"


def test_depth_ratio_and_units():
    rng = np.random.default_rng(0)
    pair = rng.uniform(1, 3, (8, 8))
    run = 2.5 * pair
    run[0, 0] = 1e6  # one outlier does not move the median
    assert depth_ratio(run, pair) == pytest.approx(2.5)
    rel = np.eye(4)
    rel[:3, 3] = [1.0, 0, 0]
    m = pair_to_run_units(rel, 2.0, 4.0)
    s, _, t = sim3_split(m)
    assert s == pytest.approx(0.5) and np.allclose(t, [2.0, 0, 0])


def test_only_false_loops_leave_every_pose_exactly_as_it_was():
    """A loop the graph rejects (it contradicts the sequential edges by far) moves nothing: the
    poses come back bit for bit and every depth scale is exactly 1."""
    from ttt3r.loops.verify import VerifiedLoop

    truth = truth_poses()
    nodes, chunk_of, poses, _ = drifted_run(truth)
    far = sim3_matrix(1.0, Rotation.from_euler("y", 20, degrees=True).as_matrix(), [30.0, 0.0, 0.0])
    loop = VerifiedLoop(100, 5, 0.9, far, 0.9, 0.0, 0.0, 0.0, True)  # accepted by verification
    res = close_loops(nodes, chunk_of, poses, [loop])
    assert res.graph is not None and res.graph.rejected[-1] and res.records()[0]["rejected_by_graph"] is True
    assert np.array_equal(res.poses, poses) and np.array_equal(res.depth_scales, np.ones(len(poses)))
