"""A run that fails mid-way leaves valid files for every finished frame."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from ttt3r.errors import TTT3RError
from ttt3r.writers import EXPORTS, RunWriter, WriterOptions
from ttt3r.writers.preview import PreviewWriter
from writer_scene import make_frames


class Boom(RuntimeError):
    pass


def test_exception_mid_run_leaves_valid_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    frames = make_frames(8, h=24, w=32, f=25.0)
    with pytest.raises(Boom):
        with RunWriter(out, EXPORTS, options=WriterOptions(flush_every=100, trajectory_every=100)) as rw:
            for i, f in enumerate(frames):
                if i == 5:
                    raise Boom("network crashed")
                rw.add(f)
    traj = np.loadtxt(out / "trajectory.txt", ndmin=2)
    assert len(traj) == 5
    np.testing.assert_allclose(traj[:, 1:4], [f.pose[:3, 3] for f in frames[:5]], atol=1e-7)
    assert len(PlyData.read(str(out / "points.ply"))["vertex"]) > 100
    info = json.loads((out / "run.json").read_text())
    assert info["interrupted"] is True and info["status"] == "interrupted" and info["frames_done"] == 5
    assert sorted(p.name for p in (out / "camera").iterdir()) == [f"{i:06d}.npz" for i in range(5)]
    pycolmap = pytest.importorskip("pycolmap")
    assert pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0")).num_images() == 5
    assert (out / "preview.png").stat().st_size > 1000 and (out / "scene.glb").stat().st_size > 1000


def test_periodic_files_valid_before_close(tmp_path: Path) -> None:
    """As if the process were killed: files written every N frames already hold those frames."""
    out = tmp_path / "out"
    frames = make_frames(7, h=24, w=32, f=25.0)
    rw = RunWriter(out, ["trajectory", "ply", "colmap"],
                   options=WriterOptions(flush_every=3, trajectory_every=2, info_every=2))
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "running" and info["interrupted"] is True and info["frames_done"] == 0
    for f in frames:
        rw.add(f)
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == 6
    assert len(PlyData.read(str(out / "points.ply"))["vertex"]) > 100
    assert json.loads((out / "run.json").read_text())["frames_done"] == 6
    pycolmap = pytest.importorskip("pycolmap")
    for fmt in ("text", "binary"):
        rec = pycolmap.Reconstruction()
        getattr(rec, f"read_{fmt}")(str(out / "colmap" / "sparse" / "0"))
        assert rec.num_images() == 6 and rec.num_points3D() > 100
    rw.close()
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == 7
    assert json.loads((out / "run.json").read_text())["interrupted"] is False
    rw.close()  # idempotent


def test_disk_full_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    rw = RunWriter(out, ["demo"])
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TTT3RError, match="no space left") as ei:
        rw.add(make_frames(1, h=24, w=32, f=25.0)[0])
    assert "\n" not in str(ei.value) and "000000" in str(ei.value)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not list(out.rglob("*.tmp"))


def test_preview_keeps_bounded_thumbnails(tmp_path: Path) -> None:
    w = PreviewWriter(tmp_path / "p.png", n_strip=4)
    frames = make_frames(2, h=24, w=32, f=25.0)
    for i in range(300):
        f = frames[i % 2]
        f.index = i
        w.add(f)
    assert len(w._res.items) <= 8
    strip = w.strip()
    assert len(strip) == 4 and strip[0][0] == 0 and strip[-1][0] >= 200
    w.close()
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_background_writer_same_files(tmp_path: Path) -> None:
    frames = make_frames(6, h=24, w=32, f=25.0)
    for name, bg in (("fg", False), ("bg", True)):
        with RunWriter(tmp_path / name, ["demo", "trajectory", "ply"], background=bg, queue_size=2) as rw:
            for f in frames:
                rw.add(f)
        assert rw.n_frames == 6
    for rel in ("trajectory.txt", "points.ply", "depth/000005.npy", "camera/000003.npz"):
        assert (tmp_path / "fg" / rel).read_bytes() == (tmp_path / "bg" / rel).read_bytes(), rel


def test_background_writer_error_surfaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = make_frames(4, h=24, w=32, f=25.0)
    rw = RunWriter(tmp_path / "o", ["demo", "trajectory"], background=True, queue_size=1)
    rw.add(frames[0])
    import time

    t0 = time.monotonic()
    while rw.info.n_frames < 1 and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    calls = {"n": 0}
    from ttt3r.writers import layout

    real = layout.write_demo_frame

    def failing(out_dir, frame):
        calls["n"] += 1
        raise TTT3RError(f"{out_dir}: no space left on device while writing")

    monkeypatch.setattr(layout, "write_demo_frame", failing)
    with pytest.raises(TTT3RError, match="no space left"):
        for f in frames[1:]:
            rw.add(f)
        rw.close()
    monkeypatch.setattr(layout, "write_demo_frame", real)
    rw.close()
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert info["interrupted"] is True and info["frames_done"] == 1
    assert len(np.loadtxt(tmp_path / "o" / "trajectory.txt", ndmin=2)) == 1


def test_non_finite_network_output_does_not_break_writers(tmp_path: Path) -> None:
    frames = make_frames(4, h=24, w=32, f=25.0)
    frames[2].pose = np.full((4, 4), np.nan)
    frames[1].pts3d_cam[:] = np.nan
    with pytest.warns(RuntimeWarning, match="frame 2"):
        with RunWriter(tmp_path / "o", EXPORTS) as rw:
            for f in frames:
                rw.add(f)
    data = np.loadtxt(tmp_path / "o" / "trajectory.txt", ndmin=2)
    np.testing.assert_array_equal(data[:, 0], [0, 1, 3])  # the timestamp names the missing frame
    assert np.isfinite(data).all()
    v = PlyData.read(str(tmp_path / "o" / "points.ply"))["vertex"]
    assert len(v) > 100 and np.isfinite(v["x"]).all()
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction(str(tmp_path / "o" / "colmap" / "sparse" / "0"))
    assert sorted(im.name for im in rec.images.values()) == ["000000.png", "000001.png", "000003.png"]
    assert json.loads((tmp_path / "o" / "run.json").read_text())["frames_done"] == 4


def _strict_load(path: Path) -> dict:
    def refuse(name: str):
        raise ValueError(f"{path}: not strict JSON ({name})")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_run_json_is_strict_json(tmp_path: Path) -> None:
    from ttt3r.writers.runinfo import RunInfoWriter

    info = {"settings": {"conf_threshold": float("nan"), "voxel_size": float("inf"), "x": np.float32("-inf"),
                         "ok": np.float64(0.5), "list": [1.0, float("nan")]}}
    w = RunInfoWriter(tmp_path / "run.json", info)
    w.close()
    s = _strict_load(tmp_path / "run.json")["settings"]
    assert s == {"conf_threshold": None, "voxel_size": None, "x": None, "ok": 0.5, "list": [1.0, None]}
    # the writer options of a run with a non-finite threshold, too
    with RunWriter(tmp_path / "o", ["trajectory"], options=WriterOptions(conf_threshold=float("nan"))) as rw:
        rw.add(make_frames(1, h=24, w=32, f=25.0)[0])
    assert _strict_load(tmp_path / "o" / "run.json")["writer_options"]["conf_threshold"] is None


def test_run_json_follows_every_frame(tmp_path: Path) -> None:
    """A killed run's run.json is not behind the frames on disk (written after each frame's files)."""
    out = tmp_path / "out"
    rw = RunWriter(out, ["demo", "trajectory"])
    for i, f in enumerate(make_frames(4, h=24, w=32, f=25.0)):
        rw.add(f)
        info = _strict_load(out / "run.json")
        assert info["frames_done"] == i + 1 == len(list((out / "camera").iterdir()))
        assert info["status"] == "running" and info["pid"] == os.getpid()
    rw.close()


def test_disk_full_names_the_file_that_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer thread's error (a per-frame file) is reported, not a later one of the close (points.ply)."""
    import ttt3r.io.atomic as atomic

    real = atomic.os.fsync
    state = {"full": False}

    def fsync(fd: int) -> None:
        if state["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    frames = make_frames(4, h=24, w=32, f=25.0)
    with pytest.raises(TTT3RError, match="no space left") as ei:
        with RunWriter(tmp_path / "o", ["demo", "trajectory", "ply"], background=True, queue_size=1) as rw:
            rw.add(frames[0])
            info = tmp_path / "o" / "run.json"
            for _ in range(500):  # until frame 0 is on disk, its run.json (the last write of a frame) included
                if info.is_file() and json.loads(info.read_text()).get("frames_done") == 1:
                    break
                __import__("time").sleep(0.01)
            state["full"] = True
            for f in frames[1:]:
                rw.add(f)
                __import__("time").sleep(0.2)
    msg = str(ei.value)
    failed = msg.split(":")[0]  # the first file of frame 1 that the layout writes
    assert failed.startswith(str(tmp_path / "o")) and re.search(r"(depth|conf|color|camera)/000001\.\w+$", failed)
    assert "points.ply" not in msg
