"""Strict JSON: what ttt3r writes is valid JSON (RFC 8259), which has no NaN or Infinity.

:func:`json_safe` turns non-finite floats into ``null`` (and numpy scalars,
paths and tuples into their JSON counterparts); :func:`dumps` and
:func:`write_json` apply it and then refuse anything left that JSON cannot hold
(``allow_nan=False``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

from .atomic import atomic_write_text

__all__ = ["dumps", "json_safe", "write_json"]


def json_safe(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``: non-finite floats -> ``None``; numpy scalars and arrays -> Python
    numbers and lists; objects with ``to_dict()`` -> that dict; paths -> strings; tuples and sets
    -> lists; dict keys -> strings. Other objects are returned as they are (for ``default``)."""
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if callable(getattr(obj, "to_dict", None)):
        return json_safe(obj.to_dict())
    if callable(getattr(obj, "tolist", None)) and not isinstance(obj, (str, bytes)):  # numpy scalars, arrays
        return json_safe(obj.tolist())
    return obj


def dumps(obj: Any, *, default: Callable[[Any], Any] | None = str, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(obj)`` with ``allow_nan=False``; objects JSON cannot hold
    go through ``default`` (``str``; ``None``: a ``TypeError``). Other keyword arguments as json's."""
    return json.dumps(json_safe(obj), allow_nan=False, default=default, **kwargs)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1, **kwargs: Any) -> None:
    """Write ``obj`` as strict JSON (:func:`dumps`, plus a newline) to ``path`` atomically."""
    atomic_write_text(path, dumps(obj, indent=indent, **kwargs) + "\n")
