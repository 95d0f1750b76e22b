"""Benchmark runner: sequences -> predictor -> protocol -> per-sequence cache -> tables and plots.

    from ttt3r.eval.runner import EvalConfig, SessionPredictor, run_evaluation
    cfg = EvalConfig(task="pose", datasets=("tum",), out="results", data_root="data",
                     rules=("cut3r", "ttt3r"))
    summary = run_evaluation(cfg, SessionPredictor("cut3r_512_dpt_4_64"))

The *predictor* seam: anything with ``predict(seq, rule, task) -> Prediction``
and ``describe() -> dict`` (what identifies its outputs, for the cache). The
default :class:`SessionPredictor` streams the frames through a
:class:`ttt3r.Session`; :class:`GroundTruthPredictor` returns the ground truth
(optionally perturbed), to check the pipeline without a network.

Work items are (dataset, frames limit, sequence) in a fixed order (datasets and
``frames`` as given, sequences in the loader's order); each update rule runs on
every item. Results are cached per sequence (:mod:`ttt3r.eval.cache`) so a rerun
skips what is done; ``shard=(i, n)`` takes every n-th item
(:mod:`ttt3r.eval.distributed`) and :func:`merge` builds the tables from all
shards' caches. Outputs under ``out``::

    cache/<task>/<variant>/<rule>/<seq>.json   per-sequence records
    tables/<task>/<variant>.md|.csv|.json      per sequence and mean, rules side by side
    plots/<task>/<variant>/<rule>/<seq>.png    trajectories against ground truth (pose)
    plots/<task>/length_<family>.png           mean error vs sequence length, a line per rule
    summary_<task>.md                          the means of every table of a task
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import TTT3RError
from ..io.atomic import atomic_open, atomic_write_text
from . import cache as cache_mod
from .align import Sim3
from .datasets import DATASETS, get_dataset
from .datasets.base import DatasetLoader, Sequence
from .metrics_depth import DepthMetrics
from .metrics_pose import ErrorStats, PoseMetrics
from .metrics_recon import ReconMetrics
from .protocols import DEFAULT_DEPTH_ALIGNS, TASKS, CropView, Prediction, evaluate
from .report import depth_summary, pose_summary, recon_summary, write_json

PROTOCOL_VERSION = 1


# ---------------------------------------------------------------------------
# predictors


class Predictor(Protocol):
    """Maps one sequence's frames to per-frame predictions."""

    def predict(self, seq: Sequence, rule: str, task: str) -> Prediction:
        """Predict every frame of ``seq`` with update rule ``rule`` (``task`` says what is needed)."""
        ...

    def describe(self) -> dict:
        """JSON-ready settings that determine the outputs (part of the cache fingerprint)."""
        ...


_MODELS: dict[tuple[str, str, str], Any] = {}


def _cached_model(weights: str, device: str, dtype: str):
    """Load a network once per process (a Ray worker keeps it across tasks)."""
    key = (str(weights), str(device), str(dtype))
    if key not in _MODELS:
        from ..api import load_model

        _MODELS[key] = load_model(weights, device=device, dtype=dtype, quiet=True)
    return _MODELS[key]


