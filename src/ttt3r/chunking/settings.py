"""The chunking settings (``--chunk N --overlap K --chunk-align sim3|se3``) and their checks.

Schedule (frame indices of the processed sequence): the state is reset every
``N`` frames. Chunk 0 feeds frames ``[0, N)``; chunk ``c >= 1`` first re-feeds
the last ``K`` frames of chunk ``c - 1`` (``[cN - K, cN)``: the overlap, whose
outputs are used only for the alignment) and then feeds its ``N`` new frames
``[cN, (c + 1)N)``. Each chunk's predictions are in its own frame, the camera
of its first fed frame. With ``K = 1`` and ``se3`` this is the original demo's
``--reset-every N`` chain, bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

from ..errors import TTT3RError

ChunkAlign = Literal["sim3", "se3"]
"""``sim3``: a confidence-weighted robust Sim(3) fit of the overlap frames' point maps;
``se3``: the pose chain through the first overlap frame (the original demo's)."""

CHUNK_ALIGNS: tuple[str, ...] = get_args(ChunkAlign)
DEFAULT_OVERLAP = 4
"""Overlap when none is given (at most ``chunk - 1``)."""


@dataclass(frozen=True)
class ChunkSettings:
    """How a long sequence is cut into chunks and put back together.

    Attributes:
        size: N, new frames per chunk: the state is reset every N frames (>= 2).
        overlap: K, frames of the previous chunk re-fed at the start of the next (1 <= K < N).
        align: :data:`ChunkAlign`.
        max_points: correspondences used per alignment at most (a regular pixel
            grid over the K overlap frames).
    """

    size: int
    overlap: int = 1
    align: ChunkAlign = "sim3"
    max_points: int = 10_000

    def __post_init__(self) -> None:
        check_chunk_options(self.size, self.overlap, self.align)

    def to_json(self) -> dict:
        return asdict(self)


def chunk_settings(chunk: int, overlap: int | None = None, align: str = "sim3") -> ChunkSettings | None:
    """The :class:`ChunkSettings` of the command-line values (None when ``chunk`` is 0: no chunks)."""
    check_chunk_options(chunk, overlap, align)
    if not chunk:
        return None
    return ChunkSettings(int(chunk), int(overlap if overlap is not None else min(DEFAULT_OVERLAP, chunk - 1)), align)


def check_chunk_options(chunk: int, overlap: int | None, align: str = "sim3", reset_every: int = 0,
                        revisit: int = 1) -> None:
    """Raise a one-line :class:`TTT3RError` for an invalid combination of the options.

    ``chunk`` 0 means no chunks (then ``overlap`` must not be given).
    """
    if reset_every and overlap is not None:
        raise TTT3RError("--overlap cannot be combined with --reset-every (use --chunk N --overlap K instead)")
    if reset_every and chunk:
        raise TTT3RError("--chunk cannot be combined with --reset-every (--chunk N --overlap 1 --chunk-align se3 "
                         "is --reset-every N)")
    if chunk is None or chunk == 0:
        if overlap is not None:
            raise TTT3RError("--overlap needs --chunk N (the overlap is between chunks)")
    elif chunk < 2:
        raise TTT3RError(f"--chunk must be at least 2 frames, got {chunk}")
    elif overlap is not None and overlap < 1:
        raise TTT3RError(f"--overlap must be at least 1 frame, got {overlap}")
    elif overlap is not None and overlap >= chunk:
        raise TTT3RError(f"--overlap ({overlap}) must be smaller than --chunk ({chunk})")
    if align not in CHUNK_ALIGNS:
        raise TTT3RError(f"--chunk-align: unknown alignment {align!r}; choose one of {', '.join(CHUNK_ALIGNS)}")
    if revisit is None or revisit < 1:
        raise TTT3RError(f"--revisit must be at least 1 pass, got {revisit}")
    if revisit > 1 and (chunk or reset_every):
        raise TTT3RError("--revisit cannot be combined with --chunk or --reset-every (revisits need one state)")
