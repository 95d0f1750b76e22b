"""Loading, checking and converting checkpoints.

Two formats are read:

* the released CUT3R ``.pth`` files: a ``torch.save`` dict with ``"model"`` (the
  state dict) and ``"args"`` (an omegaconf config whose ``model`` entry is the
  constructor string). It is unpickled with an allowlist: tensors, containers and
  stand-ins for omegaconf/argparse objects. Any other global (e.g. ``os.system``)
  is refused before anything runs. omegaconf does not need to be installed.
* our own format: a folder (or the path of its ``model.safetensors``) holding
  ``model.safetensors`` and ``config.json`` (:class:`ttt3r.config.ModelConfig`).

Compatibility steps of the original loader are applied (``module.`` prefix
stripped; ``dec_blocks`` copied to ``dec_blocks_state`` when the file has no
state-decoder weights), then the state dict must match the network exactly:
missing, unexpected or mis-shaped keys are refused with their names.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .errors import CheckpointError
from .io.atomic import atomic_path, atomic_write_text

SAFETENSORS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

# --------------------------------------------------------------------------------------
# restricted unpickling


class _Stub:
    """Stand-in for an allowed foreign class (omegaconf, argparse): keeps its state only."""

    _qualname = "?"

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self._qualname} {self.state!r}>"


def _stub(qualname: str) -> type:
    return type(qualname.rsplit(".", 1)[-1], (_Stub,), {"_qualname": qualname})


_STUB_PREFIXES = ("omegaconf.",)
_STUB_NAMES = {"argparse.Namespace", "typing.Any", "pathlib.PosixPath", "pathlib.WindowsPath"}
_BUILTINS = {
    "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
    "int": int, "long": int, "float": float, "str": str, "bytes": bytes, "bool": bool,
    "complex": complex, "bytearray": bytearray, "slice": slice,
}
_STUB_CACHE: dict[str, type] = {}


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    if not (isinstance(cls, type) and issubclass(cls, _Stub)):
        raise pickle.UnpicklingError(f"copyreg reconstruction of {cls!r} is not allowed")
    return cls()


def _torch_allowed() -> dict[str, Any]:
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return dict(_get_allowed_globals())
    except Exception:  # pragma: no cover - older/newer torch without the helper
        import collections

        return {
            "collections.OrderedDict": collections.OrderedDict,
            "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
            "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
        }


class _RestrictedUnpickler(pickle.Unpickler):
    allowed: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401
        full = f"{module}.{name}"
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if full == "collections.defaultdict":
            import collections

            return collections.defaultdict
        if full in ("copyreg._reconstructor", "copy_reg._reconstructor"):
            return _safe_reconstructor
        if full in self.allowed:
            return self.allowed[full]
        if full in _STUB_NAMES or module.startswith(_STUB_PREFIXES):
            if full not in _STUB_CACHE:
                _STUB_CACHE[full] = _stub(full)
            return _STUB_CACHE[full]
        raise pickle.UnpicklingError(f"refused global {full!r}")


class _SafePickleModule:
    """A ``pickle_module`` for :func:`torch.load` whose Unpickler uses an allowlist."""

    Unpickler = _RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError
    __name__ = "ttt3r_safe_pickle"

    @staticmethod
    def load(f: Any, **kw: Any) -> Any:
        return _RestrictedUnpickler(f, **kw).load()


def _plain(obj: Any) -> Any:
    """Turn omegaconf/argparse stand-ins into plain dicts, lists and values."""
    if isinstance(obj, _Stub):
        q = obj._qualname
        st = obj.state
        if q.endswith("DictConfig"):
            content = st.get("_content") if isinstance(st, dict) else None
            return {k: _plain(v) for k, v in (content or {}).items()}
        if q.endswith("ListConfig"):
            content = st.get("_content") if isinstance(st, dict) else None
            return [_plain(v) for v in (content or [])]
        if isinstance(st, dict) and "_val" in st:
            return _plain(st["_val"])
        if q == "argparse.Namespace":
            return {k: _plain(v) for k, v in (st or {}).items()} if isinstance(st, dict) else {}
        return None
    if isinstance(obj, Mapping) and not isinstance(obj, torch.Tensor):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


_ZIP_MAGIC = b"PK\x03\x04"


def _torch_load_safe(path: Path) -> Any:
    _RestrictedUnpickler.allowed = _torch_allowed()
    mmap = zipfile.is_zipfile(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if not head:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    if head == _ZIP_MAGIC and not mmap:  # a zip archive without its central directory: cut short
        raise CheckpointError(_INCOMPLETE.format(path=path))
    try:
        return torch.load(path, map_location="cpu", pickle_module=_SafePickleModule,
                          weights_only=False, mmap=mmap)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "refused global" in msg:
            raise CheckpointError(
                f"{path}: refused to load: the file references {msg.split('refused global ')[-1]}, "
                "which could run code (only tensors and plain data are allowed)") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({msg})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        text = " ".join(str(e).split())
        if isinstance(e, zipfile.BadZipFile) or "zip archive" in text or "miniz" in text:
            raise CheckpointError(_INCOMPLETE.format(path=path)) from None
        first = text.split(". ")[0].rstrip(".") if text else type(e).__name__  # torch's first sentence only
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({first})") from None


_INCOMPLETE = "{path}: not a complete checkpoint (truncated or corrupt zip archive)"


# --------------------------------------------------------------------------------------
# reading


def read_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read a checkpoint in either format; return its config and raw state dict (CPU)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix == ".safetensors":
        return _read_safetensors(path)
    ckpt = _torch_load_safe(path)
    if not isinstance(ckpt, Mapping) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a CUT3R checkpoint (expected a dict with a 'model' state dict)")
    sd = ckpt["model"]
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: 'model' is not a state dict of tensors")
    args = _plain(ckpt.get("args"))
    text = args.get("model") if isinstance(args, dict) else None
    if not isinstance(text, str):
        raise CheckpointError(f"{path}: no model constructor string in args.model")
    try:
        cfg = ModelConfig.from_constructor(text)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return cfg, dict(sd)


def _read_safetensors(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = path if path.is_dir() else path.parent
    weights = folder / SAFETENSORS_NAME if path.is_dir() else path
    cfg_path = folder / CONFIG_NAME
    for p in (weights, cfg_path):
        if not p.is_file():
            raise CheckpointError(f"{p}: missing (a converted checkpoint holds {SAFETENSORS_NAME} and {CONFIG_NAME})")
    try:
        cfg = ModelConfig.from_json(cfg_path.read_text(encoding="utf-8"))
    except CheckpointError as e:  # names the key and the rule it breaks
        raise CheckpointError(f"{cfg_path}: {e}") from None
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{cfg_path}: invalid model config ({' '.join(str(e).split())})") from None
    try:
        sd = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: truncated or corrupt safetensors file ({e})") from None
    return cfg, sd


# --------------------------------------------------------------------------------------
# matching a state dict to the network


def _alias_pairs(keys: list[str]) -> list[tuple[str, str]]:
    """(``...scratch.layer{j+1}_rn.weight``, ``...scratch.layer_rn.{j}.weight``) pairs."""
    pairs = []
    for k in keys:
        if ".scratch.layer_rn." in k:
            pre, rest = k.split(".scratch.layer_rn.")
            j, tail = rest.split(".", 1)
            pairs.append((f"{pre}.scratch.layer{int(j) + 1}_rn.{tail}", k))
    return pairs


def adapt_state_dict(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size],
                     source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Apply the compatibility steps and check keys and shapes against ``expected``.

    Raises :class:`CheckpointError` naming missing, unexpected or mis-shaped keys.
    """
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    if not any(k.startswith("dec_blocks_state.") for k in sd):
        for k in list(sd):
            if k.startswith("dec_blocks."):
                sd["dec_blocks_state." + k[len("dec_blocks."):]] = sd[k]
    for canon, alias in _alias_pairs(list(expected)):
        if canon in sd and alias not in sd:
            sd[alias] = sd[canon]
        elif alias in sd and canon not in sd:
            sd[canon] = sd[alias]
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) ({_few(unexpected)})")
    bad = [f"{k} {tuple(sd[k].shape)} != {tuple(s)}" for k, s in expected.items()
           if k in sd and tuple(sd[k].shape) != tuple(s)]
    if bad:
        problems.append(f"{len(bad)} shape mismatch(es) ({_few(bad)})")
    if problems:
        raise CheckpointError(f"{source}: does not match the network: " + "; ".join(problems))
    return sd


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


