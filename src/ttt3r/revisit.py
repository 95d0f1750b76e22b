"""Revisits (``--revisit R``): feed the sequence R times; the outputs are those of the last pass.

As the original's ``prepare_input(revisit=R, update=...)``: the first pass
updates the state as usual; the later passes update it too (``update=True``,
``--revisit-update``) or only read it (``--no-revisit-update``: state and pose
memory stay as the first pass left them). Frames are re-read from the source
for every pass (``reopen``), never kept, so memory stays flat. Without updates
the passes between the first and the last cannot change anything and are
skipped. The last pass's frames are numbered from 0 again; its poses are in the
first pass's world frame (the first camera of the first pass).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def warm_up(session, reopen: Callable[[], Iterable[Any]], passes: int, update: bool,
            step: Callable[[Any, Any], Any]) -> int:
    """Run the ``passes - 1`` passes before the one whose outputs count; returns frames fed.

    Args:
        session: a :class:`ttt3r.Session` (no ``reset_every``).
        reopen: returns a fresh iterable over the sequence's frames.
        passes: R >= 1 (1: nothing to do).
        update: whether passes after the first change the state.
        step: ``step(session, frame)`` feeds one frame (its output is discarded).

    Afterwards ``session`` is ready for the last pass: its frame counter is 0 and
    ``session.update_state`` is ``update``.
    """
    fed = 0
    for p in range(passes - 1):
        if p >= 1 and not update:
            break  # read-only passes between the first and the last change nothing
        session.update_state = p == 0 or update
        for frame in reopen():
            step(session, frame)
            fed += 1
    if passes > 1:
        session.update_state = update
        session.frames_done = 0
    return fed
