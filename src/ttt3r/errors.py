"""User-facing errors.

Anything a user can cause (a bad path, a corrupt file, a wrong option) raises
:class:`TTT3RError` with a one-line message that names the file and what is
wrong. The command line prints that line without a traceback.
"""

from __future__ import annotations


class TTT3RError(Exception):
    """An error caused by input, settings or environment; its message is one line."""


class CheckpointError(TTT3RError):
    """A checkpoint file cannot be loaded (corrupt, unsafe, wrong architecture)."""


class InputError(TTT3RError):
    """An input frame source cannot be read."""


class DownloadError(TTT3RError):
    """A known checkpoint is not in the cache and cannot be downloaded."""
