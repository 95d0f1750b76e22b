"""Chunked streaming on the tiny parity network: the K=1 SE(3) chain is ``reset_every`` bit for bit;
Sim(3) streaming equals a from-scratch per-chunk recomputation; revisits; the folder job's records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import ttt3r
from helpers import PARITY
from ttt3r.chunking import ChunkedSession, ChunkSettings, robust_sim3
from ttt3r.pipeline import ReconstructOptions, reconstruct
from ttt3r.preprocess import Preprocessed, normalize
from ttt3r.revisit import warm_up

FRAMES = sorted((PARITY / "tiny224" / "frames").glob("*.png"))


def _small(paths, side=48):
    """The fixture frames as small network inputs (any multiple of 16 works): keeps the tests fast."""
    out = []
    for p in paths:
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB").resize((side, side), Image.BILINEAR))
        out.append(Preprocessed(normalize(rgb), rgb, rgb.shape[:2]))
    return out


SMALL = _small(FRAMES + FRAMES[::-1][1:4])  # 9 frames


@pytest.fixture(scope="module")
def model(released_ckpt):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny network is faster on one thread, much faster on a busy machine
    yield ttt3r.load_model(released_ckpt("tiny224"), device="cpu")
    torch.set_num_threads(threads)


def _fields(r):
    return {"pose": r.pose, "pts3d_cam": r.pts3d_cam, "conf": r.conf, "intrinsics": r.intrinsics,
            "pts3d_world": r.pts3d_world}


@pytest.mark.parametrize("n,frames", [(3, FRAMES), (2, SMALL)], ids=["parity-frames-reset3", "small-reset2"])
def test_overlap1_se3_is_reset_every_bit_for_bit(model, n, frames):
    """On the parity run ``ttt3r_reset3`` (pinned to the original by test_parity) and a shorter chunk."""
    raws_a, raws_b = [], []
    ref = list(ttt3r.Session(model, update="ttt3r", reset_every=n, want={"world"}, raw_hook=raws_a.append)
               .run(frames))
    cs = ChunkedSession.for_network(model, ChunkSettings(n, 1, "se3"), update="ttt3r", want={"world"},
                                    raw_hook=raws_b.append)
    got = list(cs.run(frames))
    assert len(got) == len(ref) == len(frames)
    assert len(raws_b) == len(raws_a)  # the same views fed (each re-open once)
    for a, b in zip(ref, got):
        assert a.index == b.index and a.name == b.name
        for key, va in _fields(a).items():
            assert np.array_equal(va, _fields(b)[key]), (a.index, key)
    assert [c.mode for c in cs.alignments] == ["world"] + ["se3"] * ((len(frames) - 1) // n)
    assert all(c.scale == 1.0 for c in cs.alignments)


class _FullRefeed:
    """A NetworkChunks that keeps the whole input and re-encodes re-fed frames (the reference)."""

    def __init__(self, chunks):
        self.chunks = chunks

    def __getattr__(self, name):
        return getattr(self.chunks, name)

    def keep(self, prepared):
        return prepared


@pytest.mark.parametrize("align", ["sim3", "se3"])
def test_refeeds_from_kept_encoder_tokens_equal_re_encoding(model, monkeypatch, align):
    """Re-fed overlap frames run from their kept encoder output: bit-identical, and never re-encoded."""
    from ttt3r.chunking.stream import NetworkChunks

    frames, st = SMALL, ChunkSettings(3, 2, align)
    encodes = []
    real = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda img: encodes.append(1) or real(img))
    cs = ChunkedSession.for_network(model, st, want={"world"})
    got = list(cs.run(frames))
    assert len(encodes) == len(frames)  # each frame encoded once; 2 x 2 re-feeds were not
    encodes.clear()
    ref_stream = ChunkedSession(_FullRefeed(NetworkChunks(ttt3r.Session(model, want={"world"}))), st)
    ref = list(ref_stream.run(frames))
    assert len(encodes) == len(frames) + 2 * ((len(frames) - 1) // 3)
    for a, b in zip(ref, got):
        for key, va in _fields(a).items():
            assert np.array_equal(va, _fields(b)[key]), (a.index, key)
    assert [c.to_json()["matrix"] for c in cs.alignments] == [c.to_json()["matrix"] for c in ref_stream.alignments]


def test_reset_every_reopens_from_kept_encoder_tokens(model, monkeypatch):
    encodes = []
    real = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda img: encodes.append(1) or real(img))
    list(ttt3r.Session(model, reset_every=2).run(SMALL))
    assert len(encodes) == len(SMALL)


def test_sim3_streaming_equals_recomputation(model):
    """Each chunk recomputed from scratch by a fresh Session on its frames, chained offline."""
    frames = SMALL[:9]
    n, k = 3, 2
    h, w = ttt3r.Session(model).step(frames[0]).hw
    st = ChunkSettings(n, k, "sim3", max_points=k * h * w)  # every pixel: the recomputation uses all
    stream = list(ChunkedSession.for_network(model, st).run(frames))

    world: dict[int, np.ndarray] = {}  # frame -> (H*W, 3) world points, and its confidence
    conf: dict[int, np.ndarray] = {}
    expected = {}
    for c in range((len(frames) + n - 1) // n):
        fed = list(range(max(0, c * n - k), min(len(frames), (c + 1) * n))) if c else list(range(n))
        results = list(ttt3r.Session(model).run([frames[i] for i in fed]))
        pts = {i: r.pts3d_cam.reshape(-1, 3).astype(np.float64) @ r.pose[:3, :3].T + r.pose[:3, 3]
               for i, r in zip(fed, results)}
        if c == 0:
            R, t, s = np.eye(3), np.zeros(3), 1.0
        else:
            ov = fed[:k]
            fit = robust_sim3(np.concatenate([pts[i] for i in ov]), np.concatenate([world[i] for i in ov]),
                              np.concatenate([conf[i] * r.conf.reshape(-1) for i, r in zip(ov, results)]))
            R, t, s = fit.sim
        for i, r in zip(fed, results):
            if c and i in fed[:k]:
                continue
            pose = np.eye(4)
            pose[:3, :3] = R @ r.pose[:3, :3]
            pose[:3, 3] = s * R @ r.pose[:3, 3] + t
            expected[i] = (pose, r.depth * s)
            world[i] = s * pts[i] @ R.T + t
            conf[i] = r.conf.reshape(-1).astype(np.float64)
    assert sorted(expected) == list(range(len(frames)))
    for r in stream:
        pose, depth = expected[r.index]
        np.testing.assert_allclose(r.pose, pose, rtol=0, atol=1e-6)  # float32 pointmaps, float64 fits
        np.testing.assert_allclose(r.depth, depth, rtol=1e-6)
    starts = [r.index for r in stream if "chunk" in r.extras]
    assert starts == [0, 3, 6]


def test_revisit_with_updates_is_the_sequence_fed_twice(model):
    frames = SMALL[:4]
    twice = list(ttt3r.Session(model).run(frames + frames))[len(frames):]
    sess = ttt3r.Session(model)
    assert warm_up(sess, lambda: iter(frames), 2, True, lambda s, f: s.step(f)) == len(frames)
    last = list(sess.run(frames))
    assert [r.index for r in last] == list(range(len(frames)))
    for a, b in zip(twice, last):
        assert np.array_equal(a.pose, b.pose) and np.array_equal(a.depth, b.depth)


def test_revisit_without_updates_reads_the_first_pass_state(model):
    frames = SMALL[:4]

    def last_pass(passes, update):
        sess = ttt3r.Session(model)
        warm_up(sess, lambda: iter(frames), passes, update, lambda s, f: s.step(f))
        return list(sess.run(frames)), sess

    two, sess = last_pass(2, False)
    three, _ = last_pass(3, False)
    once = list(ttt3r.Session(model).run(frames))
    assert not sess.update_state
    for a, b in zip(two, three):  # read-only passes change nothing
        assert np.array_equal(a.pose, b.pose) and np.array_equal(a.depth, b.depth)
    assert not np.allclose(two[1].depth, once[1].depth)  # but the state is the first pass's, not empty


def test_folder_job_records_chunks(model, tmp_path):
    out = tmp_path / "run"
    opts = ReconstructOptions(chunk=2, overlap=1, chunk_align="sim3", exports=("trajectory", "preview"), quiet=True)
    summary = reconstruct(PARITY / "tiny224" / "frames", out, opts, model=model)
    assert summary.frames == len(FRAMES)
    info = json.loads((out / "run.json").read_text())
    chunks = info["chunks"]
    assert [c["chunk"] for c in chunks] == [0, 1, 2] and [c["first_frame"] for c in chunks] == [0, 2, 4]
    assert chunks[1]["overlap"] == [1, 2] and chunks[1]["mode"] == "sim3"
    m = np.array(chunks[2]["matrix"])
    assert m.shape == (4, 4) and abs(np.cbrt(np.linalg.det(m[:3, :3])) - chunks[2]["scale"]) < 1e-6
    for c in chunks[1:]:
        assert c["residual"] >= 0 and 0 <= c["confidence"] <= 1 and 0 < c["inlier_fraction"] <= 1
    ref = list(ChunkedSession.for_network(model, ChunkSettings(2, 1, "sim3")).run(FRAMES))
    traj = np.loadtxt(out / "trajectory.txt")
    np.testing.assert_allclose(traj[:, 1:4], np.stack([r.pose[:3, 3] for r in ref]), atol=1e-6)
    assert (out / "preview.png").stat().st_size > 0


def test_sim3_falls_back_to_the_chain_when_the_overlap_disagrees():
    """A chunk whose overlap points are garbage: the fit explains them worse than the pose chain."""
    from ttt3r.chunking import ChunkAligner
    from ttt3r.results import FrameResult

    rng = np.random.default_rng(0)
    h, w = 12, 16

    def frame(i, pts, x):
        pose = np.eye(4)
        pose[0, 3] = x
        return FrameResult(i, f"f{i}", pts.astype(np.float32), np.full((h, w), 2.0, np.float32), pose,
                           np.eye(3), np.zeros((h, w, 3), np.uint8))

    scene = rng.uniform(1, 3, (h, w, 3))
    al = ChunkAligner(ChunkSettings(2, 1, "sim3"))
    al.open_chunk(0)
    for i in range(2):
        al.emit(frame(i, scene, 0.1 * i))
    al.open_chunk(2)
    al.add_overlap(frame(1, scene * rng.uniform(0.2, 5, (h, w, 1)), 0.0))  # its points disagree wildly
    rec = al.records[-1]
    assert rec.mode == "se3-fallback" and rec.scale == 1.0
    np.testing.assert_array_equal(rec.matrix, frame(1, scene, 0.1).pose)  # the chain through frame 1
