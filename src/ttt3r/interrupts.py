"""Stopping a run: SIGTERM is handled like Ctrl-C, and closing files is not cut short.

* :func:`terminate_as_interrupt`: inside it, SIGTERM (``kill PID``, a job
  scheduler's stop) raises :class:`Interrupted`, a ``KeyboardInterrupt``, as
  Ctrl-C does; so a terminated run closes its files like an interrupted one.
* :func:`deferred_interrupts`: inside it, Ctrl-C and SIGTERM are recorded, not
  raised, so that a run being closed finishes its files and ``run.json``;
  the interrupt is raised when the block ends (unless an exception is already
  on its way out). SIGKILL cannot be caught: see :mod:`ttt3r.writers.lock` for
  what a killed run leaves.

Signal handlers can only be set in the main thread; elsewhere both are no-ops.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Interrupted", "deferred_interrupts", "terminate_as_interrupt"]


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


def _raise_interrupted(signum, _frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Interrupted` (as Ctrl-C raises KeyboardInterrupt)."""
    if not _main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


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

    def record(signum, _frame) -> None:
        if not got and note:
            print(note, file=sys.stderr, flush=True)
        got.append(signum)

    old = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if got:
        raise Interrupted(got[0])
