"""Task and predictor registries: plots follow the chosen alignment, a new task or predictor needs no runner change."""

from __future__ import annotations

import numpy as np
import pytest
from eval_helpers import N, gt_poses, write_synth

from ttt3r.errors import TTT3RError
from ttt3r.eval import plots, tasks
from ttt3r.eval.datasets.synth import SynthDataset
from ttt3r.eval.predictors import GroundTruthPredictor, PredictorOptions, SessionPredictor, create_predictor
from ttt3r.eval.runner import EvalConfig, run_evaluation


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_tasks")
    write_synth(root / "seq_a", 0)
    return root


def _pairwise(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


@pytest.mark.parametrize("align", ["sim3", "se3", "none"])
def test_trajectory_plot_uses_the_chosen_alignment(synth_root, tmp_path, monkeypatch, align):
    """The positions handed to the drawing are aligned as the metrics were (not always Sim(3))."""
    drawn = []
    monkeypatch.setattr(plots, "draw_trajectories", lambda path, ref, est, label="", title="": drawn.append(
        (ref, est, label)))
    cfg = EvalConfig(task="pose", datasets=("synth",), out=tmp_path, root=synth_root, rules=("cut3r",),
                     pose_align=align, plots=True)
    s = run_evaluation(cfg, GroundTruthPredictor(scale=2.5))
    assert s.failures == [] and len(drawn) == 1
    ref, est, label = drawn[0]
    gt = gt_poses(0)
    np.testing.assert_allclose(ref, gt[:, :3, 3], atol=1e-12)
    assert align in label
    raw = 2.5 * (np.linalg.inv(gt[0]) @ gt)[:, :3, 3]  # the oracle's estimate: first camera frame, scale 2.5
    if align == "sim3":
        np.testing.assert_allclose(est, ref, atol=1e-9)
    elif align == "se3":  # rigid: distances stay 2.5x the ground truth's
        np.testing.assert_allclose(_pairwise(est), 2.5 * _pairwise(ref), rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_allclose(est, raw, atol=1e-12)


class _FrameCount(tasks.EvalTask):
    """A toy task: the number of frames seen (a second registry entry, exercising every task hook)."""

    name = "frame_count"
    help = "frames per sequence"
    columns = (("n", "N"),)
    length_columns = columns

    def evaluate(self, seq, pred, settings, family):
        return {"metrics": {"n": float(len(pred.depth))}}

    def mean(self, per_seq):
        return {"n": float(np.mean([m["n"] for m in per_seq.values()]))}

    def headline(self, metrics):
        return f"n {metrics['n']:.0f}"


def test_a_registered_task_runs_without_runner_changes(synth_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(tasks._TASKS, "frame_count", _FrameCount())
    cfg = EvalConfig(task="frame_count", datasets=("synth",), out=tmp_path, root=synth_root, frames=(None, 3),
                     loader=SynthDataset(synth_root), plots=True)
    s = run_evaluation(cfg, GroundTruthPredictor(), stream=None)
    assert s.failures == [] and sorted(r["result"]["metrics"]["n"] for r in s.records) == [3, 3, N, N]
    md = (tmp_path / "tables/frame_count/synth@3.md").read_text()
    assert md.splitlines()[2] == "| sequence | frames | N cut3r | N ttt3r |"
    assert f"| seq_a | {N} | {N}.0000 | {N}.0000 |" in (tmp_path / "tables/frame_count/synth.md").read_text()
    assert "| **mean** |  | 3.0000 | 3.0000 |" in md
    assert (tmp_path / "plots/frame_count/length_synth.png").is_file()
    assert "frame_count synth@3 ttt3r seq_a: n 3" in capsys.readouterr().err
    # the CLI's task names come from the registry
    from ttt3r.cli.evaluate import build_parser

    assert build_parser().parse_args(["frame_count", "--dataset", "synth", "--out", "o"]).task == "frame_count"


def test_task_registry_names_and_errors(tmp_path):
    assert tasks.task_names()[:3] == ["pose", "depth", "recon"]
    assert tasks.get_task("recon").heads == ("world",) and tasks.get_task("pose").heads == ()
    with pytest.raises(TTT3RError, match=r"unknown task 'nope'; choose one of pose, depth, recon"):
        tasks.get_task("nope")
    with pytest.raises(TTT3RError, match="unknown task 'nope'"):
        run_evaluation(EvalConfig(task="nope", datasets=("synth",), out=tmp_path / "o"), GroundTruthPredictor())
    assert not (tmp_path / "o").exists()  # nothing written for a run that cannot start


def test_predictor_registry(synth_root):
    assert isinstance(create_predictor("oracle", PredictorOptions()), GroundTruthPredictor)
    p = create_predictor("session", PredictorOptions(weights="w.pth", device="cpu", size=224, reset_every=4))
    assert isinstance(p, SessionPredictor) and (p.weights, p.size, p.reset_every) == ("w.pth", 224, 4)
    with pytest.raises(TTT3RError, match="--weights is required"):
        create_predictor("session", PredictorOptions())
    with pytest.raises(TTT3RError, match="unknown predictor 'x'; choose one of session, oracle"):
        create_predictor("x", PredictorOptions())

    class Drift(GroundTruthPredictor):  # a perturbed oracle is a small subclass
        def poses(self, seq):
            p = super().poses(seq)
            p[:, 0, 3] += 0.01 * np.arange(len(p))
            return p

    seq = SynthDataset(synth_root).load("seq_a")
    d = Drift().predict(seq, "cut3r", "pose").poses - GroundTruthPredictor().predict(seq, "cut3r", "pose").poses
    np.testing.assert_allclose(d[:, 0, 3], 0.01 * np.arange(N), atol=1e-12)
