"""The viewer (ttt3r.viewer, ``ttt3r view``) on a synthetic run with exact geometry.

Each frame sees a fronto-parallel plane at depth Z in its own camera; pixel
(u, v) of frame i has colour (20 u, 30 v, 50 i), so from a shown point's colour
we know exactly which pixel it came from and where it must be in the world.
Confidence is 1 + ((u + v) % 4), so thresholds filter known counts.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ttt3r.errors import TTT3RError
from ttt3r.geometry import unproject
from ttt3r.results import FrameResult
from ttt3r.viewer import list_frames, read_frame, view_run

try:
    import viser  # noqa: F401

    HAS_VISER = True
except ImportError:
    HAS_VISER = False
needs_viser = pytest.mark.skipif(not HAS_VISER, reason="viser is not installed (pip install 'ttt3r[viz]')")

H, W = 8, 12
FX, FY, CX, CY = 10.0, 12.0, 6.0, 4.0
Z = 2.0
N_FRAMES = 3


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _pose(i: int) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = _rot_y(0.2 * i)
    T[:3, 3] = [0.5 * i, -0.1 * i, 0.3 * i]
    return T


def _K() -> np.ndarray:
    return np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1]], dtype=np.float64)


def _conf() -> np.ndarray:
    v, u = np.mgrid[0:H, 0:W]
    return (1.0 + ((u + v) % 4)).astype(np.float32)


def _rgb(i: int) -> np.ndarray:
    v, u = np.mgrid[0:H, 0:W]
    return np.stack([20 * u, 30 * v, np.full_like(u, 50 * i)], axis=-1).astype(np.uint8)


def _expected_world(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours -> (N, 3) exact world points of the pixels they encode."""
    c = colors.astype(np.int64)
    u, v, i = c[:, 0] // 20, c[:, 1] // 30, c[:, 2] // 50
    cam = np.stack([(u - CX) * Z / FX, (v - CY) * Z / FY, np.full(u.shape, Z)], axis=1)
    out = np.empty_like(cam)
    for k in np.unique(i):
        m = i == k
        P = _pose(int(k))
        out[m] = cam[m] @ P[:3, :3].T + P[:3, 3]
    return out


