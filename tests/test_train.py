"""Training: losses on hand-computed cases, overfitting one clip, exact resume, CLI/config errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ttt3r.errors import TTT3RError
from ttt3r.train.config import apply_overrides, load_config
from ttt3r.train.data import Batch, ClipSampler, SeqArrays, make_clip
from ttt3r.train.evaluate import extent, predict_sequence, sequence_metrics, static_ate
from ttt3r.train.losses import ClipPrediction, avg_distance, conf_regression, cut3r_loss, pose_loss, quat_scale_loss
from ttt3r.train.loop import (Trainer, build_training_model, forward_clip, lr_at, make_optimizer, moving_average,
                              read_log, rescale_pose_quaternion, train_step)

from helpers import normal_file_mode
from train_helpers import fake_sampler, fake_sequence, tiny_cfg


# -- losses ------------------------------------------------------------------------------------


def test_conf_regression_hand_computed():
    gt = torch.zeros(1, 1, 1, 2, 3)
    pred = gt.clone()
    pred[0, 0, 0, 0] = torch.tensor([0.3, 0.4, 0.0])  # error 0.5 on pixel 0, 0 on pixel 1
    conf = torch.tensor([[[[2.0, 1.0]]]])
    valid = torch.ones(1, 1, 1, 2, dtype=torch.bool)
    # pixel 0: 2 * 0.5 - 0.2 * log 2; pixel 1: 1 * 0 - 0.2 * log 1 = 0
    expect = (1.0 - 0.2 * math.log(2.0)) / 2
    got = conf_regression(pred, gt, conf, valid, alpha=0.2)
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(expect, rel=1e-6)
    # invalid pixels do not count
    valid[0, 0, 0, 1] = False
    assert float(conf_regression(pred, gt, conf, valid, 0.2)[0]) == pytest.approx(1.0 - 0.2 * math.log(2.0), rel=1e-6)


def test_avg_distance_and_pose_loss_hand_computed():
    a = torch.zeros(1, 1, 1, 2, 3)
    a[0, 0, 0, 0, 2] = 2.0
    a[0, 0, 0, 1, 0] = 4.0
    valid = torch.ones(1, 1, 1, 2, dtype=torch.bool)
    assert float(avg_distance([a], valid)[0]) == pytest.approx(3.0)
    assert float(avg_distance([a, 2 * a], valid)[0]) == pytest.approx(4.5)
    gt = torch.tensor([[[0.0, 0, 0, 1, 0, 0, 0], [3.0, 0, 0, 1, 0, 0, 0]]])
    pred = torch.tensor([[[0.0, 0, 0, 1, 0, 0, 0], [6.0, 0, 0, 0, 1, 0, 0]]])
    # translations agree after scaling (6/2 = 3/1); quaternion error sqrt(2) on frame 1 -> mean sqrt(2)/2
    got = pose_loss(pred, gt, torch.tensor([2.0]), torch.tensor([1.0]))
    assert float(got) == pytest.approx(math.sqrt(2) / 2, rel=1e-6)


def _perfect(batch: Batch, scale: float) -> ClipPrediction:
    b, l, h, w = batch.shape
    pose = batch.pose.clone()
    pose[..., :3] *= scale
    return ClipPrediction(batch.pts_self * scale, torch.ones(b, l, h, w), batch.pts_world * scale,
                          torch.ones(b, l, h, w), pose, batch.img.permute(0, 1, 3, 4, 2).clone())


def test_cut3r_loss_zero_for_perfect_prediction_up_to_scale_positive_otherwise():
    cfg = tiny_cfg()
    batch = fake_sampler(cfg).batch(0, 2)
    perfect = _perfect(batch, scale=3.7)  # any global scale is as good as the truth
    total, parts = cut3r_loss(perfect, batch, alpha=0.2)
    assert float(total) == pytest.approx(0.0, abs=1e-5)
    assert parts["reg_self"] == pytest.approx(0.0, abs=1e-5) and parts["pose"] == pytest.approx(0.0, abs=1e-5)
    # a depth error, a pose error and a colour error each make it positive
    for name in ("pts_self", "pose", "rgb"):
        bad = _perfect(batch, 3.7)
        t = getattr(bad, name)
        t[..., 0] += 0.5
        total, parts = cut3r_loss(bad, batch, alpha=0.2)
        assert float(total) > 0.01, name
    # with errors, a confidence above 1 lowers the loss where alpha / err > 1 only
    noisy = _perfect(batch, 1.0)
    noisy.pts_self = noisy.pts_self + 0.01 * torch.randn_like(noisy.pts_self)
    base, _ = cut3r_loss(noisy, batch, alpha=0.2)
    noisy.conf_self = torch.full_like(noisy.conf_self, 5.0)
    confident, _ = cut3r_loss(noisy, batch, alpha=0.2)
    assert float(confident) < float(base)


def test_clip_ground_truth_geometry():
    seq = fake_sequence(0)
    clip = make_clip(seq, np.array([4, 2, 0]))
    # world points of every frame are the first frame's camera coordinates of the same surface
    rel = np.linalg.inv(seq.poses[4]) @ seq.poses[0]
    p0 = clip["pts_self"][2].reshape(-1, 3)
    np.testing.assert_allclose(clip["pts_world"][2].reshape(-1, 3), p0 @ rel[:3, :3].T + rel[:3, 3], atol=1e-9)
    np.testing.assert_allclose(clip["pose"][0], [0, 0, 0, 1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(clip["pts_self"][..., 2], seq.depth[[4, 2, 0]], rtol=1e-6)
    assert clip["img"].shape == (3, 3, 32, 32) and clip["img"].min() >= -1 and clip["img"].max() <= 1


def test_mirrored_clip_is_the_mirror_world():
    from ttt3r.train.data import _quat_wxyz

    seq = fake_sequence(2)
    idx = np.array([1, 4, 6])
    a, b = make_clip(seq, idx), make_clip(seq, idx, flip=True)
    M = np.diag([-1.0, 1.0, 1.0])
    # pixel (v, u) of the mirrored clip is pixel (v, W-1-u) of the original, x negated
    np.testing.assert_array_equal(b["img"], a["img"][..., ::-1])
    np.testing.assert_allclose(b["pts_self"], a["pts_self"][:, :, ::-1] @ M, atol=1e-9)
    np.testing.assert_allclose(b["pts_world"], a["pts_world"][:, :, ::-1] @ M, atol=1e-9)
    np.testing.assert_array_equal(b["valid"], a["valid"][:, :, ::-1])
    # the mirrored poses still map each frame's points onto the first frame's
    from scipy.spatial.transform import Rotation

    for i in range(len(idx)):
        t, q = b["pose"][i, :3], b["pose"][i, 3:]
        R = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_allclose(b["pts_self"][i].reshape(-1, 3) @ R.T + t, b["pts_world"][i].reshape(-1, 3),
                                   atol=1e-9)
        R0 = Rotation.from_quat(np.r_[a["pose"][i, 4:], a["pose"][i, 3]]).as_matrix()
        np.testing.assert_allclose(b["pose"][i, 3:], _quat_wxyz(M @ R0 @ M), atol=1e-12)
    # an off-centre principal point cannot be mirrored exactly
    off = SeqArrays(seq.rgb, seq.depth, seq.poses, seq.K + np.array([[0, 0, 0.7], [0, 0, 0], [0, 0, 0]]))
    with pytest.raises(TTT3RError, match="off centre"):
        make_clip(off, idx, flip=True)


def test_flip_prob_mirrors_some_clips():
    plain = fake_sampler(tiny_cfg())
    flipping = fake_sampler(tiny_cfg("data.flip_prob=0.5"))
    mirrored = same = 0
    for k in range(12):
        a, b = plain.batch(k, 2), flipping.batch(k, 2)
        # the first clip of a batch is drawn alike by both; later ones differ after a flip draw
        is_same, is_mirror = torch.equal(a.img[0], b.img[0]), torch.equal(a.img[0].flip(-1), b.img[0])
        assert is_same != is_mirror
        same, mirrored = same + is_same, mirrored + is_mirror
    assert mirrored > 0 and same > 0
    with pytest.raises(TTT3RError, match="flip_prob"):
        tiny_cfg("data.flip_prob=1.5")


def test_pool_is_rendered_once_and_loads_the_same_with_any_number_of_threads(tmp_path):
    pytest.importorskip("pybullet")
    from ttt3r.train.data import prepare_pool, sequence_dirs

    cfg = tiny_cfg(f"data.dir={json.dumps(str(tmp_path))}", "data.train_sequences=3", "data.heldout_sequences=1",
                   "data.frames=5")
    logs: list[str] = []
    prepare_pool(cfg.data, log=logs.append)
    assert sum(m.startswith("rendered ") for m in logs) == 4
    logs.clear()
    prepare_pool(cfg.data, log=logs.append)  # complete sequences are not rendered again
    assert logs == []
    one = ClipSampler.from_pool(cfg.data, seed=0, workers=1)
    many = ClipSampler.from_pool(cfg.data, seed=0, workers=3, log=logs.append)
    assert logs == ["loaded 3/3 train sequences"]
    assert len(one.seqs) == len(many.seqs) == 3
    for (path, _, _), a, b in zip(sequence_dirs(cfg.data, "train"), one.seqs, many.seqs):
        direct = SeqArrays.load(path)  # the pool keeps sequence_dirs' order
        for field in ("rgb", "depth", "poses", "K"):
            np.testing.assert_array_equal(getattr(a, field), getattr(direct, field))
            np.testing.assert_array_equal(getattr(b, field), getattr(direct, field))
    ba, bb = one.batch(5, 2), many.batch(5, 2)
    assert torch.equal(ba.img, bb.img) and torch.equal(ba.pose, bb.pose)
    # data.half_depth: the same pool with float16 depth maps, rounded to within 2**-11
    half = ClipSampler.from_pool(dataclasses.replace(cfg.data, half_depth=True), seed=0)
    for a, h in zip(one.seqs, half.seqs):
        assert a.depth.dtype == np.float32 and h.depth.dtype == np.float16
        np.testing.assert_array_equal(h.depth == 0, a.depth == 0)
        np.testing.assert_allclose(h.depth.astype(np.float32), a.depth, rtol=2.0 ** -11, atol=0)
        np.testing.assert_array_equal(h.rgb, a.rgb)
    bh = half.batch(5, 2)
    assert torch.equal(bh.img, ba.img) and torch.equal(bh.valid, ba.valid) and bh.pts_self.dtype == torch.float32
    torch.testing.assert_close(bh.pts_self, ba.pts_self, rtol=2.0 ** -11, atol=1e-7)
    # world points are rigid motions of the self-view ones: the error is at most 2**-11 |p_self|
    err = (bh.pts_world - ba.pts_world).norm(dim=-1)
    assert bool((err <= 2.0 ** -11 * ba.pts_self.norm(dim=-1) + 1e-6).all())


def _pool_files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*"))
            if f.is_file() and f.name != "meta.json"}


def test_pool_rendered_by_several_processes_is_the_serial_pool_file_for_file(tmp_path):
    pytest.importorskip("pybullet")
    from ttt3r.train.data import prepare_pool

    sets = ["data.train_sequences=3", "data.heldout_sequences=1", "data.frames=5"]
    serial = tiny_cfg(f"data.dir={json.dumps(str(tmp_path / 'a'))}", *sets)
    parallel = tiny_cfg(f"data.dir={json.dumps(str(tmp_path / 'b'))}", *sets)
    prepare_pool(serial.data, log=lambda m: None)
    logs: list[str] = []
    prepare_pool(parallel.data, log=logs.append, workers=2)
    # every sequence is reported once, counted within its split
    assert sorted(m.split(":")[0] for m in logs) == [
        "rendered heldout sequence 1/1", "rendered train sequence 1/3", "rendered train sequence 2/3",
        "rendered train sequence 3/3"]
    a, b = _pool_files(tmp_path / "a"), _pool_files(tmp_path / "b")
    assert len(a) == 4 * (3 * 5 + 1)  # rgb, depth, camera per frame + the trajectory, per sequence
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)  # byte for byte: the worker count changes nothing
    logs.clear()
    prepare_pool(parallel.data, log=logs.append, workers=2)  # complete: nothing to render
    assert logs == []


def test_a_failed_render_in_a_worker_is_one_error_and_a_rerun_resumes(tmp_path):
    pytest.importorskip("pybullet")
    import shutil

    from ttt3r.synth import load_sequence, render_sequence
    from ttt3r.train.data import prepare_pool, sequence_dirs

    cfg = tiny_cfg(f"data.dir={json.dumps(str(tmp_path))}", "data.train_sequences=4", "data.heldout_sequences=0",
                   "data.frames=5")
    entries = sequence_dirs(cfg.data, "train")
    dirs = [p for p, _, _ in entries]
    bad, seed, motion = entries[1]
    render_sequence(bad, frames=2, seed=seed, motion=motion, size=tuple(cfg.data.size), progress=False)
    with pytest.raises(TTT3RError, match=str(bad)):  # a folder rendered with other settings is refused
        prepare_pool(cfg.data, log=lambda m: None, workers=2)
    assert len(load_sequence(bad)) == 2  # the user's folder is left as it was

    def complete(p):
        try:
            return len(load_sequence(p)) == 5
        except TTT3RError:
            return False

    kept = [p for p in dirs if complete(p)]
    assert kept  # the sequence rendered beside the failed one was finished, not abandoned
    shutil.rmtree(bad)
    logs: list[str] = []
    prepare_pool(cfg.data, log=logs.append, workers=2)
    assert all(complete(p) for p in dirs)
    assert len(logs) == len(dirs) - len(kept)  # finished sequences are not rendered again


def test_batches_are_a_function_of_seed_and_step():
    cfg = tiny_cfg("data.clip_min=2", "data.clip_max=5")
    s1, s2 = fake_sampler(cfg), fake_sampler(cfg)
    for k in (0, 5, 17):
        a, b = s1.batch(k, 2), s2.batch(k, 2)
        assert torch.equal(a.img, b.img) and torch.equal(a.pose, b.pose)
    lengths = {s1.batch(k, 1).shape[1] for k in range(30)}
    assert lengths <= {2, 3, 4, 5} and len(lengths) > 1


# -- optimisation --------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_few_steps_overfit_one_clip(precision):
    torch.set_num_threads(1)
    cfg = tiny_cfg(f"precision={precision}")
    batch = fake_sampler(cfg).batch(0, 2)
    model = build_training_model(cfg, torch.device("cpu"))
    opt = make_optimizer(model, cfg)
    losses = [train_step(model, opt, batch, cfg, 2e-3)["total"] for _ in range(25)]
    assert all(math.isfinite(x) for x in losses)
    assert min(losses[-5:]) < 0.7 * losses[0], losses


def test_bf16_step_matches_fp32_and_keeps_float32_weights():
    """precision = "bf16": the same step to bfloat16 rounding, weights and Adam moments in float32."""
    torch.set_num_threads(1)
    batch = fake_sampler(tiny_cfg()).batch(0, 2)
    parts, models, opts = {}, {}, {}
    for prec in ("fp32", "bf16"):
        cfg = tiny_cfg(f"precision={prec}")
        torch.manual_seed(0)
        models[prec] = build_training_model(cfg, torch.device("cpu"))
        opts[prec] = make_optimizer(models[prec], cfg)
        parts[prec] = train_step(models[prec], opts[prec], batch, cfg, 2e-3)
    for k in ("total", "conf_self", "conf_world", "pose", "rgb"):
        assert parts["bf16"][k] == pytest.approx(parts["fp32"][k], rel=2e-2), k
    assert parts["bf16"]["total"] != parts["fp32"]["total"]  # the forward really ran in bfloat16
    for p in models["bf16"].parameters():
        assert p.dtype == torch.float32
    moments = [s["exp_avg"] for s in opts["bf16"].state.values()]
    assert moments and all(m.dtype == torch.float32 and torch.isfinite(m).all() for m in moments)
    # the gradients (left in .grad by the step) point the same way
    ga = torch.cat([p.grad.flatten() for p in models["fp32"].parameters() if p.grad is not None])
    gb = torch.cat([p.grad.flatten() for p in models["bf16"].parameters() if p.grad is not None])
    assert gb.dtype == torch.float32 and ga.shape == gb.shape
    assert float(torch.nn.functional.cosine_similarity(ga, gb, dim=0)) > 0.99
    assert 1e-4 < float((ga - gb).norm() / ga.norm()) < 0.1  # 0.02 measured: bfloat16's rounding, no more


def test_quaternion_scale_term_hand_computed():
    raw = torch.zeros(1, 2, 7)
    raw[0, 0, 3:7] = torch.tensor([2.0, 0.0, 0.0, 0.0])  # norm 2 -> (2 - 1)^2 = 1
    raw[0, 1, 3:7] = torch.tensor([0.6, 0.0, 0.8, 0.0])  # norm 1 -> 0
    raw[..., :3] = 5.0  # translations do not count
    assert float(quat_scale_loss(raw)) == pytest.approx(0.5)
    cfg = tiny_cfg()
    batch = fake_sampler(cfg).batch(0, 2)
    pred = _perfect(batch, 1.0)
    pred.pose_raw = torch.zeros(batch.pose.shape)
    pred.pose_raw[..., 3] = 3.0  # every raw norm 3 -> term (3 - 1)^2 = 4
    off, parts = cut3r_loss(pred, batch, quat_norm_weight=0.0)
    on, parts_on = cut3r_loss(pred, batch, quat_norm_weight=0.25)
    assert float(on - off) == pytest.approx(1.0) and parts["quat_norm"] == pytest.approx(3.0)


def test_rescaled_pose_quaternion_keeps_outputs_and_sets_norm_one():
    cfg = tiny_cfg()
    model = build_training_model(cfg, torch.device("cpu")).eval()
    last = model.downstream_head.pose_head.mlp.fc2
    with torch.no_grad():  # the drift seen in training: a large raw quaternion
        last.bias[3] += 40.0
    img = fake_sampler(cfg).batch(0, 2).img
    before = forward_clip(model, img, want_rgb=False)
    factor = rescale_pose_quaternion(model, img)
    after = forward_clip(model, img, want_rgb=False)
    assert factor > 10
    assert float(after.pose_raw[..., 3:7].detach().norm(dim=-1).mean()) == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(after.pose, before.pose, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after.pts_world, before.pts_world)


def test_moving_average_hand_computed():
    assert moving_average([1.0, 2.0, 3.0, 4.0, 8.0], 2) == [1.0, 1.5, 2.5, 3.5, 6.0]
    assert moving_average([2.0, 4.0], 10) == [2.0, 3.0]
    assert moving_average([], 3) == []


def test_lr_schedule():
    cfg = tiny_cfg("optim.steps=100", "optim.warmup=10", "optim.lr=1e-3", "optim.min_lr=1e-5")
    assert lr_at(cfg, 0) == pytest.approx(1e-4)
    assert lr_at(cfg, 9) == pytest.approx(1e-3)
    assert lr_at(cfg, 10) == pytest.approx(1e-3)
    assert lr_at(cfg, 100) == pytest.approx(1e-5)
    assert all(lr_at(cfg, i) >= lr_at(cfg, i + 1) for i in range(10, 100))


def test_resume_continues_identically(tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_cfg("optim.steps=6", "log.every=2", "log.ckpt_every=100", "log.plot_every=100")
    logs: list[str] = []
    straight = Trainer(cfg, tmp_path / "a", sampler=fake_sampler(cfg), log=logs.append)
    straight.run()
    first = Trainer(cfg, tmp_path / "b", sampler=fake_sampler(cfg), log=logs.append)
    first.run(until=4)
    assert (tmp_path / "b" / "checkpoint.pt").exists() and (tmp_path / "b" / "model" / "model.safetensors").exists()
    again = Trainer(cfg, tmp_path / "b", sampler=fake_sampler(cfg), log=logs.append)
    assert again.resume() and again.step == 4
    again.run()
    a = read_log(tmp_path / "a" / "log.csv")
    b = read_log(tmp_path / "b" / "log.csv")
    assert [r["step"] for r in b] == [r["step"] for r in a] == [2, 4, 6]
    for ra, rb in zip(a, b):
        assert ra["total"] == rb["total"] and ra["pose"] == rb["pose"], (ra, rb)
    sa = straight.model.state_dict()
    sb = again.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (tmp_path / "b" / "loss.png").stat().st_size > 1000
    assert any("it/s" in line and "ETA" in line for line in logs)
    # the exported weights load as an ordinary model
    import ttt3r

    m = ttt3r.load_model(tmp_path / "b" / "model", device="cpu")
    assert m.cfg.enc_embed_dim == 32


def test_resume_refuses_another_architecture(tmp_path):
    cfg = tiny_cfg("optim.steps=1")
    Trainer(cfg, tmp_path, sampler=fake_sampler(cfg), log=lambda s: None).run()
    other = apply_overrides(cfg, ["model.enc_depth=2"])
    with pytest.raises(TTT3RError, match="model settings differ"):
        Trainer(other, tmp_path, sampler=fake_sampler(other), log=lambda s: None).resume()


# -- config and CLI -----------------------------------------------------------------------------


def test_config_file_and_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('seed = 3\n[optim]\nlr = 1e-3\n[model]\nenc_depth = 2\n[data]\nsize = [64, 48]\n')
    cfg = load_config(p, ["optim.lr=5e-4", "data.motions=[\"orbit\"]", "model.dec_depth=2"])
    assert cfg.seed == 3 and cfg.optim.lr == 5e-4 and cfg.data.size == (64, 48)
    assert cfg.data.motions == ("orbit",)
    mc = cfg.model_config()
    assert mc.enc_depth == 2 and mc.dec_depth == 2 and mc.img_size == (64, 64)
    j = tmp_path / "c.json"
    j.write_text(json.dumps(cfg.to_dict()))
    assert load_config(j).to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "text, overrides, match",
    [
        ("[optim]\nlr = 'fast'\n", [], "optim.lr must be float"),
        ("[optimiser]\nlr = 1\n", [], "unknown section 'optimiser'"),
        ("[optim]\nlearning_rate = 1\n", [], "unknown setting 'optim.learning_rate'"),
        ("[model]\nwidth = 1\n", [], "unknown model setting 'width'"),
        ("[data]\nsize = [100, 96]\n", [], "multiples of 16"),
        ("[data]\nclip_max = 40\nstride_max = 4\n", [], "do not fit"),
        ("[data]\nmotions = ['spin']\n", [], "data.motions"),
        ("[optim\n", [], "invalid TOML"),
        ("", ["optim.steps"], "expected key=value"),
        ("", ["loss.rule=fast"], "loss.rule must be one of"),
        ("", ["optim.batch=2.5"], "optim.batch must be int"),
        ("", ["loss.mask_ratio=1.0"], "loss.mask_ratio must be in"),
        ("", ["precision=fp16"], "precision must be fp32 or bf16"),
    ],
)
def test_config_errors_are_one_line(tmp_path, text, overrides, match):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(TTT3RError, match=match) as e:
        load_config(p, overrides)
    assert "\n" not in str(e.value)


def test_cli_set_and_errors(tmp_path, capsys):
    from ttt3r.cli import main

    # --print-config needs no run folder
    assert main(["train", "--set", "optim.lr=1e-4", "--set", "model.enc_depth=3",
                 "--data", str(tmp_path / "pool"), "--print-config"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["optim"]["lr"] == 1e-4 and d["model"]["enc_depth"] == 3 and d["data"]["dir"] == str(tmp_path / "pool")
    assert main(["train", "--set", "optim.lr=1e-4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out is required" in err
    assert main(["train", "--out", str(tmp_path / "r"), "--set", "optim.steps=zero"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttt3r train: error:") and err.count("\n") == 1 and "optim.steps" in err
    assert main(["train", "--out", str(tmp_path / "r"), "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "--evaluate"]) == 2
    assert "no trained weights" in capsys.readouterr().err


def test_evaluation_baselines_hand_computed():
    c = np.array([[0.0, 0, 0], [2.0, 0, 0], [4.0, 0, 0]])
    assert extent(c) == pytest.approx(4.0)
    assert static_ate(c) == pytest.approx(math.sqrt(8 / 3))


def _similar_trajectory(gt: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """The (N, 4, 4) poses ``gt`` seen from another world frame at another scale."""
    from scipy.spatial.transform import Rotation

    S = np.eye(4)
    S[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    S[:3, 3] = [0.3, -1.0, 2.0]
    out = S[None] @ gt
    out[:, :3, 3] *= scale
    return out


def test_sequence_metrics_exact_cases():
    seq = fake_sequence(3, frames=8)
    gt_poses = np.linalg.inv(seq.poses[0])[None] @ seq.poses
    # a perfect prediction up to one depth scale and one similarity transform: all errors zero
    m = sequence_metrics(seq.depth * 3.0, _similar_trajectory(gt_poses, 2.5, 0), seq.depth, gt_poses)
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert m["ate_frac"] == pytest.approx(0.0, abs=1e-9)
    assert m["rpe_trans_frac"] == pytest.approx(0.0, abs=1e-9)
    assert m["rpe_rot_deg"] == pytest.approx(0.0, abs=1e-6)
    # the baselines themselves score exactly the baseline figures
    centres = gt_poses[:, :3, 3]
    static = np.repeat(np.eye(4)[None], len(gt_poses), axis=0)
    b = sequence_metrics(np.ones_like(seq.depth), static, seq.depth, gt_poses)
    assert b["abs_rel"] == pytest.approx(b["abs_rel_const"])
    assert b["ate_frac"] == pytest.approx(b["ate_frac_static"])
    assert b["ate_frac_static"] == pytest.approx(static_ate(centres) / extent(centres))
    assert b["extent_m"] == pytest.approx(extent(centres))
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)  # a static camera misses every step
    assert b["rpe_trans_frac"] == pytest.approx(np.sqrt(np.mean(steps**2)) / extent(centres))
    assert b["rpe_trans_frac"] == pytest.approx(b["rpe_trans_frac_static"])
    assert b["rpe_rot_deg"] == pytest.approx(b["rpe_rot_deg_static"])
    assert m["rpe_trans_frac_static"] == pytest.approx(b["rpe_trans_frac_static"])  # a baseline, whatever the model
    # depth off by a factor 2 on half of the pixels (after median scaling): hand-computed Abs Rel
    d = seq.depth.copy()
    d[:, :, : d.shape[2] // 2] *= 2.0  # the median pixel lies in the unchanged half or on the edge
    got = sequence_metrics(d, gt_poses, seq.depth, gt_poses)["abs_rel"]
    scale = np.median(seq.depth) / np.median(d)
    want = np.mean(np.abs(d * scale - seq.depth) / seq.depth)
    assert got == pytest.approx(want, rel=1e-6)
    bad = gt_poses.copy()
    bad[2, 0, 3] = np.nan
    assert math.isnan(sequence_metrics(seq.depth, bad, seq.depth, gt_poses)["ate_frac"])


def test_sequence_metrics_of_a_camera_that_only_turns():
    """A pure rotation (the ``pan`` motion) has no extent: only the RPE rotation is scored."""
    from scipy.spatial.transform import Rotation

    from ttt3r.train.evaluate import SeqResult, summarise

    seq = fake_sequence(5, frames=6)
    yaw = np.radians([0.0, 2.0, 5.0, 9.0, 10.0, 12.0])
    gt = np.repeat(np.eye(4)[None], 6, axis=0)
    gt[:, :3, :3] = Rotation.from_euler("y", yaw[:, None]).as_matrix()
    steps = np.degrees(np.diff(yaw))
    static = np.repeat(np.eye(4)[None], 6, axis=0)
    b = sequence_metrics(seq.depth, static, seq.depth, gt)
    assert b["extent_m"] == 0.0
    assert math.isnan(b["ate_frac"]) and math.isnan(b["ate_frac_static"]) and math.isnan(b["rpe_trans_frac"])
    assert b["rpe_rot_deg_static"] == pytest.approx(np.sqrt(np.mean(steps**2)), rel=1e-9)
    assert b["rpe_rot_deg"] == pytest.approx(b["rpe_rot_deg_static"], rel=1e-9)
    # turning at half the true rate: every step is off by half its size
    half = gt.copy()
    half[:, :3, :3] = Rotation.from_euler("y", yaw[:, None] / 2).as_matrix()
    m = sequence_metrics(seq.depth, half, seq.depth, gt)
    assert m["rpe_rot_deg"] == pytest.approx(np.sqrt(np.mean((steps / 2) ** 2)), rel=1e-6)
    assert sequence_metrics(seq.depth, gt, seq.depth, gt)["rpe_rot_deg"] == pytest.approx(0.0, abs=1e-6)
    # centres equal only to rounding count as fixed too (the aligner would refuse them)
    jitter = gt.copy()
    jitter[:, 0, 3] += np.arange(6) * 1e-15
    j = sequence_metrics(seq.depth, half, seq.depth, jitter)
    assert math.isnan(j["ate_frac_static"]) and j["rpe_rot_deg"] == pytest.approx(m["rpe_rot_deg"], rel=1e-6)
    # the summary averages what is defined and leaves the rest NaN
    rs = [SeqResult("pan", "cut3r", **m), SeqResult("pan2", "cut3r", **b)]
    s = summarise(rs)["cut3r"]
    assert math.isnan(s["ate_frac"])
    assert s["rpe_rot_deg"] == pytest.approx((m["rpe_rot_deg"] + b["rpe_rot_deg"]) / 2)
    from ttt3r.train.evaluate import format_report

    text = format_report({"frames": 6, "stride": 1, "summary": {"cut3r": s}, "sequences": [r.__dict__ for r in rs]})
    assert "ATE/extent n/a (the cameras only turn)" in text.splitlines()[-1]
    assert f"RPE rotation {s['rpe_rot_deg']:.2f} deg" in text
    # the report file is strict JSON: undefined figures are null
    from ttt3r.eval.cache import json_safe

    back = json.loads(json.dumps(json_safe({"summary": {"cut3r": s}}), allow_nan=False))["summary"]["cut3r"]
    assert back["ate_frac"] is None and back["rpe_rot_deg"] == pytest.approx(s["rpe_rot_deg"])


def test_predict_sequence_resets_chain_chunks():
    torch.manual_seed(0)
    model = build_training_model(tiny_cfg(), torch.device("cpu")).eval()
    rgb = fake_sequence(4, frames=7).rgb
    d0, p0 = predict_sequence(model, rgb, "ttt3r")
    d_long, p_long = predict_sequence(model, rgb, "ttt3r", reset_every=7)  # the reset would follow frame 7
    np.testing.assert_array_equal(d0, d_long)
    np.testing.assert_array_equal(p0, p_long)
    d3, p3 = predict_sequence(model, rgb, "ttt3r", reset_every=3)
    np.testing.assert_array_equal(d3[:3], d0[:3])  # the first chunk is untouched
    np.testing.assert_allclose(p3[:3], p0[:3])
    assert not np.allclose(d3[3:], d0[3:])  # later chunks start from a fresh state
    # chunk 2 re-feeds frame 3 first; its frames are chained onto frame 3's pose (first chunk)
    fresh_d, fresh_p = predict_sequence(model, rgb[2:], "ttt3r")
    np.testing.assert_allclose(d3[3:6], fresh_d[1:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p3[3:6], p0[2] @ fresh_p[1:4], rtol=1e-5, atol=1e-6)
    assert np.isfinite(p3).all()


def test_export_half_precision(tmp_path):
    from ttt3r.cli import main

    cfg = tiny_cfg("optim.steps=1")
    Trainer(cfg, tmp_path / "run", sampler=fake_sampler(cfg), log=lambda s: None).run()
    assert main(["train", "--out", str(tmp_path / "run"), "--export", str(tmp_path / "exp")]) == 0
    full = (tmp_path / "run" / "model" / "model.safetensors").stat().st_size
    half = (tmp_path / "exp" / "model.safetensors").stat().st_size
    assert half < 0.6 * full
    # the run's files and the export are readable as any file written with open()
    for f in ("run/checkpoint.pt", "run/model/model.safetensors", "run/loss.png", "exp/model.safetensors",
              "exp/config.json"):
        assert (tmp_path / f).stat().st_mode & 0o777 == normal_file_mode(), f
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    import ttt3r

    a = ttt3r.load_model(tmp_path / "run" / "model", device="cpu")
    b = ttt3r.load_model(tmp_path / "exp", device="cpu")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    oa, _ = a.step(x, a.init_state(1), rule="ttt3r")
    ob, _ = b.step(x, b.init_state(1), rule="ttt3r")
    assert next(b.parameters()).dtype == torch.float32
    torch.testing.assert_close(oa.pose, ob.pose, atol=2e-2, rtol=2e-2)
    assert main(["train", "--out", str(tmp_path / "nothing"), "--export", str(tmp_path / "e2")]) == 2


def test_init_from_weights(tmp_path):
    cfg = tiny_cfg("optim.steps=1")
    first = Trainer(cfg, tmp_path / "a", sampler=fake_sampler(cfg), log=lambda s: None)
    first.run()
    exact = apply_overrides(cfg, ["loss.quat_norm_weight=0"])
    second = Trainer(exact, tmp_path / "b", sampler=fake_sampler(exact), log=lambda s: None)
    second.init_from(tmp_path / "a" / "model")
    sa, sb = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and second.step == 0
    # with the quaternion-scale term on, only the pose MLP's quaternion rows are rescaled
    third = Trainer(cfg, tmp_path / "b2", sampler=fake_sampler(cfg), log=lambda s: None)
    third.init_from(tmp_path / "a" / "model")
    sc = third.model.state_dict()
    rows = "downstream_head.pose_head.mlp.fc2."
    assert all(torch.equal(sa[k], sc[k]) for k in sa if not k.startswith(rows))
    for k in (rows + "weight", rows + "bias"):
        assert torch.equal(sa[k][:3], sc[k][:3])
        ratio = sa[k][3:7] / sc[k][3:7]
        torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio.flatten()[0])))
    other = apply_overrides(cfg, ["model.enc_depth=2"])
    with pytest.raises(TTT3RError, match="architecture differs"):
        Trainer(other, tmp_path / "c", sampler=fake_sampler(other), log=lambda s: None).init_from(tmp_path / "a" / "model")


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.glob("**/*.toml")))
def test_shipped_configs_load_and_describe_the_bundled_architecture(name):
    from ttt3r.pipeline import BUNDLED_MODEL

    cfg = load_config(CONFIGS / name)
    bundled = json.loads((BUNDLED_MODEL / "config.json").read_text())
    for key in ("enc_embed_dim", "enc_depth", "dec_embed_dim", "dec_depth", "state_size", "local_mem_size", "head_type"):
        assert getattr(cfg.model, key) == bundled[key], (name, key)
    assert cfg.data.train_sequences > 0 and cfg.optim.steps > 0
