"""Tables, summaries and figures from evaluation records (the cache's per-sequence results).

The one table renderer is :func:`markdown_table`: rows per sequence and the
dataset mean, a column per (metric, rule), as a task (:mod:`ttt3r.eval.tasks`)
declares them. :func:`build_reports` writes, under ``out``::

    tables/<task>/<variant>.md|.csv|.json      per sequence and mean, rules side by side
    plots/<task>/<variant>/<rule>/<seq>.png    the task's per-record figure (pose: trajectories)
    plots/<task>/length_<family>.png           mean error vs sequence length, a line per rule
    summary_<task>.md                          the means of every table of a task

Tables and summaries are independent of the order the records came in (rules:
``cut3r`` first, then by name; sequences by name), so merged shards equal an unsharded run.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_text
from .report import write_json
from .tasks import EvalTask, get_task, task_names


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def markdown_table(task: str | EvalTask, per_rule: Mapping[str, Mapping[str, dict]],
                   sequences: Iterable[str] | None = None, frames: Mapping[str, Any] | None = None,
                   means: Mapping[str, dict] | None = None, digits: int = 4) -> str:
    """A Markdown table of one task's metrics: a row per sequence, then the mean row.

    Args:
        per_rule: ``{rule: {sequence: metrics}}`` with the metrics dict of one
            table section (as the task's ``sections`` give it); a single rule
            named ``""`` gives plain column headers (``ATE``, not ``ATE cut3r``).
        sequences: row order (default: every sequence, in first-seen order).
        frames: ``{sequence: frame count}``: adds a ``frames`` column.
        means: ``{rule: mean}`` (default: the task's ``mean`` of each non-empty rule).
    """
    t = get_task(task)
    rules = list(per_rule)
    seqs = list(sequences) if sequences is not None else list(dict.fromkeys(s for ps in per_rule.values() for s in ps))
    if means is None:
        means = {rule: t.mean(dict(ps)) for rule, ps in per_rule.items() if ps}
    header = ["sequence"] + (["frames"] if frames is not None else [])
    header += [f"{h} {rule}" if rule else h for _, h in t.columns for rule in rules]
    rows = []
    for s in seqs:
        vals = []
        for k, _ in t.columns:
            for rule in rules:
                m = per_rule[rule].get(s)
                vals.append(_fmt(t.flat(m)[k], digits) if m is not None else "-")
        rows.append([s] + ([str(frames.get(s))] if frames is not None else []) + vals)
    mean_vals = [_fmt(means[rule][k], digits) if rule in means else "-" for k, _ in t.columns for rule in rules]
    rows.append([t.mean_label] + ([""] if frames is not None else []) + mean_vals)
    return _md(header, rows)


@dataclass
class Group:
    """The records of one (task, variant): what one table shows."""

    task: str
    dataset: str
    variant: str
    frames: int | None
    rules: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    records: dict[tuple[str, str], dict] = field(default_factory=dict)  # (rule, seq) -> record

    def num_frames(self, seq: str) -> int | None:
        return next((self.records[(r, seq)]["num_frames"] for r in self.rules if (r, seq) in self.records), None)


def groups(records: Iterable[dict]) -> list[Group]:
    """Records grouped per (task, variant), in canonical order (tasks as registered, then dataset, frames)."""
    out: dict[tuple[str, str], Group] = {}
    for r in records:
        g = out.setdefault((r["task"], r["variant"]), Group(r["task"], r["dataset"], r["variant"], r.get("frames")))
        if r["rule"] not in g.rules:
            g.rules.append(r["rule"])
        if r["sequence"] not in g.sequences:
            g.sequences.append(r["sequence"])
        g.records[(r["rule"], r["sequence"])] = r
    order = task_names()
    for g in out.values():
        get_task(g.task)  # an unknown task in the cache: one-line error
        g.rules.sort(key=lambda x: (x != "cut3r", x))
        g.sequences.sort()
    return sorted(out.values(), key=lambda g: (order.index(g.task), g.dataset, g.frames or 0, g.variant))


def group_tables(g: Group) -> tuple[str, str, dict]:
    """Markdown, CSV and JSON of one (task, variant): per sequence and mean, rules side by side."""
    t = get_task(g.task)
    cols = t.columns
    md = [f"# {g.task}: {g.variant}\n"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "dataset", "variant", "frames", "align", "rule", "sequence", "num_frames"] + [k for k, _ in cols])
    js: dict[str, Any] = {"task": g.task, "dataset": g.dataset, "variant": g.variant, "frames": g.frames,
                          "rules": g.rules, "sequences": g.sequences, "per_sequence": {}, "mean": {}}
    sections = t.sections(g.records.values())
    for align, get in sections:
        per_rule = {rule: {s: get(g.records[(rule, s)]) for s in g.sequences if (rule, s) in g.records}
                    for rule in g.rules}
        means = {rule: t.mean(ps) for rule, ps in per_rule.items() if ps}
        prefix = [g.task, g.dataset, g.variant, g.frames or "", align or ""]
        for s in g.sequences:
            for rule in g.rules:
                m = per_rule[rule].get(s)
                if m is not None:
                    flat = t.flat(m)
                    w.writerow(prefix + [rule, s, g.records[(rule, s)]["num_frames"]]
                               + [repr(float(flat[k])) for k, _ in cols])
        for rule in g.rules:
            if rule in means:
                w.writerow(prefix + [rule, "mean", ""] + [repr(float(means[rule][k])) for k, _ in cols])
        if align is not None:
            md.append(f"\n## alignment: {align}\n")
        frames = {s: g.num_frames(s) for s in g.sequences}
        md.append("\n" + markdown_table(t, per_rule, g.sequences, frames, means))
        key = align or "all"
        js["per_sequence"][key] = {s: {rule: per_rule[rule][s] for rule in g.rules if s in per_rule[rule]}
                                   for s in g.sequences}
        js["mean"][key] = means
    if [a for a, _ in sections] == [None]:  # one unnamed section: no alignment level
        js["per_sequence"] = js["per_sequence"]["all"]
        js["mean"] = js["mean"]["all"]
    return "".join(md), buf.getvalue(), js


def _section_means(g: Group, js: dict) -> dict[str | None, dict[str, dict]]:
    """``{section label or None: {rule: mean}}`` from a group's JSON table."""
    labels = [a for a, _ in get_task(g.task).sections(g.records.values())]
    return {None: js["mean"]} if labels == [None] else {a: js["mean"][a] for a in labels}


def summary_section(g: Group, js: dict) -> str:
    """The means of one group's table (per section), for ``summary_<task>.md``."""
    cols = get_task(g.task).columns
    lines = [f"## {g.task}: {g.variant} ({len(g.sequences)} sequences)\n"]
    for align, per_rule in _section_means(g, js).items():
        rows = [[rule] + [_fmt(m[k]) for k, _ in cols] for rule, m in per_rule.items()]
        head = f"alignment {align}:\n\n" if align is not None else ""
        lines.append(head + _md(["rule"] + [h for _, h in cols], rows))
    return "\n".join(lines)


def slug(name: str) -> str:
    """A file-name-safe form of a variant, rule or sequence name."""
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", name)


def build_reports(out: str | os.PathLike, records: Iterable[dict], plots: bool = True) -> list[Path]:
    """Write tables (Markdown, CSV, JSON), plots and ``summary_<task>.md`` for ``records``; returns the files."""
    out = Path(out)
    gs = groups(records)
    files: list[Path] = []
    summaries: dict[str, list[str]] = defaultdict(list)
    tables: list[dict] = []
    for g in gs:
        md, csv_text, js = group_tables(g)
        tables.append(js)
        base = out / "tables" / g.task / slug(g.variant)
        atomic_write_text(base.with_suffix(".md"), md)
        atomic_write_text(base.with_suffix(".csv"), csv_text)
        write_json(base.with_suffix(".json"), js)
        files += [base.with_suffix(".md"), base.with_suffix(".csv"), base.with_suffix(".json")]
        summaries[g.task].append(summary_section(g, js))
        if plots:
            files += _record_plots(out, g)
    if plots:
        files += _length_plots(out, gs, tables)
    for task, sections in summaries.items():
        path = out / f"summary_{task}.md"
        atomic_write_text(path, "\n".join([f"# Evaluation summary: {task}\n", *sections]))
        files.append(path)
    return files


def _record_plots(out: Path, g: Group) -> list[Path]:
    t = get_task(g.task)
    files = []
    for (rule, seq), rec in sorted(g.records.items()):
        path = out / "plots" / g.task / slug(g.variant) / slug(rule) / (slug(seq) + ".png")
        if t.plot_record(rec, path):
            files.append(path)
    return files


def _length_plots(out: Path, gs: list[Group], tables: list[dict]) -> list[Path]:
    """Mean error vs mean sequence length, a line per rule, per (task, dataset family) with >= 2 lengths."""
    from .plots import plot_lines

    families: dict[tuple[str, str], list[tuple[Group, dict]]] = defaultdict(list)
    for g, js in zip(gs, tables):
        families[(g.task, re.sub(r"_\d+$", "", g.dataset))].append((g, js))
    files = []
    for (task, fam), members in sorted(families.items()):
        series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
        lengths = set()
        for g, js in members:
            for align, means in _section_means(g, js).items():
                for rule in g.rules:
                    nfs = [g.records[(rule, s)]["num_frames"] for s in g.sequences if (rule, s) in g.records]
                    if not nfs or rule not in means:
                        continue
                    x = float(np.mean(nfs))
                    lengths.add(x)
                    for k, h in get_task(task).length_columns:
                        panel = f"{h} [{align}]" if align else h
                        series[panel][rule].append((x, float(means[rule][k])))
        if len(lengths) < 2:
            continue
        path = out / "plots" / task / f"length_{slug(fam)}.png"
        plot_lines(path, series, f"{task}: {fam}")
        files.append(path)
    return files


__all__ = ["Group", "build_reports", "group_tables", "groups", "markdown_table", "slug", "summary_section"]
