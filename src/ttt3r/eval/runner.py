"""Benchmark runner: work items -> predictor -> task -> per-sequence cache -> tables and plots.

    from ttt3r.eval.predictors import SessionPredictor
    from ttt3r.eval.runner import EvalConfig, run_evaluation
    cfg = EvalConfig(task="pose", datasets=("tum",), out="results", data_root="data",
                     rules=("cut3r", "ttt3r"))
    summary = run_evaluation(cfg, SessionPredictor("cut3r_512_dpt_4_64"))

The runner only orchestrates; what differs between protocols is the task's
(:mod:`ttt3r.eval.tasks`), what produces the predictions is the predictor's
(:mod:`ttt3r.eval.predictors`), the outputs are written by :mod:`ttt3r.eval.tables`.

Work items are (dataset, frames limit, sequence) in a fixed order (datasets and
``frames`` as given, sequences in the loader's order); each update rule runs on
every item. Results are cached per sequence (:mod:`ttt3r.eval.cache`,
``out/cache/<task>/<variant>/<rule>/<seq>.json``) so a rerun skips what is done;
``shard=(i, n)`` takes every n-th item (:mod:`ttt3r.eval.distributed`) and
:func:`merge` builds the tables from all shards' caches. Jobs run here, or as Ray
tasks (``ray=ADDRESS``).
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import TTT3RError
from . import cache as cache_mod
from .datasets import get_dataset
from .datasets.base import DatasetLoader, Sequence
from .predictors import Predictor
from .protocols import DEFAULT_DEPTH_ALIGNS
from .report import write_json
from .tables import build_reports
from .tasks import ProtocolSettings, get_task

PROTOCOL_VERSION = 1


# ---------------------------------------------------------------------------
# configuration and work items


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation run.

    Attributes:
        task: a registered task name (:func:`ttt3r.eval.tasks.task_names`: pose, depth, recon).
        datasets: registered dataset names (see :func:`ttt3r.eval.datasets.dataset_names`).
        out: output folder (cache, tables, plots).
        root: the dataset folder (used for every dataset given); None: under ``data_root``.
        data_root: parent of the preprocessed benchmark folders.
        rules: update rules, each run on every sequence.
        reset_every: state reset period of the predictor (labels the rule in outputs).
        frames: ``None`` (whole sequences) and/or first-N-frame limits; each is a variant.
        seqs: only these sequence names (None: all).
        shard: ``(i, n)``: only every n-th work item from the i-th.
        depth_aligns: depth alignment modes (see :mod:`ttt3r.eval.metrics_depth`).
        depth_resize: ``original`` (prediction resized to GT) or ``crop`` (GT onto the crop).
        pose_align: trajectory alignment (the paper: ``sim3``).
        plots: draw trajectory and length plots.
        loader: use this dataset object instead of the registry (API and tests; not with Ray).
    """

    task: str
    datasets: tuple[str, ...]
    out: str | os.PathLike
    root: str | os.PathLike | None = None
    data_root: str | os.PathLike = "data"
    rules: tuple[str, ...] = ("cut3r", "ttt3r")
    reset_every: int = 0
    frames: tuple[int | None, ...] = (None,)
    seqs: tuple[str, ...] | None = None
    shard: tuple[int, int] | None = None
    depth_aligns: tuple[str, ...] = DEFAULT_DEPTH_ALIGNS
    depth_resize: str = "original"
    pose_align: str = "sim3"
    plots: bool = True
    loader: DatasetLoader | None = field(default=None, compare=False)


@dataclass(frozen=True)
class WorkItem:
    """One (dataset, frames limit, sequence) to evaluate with every rule."""

    task: str
    dataset: str
    root: str | None
    data_root: str
    frames: int | None
    sequence: str

    @property
    def variant(self) -> str:
        return cache_mod.variant_name(self.dataset, self.frames)


@dataclass(frozen=True)
class Job:
    """One work item with one rule and the protocol settings: what a (Ray) task evaluates."""

    item: WorkItem
    rule: str
    label: str
    fingerprint: dict
    settings: ProtocolSettings


def _open_dataset(cfg: EvalConfig, name: str) -> DatasetLoader:
    if cfg.loader is not None:
        return cfg.loader
    ds = get_dataset(name, root=cfg.root, data_root=cfg.data_root)
    if cfg.task not in ds.tasks:
        serving = ", ".join(ds.tasks)
        raise TTT3RError(f"dataset {name!r} has no {cfg.task} benchmark (it serves: {serving})")
    return ds


def _family(loader: DatasetLoader) -> str:
    return getattr(loader, "name", "")


