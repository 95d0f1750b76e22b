"""``ttt3r weights``: list, download, locate or remove the known checkpoints.

    ttt3r weights list                  name, size, cached or not, cache path
    ttt3r weights download NAME [--force] [--quiet]
    ttt3r weights path NAME             the cache path (whether or not present)
    ttt3r weights remove NAME...        delete a cached checkpoint (and its partial downloads)

The cache is ``<user cache dir>/ttt3r/checkpoints``; set ``TTT3R_CACHE`` to use
``$TTT3R_CACHE/checkpoints`` instead.
"""

from __future__ import annotations

import argparse
import sys

from .. import hub


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ttt3r weights",
        description="List, download, locate or remove the known CUT3R checkpoints.",
        epilog=f"Cache folder: {hub.checkpoint_dir()} "
        f"(set {hub.CACHE_ENV}=DIR to use DIR/checkpoints).",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="known checkpoints: name, size, cached or not, path")
    d = sub.add_parser("download", help="download checkpoints into the cache")
    d.add_argument("names", nargs="+", metavar="NAME", help="checkpoint name(s), see 'list'")
    d.add_argument("--force", action="store_true", help="download again even if cached")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    w = sub.add_parser("path", help="print where a checkpoint is (or would be) cached")
    w.add_argument("name", metavar="NAME", help="checkpoint name, see 'list'")
    r = sub.add_parser("remove", help="delete cached checkpoints (e.g. one that fails verification)")
    r.add_argument("names", nargs="+", metavar="NAME", help="checkpoint name(s), see 'list'")
    return p


def _list() -> int:
    rows = hub.cache_status()
    print(f"cache: {hub.checkpoint_dir()}")
    header = ("NAME", "RES", "SIZE", "CACHED", "PATH")
    table = [
        (
            r.checkpoint.name,
            str(r.checkpoint.image_size),
            r.size_text,
            "yes" if r.cached else ("wrong size" if r.present else "no"),
            str(r.path),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *table)) for i in range(len(header) - 1)]
    for row in (header, *table):
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths)]
        print("  ".join([*cells, row[-1]]))
    return 0


def _download(names: list[str], force: bool, quiet: bool) -> int:
    entries = [hub.get_checkpoint(n) for n in names]  # fail on a typo before downloading
    for entry in entries:
        path = hub.cached_path(entry)
        if path.is_file() and not force:
            hub.resolve_weights(entry.name, download=False)  # verified, or the error naming 'remove'
            print(f"{entry.name}: already cached at {path} (use --force to download again)")
            continue
        path = hub.download(entry, force=force, quiet=quiet)
        print(f"{entry.name}: saved to {path}")
    return 0


def _remove(names: list[str]) -> int:
    entries = [hub.get_checkpoint(n) for n in names]  # fail on a typo before deleting anything
    for entry in entries:
        removed = hub.remove_cached(entry)
        if removed:
            print(f"{entry.name}: removed {', '.join(str(p) for p in removed)}")
        else:
            print(f"{entry.name}: not cached ({hub.cached_path(entry)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``ttt3r weights`` with ``argv`` (without the command names); return the exit code."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # --help or a usage error: argparse has printed it
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if args.action == "list":
        return _list()
    if args.action == "download":
        return _download(args.names, args.force, args.quiet)
    if args.action == "remove":
        return _remove(args.names)
    print(hub.cached_path(hub.get_checkpoint(args.name)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
