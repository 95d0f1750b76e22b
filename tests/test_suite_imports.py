"""The test suite's own layout: tests share helpers through helper modules, never through
``conftest.py`` or another test module (pytest imports those itself; importing them again
runs their module code twice and ties one test file to another's internals)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:  # from . import x, from .conftest import x
            names += [node.module or ""] + [a.name for a in node.names]
    return names


def test_no_test_imports_conftest_or_a_test_module():
    bad = []
    for path in sorted(TESTS.rglob("*.py")):
        for name in _imported_modules(path):
            parts = name.split(".")
            if parts[0] == "tests" or "conftest" in parts or parts[-1].startswith("test_"):
                bad.append(f"{path.relative_to(TESTS)} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_check_sees_such_imports(tmp_path):
    p = tmp_path / "test_x.py"
    p.write_text("from tests.conftest import PARITY\nimport conftest\nfrom test_train import tiny_cfg\n")
    assert _imported_modules(p) == ["tests.conftest", "conftest", "test_train"]
