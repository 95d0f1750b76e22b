"""Frame sources against files generated here with known content."""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ttt3r.errors import InputError, TTT3RError
from ttt3r.io.frames import BadFrameWarning, Frame, load_image, natural_key, open_frames


def _solid(h: int, w: int, value: int) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _save(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


def _marked(h: int, w: int) -> np.ndarray:
    """An image whose top-left pixel block is red and the rest black (reveals rotations)."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:4, :4] = (255, 0, 0)
    return a


# --------------------------------------------------------------------------- folders


def test_folder_natural_order_and_filtering(tmp_path: Path) -> None:
    for i in (10, 2, 1, 33):
        _save(tmp_path / f"frame{i}.png", _solid(20, 24, i))
    (tmp_path / "notes.md").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    (tmp_path / "sub").mkdir()
    src = open_frames(tmp_path)
    assert len(src) == 4 and src.kind == "images" and src.fps is None
    frames = list(src)
    assert [f.name for f in frames] == ["frame1.png", "frame2.png", "frame10.png", "frame33.png"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 10, 33]
    for f in frames:
        assert isinstance(f, Frame) and f.image.dtype == np.uint8 and f.image.shape == (20, 24, 3)


def test_natural_key() -> None:
    names = ["img10.jpg", "img2.jpg", "IMG1.jpg", "img2b.jpg", "a.jpg"]
    assert sorted(names, key=natural_key) == ["a.jpg", "IMG1.jpg", "img2.jpg", "img2b.jpg", "img10.jpg"]


def test_folder_interval_and_max_frames(tmp_path: Path) -> None:
    for i in range(10):
        _save(tmp_path / f"f{i}.png", _solid(16, 16, i))
    src = open_frames(tmp_path, frame_interval=3)
    assert len(src) == 4
    assert [int(f.image[0, 0, 0]) for f in src] == [0, 3, 6, 9]
    src = open_frames(tmp_path, frame_interval=3, max_frames=2)
    assert len(src) == 2
    fr = list(src)
    assert [f.source_index for f in fr] == [0, 3] and [f.index for f in fr] == [0, 1]
    # iterating twice gives the same frames
    assert [f.name for f in src] == [f.name for f in fr]


def test_mixed_sizes_allowed(tmp_path: Path) -> None:
    _save(tmp_path / "a1.png", _solid(16, 20, 1))
    _save(tmp_path / "a2.jpg", _solid(40, 30, 2))
    shapes = [f.image.shape for f in open_frames(tmp_path)]
    assert shapes == [(16, 20, 3), (40, 30, 3)]


def test_conversions(tmp_path: Path) -> None:
    # 16-bit grayscale: full 16-bit range maps to full 8-bit range
    g16 = np.zeros((16, 32), np.uint16)
    g16[:, 16:] = 65535
    g16[0, 0] = 257 * 100
    Image.fromarray(g16).save(tmp_path / "g16.png")
    a = load_image(tmp_path / "g16.png")
    assert a.dtype == np.uint8 and a.shape == (16, 32, 3)
    assert a[0, 0].tolist() == [100] * 3 and a[5, 5].tolist() == [0] * 3 and a[5, 20].tolist() == [255] * 3
    # grayscale 8-bit
    Image.fromarray(np.full((17, 18), 77, np.uint8), "L").save(tmp_path / "g8.jpg", quality=100)
    a = load_image(tmp_path / "g8.jpg")
    assert a.shape == (17, 18, 3) and np.abs(a.astype(int) - 77).max() <= 1
    # RGBA: transparent pixels composite on white, opaque ones keep their colour
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:8, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    rgba[8:, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    a = load_image(tmp_path / "rgba.png")
    assert a[0, 0].tolist() == [200, 0, 0] and a[12, 0].tolist() == [255, 255, 255]
    # palette
    Image.fromarray(_solid(16, 16, 51)).convert("P").save(tmp_path / "pal.png")
    assert load_image(tmp_path / "pal.png")[3, 3].tolist() == [51, 51, 51]
    # CMYK (JPEG): pure cyan -> (0, 255, 255)
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(tmp_path / "cmyk.tif")
    assert load_image(tmp_path / "cmyk.tif")[0, 0].tolist() == [0, 255, 255]


def _png16_rgb(path: Path, arr: np.ndarray) -> None:
    """Write a 16-bit RGB PNG by hand (Pillow cannot write one)."""
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_16bit_rgb_png(tmp_path: Path) -> None:
    a = np.zeros((16, 20, 3), np.uint16)
    a[..., 0], a[..., 1], a[..., 2] = 65535, 257 * 100, 1000
    _png16_rgb(tmp_path / "c16.png", a)
    img = load_image(tmp_path / "c16.png")
    assert img.dtype == np.uint8 and img.shape == (16, 20, 3)
    assert np.abs(img[3, 3].astype(int) - [255, 100, 4]).max() <= 1


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.fromarray(_marked(20, 30))  # 30 wide, 20 tall, red at top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    a = load_image(tmp_path / "rot.jpg")
    assert a.shape == (30, 20, 3)  # width and height swapped
    # after a 90 deg clockwise rotation the red block is at the top-right
    assert a[1, -2, 0] > 200 and a[1, 1, 0] < 50


def test_text_list(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    _save(tmp_path / "imgs" / "b.png", _solid(16, 16, 9))
    _save(tmp_path / "a.png", _solid(16, 16, 5))
    lst = tmp_path / "list.txt"
    lst.write_text(f"# my frames\n\nimgs/b.png\n  a.png  \n{tmp_path / 'imgs' / 'b.png'}\n")
    src = open_frames(lst)
    assert src.kind == "list" and len(src) == 3
    frames = list(src)
    assert [int(f.image[0, 0, 0]) for f in frames] == [9, 5, 9]
    assert [f.name for f in frames] == ["imgs/b.png", "a.png", str(tmp_path / "imgs" / "b.png")]


def test_text_list_missing_entry(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", _solid(16, 16, 5))
    lst = tmp_path / "list.txt"
    lst.write_text("a.png\nmissing.png\n")
    with pytest.raises(InputError, match=r"list\.txt:2: .*missing\.png"):
        open_frames(lst)
    with pytest.warns(BadFrameWarning, match="missing.png"):
        src = open_frames(lst, skip_bad=True)
    assert [f.name for f in src] == ["a.png"]


# --------------------------------------------------------------------------- errors


def _one_line_error(excinfo: pytest.ExceptionInfo, must_name: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert must_name in msg
    return msg


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as ei:
        open_frames(tmp_path / "nope")
    _one_line_error(ei, "nope")


def test_empty_folder_and_no_images(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty folder") as ei:
        open_frames(tmp_path)
    _one_line_error(ei, str(tmp_path))
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(InputError, match="no images") as ei:
        open_frames(tmp_path)


def test_heic_without_pillow_heif(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        (tmp_path / "x.heic").write_bytes(b"\0" * 10)
        with pytest.raises(InputError, match="pillow-heif"):
            open_frames(tmp_path)
    else:  # pragma: no cover
        pytest.skip("pillow_heif installed")


def test_unsupported_file_type(tmp_path: Path) -> None:
    f = tmp_path / "thing.xyz"
    f.write_bytes(b"abc")
    with pytest.raises(InputError, match="unsupported file type") as ei:
        open_frames(f)
    _one_line_error(ei, "thing.xyz")


def test_corrupt_image_and_skip_bad(tmp_path: Path) -> None:
    _save(tmp_path / "f1.png", _solid(16, 16, 1))
    (tmp_path / "f2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage that is not a png")
    good = (tmp_path / "f3.jpg")
    _save(good, _solid(32, 32, 3))
    # truncated jpeg
    data = good.read_bytes()
    (tmp_path / "f4.jpg").write_bytes(data[: len(data) // 2])
    _save(tmp_path / "f5.png", _solid(16, 16, 5))
    src = open_frames(tmp_path)
    assert len(src) == 5
    with pytest.raises(InputError, match="cannot read image") as ei:
        list(src)
    _one_line_error(ei, "f2.png")
    with pytest.warns(BadFrameWarning) as rec:
        frames = list(open_frames(tmp_path, skip_bad=True))
    assert [f.name for f in frames] == ["f1.png", "f3.jpg", "f5.png"]
    assert [f.index for f in frames] == [0, 1, 2]
    msgs = " ".join(str(w.message) for w in rec)
    assert "f2.png" in msgs and "f4.jpg" in msgs


def test_nothing_readable_raises_even_with_skip_bad(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"nope")
    (tmp_path / "b.jpg").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadFrameWarning)
        with pytest.raises(InputError, match="no readable images") as ei:
            list(open_frames(tmp_path, skip_bad=True))
    _one_line_error(ei, str(tmp_path))


def test_too_small_image(tmp_path: Path) -> None:
    _save(tmp_path / "tiny.png", _solid(15, 40, 1))
    with pytest.raises(InputError, match="40x15 px, smaller than the 16x16") as ei:
        list(open_frames(tmp_path))
    _one_line_error(ei, "tiny.png")
    _save(tmp_path / "ok.png", _solid(16, 16, 1))
    with pytest.warns(BadFrameWarning, match="tiny.png"):
        assert [f.name for f in open_frames(tmp_path, skip_bad=True)] == ["ok.png"]


def test_bad_options(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", _solid(16, 16, 1))
    with pytest.raises(TTT3RError, match="frame_interval"):
        open_frames(tmp_path, frame_interval=0)
    with pytest.raises(TTT3RError, match="max_frames"):
        open_frames(tmp_path, max_frames=0)


# --------------------------------------------------------------------------- video


def _frame_value(i: int) -> int:
    return (10 + 20 * i) % 250


def _make_video(path: Path, n: int = 10, fps: int = 25, size: tuple[int, int] = (64, 48),
                rotation: int | None = None) -> None:
    """Write an n-frame video; frame i is a flat grey of value 10 + 20 i."""
    w, h = size
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"qscale": "1"}
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(n):
            img = np.full((h, w, 3), _frame_value(i), np.uint8)
            if rotation is not None:
                img[:8, :8] = (255, 0, 0)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def test_video_frames_interval_and_fps(tmp_path: Path) -> None:
    v = tmp_path / "clip.mp4"
    _make_video(v, n=10, fps=25)
    src = open_frames(v)
    assert src.kind == "video" and src.fps == pytest.approx(25.0)
    assert len(src) == 10
    frames = list(src)
    assert len(frames) == 10
    assert frames[3].name == "clip.mp4#3" and frames[3].timestamp == pytest.approx(3 / 25)
    for i, f in enumerate(frames):
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert abs(float(f.image.mean()) - _frame_value(i)) < 4

    src = open_frames(v, frame_interval=4)
    assert len(src) == 3 and src.sequence_fps == pytest.approx(25 / 4)
    frames = list(src)
    assert [f.source_index for f in frames] == [0, 4, 8] and [f.index for f in frames] == [0, 1, 2]
    assert [f.name for f in frames] == ["clip.mp4#0", "clip.mp4#4", "clip.mp4#8"]
    assert abs(float(frames[2].image.mean()) - _frame_value(8)) < 4

    src = open_frames(v, frame_interval=2, max_frames=3)
    assert len(src) == 3
    assert [f.source_index for f in src] == [0, 2, 4]


def test_video_display_rotation(tmp_path: Path) -> None:
    v = tmp_path / "rot.mp4"
    _make_video(v, n=2, size=(64, 48), rotation=90)
    f = next(iter(open_frames(v)))
    assert f.image.shape == (64, 48, 3)  # portrait after applying the display matrix
    # a 90 deg counter-clockwise rotation moves the top-left mark to the bottom-left
    assert f.image[-3, 2, 0] > 200 and f.image[2, 2, 0] < 150


def test_video_errors(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video at all" * 10)
    with pytest.raises(InputError, match="cannot open video") as ei:
        open_frames(bad)
    _one_line_error(ei, "broken.mp4")

    small = tmp_path / "small.mkv"
    _make_video(small, n=2, size=(8, 8))
    with pytest.raises(InputError, match="8x8 px") as ei:
        open_frames(small)
    _one_line_error(ei, "small.mkv")


def test_video_undecodable_frame_and_skip_bad(tmp_path: Path) -> None:
    # a PNG-coded AVI: one packet per frame, a zeroed packet cannot be decoded
    v = tmp_path / "clip.avi"
    imgs = [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(6)]
    with av.open(str(v), "w") as c:
        s = c.add_stream("png", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "rgb24"
        for img in imgs:
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    assert [np.array_equal(f.image, imgs[i]) for i, f in enumerate(open_frames(v))] == [True] * 6
    data = bytearray(v.read_bytes())
    sig = [i for i in range(len(data)) if data[i : i + 4] == b"\x89PNG"]
    assert len(sig) == 6
    data[sig[2] : sig[2] + 400] = b"\0" * 400
    bad = tmp_path / "corrupt.avi"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="cannot decode video frame") as ei:
        list(open_frames(bad))
    _one_line_error(ei, "corrupt.avi#2")
    with pytest.warns(BadFrameWarning, match=r"corrupt\.avi#2"):
        frames = list(open_frames(bad, skip_bad=True))
    assert len(frames) >= 3 and "corrupt.avi#2" not in [f.name for f in frames]
    assert [f.index for f in frames] == list(range(len(frames)))
    for f in frames:  # every frame that came through is the right, intact one
        assert np.array_equal(f.image, imgs[f.source_index]), f.name


def test_video_unknown_length(tmp_path: Path) -> None:
    v = tmp_path / "clip.mkv"
    _make_video(v, n=7, fps=10)
    src = open_frames(v, frame_interval=2)
    if src.total is not None:  # some muxers do store the count
        assert len(src) == 4
    else:
        with pytest.raises(TypeError):
            len(src)
    frames = list(src)
    assert [f.source_index for f in frames] == [0, 2, 4, 6]
    assert src.fps == pytest.approx(10.0)


def test_h264_example_video() -> None:
    v = Path(__file__).resolve().parents[2] / "examples" / "synthetic_orbit.mp4"
    if not v.is_file():
        pytest.skip("examples/synthetic_orbit.mp4 not present")
    src = open_frames(v, frame_interval=4)
    frames = list(src)
    assert len(frames) == len(src) > 0
    assert all(f.image.shape[2] == 3 and f.image.dtype == np.uint8 and f.image.std() > 5 for f in frames)
    assert frames[1].source_index == 4 and frames[1].timestamp == pytest.approx(4 / src.fps, abs=1e-3)
