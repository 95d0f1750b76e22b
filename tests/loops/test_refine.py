"""Loop closure on a finished chunked run folder: a drift-oracle run around a room twice, refined."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from room_scene import LAP, H, K, W, room_sequence, truth_poses, view
from ttt3r.chunking import ChunkedSession, chunk_settings
from ttt3r.chunking.oracle import DriftOracle, DriftSpec
from ttt3r.cli import main as cli
from ttt3r.errors import TTT3RError
from ttt3r.geometry import umeyama
from ttt3r.io.layout import DEMO_LAYOUT, load_camera
from ttt3r.loops.refine import LoopSettings, chunk_graph, oracle_pair, pair_measure, refine_run, run_depth_reader
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


def oracle_measure(run: Path, truth: np.ndarray):
    """Loops measured by the drift oracle on two-frame chunks, in the run's raw depth units."""
    predict_pair = oracle_pair(DriftSpec.parse("scale=2,rot=0.3,noise=0,seed=9"), truth,
                               np.tile(K, (len(truth), 1, 1)), lambda i: view(truth[i])[0])
    return pair_measure(predict_pair, run_depth_reader(run))


def ate(poses: np.ndarray, truth: np.ndarray) -> float:
    sim = umeyama(poses[:, :3, 3], truth[:, :3, 3])
    return float(np.sqrt(np.mean(np.sum((sim.apply_points(poses[:, :3, 3]) - truth[:, :3, 3]) ** 2, axis=1))))


def test_refine_closes_the_loops_of_a_drifted_chunked_run(chunked_run: Path, truth):
    nodes, chunk_of, poses, weights, frames = chunk_graph(chunked_run)
    assert len(nodes) == len(truth) // 8 and chunk_of.tolist() == [i // 8 for i in range(len(truth))]
    before = ate(poses, truth)
    # every frame's best candidate, no budget (the per-chunk-pair budgeted default: below)
    s = refine_run(chunked_run, oracle_measure(chunked_run, truth),
                   LoopSettings(min_gap=24, min_similarity=0.8, verify_budget=None, per_chunk_pair=False))
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


