"""benchmarks/ab_one_process.py on the tiny network: every variant streams the same frames,
and the comparisons measure real differences from the float32 reference."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("ab_one_process", ROOT / "benchmarks" / "ab_one_process.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ab_variants_table_and_json(tmp_path, capsys):
    script = _load_script()
    out = tmp_path / "new" / "ab"
    rc = script.main(["--network", "tiny224", "--size", "48x32", "--frames", "2", "--warmup", "1", "--repeats", "2",
                      "--threads", "1", "--variants", "fp32,bf16,autocast", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "ab_one_process.json").read_text())
    rows = {r["variant"]: r for r in res["variants"]}
    assert list(rows) == ["fp32", "bf16", "autocast"] and "vs_fp32" not in rows["fp32"]
    for v in ("fp32", "bf16", "autocast"):
        assert rows[v]["n_timed"] == 4 and 0 < rows[v]["s_per_frame_min"] <= rows[v]["s_per_frame_median"]
    for v in ("bf16", "autocast"):
        c = rows[v]["vs_fp32"]
        # bfloat16 keeps 8 bits of mantissa: a difference from float32, but a small one
        assert c["frames"] == 3 and 1e-4 < c["depth_rel_diff_median"] < 0.1, (v, c)
    assert "autocast  median" in capsys.readouterr().out


def test_ab_refuses_unknown_variants(tmp_path, capsys):
    script = _load_script()
    assert script.main(["--variants", "bf16,fast", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--variants must include fp32" in err