def work_items(cfg: EvalConfig) -> list[WorkItem]:
    """Every (dataset, frames, sequence) of the run in its fixed order (before sharding)."""
    get_task(cfg.task)  # an unknown task: one-line error
    items = []
    for name in cfg.datasets:
        ds = _open_dataset(cfg, name)
        names = ds.sequence_names()
        if cfg.seqs is not None:
            unknown = [s for s in cfg.seqs if s not in names]
            if unknown and len(cfg.datasets) == 1:
                raise TTT3RError(f"{name}: no sequence {unknown[0]!r} (known: {', '.join(names)})")
            names = [s for s in names if s in cfg.seqs]
        for frames in cfg.frames:
            for s in names:
                # absolute paths: Ray workers may run in another working directory
                items.append(WorkItem(cfg.task, name, None if cfg.root is None else str(Path(cfg.root).resolve()),
                                      str(Path(cfg.data_root).resolve()), frames, s))
    if not items:
        raise TTT3RError("nothing to evaluate: no sequences selected")
    return items


def truncate(seq: Sequence, frames: int | None) -> Sequence:
    """The first ``frames`` frames of ``seq`` (all of them for None or a longer limit)."""
    if frames is None or frames >= len(seq):
        return seq
    if frames < 2:
        raise TTT3RError(f"--frames must be at least 2, got {frames}")
    cut = slice(0, int(frames))

    def part(a):
        return None if a is None else a[cut]

    return replace(seq, image_paths=seq.image_paths[cut], poses=part(seq.poses), timestamps=part(seq.timestamps),
                   pose_valid=part(seq.pose_valid), depth_paths=part(seq.depth_paths), intrinsics=part(seq.intrinsics))


def _load_item(item: WorkItem, loader: DatasetLoader | None = None) -> tuple[Sequence, str]:
    ds = loader if loader is not None else get_dataset(item.dataset, root=item.root, data_root=item.data_root)
    return truncate(ds.load(item.sequence), item.frames), _family(ds)


def evaluate_job(job: Job, predictor: Predictor, seq: Sequence | None = None, family: str | None = None) -> dict:
    """Predict and evaluate one job; returns its cache record (not yet written)."""
    if seq is None:
        seq, family = _load_item(job.item)
    pred = predictor.predict(seq, job.rule, job.item.task)
    t = pred.seconds
    result = get_task(job.item.task).evaluate(seq, pred, job.settings, family)
    return {
        "task": job.item.task,
        "dataset": job.item.dataset,
        "variant": job.item.variant,
        "frames": job.item.frames,
        "rule": job.label,
        "sequence": job.item.sequence,
        "num_frames": len(seq),
        "fingerprint": job.fingerprint,
        "seconds": t,
        "result": result,
    }


def _ray_job(job: Job, predictor: Predictor) -> dict:
    """Ray task body (module level, so workers import it)."""
    return evaluate_job(job, predictor)


# ---------------------------------------------------------------------------
# progress


def _fmt_time(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def headline(record: dict) -> str:
    """A short text of a record's main metrics (its task's headline)."""
    return get_task(record["task"]).headline(record["result"]["metrics"])


class Progress:
    """Sequences done / total with an ETA from the jobs computed so far (cached ones are instant)."""

    def __init__(self, total: int, stream=None) -> None:
        self.total = total
        self.done = 0
        self.computed = 0
        self.todo = total
        self.t0 = time.perf_counter()
        self.stream = stream if stream is not None else sys.stderr

    def cached(self, n: int) -> None:
        self.done += n
        self.todo -= n
        if n:
            print(f"[{self.done}/{self.total}] {n} cached result(s) reused", file=self.stream, flush=True)

    def update(self, job: Job, text: str, seconds: float | None) -> None:
        self.done += 1
        self.computed += 1
        elapsed = time.perf_counter() - self.t0
        left = self.todo - self.computed
        eta = _fmt_time(elapsed / self.computed * left) if left > 0 else "0s"
        took = f"{seconds:.1f} s, " if seconds is not None else ""
        it = job.item
        print(f"[{self.done}/{self.total}] {it.task} {it.variant} {job.label} {it.sequence}: {text} "
              f"({took}ETA {eta})", file=self.stream, flush=True)


# ---------------------------------------------------------------------------
# running


@dataclass
class EvalSummary:
    """What an evaluation run did: records of its items, counts, failures and written files."""

    records: list[dict]
    computed: int
    cached: int
    failures: list[str]
    files: list[Path]


def protocol_settings(cfg: EvalConfig) -> ProtocolSettings:
    return ProtocolSettings(tuple(cfg.depth_aligns), cfg.depth_resize, cfg.pose_align)


def _fingerprint(cfg: EvalConfig, predictor: Predictor, item: WorkItem) -> dict:
    """What determines a record: protocol version, predictor, task, frames and the task's settings."""
    fp: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "predictor": predictor.describe(), "task": cfg.task,
                          "frames": item.frames}
    return {**fp, **get_task(cfg.task).fingerprint(protocol_settings(cfg))}