class SessionPredictor:
    """The default predictor: a :class:`ttt3r.Session` per (sequence, rule).

    Args:
        weights: checkpoint path or known name (see :func:`ttt3r.load_model`).
        device, dtype: where and how the network runs.
        size: preprocessing size (512 or 224); default: the checkpoint's.
        reset_every: reset the state every N frames (0: never).
        model: an already loaded network (then ``weights`` only labels it).

    The depth is the self-view pointmap's z on the preprocessed crop, the poses
    camera-to-world relative to the first frame, the intrinsics the Weiszfeld
    focal fit; for ``task == "recon"`` the network's world-frame head is also
    returned (the points the original reconstruction protocol evaluates).
    """

    def __init__(self, weights: str | os.PathLike, device: str = "auto", dtype: str = "fp32",
                 size: int | None = None, reset_every: int = 0, model: Any = None) -> None:
        self.weights = str(weights)
        self.device = device
        self.dtype = dtype
        self.size = size
        self.reset_every = int(reset_every)
        self._model = model

    def __getstate__(self) -> dict:  # ship settings, not the network, to Ray workers
        d = dict(self.__dict__)
        if d.get("_model") is not None and Path(self.weights).exists():
            d["_model"] = None
        return d

    def ray_gpus(self) -> float:
        """GPUs a Ray task of this predictor asks for: 0 on CPU, else 1 (``auto``: 1 if the cluster has any)."""
        if str(self.device) == "cpu":
            return 0.0
        if str(self.device) == "auto":
            import ray

            return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return 1.0

    def model(self):
        if self._model is None:
            self._model = _cached_model(self.weights, self.device, self.dtype)
        return self._model

    def describe(self) -> dict:
        w = Path(self.weights)
        ident = {"name": w.name, "bytes": w.stat().st_size, "mtime": int(w.stat().st_mtime)} if w.is_file() else self.weights
        return {"predictor": "session", "weights": ident, "size": self.size, "dtype": self.dtype,
                "reset_every": self.reset_every}

    def predict(self, seq: Sequence, rule: str, task: str) -> Prediction:
        from ..preprocess import preprocess
        from ..session import Session

        model = self.model()
        want = ("world",) if task == "recon" else ()
        session = Session(model, update=rule, reset_every=self.reset_every, size=self.size, want=want)
        depth, poses, Ks, world = [], [], [], []
        src_hw = None
        t0 = time.perf_counter()
        for path in seq.image_paths:
            pre = preprocess(path, session.size, path.name)
            if src_hw is None:
                src_hw = pre.source_hw
            elif pre.source_hw != src_hw:
                raise TTT3RError(f"{path}: image size {pre.source_hw} differs from the sequence's first frame {src_hw}")
            r = session.step(pre, path.name)
            depth.append(r.depth.astype(np.float32))
            poses.append(r.pose)
            Ks.append(r.intrinsics)
            if r.pts3d_world is not None:
                world.append(r.pts3d_world)
        assert src_hw is not None
        return Prediction(
            depth=np.stack(depth),
            poses=np.stack(poses),
            intrinsics=np.stack(Ks),
            view=CropView.for_size(src_hw, session.size),
            points_world=np.stack(world) if world else None,
            seconds=time.perf_counter() - t0,
        )


class GroundTruthPredictor:
    """Ground truth as the prediction, optionally perturbed: checks the pipeline without a network.

    Poses are re-expressed in the first camera's frame (as a reconstruction's are).

    Args:
        scale: global scale applied to positions and depth (a similarity the
            protocols must ignore under Sim(3) / median alignment).
        depth_factor: extra factor on the depth only (``depth * scale * depth_factor``).
        translation_noise: per-sequence (N, 3) offsets (first rows for shorter runs) added to the camera
            positions (in the ground-truth world frame, before re-expression).
    """

    def __init__(self, scale: float = 1.0, depth_factor: float = 1.0,
                 translation_noise: dict[str, np.ndarray] | None = None) -> None:
        self.scale = float(scale)
        self.depth_factor = float(depth_factor)
        self.translation_noise = {k: np.asarray(v, dtype=np.float64) for k, v in (translation_noise or {}).items()}
        self.calls = 0

    def describe(self) -> dict:
        noise = {k: np.round(v, 12).tolist() for k, v in sorted(self.translation_noise.items())}
        return {"predictor": "ground_truth", "scale": self.scale, "depth_factor": self.depth_factor, "noise": noise}

    def predict(self, seq: Sequence, rule: str, task: str) -> Prediction:
        self.calls += 1
        n = len(seq)
        if seq.poses is None:
            poses = np.tile(np.eye(4), (n, 1, 1))
        else:
            poses = np.array(seq.poses, dtype=np.float64)
            ok = np.isfinite(poses).all(axis=(1, 2))
            if ok.any() and not ok.all():  # unknown GT poses (ScanNet): hold the last known one
                idx = np.maximum.accumulate(np.where(ok, np.arange(n), 0))
                idx[: int(np.argmax(ok))] = int(np.argmax(ok))
                poses = poses[idx]
            noise = self.translation_noise.get(seq.name)
            if noise is not None:
                poses[:, :3, 3] += noise[:n]  # a --frames limit uses the first rows
            if np.isfinite(poses[0]).all():
                poses = np.linalg.inv(poses[0]) @ poses
            poses[:, :3, 3] *= self.scale
        if seq.depth_paths is not None:
            depth = np.stack([seq.read_depth(i) for i in range(n)]).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(seq.image_paths[0]) as im:
                w, h = im.size
            depth = np.ones((n, h, w), np.float32)
        depth = depth * np.float32(self.scale * self.depth_factor)
        h, w = depth.shape[1:]
        K = seq.intrinsics if seq.intrinsics is not None else np.tile(
            np.array([[float(max(h, w)), 0, (w - 1) / 2], [0, float(max(h, w)), (h - 1) / 2], [0, 0, 1]]), (n, 1, 1))
        return Prediction(depth=depth, poses=poses, intrinsics=np.asarray(K, dtype=np.float64))


