"""Training configuration: a TOML (or JSON) file of sections, plus ``key=value`` overrides.

File layout (every key optional; defaults below)::

    extends = "base.toml"    # start from that file (relative to this one) and change only
                             # what follows (ttt3r.train.config_file); none by default
    seed = 0                 # drives initialisation, clip sampling, everything
    device = "auto"          # "auto" (cuda when available), "cpu", "cuda", "cuda:1"
    threads = 1              # torch CPU threads; also the processes that render a missing
                             # pool and the threads that load it
    precision = "fp32"       # "fp32", or "bf16": the forward pass under bfloat16 autocast
                             # (weights, optimiser and losses stay float32)

    [model]                  # any ttt3r.config.ModelConfig field but img_size (that
    enc_embed_dim = 192      # follows data.size); defaults: SMALL_MODEL, then ModelConfig's
    ...

    [data]
    dir = "runs/data/synth128x96"   # pool folder (rendered on first use)
    size = [128, 96]                 # (width, height) in pixels, multiples of 16
    train_sequences = 96             # sequences in the training pool
    heldout_sequences = 8            # sequences kept for evaluation (unseen seeds)
    frames = 64                      # frames per rendered sequence
    train_seed0 = 1000               # training seeds: train_seed0 .. + train_sequences - 1
    heldout_seed0 = 900000           # held-out seeds (disjoint from the training ones)
    motions = ["orbit", "walk", "forward", "loop"]   # motion of seed s: motions[s % len]
    clip_min = 4                     # clip length range (frames), sampled per batch
    clip_max = 8
    stride_max = 4                   # frame stride within a clip: uniform in 1..stride_max
    reverse_prob = 0.5               # chance to play a clip backwards
    flip_prob = 0.0                  # chance to mirror a clip left-right (images, depth, poses)
    half_depth = false               # hold the pool's depth maps as float16 (halves their memory)

    [optim]
    steps = 20000                    # total optimisation steps
    batch = 4                        # clips per step
    lr = 3e-4
    min_lr = 1e-5                    # cosine decay to this after warmup
    warmup = 500
    weight_decay = 0.05
    grad_clip = 1.0                  # max gradient norm (0 = off)

    [loss]
    alpha = 0.2                      # confidence regulariser weight
    pose_weight = 1.0
    rgb_weight = 1.0
    rule = "cut3r"                   # state-update rule used while training
    quat_norm_weight = 0.1           # keeps the raw pose quaternion's norm near 1 (0: CUT3R's losses only)
    mask_ratio = 0.0                 # share of 16x16 squares greyed out in frames after the first
                                     # (cross-view completion, ttt3r.train.masking; 0 = off)

    [log]
    every = 10                       # print / CSV row every N steps
    ckpt_every = 200                 # checkpoint every N steps (and at the end)
    plot_every = 100                 # loss-curve PNG every N steps

Overrides use dotted keys (``optim.lr=1e-4``, ``model.enc_depth=4``, ``seed=3``);
the value is read as a TOML/JSON literal when it parses as one (numbers, booleans,
``[128, 96]``), else as a plain string. Unknown sections or keys and values of the
wrong type raise :class:`ttt3r.errors.TTT3RError` with a one-line message.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..errors import TTT3RError
from .config_file import read_config_file, toml_loads

#: the small network trained by default (about 11 M parameters)
SMALL_MODEL: dict[str, Any] = dict(
    patch_size=16,
    enc_embed_dim=192, enc_depth=6, enc_num_heads=3,
    dec_embed_dim=128, dec_depth=4, dec_num_heads=4, state_dec_num_heads=4,
    state_size=64, local_mem_size=32, state_pe="2d", pos_embed="RoPE100",
    head_type="linear", output_mode="pts3d+pose", rgb_head=True, pose_head=True,
    depth_mode=("exp", -math.inf, math.inf), conf_mode=("exp", 1.0, math.inf),
    pose_mode=("exp", -math.inf, math.inf),
)


@dataclass
class DataConfig:
    dir: str = "runs/data/synth128x96"
    size: tuple[int, int] = (128, 96)
    train_sequences: int = 96
    heldout_sequences: int = 8
    frames: int = 64
    train_seed0: int = 1000
    heldout_seed0: int = 900000
    motions: tuple[str, ...] = ("orbit", "walk", "forward", "loop")
    clip_min: int = 4
    clip_max: int = 8
    stride_max: int = 4
    reverse_prob: float = 0.5
    flip_prob: float = 0.0
    half_depth: bool = False


@dataclass
class OptimConfig:
    steps: int = 20000
    batch: int = 4
    lr: float = 3e-4
    min_lr: float = 1e-5
    warmup: int = 500
    weight_decay: float = 0.05
    grad_clip: float = 1.0


@dataclass
class LossConfig:
    alpha: float = 0.2
    pose_weight: float = 1.0
    rgb_weight: float = 1.0
    rule: str = "cut3r"
    quat_norm_weight: float = 0.1
    mask_ratio: float = 0.0


@dataclass
class LogConfig:
    every: int = 10
    ckpt_every: int = 200
    plot_every: int = 100


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved as ``config.json`` in the run folder)."""

    seed: int = 0
    device: str = "auto"
    threads: int = 1
    precision: str = "fp32"
    #: the network; ``img_size`` is not a setting (:meth:`model_config` takes it from ``data.size``)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(**SMALL_MODEL))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    log: LogConfig = field(default_factory=LogConfig)

    # -- derived ---------------------------------------------------------------
    def model_config(self) -> ModelConfig:
        """The :class:`ModelConfig` of the network (``img_size`` follows ``data.size``)."""
        side = max(self.data.size)
        return dataclasses.replace(self.model, img_size=(side, side))

    # -- (de)serialisation ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (``model`` without ``img_size``; infinities as ``"inf"``)."""
        d = dataclasses.asdict(self)
        d["model"] = model_settings(self.model)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        cfg = cls()
        if not isinstance(d, dict):
            raise TTT3RError(f"{source}: expected a table of settings")
        for key, value in d.items():
            if key == "model":
                if not isinstance(value, dict):
                    raise TTT3RError(f"{source}: [model] must be a table")
                for k, v in value.items():
                    _set(cfg, f"model.{k}", v, source)
            elif isinstance(value, dict):
                for k, v in value.items():
                    _set(cfg, f"{key}.{k}", v, source)
            else:
                _set(cfg, key, value, source)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        """Raise a one-line :class:`TTT3RError` on inconsistent settings."""
        d, o = self.data, self.optim
        w, h = d.size
        p = self.model.patch_size
        if p < 1:
            raise TTT3RError(f"{source}: model.patch_size must be >= 1, got {p}")
        if w <= 0 or h <= 0 or w % p or h % p:
            raise TTT3RError(f"{source}: data.size must be positive multiples of {p}, got {w}x{h}")
        if not 1 <= d.clip_min <= d.clip_max:
            raise TTT3RError(f"{source}: need 1 <= data.clip_min <= data.clip_max, got {d.clip_min}, {d.clip_max}")
        if d.stride_max < 1 or (d.clip_max - 1) * d.stride_max + 1 > d.frames:
            raise TTT3RError(
                f"{source}: clips of {d.clip_max} frames at stride {d.stride_max} do not fit in {d.frames}-frame sequences")
        if not (0.0 <= d.reverse_prob <= 1.0 and 0.0 <= d.flip_prob <= 1.0):
            raise TTT3RError(f"{source}: data.reverse_prob and data.flip_prob must be in [0, 1]")
        if d.train_sequences < 1 or d.heldout_sequences < 0:
            raise TTT3RError(f"{source}: data.train_sequences must be >= 1 and data.heldout_sequences >= 0")
        train = set(range(d.train_seed0, d.train_seed0 + d.train_sequences))
        if train & set(range(d.heldout_seed0, d.heldout_seed0 + d.heldout_sequences)):
            raise TTT3RError(f"{source}: training and held-out seeds overlap")
        from ..synth.motion import MOTIONS

        bad = [m for m in d.motions if m not in MOTIONS]
        if not d.motions or bad:
            raise TTT3RError(f"{source}: data.motions must be some of {', '.join(MOTIONS)}, got {list(d.motions)}")
        if o.steps < 1 or o.batch < 1 or o.lr <= 0 or o.warmup < 0 or o.min_lr < 0:
            raise TTT3RError(f"{source}: optim.steps/batch/lr must be positive, warmup/min_lr >= 0")
        if self.log.every < 1 or self.log.ckpt_every < 1 or self.log.plot_every < 1:
            raise TTT3RError(f"{source}: log.every, log.ckpt_every and log.plot_every must be >= 1")
        if self.threads < 1:
            raise TTT3RError(f"{source}: threads must be >= 1, got {self.threads}")
        if self.precision not in ("fp32", "bf16"):
            raise TTT3RError(f"{source}: precision must be fp32 or bf16, got {self.precision!r}")
        from ..update import available_rules

        if self.loss.rule not in available_rules():
            raise TTT3RError(f"{source}: loss.rule must be one of {', '.join(available_rules())}, got {self.loss.rule!r}")
        if not 0.0 <= self.loss.mask_ratio < 1.0:
            raise TTT3RError(f"{source}: loss.mask_ratio must be in [0, 1), got {self.loss.mask_ratio}")
        if self.loss.alpha <= 0:
            raise TTT3RError(f"{source}: loss.alpha must be > 0, got {self.loss.alpha}")


