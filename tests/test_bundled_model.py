"""The README's first command, offline: ``ttt3r reconstruct examples/synthetic_orbit.mp4`` with no
weights and no network falls back to the bundled small model, says so in one line, writes
the outputs, and its depth is scored against the example's exact ground truth."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import numpy as np
import pytest

from ttt3r import hub
from ttt3r.cli import main as cli
from ttt3r.pipeline import BUNDLED_MODEL

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT / "examples" / "synthetic_orbit.mp4"
FRAMES = 48  # examples/make_example.py: 48-frame orbit, seed 3, 512x288


def _refused_url() -> str:
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/checkpoint.pth"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty checkpoint cache and released checkpoints whose downloads are refused."""
    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    url = _refused_url()
    table = {k: dataclasses.replace(c, urls=(url,)) for k, c in hub.KNOWN_CHECKPOINTS.items()}
    monkeypatch.setattr(hub, "KNOWN_CHECKPOINTS", table)


def test_readme_command_offline_uses_bundled_model_and_reconstructs(offline, tmp_path, capsys):
    pytest.importorskip("pybullet", reason="the ground truth is rendered with ttt3r[synth]")
    from ttt3r.io.trajectory import read_tum
    from ttt3r.preprocess import crop_geometry
    from ttt3r.synth import render_sequence
    from ttt3r.train.data import SeqArrays
    from ttt3r.train.evaluate import sequence_metrics

    assert (BUNDLED_MODEL / "model.safetensors").is_file()
    out = tmp_path / "orbit"
    assert cli(["reconstruct", str(VIDEO), "--out", str(out)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("notice:")]
    assert len(err) == 1 and "bundled small model" in err[0] and "ttt3r weights download" in err[0]
    assert "refused" in err[0].lower()  # the download was tried, on loopback only
    for name in ("preview.png", "trajectory.txt", "points.ply", "run.json"):
        assert (out / name).is_file(), name
    depth_files = sorted((out / "depth").glob("*.npy"))
    assert len(depth_files) == FRAMES
    depth = np.stack([np.load(f) for f in depth_files])

    # the same scene and cameras rendered at the network's input scale (512x288 -> 128x72),
    # cropped as preprocessing crops (128x64)
    (w1, h1), (left, top, right, bottom) = crop_geometry(512, 288, 128)
    assert (w1, h1) == (128, 72) and depth.shape[1:] == (bottom - top, right - left)
    gt = SeqArrays.load(render_sequence(tmp_path / "gt", frames=FRAMES, seed=3, motion="orbit", size=(w1, h1),
                                        progress=False))
    gt_depth = gt.depth[:, top:bottom, left:right]
    gt_poses = np.linalg.inv(gt.poses[0])[None] @ gt.poses
    poses = read_tum(out / "trajectory.txt").poses
    m = sequence_metrics(depth, poses, gt_depth, gt_poses)
    # measured with the shipped weights: Abs Rel 0.09 against 0.25 for a constant depth
    assert m["abs_rel"] < 0.5 * m["abs_rel_const"], m
    assert m["ate_frac"] < m["ate_frac_static"], m