def _write_run(root: Path, n: int = N_FRAMES) -> Path:
    for sub in ("depth", "conf", "color", "camera"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s = f"{i:06d}"
        np.save(root / "depth" / f"{s}.npy", np.full((H, W), Z, dtype=np.float32))
        np.save(root / "conf" / f"{s}.npy", _conf())
        Image.fromarray(_rgb(i)).save(root / "color" / f"{s}.png")
        np.savez(root / "camera" / f"{s}.npz", pose=_pose(i), intrinsics=_K())
    (root / "run.json").write_text(json.dumps({"frames": n}))
    return root


def _frame(i: int) -> FrameResult:
    depth = np.full((H, W), Z, dtype=np.float32)
    return FrameResult(
        index=i, name=f"f{i}", pts3d_cam=unproject(depth, _K()).astype(np.float32), conf=_conf(),
        pose=_pose(i), intrinsics=_K(), rgb=_rgb(i),
    )


def _n_conf_at_least(t: float) -> int:
    return int((_conf() >= t).sum())


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return _write_run(tmp_path / "run")


@pytest.fixture
def viewer_factory():
    made = []

    def make(**kw):
        from ttt3r.viewer import LiveViewer

        kw.setdefault("port", 0)
        v = LiveViewer(**kw)
        made.append(v)
        return v

    yield make
    for v in made:
        v.close()


# ------------------------------------------------------------------ loader


def test_read_frame_exact(run_dir: Path) -> None:
    assert list_frames(run_dir) == [0, 1, 2]
    f = read_frame(run_dir, 1)
    assert f.hw == (H, W) and f.name == "000001"
    np.testing.assert_allclose(f.depth, Z)
    np.testing.assert_array_equal(f.rgb, _rgb(1))
    np.testing.assert_array_equal(f.conf, _conf())
    np.testing.assert_allclose(f.pose, _pose(1))
    pw = f.points_world().reshape(-1, 3)
    np.testing.assert_allclose(pw, _expected_world(_rgb(1).reshape(-1, 3)), atol=1e-5)


def test_reads_what_the_writers_write(tmp_path: Path) -> None:
    from ttt3r.writers.layout import write_demo_frame

    for i in range(2):
        write_demo_frame(tmp_path, _frame(i))
    assert list_frames(tmp_path) == [0, 1]
    f = read_frame(tmp_path, 1)
    np.testing.assert_allclose(f.points_world(), _frame(1).points_world(), atol=1e-5)
    np.testing.assert_array_equal(f.rgb, _rgb(1))
    np.testing.assert_array_equal(f.conf, _conf())


def test_optional_conf_and_color(run_dir: Path) -> None:
    import shutil

    shutil.rmtree(run_dir / "conf")
    shutil.rmtree(run_dir / "color")
    f = read_frame(run_dir, 0)
    assert np.all(f.conf == 1.0) and f.rgb.shape == (H, W, 3)


def _one_line_error(fn, *needles: str) -> str:
    with pytest.raises(TTT3RError) as ei:
        fn()
    msg = str(ei.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_loader_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    _one_line_error(lambda: list_frames(missing), str(missing))
    (tmp_path / "empty").mkdir()
    _one_line_error(lambda: list_frames(tmp_path / "empty"), str(tmp_path / "empty" / "depth"))
    (tmp_path / "empty" / "depth").mkdir()
    _one_line_error(lambda: list_frames(tmp_path / "empty"), "no frames")

    run = _write_run(tmp_path / "r")
    bad = run / "depth" / "000001.npy"
    bad.write_bytes(b"not an npy file")
    _one_line_error(lambda: read_frame(run, 1), str(bad))
    # view_run streams: frame 0 is fine, frame 1 fails naming its file
    _one_line_error(lambda: list(view_run(run, _Sink())), str(bad))

    run = _write_run(tmp_path / "r2")
    cam = run / "camera" / "000002.npz"
    cam.unlink()
    _one_line_error(lambda: read_frame(run, 2), str(cam), "missing")
    np.savez(cam, pose=_pose(2))
    _one_line_error(lambda: read_frame(run, 2), str(cam), "intrinsics")

    run = _write_run(tmp_path / "r3")
    img = run / "color" / "000000.png"
    Image.fromarray(np.zeros((H + 1, W, 3), np.uint8)).save(img)
    _one_line_error(lambda: read_frame(run, 0), str(img))
    conf = run / "conf" / "000000.npy"
    np.save(conf, np.ones((H, W, 2), np.float32))
    _one_line_error(lambda: read_frame(run, 0), str(conf))


class _Sink:
    """Stands in for a LiveViewer where only the loader is under test."""

    def __init__(self) -> None:
        self.frames: list[FrameResult] = []

    def add(self, frame: FrameResult) -> None:
        self.frames.append(frame)

    def set_status(self, text: str) -> None:
        pass

    def expect_frames(self, n: int) -> None:
        pass


def test_missing_viser_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ttt3r.viewer import LiveViewer

    monkeypatch.setitem(sys.modules, "viser", None)  # import viser -> ImportError
    with pytest.raises(TTT3RError, match=r"^the viewer needs viser: pip install 'ttt3r\[viz\]'$"):
        LiveViewer(port=0)


# ------------------------------------------------------------------ scene


@needs_viser
def test_run_dir_scene(run_dir: Path, viewer_factory) -> None:
    v = viewer_factory(conf_threshold=1.5)
    seen: list[tuple[int, int]] = []
    assert view_run(run_dir, v, progress=lambda d, n: seen.append((d, n))) == N_FRAMES
    assert seen[-1] == (N_FRAMES, N_FRAMES)

    # the server is up: the page is served over HTTP on loopback
    with urllib.request.urlopen(v.url + "/", timeout=5) as r:
        assert r.status == 200 and b"<html" in r.read().lower()

    clouds = v.point_clouds()
    assert sorted(clouds) == [0, 1, 2]
    per_frame = _n_conf_at_least(1.5)
    assert [c.points.shape[0] for c in clouds.values()] == [per_frame] * N_FRAMES
    pts, cols = v.visible_points()
    assert pts.shape == (N_FRAMES * per_frame, 3)
    np.testing.assert_allclose(pts, _expected_world(cols), atol=1e-5)

    # confidence slider re-filters through the GUI handle
    v.conf_slider.value = 3.5
    pts, cols = v.visible_points()
    assert pts.shape[0] == N_FRAMES * _n_conf_at_least(3.5) > 0
    c = cols.astype(np.int64)
    assert np.all((c[:, 0] // 20 + c[:, 1] // 30) % 4 == 3)  # conf 4 only
    np.testing.assert_allclose(pts, _expected_world(cols), atol=1e-5)
    v.conf_slider.value = 1.0
    assert v.visible_points()[0].shape[0] == N_FRAMES * H * W
    v.conf_slider.value = 9.0  # nothing passes: clouds hidden, not counted
    assert v.visible_points()[0].shape[0] == 0
    v.conf_slider.value = 1.5

    # cameras: one frustum per frame at the pose, with the frame's thumbnail
    fr = v.frustums()
    assert sorted(fr) == [0, 1, 2]
    for i, h in fr.items():
        np.testing.assert_allclose(h.position, _pose(i)[:3, 3], atol=1e-6)
        w, x, y, z = h.wxyz
        R = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ])
        np.testing.assert_allclose(R, _pose(i)[:3, :3], atol=1e-6)
        np.testing.assert_allclose(h.fov, 2 * np.arctan2(H / 2, FY))
        np.testing.assert_allclose(h.aspect, W / H)
        assert h.visible

    # trajectory: segments join consecutive camera centres
    segs = v.trajectory_segments()
    centers = np.array([_pose(i)[:3, 3] for i in range(N_FRAMES)])
    np.testing.assert_allclose(segs[:, 0], centers[:-1], atol=1e-6)
    np.testing.assert_allclose(segs[:, 1], centers[1:], atol=1e-6)

    # frame range slider hides clouds and cameras outside [start, end]
    assert v.range_slider.value == (0, N_FRAMES - 1)
    v.range_slider.value = (1, 1)
    assert [i for i, c in v.point_clouds().items() if c.visible] == [1]
    assert [i for i, h in v.frustums().items() if h.visible] == [1]
    assert v.visible_points()[0].shape[0] == per_frame
    v.range_slider.value = (0, N_FRAMES - 1)

    # show/hide toggles and point size
    v.cameras_checkbox.value = False
    assert not any(h.visible for h in v.frustums().values())
    v.cameras_checkbox.value = True
    assert all(h.visible for h in v.frustums().values())
    v.trajectory_checkbox.value = False
    assert not any(h.visible for h in v._trajectory)
    size = v.point_size
    v.point_size_slider.value = 2.0
    assert all(np.isclose(c.point_size, 2 * size) for c in v.point_clouds().values())


@needs_viser
def test_budget_and_downsample(run_dir: Path, viewer_factory) -> None:
    v = viewer_factory(conf_threshold=1.0, max_points_per_frame=10)
    view_run(run_dir, v)
    pts, cols = v.visible_points()
    assert [c.points.shape[0] for c in v.point_clouds().values()] == [10] * N_FRAMES
    np.testing.assert_allclose(pts, _expected_world(cols), atol=1e-5)
    # the subsample is fixed: a higher threshold shows a subset of the same points
    before = {tuple(p) for p in pts.round(5)}
    v.conf_slider.value = 2.5
    after = v.visible_points()[0]
    assert 0 < after.shape[0] < pts.shape[0]
    assert {tuple(p) for p in after.round(5)} <= before

    v2 = viewer_factory(conf_threshold=1.0, downsample=2)
    view_run(run_dir, v2)
    pts, cols = v2.visible_points()
    assert pts.shape[0] == N_FRAMES * (H // 2) * (W // 2)
    assert np.all(cols[:, 0] // 20 % 2 == 0) and np.all(cols[:, 1] // 30 % 2 == 0)
    np.testing.assert_allclose(pts, _expected_world(cols), atol=1e-5)


@needs_viser
def test_total_budget_thins_frames(viewer_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    import ttt3r.viewer._core as core

    monkeypatch.setattr(core, "MIN_POINTS_PER_FRAME", 8)
    v = viewer_factory(conf_threshold=1.0, max_points_per_frame=64, max_points_total=150)
    v.add(_frame(0))
    v.add(_frame(1))
    assert v.points_per_frame == 64
    before = {tuple(p) for p in v.visible_points()[0].round(5)}
    v.add(_frame(2))  # 192 > 150: budget halves, every frame is thinned to 32
    v.add(_frame(3))
    assert v.points_per_frame == 32
    assert [c.points.shape[0] for c in v.point_clouds().values()] == [32] * 4
    pts, cols = v.visible_points()
    np.testing.assert_allclose(pts, _expected_world(cols), atol=1e-5)
    assert {tuple(p) for p in pts[:64].round(5)} <= before  # thinned, not resampled
    # the confidence order survives thinning: a threshold shows a prefix per frame
    v.conf_slider.value = 3.5
    pts, cols = v.visible_points()
    c = cols.astype(np.int64)
    assert 0 < pts.shape[0] < 4 * 32 and np.all((c[:, 0] // 20 + c[:, 1] // 30) % 4 == 3)
    np.testing.assert_allclose(pts, _expected_world(cols), atol=1e-5)

    # a known frame count sets the budget up front (never below the floor)
    v2 = viewer_factory(max_points_per_frame=64, max_points_total=150)
    v2.expect_frames(10)
    assert v2.points_per_frame == 15
    v2.expect_frames(1000)
    assert v2.points_per_frame == 8


@needs_viser
def test_scene_reaches_a_websocket_client(run_dir: Path, viewer_factory) -> None:
    import viser
    from websockets.sync.client import connect

    v = viewer_factory()
    view_run(run_dir, v)
    url = f"ws://127.0.0.1:{v.port}"
    with connect(url, subprotocols=[f"viser-v{viser.__version__}"], max_size=None, open_timeout=5) as ws:
        first = ws.recv(timeout=5)  # the scene replay, serialised without error
    assert isinstance(first, bytes) and len(first) > N_FRAMES * _n_conf_at_least(1.5) * 12


@needs_viser
def test_live_viewer_add(viewer_factory) -> None:
    v = viewer_factory(conf_threshold=1.5)
    assert v.num_frames == 0 and v.trajectory_segments().shape == (0, 2, 3)
    for i in range(N_FRAMES):
        v.add(_frame(i))
        assert v.num_frames == i + 1
        assert v.range_slider.value == (0, i)  # the range follows the newest frame
        assert len(v.frustums()) == i + 1
        assert v.trajectory_segments().shape == (i, 2, 3)
    pts, cols = v.visible_points()
    assert pts.shape[0] == N_FRAMES * _n_conf_at_least(1.5)
    np.testing.assert_allclose(pts, _expected_world(cols), atol=1e-5)
    with pytest.raises(ValueError, match="already added"):
        v.add(_frame(1))

    # a range pinned away from the end stays pinned as frames come
    v.range_slider.value = (0, 1)
    v.add(_frame(3))
    assert v.range_slider.value == (0, 1) and v.range_slider.max == 3
    assert not v.point_clouds()[3].visible and not v.frustums()[3].visible

    v.close()
    v.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        v.add(_frame(4))


@needs_viser
def test_trajectory_chunks(viewer_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    import ttt3r.viewer._core as core

    monkeypatch.setattr(core, "TRAJECTORY_CHUNK", 2)
    v = viewer_factory(max_points_per_frame=4)
    n = 6
    for i in range(n):
        v.add(_frame(i))
    assert len(v._trajectory) == 3  # 5 segments in chunks of 2
    segs = v.trajectory_segments()
    centers = np.array([_pose(i)[:3, 3] for i in range(n)])
    np.testing.assert_allclose(segs[:, 0], centers[:-1], atol=1e-6)
    np.testing.assert_allclose(segs[:, 1], centers[1:], atol=1e-6)


@needs_viser
def test_bad_settings(viewer_factory) -> None:
    with pytest.raises(TTT3RError, match="downsample"):
        viewer_factory(downsample=0)
    with pytest.raises(TTT3RError, match="max points"):
        viewer_factory(max_points_per_frame=0)
    with pytest.raises(TTT3RError, match="host"):
        viewer_factory(host="no-such-host.invalid")


# ------------------------------------------------------------------ CLI


@needs_viser
def test_cli_view(run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import ttt3r.cli.view as view_cli
    from ttt3r.cli import main

    fetched: list[int] = []

    def fake_wait() -> None:
        out = capsys.readouterr().out
        url = next(w for w in out.split() if w.startswith("http://"))
        with urllib.request.urlopen(url + "/", timeout=5) as r:
            fetched.append(r.status)
        raise KeyboardInterrupt

    monkeypatch.setattr(view_cli, "_wait_until_interrupted", fake_wait)
    assert main(["view", str(run_dir), "--port", "0", "--max-points-per-frame", "50"]) == 0
    assert fetched == [200]


def test_cli_view_bad_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ttt3r.cli import main

    missing = tmp_path / "missing"
    assert main(["view", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ttt3r view: error:") and str(missing) in err and "\n" not in err
