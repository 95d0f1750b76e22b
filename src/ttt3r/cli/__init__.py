"""The ``ttt3r`` command: a thin dispatcher that imports each command lazily.

Each command lives in ``ttt3r.cli.<name>`` and exposes ``main(argv) -> int``.
User errors (:class:`ttt3r.errors.TTT3RError`) print one line, no traceback; a closed
output pipe (``ttt3r train --print-config | head``) ends the command quietly.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help). Modules are imported only when run.
COMMANDS: dict[str, tuple[str, str]] = {
    "reconstruct": ("reconstruct", "video or image folder -> depth, cameras, point cloud"),
    "refine": ("refine", "loop closure on a finished chunked run (rewrites its outputs)"),
    "render-view": ("render_view", "what the network sees from unseen cameras of a run (ray-map query)"),
    "view": ("view", "interactive 3D viewer of a reconstruction (needs ttt3r[viz])"),
    "weights": ("weights", "list, download, locate or remove known checkpoints"),
    "convert": ("convert", "convert a released .pth checkpoint to safetensors + JSON"),
    "metrics": ("metrics", "trajectory metrics (ATE, RPE) between two trajectory files"),
    "eval": ("evaluate", "run a benchmark protocol (pose, depth, recon)"),
    "synth": ("synth", "render a synthetic sequence with exact ground truth"),
    "train": ("train", "train a small model on synthetic scenes"),
    "bench": ("bench", "speed and memory benchmark"),
}


def _usage() -> str:
    lines = ["usage: ttt3r COMMAND [options]", "", "commands:"]
    width = max(len(n) for n in COMMANDS)
    for name, (_, help_) in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {help_}")
    lines.append("")
    lines.append("Run 'ttt3r COMMAND --help' for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from .. import __version__

        print(f"ttt3r {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ttt3r: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    import warnings

    from ..errors import TTT3RError

    warnings.formatwarning = lambda msg, *a, **k: f"ttt3r {name}: warning: {msg}\n"
    try:
        module = importlib.import_module(f"ttt3r.cli.{COMMANDS[name][0]}")
        return int(module.main(rest) or 0)
    except TTT3RError as e:
        print(f"ttt3r {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ttt3r {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``ttt3r ... | head``): stop quietly, as Unix tools do, and
        # point stdout at /dev/null so the interpreter's final flush cannot fail again
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
