"""The README's tables say what the command does: its exports, their defaults and its options."""

from __future__ import annotations

import re
from pathlib import Path

from ttt3r.cli.reconstruct import build_parser
from ttt3r.writers.exports import available_exports, default_exports, get_export

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_exports_table_is_the_registry() -> None:
    rows = re.findall(r"^\| `([a-z0-9_-]+)`( \*)? \|", _section("Exports"), flags=re.M)
    assert [name for name, _ in rows] == list(available_exports())
    assert tuple(name for name, star in rows if star) == default_exports() == ("demo", "trajectory", "ply", "preview")
    for name, _ in rows:  # each row names the export's main output
        assert get_export(name).path.split("/")[0] in _section("Exports")


def test_reconstruct_row_lists_the_defaults_and_real_options() -> None:
    row = next(line for line in _section("Commands").splitlines() if line.startswith("| `ttt3r reconstruct"))
    by_default, _, rest = row.partition("more with `--export`")
    for name in default_exports():
        assert get_export(name).path.split("/")[0] in by_default or name == "demo"
    for name in set(available_exports()) - set(default_exports()):
        assert get_export(name).path not in by_default  # not claimed as a default
    options = {o for a in build_parser()._actions for o in a.option_strings}
    listed = set(re.findall(r"--[a-z][a-z-]+", rest.split("Options:")[1]))
    assert listed <= options and {"--export", "--colmap-res", "--weights"} <= listed
