"""The drift-simulating oracle: its per-chunk statistics are what SPEC says; seeded; the
predictor runs through the chunk aligner and Sim(3) undoes the per-chunk scales."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.transform import Rotation

from ttt3r.chunking import ChunkedSession, ChunkSettings
from ttt3r.chunking.oracle import DriftOracle, DriftSpec
from ttt3r.errors import TTT3RError
from ttt3r.eval.datasets.base import Sequence
from ttt3r.eval.metrics_pose import absolute_trajectory_error
from ttt3r.eval.predictors import DriftOraclePredictor, PredictorOptions, create_predictor

H, W = 24, 32
K = np.array([[30.0, 0, (W - 1) / 2], [0, 30.0, (H - 1) / 2], [0, 0, 1]])


def _truth(n=240):
    """A camera walking a circle in a box room, looking at its centre (world z up)."""
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        a = 2 * np.pi * i / n
        c = np.array([2 * np.cos(a), 2 * np.sin(a), 1.0])
        z = -c / np.linalg.norm(c) * [1, 1, 0.2]
        z /= np.linalg.norm(z)
        x = np.cross(z, [0, 0, 1.0])
        x /= np.linalg.norm(x)
        poses[i, :3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
        poses[i, :3, 3] = c
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    depth = [(3.0 + 0.5 * np.sin(u / 5.0 + i / 7.0) + 0.3 * np.cos(v / 4.0)).astype(np.float32) for i in range(n)]
    return poses, depth


POSES, DEPTH = _truth()


def _oracle(spec, poses=POSES):
    return DriftOracle(spec, poses, np.tile(K, (len(poses), 1, 1)), lambda i: DEPTH[i], key="circle")


def test_spec_parse():
    assert DriftSpec.parse("scale=2,rot=0.05,noise=0.01,seed=3") == DriftSpec(2.0, 0.05, 0.01, 3)
    assert DriftSpec.parse("rot=1") == DriftSpec(1.0, 1.0, 0.0, 0)
    for bad, msg in [("scale=0.5", "scale must be >= 1"), ("rot=-1", ">= 0"), ("speed=3", "not one of"),
                     ("noise=abc", "not a number")]:
        with pytest.raises(TTT3RError, match=msg):
            DriftSpec.parse(bad)


def test_scale_is_log_uniform():
    spec = DriftSpec(scale=2.0, seed=1)
    o = _oracle(spec)
    chunks, per = 400, 3
    ratios = []
    for c in range(chunks):
        if c:
            o.new_chunk()
        first = o.predict(0, None)  # the chunk's first frame: its own camera
        assert np.array_equal(first.pose, np.eye(4))
        ratios.append(np.median(first.depth / DEPTH[0]))
        for i in range(1, per):
            o.predict(i, None)
    ls = np.log(ratios) / np.log(2.0)  # uniform on [-1, 1]
    assert ls.min() >= -1 and ls.max() <= 1
    assert stats.kstest(ls, "uniform", args=(-1, 2)).pvalue > 0.01
    np.testing.assert_allclose(ratios, o.chunk_scale, rtol=3e-7)  # noise 0: depth is s * d (float32)


def test_rotation_drift_and_translation_noise():
    spec = DriftSpec(scale=1.5, rot=0.5, noise=0.05, seed=2)
    o = _oracle(spec)
    start = 10
    o.new_chunk()
    preds = [o.predict(i, None) for i in range(start, start + 60)]
    s, axis = o.chunk_scale[-1], o.chunk_axis[-1]
    rel = np.linalg.inv(POSES[start]) @ POSES[start:start + 60]
    noise, prev = [], np.zeros(3)
    for j, (p, q) in enumerate(zip(preds, rel)):
        drift = Rotation.from_matrix(p.pose[:3, :3] @ q[:3, :3].T).as_rotvec()
        assert abs(np.degrees(np.linalg.norm(drift)) - 0.5 * j) < 1e-9  # r deg per frame from the chunk start
        if j:
            assert abs(abs(drift @ axis) - np.linalg.norm(drift)) < 1e-9  # about the chunk's one axis
        # undo scale and drift: the noisy position, relative to the chunk's first camera
        pos = Rotation.from_rotvec(np.radians(0.5 * j) * axis).as_matrix().T @ p.pose[:3, 3] / s
        if j:
            d = q[:3, 3] - rel[j - 1][:3, 3]
            noise.append((pos - prev - d) / np.linalg.norm(d))
        prev = pos
    z = np.concatenate(noise) / spec.noise  # should be N(0, 1)
    assert abs(z.std() - 1) < 0.15 and abs(z.mean()) < 0.2


def test_depth_noise_matches_confidence():
    spec = DriftSpec(scale=1.0, noise=0.02, seed=4)
    o = _oracle(spec)
    r = [o.predict(i, None) for i in range(20)]
    s = o.chunk_scale[0]
    z = np.concatenate([(np.log(p.depth / (s * DEPTH[i])) * (p.conf - 1) / spec.noise).ravel()
                        for i, p in enumerate(r)])
    assert abs(z.std() - 1) < 0.03 and abs(z.mean()) < 0.03  # log-depth error ~ N(0, (noise / (conf - 1))^2)
    assert all(p.conf.min() > 1 for p in r)


def test_seeded():
    a = [_oracle(DriftSpec(2, 0.1, 0.01, 7)).predict(i, None) for i in range(3)]
    b = [_oracle(DriftSpec(2, 0.1, 0.01, 7)).predict(i, None) for i in range(3)]
    c = [_oracle(DriftSpec(2, 0.1, 0.01, 8)).predict(i, None) for i in range(3)]
    assert all(np.array_equal(x.pose, y.pose) and np.array_equal(x.depth, y.depth) for x, y in zip(a, b))
    assert not np.array_equal(a[2].depth, c[2].depth)


def test_sim3_chunks_undo_the_scales_the_se3_chain_keeps():
    """Scale-only drift: the Sim(3) aligner restores the trajectory; the SE(3) chain cannot."""
    spec = DriftSpec(scale=2.0, seed=0)
    ates = {}
    for align in ("sim3", "se3"):
        cs = ChunkedSession(_oracle(spec), ChunkSettings(40, 4, align))
        poses = np.stack([cs.step(i).pose for i in range(len(POSES))])
        ates[align] = absolute_trajectory_error(POSES, poses).rmse
        if align == "sim3":
            scales = [a.scale for a in cs.alignments[1:]]
            truth = np.array(cs.predictor.chunk_scale)
            np.testing.assert_allclose(scales, truth[0] / truth[1:], rtol=1e-6)  # world = chunk 0 scale
            assert all(a.confidence > 0.999 for a in cs.alignments[1:])
    assert ates["sim3"] < 1e-6 < 0.05 < ates["se3"]


def test_predictor_on_a_sequence(tmp_path):
    seq = Sequence("synthetic", "circle", [tmp_path / f"{i}.png" for i in range(120)], poses=POSES[:120],
                   intrinsics=np.tile(K, (120, 1, 1)))
    seq.depth_paths = list(range(120))
    seq.depth_reader = lambda i: DEPTH[i]
    pred = create_predictor("oracle_drift", PredictorOptions(oracle_drift="scale=2,rot=0.05,noise=0.01",
                                                             chunk=30, overlap=4))
    assert isinstance(pred, DriftOraclePredictor)
    assert pred.describe()["chunks"] == {"size": 30, "overlap": 4, "align": "sim3", "max_points": 10000}
    p = pred.predict(seq, "ttt3r", "pose")
    p.check(120, "circle")
    assert len(p.extras["chunks"]) == 4
    assert absolute_trajectory_error(POSES[:120], p.poses).rmse < 0.05
    with pytest.raises(TTT3RError, match="--overlap"):
        create_predictor("oracle_drift", PredictorOptions(oracle_drift="scale=2", chunk=4, overlap=4))
