"""Loop closure on a finished chunked run folder: a drift-oracle run around a room twice, refined."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from room_scene import LAP, H, K, W, truth_poses, view
from ttt3r.chunking import ChunkedSession, chunk_settings
from ttt3r.chunking.oracle import DriftOracle, DriftSpec
from ttt3r.cli import main as cli
from ttt3r.errors import TTT3RError
from ttt3r.geometry import umeyama
from ttt3r.io.layout import DEMO_LAYOUT, load_camera
from ttt3r.loops.refine import LoopSettings, chunk_graph, oracle_pair, pair_measure, refine_run
from ttt3r.loops.retrieval import revisit_pairs
from ttt3r.writers import RunWriter

@pytest.fixture(scope="module")
def truth():
    return truth_poses()


@pytest.fixture
def chunked_run(tmp_path: Path, truth) -> Path:
    out = tmp_path / "run"
    depth = lambda i: view(truth[i])[0]  # noqa: E731
    spec = DriftSpec.parse("scale=2,rot=0.3,noise=0,seed=1")
    sess = ChunkedSession(DriftOracle(spec, truth, np.tile(K, (len(truth), 1, 1)), depth), chunk_settings(8, 2))
    with RunWriter(out, ("demo", "trajectory", "ply", "preview"), info={"settings": {"chunk": 8}}) as w:
        for i in range(len(truth)):
            r = sess.step(i)
            r.rgb = view(truth[i])[1]
            w.add(r)
    return out


def ate(poses: np.ndarray, truth: np.ndarray) -> float:
    sim = umeyama(poses[:, :3, 3], truth[:, :3, 3])
    return float(np.sqrt(np.mean(np.sum((sim.apply_points(poses[:, :3, 3]) - truth[:, :3, 3]) ** 2, axis=1))))


def test_refine_closes_the_loops_of_a_drifted_chunked_run(chunked_run: Path, truth):
    nodes, chunk_of, poses, weights, frames = chunk_graph(chunked_run)
    assert len(nodes) == len(truth) // 8 and chunk_of.tolist() == [i // 8 for i in range(len(truth))]
    before = ate(poses, truth)
    predict_pair = oracle_pair(DriftSpec.parse("scale=2,rot=0.3,noise=0,seed=9"), truth,
                               np.tile(K, (len(truth), 1, 1)), lambda i: view(truth[i])[0])
    measure = pair_measure(predict_pair, lambda i: np.load(DEMO_LAYOUT.paths(chunked_run, i)["depth"]))
    s = refine_run(chunked_run, measure, LoopSettings(min_gap=24, min_similarity=0.8))
    assert s.kept >= 10 and s.frames == len(truth)
    after = ate(np.stack([load_camera(DEMO_LAYOUT.paths(chunked_run, i)["camera"])[0] for i in frames]), truth)
    assert after < 0.5 * before, (before, after)
    lc = json.loads((chunked_run / "run.json").read_text())["loop_closure"]
    assert lc["status"] == "done" and len(lc["loops"]) == s.candidates
    kept = [r for r in lc["loops"] if r["rejected_by_graph"] is False]
    assert all(r["i"] - r["j"] >= 24 and r["chi2"] is not None for r in kept)
    revisits = revisit_pairs(truth[:, :3, 3], radius=0.3, min_gap=24)  # ground truth: the same place
    assert {(r["i"], r["j"]) for r in kept} <= revisits
    assert len(kept) >= 0.8 * LAP


def test_refine_needs_a_chunked_run(tmp_path: Path, truth, capsys):
    out = tmp_path / "plain"
    with RunWriter(out, ("demo", "trajectory")) as w:
        from ttt3r.results import FrameResult

        for i in range(3):
            d, rgb = view(truth[i])
            w.add(FrameResult(i, f"{i}", np.zeros((H, W, 3), np.float32), np.ones((H, W), np.float32), truth[i], K, rgb))
    with pytest.raises(TTT3RError, match="not a chunked ttt3r run"):
        chunk_graph(out)
    assert cli(["refine", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a chunked ttt3r run" in err[0]
    assert cli(["refine", str(tmp_path / "nothing")]) == 2
    assert "not a ttt3r run folder" in capsys.readouterr().err


def test_eval_oracle_drift_with_loop_closure(tmp_path: Path, truth):
    from PIL import Image

    from ttt3r.eval.datasets.base import Sequence
    from ttt3r.eval.metrics_pose import absolute_trajectory_error
    from ttt3r.eval.predictors import PredictorOptions, create_predictor

    paths = []
    for i in range(len(truth)):
        paths.append(tmp_path / f"{i:04d}.png")
        Image.fromarray(view(truth[i])[1]).save(paths[-1])
    seq = Sequence("synthetic", "room", paths, poses=truth, intrinsics=np.tile(K, (len(truth), 1, 1)))
    seq.depth_paths = list(range(len(truth)))
    seq.depth_reader = lambda i: view(truth[i])[0]
    ates = {}
    for lc in (False, True):
        opts = PredictorOptions(oracle_drift="scale=2,rot=0.3,noise=0,seed=1", chunk=8, overlap=2, loop_closure=lc)
        pred = create_predictor("oracle_drift", opts)
        p = pred.predict(seq, "ttt3r", "pose")
        p.check(len(truth), "room")
        ates[lc] = absolute_trajectory_error(truth, p.poses).rmse
    rec = p.extras["loop_closure"]
    assert rec["kept"] >= 10 and pred.describe()["loop_closure"] is True
    assert ates[True] < 0.5 * ates[False], ates
    with pytest.raises(TTT3RError, match="--loop-closure needs --chunk N"):
        create_predictor("oracle_drift", PredictorOptions(oracle_drift="scale=2", loop_closure=True))
