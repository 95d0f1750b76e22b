"""Per-frame folder layouts (ttt3r.io.layout): names, formats, write order, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from ttt3r.io.layout import DEMO_LAYOUT, FrameLayout, read_frame_files


def _frame(h=4, w=5):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 3.0, (h, w))
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 2.0, 3.0]
    K = np.array([[10.0, 0, 2.0], [0, 10.0, 1.5], [0, 0, 1]])
    return rgb, depth, pose, K


def test_demo_layout_names_and_formats(tmp_path):
    p = DEMO_LAYOUT.paths(tmp_path, 7)
    assert {k: str(v.relative_to(tmp_path)) for k, v in p.items()} == {
        "color": "color/000007.png", "depth": "depth/000007.npy", "conf": "conf/000007.npy",
        "camera": "camera/000007.npz"}
    rgb, depth, pose, K = _frame()
    conf = np.full(depth.shape, 2.0)
    DEMO_LAYOUT.write(tmp_path, 7, rgb, depth, pose, K, conf=conf)
    assert np.load(p["depth"]).dtype == np.float32 and np.load(p["conf"]).dtype == np.float32
    with np.load(p["camera"]) as z:
        assert sorted(z.files) == ["intrinsics", "pose"] and z["pose"].dtype == np.float64
    back = read_frame_files(DEMO_LAYOUT, tmp_path, 7)
    np.testing.assert_array_equal(back["color"], rgb)
    np.testing.assert_array_equal(back["depth"], depth.astype(np.float32))
    np.testing.assert_array_equal(back["conf"], conf.astype(np.float32))
    np.testing.assert_array_equal(back["pose"], pose)
    np.testing.assert_array_equal(back["intrinsics"], K)
    assert sorted(q.name for q in tmp_path.rglob("*")) == sorted(["color", "depth", "conf", "camera", *(
        v.name for v in p.values())])  # no temporaries left


def test_synth_layout_has_rgb_and_no_conf(tmp_path):
    from ttt3r.synth.render import SYNTH_LAYOUT

    p = SYNTH_LAYOUT.paths(tmp_path, 0)
    assert sorted(str(v.relative_to(tmp_path)) for v in p.values()) == [
        "camera/000000.npz", "depth/000000.npy", "rgb/000000.png"]
    rgb, depth, pose, K = _frame()
    SYNTH_LAYOUT.write(tmp_path, 0, rgb, depth, pose, K)
    back = read_frame_files(SYNTH_LAYOUT, tmp_path, 0)
    assert "conf" not in back
    np.testing.assert_array_equal(back["color"], rgb)


def test_camera_is_written_last_and_conf_is_required(tmp_path, monkeypatch):
    import ttt3r.io.layout as layout

    order = []
    real_map, real_cam = layout.save_map, layout.save_camera
    monkeypatch.setattr(layout, "save_map", lambda path, a: (order.append(path.parent.name), real_map(path, a)))
    monkeypatch.setattr(layout, "save_camera", lambda path, *a, **kw: (order.append(path.parent.name), real_cam(path, *a, **kw)))
    rgb, depth, pose, K = _frame()
    DEMO_LAYOUT.write(tmp_path, 0, rgb, depth, pose, K, conf=depth)
    assert order == ["depth", "conf", "camera"]
    with pytest.raises(ValueError, match="conf is required"):
        FrameLayout().write(tmp_path, 1, rgb, depth, pose, K)
