"""benchmarks/length_experiment.py end to end on a short rendered sequence.

Checks the properties the experiment's table rests on: a prefix of one streaming pass
equals a run on that prefix alone; a reset after N frames leaves the first N frames
unchanged and changes later ones; baselines depend only on the ground truth.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ttt3r.pipeline import BUNDLED_MODEL as MODEL

pytest.importorskip("pybullet")

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("length_experiment", ROOT / "benchmarks" / "length_experiment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_length_experiment_prefixes_resets_and_outputs(tmp_path, capsys):
    script = _load_script()
    out = tmp_path / "length"
    rc = script.main(["--model", str(MODEL), "--out", str(out), "--lengths", "4,8", "--sequences", "1",
                      "--motions", "orbit", "--seed0", "950002", "--size", "64x48",
                      "--rules", "cut3r,cut3r+reset8,cut3r+reset4,ttt3r"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    rows = {(r["rule"], r["frames"]): r for r in res["rows"]}
    assert len(rows) == 8
    metrics = ("abs_rel", "ate_frac", "rpe_trans_frac", "rpe_rot_deg")

    # A reset after 8 frames cannot touch an 8-frame sequence; one after 4 changes frames 5-8.
    for n in (4, 8):
        for k in metrics:
            assert rows[("cut3r+reset8", n)][k] == rows[("cut3r", n)][k]
    assert all(rows[("cut3r+reset4", 4)][k] == rows[("cut3r", 4)][k] for k in metrics)
    assert rows[("cut3r+reset4", 8)]["abs_rel"] != rows[("cut3r", 8)]["abs_rel"]

    # Baselines come from the ground truth alone.
    for n in (4, 8):
        base = {k: rows[("cut3r", n)][k] for k in ("abs_rel_const", "ate_frac_static", "rpe_rot_deg_static")}
        for rule in ("ttt3r", "cut3r+reset4"):
            assert {k: rows[(rule, n)][k] for k in base} == base

    # The 4-frame row of the 8-frame pass equals a run on the first 4 frames alone.
    import ttt3r
    from ttt3r.train.data import SeqArrays
    from ttt3r.train.evaluate import predict_sequence, sequence_metrics

    seq = SeqArrays.load(next((out / "data").iterdir()))
    model = ttt3r.load_model(MODEL, device="cpu")
    depth, poses = predict_sequence(model, seq.rgb[:4], "ttt3r")
    gt_poses = np.linalg.inv(seq.poses[0])[None] @ seq.poses[:4]
    alone = sequence_metrics(depth, poses, seq.depth[:4], gt_poses)
    for k in metrics:
        assert alone[k] == pytest.approx(rows[("ttt3r", 4)][k], rel=1e-5, abs=1e-7)

    table = (out / "table.md").read_text().strip().splitlines()
    assert len(table) == 2 + 8
    assert (out / "length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mean over 1 sequences" in capsys.readouterr().out
