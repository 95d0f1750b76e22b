"""Checks of settings at the door: one-line :class:`~ttt3r.errors.TTT3RError` naming the setting and its rule.

Each check takes the name to show (a command-line flag such as ``--max-frames``,
or a field name) and the value; ``bool`` is never accepted as a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import TTT3RError

__all__ = ["check_choice", "check_int", "check_number"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
              optional: bool = False) -> None:
    """``value`` is an integer in ``[minimum, maximum]`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return
    rule = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    rule += f" and <= {maximum}" if maximum is not None else ""
    if not _is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise TTT3RError(f"{name}: must be {rule}, got {value!r}")


def check_number(name: str, value: Any, positive: bool = False, optional: bool = False) -> None:
    """``value`` is a finite real number (``> 0`` when ``positive``; ``None`` allowed when ``optional``)."""
    if value is None and optional:
        return
    rule = "a finite number" + (" > 0" if positive else "")
    ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value) and (not positive or value > 0)
    if not ok:
        raise TTT3RError(f"{name}: must be {rule}, got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any], optional: bool = False) -> None:
    """``value`` is one of ``choices`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return
    choices = list(choices)
    if isinstance(value, bool) or value not in choices:
        raise TTT3RError(f"{name}: must be one of {', '.join(map(str, choices))}, got {value!r}")
