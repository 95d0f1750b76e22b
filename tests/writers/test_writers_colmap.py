"""The COLMAP export at source resolution, with tracks, read and bundle-adjusted by pycolmap."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ttt3r.errors import TTT3RError
from ttt3r.pipeline import ReconstructOptions
from ttt3r.preprocess import crop_geometry, network_to_source_affine, network_to_source_intrinsics, preprocess
from ttt3r.results import SourceRef
from ttt3r.writers import ColmapWriter, RunWriter, WriterOptions
from writer_scene import FX, make_frames

pycolmap = pytest.importorskip("pycolmap")

N = 8
NET_H, NET_W = 32, 64  # what a 160x96 source becomes at size 64
SRC_H, SRC_W = 96, 160
SIZE = 64


def test_network_to_source_by_hand() -> None:
    # 160x96 at size 64: resized to 64x38 (96 * 64 / 160 = 38.4), cropped rows 3..35 (half-height 16 around 19)
    assert crop_geometry(SRC_W, SRC_H, SIZE) == ((64, 38), (0, 3, 64, 35))
    ax, bx, ay, by = network_to_source_affine(SRC_W, SRC_H, SIZE)
    # network pixel 0 spans source columns [0, 2.5): its centre is source pixel 0.75
    assert (ax, bx) == pytest.approx((2.5, 0.75))
    # network row 0 is resized row 3, which spans source rows [3 * 96/38, 4 * 96/38)
    assert (ay, by) == pytest.approx((96 / 38, 3.5 * 96 / 38 - 0.5))
    K = np.array([[50.0, 0, 32], [0, 50.0, 16], [0, 0, 1]])
    K0 = network_to_source_intrinsics(K, SRC_W, SRC_H, SIZE)
    np.testing.assert_allclose(K0, [[125.0, 0, 32 * 2.5 + 0.75], [0, 50 * ay, 16 * ay + by], [0, 0, 1]])


def test_network_to_source_follows_the_resampling() -> None:
    # a small bright blob at a known source pixel lands where the inverse map says, after the real resize + crop
    u0, v0 = 101.3, 47.8
    yy, xx = np.mgrid[0:SRC_H, 0:SRC_W].astype(np.float64)
    blob = 255 * np.exp(-((xx - u0) ** 2 + (yy - v0) ** 2) / (2 * 4.0**2))
    net = preprocess(np.repeat(blob[..., None], 3, 2).astype(np.uint8), SIZE).rgb[..., 0].astype(np.float64)
    assert net.shape == (NET_H, NET_W)
    v, u = np.mgrid[0:NET_H, 0:NET_W]
    w = np.clip(net - 2, 0, None)  # drop the flat background
    uc, vc = (w * u).sum() / w.sum(), (w * v).sum() / w.sum()
    ax, bx, ay, by = network_to_source_affine(SRC_W, SRC_H, SIZE)
    assert ax * uc + bx == pytest.approx(u0, abs=0.15)
    assert ay * vc + by == pytest.approx(v0, abs=0.15)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """The synthetic frames at 64x32, each with a 160x96 source image file; colmap + ply written.

    Fused at pixel stride 1: at stride 2 a voxel holds one or two of a frame's pixels, and only a
    quarter of the points keep two observations within 1 source pixel (see the colmap module doc).
    """
    d = tmp_path_factory.mktemp("colmap")
    rng = np.random.default_rng(0)
    frames, sources = [], []
    for f in make_frames(N, h=NET_H, w=NET_W):
        img = rng.integers(0, 255, (SRC_H, SRC_W, 3), dtype=np.uint8)
        path = d / f"src{f.index}.png"
        Image.fromarray(img).save(path)
        frames.append(replace(f, source=SourceRef(str(path), (SRC_H, SRC_W), None, SIZE)))
        sources.append(img)
    out = d / "out"
    with RunWriter(out, ["ply", "colmap"], options=WriterOptions(fusion_pixel_stride=1)) as rw:
        for f in frames:
            rw.add(f)
        voxel = rw.fusion.voxel_size
    return out, frames, sources, voxel


def _read(out: Path, fmt: str = "binary"):
    rec = pycolmap.Reconstruction()
    getattr(rec, f"read_{fmt}")(str(out / "colmap" / "sparse" / "0"))
    return rec


@pytest.mark.parametrize("fmt", ["text", "binary"])
def test_source_resolution_cameras_images_poses(source_run, fmt: str) -> None:
    out, frames, sources, _ = source_run
    rec = _read(out, fmt)
    assert rec.num_images() == N and rec.num_cameras() == 1  # equal intrinsics: one shared camera
    cam = next(iter(rec.cameras.values()))
    assert cam.model.name == "PINHOLE" and (cam.width, cam.height) == (SRC_W, SRC_H)
    ax, bx, ay, by = network_to_source_affine(SRC_W, SRC_H, SIZE)
    np.testing.assert_allclose(cam.params, [ax * FX, ay * FX, ax * (NET_W // 2) + bx + 0.5,
                                            ay * (NET_H // 2) + by + 0.5])
    by_name = {im.name: im for im in rec.images.values()}
    for f, src in zip(frames, sources):
        im = by_name[f"{f.index:06d}.png"]
        np.testing.assert_array_equal(np.asarray(Image.open(out / "colmap" / "images" / im.name)), src)
        T_cw = np.eye(4)
        T_cw[:3, :] = im.cam_from_world().matrix()
        np.testing.assert_allclose(np.linalg.inv(T_cw), f.pose, atol=1e-6)
        # a surface point seen at network pixel (20, 30) is at source pixel (ax * 30 + bx, ay * 20 + by)
        uv = cam.img_from_cam(im.cam_from_world() * f.points_world()[20, 30].astype(np.float64))
        np.testing.assert_allclose(uv, [ax * 30 + bx + 0.5, ay * 20 + by + 0.5], atol=1e-3)


def test_tracks_reproject_into_their_images(source_run) -> None:
    out, frames, _, voxel = source_run
    rec = _read(out)
    assert rec.num_points3D() > 300
    stored = {pid: p.error for pid, p in rec.points3D.items()}
    tracks = [p.track.length() for p in rec.points3D.values()]
    assert min(tracks) >= 2 and max(tracks) <= 8 and np.mean(tracks) > 2.5
    ax = network_to_source_affine(SRC_W, SRC_H, SIZE)[0]
    dists = []
    for pid, p in rec.points3D.items():
        for el in p.track.elements:
            im = rec.images[el.image_id]
            pc = im.cam_from_world() * p.xyz
            uv = rec.cameras[im.camera_id].img_from_cam(pc)
            d = np.linalg.norm(uv - im.points2D[el.point2D_idx].xy)
            # the fused point and the frame's pixels in its voxel share the voxel: at most its
            # projected diagonal apart (in source pixels)
            assert d <= np.sqrt(3) * voxel * ax * FX / pc[2] + 1e-6
            assert d <= 1 + 1e-6  # every observation within 1 px of the written (source) image
            assert im.points2D[el.point2D_idx].point3D_id == pid  # images.txt and points3D.txt agree
            dists.append(d)
    # within one network pixel on average, and the ERROR column is COLMAP's own mean reprojection error
    assert np.mean(dists) < ax
    rec.update_point_3d_errors()
    for pid, p in rec.points3D.items():
        assert p.error == pytest.approx(stored[pid], abs=1e-5)


def _observations(out: Path, fmt: str) -> dict[tuple, set]:
    """{point xyz: {(image name, x, y)}} of a written model, read by pycolmap."""
    rec = _read(out, fmt)
    obs = {}
    for p in rec.points3D.values():
        key = tuple(np.float32(p.xyz).tolist())
        obs[key] = {(rec.images[el.image_id].name, *np.round(rec.images[el.image_id].points2D[el.point2D_idx].xy, 4))
                    for el in p.track.elements}
    return obs


@pytest.mark.parametrize("fmt", ["text", "binary"])
def test_observations_beyond_the_bound_are_left_out(tmp_path, fmt: str) -> None:
    # network resolution, default fusion (pixel stride 2): the same frames written without a bound and with 1 px
    frames = make_frames(N, h=NET_H, w=NET_W)
    for name, bound in (("all", float("inf")), ("one", 1.0)):
        w = ColmapWriter(tmp_path / name / "colmap", resolution="network", max_reproj_error=bound)
        for f in frames:
            w.add(f)
        w.close()
    every, kept = _observations(tmp_path / "all", fmt), _observations(tmp_path / "one", fmt)
    rec = _read(tmp_path / "all", fmt)
    errors = {}  # (point, image name, x, y) -> COLMAP's reprojection error of that observation
    for p in rec.points3D.values():
        for el in p.track.elements:
            im = rec.images[el.image_id]
            xy = im.points2D[el.point2D_idx].xy
            uv = rec.cameras[im.camera_id].img_from_cam(im.cam_from_world() * p.xyz)
            errors[(tuple(np.float32(p.xyz).tolist()), im.name, *np.round(xy, 4))] = np.linalg.norm(uv - xy)
    assert max(errors.values()) > 1.5  # the bound has something to leave out
    # the bounded model is the unbounded one's observations within 1 px, on points keeping >= 2 of them
    expected = {}
    for (pt, *o), e in errors.items():
        if e <= 1:
            expected.setdefault(pt, set()).add(tuple(o))
    expected = {pt: o for pt, o in expected.items() if len(o) >= 2}
    assert kept == expected and len(kept) > 0.9 * len(every)
    assert kept == _observations(tmp_path / "one", "binary" if fmt == "text" else "text")  # text = binary
    bounded = _read(tmp_path / "one", fmt)
    for im in bounded.images.values():  # images.txt lists exactly the tracks' observations
        assert all(bounded.points3D[p.point3D_id].track.length() >= 2 for p in im.points2D)
    assert sum(len(im.points2D) for im in bounded.images.values()) == sum(len(o) for o in kept.values())


def test_max_reproj_error_is_checked() -> None:
    with pytest.raises(TTT3RError, match=r"^--colmap-max-error: must be a finite number > 0, got 0"):
        ReconstructOptions(colmap_max_reproj_error=0).validate(cli=True)
    with pytest.raises(ValueError, match="max_reproj_error"):
        ColmapWriter("unused", max_reproj_error=-1)


def test_points3d_are_the_ply_points_seen_twice(source_run) -> None:
    from plyfile import PlyData

    out = source_run[0]
    rec = _read(out)
    v = PlyData.read(str(out / "points.ply"))["vertex"]
    ply = {tuple(r) for r in np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float32).tolist()}
    pts = [tuple(np.float32(p.xyz).tolist()) for p in rec.points3D.values()]
    assert all(p in ply for p in pts)


def test_bundle_adjustment_converges_and_does_not_increase_the_error(source_run) -> None:
    rec = _read(source_run[0])
    before = rec.compute_mean_reprojection_error()
    opts = pycolmap.BundleAdjustmentOptions()
    opts.print_summary = False
    opts.refine_focal_length = False
    opts.ceres.solver_options.function_tolerance = 1e-6  # Ceres' own default (pycolmap sets 0)
    cfg = pycolmap.BundleAdjustmentConfig()
    for i in rec.reg_image_ids():
        cfg.add_image(i)
    cfg.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    summary = pycolmap.create_default_bundle_adjuster(opts, cfg, rec).solve()
    assert summary.termination_type == pycolmap.BundleAdjustmentTerminationType.CONVERGENCE
    assert summary.ceres_summary.final_cost <= summary.ceres_summary.initial_cost
    rec.update_point_3d_errors()
    # a point seen from two nearby views can drift along its rays behind a camera (Ceres does not
    # check cheirality; COLMAP filters such points after BA): leave those few out, as COLMAP does
    errors = np.array([p.error for p in rec.points3D.values()])
    kept = errors < 50
    assert kept.mean() > 0.99
    assert errors[kept].mean() <= before + 1e-9