# ---------------------------------------------------------------------------
# configuration and work items


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation run.

    Attributes:
        task: ``pose``, ``depth`` or ``recon``.
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
    settings: dict


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
    if cfg.task not in TASKS:
        raise TTT3RError(f"unknown task {cfg.task!r}; choose one of {', '.join(TASKS)}")
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
    result = evaluate(job.item.task, seq, pred, family=family, depth_aligns=tuple(job.settings["depth_aligns"]),
                      depth_resize=job.settings["depth_resize"], pose_align=job.settings["pose_align"])
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
    """A short text of a record's main metric."""
    m = record["result"]["metrics"]
    task = record["task"]
    if task == "pose":
        return f"ATE {m['ate']['rmse']:.4f} RPE {m['rpe_trans']['rmse']:.4f}/{m['rpe_rot_deg']['rmse']:.3f}deg"
    if task == "depth":
        return " ".join(f"AbsRel[{a}] {v['abs_rel']:.4f}" for a, v in m.items())
    return f"Acc {m['accuracy']:.4f} Comp {m['completeness']:.4f} NC {m['nc']:.3f}"


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
class RunSummary:
    """What a run did: records of its items, counts, failures and written files."""

    records: list[dict]
    computed: int
    cached: int
    failures: list[str]
    files: list[Path]


def _fingerprint(cfg: EvalConfig, predictor: Predictor, item: WorkItem) -> dict:
    fp: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "predictor": predictor.describe(), "task": cfg.task,
                          "frames": item.frames}
    if cfg.task == "depth":
        fp["depth_aligns"] = list(cfg.depth_aligns)
        fp["depth_resize"] = cfg.depth_resize
    if cfg.task == "pose":
        fp["pose_align"] = cfg.pose_align
    return fp


def run_evaluation(cfg: EvalConfig, predictor: Predictor, ray: str | None = None, stream=None,
                   run_info: dict | None = None) -> RunSummary:
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
    settings = {"depth_aligns": list(cfg.depth_aligns), "depth_resize": cfg.depth_resize, "pose_align": cfg.pose_align}
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
    return RunSummary(ordered, len(todo) - len(failures), len(jobs) - len(todo), failures, files)


def merge(out: str | os.PathLike, plots: bool = True) -> list[Path]:
    """Build tables and plots from every cached record under ``out`` (all shards, all runs)."""
    records = list(cache_mod.iter_records(Path(out)))
    if not records:
        raise TTT3RError(f"{Path(out) / 'cache'}: no cached results to merge")
    return build_reports(Path(out), records, plots=plots)


# ---------------------------------------------------------------------------
# tables and plots


