"""``ttt3r reconstruct`` stopped or crossed: SIGTERM, a second Ctrl-C while closing, SIGKILL, a concurrent
run, a stop during start-up, a failure at frame 0, links and read-only folders (issue 20).

Runs that must be signalled are real child processes with a slowed-down network step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ttt3r
from ttt3r.cli import main as cli

SRC = str(Path(ttt3r.__file__).resolve().parents[1])

CHILD = """
import sys, time
from pathlib import Path
from ttt3r.session import Session
from ttt3r.writers.preview import PreviewWriter
delay, marker = float(sys.argv[1]), sys.argv[2]
real_step, real_close = Session.step, PreviewWriter.close
def step(self, *a, **k):
    time.sleep(delay)
    return real_step(self, *a, **k)
def close(self, *a, **k):  # a slow close, announced by a marker file
    Path(marker).write_text("closing")
    time.sleep(float(sys.argv[3]))
    return real_close(self, *a, **k)
Session.step, PreviewWriter.close = step, close
from ttt3r.cli import main
sys.exit(main(["reconstruct", *sys.argv[4:], "--quiet"]))
"""


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("frames")
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float32)
    for i in range(40):
        img = np.stack([127 + 120 * np.sin((xx + 5 * i) / 9.0), 127 + 120 * np.cos((yy - 3 * i) / 7.0),
                        127 + 120 * np.sin((xx + yy + 4 * i) / 13.0)], -1)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"f{i:03d}.png")
    return d


@pytest.fixture(scope="module")
def ckpt(released_ckpt):
    return released_ckpt("tiny224")


def _child(tmp: Path, src: Path, out: Path, ckpt: Path, *extra: str, delay: float = 0.15,
           slow_close: float = 0.0) -> tuple[subprocess.Popen, Path]:
    marker = tmp / "closing.marker"
    env = dict(os.environ, PYTHONPATH=SRC)
    err = open(tmp / "child.err", "wb")
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(delay), str(marker), str(slow_close), str(src),
                          "--out", str(out), "--weights", str(ckpt), *extra], env=env, stderr=err,
                         stdout=subprocess.DEVNULL)
    err.close()
    return p, marker


def _wait_for(cond, what: str, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _n_frames_on_disk(out: Path) -> int:
    """Frames whose four demo files are all there (the camera file is written last)."""
    n = len(list((out / "camera").glob("*.npz"))) if (out / "camera").is_dir() else 0
    for sub in ("depth", "conf", "color"):
        assert len(list((out / sub).iterdir())) in (n, n + 1), sub
    return n


def _strict(path: Path) -> dict:
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path}: {c} is not JSON"))


def _assert_truthful_interrupted(out: Path) -> int:
    info = _strict(out / "run.json")
    n = _n_frames_on_disk(out)
    assert info["status"] == "interrupted" and info["interrupted"] is True
    assert info["frames_done"] == n >= 1
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == n
    assert (out / "points.ply").stat().st_size > 0 and (out / "preview.png").stat().st_size > 0
    assert not (out / ".ttt3r.lock").exists()
    return n


def test_sigterm_is_handled_like_ctrl_c(tmp_path, frames_dir, ckpt):
    out = tmp_path / "out"
    p, _ = _child(tmp_path, frames_dir, out, ckpt)
    try:
        _wait_for(lambda: (out / "camera").is_dir() and len(list((out / "camera").iterdir())) >= 2, "2 frames")
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 128 + signal.SIGTERM
    finally:
        p.kill()
    n = _assert_truthful_interrupted(out)
    err = (tmp_path / "child.err").read_text()
    assert f"the {n} frames finished are complete" in err and "Traceback" not in err


def test_second_interrupt_while_closing_keeps_run_json_true(tmp_path, frames_dir, ckpt):
    out = tmp_path / "out"
    p, marker = _child(tmp_path, frames_dir, out, ckpt, delay=0.15, slow_close=1.5)
    try:
        _wait_for(lambda: (out / "camera").is_dir() and len(list((out / "camera").iterdir())) >= 2, "2 frames")
        p.send_signal(signal.SIGINT)
        _wait_for(marker.exists, "the close")
        p.send_signal(signal.SIGINT)  # while preview.png is still to be written
        assert p.wait(60) == 130
    finally:
        p.kill()
    _assert_truthful_interrupted(out)
    assert "Traceback" not in (tmp_path / "child.err").read_text()


def test_sigkill_leaves_run_json_close_behind_and_a_dead_lock(tmp_path, frames_dir, ckpt):
    from ttt3r.writers.lock import lock_holder

    out = tmp_path / "out"
    p, _ = _child(tmp_path, frames_dir, out, ckpt)
    try:
        _wait_for(lambda: (out / "camera").is_dir() and len(list((out / "camera").iterdir())) >= 3, "3 frames")
        p.send_signal(signal.SIGKILL)
        p.wait(60)
    finally:
        p.kill()
    info = _strict(out / "run.json")
    n = _n_frames_on_disk(out)
    assert info["status"] == "running" and n - 1 <= info["frames_done"] <= n and n >= 3
    # how a reader tells the run died: the lock is still there and names a dead pid
    lock = json.loads((out / ".ttt3r.lock").read_text())
    assert lock["pid"] == info["pid"] == p.pid and lock_holder(out) is None
    # the next run takes the stale lock over; --overwrite replaces the dead run's files
    assert cli(["reconstruct", str(frames_dir), "--out", str(out), "--weights", str(ckpt), "--quiet",
                "--overwrite", "--max-frames", "2"]) == 0
    assert _n_frames_on_disk(out) == 2 and _strict(out / "run.json")["status"] == "finished"
    assert not (out / ".ttt3r.lock").exists()


def test_concurrent_run_is_refused_naming_its_pid(tmp_path, frames_dir, ckpt, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    p, _ = _child(tmp_path, frames_dir, out, ckpt, "--overwrite", delay=0.3)
    try:
        _wait_for(lambda: (out / "camera").is_dir(), "the first run to write")
        rc = cli(["reconstruct", str(frames_dir), "--out", str(out), "--weights", str(ckpt), "--quiet",
                  "--overwrite", "--max-frames", "2"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "\n" not in err and "Traceback" not in err
        assert f"another ttt3r run (pid {p.pid}) is writing to {out}" in err and "previous" not in err
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 143
    finally:
        p.kill()
    n = _assert_truthful_interrupted(out)  # the first run's files, all of them
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == n
    assert (out / "notes.txt").read_text() == "mine"


def run_cli(*args) -> int:
    return cli(["reconstruct", *map(str, args), "--quiet"])


def test_ctrl_c_during_start_up_claims_nothing(tmp_path, frames_dir, ckpt, monkeypatch, capsys):
    from ttt3r import pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_session", interrupted)
    out = tmp_path / "never"
    assert run_cli(frames_dir, "--out", out, "--weights", ckpt) == 130
    err = capsys.readouterr().err
    assert "complete" not in err and "nothing was written" in err
    assert not out.exists()


def _fail_at_frame(monkeypatch, k: int) -> None:
    from ttt3r.errors import TTT3RError
    from ttt3r.session import Session

    real = Session.step
    calls = {"n": 0}

    def step(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] > k:
            raise TTT3RError(f"frame {k}: the network failed")
        return real(self, *a, **kw)

    monkeypatch.setattr(Session, "step", step)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_failure_at_frame_0_leaves_nothing_and_a_plain_rerun_works(tmp_path, frames_dir, ckpt, monkeypatch,
                                                                   capsys):
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _fail_at_frame(m, 0)
        assert run_cli(frames_dir, "--out", out, "--weights", ckpt, "--max-frames", "3") == 2
    assert "frame 0: the network failed" in capsys.readouterr().err
    assert not out.exists()
    assert run_cli(frames_dir, "--out", out, "--weights", ckpt, "--max-frames", "3") == 0
    assert _n_frames_on_disk(out) == 3


@pytest.mark.parametrize("k", [0, 2])
def test_failed_overwrite_leaves_the_earlier_results(tmp_path, frames_dir, ckpt, monkeypatch, k):
    out = tmp_path / "out"
    assert run_cli(frames_dir, "--out", out, "--weights", ckpt, "--max-frames", "4") == 0
    before = _tree(out)
    with monkeypatch.context() as m:
        _fail_at_frame(m, k)
        assert run_cli(frames_dir, "--out", out, "--weights", ckpt, "--max-frames", "3", "--overwrite") == 2
    assert _tree(out) == before


def test_overwrite_through_a_linked_subfolder_is_refused(tmp_path, frames_dir, ckpt, capsys):
    import shutil

    out = tmp_path / "out"
    assert run_cli(frames_dir, "--out", out, "--weights", ckpt, "--max-frames", "2") == 0
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "000000.npy").write_bytes(b"the user's")
    shutil.rmtree(out / "depth")
    (out / "depth").symlink_to(theirs, target_is_directory=True)
    capsys.readouterr()
    assert run_cli(frames_dir, "--out", out, "--weights", ckpt, "--max-frames", "3", "--overwrite") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(out / "depth") in err and "symbolic link" in err
    assert _tree(theirs) == {"000000.npy": b"the user's"}


def test_read_only_output_folder_is_one_line(tmp_path, frames_dir, ckpt, monkeypatch, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root could write anyway: let the permission check see what a user sees
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **k: False if Path(p) == out else real(p, m, **k))
    try:
        assert run_cli(frames_dir, "--out", out, "--weights", ckpt) == 2
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert err.startswith("ttt3r reconstruct: error:") and "not writable" in err and "\n" not in err
    assert list(out.iterdir()) == []
