"""flythrough.mp4: decodes with PyAV, one frame per input frame (bounded), shows the cloud growing."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from ttt3r.writers import RunWriter
from ttt3r.writers.video import VideoWriter, follow_camera, render_points
from writer_scene import make_frames

N = 10


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_render_points_by_hand() -> None:
    K = np.array([[10.0, 0, 8], [0, 10.0, 6], [0, 0, 1]])
    xyz = np.array([[0.0, 0, 2], [0.0, 0, 1], [0.4, 0.2, 2]])  # two on the axis (the nearer wins), one off it
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    img = render_points(xyz, rgb, np.eye(4), K, (12, 16), splat=1)
    assert tuple(img[6, 8]) == (0, 255, 0)
    assert tuple(img[7, 10]) == (0, 0, 255)  # (10 * 0.2 + 8, 10 * 0.1 + 6)
    assert (img.reshape(-1, 3) != img[0, 0]).any(axis=1).sum() == 2
    # behind the camera: not drawn
    assert (render_points(-xyz, rgb, np.eye(4), K, (12, 16)) == img[0, 0]).all()


def test_follow_camera_looks_at_the_point_ahead() -> None:
    pose = make_frames(3)[2].pose
    f = follow_camera(pose, back=0.5)
    ahead = pose[:3, 3] + 1.0 * pose[:3, 2]
    d = ahead - f[:3, 3]
    np.testing.assert_allclose(d / np.linalg.norm(d), f[:3, 2], atol=1e-12)
    np.testing.assert_allclose(f[:3, :3].T @ f[:3, :3], np.eye(3), atol=1e-12)
    assert (f[:3, 3] - pose[:3, 3]) @ pose[:3, 1] < 0  # above (camera y is down)


def test_video_export(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with RunWriter(out, ["video"]) as rw:
        for f in make_frames(N):
            rw.add(f)
    frames = _decode(out / "flythrough.mp4")
    assert len(frames) == N
    assert frames[0].shape[1] == 480 and frames[0].shape[0] % 2 == 0
    lit = [(np.abs(f.astype(int) - [16, 17, 20]).sum(-1) > 40).mean() for f in frames]
    assert min(lit) > 0.1  # not blank
    assert lit[-1] > lit[0]  # the cloud grows along the path
    assert np.std(frames[-1]) > 10


def test_video_frames_are_bounded_and_the_cloud_grows(tmp_path: Path) -> None:
    w = VideoWriter(tmp_path / "v.mp4", max_frames=4, width=160)
    for f in make_frames(N):
        w.add(f)
    assert w.frame_indices() == [0, 3, 6, 9]
    cloud = w.fusion.fused()
    assert [(cloud.first_frame <= i).sum() for i in (0, 3, 6, 9)] == sorted(
        (cloud.first_frame <= i).sum() for i in (0, 3, 6, 9))
    assert (cloud.first_frame <= 0).sum() < (cloud.first_frame <= 9).sum() == len(cloud)
    w.close()
    assert len(_decode(tmp_path / "v.mp4")) == 4
