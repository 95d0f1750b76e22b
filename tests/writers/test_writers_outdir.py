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


# -- issue 20: links, the lock, transactional overwrite, rollback --------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), ttt3r's lock left out."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".ttt3r.lock"}


@pytest.mark.parametrize("link", ["depth", "colmap/sparse", "points.ply", "run.json", "depth/000001.npy"])
def test_overwrite_never_writes_through_a_link(tmp_path: Path, link: str) -> None:
    out = tmp_path / "out"
    _run(out, 3, exports=("demo", "trajectory", "ply", "colmap"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "000000.npy").write_bytes(b"the user's own file")
    (elsewhere / "cameras.txt").write_bytes(b"the user's cameras")
    target = out / link
    if target.is_dir():
        import shutil

        shutil.rmtree(target)
        target.symlink_to(elsewhere, target_is_directory=True)
    else:
        target.unlink()
        target.symlink_to(elsewhere / "000000.npy")
    before = _tree(out)
    with pytest.raises(TTT3RError, match="symbolic link") as ei:
        _run(out, 2, exports=("demo", "trajectory", "ply", "colmap"), overwrite=True)
    assert str(out / link) in str(ei.value) and "\n" not in str(ei.value)
    assert _tree(elsewhere) == {"000000.npy": b"the user's own file", "cameras.txt": b"the user's cameras"}
    assert _tree(out) == before and not (out / ".ttt3r.lock").exists()


def test_second_run_into_a_locked_folder_is_refused(tmp_path: Path) -> None:
    import os

    out = tmp_path / "out"
    first = RunWriter(out, ["demo", "trajectory"])
    first.add(make_frames(1, h=24, w=32, f=25.0)[0])
    lock = json.loads((out / ".ttt3r.lock").read_text())
    assert lock["pid"] == os.getpid() and {"host", "started"} <= set(lock)
    for overwrite in (False, True):
        with pytest.raises(TTT3RError, match=rf"another ttt3r run \(pid {os.getpid()}\) is writing to") as ei:
            _run(out, 2, overwrite=overwrite)
        assert "previous" not in str(ei.value) and "\n" not in str(ei.value)
    first.close()
    assert not (out / ".ttt3r.lock").exists()  # released at close
    _run(out, 2, overwrite=True)
    assert not (out / ".ttt3r.lock").exists()
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == 2


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ttt3r.writers.lock import lock_holder

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for content in (json.dumps({"pid": dead.pid, "host": __import__("socket").gethostname()}), f"{dead.pid}\n"):
        out = tmp_path / f"out{len(content)}"
        out.mkdir()
        (out / ".ttt3r.lock").write_text(content)
        assert lock_holder(out) is None  # a dead run's lock
        _run(out, 2)  # the folder holds only the stale lock: it counts as empty
        assert not (out / ".ttt3r.lock").exists()
        assert sorted(p.name for p in (out / "depth").iterdir()) == ["000000.npy", "000001.npy"]


def test_lock_of_a_live_process_without_flock_is_respected(tmp_path: Path) -> None:
    import subprocess
    import sys

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        out = tmp_path / "out"
        out.mkdir()
        (out / ".ttt3r.lock").write_text(f"{live.pid}\n")
        with pytest.raises(TTT3RError, match=rf"another ttt3r run \(pid {live.pid}\)"):
            _run(out, 1)
        assert (out / ".ttt3r.lock").read_text() == f"{live.pid}\n"
    finally:
        live.kill()
        live.wait()


class Boom(RuntimeError):
    pass


def _failing_run(out: Path, n_ok: int, exc: BaseException, exports=("demo", "trajectory", "ply")) -> None:
    with pytest.raises(type(exc)):
        with RunWriter(out, exports, overwrite=True) as rw:
            for i, f in enumerate(make_frames(n_ok + 1, h=24, w=32, f=25.0)):
                if i == n_ok:
                    raise exc
                rw.add(f)


@pytest.mark.parametrize("n_ok", [0, 2])
def test_failed_overwrite_keeps_the_earlier_run(tmp_path: Path, n_ok: int) -> None:
    out = tmp_path / "out"
    _run(out, 5, exports=("demo", "trajectory", "ply", "preview"))
    (out / "notes.txt").write_text("mine")
    before = _tree(out)
    _failing_run(out, n_ok, Boom("network crashed"))
    assert _tree(out) == before  # every earlier file as it was, nothing new
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert not (out / ".ttt3r.lock").exists() and not (out / ".ttt3r-new").exists()


def test_overwrite_replaces_only_when_closed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(out, 5, exports=("demo", "trajectory", "ply", "preview"))
    before = _tree(out)
    rw = RunWriter(out, ["demo", "trajectory"], overwrite=True)
    for f in make_frames(3, h=24, w=32, f=25.0):
        rw.add(f)
    assert {k: v for k, v in _tree(out).items() if not k.startswith(".ttt3r-new/")} == before
    rw.close()
    assert sorted(p.name for p in (out / "depth").iterdir()) == ["000000.npy", "000001.npy", "000002.npy"]
    assert not (out / "points.ply").exists() and not (out / ".ttt3r-new").exists()
    assert json.loads((out / "run.json").read_text())["frames_done"] == 3
    assert json.loads((out / ".ttt3r-manifest.json").read_text())["exports"] == ["demo", "trajectory"]


def test_interrupted_overwrite_keeps_its_frames_consistently(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(out, 5)
    _failing_run(out, 2, KeyboardInterrupt())
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["frames_done"] == 2
    for sub in ("depth", "conf", "color", "camera"):  # no stale frame of the earlier run is left
        assert len(list((out / sub).iterdir())) == 2, sub
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == 2


@pytest.mark.parametrize("exc", [Boom("frame 0 failed"), KeyboardInterrupt()])
def test_stop_before_the_first_frame_leaves_nothing(tmp_path: Path, exc: BaseException) -> None:
    out = tmp_path / "new" / "out"
    with pytest.raises(type(exc)):
        with RunWriter(out, ["demo", "trajectory", "ply", "preview"], overwrite=False):
            raise exc
    assert not (tmp_path / "new").exists()  # as when the input cannot be opened
    _run(out, 1)  # a plain rerun is not blocked
    # an existing empty folder is kept, emptied
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(type(exc)):
        with RunWriter(empty, ["demo", "trajectory", "ply"]):
            raise exc
    assert list(empty.iterdir()) == []


def test_read_only_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: make the permission check see what a user sees
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **k: False if Path(p) == out else real(p, m, **k))
    try:
        with pytest.raises(TTT3RError, match="not writable") as ei:
            _run(out, 1)
        assert str(out) in str(ei.value) and "\n" not in str(ei.value)
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)


