"""The nerfstudio export against nerfstudio 1.1.5's documented transforms.json schema and camera model.

nerfstudio itself does not install here (torch, open3d, tyro, ...), so the checks follow its
``Nerfstudio`` dataparser: intrinsics at the top level or in every frame, ``file_path`` /
``depth_file_path`` relative to the folder (depth for all frames or none), 16-bit depth times
``depth_unit_scale_factor`` (1e-3), OpenGL camera-to-world, rays through pixel centres at +0.5.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData

from ttt3r.preprocess import network_to_source_affine
from ttt3r.results import SourceRef
from ttt3r.writers import RunWriter
from writer_scene import make_frames

N = 5
NET_H, NET_W, SRC_H, SRC_W, SIZE = 32, 64, 96, 160, 64
INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


@pytest.fixture(scope="module")
def ns_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("ns")
    rng = np.random.default_rng(1)
    frames, sources = [], []
    for f in make_frames(N, h=NET_H, w=NET_W):
        img = rng.integers(0, 255, (SRC_H, SRC_W, 3), dtype=np.uint8)
        Image.fromarray(img).save(d / f"s{f.index}.png")
        frames.append(replace(f, source=SourceRef(str(d / f"s{f.index}.png"), (SRC_H, SRC_W), None, SIZE)))
        sources.append(img)
    out = d / "out"
    with RunWriter(out, ["ply", "nerfstudio"]) as rw:
        for f in frames:
            rw.add(f)
    return out / "nerfstudio", frames, sources


def test_transforms_json_schema(ns_run) -> None:
    root, frames, sources = ns_run
    meta = json.loads((root / "transforms.json").read_text())
    # one shared camera: every intrinsic at the top level, none per frame (the parser's "fixed" case)
    assert all(k in meta for k in INTRINSICS) and not any(k in f for f in meta["frames"] for k in INTRINSICS)
    assert (meta["w"], meta["h"]) == (SRC_W, SRC_H) and meta["camera_model"] == "OPENCV"
    assert meta["depth_unit_scale_factor"] == 1e-3
    assert len(meta["frames"]) == N
    for f, entry, src in zip(frames, sorted(meta["frames"], key=lambda e: e["file_path"]), sources):
        np.testing.assert_array_equal(np.asarray(Image.open(root / entry["file_path"])), src)
        assert (root / entry["depth_file_path"]).is_file()
        T = np.array(entry["transform_matrix"])
        assert T.shape == (4, 4)
        back = T.copy()
        back[:3, 1:3] *= -1  # OpenGL -> OpenCV axes
        np.testing.assert_allclose(back, f.pose, atol=1e-12)
    ply = PlyData.read(str(root / meta["ply_file_path"]))["vertex"]
    main = PlyData.read(str(root.parent / "points.ply"))["vertex"]
    assert len(ply["x"]) == len(main["x"]) > 100
    np.testing.assert_array_equal(ply["x"], main["x"])


def test_rays_through_pixel_centres_hit_the_surface(ns_run) -> None:
    root, frames, _ = ns_run
    meta = json.loads((root / "transforms.json").read_text())
    ax, bx, ay, by = network_to_source_affine(SRC_W, SRC_H, SIZE)
    for f, entry in zip(frames, sorted(meta["frames"], key=lambda e: e["file_path"])):
        c2w = np.array(entry["transform_matrix"])
        for v, u in ((20, 30), (5, 50), (28, 3)):
            p = f.points_world()[v, u].astype(np.float64)
            x, y, z = (np.linalg.inv(c2w) @ np.append(p, 1.0))[:3]
            assert z < 0  # OpenGL: the camera looks down -z
            # nerfstudio's ray for image coordinate (i + 0.5, j + 0.5): ((x - cx) / fx, -(y - cy) / fy, -1)
            col = meta["fl_x"] * x / -z + meta["cx"]
            row = meta["fl_y"] * -y / -z + meta["cy"]
            np.testing.assert_allclose([col, row], [ax * u + bx + 0.5, ay * v + by + 0.5], atol=1e-3)


def test_depth_png_in_millimetres_on_the_image_grid(ns_run) -> None:
    root, frames, _ = ns_run
    ax, bx, ay, by = network_to_source_affine(SRC_W, SRC_H, SIZE)
    for f in frames:
        with Image.open(root / "depth" / f"{f.index:06d}.png") as im:
            d = np.asarray(im).astype(np.float64) * 1e-3
        assert d.shape == (SRC_H, SRC_W)
        # source pixel (u0, v0) sees the network pixel nearest to ((u0 - bx) / ax, (v0 - by) / ay)
        for v0, u0 in ((50, 80), (40, 150), (80, 10)):
            u, v = int(round((u0 - bx) / ax)), int(round((v0 - by) / ay))
            if f.conf[v, u] > 1.5:
                assert d[v0, u0] == pytest.approx(f.depth[v, u], abs=5e-4)
        assert (d[0] == 0).all() and (d[-1] == 0).all()  # rows outside the network's crop: unknown
        low = f.conf <= 1.5  # the low-confidence stripe (first network columns) is unknown too
        assert low[:, :4].all() and (d[10:80, :int(ax * 3 + bx)] == 0).all()
        assert (d > 0).mean() > 0.5
