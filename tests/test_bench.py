"""Smoke tests of the benchmark code on tiny networks (no timing assertions), and of the
tensor-by-tensor checkpoint conversion it measures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ttt3r import bench
from ttt3r.weights import _PageReleaser, convert_state_dict, load_weights_file

from helpers import PARITY, formula_model

SRC = Path(bench.__file__).resolve().parents[1]


def test_synthetic_frames_are_deterministic():
    for kind in ("smooth", "random"):
        a = list(bench.synthetic_frames(3, (32, 48), kind, seed=1))
        b = list(bench.synthetic_frames(3, (32, 48), kind, seed=1))
        assert len(a) == 3 and a[0].shape == (32, 48, 3) and a[0].dtype == np.uint8
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not np.array_equal(a[0], a[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_formula_model_built_tensor_by_tensor_matches(dtype):
    cfg, salt = bench.model_config("tiny512")
    ref = formula_model(cfg, dtype=dtype, salt=salt).state_dict()
    got = bench.build_formula_model(cfg, dtype, "cpu", salt).state_dict()
    assert ref.keys() == got.keys()
    for k in ref:
        assert got[k].dtype == ref[k].dtype and torch.equal(got[k], ref[k]), k


def test_networks_file_is_the_parity_fixtures_networks():
    """The package's network table (package data) names the fixtures' constructors and salts,
    and builds networks of the original's state-dict shapes."""
    from ttt3r.weights import build_model

    networks = json.loads(bench.NETWORKS_FILE.read_text())
    official = json.loads((PARITY / "official_schema.json").read_text())
    assert set(networks) == {*official, "tiny512", "tiny224"}
    for name, shapes in [(n, official[n]["state_dict"]) for n in official] + \
            [(n, json.loads((PARITY / n / "schema.json").read_text())) for n in ("tiny512", "tiny224")]:
        ref = official[name]["model"] if name in official else json.loads((PARITY / name / "meta.json").read_text())["model"]
        assert networks[name]["model"] == ref, name
        cfg, salt = bench.model_config(name)
        assert salt == (json.loads((PARITY / name / "meta.json").read_text()).get("salt", "") if name not in official else "")
        sd = build_model(cfg, "meta").state_dict()
        assert {k: list(v.shape) for k, v in sd.items()} == {k: list(v) for k, v in shapes.items()}, name
        if name in official:
            assert sum(v.numel() for v in sd.values()) == official[name]["params"]  # DPT aliases counted twice
    with pytest.raises(SystemExit, match="unknown network 'nope'; use one of cut3r_512_dpt_4_64"):
        bench.model_config("nope")


