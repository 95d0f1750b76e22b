"""Training config files: ``extends`` inheritance, the typed ``[model]`` table, and the
shipped stage configs (each written as changes to its parent)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ttt3r.config import ModelConfig
from ttt3r.errors import TTT3RError
from ttt3r.train.config import SMALL_MODEL, TrainConfig, load_config, model_from_settings, model_settings
from ttt3r.train.config_file import merge_tables, read_config_file, toml_loads

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_merge_tables_recurses_into_tables_and_replaces_everything_else():
    base = {"a": 1, "t": {"x": 1, "y": [1, 2], "u": {"p": 1, "q": 2}}, "l": [1, 2, 3]}
    changes = {"t": {"y": [9], "u": {"q": 5}, "z": 3}, "l": [4], "b": 2}
    assert merge_tables(base, changes) == {"a": 1, "b": 2, "l": [4],
                                           "t": {"x": 1, "y": [9], "z": 3, "u": {"p": 1, "q": 5}}}
    assert base["t"]["u"] == {"p": 1, "q": 2} and base["l"] == [1, 2, 3]  # inputs untouched


def test_extends_chain_relative_to_each_file(tmp_path):
    (tmp_path / "base.toml").write_text('seed = 1\nthreads = 2\n[optim]\nlr = 1e-3\nsteps = 50\n'
                                        '[data]\nmotions = ["orbit", "walk"]\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.toml").write_text('extends = "../base.toml"\nseed = 2\n[optim]\nsteps = 70\n')
    (tmp_path / "sub" / "leaf.json").write_text(json.dumps(
        {"extends": "mid.toml", "optim": {"batch": 3}, "data": {"motions": ["pan"]}}))
    d = read_config_file(tmp_path / "sub" / "leaf.json")
    assert d == {"seed": 2, "threads": 2, "optim": {"lr": 1e-3, "steps": 70, "batch": 3}, "data": {"motions": ["pan"]}}
    cfg = load_config(tmp_path / "sub" / "leaf.json", ["optim.lr=5e-4"])
    assert (cfg.seed, cfg.threads, cfg.optim.lr, cfg.optim.steps, cfg.optim.batch) == (2, 2, 5e-4, 70, 3)
    assert cfg.data.motions == ("pan",)
    # keys nobody set keep the defaults
    assert cfg.optim.warmup == TrainConfig().optim.warmup


@pytest.mark.parametrize(
    "files, match",
    [
        ({"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "a.toml"\n'}, "extends makes a cycle"),
        ({"a.toml": 'extends = "a.toml"\n'}, "extends makes a cycle"),
        ({"a.toml": 'extends = "missing.toml"\n'}, "is not a file"),
        ({"a.toml": "extends = 3\n"}, "extends must be a file path"),
        ({"a.toml": 'extends = "b.toml"\n', "b.toml": "[optim\n"}, "b.toml: invalid TOML"),
    ],
)
def test_extends_errors_are_one_line_naming_the_file(tmp_path, files, match):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(TTT3RError, match=match) as e:
        load_config(tmp_path / "a.toml")
    assert "\n" not in str(e.value) and ".toml" in str(e.value)


def test_model_table_is_typed():
    cfg = TrainConfig()
    assert isinstance(cfg.model, ModelConfig) and cfg.model == ModelConfig(**SMALL_MODEL)
    d = cfg.to_dict()["model"]
    assert "img_size" not in d and "extra" not in d and d["depth_mode"] == ["exp", "-inf", "inf"]
    # to_dict -> from_dict is the identity, infinities included
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back.model == cfg.model and back.model.conf_mode == ("exp", 1.0, math.inf)
    assert model_from_settings(model_settings(cfg.model)) == cfg.model
    # a [model] table written before the table was typed (a subset of keys) means the same network
    assert model_from_settings(dict(SMALL_MODEL, depth_mode=["exp", "-inf", "inf"])) == cfg.model


@pytest.mark.parametrize(
    "text, match",
    [
        ("[model]\nwidth = 1\n", "unknown model setting 'width'"),
        ("[model]\nenc_depth = 2.5\n", "model.enc_depth must be int"),
        ("[model]\nrgb_head = 1\n", "model.rgb_head must be bool"),
        ("[model]\nhead_type = 'conv'\n", "model.head_type must be one of linear, dpt"),
        ("[model]\nstate_pe = '3d'\n", "model.state_pe must be one of"),
        ("[model]\ndepth_mode = ['exp', 0]\n", r"model.depth_mode must be \[name, low, high\]"),
        ("[model]\nimg_size = [64, 64]\n", "model.img_size follows data.size"),
        ("[model]\npatch_size = 0\n", "model.patch_size must be >= 1"),
        ("model = 3\n", r"\[model\] must be a table"),
    ],
)
def test_model_errors_are_one_line(tmp_path, text, match):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(TTT3RError, match=match) as e:
        load_config(p)
    assert "\n" not in str(e.value)


def test_model_modes_accept_toml_infinities(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[model]\nconf_mode = ["exp", 2, inf]\ndepth_mode = ["linear", "-inf", "inf"]\n')
    m = load_config(p).model_config()
    assert m.conf_mode == ("exp", 2.0, math.inf) and m.depth_mode == ("linear", -math.inf, math.inf)


def test_shipped_stages_hold_only_their_changes():
    """Representative values of the shipped recipe (as each stage was run, before the files
    were rewritten as ``extends`` chains) and of two experiments."""
    for path in [*CONFIGS.glob("train_small_stage*.toml"), *CONFIGS.glob("experiments/*.toml")]:
        assert "extends" in toml_loads(path.read_text()), path
    s1 = load_config(CONFIGS / "train_small.toml")
    assert (s1.seed, s1.threads, s1.optim.steps, s1.optim.batch, s1.optim.lr, s1.data.train_sequences) == \
        (0, 1, 4000, 4, 3e-4, 96)
    s4 = load_config(CONFIGS / "train_small_stage4.toml")
    assert (s4.seed, s4.threads, s4.precision) == (4, 2, "fp32")
    assert (s4.data.train_sequences, s4.data.heldout_sequences, s4.data.clip_min, s4.data.clip_max,
            s4.data.stride_max, s4.data.flip_prob, s4.data.half_depth) == (960, 32, 4, 16, 3, 0.5, False)
    assert (s4.optim.steps, s4.optim.batch, s4.optim.lr, s4.optim.warmup, s4.optim.min_lr) == (2000, 8, 2e-4, 200, 1e-5)
    assert (s4.loss.quat_norm_weight, s4.loss.pose_weight, s4.log.ckpt_every, s4.log.plot_every) == (0.1, 1.0, 50, 50)
    assert s4.model == s1.model
    s3 = load_config(CONFIGS / "train_small_stage3.toml")
    assert (s3.seed, s3.optim.steps, s3.optim.warmup, s3.loss.quat_norm_weight) == (3, 5000, 300, 0.0)
    pan = load_config(CONFIGS / "experiments" / "train_small_stage7_pan.toml")
    assert (pan.data.dir, pan.data.motions, pan.data.train_seed0, pan.data.heldout_seed0, pan.data.clip_max) == \
        ("runs/data/pan128x96", ("pan",), 5000, 910000, 8)
    s12 = load_config(CONFIGS / "experiments" / "train_small_stage12.toml")
    assert (s12.seed, s12.precision, s12.data.train_sequences, s12.data.train_seed0, s12.data.half_depth) == \
        (12, "bf16", 2880, 2440, True)
    assert (s12.optim.steps, s12.optim.batch, s12.optim.lr, s12.optim.warmup, s12.loss.pose_weight) == \
        (1000, 16, 1.5e-4, 50, 2.0)