def run_evaluation(cfg: EvalConfig, predictor: Predictor, ray: str | None = None, stream=None,
                   run_info: dict | None = None) -> EvalSummary:
    """Evaluate every (item, rule) of ``cfg`` not already cached, then write tables and plots.

    ``ray``: a Ray address (``local``, ``auto``, ``host:port``) to run the jobs as
    Ray tasks; None runs them here. A sharded run writes only its cache records
    (build the tables with :func:`merge`). Failures of single sequences (one-line
    errors) are collected in the summary; the other sequences still run.
    ``run_info``: written to ``out/run.json`` (``run-shard-i-of-n.json``) once
    the datasets are found.
    """
    from .distributed import shard_items

    items = shard_items(work_items(cfg), cfg.shard)  # raises before anything is written
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if run_info is not None:
        write_run_info(out, {**run_info, "shard": list(cfg.shard) if cfg.shard else None})
    settings = protocol_settings(cfg)
    jobs = [Job(it, rule, cache_mod.rule_label(rule, cfg.reset_every), _fingerprint(cfg, predictor, it), settings)
            for it in items for rule in cfg.rules]
    records: dict[tuple, dict] = {}
    todo: list[Job] = []
    for job in jobs:
        rec = cache_mod.lookup(out, cfg.task, job.item.variant, job.label, job.item.sequence, job.fingerprint)
        if rec is not None:
            records[(job.item, job.label)] = rec
        else:
            todo.append(job)
    progress = Progress(len(jobs), stream)
    progress.cached(len(jobs) - len(todo))
    failures: list[str] = []

    def finish(job: Job, rec: dict | None, err: str | None) -> None:
        where = f"{job.item.variant}/{job.label}/{job.item.sequence}"
        if err is not None:
            failures.append(f"{where}: {err}")
            progress.update(job, f"FAILED: {err}", None)
            return
        assert rec is not None
        cache_mod.write_record(out, rec)
        records[(job.item, job.label)] = rec
        progress.update(job, headline(rec), rec.get("seconds"))

    if ray is not None and todo:
        if cfg.loader is not None:
            raise TTT3RError("Ray runs load datasets by name on the workers; pass registered dataset names")
        from .distributed import run_on_ray

        gpus = getattr(predictor, "ray_gpus", 0.0)  # resolved once Ray is connected
        for job, rec, err in run_on_ray(_ray_job, todo, predictor, ray, num_gpus=gpus):
            finish(job, rec, err)
    else:
        by_item: dict[WorkItem, list[Job]] = defaultdict(list)
        for job in todo:
            by_item[job.item].append(job)
        for item, item_jobs in by_item.items():
            try:
                seq, family = _load_item(item, cfg.loader)
            except TTT3RError as e:
                for job in item_jobs:
                    finish(job, None, str(e))
                continue
            for job in item_jobs:
                try:
                    rec = evaluate_job(job, predictor, seq, family)
                except TTT3RError as e:
                    finish(job, None, str(e))
                else:
                    finish(job, rec, None)
    ordered = [records[(j.item, j.label)] for j in jobs if (j.item, j.label) in records]
    files: list[Path] = []
    if cfg.shard is None and ordered:
        files = build_reports(out, ordered, plots=cfg.plots)
    elif cfg.shard is not None:
        print(f"shard {cfg.shard[0]}/{cfg.shard[1]}: {len(ordered)} result(s) cached in {out / 'cache'}; "
              f"when all shards are done run: ttt3r eval merge {out}", file=stream or sys.stderr)
    return EvalSummary(ordered, len(todo) - len(failures), len(jobs) - len(todo), failures, files)


def merge(out: str | os.PathLike, plots: bool = True) -> list[Path]:
    """Build tables and plots from every cached record under ``out`` (all shards, all runs)."""
    records = list(cache_mod.iter_records(Path(out)))
    if not records:
        raise TTT3RError(f"{Path(out) / 'cache'}: no cached results to merge")
    return build_reports(Path(out), records, plots=plots)


def known_rules() -> list[str]:
    from ..update import available_rules

    return available_rules()


def write_run_info(out: Path, info: dict) -> Path:
    """Record the command line settings of a run (``run.json``, or ``run-shard-i-of-n.json``)."""
    shard = info.get("shard")
    name = "run.json" if not shard else f"run-shard-{shard[0]}-of-{shard[1]}.json"
    write_json(out / name, info)
    return out / name


__all__ = [
    "EvalConfig",
    "EvalSummary",
    "Job",
    "WorkItem",
    "evaluate_job",
    "merge",
    "run_evaluation",
    "truncate",
    "work_items",
]