def test_lock_file_that_cannot_be_created_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from ttt3r.writers import lock

    real = os.open

    def denied(path, *a, **k):
        if str(path).endswith(lock.LOCK_NAME):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(lock.os, "open", denied)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TTT3RError, match="cannot write to the output folder") as ei:
        _run(out, 1)
    assert "Read-only file system" in str(ei.value) and "\n" not in str(ei.value)
    assert list(out.iterdir()) == []


def test_read_only_sub_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    out = tmp_path / "out"
    _run(out, 2)
    depth = out / "depth"
    depth.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: make the permission check see what a user sees
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **k: False if Path(p) == depth else real(p, m, **k))
    before = _tree(out)
    try:
        with pytest.raises(TTT3RError, match="not writable") as ei:
            _run(out, 1, overwrite=True)
        assert str(depth) in str(ei.value)
    finally:
        depth.chmod(0o755)
    assert _tree(out) == before


def test_folder_of_a_run_killed_before_its_first_frame_is_reusable(tmp_path: Path) -> None:
    import subprocess
    import sys

    import os

    out = tmp_path / "out"
    killed = RunWriter(out, ["demo", "trajectory"])  # as a run killed at start-up leaves it (never closed)
    (out / "depth").mkdir()
    os.close(killed.guard.lock._fd)  # what the kernel does when the process dies: the flock goes
    killed.guard.lock._fd = None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = json.loads((out / ".ttt3r.lock").read_text())
    (out / ".ttt3r.lock").write_text(json.dumps({**lock, "pid": dead.pid}))  # ... and its pid is dead
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    _run(out, 2)  # a plain rerun, no --overwrite needed
    assert json.loads((out / "run.json").read_text())["frames_done"] == 2
    # but one frame done is a run: refused without --overwrite
    with pytest.raises(TTT3RError, match="previous ttt3r run"):
        _run(out, 1)


def test_overwrite_killed_mid_run_leaves_the_earlier_run_and_is_cleaned_up(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    _run(out, 4)
    before = _tree(out)
    killed = RunWriter(out, ["demo", "trajectory", "ply"], overwrite=True)
    for f in make_frames(2, h=24, w=32, f=25.0):
        killed.add(f)
    os.close(killed.guard.lock._fd)  # the process dies (SIGKILL): the kernel drops its flock
    killed.guard.lock._fd = None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".ttt3r.lock").write_text(json.dumps({"pid": dead.pid}))
    assert {k: v for k, v in _tree(out).items() if not k.startswith(".ttt3r-new/")} == before
    with pytest.raises(TTT3RError, match="previous ttt3r run"):
        _run(out, 1)
    _run(out, 1, overwrite=True)
    assert not (out / ".ttt3r-new").exists() and not (out / ".ttt3r.lock").exists()
    assert sorted(p.name for p in (out / "depth").iterdir()) == ["000000.npy"]
    assert json.loads((out / "run.json").read_text())["frames_done"] == 1
