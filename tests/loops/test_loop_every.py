"""Loop closure during the run (``--loop-every M``): corrections move the chunk aligner between chunks,
frames already written stay as written, and the final closure composes with what was written."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import ttt3r
from helpers import PARITY
from room_scene import K, room_sequence, truth_poses, view
from ttt3r.chunking import ChunkedSession, chunk_settings
from ttt3r.chunking.oracle import DriftOracle, DriftSpec
from ttt3r.cli import main as cli
from ttt3r.errors import TTT3RError
from ttt3r.eval.datasets.base import Sequence
from ttt3r.eval.metrics_pose import absolute_trajectory_error
from ttt3r.eval.predictors import PredictorOptions, create_predictor
from ttt3r.io.trajectory import read_tum
from ttt3r.loops.pose_graph import sim3_inverse, sim3_matrix
from ttt3r.pipeline import ReconstructOptions, reconstruct

# ---------------------------------------------------------------- the aligner moved between chunks


def _stream(truth, align: str, hook=None):
    spec = DriftSpec.parse("scale=2,rot=0.3,noise=0.01,seed=3")
    sess = ChunkedSession(DriftOracle(spec, truth, np.tile(K, (len(truth), 1, 1)), lambda i: view(truth[i])[0]),
                          chunk_settings(8, 2, align))
    sess.between_chunks = hook
    return [sess.step(i) for i in range(len(truth))], sess.alignments


@pytest.mark.parametrize("align", ["sim3", "se3"])
def test_a_correction_puts_the_next_chunks_on_the_moved_map(align):
    """A Sim(3) C given after chunk 1 moves every later frame by exactly C (the alignment is
    equivariant), leaves frames 0-15 as they were, and chunk 2 records that it was aligned to C T_1."""
    truth = truth_poses(1)[:40]
    C = sim3_matrix(1.3, Rotation.from_rotvec([0.1, -0.3, 0.2]).as_matrix(), [0.5, -0.2, 0.7])
    calls = []

    def hook(done):
        calls.append(done)
        return C if done == 2 else None

    plain, rec0 = _stream(truth, align)
    moved, rec1 = _stream(truth, align, hook)
    assert calls == [1, 2, 3, 4]
    for i in range(16):
        np.testing.assert_array_equal(moved[i].pose, plain[i].pose)
        np.testing.assert_array_equal(moved[i].depth, plain[i].depth)
    tol = 1e-7  # the robust fit stops at a relative change of 1e-8 of the cloud's size (~4)
    for i in range(16, len(truth)):
        want = C @ plain[i].pose
        want[:3, :3] /= 1.3
        np.testing.assert_allclose(moved[i].pose, want, atol=tol)
        np.testing.assert_allclose(moved[i].depth, 1.3 * plain[i].depth, rtol=1e-5)
    assert [r.aligned_to is None for r in rec1] == [True, True, False, True, True]
    np.testing.assert_allclose(rec1[2].aligned_to, C @ rec0[1].matrix, atol=1e-12)
    for c in range(2, 5):  # the frames were written with C T_c; the sequential edge is what the overlap measured
        np.testing.assert_allclose(rec1[c].matrix, C @ rec0[c].matrix, atol=tol)
    np.testing.assert_allclose(sim3_inverse(rec1[2].aligned_to) @ rec1[2].matrix,
                               sim3_inverse(rec0[1].matrix) @ rec0[2].matrix, atol=tol)
    assert "aligned_to" not in rec0[2].to_json() and "aligned_to" not in rec1[3].to_json()
    np.testing.assert_allclose(rec1[2].to_json()["aligned_to"], C @ rec0[1].matrix, atol=1e-9)


# ---------------------------------------------------------------- the drift oracle, evaluated


@pytest.fixture(scope="module")
def room3(tmp_path_factory):
    """Three laps around the room of test_refine (144 frames), with images on disk."""
    return room_sequence(truth_poses(3), tmp_path_factory.mktemp("room3"))


def _no_seconds(x):
    if isinstance(x, dict):
        return {k: _no_seconds(v) for k, v in x.items() if k != "seconds"}
    return [_no_seconds(v) for v in x] if isinstance(x, list) else x


def _budget(monkeypatch, verify_budget):
    import ttt3r.loops.refine as refine

    monkeypatch.setattr(refine, "LoopSettings", functools.partial(refine.LoopSettings, verify_budget=verify_budget))


def test_loop_every_beats_closing_only_after_the_last_frame(room3, monkeypatch):
    """Strong rotation drift (3 deg/frame): after the last frame most revisits are too far off the
    drifted estimate and fail verification (12 of 18); closing every 2 chunks keeps the map nearer the
    truth while it is built, so more revisits verify and the final ATE is lower, within the same one
    verification budget (0.5: 36 measurements on 144 frames; the default 0.04 allows 2)."""
    _budget(monkeypatch, 0.5)
    truth = room3.poses
    preds = {}
    for lc, every in ((False, None), (True, None), (True, 2), (True, 100)):
        opts = PredictorOptions(oracle_drift="scale=2,rot=3.0,noise=0.01,seed=0", chunk=8, overlap=2,
                                loop_closure=lc, loop_every=every)
        pred = create_predictor("oracle_drift", opts)
        preds[lc, every] = (pred.predict(room3, "ttt3r", "pose"), pred.describe())
    ate = {k: absolute_trajectory_error(truth, p.poses).rmse for k, (p, _) in preds.items()}
    chunks_only, final_only, every2 = ate[False, None], ate[True, None], ate[True, 2]
    assert every2 <= final_only and every2 < chunks_only, ate
    assert every2 < 0.8 * final_only, ate  # measured: x0.70 (0.499 against 0.713)
    rec2, rec_final = preds[True, 2][0].extras["loop_closure"], preds[True, None][0].extras["loop_closure"]
    assert rec2["verified"] > rec_final["verified"]
    assert rec2["measurements"] <= 36 and rec2["candidate_cap"] == 36
    during = rec2["during_run"]
    assert during["every"] == 2 and preds[True, 2][1]["loop_every"] == 2
    opt = during["optimisations"]
    assert [o["chunk"] for o in opt] == list(range(1, 17, 2))  # 18 chunks: after chunks 1, 3, ..., 15
    assert all({"chunk", "loops", "kept", "seconds"} <= set(o) for o in opt)
    # before the second lap is 16 frames (the minimum gap) old, there is nothing to close
    assert [o["moved"] for o in opt[:3]] == [False] * 3 and any(o["moved"] for o in opt[3:]), opt
    assert during["measured"] == sum(o["measured"] for o in opt)
    # M larger than the number of chunks: exactly the final-only closure
    p100, d100 = preds[True, 100]
    pf, df = preds[True, None]
    np.testing.assert_array_equal(p100.poses, pf.poses)
    np.testing.assert_array_equal(p100.depth, pf.depth)
    assert p100.extras["loop_closure"]["during_run"]["optimisations"] == []
    assert _no_seconds(p100.extras["loop_closure"]["loops"]) == _no_seconds(pf.extras["loop_closure"]["loops"])
    assert "loop_every" not in df and "during_run" not in pf.extras["loop_closure"]


# ---------------------------------------------------------------- one verification budget for the run


def _angle_descriptors(truth: np.ndarray) -> np.ndarray:
    """(N, 16) descriptors that depend only on the camera's heading (harmonics 1-8): revisits are exact."""
    a = np.arctan2(truth[:, 0, 2], truth[:, 2, 2])
    return np.concatenate([np.stack([np.cos(k * a), np.sin(k * a)], 1) for k in range(1, 9)], 1)


