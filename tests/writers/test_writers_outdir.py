"""The output folder guard never deletes or replaces files ttt3r did not write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ttt3r.errors import TTT3RError
from ttt3r.writers import OutputDir, RunWriter
from writer_scene import make_frames


def _run(out: Path, n: int, exports=("demo", "trajectory", "ply"), overwrite: bool = False) -> None:
    with RunWriter(out, exports, overwrite=overwrite) as rw:
        for f in make_frames(n, h=24, w=32, f=25.0):
            rw.add(f)


def test_fresh_and_missing_folder(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    _run(out, 2)
    assert (out / "trajectory.txt").is_file() and (out / "depth" / "000001.npy").is_file()


def test_non_empty_folder_refused_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(TTT3RError, match="not empty") as ei:
        OutputDir(tmp_path, ["ply"]).prepare()
    assert "\n" not in str(ei.value) and str(tmp_path) in str(ei.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday.jpg"]
    # a previous run is refused too (stale frames must not mix with new ones)
    out = tmp_path / "run"
    _run(out, 2)
    with pytest.raises(TTT3RError, match="previous ttt3r run"):
        _run(out, 2)


def test_overwrite_removes_only_ttt3r_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(out, 5, exports=("demo", "trajectory", "ply", "preview"))
    foreign = {
        "notes.txt": b"mine",
        "depth/readme.md": b"mine too",
        "depth/000001.npy.bak": b"backup",
        "sub/points.ply": b"not at top level",
        "colmap/whatever.txt": b"x",
    }
    for rel, data in foreign.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    _run(out, 3, exports=("demo", "trajectory"), overwrite=True)
    for rel, data in foreign.items():
        assert (out / rel).read_bytes() == data, rel
    # stale frames of the longer first run and the exports not written this time are gone
    assert sorted(p.name for p in (out / "depth").iterdir() if p.suffix == ".npy") == [
        "000000.npy", "000001.npy", "000002.npy"]
    assert not (out / "points.ply").exists() and not (out / "preview.png").exists()
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == 3


def test_overwrite_refuses_foreign_file_with_our_name(tmp_path: Path) -> None:
    (tmp_path / "points.ply").write_bytes(b"someone else's cloud")
    (tmp_path / "depth").mkdir()
    (tmp_path / "depth" / "000000.npy").write_bytes(b"someone else's depth")
    with pytest.raises(TTT3RError, match="not written by ttt3r"):
        _run(tmp_path, 2, overwrite=True)
    assert (tmp_path / "points.ply").read_bytes() == b"someone else's cloud"
    assert (tmp_path / "depth" / "000000.npy").read_bytes() == b"someone else's depth"


def test_tampered_manifest_cannot_widen_deletion(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(out, 2)
    m = out / ".ttt3r-manifest.json"
    data = json.loads(m.read_text())
    data["patterns"] += [".*", "notes\\.txt", "../.*"]
    m.write_text(json.dumps(data))
    (out / "notes.txt").write_text("keep me")
    (tmp_path / "outside.txt").write_text("keep me too")
    _run(out, 1, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "outside.txt").read_text() == "keep me too"


def test_output_path_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(TTT3RError, match="not a folder"):
        OutputDir(f, ["ply"]).prepare()


def test_unknown_export(tmp_path: Path) -> None:
    with pytest.raises(TTT3RError, match="unknown export 'obj'"):
        RunWriter(tmp_path / "o", ["ply", "obj"])
    assert not (tmp_path / "o").exists()


def test_glb_without_trimesh_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "trimesh", None)  # import trimesh -> ImportError
    with pytest.raises(TTT3RError, match="pip install trimesh"):
        RunWriter(tmp_path / "o", ["ply", "glb"])
    assert not (tmp_path / "o").exists()  # refused before touching the folder


def test_deep_foreign_tree_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(out, 2)
    deep = out / "my" / "depth"
    deep.mkdir(parents=True)
    (deep / "000000.npy").write_bytes(b"not ours: wrong folder")
    _run(out, 2, overwrite=True)
    assert (deep / "000000.npy").read_bytes() == b"not ours: wrong folder"


def test_check_changes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "new"
    assert OutputDir(missing, ["ply"]).check() == []
    assert not missing.exists()
    out = tmp_path / "out"
    _run(out, 3)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    with pytest.raises(TTT3RError, match="previous ttt3r run"):
        OutputDir(out, ["ply"]).check()
    plan = OutputDir(out, ["ply"], overwrite=True).check()
    assert "depth/000002.npy" in plan and "trajectory.txt" in plan and ".ttt3r-manifest.json" not in plan
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    # check, prepare and commit (a run that wrote nothing): the commit removes exactly the plan
    guard = OutputDir(out, ["ply"], overwrite=True)
    guard.prepare()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if ".ttt3r" not in p.as_posix()) == [
        b for b in before if ".ttt3r" not in b]  # prepare changes nothing of the earlier run
    guard.commit()
    assert sorted(guard.removed) == sorted(plan)