def test_refine_budget_one_loop_per_chunk_pair(chunked_run: Path, truth):
    """The budgeted default: at most floor(budget * frames / 2) candidates, one per chunk pair, and the
    drift still halved."""
    nodes, chunk_of, poses, weights, frames = chunk_graph(chunked_run)
    before = ate(poses, truth)
    predict_pair = oracle_pair(DriftSpec.parse("scale=2,rot=0.3,noise=0,seed=9"), truth,
                               np.tile(K, (len(truth), 1, 1)), lambda i: view(truth[i])[0])
    calls = []

    def measure(i, j):
        calls.append((i, j))
        return pair_measure(predict_pair, lambda k: np.load(DEMO_LAYOUT.paths(chunked_run, k)["depth"]))(i, j)

    st = LoopSettings(min_gap=24, min_similarity=0.8, verify_budget=0.1)
    assert st.candidate_cap(len(truth)) == 4  # floor(0.1 * 96 / 2); 6 chunk pairs revisit
    s = refine_run(chunked_run, measure, st)
    assert s.candidates == len(calls) == 4
    assert len({(i // 8, j // 8) for i, j in calls}) == len(calls)  # chunks of 8 frames: one pair each
    after = ate(np.stack([load_camera(DEMO_LAYOUT.paths(chunked_run, i)["camera"])[0] for i in frames]), truth)
    assert after < 0.5 * before, (before, after)
    lc = json.loads((chunked_run / "run.json").read_text())["loop_closure"]
    assert lc["settings"]["candidate_cap"] == 4 and set(lc["timings"]) == {
        "descriptors_s", "retrieval_s", "verify_s", "graph_s"}


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
    from ttt3r.eval.metrics_pose import absolute_trajectory_error
    from ttt3r.eval.predictors import PredictorOptions, create_predictor

    seq = room_sequence(truth, tmp_path)
    ates = {}
    for lc in (False, True):
        opts = PredictorOptions(oracle_drift="scale=2,rot=0.3,noise=0,seed=1", chunk=8, overlap=2, loop_closure=lc)
        pred = create_predictor("oracle_drift", opts)
        p = pred.predict(seq, "ttt3r", "pose")
        p.check(len(truth), "room")
        ates[lc] = absolute_trajectory_error(truth, p.poses).rmse
    rec = p.extras["loop_closure"]
    # the default budget: 4% of 96 frames in two-frame checks, one candidate (the best pair of two chunks)
    assert LoopSettings().candidate_cap(len(truth)) == 1
    assert rec["candidates"] == 1 and rec["kept"] == 1 and pred.describe()["loop_closure"] is True
    assert ates[True] < 0.8 * ates[False], ates  # one loop on a 96-frame run (halved with more: below)
    with pytest.raises(TTT3RError, match="--loop-closure needs --chunk N"):
        create_predictor("oracle_drift", PredictorOptions(oracle_drift="scale=2", loop_closure=True))


def outputs(run: Path) -> dict[str, np.ndarray]:
    """Every frame's pose, pose_raw, depth_scale (1 and the pose when never rewritten) and depth, stacked."""
    out: dict[str, list] = {"pose": [], "pose_raw": [], "depth_scale": [], "depth": []}
    for i in chunk_graph(run)[4]:
        p = DEMO_LAYOUT.paths(run, i)
        with np.load(p["camera"]) as z:
            out["pose"].append(z["pose"])
            out["pose_raw"].append(z["pose_raw"] if "pose_raw" in z.files else z["pose"])
            out["depth_scale"].append(float(z["depth_scale"]) if "depth_scale" in z.files else 1.0)
        out["depth"].append(np.load(p["depth"]))
    return {k: np.stack(v) for k, v in out.items()}


# every frame's best candidate, no budget: many loops, so other settings give other poses
SAME = LoopSettings(min_gap=24, min_similarity=0.8, verify_budget=None, per_chunk_pair=False)
OTHER = LoopSettings(min_gap=40, min_similarity=0.9, max_candidates=6, verify_budget=None, per_chunk_pair=False)


def test_refining_a_refined_run_again_gives_the_same_outputs(chunked_run: Path, truth):
    first = outputs(chunked_run)
    chunks = json.loads((chunked_run / "run.json").read_text())["chunks"]
    during = {"every": 2, "optimisations": [], "measured": 0, "seconds": 0.0}  # as if --loop-every had run
    s1 = refine_run(chunked_run, oracle_measure(chunked_run, truth), SAME, during_run=during)
    once = outputs(chunked_run)
    assert np.abs(once["pose"] - first["pose"]).max() > 0.1  # the refinement moved the cameras
    assert np.abs(np.log(once["depth_scale"])).max() > 1e-3  # and rescaled the depth (compounded: squared)
    s2 = refine_run(chunked_run, oracle_measure(chunked_run, truth), SAME)
    twice = outputs(chunked_run)
    assert (s2.candidates, s2.verified, s2.kept) == (s1.candidates, s1.verified, s1.kept)
    np.testing.assert_allclose(twice["pose"], once["pose"], atol=1e-6)
    np.testing.assert_allclose(twice["depth_scale"], once["depth_scale"], rtol=1e-6)  # not squared
    np.testing.assert_allclose(twice["depth"], once["depth"], rtol=1e-6)
    np.testing.assert_allclose(twice["depth"], first["depth"] * twice["depth_scale"][:, None, None], rtol=1e-6)
    np.testing.assert_array_equal(twice["pose_raw"], first["pose"])  # the pose the run wrote, after two refines
    info = json.loads((chunked_run / "run.json").read_text())
    assert info["chunks"] == chunks  # they describe the raw poses, which a rewrite keeps
    assert info["loop_closure"]["status"] == "done" and len(info["loop_closure"]["loops"]) == s1.candidates
    assert info["loop_closure"]["during_run"] == during  # what happened while the run streamed still holds


def test_refining_with_other_settings_replaces_the_first_refinement(chunked_run: Path, truth, tmp_path: Path):
    fresh = Path(shutil.copytree(chunked_run, tmp_path / "fresh"))
    first = outputs(chunked_run)
    refine_run(chunked_run, oracle_measure(chunked_run, truth), SAME)
    same = outputs(chunked_run)
    s = refine_run(chunked_run, oracle_measure(chunked_run, truth), OTHER)
    replaced = outputs(chunked_run)
    s_fresh = refine_run(fresh, oracle_measure(fresh, truth), OTHER)
    direct = outputs(fresh)
    assert s.kept >= 1 and (s.candidates, s.kept) == (s_fresh.candidates, s_fresh.kept)
    assert np.abs(direct["pose"] - same["pose"]).max() > 0.02  # the other settings give other poses
    np.testing.assert_allclose(replaced["pose"], direct["pose"], atol=1e-6)
    np.testing.assert_allclose(replaced["depth_scale"], direct["depth_scale"], rtol=1e-6)
    np.testing.assert_allclose(replaced["depth"], direct["depth"], rtol=1e-6)
    np.testing.assert_array_equal(replaced["pose_raw"], first["pose"])
    lc = json.loads((chunked_run / "run.json").read_text())["loop_closure"]
    assert lc["settings"]["min_gap"] == 40 and len(lc["loops"]) == s.candidates  # the record replaced too


def test_candidate_cap():
    assert LoopSettings().candidate_cap(2000) == 40 and LoopSettings().candidate_cap(5000) == 100
    assert LoopSettings().candidate_cap(20_000) == 200  # max_candidates still caps
    assert LoopSettings(verify_budget=None).candidate_cap(10) == 200
    assert LoopSettings(verify_budget=0.05).candidate_cap(99) == 2  # floor(2.475)
    with pytest.raises(TTT3RError, match="verify_budget"):
        LoopSettings(verify_budget=-0.1).candidate_cap(100)


def test_no_loop_kept_rewrites_nothing(chunked_run: Path):
    """No candidate could be measured: nothing moved, so no file but run.json changes."""
    before = {p.relative_to(chunked_run).as_posix(): p.read_bytes() for p in chunked_run.rglob("*")
              if p.is_file() and p.name != "run.json"}
    s = refine_run(chunked_run, lambda i, j: None, LoopSettings(min_gap=24, min_similarity=0.8))
    assert s.candidates > 0 and s.verified == s.kept == s.frames == 0
    after = {p.relative_to(chunked_run).as_posix(): p.read_bytes() for p in chunked_run.rglob("*")
             if p.is_file() and p.name != "run.json"}
    assert after == before
    lc = json.loads((chunked_run / "run.json").read_text())["loop_closure"]
    assert lc["status"] == "done" and lc["rewritten"] is False and lc["candidates"] == s.candidates
    assert all(r["reason"] == "no measurement" for r in lc["loops"])


@pytest.mark.parametrize("value", ["-0.1", "abc", "3"])
def test_refine_bad_verify_budget_is_one_line(tmp_path: Path, capsys, value):
    with pytest.raises(SystemExit) as e:
        cli(["refine", str(tmp_path), "--verify-budget", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--verify-budget" in err and "must be a share in [0, 2] or 'none'" in err


def test_refine_verify_budget_parses():
    from ttt3r.cli.refine import _parser

    assert _parser().parse_args(["R"]).verify_budget == 0.04
    assert _parser().parse_args(["R", "--verify-budget", "none"]).verify_budget is None
    assert _parser().parse_args(["R", "--verify-budget", "0.1"]).verify_budget == 0.1
    assert _parser().parse_args(["R"]).per_frame is False and _parser().parse_args(["R", "--per-frame"]).per_frame


def test_refine_shows_progress_of_each_long_step(chunked_run: Path, truth, capsys):
    """With progress: one bar per long step on stderr, each counted to its end (frames described,
    pairs verified, frames rewritten); without it nothing is printed."""
    s = refine_run(chunked_run, oracle_measure(chunked_run, truth),
                   LoopSettings(min_gap=24, min_similarity=0.8, verify_budget=None, per_chunk_pair=False),
                   progress=True)
    err = capsys.readouterr().err
    n = len(truth)
    assert s.kept > 0 and s.frames == n  # the loops moved the map: the rewrite ran
    final = {}
    for part in err.replace("\r", "\n").splitlines():
        for step in ("descriptors", "verify", "rewrite"):
            if part.startswith(f"loop closure: {step}"):
                final[step] = part  # the bar's last state
    assert set(final) == {"descriptors", "verify", "rewrite"}, err
    assert f"{n}/{n}" in final["descriptors"] and f"{n}/{n}" in final["rewrite"]
    assert f"{s.candidates}/{s.candidates}" in final["verify"] and "pair" in final["verify"]
    refine_run(chunked_run, oracle_measure(chunked_run, truth),
               LoopSettings(min_gap=24, min_similarity=0.8, verify_budget=None, per_chunk_pair=False))
    assert "loop closure:" not in capsys.readouterr().err
