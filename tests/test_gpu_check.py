"""benchmarks/gpu_check.py: the --cpu-quick run exercises every part and writes the
record the GPU run writes; budgets and missing modules skip parts with a reason."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu-quick", "--out", str(out),
                        "--budget-s", "900"], capture_output=True, text=True, timeout=1200)
    return p, json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.log").read_text()


def test_cpu_quick_runs_every_part(quick):
    p, rec, log = quick
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert rec["mode"] == "cpu-quick" and rec["deps"]["missing"] == []
    assert Path(rec["deps"]["ttt3r"]["path"]) == ROOT / "src" / "ttt3r"  # this tree's ttt3r, not an installed one
    parts = rec["parts"]
    assert list(parts) == ["parity", "precision", "speed", "flat_memory"]
    assert all(parts[n]["status"] == "ok" for n in parts), {n: parts[n].get("reason") for n in parts}
    assert parts["parity"]["passed"] == 1 and parts["parity"]["failed"] == []
    for dtype in ("bf16", "fp16"):
        c = parts["precision"]["comparisons"][dtype]
        assert c["frames"] == 2
        # a different dtype really changes the outputs, but not beyond recognition
        assert 0 < c["depth_rel_diff_median"] < 0.2 and 0 < c["pose_trans_diff_max"]
        assert 0 <= c["pose_rot_diff_deg_max"] < 20
    runs = {(r["dtype"], r["step_graph"]): r for r in parts["speed"]["runs"]}
    assert set(runs) == {(d, m) for d in ("fp32", "bf16") for m in ("none", "compile", "cudagraph")}
    for dtype in ("fp32", "bf16"):
        assert runs[dtype, "none"]["status"] == "ok" and runs[dtype, "none"]["fps_median"] > 0
        assert runs[dtype, "none"]["n_timed"] == 1
        assert runs[dtype, "cudagraph"]["status"] == "n/a" and "CUDA" in runs[dtype, "cudagraph"]["reason"]
        assert runs[dtype, "compile"]["status"] == "n/a"
    flat = parts["flat_memory"]
    assert flat["frames_done"] == 30 and set(flat["at_frame"]) == {"10", "30"} and flat["flat"] is True
    assert rec["goals"] == {"parity_fp32_passes": True, "speed": "not measured on CUDA"}
    assert "== flat_memory" in log and "bf16 vs fp32: median rel depth diff" in log


def test_budget_exhausted_skips_with_reasons(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts this tree first on both
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    code = _load_script().main(["--cpu-quick", "--out", str(tmp_path), "--budget-s", "0"])
    rec = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 0
    for name, part in rec["parts"].items():
        assert part["status"] == "skipped" and "time budget ran out" in part["reason"], name
    assert rec["goals"]["parity_fp32_passes"] is None


def test_missing_modules_are_named():
    gc = _load_script()
    deps = {"missing": ["omegaconf", "pytest"], "modules": {}}
    assert "pytest (runs the tests)" in gc.missing_for("parity", deps)
    assert "--wheels" in gc.missing_for("parity", deps)
    assert gc.missing_for("speed", deps) is None  # omegaconf only leaves test_parity.py out of the parity part
    assert "numpy" in gc.missing_for("speed", {"missing": ["numpy"]})


def test_verbose_summary_counts_a_stopped_run():
    text = ("tests/model/test_parity.py::test_parity[cut3r-tiny512] PASSED [ 5%]\n"
            "tests/model/test_parity.py::test_parity[cut3r-tiny224] FAILED [10%]\n"
            "tests/model/test_devices.py::test_cuda_matches_cpu[dtype0] SKIPPED (needs a CUDA device) [15%]\n"
            "tests/model/test_parity.py::test_parity[ttt3r-tiny512] ")
    got = _load_script().verbose_summary(text)
    assert got["passed"] == 1
    assert [f["test"] for f in got["failed"]] == ["tests/model/test_parity.py::test_parity[cut3r-tiny224]"]
    assert [f["test"] for f in got["skipped"]] == ["tests/model/test_devices.py::test_cuda_matches_cpu[dtype0]"]