# --------------------------------------------------------------------------------------
# public entry points


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu") -> torch.nn.Module:
    """An uninitialised network for ``cfg`` (weights are zeros; use ``meta`` for shapes only).

    Raises :class:`CheckpointError` when ``cfg`` is not a network this implementation builds.
    """
    from .model.cut3r import CUT3R

    cfg.check_supported()
    with torch.device(device):
        return CUT3R(cfg)


def _build_checked(cfg: ModelConfig, path: str | os.PathLike) -> torch.nn.Module:
    """:func:`build_model` on ``meta`` (shapes only), its refusal naming the checkpoint ``path``."""
    try:
        return build_model(cfg, "meta")
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_weights_file(path: str | os.PathLike, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32):
    """Load a checkpoint file or folder into a ready network in eval mode.

    Weights are memory-mapped when the file allows it and assigned without a
    second copy; ``dtype`` converts them (floating-point parameters only).
    """
    cfg, sd = read_checkpoint(path)
    model = _build_checked(cfg, path)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    sd = adapt_state_dict(sd, expected, source=str(path))
    sd = convert_state_dict(sd, device, dtype, _PageReleaser(path))
    model.load_state_dict(sd, strict=True, assign=True)
    del sd
    model = model.to(device=device, dtype=dtype)
    return model.eval().requires_grad_(False)


