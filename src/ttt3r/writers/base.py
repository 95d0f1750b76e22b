"""The streaming writer interface shared by every output."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..results import FrameResult

__all__ = ["Writer"]


@runtime_checkable
class Writer(Protocol):
    """Receives frames one by one and finishes its files at :meth:`close`.

    ``add`` is called once per frame in index order; ``flush`` (periodically)
    brings files written in bulk up to date with the frames added so far;
    ``close(interrupted)`` writes the final files (also after an error, with
    ``interrupted=True``, so that finished frames are saved). Writers keep only
    small per-frame state (a pose, intrinsics), never images or point maps.
    """

    def add(self, frame: FrameResult) -> None: ...

    def flush(self) -> None: ...

    def close(self, interrupted: bool = False) -> None: ...