def _pose_obj(m: dict) -> PoseMetrics:
    return PoseMetrics(ErrorStats(**m["ate"]), ErrorStats(**m["rpe_trans"]), ErrorStats(**m["rpe_rot_deg"]),
                       Sim3(np.eye(3), np.zeros(3), float(m.get("scale") or 1.0)), m["align"], int(m["delta"]),
                       bool(m["all_pairs"]))


def _depth_obj(m: dict) -> DepthMetrics:
    return DepthMetrics(**{k: m[k] for k in DepthMetrics.__dataclass_fields__})


def _recon_obj(m: dict) -> ReconMetrics:
    d = {k: m[k] for k in ReconMetrics.__dataclass_fields__ if k != "icp_transform"}
    return ReconMetrics(**d, icp_transform=np.asarray(m["icp_transform"]))


def _columns(task: str) -> list[tuple[str, str]]:
    """(key, header) of the per-sequence values of a task's table (depth: per alignment)."""
    if task == "pose":
        return [("ate", "ATE"), ("rpe_trans", "RPE trans"), ("rpe_rot", "RPE rot (deg)")]
    if task == "depth":
        return [("abs_rel", "Abs Rel"), ("delta_1", "delta < 1.25")]
    return [("accuracy", "Acc"), ("accuracy_median", "Acc med"), ("completeness", "Comp"),
            ("completeness_median", "Comp med"), ("nc", "NC"), ("nc_median", "NC med")]


def _flat(task: str, metrics: dict) -> dict[str, float]:
    """One record's (or one depth alignment's) metrics as flat column values."""
    if task == "pose":
        return {"ate": metrics["ate"]["rmse"], "rpe_trans": metrics["rpe_trans"]["rmse"],
                "rpe_rot": metrics["rpe_rot_deg"]["rmse"]}
    return {k: metrics[k] for k, _ in _columns(task)}


def _mean(task: str, per_seq: dict[str, dict]) -> dict[str, float]:
    """The paper's dataset mean of per-sequence metric dicts (via :mod:`ttt3r.eval.report`)."""
    if task == "pose":
        return pose_summary({s: _pose_obj(m) for s, m in per_seq.items()})
    if task == "depth":
        return depth_summary({s: _depth_obj(m) for s, m in per_seq.items()})
    return recon_summary({s: _recon_obj(m) for s, m in per_seq.items()})


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


@dataclass
class _Group:
    task: str
    dataset: str
    variant: str
    frames: int | None
    rules: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    records: dict[tuple[str, str], dict] = field(default_factory=dict)  # (rule, seq) -> record


def _groups(records: Iterable[dict]) -> list[_Group]:
    groups: dict[tuple[str, str], _Group] = {}
    for r in records:
        g = groups.setdefault((r["task"], r["variant"]), _Group(r["task"], r["dataset"], r["variant"], r.get("frames")))
        if r["rule"] not in g.rules:
            g.rules.append(r["rule"])
        if r["sequence"] not in g.sequences:
            g.sequences.append(r["sequence"])
        g.records[(r["rule"], r["sequence"])] = r
    out = list(groups.values())
    for g in out:  # canonical order: independent of how the records were produced or sharded
        g.rules.sort(key=lambda x: (x != "cut3r", x))
        g.sequences.sort()
    return sorted(out, key=lambda g: (TASKS.index(g.task), g.dataset, g.frames or 0, g.variant))


def _sections(g: _Group) -> list[tuple[str | None, Callable[[dict], dict]]]:
    """(alignment or None, record -> metrics dict) for each table section of a group."""
    if g.task != "depth":
        return [(None, lambda r: r["result"]["metrics"])]
    aligns: list[str] = []
    for r in g.records.values():
        for a in r["result"]["metrics"]:
            if a not in aligns:
                aligns.append(a)
    return [(a, (lambda r, a=a: r["result"]["metrics"][a])) for a in aligns]