#: ModelConfig fields a config may set (img_size follows data.size; extra is not a setting)
_MODEL_SETTINGS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("img_size", "extra"))
_MODES = ("depth_mode", "conf_mode", "pose_mode")
_MODEL_HINTS = typing.get_type_hints(ModelConfig)


def model_settings(model: ModelConfig) -> dict[str, Any]:
    """The settable fields of ``model`` as JSON-ready values (modes as ``[name, lo, hi]``,
    infinities as ``"inf"`` / ``"-inf"``): the ``[model]`` table of ``config.json``."""
    d = model.to_dict()
    return {k: d[k] for k in _MODEL_SETTINGS}


def model_from_settings(d: dict[str, Any], source: str = "config") -> ModelConfig:
    """The inverse of :func:`model_settings`: a ``[model]`` table (missing keys at their
    defaults) to the :class:`ModelConfig` it describes, checked as a config's would be."""
    if not isinstance(d, dict):
        raise TTT3RError(f"{source}: [model] must be a table")
    cfg = TrainConfig()
    for k, v in d.items():
        _set_model(cfg, k, v, f"model.{k}", source)
    return cfg.model


def _set_model(cfg: TrainConfig, name: str, value: Any, key: str, source: str) -> None:
    """Set one ``[model]`` field, checking its name, type and (for ``Literal`` fields) value."""
    if name == "img_size":
        raise TTT3RError(f"{source}: model.img_size follows data.size; set data.size instead")
    if name not in _MODEL_SETTINGS:
        raise TTT3RError(f"{source}: unknown model setting {name!r}")
    current = getattr(cfg.model, name)
    if name in _MODES:
        ok = isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str) and all(
            (isinstance(x, (int, float)) and not isinstance(x, bool)) or x in ("inf", "-inf") for x in value[1:])
        if not ok:
            raise TTT3RError(f"{source}: {key} must be [name, low, high] (e.g. [\"exp\", 1, \"inf\"]), got {value!r}")
        value = (value[0], float(value[1]), float(value[2]))
    else:
        value = _coerce(current, value, key, source)
    choices = typing.get_args(_MODEL_HINTS[name])
    if typing.get_origin(_MODEL_HINTS[name]) is typing.Literal and value not in choices:
        raise TTT3RError(f"{source}: {key} must be one of {', '.join(map(str, choices))}, got {value!r}")
    cfg.model = dataclasses.replace(cfg.model, **{name: value})


