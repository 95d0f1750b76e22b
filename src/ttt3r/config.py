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
        names = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {}
        extra: dict[str, Any] = dict(d.get("extra", {}))
        for k, v in d.items():
            if k == "extra":
                continue
            if k not in names:
                extra[k] = v
                continue
            if k in ("depth_mode", "conf_mode", "pose_mode"):
                v = (str(v[0]), _dec_float(v[1]), _dec_float(v[2]))
            elif k == "img_size":
                v = (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))
            kw[k] = v
        return cls(extra=extra, **kw)

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


def _dec_float(x: Any) -> float:
    return float(x)  # float("inf") / float("-inf") parse the strings


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