def test_cli_speed_runs_from_an_empty_folder_with_only_the_package(tmp_path):
    """``ttt3r bench`` as installed: the package alone (no repository around it), run from an
    empty folder, writes its result under that folder."""
    import shutil

    site = tmp_path / "site"
    shutil.copytree(SRC / "ttt3r", site / "ttt3r", ignore=shutil.ignore_patterns("__pycache__", "models"))
    cwd = tmp_path / "empty"
    cwd.mkdir()
    p = subprocess.run([sys.executable, "-m", "ttt3r.bench", "--suite", "speed", "--network", "tiny224",
                        "--dtype", "fp32", "--frames", "1", "--warmup", "0", "--size", "48x32", "--threads", "1",
                        "--keep-outputs", "0"],
                       cwd=cwd, capture_output=True, text=True, env={"PYTHONPATH": str(site), "PATH": ""}, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads((cwd / "benchmarks" / "results" / "speed_cpu.json").read_text())
    (run,) = res["runs"]
    assert "error" not in run and run["network"] == "tiny224" and run["n_timed"] == 1 and run["s_per_frame_median"] > 0


def test_run_config_record(tmp_path):
    out = tmp_path / "o.npz"
    rec = bench.run_config(dict(network="tiny224", dtype="fp32", update="ttt3r", frames=2, warmup=1,
                                hw=[32, 48], keep_outputs=2, outputs_path=str(out)))
    for key in ("s_per_frame_median", "fps_median", "peak_rss_run_gb", "peak_rss_process_gb",
                "time_to_first_frame_s", "load_s"):
        assert rec[key] > 0, key
    assert rec["n_timed"] == 2 and len(rec["frame_times_s"]) == 2
    assert len(rec["rss_trace_gb"]) == 3
    json.dumps(rec)
    same = bench.compare_outputs(str(out), str(out))
    assert same["frames"] == 2 and same["depth_rel_diff_median"] == 0 and same["pose_rot_diff_deg_max"] < 1e-6


def test_compare_outputs_measures_differences(tmp_path):
    d = np.full((2, 4, 4), 2.0, np.float32)
    p = np.tile(np.eye(4), (2, 1, 1))
    np.savez(tmp_path / "a.npz", depth=d, pose=p)
    p2 = p.copy()
    p2[:, 0, 3] = 0.1
    np.savez(tmp_path / "b.npz", depth=d * 1.01, pose=p2)
    c = bench.compare_outputs(str(tmp_path / "a.npz"), str(tmp_path / "b.npz"))
    assert c["depth_rel_diff_median"] == pytest.approx(0.01, rel=1e-5)
    assert c["pose_trans_diff_max"] == pytest.approx(0.1)


def test_cli_sweep_writes_json_and_plot(tmp_path):
    out = tmp_path / "sweep.json"
    p = subprocess.run([sys.executable, "-m", "ttt3r.bench", "--suite", "sweep", "--lengths", "2", "3",
                        "--dtype", "fp32", "--size", "48x32", "--threads", "1", "--out", str(out)],
                       capture_output=True, text=True, env={"PYTHONPATH": str(SRC), "PATH": ""}, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    assert [r["frames"] for r in res["runs"]] == [2, 3]
    assert "flatness" in res and out.with_suffix(".png").stat().st_size > 0


def test_startup_checkpoint_roundtrip(tmp_path):
    pytest.importorskip("omegaconf")
    path = tmp_path / "tiny.pth"
    bench.write_checkpoint("tiny512", str(path))
    cfg, salt = bench.model_config("tiny512")
    ref = formula_model(cfg, salt=salt).state_dict()
    for dtype in (torch.float32, torch.bfloat16):
        sd = load_weights_file(path, dtype=dtype).state_dict()
        for k in ref:
            assert torch.equal(sd[k], ref[k].to(dtype)), k


def test_convert_state_dict_keeps_sharing_and_releases_mapped_pages(tmp_path):
    path = tmp_path / "sd.pth"
    w = torch.arange(300_000, dtype=torch.float32)
    torch.save({"a": w, "b": w, "n": torch.arange(3)}, path)
    sd = torch.load(path, mmap=True)
    assert sd["a"].untyped_storage().data_ptr() == sd["b"].untyped_storage().data_ptr()
    rel = _PageReleaser(path)
    out = convert_state_dict(dict(sd), "cpu", torch.bfloat16, rel)
    assert out["a"] is out["b"] and out["a"].dtype == torch.bfloat16 and out["n"].dtype == torch.int64
    assert torch.equal(out["a"], w.to(torch.bfloat16))
    if sys.platform.startswith("linux"):
        assert rel.ranges  # the file is mapped
        assert rel.release(sd["a"])
    # released pages are re-read from the file: the data is intact
    assert torch.equal(sd["a"], w)
    # memory that is not the file's mapping is never touched
    assert not rel.release(torch.ones(100_000))
    same = convert_state_dict({"a": w}, "cpu", torch.float32, rel)
    assert same["a"] is w


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_fp32_load_uses_the_file_mapping_in_place(tmp_path):
    """Loaded in fp32 on CPU, a released-layout checkpoint is used where it is mapped (no copy)."""
    pytest.importorskip("omegaconf")
    path = tmp_path / "tiny.pth"
    bench.write_checkpoint("tiny512", str(path))
    model = load_weights_file(path, dtype=torch.float32)
    ranges = _PageReleaser(path).ranges
    assert ranges
    w = model.enc_blocks[0].mlp.fc1.weight
    assert any(lo <= w.data_ptr() < hi for lo, hi in ranges)
    bf = load_weights_file(path, dtype=torch.bfloat16).enc_blocks[0].mlp.fc1.weight
    assert not any(lo <= bf.data_ptr() < hi for lo, hi in _PageReleaser(path).ranges)
