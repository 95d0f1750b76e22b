"""End-to-end ``ttt3r reconstruct`` on a small formula-weight checkpoint (released layout).

Inputs (a short video and an image folder) are generated here; every output is read
back with the field's own tools and checked against the Python API's results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import ttt3r
from ttt3r.cli import main as cli
from ttt3r.io.frames import open_frames
from ttt3r.pipeline import ReconstructOptions
from ttt3r.preprocess import network_to_source_affine

N = 5


def _scene_frames(n=N, w=200, h=150):
    """Smoothly moving textured images (deterministic)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        r = 127 + 120 * np.sin((xx + 6 * i) / 9.0)
        g = 127 + 120 * np.cos((yy - 4 * i) / 7.0)
        b = 127 + 120 * np.sin((xx + yy + 5 * i) / 13.0)
        out.append(np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    frames = _scene_frames()
    folder = d / "imgs"
    folder.mkdir()
    for i, f in enumerate(frames):  # natural order: frame2 before frame10
        Image.fromarray(f).save(folder / f"frame{[0, 2, 10, 11, 100][i]}.png")
    video = d / "clip.mp4"
    with av.open(str(video), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 200, 150, "yuv420p"
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return {"folder": folder, "video": video, "frames": frames}


@pytest.fixture(scope="module")
def ckpt(released_ckpt):
    return released_ckpt("tiny224")


def run_cli(*args) -> int:
    return cli(["reconstruct", *map(str, args), "--quiet"])


def test_folder_outputs_read_back(inputs, ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv("TTT3R_CACHE", str(tmp_path / "cache"))  # the checkpoint's hash record goes here
    out = tmp_path / "run"
    assert run_cli(inputs["folder"], "--out", out, "--weights", ckpt, "--export", "all") == 0
    # the Python API (a Session over the same frames) gives the same numbers
    frames = list(open_frames(inputs["folder"]))
    api = list(ttt3r.Session(ttt3r.load_model(ckpt)).run([f.image for f in frames], [f.name for f in frames]))
    assert [r.name for r in api] == ["frame0.png", "frame2.png", "frame10.png", "frame11.png", "frame100.png"]
    for i, r in enumerate(api):
        assert np.array_equal(np.load(out / "depth" / f"{i:06d}.npy"), r.depth)
        assert np.array_equal(np.load(out / "conf" / f"{i:06d}.npy"), r.conf)
        cam = np.load(out / "camera" / f"{i:06d}.npz")
        assert np.allclose(cam["pose"], r.pose) and np.allclose(cam["intrinsics"], r.intrinsics)
        assert np.array_equal(np.asarray(Image.open(out / "color" / f"{i:06d}.png")), r.rgb)

    # trajectory.txt with evo's reader equals camera/*.npz
    from evo.tools import file_interface

    traj = file_interface.read_tum_trajectory_file(str(out / "trajectory.txt"))
    assert traj.num_poses == N
    for i, T in enumerate(traj.poses_se3):
        assert np.allclose(T, np.load(out / "camera" / f"{i:06d}.npz")["pose"], atol=1e-6)

    # COLMAP model with pycolmap: world-to-camera of images.txt = inverse of our poses
    import pycolmap

    rec = pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0"))
    assert rec.num_images() == N and rec.num_points3D() > 0
    by_name = {img.name: img for img in rec.images.values()}
    for i in range(N):
        img = by_name[f"{i:06d}.png"]
        w2c = np.eye(4)
        w2c[:3, :4] = img.cam_from_world().matrix()
        assert np.allclose(np.linalg.inv(w2c), np.load(out / "camera" / f"{i:06d}.npz")["pose"], atol=1e-5)
        cam = rec.cameras[img.camera_id]
        # source resolution: the 200x150 input frames, the focal scaled back through the preprocessing
        ax = network_to_source_affine(200, 150, 224)[0]
        assert (cam.width, cam.height) == (200, 150)
        assert np.isclose(cam.focal_length_x, ax * api[i].intrinsics[0, 0], rtol=1e-5)
        assert np.array_equal(np.asarray(Image.open(out / "colmap" / "images" / img.name)), frames[i].image)

    # PLY with plyfile and trimesh; points are bounded and finite
    import trimesh
    from plyfile import PlyData

    ply = PlyData.read(str(out / "points.ply"))
    v = ply["vertex"]
    xyz = np.stack([v["x"], v["y"], v["z"]], -1)
    assert len(xyz) > 0 and np.isfinite(xyz).all() and {"red", "green", "blue"} <= set(v.data.dtype.names)
    assert len(trimesh.load(out / "points.ply").vertices) == len(xyz)
    assert len(trimesh.load(out / "scene.glb").geometry) >= 1

    # nerfstudio: one entry per frame, the input images at their size, OpenGL camera-to-world
    meta = json.loads((out / "nerfstudio" / "transforms.json").read_text())
    assert len(meta["frames"]) == N and meta["ply_file_path"] == "sparse_pc.ply"
    for i, entry in enumerate(sorted(meta["frames"], key=lambda e: e["file_path"])):
        assert np.array_equal(np.asarray(Image.open(out / "nerfstudio" / entry["file_path"])), frames[i].image)
        assert (entry.get("w", meta.get("w")), entry.get("h", meta.get("h"))) == (200, 150)
        T = np.array(entry["transform_matrix"])
        T[:3, 1:3] *= -1
        assert np.allclose(T, np.load(out / "camera" / f"{i:06d}.npz")["pose"], atol=1e-9)
    # the flythrough: one video frame per input frame
    with av.open(str(out / "flythrough.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == N

    def no_constants(name):
        raise AssertionError(f"run.json is not strict JSON: {name}")

    info = json.loads((out / "run.json").read_text(), parse_constant=no_constants)
    assert info["interrupted"] is False and info["frames_done"] == N
    assert info["settings"]["update"] == "ttt3r" and "torch" in info["versions"]
    import hashlib

    assert info["weights_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert info["settings"]["dtype"] == "fp32"
    assert info["versions"]["av"] == av.__version__ and info["versions"]["ttt3r"] == ttt3r.__version__
    assert info["versions"]["numpy"] == np.__version__
    assert Image.open(out / "preview.png").size[0] > 200


def test_video_input_and_options(inputs, ckpt, tmp_path):
    out = tmp_path / "v"
    assert run_cli(inputs["video"], "--out", out, "--weights", ckpt, "--frame-interval", "2",
                   "--update", "cut3r", "--reset-every", "2", "--export", "demo,trajectory") == 0
    assert sorted(p.name for p in (out / "depth").iterdir()) == [f"{i:06d}.npy" for i in range(3)]
    assert not (out / "points.ply").exists()
    src = open_frames(inputs["video"], frame_interval=2)
    assert [f.name for f in src] == ["clip.mp4#0", "clip.mp4#2", "clip.mp4#4"]
    t = np.loadtxt(out / "trajectory.txt")
    assert np.allclose(t[:, 0], [0.0, 0.2, 0.4])  # 10 fps video, every 2nd frame


def test_video_colmap_at_source_and_network_resolution(inputs, ckpt, tmp_path):
    import pycolmap

    decoded = {f.index: f.image for f in open_frames(inputs["video"], frame_interval=2)}
    for res, size, bound in (("source", (200, 150), "1"), ("network", (224, 224), "0.5")):
        out = tmp_path / res
        assert run_cli(inputs["video"], "--out", out, "--weights", ckpt, "--frame-interval", "2",
                       "--export", "demo,colmap", "--colmap-res", res, "--colmap-max-error", bound) == 0
        rec = pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0"))
        assert rec.num_images() == 3 and rec.num_cameras() in (1, 3)
        # the bound reaches the writer (its effect: tests/writers/test_writers_colmap.py; this 3-frame run
        # of the bundled model writes no points3D, bound or not)
        assert json.loads((out / "run.json").read_text())["settings"]["colmap_max_reproj_error"] == float(bound)
        for img in rec.images.values():
            i = int(img.name[:6])
            assert (rec.cameras[img.camera_id].width, rec.cameras[img.camera_id].height) == size
            pixels = np.asarray(Image.open(out / "colmap" / "images" / img.name))
            # the decoded video frame again (source), or exactly what the network saw (network)
            want = decoded[i] if res == "source" else np.asarray(Image.open(out / "color" / f"{i:06d}.png"))
            assert np.array_equal(pixels, want)
            w2c = np.eye(4)
            w2c[:3, :4] = img.cam_from_world().matrix()
            assert np.allclose(np.linalg.inv(w2c), np.load(out / "camera" / f"{i:06d}.npz")["pose"], atol=1e-5)


def test_registered_rule_and_export_reach_the_command(inputs, ckpt, tmp_path, monkeypatch):
    from ttt3r import update
    from ttt3r.io.atomic import atomic_write_text
    from ttt3r.writers import exports as registry

    monkeypatch.setattr(update, "_RULES", dict(update._RULES))
    monkeypatch.setattr(registry, "_EXPORTS", dict(registry._EXPORTS))
    firsts = []

    @update.register_rule("halfway")
    def halfway(old, new, ctx):
        firsts.append(ctx.first)
        return new if ctx.first else 0.5 * (old + new)

    class NamesWriter:
        def __init__(self, path):
            self.path, self.names = path, []

        def add(self, frame):
            self.names.append(frame.name)

        def flush(self):
            pass

        def close(self, interrupted=False):
            atomic_write_text(self.path, "\n".join(self.names) + "\n")

    @registry.register_export
    class NamesExport(registry.Export):
        name = "names"
        files = (r"names\.txt",)
        path = "names.txt"
        help = "names.txt: the input frame names"

        @classmethod
        def create(cls, ctx):
            return NamesWriter(ctx.out_dir / cls.path)

    out = tmp_path / "reg"
    assert run_cli(inputs["folder"], "--out", out, "--weights", ckpt, "--update", "halfway",
                   "--export", "trajectory,names") == 0
    assert firsts == [True] + [False] * (N - 1)  # the registered rule updated the state at every frame
    assert json.loads((out / "run.json").read_text())["settings"]["update"] == "halfway"
    assert (out / "names.txt").read_text().split() == ["frame0.png", "frame2.png", "frame10.png", "frame11.png",
                                                       "frame100.png"]
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == N
    assert json.loads((out / ".ttt3r-manifest.json").read_text())["patterns"] == [
        r"trajectory\.txt", r"names\.txt", r"run\.json", r"frames\.csv"]


def test_interrupt_leaves_valid_outputs(inputs, ckpt, tmp_path, monkeypatch, capsys):
    from ttt3r.session import Session

    real = Session.step
    calls = {"n": 0}

    def step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Session, "step", step)
    out = tmp_path / "int"
    assert run_cli(inputs["folder"], "--out", out, "--weights", ckpt) == 130
    assert "interrupted" in capsys.readouterr().err
    info = json.loads((out / "run.json").read_text())
    assert info["interrupted"] is True and info["frames_done"] == 3
    assert len(np.loadtxt(out / "trajectory.txt", ndmin=2)) == 3
    for i in range(3):
        np.load(out / "depth" / f"{i:06d}.npy")
    assert not (out / "depth" / "000003.npy").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "tiny", "foreign", "is_file", "bad_export",
                                  "bad_weights", "no_cuda"])
def test_bad_input_one_line_error(case, inputs, ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    src = inputs["folder"]
    extra: list = []
    if case == "missing":
        src = tmp_path / "nope"
    elif case == "empty":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "corrupt":
        src = tmp_path / "corrupt"
        src.mkdir()
        Image.fromarray(inputs["frames"][0]).save(src / "a1.png")
        (src / "a2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif case == "tiny":
        src = tmp_path / "tiny"
        src.mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "t.png")
    elif case == "foreign":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "is_file":
        out.write_text("x")
    elif case == "bad_export":
        extra = ["--export", "demo,bogus"]
    elif case == "bad_weights":
        ckpt = tmp_path / "w.pth"
        ckpt.write_bytes(b"not a checkpoint")
    elif case == "no_cuda":
        if __import__("torch").cuda.is_available():
            pytest.skip("CUDA is available here")
        extra = ["--device", "cuda"]
    rc = run_cli(src, "--out", out, "--weights", ckpt, *extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("ttt3r reconstruct: error:") and "\n" not in err and "Traceback" not in err
    named = {"missing": "nope", "empty": "empty", "corrupt": "a2.png", "tiny": "t.png", "foreign": "out",
             "is_file": "out", "bad_export": "bogus", "bad_weights": "w.pth", "no_cuda": "cuda"}[case]
    assert named in err
    if case == "foreign":
        assert (out / "notes.txt").read_text() == "mine"


def test_skip_bad_and_overwrite_keeps_foreign_files(inputs, ckpt, tmp_path, capsys):
    src = tmp_path / "mixed"
    src.mkdir()
    for i, f in enumerate(inputs["frames"][:3]):
        Image.fromarray(f).save(src / f"f{i}.png")
    (src / "f1b.png").write_bytes(b"broken")
    out = tmp_path / "o"
    with pytest.warns(UserWarning, match=r"skipping bad frame: .*f1b\.png: cannot read image"):
        assert run_cli(src, "--out", out, "--weights", ckpt, "--skip-bad") == 0
    assert len(list((out / "depth").iterdir())) == 3
    (out / "notes.txt").write_text("keep me")
    assert run_cli(src, "--out", out, "--weights", ckpt, "--skip-bad", "--overwrite", "--max-frames", "2") == 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert len(list((out / "depth").iterdir())) == 2


def test_mixed_sizes_and_formats(ckpt, tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    f = _scene_frames(3)
    Image.fromarray(f[0]).save(src / "a0.jpg")
    Image.fromarray(f[1][:, :, 0]).save(src / "a1.png")  # grayscale
    Image.fromarray(np.dstack([f[2], np.full(f[2].shape[:2], 200, np.uint8)])).resize((300, 120)).save(src / "a2.png")
    (Image.fromarray((f[0][:, :, 0].astype(np.uint16) * 257))).save(src / "a3.png")  # 16-bit
    model = ttt3r.load_model(ckpt, device="cpu")
    summary = ttt3r.reconstruct(src, tmp_path / "out", ReconstructOptions(quiet=True, exports=("demo",)), model=model)
    res = [np.load(p) for p in sorted((tmp_path / "out" / "depth").glob("*.npy"))]
    assert summary.frames == 4
    assert len(res) == 4 and all(r.shape == (224, 224) and np.isfinite(r).all() for r in res)


def test_given_model_is_what_run_json_records(inputs, ckpt, tmp_path):
    # the options say fp32 on "auto"; the network handed in is bf16 on the CPU
    model = ttt3r.load_model(ckpt, device="cpu", dtype="bf16")
    opts = ReconstructOptions(quiet=True, exports=("demo",), max_frames=2)
    summary = ttt3r.reconstruct(inputs["folder"], tmp_path / "o", opts, model=model)
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert summary.frames == 2 and info["frames_done"] == 2
    assert info["settings"]["device"] == "cpu" and info["settings"]["dtype"] == "bf16"  # as --dtype spells it
    assert info["weights"] == "(given model)" and info["weights_sha256"] is None


def test_live_view_receives_every_frame(inputs, ckpt, tmp_path):
    pytest.importorskip("viser", reason="viser is not installed (pip install 'ttt3r[viz]')")
    opts = ReconstructOptions(weights=str(ckpt), view=True, view_port=0, quiet=True, conf_threshold=0.0)
    summary = ttt3r.reconstruct(inputs["folder"], tmp_path / "live", opts)
    try:
        assert summary.frames == N
        assert len(summary.viewer.frustums()) == N and len(summary.viewer.point_clouds()) == N
    finally:
        summary.viewer.close()


def test_full_disk_is_one_line(inputs, ckpt, tmp_path, monkeypatch, capsys):
    import errno

    import ttt3r.io.atomic as atomic

    real = atomic.os.fsync
    calls = {"n": 0}
    failed: list[str] = []  # the temporary file of each failed write, in order

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 12:
            failed.append(os.readlink(f"/proc/self/fd/{fd}"))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    out = tmp_path / "full"
    rc = run_cli(inputs["folder"], "--out", out, "--weights", ckpt)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no space left on device" in err and "\n" not in err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    # a file whose write failed is named, not one that the close tried afterwards (issue 20); an atomic
    # write's temporary file is DIR/.NAME.XXXX.tmp beside its final name DIR/NAME (the frame files are
    # written by a background thread, so the first failure in time may be another of those that failed)
    finals = {Path(t).parent / Path(t).name[1:].rsplit(".", 2)[0] for t in failed}
    assert any(f"{f}: no space left on device" in err for f in finals), (err, failed)
    assert "points.ply" not in err and "trajectory.txt" not in err, err