def group_tables(g: _Group) -> tuple[str, str, dict]:
    """Markdown, CSV and JSON of one (task, variant): per sequence and mean, rules side by side."""
    cols = _columns(g.task)
    md = [f"# {g.task}: {g.variant}\n"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "dataset", "variant", "frames", "align", "rule", "sequence", "num_frames"] + [k for k, _ in cols])
    js: dict[str, Any] = {"task": g.task, "dataset": g.dataset, "variant": g.variant, "frames": g.frames,
                          "rules": g.rules, "sequences": g.sequences, "per_sequence": {}, "mean": {}}
    for align, get in _sections(g):
        per_rule: dict[str, dict[str, dict]] = {
            rule: {s: get(g.records[(rule, s)]) for s in g.sequences if (rule, s) in g.records} for rule in g.rules
        }
        means = {rule: _mean(g.task, ps) for rule, ps in per_rule.items() if ps}
        header = ["sequence", "frames"] + [f"{h} {rule}" for _, h in cols for rule in g.rules]
        rows = []
        for s in g.sequences:
            nf = next((g.records[(r, s)]["num_frames"] for r in g.rules if (r, s) in g.records), None)
            vals = []
            for k, _ in cols:
                for rule in g.rules:
                    m = per_rule[rule].get(s)
                    vals.append(_fmt(_flat(g.task, m)[k]) if m is not None else "-")
            rows.append([s, str(nf)] + vals)
            for rule in g.rules:
                m = per_rule[rule].get(s)
                if m is not None:
                    flat = _flat(g.task, m)
                    w.writerow([g.task, g.dataset, g.variant, g.frames or "", align or "", rule, s,
                                g.records[(rule, s)]["num_frames"]] + [repr(float(flat[k])) for k, _ in cols])
        mean_label = "**weighted mean**" if g.task == "depth" else "**mean**"
        rows.append([mean_label, ""] + [_fmt(means[rule][k]) if rule in means else "-" for k, _ in cols for rule in g.rules])
        for rule in g.rules:
            if rule in means:
                w.writerow([g.task, g.dataset, g.variant, g.frames or "", align or "", rule, "mean", ""]
                           + [repr(float(means[rule][k])) for k, _ in cols])
        if align is not None:
            md.append(f"\n## alignment: {align}\n")
        md.append("\n" + _md_table(header, rows))
        key = align or "all"
        js["per_sequence"][key] = {s: {rule: per_rule[rule][s] for rule in g.rules if s in per_rule[rule]}
                                   for s in g.sequences}
        js["mean"][key] = means
    if g.task != "depth":
        js["per_sequence"] = js["per_sequence"]["all"]
        js["mean"] = js["mean"]["all"]
    return "".join(md), buf.getvalue(), js


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", name)


def build_reports(out: str | os.PathLike, records: Iterable[dict], plots: bool = True) -> list[Path]:
    """Write tables (Markdown, CSV, JSON), plots and ``summary_<task>.md`` for ``records``; returns the files."""
    out = Path(out)
    groups = _groups(records)
    files: list[Path] = []
    summaries: dict[str, list[str]] = defaultdict(list)
    for g in groups:
        md, csv_text, js = group_tables(g)
        base = out / "tables" / g.task / _slug(g.variant)
        atomic_write_text(base.with_suffix(".md"), md)
        atomic_write_text(base.with_suffix(".csv"), csv_text)
        write_json(base.with_suffix(".json"), js)
        files += [base.with_suffix(".md"), base.with_suffix(".csv"), base.with_suffix(".json")]
        summaries[g.task].append(_summary_section(g, js))
        if plots and g.task == "pose":
            files += _trajectory_plots(out, g)
    if plots:
        files += _length_plots(out, groups)
    for task, sections in summaries.items():
        path = out / f"summary_{task}.md"
        atomic_write_text(path, "\n".join([f"# Evaluation summary: {task}\n", *sections]))
        files.append(path)
    return files