def _set(cfg: TrainConfig, key: str, value: Any, source: str) -> None:
    """Set a dotted ``key`` on ``cfg``, checking the section, the name and the type."""
    parts = key.split(".")
    if parts[0] == "model":
        if len(parts) != 2:
            raise TTT3RError(f"{source}: bad key {key!r} (use model.NAME)")
        _set_model(cfg, parts[1], value, key, source)
        return
    obj: Any = cfg
    for name in parts[:-1]:
        if not dataclasses.is_dataclass(obj) or name not in {f.name for f in dataclasses.fields(obj)}:
            raise TTT3RError(f"{source}: unknown section {name!r} in {key!r}")
        obj = getattr(obj, name)
    name = parts[-1]
    fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
    if name not in fields or dataclasses.is_dataclass(getattr(obj, name)) or name == "model":
        raise TTT3RError(f"{source}: unknown setting {key!r}")
    setattr(obj, name, _coerce(getattr(obj, name), value, key, source))


def _coerce(current: Any, value: Any, key: str, source: str) -> Any:
    def bad() -> TTT3RError:
        return TTT3RError(f"{source}: {key} must be {type(current).__name__}, got {value!r}")

    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise bad()
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise bad()
        return value
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)) or len(value) == 0:
            raise bad()
        if current and isinstance(current[0], int):
            if len(value) != len(current) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
                raise bad()
        elif not all(isinstance(x, str) for x in value):
            raise bad()
        return tuple(value)
    return value  # pragma: no cover


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML/JSON literal when it parses as one, else the string itself."""
    try:
        return toml_loads(f"v = {text}")["v"]
    except Exception:
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(cfg: TrainConfig, overrides: list[str], source: str = "--set") -> TrainConfig:
    """Return a copy of ``cfg`` with ``key=value`` overrides applied and validated."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise TTT3RError(f"{source}: expected key=value, got {item!r}")
        key, text = item.split("=", 1)
        _set(cfg, key.strip(), parse_value(text.strip()), source)
    cfg.validate(source)
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a ``.toml`` or ``.json`` training config (None: defaults), following its
    ``extends`` chain (:func:`ttt3r.train.config_file.read_config_file`), and apply overrides."""
    if path is None:
        cfg = TrainConfig()
    else:
        cfg = TrainConfig.from_dict(read_config_file(path), source=str(path))
    return apply_overrides(cfg, list(overrides or []))