def convert_state_dict(sd: dict[str, torch.Tensor], device: str | torch.device, dtype: torch.dtype,
                       releaser: _PageReleaser | None = None) -> dict[str, torch.Tensor]:
    """Move/convert a state dict tensor by tensor (floating-point tensors to ``dtype``).

    Tensors already on ``device`` in ``dtype`` are kept as they are (a memory-mapped
    fp32 checkpoint loaded in fp32 stays mapped, without a copy). When a tensor is
    converted, the source entry is dropped and, if it lies in the checkpoint's file
    mapping, its pages are released from the resident set (``releaser``): converting
    a 3.2 GB fp32 file to bf16 then never holds both copies. Tensors shared by
    several keys stay shared.
    """
    out: dict[str, torch.Tensor] = {}
    done: dict[int, torch.Tensor] = {}
    for key in list(sd):
        v = sd.pop(key)
        if id(v) in done:
            out[key] = done[id(v)]
            continue
        new = v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
        if new is not v and releaser is not None:
            releaser.release(v)
        out[key] = done[id(v)] = new
        del v, new
    return out


class _PageReleaser:
    """Drops the resident pages of tensors that live in a checkpoint's file mapping.

    Only address ranges that ``/proc/self/maps`` shows as mappings *of that file* are
    touched (``madvise(MADV_DONTNEED)``): the pages are clean file pages, so a later
    read would simply fault them in again from the file. Elsewhere (no
    ``/proc``, no libc, a file that was read rather than mapped) it does nothing.
    """

    MADV_DONTNEED = 4

    def __init__(self, path: str | os.PathLike):
        self.ranges: list[tuple[int, int]] = []
        self._madvise = None
        try:
            real = os.path.realpath(path)
            with open("/proc/self/maps") as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and parts[5].rstrip("\n") == real:
                        a, b = (int(x, 16) for x in parts[0].split("-"))
                        self.ranges.append((a, b))
            if self.ranges:
                import ctypes
                import mmap

                libc = ctypes.CDLL(None, use_errno=True)
                libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                libc.madvise.restype = ctypes.c_int
                self._madvise = libc.madvise
                self.page = mmap.PAGESIZE
        except (OSError, AttributeError, ValueError):
            self.ranges = []

    def release(self, t: torch.Tensor) -> bool:
        if self._madvise is None or t.device.type != "cpu":
            return False
        st = t.untyped_storage()
        start, end = st.data_ptr(), st.data_ptr() + st.nbytes()
        a = -(-start // self.page) * self.page
        b = end // self.page * self.page
        if b <= a or not any(lo <= a and b <= hi for lo, hi in self.ranges):
            return False
        return self._madvise(a, b - a, self.MADV_DONTNEED) == 0


def save_converted(model_or_sd: Any, cfg: ModelConfig, out_dir: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``out_dir`` (atomically, file by file)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = model_or_sd.state_dict() if hasattr(model_or_sd, "state_dict") else dict(model_or_sd)
    aliases = {alias for _, alias in _alias_pairs(list(sd))}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sd.items() if k not in aliases}
    try:
        with atomic_path(out / SAFETENSORS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt", "producer": "ttt3r"})
    except OSError as e:
        raise CheckpointError(f"{out / SAFETENSORS_NAME}: cannot write ({e.strerror})") from None
    atomic_write_text(out / CONFIG_NAME, cfg.to_json() + "\n")
    return out


def convert_checkpoint(src: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert a released ``.pth`` to our safetensors + JSON format (checked on the way)."""
    cfg, sd = read_checkpoint(src)
    expected = {k: v.shape for k, v in _build_checked(cfg, src).state_dict().items()}
    sd = adapt_state_dict(sd, expected, source=str(src))
    return save_converted(sd, cfg, out_dir)


__all__ = [
    "adapt_state_dict",
    "build_model",
    "convert_checkpoint",
    "load_weights_file",
    "read_checkpoint",
    "save_converted",
]
