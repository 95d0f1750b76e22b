"""The argument parser of the ``ttt3r`` commands: an ``argparse`` parser whose errors are one line.

``argparse`` prints the usage and then the error. Here only the error is
printed, as one line naming the option as typed
(``ttt3r reconstruct: error: argument --max-frames: invalid int value: 'x'``),
and the exit status stays argparse's 2, as for every other user error.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["ArgumentParser"]


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")