def test_measure_limit_measures_the_first_new_candidates_and_reuses_known_ones():
    """``measure_limit``: the known candidates are free, the first ``limit`` new ones are measured, the
    later new ones are not candidates; a known pair that is no candidate is used. New candidates of a
    chunk pair a known pair already joins come after those of chunk pairs not joined yet."""
    from ttt3r.loops.refine import LoopSettings, detect_and_close
    from ttt3r.loops.retrieval import find_loop_candidates
    from ttt3r.loops.verify import PairMeasurement, VerifiedLoop

    truth = truth_poses(3)
    n = len(truth)
    chunk_of = np.arange(n) // 8
    nodes = np.tile(np.eye(4), (chunk_of[-1] + 1, 1, 1))
    desc = _angle_descriptors(truth)
    st = LoopSettings(min_gap=16, min_similarity=0.8, verify_budget=None)
    cands = find_loop_candidates(desc, min_gap=16, min_similarity=0.8, max_candidates=st.max_candidates,
                                 groups=chunk_of)
    assert len(cands) >= 8

    def rel(i, j):
        return sim3_inverse(truth[i]) @ truth[j]

    def loop(i, j):
        return VerifiedLoop(i, j, 1.0, rel(i, j), 0.9, 0.0, 0.0, 0.0, True)

    extra = (100, 5)  # chunk 12 and chunk 0, not a candidate (headings differ)
    assert extra not in {(c.i, c.j) for c in cands}
    known = {(c.i, c.j): loop(c.i, c.j) for c in (cands[1], cands[3])} | {extra: loop(*extra)}
    covered = {(chunk_of[i], chunk_of[j]) for i, j in known}
    again = [k for k in range(len(cands)) if k not in (1, 3) and (chunk_of[cands[k].i], chunk_of[cands[k].j]) in covered]
    assert again and min(again) < len(cands) - 1  # the rule is exercised: a covered one moves back
    order = [k for k in range(len(cands)) if k not in (1, 3) and k not in again] + again  # new ones, measured in turn
    for limit, fresh in ((3, order[:3]), (0, []), (None, order)):
        calls = []

        def measure(i, j):
            calls.append((i, j))
            return PairMeasurement(rel(i, j), 0.9)

        closed, records, n_cands = detect_and_close(nodes, chunk_of, truth, desc, measure, st, known=known,
                                                    measure_limit=limit)
        assert calls == [(cands[k].i, cands[k].j) for k in fresh] and closed.measured == len(fresh)
        used = [k for k in range(len(cands)) if k in (1, 3) or (k in fresh and k not in again)]
        used += [k for k in again if k in fresh]
        assert n_cands == len(used)
        assert [(r["i"], r["j"]) for r in records] == [(cands[k].i, cands[k].j) for k in used] + [extra]


