"""Stopping a run: SIGTERM is handled like Ctrl-C, and closing files is not cut short.

* :func:`graceful_interrupts`: inside it, Ctrl-C and SIGTERM (``kill PID``, a
  job scheduler's stop) raise :class:`Interrupted`, a ``KeyboardInterrupt``,
  once; later ones are only recorded, so that the run being stopped can close
  its files and ``run.json``, however quickly the next Ctrl-C follows.
* :func:`deferred_interrupts`: inside it, Ctrl-C and SIGTERM are recorded, not
  raised (e.g. while a run closes its files); the interrupt is raised when the
  block ends (unless an exception is already on its way out).

SIGKILL cannot be caught: see :mod:`ttt3r.writers.lock` for what a killed run
leaves. Signal handlers can only be set in the main thread; elsewhere both are
no-ops.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Interrupted", "deferred_interrupts", "graceful_interrupts"]


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (``signum`` SIGINT) or SIGTERM.

    Attributes:
        signum: the signal number.
        frames: frames finished and written before the stop (``None``: not known here).
        out_dir: the output folder, once a run has one.
        kept: whether the output folder holds the stopped run's frames (``False``:
            nothing was written, or an earlier run's results were left as they were).
    """

    def __init__(self, signum: int = signal.SIGINT, frames: int | None = None, out_dir: Path | None = None,
                 kept: bool = False) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.frames = frames
        self.out_dir = out_dir
        self.kept = kept

    @property
    def exit_code(self) -> int:
        """The shell's exit status for a process ended by this signal (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signum


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _recorder(got: list[int], note: str | None):
    def record(signum, _frame) -> None:
        if not got and note:
            print(note, file=sys.stderr, flush=True)
        got.append(signum)

    return record


def _set(handlers: dict) -> None:
    for s, h in handlers.items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextlib.contextmanager
def graceful_interrupts(note: str | None = None) -> Iterator[list[int]]:
    """Within the block, the first SIGINT or SIGTERM raises :class:`Interrupted`; later ones are recorded
    (the yielded list, after the first) and ``note`` is printed at the first of them."""
    got: list[int] = []
    if not _main_thread():
        yield got
        return
    record = _recorder(got, note)

    def first(signum, _frame) -> None:
        _set(dict.fromkeys(_SIGNALS, record))  # from now on the run is closing: do not cut it short
        raise Interrupted(signum)

    old = {s: signal.signal(s, first) for s in _SIGNALS}
    try:
        yield got
    finally:
        _set(old)


@contextlib.contextmanager
def deferred_interrupts(note: str | None = None) -> Iterator[list[int]]:
    """Within the block, SIGINT and SIGTERM are recorded (the yielded list), not raised.

    ``note``: printed to stderr at the first deferred signal (e.g. "finishing the files").
    When the block ends normally and a signal came, :class:`Interrupted` is raised.
    """
    got: list[int] = []
    if not _main_thread():
        yield got
        return
    old = {s: signal.signal(s, _recorder(got, note)) for s in _SIGNALS}
    try:
        yield got
    finally:
        _set(old)
    if got:
        raise Interrupted(got[0])
