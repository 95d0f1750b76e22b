"""``ttt3r reconstruct`` on generated bad input files: exit 2, one line naming the file, nothing touched.

Property-based (hypothesis): truncated, zero-length, wrong-magic PNG, JPEG and mp4
files, and PNG headers that claim huge dimensions, given as the input file itself or
in a folder. Every case fails while the input is opened or its first frame read,
before the output folder is made or the network is loaded.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ttt3r.cli import main as cli

PIXEL_LIMIT = 2 * Image.MAX_IMAGE_PIXELS  # PIL refuses headers above this before decoding


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(width: int, height: int) -> bytes:
    """A well-formed PNG header (valid CRCs) claiming ``width`` x ``height`` RGB, with a token IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Valid files of each kind, to cut short."""
    d = tmp_path_factory.mktemp("good")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(img).save(d / "a.png")
    Image.fromarray(img).save(d / "a.jpg", quality=90)
    with av.open(str(d / "a.mp4"), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.roll(img, 3 * i, axis=1), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return {ext: (d / f"a.{ext}").read_bytes() for ext in ("png", "jpg", "mp4")}


_MAGICS = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"II*", b"MM\x00", b"RIFF", b"\x1aE\xdf\xa3")


@st.composite
def bad_file(draw, good):
    ext = draw(st.sampled_from(["png", "jpg", "mp4"]))
    defect = draw(st.sampled_from(["zero", "truncated", "magic", "huge"] if ext == "png"
                                  else ["zero", "truncated", "magic"]))
    if defect == "zero":
        data = b""
    elif defect == "truncated":
        src = good[ext]
        data = src[: max(1, int(len(src) * draw(st.floats(0.0, 0.85))))]
    elif defect == "magic":
        data = draw(st.one_of(st.binary(min_size=1, max_size=3000),
                              st.sampled_from([b"<html><body>quota exceeded</body></html>", b"\0" * 4096,
                                               b"PK\x03\x04" + b"\0" * 100])))
        if data.startswith(_MAGICS) or data[4:8] == b"ftyp":
            data = b"#" + data
    else:
        side = st.integers(2_000, 1_000_000)
        w, h = draw(st.tuples(side, side).filter(lambda wh: wh[0] * wh[1] > PIXEL_LIMIT))
        data = huge_png(w, h)
    return ext, defect, data, ext != "mp4" and draw(st.booleans())  # folders hold images only


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ckpt(released_ckpt):
    return released_ckpt("tiny224")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_input_file_exits_2_with_one_line(good, ckpt, tmp_path, capsys, data):
    ext, defect, content, in_folder = data.draw(bad_file(good), label="file")
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    folder = root / "input"
    folder.mkdir()
    bad = folder / f"clip.{ext}"
    bad.write_bytes(content)
    (root / "notes.txt").write_text("mine\n")
    before = _snapshot(root)
    out = root / "out"
    capsys.readouterr()
    rc = cli(["reconstruct", str(folder if in_folder else bad), "--out", str(out), "--weights", str(ckpt), "-q"])
    err = capsys.readouterr().err
    assert rc == 2, (defect, err)
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("ttt3r reconstruct: error: ") and str(bad) in lines[0], err
    assert "Errno" not in err, err
    assert not out.exists()
    assert _snapshot(root) == before


def test_huge_png_header_is_refused_before_decoding(tmp_path, capsys, ckpt):
    p = tmp_path / "huge.png"
    p.write_bytes(huge_png(100_000, 100_000))
    rc = cli(["reconstruct", str(p), "--out", str(tmp_path / "out"), "--weights", str(ckpt), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err == (f"ttt3r reconstruct: error: {p}: cannot read image (its header claims "
                               f"10,000,000,000 pixels, more than the {PIXEL_LIMIT:,}-pixel limit)\n")


def test_bad_files_in_a_subprocess_print_one_line(good, tmp_path):
    """FFmpeg and PIL write nothing of their own to the terminal: stderr is the one error line."""
    import os
    import subprocess
    import sys

    cases = {"cut.mp4": good["mp4"][: len(good["mp4"]) // 2], "huge.png": huge_png(100_000, 100_000)}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
    for name, content in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        r = subprocess.run([sys.executable, "-m", "ttt3r.cli", "reconstruct", str(p), "--out", str(tmp_path / "o"),
                            "--weights", str(tmp_path / "unused.pth"), "-q"],
                           capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and str(p) in r.stderr, (name, r.stderr)
        assert not (tmp_path / "o").exists()