@pytest.mark.parametrize("every", [1, 2])
def test_loop_every_keeps_to_one_verification_budget(room3, monkeypatch, every):
    """Over a run with many optimisations during the run and the final one, ``measure`` is called at
    most ``candidate_cap(N)`` times in all, exactly that many when candidates are plentiful (without a
    budget the run measures more), never twice for one pair: failed measurements count and are not
    retried. Each optimisation's limit is its cap over the frames so far less what was measured before."""
    import ttt3r.loops.refine as refine

    calls = []
    original = refine.pair_measure

    def counting(*args, **kwargs):
        m = original(*args, **kwargs)

        def measure(i, j):
            calls.append((i, j))
            return None if (i + j) % 7 == 0 else m(i, j)  # some pairs cannot be measured

        return measure

    monkeypatch.setattr(refine, "pair_measure", counting)
    base = refine.LoopSettings
    out = {}
    for budget in (0.5, None):
        monkeypatch.setattr(refine, "LoopSettings", functools.partial(base, verify_budget=budget))
        calls.clear()
        opts = PredictorOptions(oracle_drift="scale=2,rot=3.0,noise=0.01,seed=0", chunk=8, overlap=2,
                                loop_closure=True, loop_every=every)
        lc = create_predictor("oracle_drift", opts).predict(room3, "ttt3r", "pose").extras["loop_closure"]
        out[budget] = (list(calls), lc)
    cap = base(verify_budget=0.5).candidate_cap(len(room3))
    assert cap == 36  # floor(0.5 * 144 / 2)
    unbudgeted, _ = out[None]
    assert len(unbudgeted) > cap  # plentiful: without a budget the same run measures more
    calls, lc = out[0.5]
    assert len(calls) == cap and len(set(calls)) == len(calls)
    assert any((i + j) % 7 == 0 for i, j in calls)  # failed measurements were among them
    during = lc["during_run"]
    assert lc["measurements"] == len(calls) == during["measured"] + lc["measured"]
    assert lc["candidate_cap"] == cap
    done = 0
    for o in during["optimisations"]:
        assert o["measure_limit"] == max(base(verify_budget=0.5).candidate_cap(o["frames"]) - done, 0)
        assert 0 <= o["measured"] <= o["measure_limit"]
        done += o["measured"]
    assert done == during["measured"] and lc["measured"] <= cap - done
    assert len(during["optimisations"]) == (18 - 1) // every  # the last chunk is closed after the last frame
    assert all(o["measure_limit"] is None for o in out[None][1]["during_run"]["optimisations"])


