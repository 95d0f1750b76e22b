"""VoxelFusion tracks: per voxel, one observation per frame (the mean pixel of that frame's points in it)."""

from __future__ import annotations

import numpy as np
import pytest

from ttt3r.geometry import transform_points, unproject
from ttt3r.writers import VoxelFusion
from writer_scene import make_frames

N = 5


def _check_tracks(c, length: int) -> None:
    for fr, cnt, total in zip(c.track_frame, c.track_count, c.count):
        used = fr[fr >= 0]
        assert len(used) <= length and (np.diff(used) > 0).all()  # distinct frames, earliest first
        assert (fr[len(used):] == -1).all() and (cnt[len(used):] == 0).all()
        if len(used) < length:  # every frame that added to the voxel is there: the counts add up
            assert cnt.sum() == total
        assert c.first_frame[0] >= 0


@pytest.mark.parametrize("max_points", [2_000_000, 300])  # 300: coarsened several times
def test_tracks_are_the_mean_pixels_of_each_frame(max_points: int) -> None:
    frames = make_frames(N)
    # a voxel size that puts no plane of the scene on a voxel boundary (4.0 and 1.0 are not multiples)
    f = VoxelFusion(voxel_size=0.0937, pixel_stride=1, track_length=8, max_points=max_points, batch_points=2000)
    for fr in frames:
        f.add_frame(fr)
    c = f.fused()
    assert (max_points > 1000) == (f.n_coarsen == 0)
    _check_tracks(c, 8)
    # brute force: the pixels of frame 2 whose points fall in each voxel, averaged
    fr = frames[2]
    keep = fr.conf > 1.5
    pts = transform_points(fr.pose, unproject(fr.depth, fr.intrinsics))[keep]
    v, u = np.nonzero(keep)
    cells = np.floor(pts / f.voxel_size).astype(np.int64)
    mine = np.floor(c.xyz.astype(np.float64) / f.voxel_size).astype(np.int64)
    rows, slots = np.nonzero(c.track_frame == 2)
    assert len(rows) > 20
    for r, s in zip(rows[::max(1, len(rows) // 25)], slots[::max(1, len(rows) // 25)]):
        inside = (cells == mine[r]).all(axis=1)
        assert inside.sum() == c.track_count[r, s]
        np.testing.assert_allclose(c.track_uv[r, s], [u[inside].mean(), v[inside].mean()], atol=1e-3)
    # first_frame is the earliest tracked frame
    np.testing.assert_array_equal(c.first_frame, c.track_frame[:, 0])


def test_track_length_bounds_the_observations() -> None:
    f = VoxelFusion(pixel_stride=1, track_length=2)
    for fr in make_frames(N):
        f.add_frame(fr)
    c = f.fused()
    assert c.track_frame.shape[1] == 2 and (c.track_frame >= 0).sum(1).max() == 2
    _check_tracks(c, 2)
    assert VoxelFusion().fused().track_frame is None  # no tracks unless asked for
