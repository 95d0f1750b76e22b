"""Write the tiny synthetic dataset fixtures under tests/data/datasets/ (run once; output is committed).

    python tests/eval/make_dataset_fixtures.py

Each dataset gets a few 8x6 frames in its real folder layout with simple known
values (poses, depths) that tests/eval/test_eval_datasets.py checks by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ttt3r.eval.datasets.sintel import write_sintel_cam, write_sintel_depth

OUT = Path(__file__).parents[1] / "data" / "datasets"
H, W = 6, 8


def _rgb(path: Path, k: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = (40 * k) % 256
    img[..., 1] = np.arange(W)[None, :] * 30
    Image.fromarray(img).save(path)


def _depth16(path: Path, raw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(raw, np.uint16)).save(path)


def _raw(value: int, corner: int = 0) -> np.ndarray:
    """(H, W) uint16 filled with ``value``, with pixel (0, 0) set to ``corner``."""
    a = np.full((H, W), value, np.uint16)
    a[0, 0] = corner
    return a


def sintel() -> None:
    root = OUT / "sintel" / "training"
    K = np.array([[100.0, 0, 4], [0, 100.0, 3], [0, 0, 1]])
    rz90 = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    w2c = [
        np.hstack([np.eye(3), [[-1.0], [-2.0], [-3.0]]]),  # camera centre (1, 2, 3)
        np.hstack([rz90, np.zeros((3, 1))]),  # rotated about z, at the origin
        np.hstack([np.eye(3), np.zeros((3, 1))]),
    ]
    for k in range(1, 4):
        _rgb(root / "final" / "alley_2" / f"frame_{k:04d}.png", k)
        (root / "camdata_left" / "alley_2").mkdir(parents=True, exist_ok=True)
        write_sintel_cam(root / "camdata_left" / "alley_2" / f"frame_{k:04d}.cam", K, w2c[k - 1])
        (root / "depth" / "alley_2").mkdir(parents=True, exist_ok=True)
        d = np.full((H, W), 1.5 * k, np.float32)
        write_sintel_depth(root / "depth" / "alley_2" / f"frame_{k:04d}.dpt", d)


def tum() -> None:
    seq = OUT / "long_tum_s1" / "rgbd_dataset_freiburg3_walking_xyz"
    stamps = ["1341846313.553992", "1341846313.592026", "1341846313.621620"]
    for k, s in enumerate(stamps):
        _rgb(seq / "rgb_50" / f"{s}.png", k)
    gt = [
        "1341846313.5540 1.0 2.0 3.0 0 0 0 1",
        "1341846313.5920 1.1 2.0 3.0 0 0 0.7071067811865476 0.7071067811865476",
        "1341846313.6216 1.2 2.0 3.0 0 0 0 1",
    ]
    (seq / "groundtruth_50.txt").write_text("\n".join(gt) + "\n")


def scannet() -> None:
    seq = OUT / "long_scannet_s3" / "scene0707_00"
    poses = [
        "1 0 0 0.5 0 1 0 0.25 0 0 1 1 0 0 0 1",
        "-inf -inf -inf -inf -inf -inf -inf -inf -inf -inf -inf -inf -inf -inf -inf -inf",
        "1 0 0 0.7 0 1 0 0.25 0 0 1 1 0 0 0 1",
    ]
    for k in range(3):
        _rgb(seq / "color_50" / f"frame_{k:04d}.jpg", k)
        _depth16(seq / "depth_50" / f"frame_{k:04d}.png", _raw(1500))
    (seq / "pose_50.txt").write_text("\n".join(poses) + "\n")
    (seq / "intrinsic").mkdir(exist_ok=True)
    (seq / "intrinsic" / "intrinsic_color.txt").write_text(
        "1169.6 0 646.3 0\n0 1167.1 489.9 0\n0 0 1 0\n0 0 0 1\n"
    )


def bonn() -> None:
    seq = OUT / "long_bonn_s1" / "rgbd_bonn_dataset" / "rgbd_bonn_balloon2"
    stamps = ["1548266469.96769", "1548266470.00362", "1548266470.03610"]
    for k, s in enumerate(stamps):
        _rgb(seq / "rgb_50" / f"{s}.png", k)
        _depth16(seq / "depth_50" / f"{s}.png", _raw(10000))  # 2 m at 5000 per metre
    gt = np.array([[float(s), 0.1 * k, 0, 0, 0, 0, 0, 1] for k, s in enumerate(stamps)])
    np.savetxt(seq / "groundtruth_50.txt", gt)  # the paper's preprocessing writes with savetxt


def kitti() -> None:
    base = OUT / "kitti" / "depth_selection" / "val_selection_cropped"
    drive = "2011_09_26_drive_0002_sync_02"
    for k in range(5, 8):
        _rgb(base / "image_gathered" / drive / f"{k:010d}.png", k)
        _depth16(base / "groundtruth_depth_gathered" / drive / f"{k:010d}.png", _raw(3200))  # 12.5 m


def sevenscenes() -> None:
    scene = OUT / "7scenes" / "chess"
    scene.mkdir(parents=True, exist_ok=True)
    (scene / "TestSplit.txt").write_text("sequence3\n")
    seq = scene / "seq-03"
    for k in range(5):
        stem = seq / f"frame-{k:06d}"
        _rgb(stem.with_name(stem.name + ".color.png"), k)
        raw = _raw(2000, corner=65535)
        raw[0, 1] = 12000  # 12 m: beyond the 10 m cap
        _depth16(stem.with_name(stem.name + ".depth.proj.png"), raw)
        pose = np.eye(4)
        pose[:3, 3] = [0.1 * k, 0, 0]
        np.savetxt(stem.with_name(stem.name + ".pose.txt"), pose)


def nrgbd() -> None:
    scene = OUT / "neural_rgbd" / "kitchen"
    blocks = []
    for k in range(4):
        _rgb(scene / "images" / f"img{k}.png", k)
        _depth16(scene / "depth" / f"depth{k}.png", _raw(3000))
        if k == 2:
            blocks.append("\n".join(["nan nan nan nan"] * 4))
        else:
            blocks.append(f"1 0 0 {k}\n0 1 0 2\n0 0 1 3\n0 0 0 1")
    (scene / "poses.txt").write_text("\n".join(blocks) + "\n")


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    for make in (sintel, tum, scannet, bonn, kitti, sevenscenes, nrgbd):
        make()


if __name__ == "__main__":
    main()
