"""Per-sequence result cache of an evaluation run: one JSON file per (task, dataset, rule, sequence).

Layout: ``OUT/cache/<task>/<variant>/<rule>/<sequence>.json`` where ``variant`` is
the dataset name, with ``@<N>`` appended when only the first N frames are
evaluated (``--frames``), and ``rule`` the update rule, with ``+reset<K>`` when
the state is reset every K frames. Sequence names may contain ``/`` (7-Scenes
``chess/seq-01``): they become sub-folders.

Files are written atomically, so a killed run leaves only complete records; a
record is reused when its ``fingerprint`` (weights, sizes, protocol settings)
matches the current run's, otherwise it is recomputed and replaced.

Record fields: ``version``, ``task``, ``dataset``, ``variant``, ``frames``
(the ``--frames`` limit or null), ``rule``, ``sequence``, ``num_frames`` (frames
actually evaluated), ``fingerprint``, ``seconds`` (prediction wall time),
``result`` (the protocol's dict: ``metrics`` and extras such as ``trajectory``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import TTT3RError
from ..io.atomic import atomic_write_text
from ..io.strict_json import dumps, json_safe

CACHE_VERSION = 1


def variant_name(dataset: str, frames: int | None) -> str:
    """``dataset`` or ``dataset@N`` when limited to the first N frames."""
    return dataset if frames is None else f"{dataset}@{int(frames)}"


def rule_label(rule: str, reset_every: int = 0) -> str:
    """``rule`` or ``rule+resetK``."""
    return rule if not reset_every else f"{rule}+reset{int(reset_every)}"


def _safe_parts(name: str) -> list[str]:
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise TTT3RError(f"invalid sequence name for the result cache: {name!r}")
    return parts


def record_path(out: Path, task: str, variant: str, rule: str, sequence: str) -> Path:
    """Where the record of one (task, variant, rule, sequence) lives under ``out``."""
    parts = _safe_parts(sequence)
    return Path(out, "cache", task, variant, rule, *parts[:-1], parts[-1] + ".json")


def write_record(out: Path, record: dict) -> Path:
    """Write ``record`` atomically to its cache path; returns the path."""
    path = record_path(out, record["task"], record["variant"], record["rule"], record["sequence"])
    atomic_write_text(path, dumps({"version": CACHE_VERSION, **record}, separators=(",", ":")) + "\n")
    return path


def read_record(path: Path) -> dict:
    """Read one record; a one-line :class:`TTT3RError` naming the file if it is unreadable."""
    try:
        rec = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise TTT3RError(f"{path}: cached result not found") from None
    except (OSError, ValueError) as e:
        raise TTT3RError(f"{path}: unreadable cached result ({e})") from None
    if not isinstance(rec, dict) or not {"task", "variant", "rule", "sequence", "result"} <= rec.keys():
        raise TTT3RError(f"{path}: not a ttt3r evaluation record")
    return rec


def lookup(out: Path, task: str, variant: str, rule: str, sequence: str, fingerprint: dict) -> dict | None:
    """The cached record if present, readable and made with the same ``fingerprint``; else None."""
    path = record_path(out, task, variant, rule, sequence)
    if not path.is_file():
        return None
    try:
        rec = read_record(path)
    except TTT3RError:
        return None
    if rec.get("version") != CACHE_VERSION or rec.get("fingerprint") != json_safe(fingerprint):
        return None
    return rec


def iter_records(out: Path) -> Iterator[dict]:
    """Every record under ``out/cache`` (any task, dataset, rule), in sorted path order."""
    root = Path(out) / "cache"
    if not root.is_dir():
        raise TTT3RError(f"{root}: no result cache (nothing evaluated into {out} yet)")
    for p in sorted(root.rglob("*.json")):
        if p.name.startswith("."):
            continue
        yield read_record(p)
