"""benchmarks/rotation_probe.py: exact figures for a perfect and a never-turning predictor,
and the script end to end on two short rendered sequences with the bundled model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ttt3r.pipeline import BUNDLED_MODEL as MODEL

pytest.importorskip("pybullet")

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["data.heldout_sequences=3", "data.heldout_seed0=900001", "data.frames=6", "data.size=[64, 48]",
            "data.clip_min=2", "data.clip_max=2", "data.stride_max=1"]


def _load_script():
    spec = importlib.util.spec_from_file_location("rotation_probe", ROOT / "benchmarks" / "rotation_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _angle(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))


def test_probe_end_to_end_and_exact_cases(tmp_path, monkeypatch, capsys):
    script = _load_script()
    out = tmp_path / "probe"
    pool = tmp_path / "pool"
    rc = script.main(["--config", str(ROOT / "configs" / "train_small_stage4.toml"), "--set", f"data.dir={pool}",
                      *sum((["--set", s] for s in SETTINGS), []), "--model", str(MODEL), "--out", str(out),
                      "--gaps", "1,3", "--start", "1", "--skip", "forward", "--mask", "0.5",
                      "--threads", "1"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert (out / "rotation_probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted({r["sequence"] for r in res["rows"]}) == ["loop_s900003", "walk_s900001"]  # forward left out
    assert "gap" in capsys.readouterr().out
    comp = res["completion"]
    assert comp["mask"] == 0.5 and len(comp["rows"]) == 4
    assert all(r[k] > 0 for r in comp["rows"] for k in ("hidden_true", "hidden_swap", "hidden_grey"))

    from ttt3r.train.data import SeqArrays

    seqs = [SeqArrays.load(pool / "heldout" / n) for n in ("walk_s900001", "loop_s900003")]
    for r in res["rows"]:  # the truth comes from the rendered poses alone
        s = seqs[0 if r["sequence"].startswith("walk") else 1]
        rel = np.linalg.inv(s.poses[1]) @ s.poses[1 + r["gap"]]
        assert r["gt_deg"] == pytest.approx(_angle(rel[:3, :3]), abs=1e-6)
        assert r["err_deg"] >= 0 and r["swap_deg"] >= 0

    # an oracle scores the truth exactly (and ignores the swapped first frame); a camera that never turns, zero
    import ttt3r.train.evaluate as ev

    def truth(model, rgb, rule):  # an oracle: the true pose of the second frame relative to frame 1 (the start)
        for s in seqs:
            for b, f in enumerate(s.rgb):
                if np.array_equal(f, rgb[1]):
                    return None, np.stack([np.eye(4), np.linalg.inv(s.poses[1]) @ s.poses[b]])
        raise AssertionError("frame not found")

    monkeypatch.setattr(ev, "predict_sequence", truth)
    rows = script.rotation_rows(None, seqs, ["walk", "loop"], [1, 3], 1)
    for r in rows:
        assert r["along_deg"] == pytest.approx(r["gt_deg"], abs=1e-6)
        assert r["pred_deg"] == pytest.approx(r["gt_deg"], abs=1e-6)
        assert r["err_deg"] == pytest.approx(0.0, abs=1e-5) and r["swap_deg"] == pytest.approx(0.0, abs=1e-5)
    monkeypatch.setattr(ev, "predict_sequence", lambda model, rgb, rule: (None, np.stack([np.eye(4)] * 2)))
    rows = script.rotation_rows(None, seqs, ["walk", "loop"], [1, 3], 1)
    for r in rows:
        assert r["along_deg"] == 0.0 and r["pred_deg"] == 0.0 and r["swap_deg"] == 0.0
        assert r["err_deg"] == pytest.approx(r["gt_deg"], abs=1e-5)
    summary = script.summarise(rows, [1, 3])
    assert summary["3"]["gt_deg"] == pytest.approx(np.mean([r["gt_deg"] for r in rows if r["gap"] == 3]))


def test_completion_probe_tells_state_reading_from_guessing(tmp_path, monkeypatch):
    script = _load_script()
    from ttt3r.train.config import load_config
    from ttt3r.train.data import SeqArrays, prepare_pool, sequence_dirs

    cfg = load_config(ROOT / "configs" / "train_small_stage4.toml", [f"data.dir={tmp_path}", *SETTINGS])
    prepare_pool(cfg.data, splits=("heldout",), log=lambda s: None)
    seqs = [SeqArrays.load(p) for p, _, _ in sequence_dirs(cfg.data, "heldout")]

    from ttt3r.preprocess import normalize

    def frame(rgb):
        return normalize(rgb)[0]

    def reads_state(model, img):  # the true depth of the second frame, but only given the true first frame
        for s in seqs:
            if torch.equal(img[0], frame(s.rgb[1])):
                return s.depth[1 + 2]  # gap 2 below
        return np.ones(img.shape[-2:], np.float32)

    monkeypatch.setattr(script, "second_depth", reads_state)
    rows = script.completion_rows(None, seqs, ["a", "b", "c"], [2], 1, 0.75)
    for r in rows:
        assert r["hidden_true"] == pytest.approx(0.0, abs=1e-6)
        assert r["hidden_swap"] > 0.01 and r["hidden_grey"] > 0.01
    monkeypatch.setattr(script, "second_depth", lambda model, img: 1.0 + img[1].mean(0).numpy() ** 2)
    rows = script.completion_rows(None, seqs, ["a", "b", "c"], [2], 1, 0.75)
    for r in rows:  # a guess from the visible squares alone scores the same whatever the first frame
        assert r["hidden_true"] == r["hidden_swap"] == r["hidden_grey"] > 0


def test_probe_bad_arguments_are_one_line_errors(tmp_path):
    script = _load_script()
    base = ["--config", str(ROOT / "configs" / "train_small_stage4.toml"), "--model", str(MODEL),
            "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit, match="--gaps must be positive"):
        script.main([*base, "--gaps", "0,x"])
    with pytest.raises(SystemExit, match="optim.lr must be float"):
        script.main([*base, "--set", "optim.lr=abc"])
