"""Strict JSON: nothing ttt3r writes holds NaN or Infinity (issue 20)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

import ttt3r
from ttt3r.io.strict_json import dumps, json_safe, write_json


def _strict_loads(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


def test_non_finite_numbers_become_null(tmp_path: Path) -> None:
    class Metrics:
        def to_dict(self):
            return {"ate": float("nan"), "n": np.int64(3)}

    obj = {"a": float("nan"), "b": [float("inf"), -math.inf, 1.5], "c": np.float32("nan"),
           "d": np.array([1.0, np.nan]), "e": (1, 2), 3: tmp_path, "m": Metrics(), "dev": object}
    back = _strict_loads(dumps(obj))
    assert back == {"a": None, "b": [None, None, 1.5], "c": None, "d": [1.0, None], "e": [1, 2],
                    "3": str(tmp_path), "m": {"ate": None, "n": 3}, "dev": str(object)}
    write_json(tmp_path / "x.json", {"v": float("nan")})
    assert _strict_loads((tmp_path / "x.json").read_text()) == {"v": None}
    assert json_safe([np.float64(2.0)]) == [2.0] and type(json_safe(np.float64(2.0))) is float
    with pytest.raises(TypeError):
        dumps({"x": object()}, default=None)


def test_every_json_dump_in_the_package_is_strict() -> None:
    """Each ``json.dump``/``json.dumps`` call in src/ttt3r passes ``allow_nan=False`` (strict_json does)."""
    root = Path(ttt3r.__file__).parent
    loose = []
    for py in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("dump", "dumps") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "json"):
                ok = any(k.arg == "allow_nan" and isinstance(k.value, ast.Constant) and k.value.value is False
                         for k in node.keywords)
                if not ok:
                    loose.append(f"{py.relative_to(root)}:{node.lineno}")
    assert not loose, f"json.dump without allow_nan=False: {loose}"
