"""Dataset loaders on tiny synthetic fixtures in each benchmark's layout.

The fixtures are written by tests/eval/make_dataset_fixtures.py; the expected
values below are worked out by hand from the numbers written there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ttt3r.errors import TTT3RError
from ttt3r.eval.datasets import DATASETS, dataset_names, get_dataset
from ttt3r.eval.datasets.sintel import read_sintel_cam, read_sintel_depth

FIX = Path(__file__).parents[1] / "data" / "datasets"


def _load(name, **kw):
    ds = get_dataset(name, data_root=FIX, **kw)
    seqs = list(ds)
    assert len(seqs) == len(ds) == 1
    return ds, seqs[0]


def test_registry_covers_the_papers_splits():
    names = set(dataset_names())
    assert {"sintel", "tum", "scannet", "bonn", "kitti", "7scenes", "nrgbd"} <= names
    assert {"tum_s1_50", "tum_s1_1000", "scannet_s3_50", "scannet_s3_1000"} <= names
    assert {"bonn_s1_50", "bonn_s1_500", "kitti_s1_50", "kitti_s1_500"} <= names
    assert "tum_s1_1000" in dataset_names("pose") and "tum_s1_1000" not in dataset_names("depth")
    assert set(dataset_names("recon")) == {"7scenes", "nrgbd"}
    assert set(dataset_names("depth")) >= {"sintel", "bonn", "kitti"}
    with pytest.raises(TTT3RError, match="unknown dataset 'tum_s1_7'"):
        get_dataset("tum_s1_7", data_root=FIX)


def test_sintel():
    ds, seq = _load("sintel", full=True)
    assert ds.max_depth == 70.0 and ds.depth_clip_max == 70.0
    assert [p.name for p in seq.image_paths] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    assert seq.timestamps.tolist() == [1.0, 2.0, 3.0]
    # frame 1: world-to-camera translation (-1, -2, -3) -> camera centre (1, 2, 3)
    np.testing.assert_allclose(seq.poses[0], [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]])
    # frame 2: world-to-camera rotation Rz(90) -> camera-to-world Rz(-90)
    np.testing.assert_allclose(seq.poses[1][:3, :3], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-15)
    np.testing.assert_allclose(seq.intrinsics[2], [[100, 0, 4], [0, 100, 3], [0, 0, 1]])
    d = seq.read_depth(2)
    assert d.shape == (6, 8) and d.dtype == np.float32 and np.all(d == 4.5)
    assert seq.read_depths()[:, 0, 0].tolist() == [1.5, 3.0, 4.5]
    assert seq.max_depth == 70.0 and seq.depth_clip_max == 70.0


def test_sintel_default_list_names_missing_sequence():
    ds = get_dataset("sintel", data_root=FIX)
    assert len(ds.sequence_names()) == 14
    with pytest.raises(TTT3RError, match=r"images of sequence ambush_4 not found: expected folder .*final/ambush_4"):
        ds.load("ambush_4")


def test_sintel_file_readers_reject_garbage(tmp_path):
    bad = tmp_path / "x.dpt"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(TTT3RError, match=r"x.dpt: not a Sintel file"):
        read_sintel_depth(bad)
    good = FIX / "sintel/training/depth/alley_2/frame_0001.dpt"
    trunc = tmp_path / "t.dpt"
    trunc.write_bytes(good.read_bytes()[:-4])
    with pytest.raises(TTT3RError, match="t.dpt: expected 8x6 depths"):
        read_sintel_depth(trunc)
    cam = tmp_path / "c.cam"
    cam.write_bytes((FIX / "sintel/training/camdata_left/alley_2/frame_0001.cam").read_bytes()[:50])
    with pytest.raises(TTT3RError, match="c.cam: truncated"):
        read_sintel_cam(cam)


def test_tum_long_split():
    ds, seq = _load("tum_s1_50")
    assert ds.root == FIX / "long_tum_s1"
    assert seq.name == "rgbd_dataset_freiburg3_walking_xyz" and len(seq) == 3
    assert seq.timestamps.tolist() == [1341846313.554, 1341846313.592, 1341846313.6216]
    np.testing.assert_allclose(seq.poses[:, :3, 3], [[1.0, 2, 3], [1.1, 2, 3], [1.2, 2, 3]])
    # qz = qw = sqrt(1/2): 90 degrees about z
    np.testing.assert_allclose(seq.poses[1][:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    assert seq.intrinsics[0][0, 0] == 535.4 and seq.intrinsics[0][1, 2] == 247.6  # freiburg3
    np.testing.assert_array_equal(seq.trajectory().poses, seq.poses)
    with pytest.raises(TTT3RError, match="no ground-truth depth"):
        seq.read_depth(0)


def test_tum_missing_split_names_expected_folder():
    ds = get_dataset("tum_s1_100", data_root=FIX)
    with pytest.raises(TTT3RError, match=r"expected folder .*rgbd_dataset_freiburg3_walking_xyz/rgb_100"):
        next(iter(ds))


def test_tum_pose_count_mismatch(tmp_path):
    src = FIX / "long_tum_s1"
    shutil.copytree(src, tmp_path / "t")
    gt = tmp_path / "t/rgbd_dataset_freiburg3_walking_xyz/groundtruth_50.txt"
    gt.write_text("\n".join(gt.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(TTT3RError, match=r"2 poses in .*groundtruth_50.txt for 3 images"):
        get_dataset("tum_s1_50", root=tmp_path / "t").load("rgbd_dataset_freiburg3_walking_xyz")


def test_scannet_long_split_with_invalid_pose():
    _, seq = _load("scannet_s3_50")
    assert seq.pose_valid.tolist() == [True, False, True]
    assert np.isnan(seq.poses[1]).all()
    np.testing.assert_allclose(seq.poses[2][:3, 3], [0.7, 0.25, 1.0])
    assert seq.timestamps.tolist() == [0.0, 1.0, 2.0]
    d = seq.read_depth(1)
    assert d[0, 0] == 0.0 and d[3, 3] == pytest.approx(1.5)  # raw 1500 mm
    assert seq.intrinsics[0][0, 0] == pytest.approx(1169.6)


def test_bonn_depth_and_poses():
    ds, seq = _load("bonn_s1_50", full=True)
    assert ds.max_depth == 70.0
    assert seq.name == "balloon2"
    assert seq.read_depth(0)[1, 1] == pytest.approx(2.0)  # raw 10000 / 5000
    assert seq.read_depth(0)[0, 0] == 0.0
    np.testing.assert_allclose(seq.poses[:, 0, 3], [0.0, 0.1, 0.2])
    assert seq.intrinsics[0][0, 0] == pytest.approx(542.822841)
    # the paper's default list names five sequences; the fixture has only one
    with pytest.raises(TTT3RError, match="rgbd_bonn_crowd2"):
        get_dataset("bonn_s1_50", data_root=FIX).load("crowd2")


def test_kitti_depth():
    ds, seq = _load("kitti")
    assert ds.max_depth == seq.max_depth == 80.0 and seq.depth_clip_max is None and seq.poses is None
    assert [p.name for p in seq.image_paths] == ["0000000005.png", "0000000006.png", "0000000007.png"]
    d = seq.read_depth(2)
    assert d[0, 0] == 0.0 and d[5, 7] == pytest.approx(12.5)  # raw 3200 / 256
    with pytest.raises(TTT3RError, match=r"KITTI image folder not found: expected folder .*image_gathered_500"):
        get_dataset("kitti_s1_500", root=FIX / "kitti/depth_selection/val_selection_cropped")


def test_kitti_missing_depth_file(tmp_path):
    shutil.copytree(FIX / "kitti", tmp_path / "k")
    root = tmp_path / "k/depth_selection/val_selection_cropped"
    (root / "groundtruth_depth_gathered/2011_09_26_drive_0002_sync_02/0000000006.png").unlink()
    with pytest.raises(TTT3RError, match=r"no depth map for frame 0000000006.png"):
        next(iter(get_dataset("kitti", root=root)))


def test_sevenscenes_keyframes_depth_and_poses():
    _, seq = _load("7scenes")
    assert seq.name == "chess/seq-03"
    assert [p.name for p in seq.image_paths] == [
        "frame-000000.color.png", "frame-000002.color.png", "frame-000004.color.png",
    ]  # fmt: skip
    np.testing.assert_allclose(seq.poses[:, 0, 3], [0.0, 0.2, 0.4])
    d = seq.read_depth(0)
    assert d[0, 0] == 0.0  # 65535 = missing
    assert d[0, 1] == 0.0  # 12 m > 10 m cap
    assert d[2, 2] == pytest.approx(2.0)
    assert seq.intrinsics.shape == (3, 3, 3) and seq.intrinsics[0][0, 0] == 525.0
    _, every = _load("7scenes", kf_every=1, max_frames=4)
    assert len(every) == 4


def test_nrgbd_gl_to_cv_and_invalid_pose():
    _, seq = _load("nrgbd")
    assert [p.name for p in seq.image_paths] == ["img0.png", "img2.png"]  # step min(2, 4 // 2)
    np.testing.assert_allclose(seq.poses[0], [[1, 0, 0, 0], [0, -1, 0, 2], [0, 0, -1, 3], [0, 0, 0, 1]])
    assert seq.pose_valid.tolist() == [True, False]
    assert seq.read_depth(1)[1, 1] == pytest.approx(3.0)


def test_bad_option_is_a_user_error():
    with pytest.raises(TTT3RError, match=r"kitti: bad dataset option .*kf_every"):
        get_dataset("kitti", data_root=FIX, kf_every=3)


def test_missing_root_is_named():
    with pytest.raises(TTT3RError, match=r"nrgbd: dataset root not found: .*nowhere"):
        get_dataset("nrgbd", root=FIX / "nowhere")


def test_every_registered_loader_can_be_built_or_names_missing_root(tmp_path):
    for name in DATASETS:
        with pytest.raises(TTT3RError, match=name.split("_")[0] if name != "7scenes" else "7scenes"):
            get_dataset(name, data_root=tmp_path)


def test_frames_sorted_in_time_order(tmp_path):
    from ttt3r.eval.datasets.base import list_images

    names = ["1548266470.1.png", "1548266469.96769.png", "1548266470.03610.png", "notes.txt"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == [
        "1548266469.96769.png", "1548266470.03610.png", "1548266470.1.png",
    ]  # fmt: skip
