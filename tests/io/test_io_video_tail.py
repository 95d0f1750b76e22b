"""A video cut short is an error (a warning with ``skip_bad``), never a silently shorter run.

The files are written here with PyAV: an mp4 with its index (moov atom) first, as
streaming-friendly encoders write them, so that a file cut in half still opens and
declares all its frames; an mkv, which declares only its duration. Errors are one
line in plain words (no ``[Errno 1094995529]``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from ttt3r.cli import main as cli
from ttt3r.errors import InputError
from ttt3r.io.frames import BadFrameWarning, open_frames

N = 100


def _write_video(path: Path, n: int = N, options: dict | None = None) -> Path:
    with av.open(str(path), "w", options=options or {}) as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            img = np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    mp4 = _write_video(d / "full.mp4", options={"movflags": "faststart"})
    assert mp4.read_bytes()[4:8] == b"ftyp" and b"moov" in mp4.read_bytes()[:64]  # the index comes first
    mkv = _write_video(d / "full.mkv")
    return {"mp4": mp4, "half": _cut(mp4, d / "half.mp4", 0.5), "mkv_cut": _cut(mkv, d / "cut.mkv", 0.9),
            "mp4_tail": _cut(mp4, d / "tail.mp4", 0.97)}


@pytest.mark.parametrize("key", ["half", "mkv_cut", "mp4_tail"])
def test_cut_video_is_an_error(videos, key):
    with pytest.raises(InputError) as ei:
        open_frames(videos[key])
    msg = str(ei.value)
    assert "\n" not in msg and str(videos[key]) in msg and "truncated" in msg and f"declares {N} frames" in msg


def test_cut_video_with_skip_bad_reads_what_is_there(videos):
    with pytest.warns(BadFrameWarning, match="truncated"):
        src = open_frames(videos["half"], skip_bad=True)
    frames = list(src)
    assert 0 < len(frames) < N // 2 + 5
    assert src.counts() == {"frames_expected": N, "frames_read": len(frames), "frames_skipped": 0}
    assert len(src) == len(frames)  # the progress total is what the file holds
    full = open_frames(videos["mp4"])
    assert full.counts()["frames_expected"] == N and len(list(full)) == N and full.counts()["frames_read"] == N


def test_the_intact_head_of_a_cut_video_reads_without_error(videos):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(open_frames(videos["half"], max_frames=10))) == 10


def test_cli_refuses_a_cut_video_and_records_counts_with_skip_bad(videos, released_ckpt, tmp_path, capsys):
    ckpt = released_ckpt("tiny224")
    n = 12
    half = _cut(_write_video(tmp_path / "short.mp4", n, {"movflags": "faststart"}), tmp_path / "half.mp4", 0.5)
    out = tmp_path / "out"
    rc = cli(["reconstruct", str(half), "--out", str(out), "--weights", str(ckpt), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and "truncated" in err and "Traceback" not in err
    assert not out.exists()
    with pytest.warns(BadFrameWarning, match="truncated"):  # in this process warnings are pytest's
        rc = cli(["reconstruct", str(half), "--out", str(out), "--weights", str(ckpt), "-q",
                  "--skip-bad", "--export", "trajectory"])
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    assert run["frames_expected"] == n
    assert 0 < run["frames_read"] == run["frames_done"] < n
    assert len((out / "trajectory.txt").read_text().splitlines()) == 1 + run["frames_read"]


def test_video_errors_are_plain_words(tmp_path, videos):
    cases = {"zero.mp4": b"", "garbage.mp4": bytes(range(256)) * 20, "cut_index.mov": None}
    mov = _write_video(tmp_path / "full.mov")  # index (moov) at the end: a cut file has none
    for name, data in cases.items():
        p = tmp_path / name
        if data is None:
            _cut(mov, p, 0.5)
        else:
            p.write_bytes(data)
        with pytest.raises(InputError) as ei:
            open_frames(p)
        msg = str(ei.value)
        assert "Errno" not in msg and "1094995529" not in msg and "\n" not in msg, msg
        assert msg.startswith(f"{p}: cannot open video (") and msg.count(str(p)) == 1, msg
