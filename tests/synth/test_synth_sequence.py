"""render_sequence / load_sequence: layout, determinism, resume, errors; the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("pybullet")

from ttt3r.cli import main as cli_main  # noqa: E402
from ttt3r.errors import TTT3RError  # noqa: E402
from ttt3r.synth import load_sequence, render_sequence  # noqa: E402
from ttt3r.synth import render as render_mod  # noqa: E402

SMALL = dict(size=(64, 48), progress=False)


def _files(d):
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())


def _bytes(d):
    return {f: (d / f).read_bytes() for f in _files(d) if f != "meta.json"}


@pytest.fixture(scope="module")
def walk4(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth") / "walk"
    render_sequence(d, frames=4, seed=7, motion="walk", **SMALL)
    return d


def test_layout_and_loader(walk4):
    assert _files(walk4) == sorted(
        ["meta.json", "trajectory.txt"]
        + [f"{sub}/{i:06d}.{ext}" for i in range(4) for sub, ext in (("rgb", "png"), ("depth", "npy"), ("camera", "npz"))]
    )
    meta = json.loads((walk4 / "meta.json").read_text())
    for k, v in dict(seed=7, scene_seed=7, motion="walk", frames=4, width=64, height=48, fov_deg=70.0, fps=30.0, complete=True).items():
        assert meta[k] == v
    assert meta["objects"] and all("name" in o for o in meta["objects"])
    seq = load_sequence(walk4)
    assert len(seq) == 4 and seq.size == (64, 48)
    np.testing.assert_allclose(seq.timestamps, np.arange(4) / 30.0)
    for i, f in enumerate(seq):
        assert f.index == i
        assert f.rgb.shape == (48, 64, 3) and f.rgb.dtype == np.uint8
        assert f.depth.shape == (48, 64) and f.depth.dtype == np.float32
        assert (f.depth > 0).all() and np.isfinite(f.depth).all()
        assert f.rgb.std() > 5  # textured, not blank
        np.testing.assert_allclose(f.intrinsics, seq.intrinsics)
        np.testing.assert_allclose(f.intrinsics[:2, 2], [31.5, 23.5])
        # TUM trajectory (text) matches the exact per-frame pose
        np.testing.assert_allclose(seq.poses[i], f.pose, atol=1e-9)
    assert seq[-1].index == 3
    rel = seq.poses_from_first()
    np.testing.assert_allclose(rel[0], np.eye(4), atol=1e-12)
    f0, f3 = seq[0], seq[3]
    np.testing.assert_allclose(f0.points_cam()[..., 2], f0.depth)
    # a pixel's world point seen from frame 0 equals rel-pose-free unprojection
    pw = f3.points_world().reshape(-1, 3).astype(np.float64)
    pc0 = (pw - f0.pose[:3, 3]) @ f0.pose[:3, :3]
    pc0_rel = f3.points_cam().reshape(-1, 3) @ rel[3][:3, :3].T + rel[3][:3, 3]
    np.testing.assert_allclose(pc0, pc0_rel, atol=1e-4)
    with pytest.raises(IndexError):
        seq[4]


def test_same_seed_same_bytes_other_seed_other_frames(walk4, tmp_path):
    again = render_sequence(tmp_path / "again", frames=4, seed=7, motion="walk", **SMALL)
    assert _bytes(again) == _bytes(walk4)
    other = render_sequence(tmp_path / "other", frames=4, seed=8, motion="walk", **SMALL)
    a, b = load_sequence(walk4), load_sequence(other)
    assert not np.array_equal(a.rgb(0), b.rgb(0))
    assert not np.allclose(a.poses, b.poses)
    # same scene, other motion seed: the scene description is the same, the path differs
    same_scene = render_sequence(tmp_path / "scene", frames=4, seed=9, scene_seed=7, motion="walk", **SMALL)
    ma, mc = (json.loads((d / "meta.json").read_text()) for d in (walk4, same_scene))
    assert ma["objects"] == mc["objects"] and ma["surfaces"] == mc["surfaces"]
    assert not np.allclose(load_sequence(same_scene).poses, a.poses)


def test_resume_renders_only_missing_frames(walk4, tmp_path, monkeypatch):
    d = tmp_path / "resume"
    render_sequence(d, frames=4, seed=7, motion="walk", **SMALL)
    before = _bytes(d)
    mtimes = {f: (d / f).stat().st_mtime_ns for f in _files(d)}
    (d / "camera" / "000001.npz").unlink()  # frame 1 interrupted before its last file
    (d / "rgb" / "000003.png").unlink()
    (d / "depth" / ".000003.npy.abc123.tmp").write_bytes(b"half")  # left by a killed run
    written = []
    real = render_mod.write_frame
    monkeypatch.setattr(render_mod, "write_frame", lambda out, i, *a: (written.append(i), real(out, i, *a)))
    render_sequence(d, frames=4, seed=7, motion="walk", **SMALL)
    assert sorted(written) == [1, 3]
    assert _bytes(d) == before
    for f in ("rgb/000000.png", "depth/000002.npy", "camera/000002.npz"):
        assert (d / f).stat().st_mtime_ns == mtimes[f]
    # complete: nothing rendered again
    written.clear()
    render_sequence(d, frames=4, seed=7, motion="walk", **SMALL)
    assert written == []


def test_other_settings_into_an_existing_folder_are_refused(walk4):
    with pytest.raises(TTT3RError, match="seed=7, not 8") as e:
        render_sequence(walk4, frames=4, seed=8, motion="walk", **SMALL)
    assert str(walk4) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(TTT3RError, match="width"):
        render_sequence(walk4, frames=4, seed=7, motion="walk", size=(32, 24), progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(frames=0), "frames"),
        (dict(motion="spin"), "unknown motion 'spin'"),
        (dict(size=(4, 4)), "size 4x4"),
        (dict(fov_deg=0.0), "fov"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, match):
    args = dict(frames=2, seed=0, motion="orbit", size=(64, 48), progress=False)
    args.update(kwargs)
    with pytest.raises(TTT3RError, match=match) as e:
        render_sequence(tmp_path / "x", **args)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "x").exists()


def test_loader_errors_name_the_file(walk4, tmp_path):
    with pytest.raises(TTT3RError, match="not a folder"):
        load_sequence(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TTT3RError, match="meta.json: missing"):
        load_sequence(tmp_path / "empty")
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(walk4, d)
    (d / "depth" / "000002.npy").write_bytes(b"garbage")
    seq = load_sequence(d)
    with pytest.raises(TTT3RError, match=r"000002\.npy: cannot read depth"):
        seq.depth(2)
    meta = json.loads((d / "meta.json").read_text())
    meta["complete"] = False
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TTT3RError, match="incomplete"):
        load_sequence(d)
    assert len(load_sequence(d, allow_incomplete=True)) == 4


def test_missing_pybullet_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pybullet", None)  # import pybullet -> ImportError
    with pytest.raises(TTT3RError, match=r"pip install 'ttt3r\[synth\]'") as e:
        render_sequence(tmp_path / "x", frames=1, **SMALL)
    assert "\n" not in str(e.value)


def test_cli_writes_the_layout(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(["synth", "--out", str(out), "--frames", "3", "--seed", "2", "--motion", "loop", "--size", "64x48", "--fov", "80", "--no-progress"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(out)
    seq = load_sequence(out)
    assert len(seq) == 3 and seq.meta["motion"] == "loop" and seq.meta["fov_deg"] == 80.0
    assert np.allclose(seq.poses[-1], seq.poses[0], atol=1e-9)  # loop closes
    lines = (out / "trajectory.txt").read_text().splitlines()
    assert lines[0].startswith("#") and len(lines) == 4 and len(lines[1].split()) == 8
    assert seq.intrinsics[0, 0] == pytest.approx(32 / np.tan(np.radians(40)))


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--size", "64by48"], "64by48"),
        (["--motion", "spin"], "spin"),
        (["--frames", "0"], "frames"),
        (["--frames", "two"], "two"),
        (["--fov", "0"], "fov"),
    ],
)
def test_cli_bad_arguments_print_one_line(tmp_path, capsys, extra, match):
    rc = cli_main(["synth", "--out", str(tmp_path / "o"), "--frames", "2", "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("ttt3r synth: error:") and match in err


def test_cli_refuses_a_file_as_output(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert cli_main(["synth", "--out", str(f), "--frames", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(f) in err and "not a folder" in err
    assert cli_main(["synth", "--frames", "1"]) == 2
    assert "--out" in capsys.readouterr().err


def test_parallel_workers_write_the_same_files(walk4, tmp_path):
    d = render_sequence(tmp_path / "par", frames=4, seed=7, motion="walk", workers=2, **SMALL)
    assert _bytes(d) == _bytes(walk4)
    with pytest.raises(TTT3RError, match="workers"):
        render_sequence(tmp_path / "w0", frames=4, seed=7, motion="walk", workers=0, **SMALL)


def test_unwritable_output_is_a_one_line_error(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(TTT3RError, match="cannot write") as e:
        render_sequence(f / "sub", frames=1, **SMALL)
    assert "file.txt" in str(e.value) and "\n" not in str(e.value)
