"""``ttt3r bench``: speed and memory benchmark (see :mod:`ttt3r.bench`)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    from ..bench import main as bench_main

    return bench_main(argv)