# ---------------------------------------------------------------- the folder job


@pytest.fixture(scope="module")
def revisits(tmp_path_factory) -> Path:
    """The six parity frames three times over (18 frames): every frame is revisited."""
    frames = sorted((PARITY / "tiny224" / "frames").glob("*.png"))
    lst = tmp_path_factory.mktemp("revisits") / "frames.txt"
    lst.write_text("".join(f"{f}\n" for f in frames * 3))
    return lst


@pytest.fixture(scope="module")
def job_runs(released_ckpt, revisits, tmp_path_factory):
    """``reconstruct --chunk 3 --overlap 1 --loop-closure`` with M = None, 1 and 100, the formula network.
    Its poses are far from consistent, so verification is opened wide (every loop measured is used;
    the graph still rejects what does not fit) to make the map move during the run."""
    import torch

    import ttt3r.loops.refine as refine
    from ttt3r.loops.verify import VerifySettings

    mp = pytest.MonkeyPatch()
    wide = VerifySettings(min_confidence=0.0, max_rot_deg=180.0, max_scale_ratio=1e3)
    mp.setattr(refine, "LoopSettings", functools.partial(refine.LoopSettings, verify=wide, verify_budget=None, per_chunk_pair=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = ttt3r.load_model(released_ckpt("tiny224"), device="cpu")
        out = {}
        for every in (None, 1, 100):
            d = tmp_path_factory.mktemp(f"every{every}") / "run"
            opts = ReconstructOptions(chunk=3, overlap=1, exports=("demo", "trajectory", "colmap"), quiet=True,
                                      loop_closure=True, loop_every=every)
            assert reconstruct(revisits, d, opts, model=model).frames == 18
            out[every] = d
        # M = 1 with a verification budget (1.0: floor(18 / 2) = 9 measurements), measure calls counted
        calls = []
        original = refine.pair_measure

        def counting(*args, **kwargs):
            m = original(*args, **kwargs)
            return lambda i, j: (calls.append((i, j)), m(i, j))[1]

        mp.setattr(refine, "pair_measure", counting)
        mp.setattr(refine, "LoopSettings", functools.partial(refine.LoopSettings, verify_budget=1.0))
        d = tmp_path_factory.mktemp("budget") / "run"
        opts = ReconstructOptions(chunk=3, overlap=1, exports=("demo",), quiet=True, loop_closure=True, loop_every=1)
        assert reconstruct(revisits, d, opts, model=model).frames == 18
        out["budget"] = (d, calls)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return out


def _cameras(d: Path):
    out = []
    for i in range(18):
        with np.load(d / "camera" / f"{i:06d}.npz") as z:
            out.append({k: z[k] for k in z.files})
    return out


def test_folder_job_with_loop_every(job_runs):
    pycolmap = pytest.importorskip("pycolmap")
    d = job_runs[1]
    info = json.loads((d / "run.json").read_text())
    lc = info["loop_closure"]
    assert lc["status"] == "done" and info["settings"]["loop_every"] == 1
    opt = lc["during_run"]["optimisations"]
    assert [o["chunk"] for o in opt] == [0, 1, 2, 3, 4]  # 6 chunks; the last one is closed after the last frame
    moved = [o["moved"] for o in opt]
    assert moved[:2] == [False, False] and all(moved[2:])  # frames 6 apart (min gap) exist from chunk 2 on
    # the chunks aligned after a correction record the moved transform they were aligned to
    assert [c.get("aligned_to") is not None for c in info["chunks"]] == [False, False, False] + [True] * 3
    # every loop measured during the run is used by the final closure, none measured twice
    assert lc["during_run"]["measured"] <= len(lc["loops"]) and len({(r["i"], r["j"]) for r in lc["loops"]}) == len(
        lc["loops"])
    # the final outputs agree with each other: npz, TUM, COLMAP
    cams = _cameras(d)
    traj = read_tum(d / "trajectory.txt")
    np.testing.assert_allclose(traj.poses, [c["pose"] for c in cams], atol=1e-6)
    rec = pycolmap.Reconstruction(str(d / "colmap" / "sparse" / "0"))
    assert len(rec.images) == 18
    for im in rec.images.values():
        T = np.eye(4)
        T[:3, :] = im.cam_from_world().matrix()
        np.testing.assert_allclose(np.linalg.inv(T), cams[int(im.name[:6])]["pose"], atol=1e-5)
    # corrections compose: the frames were written differently (moved during the run), but the final
    # graph is the same problem as the final-only run's, so the final poses and depths are the same
    final_only = _cameras(job_runs[None])
    assert max(np.abs(c["pose_raw"] - f["pose_raw"]).max() for c, f in zip(cams[9:], final_only[9:])) > 0.1
    for i, (c, f) in enumerate(zip(cams, final_only)):
        np.testing.assert_allclose(c["pose"], f["pose"], atol=1e-6)
        np.testing.assert_allclose(np.load(d / "depth" / f"{i:06d}.npy"),
                                   np.load(job_runs[None] / "depth" / f"{i:06d}.npy"), rtol=1e-5, atol=1e-7)


def test_loop_every_beyond_the_last_chunk_is_the_final_only_run(job_runs):
    a, b = job_runs[100], job_runs[None]
    for ca, cb in zip(_cameras(a), _cameras(b)):
        assert ca.keys() == cb.keys()
        for k in ca:
            np.testing.assert_array_equal(ca[k], cb[k])
    for i in range(18):
        np.testing.assert_array_equal(np.load(a / "depth" / f"{i:06d}.npy"), np.load(b / "depth" / f"{i:06d}.npy"))
    assert (a / "trajectory.txt").read_bytes() == (b / "trajectory.txt").read_bytes()
    assert (a / "colmap/sparse/0/images.txt").read_bytes() == (b / "colmap/sparse/0/images.txt").read_bytes()
    ia, ib = (json.loads((d / "run.json").read_text()) for d in (a, b))
    assert _no_seconds(ia["loop_closure"]["loops"]) == _no_seconds(ib["loop_closure"]["loops"])
    assert ia["loop_closure"]["during_run"]["optimisations"] == [] and "during_run" not in ib["loop_closure"]
    assert _no_seconds(ia["chunks"]) == _no_seconds(ib["chunks"])
    assert "loop_every" not in ib["settings"]


def test_folder_job_keeps_to_one_verification_budget(job_runs):
    """``reconstruct --loop-every 1`` with a budget: the two-frame network sessions during the run and
    after the last frame number at most ``candidate_cap(18)`` = 9, each pair once, as run.json records."""
    d, calls = job_runs["budget"]
    lc = json.loads((d / "run.json").read_text())["loop_closure"]
    assert lc["settings"]["candidate_cap"] == 9
    unbudgeted = json.loads((job_runs[1] / "run.json").read_text())["loop_closure"]["measurements"]
    assert unbudgeted > 9  # plentiful: the same run without a budget measures more
    assert len(calls) == 9 and len(set(calls)) == len(calls), calls
    during = lc["during_run"]
    assert lc["measurements"] == len(calls) == during["measured"] + lc["measured"]
    assert during["measured"] == sum(o["measured"] for o in during["optimisations"]) > 0


def test_eval_with_the_network_and_loop_every(released_ckpt, monkeypatch):
    """``eval --chunk --loop-closure --loop-every`` with the network (formula weights; verification
    opened wide as for the folder job): the map moves during the stream, the final poses are the
    final-only ones, and M beyond the last chunk is the final-only prediction exactly."""
    import torch

    import ttt3r.loops.refine as refine
    from ttt3r.loops.verify import VerifySettings

    wide = VerifySettings(min_confidence=0.0, max_rot_deg=180.0, max_scale_ratio=1e3)
    monkeypatch.setattr(refine, "LoopSettings", functools.partial(refine.LoopSettings, verify=wide, verify_budget=None, per_chunk_pair=False))
    seq = Sequence("synthetic", "revisits", sorted((PARITY / "tiny224" / "frames").glob("*.png")) * 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        preds = {}
        for every in (None, 1, 100):
            opts = PredictorOptions(weights=str(released_ckpt("tiny224")), device="cpu", chunk=3, overlap=1,
                                    loop_closure=True, loop_every=every)
            preds[every] = create_predictor("session", opts).predict(seq, "ttt3r", "pose")
    finally:
        torch.set_num_threads(threads)
    opt = preds[1].extras["loop_closure"]["during_run"]["optimisations"]
    assert [o["chunk"] for o in opt] == [0, 1, 2, 3, 4] and [o["moved"] for o in opt] == [False] * 2 + [True] * 3
    np.testing.assert_allclose(preds[1].poses, preds[None].poses, atol=1e-6)
    np.testing.assert_array_equal(preds[100].poses, preds[None].poses)
    np.testing.assert_array_equal(preds[100].depth, preds[None].depth)


# ---------------------------------------------------------------- bad values


@pytest.mark.parametrize("args,message", [
    (["--loop-every", "0", "--loop-closure", "--chunk", "4"], "--loop-every: must be an integer >= 1, got 0"),
    (["--loop-every", "-3", "--loop-closure", "--chunk", "4"], "--loop-every: must be an integer >= 1, got -3"),
    (["--loop-every", "2", "--chunk", "4"], "--loop-every needs --loop-closure"),
])
def test_bad_loop_every_is_one_line(tmp_path, capsys, args, message):
    rc = cli(["reconstruct", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "out"), *args, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    rc = cli(["eval", "pose", "--dataset", "synth", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "ev"),
              "--oracle-drift", "scale=2", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err


def test_bad_loop_every_in_python():
    with pytest.raises(TTT3RError, match=r"^loop_every: must be an integer >= 1, got 0$"):
        ReconstructOptions(chunk=4, loop_closure=True, loop_every=0).validate()
    with pytest.raises(TTT3RError, match=r"^loop_every needs loop_closure"):
        ReconstructOptions(chunk=4, loop_every=2).validate()
    with pytest.raises(TTT3RError, match="--loop-every: must be an integer >= 1, got 1.5"):
        create_predictor("oracle_drift", PredictorOptions(oracle_drift="scale=2", chunk=4, loop_closure=True,
                                                          loop_every=1.5))
