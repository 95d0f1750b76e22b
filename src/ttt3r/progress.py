"""Progress bars for long work (frames done, rate, ETA), on stderr, all made here.

:func:`progress_bar` is tqdm's bar with the project's settings; disabled, it is a
bar that shows nothing, so callers update it either way.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int | None, desc: str, *, unit: str = "frame", enabled: bool = True, initial: int = 0,
                 scale_bytes: bool = False) -> Any:
    """A tqdm bar on stderr: ``update(n)``, ``close()``, usable as a context manager.

    Args:
        total: the count when done (None or 0: unknown, a plain counter is shown).
        desc: what is being done (``"reconstruct"``, ``"loop closure: rewrite"``).
        unit: what is counted (``"frame"``, ``"pair"``).
        enabled: False: a bar that prints nothing.
        initial: already done (a resumed job).
        scale_bytes: counting bytes: shown as KiB, MiB, ... (``unit`` is then ``"B"``).
    """
    from tqdm import tqdm

    units = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if scale_bytes else {"unit": unit}
    return tqdm(total=total or None, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                smoothing=0.1, mininterval=0.5, file=sys.stderr, **units)
