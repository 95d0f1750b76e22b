"""The export registry: a new export is one registered class, and every part of ttt3r sees it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ttt3r.cli.reconstruct import build_parser, parse_exports
from ttt3r.errors import TTT3RError
from ttt3r.io.atomic import atomic_write_text
from ttt3r.writers import DEFAULT_EXPORTS, EXPORTS, Export, RunWriter, register_export
from ttt3r.writers import exports as registry
from ttt3r.writers.outdir import MANIFEST_NAME, OutputDir
from writer_scene import make_frames

N = 4


class ToyWriter:
    """Per frame ``toy/%06d.txt`` (index and fused voxels so far); at close ``toy.csv`` (index, camera centre)."""

    def __init__(self, out_dir: Path, fusion) -> None:
        self.out_dir, self.fusion, self.rows = out_dir, fusion, []

    def add(self, frame) -> None:
        atomic_write_text(self.out_dir / "toy" / f"{frame.index:06d}.txt", f"{frame.index} {len(self.fusion)}\n")
        self.rows.append(f"{frame.index}," + ",".join(f"{v:.6f}" for v in frame.pose[:3, 3]))

    def flush(self) -> None:
        pass

    def close(self, interrupted: bool = False) -> None:
        atomic_write_text(self.out_dir / "toy.csv", "\n".join(self.rows) + "\n")


class ToyExport(Export):
    name = "toy"
    files = (r"toy/\d{6,}\.txt", r"toy\.csv")
    path = "toy.csv"
    needs_fusion = True
    help = "toy.csv and toy/: a test export"

    @classmethod
    def create(cls, ctx):
        return ToyWriter(ctx.out_dir, ctx.fusion)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> type[Export]:
    """Registers :class:`ToyExport` for one test (the registry is restored afterwards)."""
    monkeypatch.setattr(registry, "_EXPORTS", dict(registry._EXPORTS))
    return register_export(ToyExport)


def _run(out: Path, exports, n: int = N, overwrite: bool = False) -> RunWriter:
    with RunWriter(out, exports, overwrite=overwrite) as rw:
        for f in make_frames(n, h=24, w=32, f=25.0):
            rw.add(f)
    return rw


def test_builtin_table_is_the_documented_one() -> None:
    # the exports and defaults ttt3r reconstruct has always had, in the order writers are called
    assert EXPORTS == ("demo", "trajectory", "ply", "colmap", "nerfstudio", "glb", "preview", "video")
    assert DEFAULT_EXPORTS == ("demo", "trajectory", "ply", "preview")
    fusion = [e for e in EXPORTS if registry.get_export(e).needs_fusion]
    assert fusion == ["ply", "colmap", "nerfstudio", "glb", "preview", "video"]
    assert [e for e in EXPORTS if registry.get_export(e).needs_tracks] == ["colmap"]
    assert registry.get_export("glb").extra == "glb" and registry.get_export("glb").requires == ("trimesh",)
    assert registry.get_export("colmap").folders() == ["colmap/sparse/0", "colmap/images", "colmap/sparse", "colmap"]


def test_run_writer_writes_a_registered_export(toy, tmp_path: Path) -> None:
    out = tmp_path / "out"
    frames = make_frames(N, h=24, w=32, f=25.0)
    rw = _run(out, ["trajectory", "toy"])
    assert rw.exports == ["trajectory", "toy"] and rw.paths["toy"] == out / "toy.csv"
    # the toy writer got the run's shared fusion grid, already fed with each frame when it saw it
    assert rw.writers["toy"].fusion is rw.fusion
    counts = [int((out / "toy" / f"{i:06d}.txt").read_text().split()[1]) for i in range(N)]
    assert counts[0] > 0 and counts == sorted(counts) and counts[-1] == len(rw.fusion)
    rows = np.loadtxt(out / "toy.csv", delimiter=",", ndmin=2)
    np.testing.assert_array_equal(rows[:, 0], np.arange(N))
    np.testing.assert_allclose(rows[:, 1:], [f.pose[:3, 3] for f in frames], atol=1e-6)
    assert json.loads((out / "run.json").read_text())["exports"] == ["trajectory", "toy"]
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["exports"] == ["trajectory", "toy"]
    assert r"toy/\d{6,}\.txt" in manifest["patterns"] and r"toy\.csv" in manifest["patterns"]


def test_output_dir_owns_a_registered_exports_files(toy, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(out, ["toy"], n=5)
    (out / "toy" / "notes.md").write_bytes(b"mine")
    plan = OutputDir(out, ["trajectory"], overwrite=True).check()
    assert sorted(plan) == ["frames.csv", "run.json", "toy.csv", *(f"toy/{i:06d}.txt" for i in range(5))]
    _run(out, ["trajectory"], overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        MANIFEST_NAME, "frames.csv", "run.json", "toy", "toy/notes.md", "trajectory.txt"]
    # without a foreign file the emptied folder goes too
    (out / "toy" / "notes.md").unlink()
    _run(out, ["toy"], overwrite=True)
    _run(out, ["trajectory"], overwrite=True)
    assert not (out / "toy").exists()


def test_a_foreign_file_with_a_registered_exports_name_is_refused(toy, tmp_path: Path) -> None:
    (tmp_path / "toy.csv").write_bytes(b"someone else's table")
    with pytest.raises(TTT3RError, match="not written by ttt3r"):
        _run(tmp_path, ["toy"], overwrite=True)
    assert (tmp_path / "toy.csv").read_bytes() == b"someone else's table"


def test_default_and_all_include_a_registered_export(toy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import ttt3r.writers

    assert ttt3r.writers.EXPORTS[-1] == "toy" and parse_exports("all") == (*EXPORTS, "toy")
    assert "toy" not in ttt3r.writers.DEFAULT_EXPORTS
    monkeypatch.setattr(ToyExport, "default", True)
    assert registry.DEFAULT_EXPORTS == ("demo", "trajectory", "ply", "preview", "toy")
    rw = _run(tmp_path / "out", None)
    assert rw.exports == ["demo", "trajectory", "ply", "preview", "toy"] and (tmp_path / "out" / "toy.csv").is_file()
    assert "(default: demo,trajectory,ply,preview,toy)" in " ".join(build_parser().format_help().split())


def test_help_lists_every_registered_export(toy) -> None:
    text = build_parser().format_help()
    flat = " ".join(text.split())
    table = text[text.index("exports (--export"):]
    for name in registry.available_exports():
        e = registry.get_export(name)
        line = re.search(rf"^  {re.escape(name)} +(\*| ) ", table, re.M)
        assert line is not None, name
        assert (line.group(1) == "*") == e.default, name
        assert " ".join(e.help.split()) in flat, name
    assert "(needs ttt3r[glb])" in flat and "toy" in registry.available_exports()
    assert "(default: demo,trajectory,ply,preview)" in flat


def test_unknown_and_missing_dependency_are_one_line_before_the_folder(toy, monkeypatch, tmp_path: Path) -> None:
    with pytest.raises(TTT3RError, match=r"unknown export 'obj' \(known: demo, .*, toy\)"):
        RunWriter(tmp_path / "o", ["toy", "obj"])
    with pytest.raises(TTT3RError, match="--export: unknown export 'obj'"):
        parse_exports("toy,obj")
    monkeypatch.setattr(ToyExport, "requires", ("ttt3r_no_such_module",))
    monkeypatch.setattr(ToyExport, "extra", "toy")
    with pytest.raises(TTT3RError) as ei:
        RunWriter(tmp_path / "o", ["toy"])
    assert str(ei.value) == ("export 'toy' needs ttt3r_no_such_module: pip install ttt3r_no_such_module "
                             "(or pip install 'ttt3r[toy]')")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("attr", "value", "message"), [
    ("name", "all", "name must be"),
    ("name", "Toy,2", "name must be"),
    ("files", (), "files must list"),
    ("files", (r"toy/[0-9", ), "not a regular expression"),
    ("files", (r"to.y/\d+\.txt",), "folder 'to.y' must be a literal name"),
])
def test_malformed_declaration_is_refused(toy, attr, value, message) -> None:
    bad = type("BadExport", (ToyExport,), {attr: value})
    with pytest.raises(TTT3RError, match=re.escape(message)):
        register_export(bad)
    assert registry.get_export("toy") is ToyExport
