"""Typed model configuration, and a safe parser for the released constructor string.

The released CUT3R checkpoints store the network as a Python expression in
``args.model``, e.g.::

    ARCroco3DStereo(ARCroco3DStereoConfig(state_size=768, pos_embed='RoPE100', ...,
                    img_size=(512, 512), depth_mode=('exp', -inf, inf), ...))

The original code runs ``eval`` on that string. Here it is parsed with :mod:`ast`
into literals only (numbers, strings, tuples, ``inf``): a string that contains
anything else (a call other than the two constructors, an attribute, a name
other than ``inf``/``True``/``False``/``None``) is refused.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import CheckpointError
from .io.strict_json import dumps

Mode = tuple[str, float, float]


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the CUT3R network (names as in the released checkpoints).

    Defaults are those of the original ``ARCroco3DStereoConfig`` / ``CrocoConfig``.
    """

    # image encoder (ViT with 2D RoPE)
    img_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    enc_embed_dim: int = 768
    enc_depth: int = 12
    enc_num_heads: int = 12
    mlp_ratio: float = 4.0
    pos_embed: str = "RoPE100"
    # ray-map encoder
    ray_enc_depth: int = 2
    ray_enc_num_heads: int = 16  # fixed in the original
    # decoder (image stream) and state stream
    dec_embed_dim: int = 512
    dec_depth: int = 8
    dec_num_heads: int = 16
    state_dec_num_heads: int = 16
    norm_im2_in_dec: bool = True
    # state and pose memory
    state_size: int = 324
    state_pe: Literal["2d", "1d", "none"] = "2d"
    local_mem_size: int = 256
    # heads
    head_type: Literal["linear", "dpt"] = "linear"
    output_mode: str = "pts3d"
    depth_mode: Mode = ("exp", -math.inf, math.inf)
    conf_mode: Mode = ("exp", 1.0, math.inf)
    pose_mode: Mode = ("exp", -math.inf, math.inf)
    rgb_head: bool = False
    pose_head: bool = False
    # ignored by this implementation but kept so that configs round-trip
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def check_supported(self) -> None:
        """Raise :class:`CheckpointError` unless this implementation builds the network
        (a pose head and ``output_mode='pts3d+pose'``, as every released CUT3R checkpoint)."""
        if not self.pose_head:
            raise CheckpointError("model config: pose_head: must be true (ttt3r builds networks with a pose head)")
        if self.output_mode != "pts3d+pose":
            raise CheckpointError(f"model config: output_mode: must be 'pts3d+pose' (the network ttt3r builds), "
                                  f"got {_show(self.output_mode)}")

    @property
    def rope_base(self) -> float:
        if not self.pos_embed.startswith("RoPE"):
            raise CheckpointError(f"unsupported pos_embed {self.pos_embed!r} (only RoPE<base>)")
        return float(self.pos_embed[len("RoPE") :])

    @property
    def default_size(self) -> int:
        """The preprocessing size the checkpoint was trained for (512 or 224)."""
        return max(self.img_size)

    # -- serialisation ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("depth_mode", "conf_mode", "pose_mode"):
            d[k] = [d[k][0], _enc_float(d[k][1]), _enc_float(d[k][2])]
        d["img_size"] = list(d["img_size"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """A config from :meth:`to_dict`'s form (JSON); unknown keys go to ``extra``.

        Every value is checked (:func:`check_config`; :meth:`from_json` and
        :meth:`from_constructor`, the two ways a checkpoint's config is read, come
        here): :class:`CheckpointError` names the key and the rule its value breaks.
        """
        if not isinstance(d, dict):
            raise CheckpointError(f"model config: must be an object of keys and values, got {_show(d)}")
        names = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {}
        extra = d.get("extra", {})
        if not isinstance(extra, dict):
            raise CheckpointError(f"model config: extra: must be an object, got {_show(extra)}")
        extra = dict(extra)
        for k, v in d.items():
            if k == "extra":
                continue
            if k not in names:
                extra[k] = v
                continue
            if k in _MODE_KINDS and isinstance(v, (list, tuple)) and len(v) == 3:
                v = (v[0], _dec_float(v[1]), _dec_float(v[2]))
            elif k == "img_size":
                v = tuple(v) if isinstance(v, (list, tuple)) else (v, v)
            kw[k] = v
        cfg = cls(extra=extra, **kw)
        check_config(cfg)
        return cfg

    def to_json(self) -> str:
        return dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_constructor(cls, text: str) -> ModelConfig:
        """Parse the ``args.model`` string of a released checkpoint (never evaluated)."""
        return cls.from_dict(_translate(parse_constructor(text)))

    def to_constructor(self) -> str:
        """The equivalent constructor string, as the original code writes it."""
        parts = []
        for k, v in _untranslate(self).items():
            parts.append(f"{k}={_py_repr(v)}")
        return f"ARCroco3DStereo(ARCroco3DStereoConfig({', '.join(parts)}))"


def _enc_float(x: float) -> float | str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _dec_float(x: Any) -> Any:
    """A JSON mode bound (a number, or ``"inf"`` / ``"-inf"``) as a float; anything else as it is."""
    if isinstance(x, str) and x.strip().lower() in ("inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(x)
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return x  # reported by check_config


# -- the rules every config obeys -----------------------------------------------------------------------------------

#: Integer fields and their smallest value.
_INT_FIELDS = {"patch_size": 1, "enc_embed_dim": 1, "enc_depth": 1, "enc_num_heads": 1, "ray_enc_depth": 0,
               "ray_enc_num_heads": 1, "dec_embed_dim": 1, "dec_depth": 1, "dec_num_heads": 1,
               "state_dec_num_heads": 1, "state_size": 1, "local_mem_size": 1}
_BOOL_FIELDS = ("norm_im2_in_dec", "rgb_head", "pose_head")
_CHOICES = {"state_pe": ("2d", "1d", "none"), "head_type": ("linear", "dpt")}
#: Mode fields and the kinds the heads implement (:mod:`ttt3r.model.heads`).
_MODE_KINDS = {"depth_mode": ("exp", "linear", "square"), "conf_mode": ("exp", "sigmoid"),
               "pose_mode": ("exp", "linear", "square")}
#: (heads, width): the attention heads must divide the token width.
_DIVIDES = (("enc_num_heads", "enc_embed_dim"), ("ray_enc_num_heads", "enc_embed_dim"),
            ("dec_num_heads", "dec_embed_dim"), ("state_dec_num_heads", "dec_embed_dim"))


def _show(v: Any) -> str:
    """A value as the config file would spell it (JSON: ``null``, ``"12"``), else its repr."""
    try:
        return json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return repr(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bad(key: str, rule: str, value: Any) -> CheckpointError:
    return CheckpointError(f"model config: {key}: {rule}, got {_show(value)}")


def check_config(cfg: ModelConfig) -> None:
    """Check the type and range of every field, and that heads divide widths.

    Raises :class:`CheckpointError` with one line naming the key and the rule it breaks.
    """
    for key, low in _INT_FIELDS.items():
        v = getattr(cfg, key)
        if not _is_int(v) or v < low:
            raise _bad(key, f"must be an integer >= {low}", v)
    for key in _BOOL_FIELDS:
        if not isinstance(getattr(cfg, key), bool):
            raise _bad(key, "must be true or false", getattr(cfg, key))
    for key, choices in _CHOICES.items():
        if getattr(cfg, key) not in choices or not isinstance(getattr(cfg, key), str):
            raise _bad(key, f"must be one of {', '.join(choices)}", getattr(cfg, key))
    r = cfg.mlp_ratio
    if not (_is_int(r) or isinstance(r, float)) or not math.isfinite(r) or r <= 0:
        raise _bad("mlp_ratio", "must be a finite number > 0", r)
    if not isinstance(cfg.output_mode, str):
        raise _bad("output_mode", "must be a string", cfg.output_mode)
    if not isinstance(cfg.pos_embed, str) or not cfg.pos_embed.startswith("RoPE") or not _is_rope_base(cfg.pos_embed):
        raise _bad("pos_embed", "must be RoPE<base> with a number base > 0 (e.g. RoPE100)", cfg.pos_embed)
    size = cfg.img_size
    if (not isinstance(size, tuple) or len(size) != 2 or not all(_is_int(x) and x > 0 for x in size)):
        raise _bad("img_size", "must be two integers > 0 (height, width) or one", size)
    if any(x % cfg.patch_size for x in size):
        raise _bad("img_size", f"must be multiples of patch_size ({cfg.patch_size})", list(size))
    for key, kinds in _MODE_KINDS.items():
        m = getattr(cfg, key)
        ok = (isinstance(m, tuple) and len(m) == 3 and m[0] in kinds and isinstance(m[0], str)
              and all(isinstance(b, float) and not math.isnan(b) for b in m[1:]) and m[1] <= m[2])
        if not ok:
            raise _bad(key, f"must be [kind, min, max] with kind one of {', '.join(kinds)} and min <= max",
                       list(m) if isinstance(m, tuple) else m)
    for heads, width in _DIVIDES:
        h, w = getattr(cfg, heads), getattr(cfg, width)
        if w % h:
            raise CheckpointError(f"model config: {heads}: must divide {width} ({w}), got {h}")
    if not isinstance(cfg.extra, dict):
        raise _bad("extra", "must be an object", cfg.extra)


def _is_rope_base(text: str) -> bool:
    try:
        base = float(text[len("RoPE"):])
    except ValueError:
        return False
    return math.isfinite(base) and base > 0


def _py_repr(v: Any) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, tuple):
        return "(" + ", ".join(_py_repr(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


_ALLOWED_CALLS = ("ARCroco3DStereo", "ARCroco3DStereoConfig")
_NAMES = {"inf": math.inf, "True": True, "False": False, "None": None}


def parse_constructor(text: str) -> dict[str, Any]:
    """Parse ``ARCroco3DStereo(ARCroco3DStereoConfig(k=v, ...))`` into a dict of literals.

    Raises :class:`CheckpointError` on anything but that shape with literal values.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise CheckpointError(f"model constructor string is not valid syntax: {e.msg}") from e
    node = tree.body
    if isinstance(node, ast.Call) and _call_name(node) == "ARCroco3DStereo":
        if len(node.args) != 1 or node.keywords:
            raise CheckpointError("model constructor: ARCroco3DStereo takes one config argument")
        node = node.args[0]
    if not (isinstance(node, ast.Call) and _call_name(node) == "ARCroco3DStereoConfig"):
        raise CheckpointError(
            f"model constructor string must be ARCroco3DStereo(ARCroco3DStereoConfig(...)), got {text[:80]!r}"
        )
    if node.args:
        raise CheckpointError("model constructor: positional arguments are not supported")
    return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}


def _call_name(node: ast.Call) -> str | None:
    return node.func.id if isinstance(node.func, ast.Name) else None


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e) for e in node.elts)
    raise CheckpointError(
        f"model constructor: only literal values are allowed, found {ast.dump(node)[:60]}"
    )


# The original's keyword names that differ from ours, or that we do not use.
_IGNORED = {"freeze", "landscape_only", "patch_embed_cls", "model_update_type", "mask_ratio",
            "depth_head", "pose_conf_head", "norm_layer"}


def _translate(kw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    for k, v in kw.items():
        if k in _IGNORED:
            extra[k] = v
        elif k in names:
            out[k] = v
        else:
            raise CheckpointError(f"model constructor: unknown option {k}={v!r}")
    if extra.get("depth_head") or extra.get("pose_conf_head"):
        raise CheckpointError("model constructor: depth_head / pose_conf_head heads are not supported")
    if "img_size" in out and not isinstance(out["img_size"], tuple):
        out["img_size"] = (out["img_size"], out["img_size"])
    out["extra"] = extra
    return out


def _untranslate(cfg: ModelConfig) -> dict[str, Any]:
    d = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    d.pop("extra")
    d.pop("ray_enc_num_heads")
    return d
