"""Reading a training config file: TOML or JSON, with ``extends`` inheritance.

A config may start from another one and hold only its changes::

    extends = "train_small.toml"     # path relative to this file
    seed = 4

    [optim]
    steps = 2000                     # every other [optim] key comes from train_small.toml

The parent is read first (itself possibly extending another file) and the child
is merged into it recursively: a table merges key by key, any other value
(number, string, list) replaces the parent's. A chain that comes back to a file
already in it is an error, as are a missing parent and a non-string ``extends``.
Each error is one :class:`ttt3r.errors.TTT3RError` line naming the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..errors import TTT3RError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pyproject: tomli>=2 there)
    import tomli as tomllib

__all__ = ["read_config_file", "merge_tables", "toml_loads"]


def toml_loads(text: str) -> dict[str, Any]:
    """Parse TOML text (:mod:`tomllib`, or ``tomli`` on Python 3.10)."""
    return tomllib.loads(text)


def merge_tables(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``changes``: tables merge recursively, other values replace.

    Neither argument is modified.
    """
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = value
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a ``.toml`` / ``.json`` config, its ``extends`` chain merged in
    (the returned table has no ``extends`` key)."""
    return _read(Path(path), ())


def _read(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    key = path.resolve()
    if key in chain:
        names = " -> ".join(str(p) for p in (*chain, key))
        raise TTT3RError(f"{chain[-1]}: extends makes a cycle ({names})")
    d = _parse(path)
    parent = d.pop("extends", None)
    if parent is None:
        return d
    if not isinstance(parent, str) or not parent:
        raise TTT3RError(f"{path}: extends must be a file path (a string), got {parent!r}")
    parent_path = path.parent / parent
    if not parent_path.is_file():
        raise TTT3RError(f"{path}: extends {parent!r}, but {parent_path} is not a file")
    return merge_tables(_read(parent_path, (*chain, key)), d)


def _parse(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TTT3RError(f"{path}: cannot read config ({e.strerror})") from None
    if path.suffix.lower() == ".json":
        try:
            d = json.loads(text)
        except ValueError as e:
            raise TTT3RError(f"{path}: invalid JSON ({e})") from None
    else:
        try:
            d = toml_loads(text)
        except tomllib.TOMLDecodeError as e:
            raise TTT3RError(f"{path}: invalid TOML ({e})") from None
    if not isinstance(d, dict):
        raise TTT3RError(f"{path}: expected a table of settings")
    return d