def _summary_section(g: _Group, js: dict) -> str:
    cols = _columns(g.task)
    means = js["mean"]
    lines = [f"## {g.task}: {g.variant} ({len(g.sequences)} sequences)\n"]
    if g.task == "depth":
        for align, per_rule in means.items():
            rows = [[rule] + [_fmt(m[k]) for k, _ in cols] for rule, m in per_rule.items()]
            lines.append(f"alignment {align}:\n\n" + _md_table(["rule"] + [h for _, h in cols], rows))
    else:
        rows = [[rule] + [_fmt(m[k]) for k, _ in cols] for rule, m in means.items()]
        lines.append(_md_table(["rule"] + [h for _, h in cols], rows))
    return "\n".join(lines)


def _trajectory_plots(out: Path, g: _Group) -> list[Path]:
    from .plots import plot_trajectories

    files = []
    for (rule, seq), rec in sorted(g.records.items()):
        traj = rec["result"].get("trajectory")
        if not traj:
            continue
        gt, est = np.asarray(traj["gt"], dtype=np.float64), np.asarray(traj["est"], dtype=np.float64)
        if len(gt) < 3:
            continue
        path = out / "plots" / g.task / _slug(g.variant) / _slug(rule) / (_slug(seq) + ".png")
        plot_trajectories(path, gt, est, align="sim3", title=f"{g.variant} {seq} ({rule})")
        files.append(path)
    return files


def _length_plots(out: Path, groups: list[_Group]) -> list[Path]:
    """Mean error vs mean sequence length, a line per rule, per (task, dataset family) with >= 2 lengths."""
    families: dict[tuple[str, str], list[_Group]] = defaultdict(list)
    for g in groups:
        families[(g.task, re.sub(r"_\d+$", "", g.dataset))].append(g)
    files = []
    for (task, fam), gs in sorted(families.items()):
        series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
        lengths = set()
        for g in gs:
            _, _, js = group_tables(g)
            for align, get in _sections(g):
                means = js["mean"][align] if task == "depth" else js["mean"]
                for rule in g.rules:
                    nfs = [g.records[(rule, s)]["num_frames"] for s in g.sequences if (rule, s) in g.records]
                    if not nfs or rule not in means:
                        continue
                    x = float(np.mean(nfs))
                    lengths.add(x)
                    for k, h in _plot_metrics(task):
                        panel = f"{h} [{align}]" if align else h
                        series[panel][rule].append((x, float(means[rule][k])))
        if len(lengths) < 2:
            continue
        path = out / "plots" / task / f"length_{_slug(fam)}.png"
        _plot_lines(path, series, f"{task}: {fam}")
        files.append(path)
    return files


def _plot_metrics(task: str) -> list[tuple[str, str]]:
    if task == "pose":
        return [("ate", "ATE"), ("rpe_trans", "RPE trans"), ("rpe_rot", "RPE rot (deg)")]
    if task == "depth":
        return [("abs_rel", "Abs Rel")]
    return [("accuracy", "Acc"), ("completeness", "Comp")]


def _plot_lines(path: Path, series: dict[str, dict[str, list[tuple[float, float]]]], title: str) -> None:
    from matplotlib.figure import Figure

    panels = list(series)
    fig = Figure(figsize=(4.5 * len(panels), 4))
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for rule, pts in sorted(series[panel].items()):
            pts = sorted(pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=rule)
        ax.set_xlabel("sequence length (frames)")
        ax.set_ylabel(panel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)


def known_rules() -> list[str]:
    from ..update import available_rules

    return available_rules()


def dataset_tasks(name: str) -> tuple[str, ...]:
    spec = DATASETS.get(name)
    return spec.tasks if spec is not None else ()


def write_run_info(out: Path, info: dict) -> Path:
    """Record the command line settings of a run (``run.json``, or ``run-shard-i-of-n.json``)."""
    shard = info.get("shard")
    name = "run.json" if not shard else f"run-shard-{shard[0]}-of-{shard[1]}.json"
    write_json(out / name, info)
    return out / name


__all__ = [
    "EvalConfig",
    "GroundTruthPredictor",
    "Job",
    "Predictor",
    "RunSummary",
    "SessionPredictor",
    "WorkItem",
    "build_reports",
    "evaluate_job",
    "merge",
    "run_evaluation",
    "truncate",
    "work_items",
]
