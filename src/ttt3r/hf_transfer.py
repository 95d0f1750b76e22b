"""One pinned file from the Hugging Face Hub, through :mod:`huggingface_hub`.

A Hub source is written ``hf://OWNER/REPO@REVISION/FILENAME`` (the notation of
``huggingface_hub.HfFileSystem``); :func:`fetch` downloads it with
:func:`huggingface_hub.hf_hub_download` into a Hub cache folder that the caller
chooses (ttt3r passes one inside its own cache, so ``~/.cache/huggingface`` is
never used) and returns the path of the downloaded file, not yet verified:
:mod:`ttt3r.hub` checks size and SHA-256 and moves it into place.

What huggingface_hub does, and ttt3r relies on:

* ``HEAD {endpoint}/{repo}/resolve/{revision}/{file}``: the commit
  (``X-Repo-Commit``), the LFS hash (``X-Linked-Etag``) and size
  (``X-Linked-Size``), then a ``GET`` of the file.
* The body goes to a process-unique ``*.incomplete`` file beside the cache's
  blob, written in 10 MiB pieces (``constants.DOWNLOAD_CHUNK_SIZE``). A
  dropped connection is resumed in the same call with a ``Range`` request from
  the last whole piece (up to 5 times in a row without new data); a failure or
  Ctrl-C removes the partial file, so a later run starts again from byte 0.

What ttt3r adds for the duration of one download:

* The endpoint is read from ``HF_ENDPOINT`` at call time; no token is sent
  (the checkpoints are public), so no token file is read.
* Xet transfers are switched off (plain HTTP), so that the stall limit below
  and the ``Range`` resume apply to every byte; so is telemetry, so nothing is
  written under ``$HF_HOME``.
* A stall limit: every response body is wrapped by a guard that fails the
  download when too few bytes arrive within its window (see
  :class:`ttt3r.hub.StallGuard`); a server that trickles is not a live one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEME = "hf://"
_DEFAULT_ENDPOINT = "https://huggingface.co"
_LOCK = threading.Lock()  # the session's hooks and the switches below are process-wide
# huggingface_hub's switches turned on for the duration of a ttt3r download: plain HTTP
# (no Xet), and no telemetry (which would fetch {endpoint}/api/agent-harnesses and write
# $HF_HOME/.agent_harnesses.json, outside ttt3r's cache).
_SWITCHED_OFF = ("HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_TELEMETRY")


@dataclass(frozen=True)
class HubFile:
    """A file of a Hub model repository at a pinned commit."""

    repo_id: str  # "owner/name"
    revision: str  # 40-hex commit
    filename: str  # path inside the repository

    @property
    def uri(self) -> str:
        """``hf://OWNER/REPO@REVISION/FILENAME``."""
        return f"{SCHEME}{self.repo_id}@{self.revision}/{self.filename}"

    @classmethod
    def parse(cls, uri: str) -> HubFile:
        """The inverse of :attr:`uri`; ``ValueError`` on anything else."""
        repo_id, at, rest = uri.removeprefix(SCHEME).partition("@")
        revision, slash, filename = rest.partition("/")
        if not (uri.startswith(SCHEME) and at and slash and revision and filename and repo_id.count("/") == 1):
            raise ValueError(f"not a Hub URI of the form hf://OWNER/REPO@REVISION/FILE: {uri!r}")
        return cls(repo_id, revision, filename)


def endpoint() -> str:
    """The Hub's base URL: ``$HF_ENDPOINT`` (read now, not at import), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT", "").strip() or _DEFAULT_ENDPOINT).rstrip("/")


def host() -> str:
    """The endpoint's host, for short error messages."""
    return urllib.parse.urlsplit(endpoint()).netloc or endpoint()


def _guarded(inner: Any, guard: Any) -> Any:
    """``inner`` (a response body) reporting every piece to ``guard`` as it arrives."""
    import httpx2

    class GuardedStream(httpx2.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            try:
                for piece in inner:
                    guard.feed(len(piece))
                    yield piece
            except httpx2.TimeoutException:
                guard.check()  # past the stall limit: the guard's own error
                raise  # else huggingface_hub resumes with a Range request

        def close(self) -> None:
            inner.close()

    return GuardedStream()


@contextlib.contextmanager
def _guarded_session(guard: Any) -> Iterator[None]:
    from huggingface_hub import constants, get_session

    def wrap(response: Any) -> None:
        response.stream = _guarded(response.stream, guard)

    with _LOCK:
        session = get_session()
        hooks = session.event_hooks
        switches = {k: getattr(constants, k) for k in _SWITCHED_OFF}
        session.event_hooks = {**hooks, "response": [*hooks.get("response", []), wrap]}
        for k in _SWITCHED_OFF:
            setattr(constants, k, True)
        try:
            yield
        finally:
            session.event_hooks = hooks
            for k, v in switches.items():
                setattr(constants, k, v)


def fetch(file: HubFile, cache_dir: Path, *, guard: Any, timeout: float, quiet: bool) -> Path:
    """Download ``file`` into the Hub cache ``cache_dir``; return the snapshot path (unverified).

    Raises:
        huggingface_hub / httpx2 errors (see :func:`describe`), or the guard's stall error.
    """
    from huggingface_hub import hf_hub_download

    _check_resolvable()
    with _guarded_session(guard):
        return Path(
            hf_hub_download(
                file.repo_id,
                file.filename,
                revision=file.revision,
                cache_dir=cache_dir,
                endpoint=endpoint(),
                token=False,
                etag_timeout=timeout,
                tqdm_class=_quiet_tqdm() if quiet else None,
            )
        )


class HostUnresolvable(OSError):
    """The Hub's host name does not resolve (no network): no request is sent, so no retries."""


def _check_resolvable() -> None:
    """Resolve the endpoint's host once before huggingface_hub's retrying requests.

    huggingface_hub retries a failed connection five times with back-off (about
    25 s) before it gives up; a host that does not resolve will not resolve on
    a retry, so an offline machine goes straight to the next source.
    """
    import socket

    parts = urllib.parse.urlsplit(endpoint())
    if not parts.hostname:
        return
    try:
        socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as e:
        raise HostUnresolvable(f"cannot resolve host (offline?): {e.strerror or e}") from None


def _quiet_tqdm() -> type:
    from tqdm.auto import tqdm

    class QuietTqdm(tqdm):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return QuietTqdm


def describe(exc: BaseException) -> str | None:
    """A short reason for a huggingface_hub / httpx2 error, or None if it is neither."""
    import httpx2
    from huggingface_hub import errors

    chain = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, HostUnresolvable):
            return str(e)
        if isinstance(e, errors.RevisionNotFoundError):
            return "the pinned revision is not on the Hub"
        if isinstance(e, errors.RemoteEntryNotFoundError):
            return "HTTP 404: the file is not in the repository"
        if isinstance(e, errors.HfHubHTTPError) and e.response is not None:
            return f"HTTP {e.response.status_code} {e.response.reason_phrase}".strip()
        if isinstance(e, httpx2.ConnectError):
            text = str(e)
            return "connection refused" if "refused" in text.lower() else f"cannot connect ({text})"
        if isinstance(e, httpx2.TimeoutException):
            return "timed out"
        if isinstance(e, httpx2.HTTPError):
            return str(e) or type(e).__name__
    for e in chain:
        if isinstance(e, (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)):
            return "the Hub cannot be reached"
    if "Consistency check failed" in str(exc):
        return str(exc).splitlines()[0]
    return None
