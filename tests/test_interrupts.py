"""SIGTERM is Ctrl-C, and an interrupt that follows the first does not cut the close short (issue 20)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ttt3r.interrupts import Interrupted, deferred_interrupts, graceful_interrupts


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary of the main thread


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_first_interrupt_raises_later_ones_wait(first: int, capsys: pytest.CaptureFixture) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    closed = False
    with pytest.raises(Interrupted) as ei:
        with graceful_interrupts(note="finishing") as later:
            try:
                _signal_self(first)
            finally:  # the "close": a quick second Ctrl-C and a SIGTERM do not interrupt it
                _signal_self(signal.SIGINT)
                _signal_self(signal.SIGTERM)
                closed = True
    assert closed and ei.value.signum == first and later == [signal.SIGINT, signal.SIGTERM]
    assert isinstance(ei.value, KeyboardInterrupt) and ei.value.exit_code == 128 + first
    assert "finishing" in capsys.readouterr().err
    assert {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} == before  # restored


def test_deferred_interrupt_is_raised_when_the_block_ends() -> None:
    done = []
    with pytest.raises(Interrupted) as ei:
        with deferred_interrupts() as got:
            _signal_self(signal.SIGTERM)
            done.append("the whole block ran")
    assert done and got == [signal.SIGTERM] and ei.value.signum == signal.SIGTERM
    with deferred_interrupts() as got:  # nothing came: nothing raised
        pass
    assert got == []
