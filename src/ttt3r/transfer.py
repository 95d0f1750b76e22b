"""What every download source shares: the failure of one source, the stall limit, byte sizes.

A source (:mod:`ttt3r.http_transfer`, :mod:`ttt3r.hf_transfer`) raises
:class:`TransferFailed` with a short reason when it did not give the file;
:mod:`ttt3r.hub` then tries the next source and finally reports every reason
in one line.
"""

from __future__ import annotations

import time

_STALL_BYTES = 64 << 10  # fewer bytes than this within the stall window: the download is stalled


class TransferFailed(Exception):
    """One source did not give the file; the message is a short reason (no path, one line)."""


class StallGuard:
    """Fails a transfer that receives fewer than ``min_bytes`` within ``limit`` seconds.

    The window restarts each time ``min_bytes`` more have arrived, so a server
    that sends a byte now and then (and so never trips a per-read timeout) is
    still caught. Call :meth:`feed` with each piece received and :meth:`check`
    while waiting; both raise the one-line stall error.
    """

    def __init__(self, limit: float, min_bytes: int | None = None) -> None:
        self.limit = limit
        self.min_bytes = _STALL_BYTES if min_bytes is None else min_bytes
        self.total = 0
        self._mark_bytes = 0
        self._mark_time = time.monotonic()

    def feed(self, n: int) -> None:
        """``n`` more bytes arrived."""
        self.total += n
        if self.total - self._mark_bytes >= self.min_bytes:
            self._mark_bytes, self._mark_time = self.total, time.monotonic()
        else:
            self.check()

    def check(self) -> None:
        """Raise if the current window is over without ``min_bytes`` in it."""
        if time.monotonic() - self._mark_time > self.limit:
            raise TransferFailed(
                f"stalled: less than {human_bytes(self.min_bytes)} received in {self.limit:g} s"
            )


def human_bytes(n: float) -> str:
    """``n`` bytes for people: ``"512 B"``, ``"293.0 KiB"``, ``"2.9 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover
