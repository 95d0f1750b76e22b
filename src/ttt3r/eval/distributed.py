"""Scaling an evaluation out: deterministic shards, and Ray tasks.

* :func:`parse_shard` / :func:`shard_items`: ``--shard i/n`` (``0 <= i < n``)
  keeps every n-th work item starting at the i-th, in the run's fixed item order,
  so the n shards partition the items; ``ttt3r eval merge`` then builds the
  tables from all shards' caches.
* :func:`run_on_ray`: one Ray task per job. Ray is an optional dependency
  (``pip install 'ttt3r[eval]'``), imported only here. The job function
  receives the predictor from the object store; predictors load their network
  once per worker process (see :class:`ttt3r.eval.predictors.SessionPredictor`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import TTT3RError

T = TypeVar("T")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; None passes through."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise TTT3RError(f"--shard must look like i/n (e.g. 0/4), got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise TTT3RError(f"--shard {text}: need n >= 1 and 0 <= i < n (shards are numbered from 0)")
    return i, n


def shard_items(items: Iterable[T], shard: tuple[int, int] | None) -> list[T]:
    """The items of shard ``(i, n)``: positions ``i, i + n, i + 2n, ...`` (all items for None)."""
    items = list(items)
    if shard is None:
        return items
    i, n = shard
    return items[i::n]


def import_ray():
    """Import Ray lazily; a one-line :class:`TTT3RError` when it is not installed."""
    try:
        import ray
    except ImportError:
        raise TTT3RError("--ray needs Ray, which is not installed: pip install 'ttt3r[eval]' (or 'ray[default]')") from None
    return ray


def init_ray(address: str) -> bool:
    """Connect to Ray: ``local`` starts a local instance, ``auto`` finds a running
    cluster, anything else is a cluster address. An already initialised Ray (e.g.
    ``ray.init(num_cpus=2)`` by the caller) is used as is.

    Returns True when this call started the connection (the caller shuts it down).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TTT3RError(f"--ray {address}: cannot connect to Ray ({first})") from None
    return True


def _error_message(err: BaseException) -> str:
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        err = cause
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def run_on_ray(
    fn: Callable[..., Any],
    jobs: list[Any],
    shared: Any,
    address: str,
    num_cpus: float = 1,
    num_gpus: float | Callable[[], float] = 0,
) -> Iterator[tuple[Any, Any, str | None]]:
    """Run ``fn(job, shared)`` for every job as Ray tasks; yield ``(job, result, error)`` as they finish.

    ``shared`` (e.g. the predictor) is put in the object store once. ``error`` is
    the one-line message of a failed task (its result is then None). ``num_gpus``
    may be a callable, evaluated once connected (e.g. to look at the cluster).
    """
    ray = import_ray()
    owner = init_ray(address)
    try:
        if callable(num_gpus):
            num_gpus = float(num_gpus())
        remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(fn)
        shared_ref = ray.put(shared)
        pending = {remote.remote(job, shared_ref): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            job = pending.pop(ref)
            try:
                yield job, ray.get(ref), None
            except Exception as e:  # a task failed: report it, keep going
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                yield job, None, _error_message(e)
    finally:
        if owner:
            ray.shutdown()
