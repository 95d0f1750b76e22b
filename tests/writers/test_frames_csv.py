"""Timestamps from the inputs, and ``frames.csv``: which input each output index came from.

A folder of TUM-named images (``1305031102.175304.png``) gives ``trajectory.txt``
the file-name timestamps, so that evo associates it with a ground-truth file; with
``--skip-bad`` the outputs are renumbered and ``frames.csv`` says which input each
index is. The CLI runs in this process on the tiny formula-weight checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ttt3r.cli import main as cli
from ttt3r.io.frames import name_timestamp, open_frames
from ttt3r.io.trajectory import read_tum
from ttt3r.writers.frames_csv import FRAMES_CSV_HEADER, FramesCsvWriter, read_frames_csv

T0 = 1305031102.175304
STAMPS = [T0, T0 + 0.032157, T0 + 0.063971, T0 + 0.099883, T0 + 0.131822]


def _texture(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([127 + 120 * np.sin((xx + 5 * i) / 7), 127 + 120 * np.cos((yy - 3 * i) / 5),
                     np.full_like(xx, 90)], -1).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ckpt(released_ckpt):
    return released_ckpt("tiny224")


@pytest.fixture
def tum_folder(tmp_path):
    d = tmp_path / "rgb"
    d.mkdir()
    for i, t in enumerate(STAMPS):
        Image.fromarray(_texture(i)).save(d / f"{t:.6f}.png")
    return d


def _write_groundtruth(path: Path) -> None:
    """A TUM ground-truth file at 100 Hz, offset by 3 ms from the images (as TUM's mocap is)."""
    ts = np.arange(STAMPS[0] - 0.5, STAMPS[-1] + 0.5, 0.01) + 0.003
    rows = [f"{t:.4f} {0.1 * k:.4f} 0 0 0 0 0 1" for k, t in enumerate(ts)]
    path.write_text("# timestamp tx ty tz qx qy qz qw\n" + "\n".join(rows) + "\n")


def test_name_timestamps():
    assert name_timestamp("1305031102.175304.png") == pytest.approx(1305031102.175304, abs=1e-7)
    assert name_timestamp("rgb/000123.png") == 123.0  # an integer name: a frame number
    for name in ("frame_01.png", "1e5.png", "-3.png", "1.2.3.png", "12a.jpg"):
        assert name_timestamp(name) is None, name


def test_tum_folder_trajectory_matches_groundtruth_with_evo(tum_folder, ckpt, tmp_path):
    from evo.core import sync
    from evo.tools import file_interface

    # a bad file in the middle: skipped with --skip-bad, the outputs renumbered
    bad = tum_folder / f"{STAMPS[2]:.6f}.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="skipping bad frame"):
        rc = cli(["reconstruct", str(tum_folder), "--out", str(out), "--weights", str(ckpt), "-q", "--skip-bad",
                  "--export", "trajectory"])
    assert rc == 0
    kept = [0, 1, 3, 4]
    traj = read_tum(out / "trajectory.txt")
    np.testing.assert_allclose(traj.timestamps, [STAMPS[i] for i in kept], rtol=0, atol=2e-6)

    rows = read_frames_csv(out / "frames.csv")
    assert list(rows[0]) == list(FRAMES_CSV_HEADER)
    assert [int(r["index"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["source_index"]) for r in rows] == kept
    assert [r["source"] for r in rows] == [f"{STAMPS[i]:.6f}.png" for i in kept]
    np.testing.assert_allclose([float(r["timestamp"]) for r in rows], traj.timestamps, rtol=0, atol=2e-6)
    run = json.loads((out / "run.json").read_text())
    assert (run["frames_expected"], run["frames_read"], run["frames_skipped"]) == (5, 4, 1)

    gt = tmp_path / "groundtruth.txt"
    _write_groundtruth(gt)
    ref = file_interface.read_tum_trajectory_file(str(gt))
    est = file_interface.read_tum_trajectory_file(str(out / "trajectory.txt"))
    ref_s, est_s = sync.associate_trajectories(ref, est, max_diff=0.01)
    assert est_s.num_poses == 4
    np.testing.assert_allclose(est_s.timestamps, [STAMPS[i] for i in kept], rtol=0, atol=2e-6)
    assert np.all(np.abs(ref_s.timestamps - est_s.timestamps) <= 0.005)  # the nearest 100 Hz sample


def test_video_frames_csv_has_presentation_times(ckpt, tmp_path):
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            for pkt in s.encode(av.VideoFrame.from_ndarray(_texture(i), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    out = tmp_path / "out"
    assert cli(["reconstruct", str(video), "--out", str(out), "--weights", str(ckpt), "-q", "--frame-interval", "2",
                "--export", "trajectory"]) == 0
    rows = read_frames_csv(out / "frames.csv")
    assert [(r["index"], r["source"], r["source_index"]) for r in rows] == [
        ("0", "clip.mp4#0", "0"), ("1", "clip.mp4#2", "2"), ("2", "clip.mp4#4", "4")]
    np.testing.assert_allclose([float(r["timestamp"]) for r in rows], [0, 2 / 8, 4 / 8], atol=1e-9)
    np.testing.assert_allclose(read_tum(out / "trajectory.txt").timestamps, [0, 2 / 8, 4 / 8], atol=1e-6)


def test_tum_rgb_txt_list_gives_its_timestamps(tum_folder, tmp_path):
    lst = tmp_path / "rgb.txt"
    lines = ["# color images", "# timestamp filename"] + [f"{t:.6f} rgb/{t:.6f}.png" for t in STAMPS]
    lst.write_text("\n".join(lines) + "\n")
    frames = list(open_frames(lst, frame_interval=2))
    assert [f.name for f in frames] == [f"rgb/{STAMPS[i]:.6f}.png" for i in (0, 2, 4)]
    np.testing.assert_allclose([f.timestamp for f in frames], [STAMPS[i] for i in (0, 2, 4)], atol=1e-6)


def test_numeric_names_sort_by_value(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for name in ("10.2.png", "10.175304.png", "9.5.png"):  # natural order would put 10.2 before 10.175304
        Image.fromarray(_texture(0)).save(d / name)
    frames = list(open_frames(d))
    assert [f.name for f in frames] == ["9.5.png", "10.175304.png", "10.2.png"]
    assert [f.timestamp for f in frames] == [9.5, 10.175304, 10.2]
    (d / "notes.png").write_bytes((d / "9.5.png").read_bytes())  # one non-numeric name: indices for all
    assert [f.timestamp for f in open_frames(d)] == [None] * 4


def test_frames_csv_is_valid_after_every_frame(tmp_path):
    from writer_scene import make_frames

    frames = make_frames(4)
    for f, src in zip(frames, (0, 2, 3, 7)):
        f.source_index = src
        f.timestamp = 100.0 + src
    w = FramesCsvWriter(tmp_path / "frames.csv", every=100)
    assert read_frames_csv(tmp_path / "frames.csv") == []
    for k, f in enumerate(frames, 1):
        w.add(f)  # a killed process leaves what is on disk now
        rows = read_frames_csv(tmp_path / "frames.csv")
        assert len(rows) == k and rows[-1]["source_index"] == str(f.source_index)
        assert float(rows[-1]["timestamp"]) == f.timestamp
    w.close()
    assert (tmp_path / "frames.csv").read_text().endswith("\n")


def test_interrupted_run_leaves_frames_csv_for_the_frames_done(tum_folder, ckpt, tmp_path, monkeypatch):
    from ttt3r.session import Session

    real = Session.step
    calls = {"n": 0}

    def step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Session, "step", step)
    out = tmp_path / "int"
    rc = cli(["reconstruct", str(tum_folder), "--out", str(out), "--weights", str(ckpt), "-q",
              "--export", "trajectory"])
    assert rc == 130
    rows = read_frames_csv(out / "frames.csv")
    assert json.loads((out / "run.json").read_text())["frames_done"] == len(rows) == 2
    np.testing.assert_allclose([float(r["timestamp"]) for r in rows], STAMPS[:2], atol=2e-6)


def test_frames_csv_is_owned_by_the_run(tum_folder, ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "frames.csv").write_text("mine\n")  # a foreign file with the name of a run's record
    rc = cli(["reconstruct", str(tum_folder), "--out", str(out), "--weights", str(ckpt), "-q", "--overwrite",
              "--max-frames", "1", "--export", "trajectory"])
    assert rc == 2 and "frames.csv" in capsys.readouterr().err
    assert (out / "frames.csv").read_text() == "mine\n"
