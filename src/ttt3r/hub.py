"""Known checkpoints, the user cache, and downloading them.

The CUT3R authors publish two checkpoints on Google Drive (see
https://github.com/CUT3R/CUT3R#download-checkpoints); the 512 one is also on
the Hugging Face Hub (``liguang0115/cut3r``). :data:`KNOWN_CHECKPOINTS` is the
one table of them (sources, size, SHA-256); :func:`resolve_weights` turns a
``--weights`` argument (a path or a known name) into a local file, downloading
a known checkpoint into the cache on first use.

Cache location
    ``platformdirs.user_cache_dir("ttt3r") / "checkpoints"`` (on Linux
    ``~/.cache/ttt3r/checkpoints``). The environment variable ``TTT3R_CACHE``
    replaces the *parent* (the ttt3r cache root): with ``TTT3R_CACHE=/data/ttt3r``
    checkpoints live in ``/data/ttt3r/checkpoints``. The Hub's own cache folder
    (its partial downloads) is ``<root>/huggingface``; which cached files were
    verified is recorded in ``<root>/verified/<file>.json`` (size, mtime, hash).

Sources
    An entry's ``urls`` are tried in order: ``hf://OWNER/REPO@REVISION/FILE``
    is a pinned file on the Hub (:mod:`ttt3r.hf_transfer`, through
    ``huggingface_hub``; ``HF_ENDPOINT`` chooses the server), anything else is
    an HTTP(S) URL fetched with :mod:`urllib`. Google Drive's "can't scan this
    file for viruses" page is answered by following its confirmation form; an
    HTML page that is not such a form (quota exceeded, access denied) is an
    error, never saved as a checkpoint. With ``HF_HUB_OFFLINE=1`` nothing is
    downloaded (the cache still answers).

Verification
    Every download is checked before it gets its final name: size and SHA-256
    where the table knows them; where the hash is not known, the file must
    open as a CUT3R checkpoint with the safe loader
    (:func:`ttt3r.weights.read_checkpoint`). A cached file that was not put
    there by a verified download (copied by hand, changed since) is checked the
    same way on first use; one that fails is reported with the command that
    removes it (``ttt3r weights remove NAME``).

Partial files, resume and stalls
    Both kinds of source behave as ``huggingface_hub`` does: the body goes to
    a temporary file; a connection that drops mid-file is resumed in the same
    call with an HTTP ``Range`` request (up to :data:`_MAX_RESUMES` times in a
    row without new data; a server that ignores ``Range`` is read again from
    the start); a failure or Ctrl-C removes the partial file, so no partial
    file outlives a download (a killed process may leave one ``*.tmp`` /
    ``*.incomplete`` file, which the next download does not reuse and
    ``ttt3r weights remove`` deletes). A download that receives fewer than
    :data:`_STALL_BYTES` within ``stall_timeout`` seconds is abandoned with
    one line, however slowly the server trickles; ``timeout`` is the limit of
    a single read. Any failure is one :class:`~ttt3r.errors.DownloadError`
    line that gives the manual download link and the exact path to save the
    file to.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import http.cookiejar
import json
import os
import shutil
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import CheckpointError, DownloadError, TTT3RError
from .hf_transfer import SCHEME as HF_SCHEME
from .hf_transfer import HubFile
from .io.atomic import atomic_path, atomic_write_text

__all__ = [
    "CACHE_ENV",
    "KNOWN_CHECKPOINTS",
    "Checkpoint",
    "CacheStatus",
    "HubFile",
    "StallGuard",
    "cache_root",
    "cache_status",
    "cached_path",
    "checkpoint_dir",
    "download",
    "drive_download_urls",
    "drive_view_url",
    "get_checkpoint",
    "is_cached",
    "known_names",
    "remove_cached",
    "resolve_weights",
]

#: Environment variable replacing the ttt3r cache root: checkpoints go in ``$TTT3R_CACHE/checkpoints``.
CACHE_ENV = "TTT3R_CACHE"

_CHUNK_SIZE = 1 << 20  # bytes per read while streaming
_MAX_HTML_BYTES = 2 << 20  # an HTML page bigger than this is not a confirmation page
_MAX_CONFIRM_HOPS = 3  # confirmation pages followed before giving up
_DEFAULT_TIMEOUT = 30.0  # seconds a single read may wait
_DEFAULT_STALL = 120.0  # seconds within which at least _STALL_BYTES must arrive
_STALL_BYTES = 64 << 10  # fewer bytes than this within the stall window: the download is stalled
_MAX_RESUMES = 5  # Range requests in a row without new data before giving up
_HASH_BLOCK = 8 << 20  # bytes per read while hashing a file
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


def drive_view_url(file_id: str) -> str:
    """The Google Drive page a person opens in a browser to download ``file_id``."""
    return f"https://drive.google.com/file/d/{file_id}/view"


def drive_download_urls(file_id: str) -> tuple[str, ...]:
    """Direct download URLs for a public Google Drive file, best first.

    The ``drive.usercontent.google.com`` URL with ``confirm=t`` skips the
    virus-scan page for large files; the classic ``uc`` URL serves that page,
    whose form :func:`download` follows.
    """
    q = urllib.parse.quote(file_id, safe="")
    return (
        f"https://drive.usercontent.google.com/download?id={q}&export=download&confirm=t",
        f"https://drive.google.com/uc?export=download&id={q}",
    )


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint that ttt3r knows how to fetch.

    Attributes:
        name: Short name used on the command line (``--weights NAME``).
        filename: File name in the cache, ``<name>.pth``.
        urls: Sources, tried in order: ``hf://OWNER/REPO@REVISION/FILE`` (a
            pinned file on the Hugging Face Hub) or an HTTP(S) URL.
        page_url: Where a person downloads it by hand (shown in errors).
        image_size: Input resolution the model was trained for (long side).
        description: One line for ``ttt3r weights list``.
        size: Size in bytes, or None when not known.
        sha256: Lower-case hex SHA-256, or None when not known.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    page_url: str
    image_size: int
    description: str
    size: int | None = None
    sha256: str | None = None


# The 512 checkpoint's size and SHA-256 are those of the Hub's LFS object at the
# pinned commit (the same file as the Drive copy). Nothing is known of the 224
# one: a download of it is opened with the safe loader before it counts as cached.
_CUT3R_512_ID = "1Asz-ZB3FfpzZYwunhQvNPZEUA8XUNAYD"
_CUT3R_224_ID = "11dAgFkWHpaOHsR6iuitlB_v4NFFBrWjy"
_CUT3R_HUB = HubFile(
    repo_id="liguang0115/cut3r",
    revision="b14faf986da0df405cff1b41e60e2975c4da2745",
    filename="cut3r_512_dpt_4_64.pth",
)

#: name -> :class:`Checkpoint`, for every checkpoint ``resolve_weights`` can download.
KNOWN_CHECKPOINTS: dict[str, Checkpoint] = {
    c.name: c
    for c in (
        Checkpoint(
            name="cut3r_512_dpt_4_64",
            filename="cut3r_512_dpt_4_64.pth",
            urls=(_CUT3R_HUB.uri, *drive_download_urls(_CUT3R_512_ID)),
            page_url=drive_view_url(_CUT3R_512_ID),
            image_size=512,
            description="CUT3R final model: 512px (several aspect ratios), DPT head, 4-64 views",
            size=3_173_761_006,
            sha256="45f7e98a0a64dbeb54901ae2b878cd8cd125f20a4497316483f0bd6f109f8103",
        ),
        Checkpoint(
            name="cut3r_224_linear_4",
            filename="cut3r_224_linear_4.pth",
            urls=drive_download_urls(_CUT3R_224_ID),
            page_url=drive_view_url(_CUT3R_224_ID),
            image_size=224,
            description="CUT3R intermediate model: 224x224, linear head; faster, less accurate",
        ),
    )
}


# ---------------------------------------------------------------- table & cache


def known_names() -> tuple[str, ...]:
    """Names of the known checkpoints, in table order."""
    return tuple(KNOWN_CHECKPOINTS)


def _strip_pth(name: str) -> str:
    return name[: -len(".pth")] if name.endswith(".pth") else name


def _lookup(name: str) -> Checkpoint | None:
    return KNOWN_CHECKPOINTS.get(_strip_pth(name))


def _unknown_name_message(name: str) -> str:
    return f"unknown checkpoint {name!r}; known names: {', '.join(known_names())}"


def get_checkpoint(name: str) -> Checkpoint:
    """The table entry for ``name`` (with or without ``.pth``).

    Raises:
        TTT3RError: ``name`` is not a known checkpoint; the message lists the known names.
    """
    entry = _lookup(name)
    if entry is None:
        raise TTT3RError(_unknown_name_message(name))
    return entry


def cache_root() -> Path:
    """The ttt3r cache root: ``$TTT3R_CACHE`` if set, else the platform's user cache dir."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ttt3r"))


def checkpoint_dir() -> Path:
    """Folder holding downloaded checkpoints: ``cache_root() / "checkpoints"`` (not created)."""
    return cache_root() / "checkpoints"


def _entry(checkpoint: str | Checkpoint) -> Checkpoint:
    return checkpoint if isinstance(checkpoint, Checkpoint) else get_checkpoint(checkpoint)


def cached_path(checkpoint: str | Checkpoint) -> Path:
    """Where ``checkpoint`` lives in the cache, whether or not it is there."""
    return checkpoint_dir() / _entry(checkpoint).filename


def is_cached(checkpoint: str | Checkpoint) -> bool:
    """True when the checkpoint's file is in the cache (and has the right size, when known)."""
    entry = _entry(checkpoint)
    path = cached_path(entry)
    if not path.is_file():
        return False
    return entry.size is None or path.stat().st_size == entry.size


def _manual_hint(entry: Checkpoint, dest: Path) -> str:
    return (
        f"download it manually from {entry.page_url} and save it as {dest} "
        f"(or pass --weights PATH to use a file elsewhere)"
    )


def resolve_weights(
    name_or_path: str | os.PathLike[str], download: bool = True, *, quiet: bool = False
) -> Path:
    """Turn a ``--weights`` argument into a local checkpoint path.

    * An existing path (file or directory) is returned as is.
    * A known name (``cut3r_512_dpt_4_64`` or ``cut3r_512_dpt_4_64.pth``) is
      looked up in the cache and, if absent and ``download`` is true,
      downloaded there first (progress bar on stderr unless ``quiet``).

    Raises:
        TTT3RError: neither an existing path nor a known name.
        DownloadError: a known checkpoint is not cached and cannot be downloaded
            (or ``download`` is false); the message says where to get it and
            where to put it. Or the cached file fails verification; the message
            gives the command that removes it.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    text = os.fspath(name_or_path)
    entry = _lookup(text)
    if entry is None:
        raise TTT3RError(
            f"{text}: no such file, and not a known checkpoint name "
            f"(known: {', '.join(known_names())})"
        )
    dest = cached_path(entry)
    if dest.is_file():
        _check_cached(entry, dest)
        return dest
    if not download:
        raise DownloadError(f"{entry.filename} is not in the cache; {_manual_hint(entry, dest)}")
    return _download(entry, quiet=quiet)


# ---------------------------------------------------------------- verification


class _Failed(Exception):
    """One source did not give the checkpoint; the message is a short reason."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _verify_file(entry: Checkpoint, path: Path, sha256: str | None = None) -> str | None:
    """Check ``path`` against ``entry``; return its SHA-256 when the entry has one.

    Size and SHA-256 where known (``sha256``: the hash already computed while
    streaming); where the hash is not known, the file must open as a CUT3R
    checkpoint with the safe loader (nothing in it is run).

    Raises:
        _Failed: the reason, without the path.
    """
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise _Failed(f"size mismatch: expected {entry.size} bytes, got {size}")
    if entry.sha256 is not None:
        sha = sha256 or _sha256_file(path)
        if sha != entry.sha256.lower():
            raise _Failed(f"SHA-256 mismatch: expected {entry.sha256.lower()}, got {sha}")
        return sha
    from .weights import read_checkpoint

    try:
        read_checkpoint(path)
    except CheckpointError as e:
        raise _Failed(str(e).removeprefix(f"{path}: ")) from None
    return None


def _stamp_path(entry: Checkpoint) -> Path:
    return cache_root() / "verified" / f"{entry.filename}.json"


def _stamp(entry: Checkpoint, path: Path, sha256: str | None) -> None:
    """Record that the cached ``path`` (as it is now on disk) passed verification."""
    st = path.stat()
    record = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    with contextlib.suppress(OSError):  # only a cache of work done: never fatal
        _stamp_path(entry).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_stamp_path(entry), json.dumps(record) + "\n")


def _stamp_matches(entry: Checkpoint, path: Path) -> bool:
    try:
        record = json.loads(_stamp_path(entry).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
        and (entry.sha256 is None or record.get("sha256") == entry.sha256.lower())
    )


def _remove_command(entry: Checkpoint) -> str:
    return f"ttt3r weights remove {entry.name}"


def _check_cached(entry: Checkpoint, path: Path) -> None:
    """Verify a cached checkpoint once (then only its size and mtime are compared).

    Raises:
        DownloadError: it fails; the part before the first ``;`` names the file,
            the reason and the command that removes it.
    """
    try:
        if _stamp_matches(entry, path):
            return
        sha = _verify_file(entry, path)
    except _Failed as e:
        raise DownloadError(
            f"{path}: the cached {entry.name} fails verification ({e}), remove it with "
            f"'{_remove_command(entry)}' (or rm {path}); then "
            f"'ttt3r weights download {entry.name} --force' downloads it again"
        ) from None
    _stamp(entry, path, sha)


def remove_cached(checkpoint: str | Checkpoint) -> list[Path]:
    """Delete a checkpoint's cached file, its verification record and partial downloads.

    Returns the paths removed (empty when nothing was there).
    """
    entry = _entry(checkpoint)
    path = cached_path(entry)
    candidates = [path, _stamp_path(entry), *path.parent.glob(f".{path.name}*.tmp")]
    for uri in entry.urls:
        if uri.startswith(HF_SCHEME):
            file = HubFile.parse(uri)
            folder = cache_root() / "huggingface" / f"models--{file.repo_id.replace('/', '--')}"
            candidates += folder.glob("blobs/*.incomplete")
    removed = []
    for p in candidates:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


# -------------------------------------------------------------------- download


class _FormParser(HTMLParser):
    """Collects forms (action, method, named inputs), confirm links and the title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self.title = ""
        self._form: dict[str, Any] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._form = {
                "id": a.get("id", ""),
                "action": a.get("action", ""),
                "method": a.get("method", "get").lower(),
                "inputs": {},
            }
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            if a.get("type", "text").lower() not in ("submit", "button", "image", "reset"):
                self._form["inputs"][a["name"]] = a.get("value", "")
        elif tag == "a" and "confirm=" in a.get("href", ""):
            self.links.append(a["href"])
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _confirm_request(
    page: bytes, page_url: str, cookies: http.cookiejar.CookieJar
) -> tuple[urllib.request.Request | None, str]:
    """The request that a Google Drive confirmation page asks for, and the page title.

    Understands the current page (a ``<form id="download-form">`` whose hidden
    inputs carry ``id``, ``export``, ``confirm``, ``uuid``), the older page (a
    link with ``confirm=TOKEN``) and the oldest (a ``download_warning`` cookie).
    """
    parser = _FormParser()
    try:
        parser.feed(page.decode("utf-8", errors="replace"))
        parser.close()
    except Exception:  # malformed HTML: treat as "no confirmation form"  # noqa: BLE001
        pass
    title = " ".join(parser.title.split())
    forms = [f for f in parser.forms if f["id"] == "download-form"] or [
        f for f in parser.forms if "confirm" in f["inputs"]
    ]
    if forms:
        form = forms[0]
        action = urllib.parse.urljoin(page_url, form["action"] or page_url)
        data = urllib.parse.urlencode(form["inputs"])
        if form["method"] == "post":
            return urllib.request.Request(action, data=data.encode("ascii"), method="POST"), title
        split = urllib.parse.urlsplit(action)
        query = "&".join(q for q in (split.query, data) if q)
        return urllib.request.Request(urllib.parse.urlunsplit(split._replace(query=query))), title
    if parser.links:
        return urllib.request.Request(urllib.parse.urljoin(page_url, parser.links[0])), title
    for cookie in cookies:
        if cookie.name.startswith("download_warning"):
            split = urllib.parse.urlsplit(page_url)
            params = [
                (k, v)
                for k, v in urllib.parse.parse_qsl(split.query, keep_blank_values=True)
                if k != "confirm"
            ]
            params.append(("confirm", cookie.value or "t"))
            new = split._replace(query=urllib.parse.urlencode(params))
            return urllib.request.Request(urllib.parse.urlunsplit(new)), title
    return None, title


def _looks_like_html(head: bytes) -> bool:
    start = head[:512].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
        start.startswith(b"<") and b"<html" in start
    )


def _progress(total: int | None, desc: str, quiet: bool) -> Any:
    """A byte progress bar (size, rate, ETA) on stderr; a no-op when ``quiet``."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=quiet,
        dynamic_ncols=True,
        leave=True,
    )


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, urllib.error.URLError):
        r = exc.reason
        if isinstance(r, BaseException):
            if isinstance(r, socket.gaierror):
                return f"cannot resolve host (offline?): {r.strerror or r}"
            if isinstance(r, (socket.timeout, TimeoutError)):
                return "timed out"
            return getattr(r, "strerror", None) or str(r) or type(r).__name__
        return str(r)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed early after {len(exc.partial)} more bytes"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class StallGuard:
    """Fails a transfer that receives fewer than ``min_bytes`` within ``limit`` seconds.

    The window restarts each time ``min_bytes`` more have arrived, so a server
    that sends a byte now and then (and so never trips a per-read timeout) is
    still caught. Call :meth:`feed` with each piece received and :meth:`check`
    while waiting; both raise the one-line stall error.
    """

    def __init__(self, limit: float, min_bytes: int | None = None) -> None:
        self.limit = limit
        self.min_bytes = _STALL_BYTES if min_bytes is None else min_bytes
        self.total = 0
        self._mark_bytes = 0
        self._mark_time = time.monotonic()

    def feed(self, n: int) -> None:
        """``n`` more bytes arrived."""
        self.total += n
        if self.total - self._mark_bytes >= self.min_bytes:
            self._mark_bytes, self._mark_time = self.total, time.monotonic()
        else:
            self.check()

    def check(self) -> None:
        """Raise if the current window is over without ``min_bytes`` in it."""
        if time.monotonic() - self._mark_time > self.limit:
            raise _Failed(
                f"stalled: less than {_human_bytes(self.min_bytes)} received in {self.limit:g} s"
            )


def _user_agent() -> str:
    from . import __version__

    return f"ttt3r/{__version__} (python-urllib)"


def _read_piece(response: http.client.HTTPResponse, guard: StallGuard, n: int | None = None) -> bytes:
    """What has arrived (at most ``n`` bytes, default one chunk); ``b""`` at the end or when the
    connection drops."""
    try:
        piece = response.read1(n or _CHUNK_SIZE)
    except (TimeoutError, ConnectionError, http.client.IncompleteRead):
        piece = b""
    if piece:
        guard.feed(len(piece))
    else:
        guard.check()
    return piece


def _read_chunk(response: http.client.HTTPResponse, guard: StallGuard) -> bytes:
    """Up to one full chunk (fewer at the end or when the connection drops)."""
    parts: list[bytes] = []
    got = 0
    while got < _CHUNK_SIZE and (piece := _read_piece(response, guard, _CHUNK_SIZE - got)):
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


def _open_binary(
    opener: urllib.request.OpenerDirector,
    url: str,
    cookies: http.cookiejar.CookieJar,
    timeout: float,
    guard: StallGuard,
) -> tuple[http.client.HTTPResponse, bytes, urllib.request.Request]:
    """Open ``url``, answering confirmation pages, until a binary body starts.

    Returns the response, its first chunk (already read) and the request that
    gave it (a resume repeats that request with a ``Range`` header).
    """
    request = urllib.request.Request(url)
    for _ in range(_MAX_CONFIRM_HOPS + 1):
        request.add_header("User-Agent", _user_agent())
        response = opener.open(request, timeout=timeout)
        first = _read_chunk(response, guard)
        if response.headers.get_content_type() != "text/html" and not _looks_like_html(first):
            return response, first, request
        try:
            page = first + response.read(_MAX_HTML_BYTES - len(first))
        finally:
            response.close()
        next_request, title = _confirm_request(page, response.geturl(), cookies)
        what = f" ({title!r})" if title else ""
        if next_request is None:
            raise _Failed(f"got an HTML page{what} instead of the checkpoint")
        if next_request.full_url == request.full_url and next_request.data == request.data:
            raise _Failed(f"the confirmation page{what} leads back to itself")
        request = next_request
    raise _Failed("too many confirmation pages instead of the checkpoint")


def _resume(
    opener: urllib.request.OpenerDirector, request: urllib.request.Request, offset: int, timeout: float
) -> tuple[http.client.HTTPResponse, bool]:
    """Repeat ``request`` from byte ``offset``; return the response and whether it starts at 0.

    A ``206`` must start exactly at ``offset``; a ``200`` (the server ignores
    ``Range``) is the whole file again.
    """
    again = urllib.request.Request(request.full_url, data=request.data, method=request.get_method())
    again.add_header("User-Agent", _user_agent())
    again.add_header("Range", f"bytes={offset}-")
    response = opener.open(again, timeout=timeout)
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        m = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", content_range.strip())
        if m is None or int(m[1]) != offset:
            response.close()
            raise _Failed(f"asked to resume at byte {offset}, the server sent {content_range!r}")
        return response, False
    if response.headers.get_content_type() == "text/html":
        response.close()
        raise _Failed("got an HTML page instead of the rest of the checkpoint")
    return response, True


def _fetch(entry: Checkpoint, url: str, dest: Path, quiet: bool, timeout: float, stall: float) -> str:
    """Stream ``url`` into ``dest`` atomically, resuming dropped connections; verify it.

    Returns the SHA-256 of what was written.
    """
    guard = StallGuard(stall)
    read_timeout = min(timeout, stall)
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    response, first, request = _open_binary(opener, url, cookies, read_timeout, guard)
    length_header = response.headers.get("Content-Length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    expected = entry.size if entry.size is not None else length
    if entry.size is not None and length is not None and length != entry.size:
        response.close()
        raise _Failed(f"size mismatch: expected {entry.size} bytes, server announces {length}")
    if expected is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dest.parent).free
        if free < expected:
            response.close()
            raise DownloadError(
                f"{dest.parent}: {_human_bytes(free)} free, {entry.filename} needs "
                f"{_human_bytes(expected)}; free space or set {CACHE_ENV} to another folder"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Any raise below removes the temporary file; nothing reaches ``dest``.
    with atomic_path(dest) as tmp, open(tmp, "wb") as f, _progress(expected, entry.filename, quiet) as bar:
        digest = hashlib.sha256()
        got = best = misses = 0
        chunk = first
        try:
            while True:
                while chunk:
                    f.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
                    chunk = _read_piece(response, guard)
                response.close()
                if length is None or got >= length:
                    break
                if got > best:
                    best, misses = got, 0
                misses += 1
                if misses > _MAX_RESUMES:
                    raise _Failed(f"connection closed after {got} of {length} bytes")
                try:
                    response, restart = _resume(opener, request, got, read_timeout)
                except _NETWORK_ERRORS as e:
                    if isinstance(e, urllib.error.HTTPError):
                        e.close()
                    guard.check()
                    continue
                if restart:
                    f.seek(0)
                    f.truncate()
                    bar.update(-got)
                    digest, got = hashlib.sha256(), 0
                chunk = _read_piece(response, guard)
        finally:
            response.close()
        f.flush()
        if length is not None and got != length:
            raise _Failed(f"got {got} bytes, the server announced {length}")
        sha = digest.hexdigest()
        _verify_file(entry, Path(tmp), sha)
    return sha


def _fetch_hub(entry: Checkpoint, uri: str, dest: Path, quiet: bool, timeout: float, stall: float) -> str | None:
    """Download a Hub source through huggingface_hub, verify it and move it to ``dest``.

    The Hub cache (``<root>/huggingface``) only stages the file: once verified
    it is moved out (no second copy of 3 GB); an unverified one is deleted.
    """
    from . import hf_transfer

    try:
        pointer = hf_transfer.fetch(
            HubFile.parse(uri), cache_root() / "huggingface", guard=StallGuard(stall), timeout=timeout, quiet=quiet
        )
    except _Failed:
        raise
    except Exception as e:  # noqa: BLE001 - translated to one line, or re-raised
        why = hf_transfer.describe(e)
        if why is None:
            raise
        raise _Failed(why) from None
    blob = Path(os.path.realpath(pointer))
    try:
        sha = _verify_file(entry, blob)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(blob, dest)
        except OSError as e:  # another file system: copy, still atomically
            if e.errno != errno.EXDEV:
                raise
            with atomic_path(dest) as tmp:
                shutil.copyfile(blob, tmp)
    finally:
        for p in {blob, pointer}:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
    return sha


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _source_label(source: str) -> str:
    if source.startswith(HF_SCHEME):
        from .hf_transfer import host

        return host()
    return urllib.parse.urlsplit(source).netloc or source


def download(
    checkpoint: str | Checkpoint,
    *,
    force: bool = False,
    quiet: bool = False,
    url: str | None = None,
    dest: str | os.PathLike[str] | None = None,
    timeout: float = _DEFAULT_TIMEOUT,
    stall_timeout: float = _DEFAULT_STALL,
) -> Path:
    """Download a known checkpoint into the cache and return its path.

    Args:
        checkpoint: A known name (with or without ``.pth``) or a :class:`Checkpoint`
            (tests pass an entry whose ``urls`` point at a local server).
        force: Download again even if the file is already there.
        quiet: No progress bar.
        url: Use this source (URL or ``hf://`` URI) instead of the entry's ``urls``.
        dest: Save here instead of :func:`cached_path`.
        timeout: Seconds a single read (or the Hub's metadata request) may wait.
        stall_timeout: Seconds within which at least ``_STALL_BYTES`` must
            arrive, however the server trickles; else the source has failed.

    The sources are tried in order; the first that yields a verified file
    (size and hash, or a checkpoint that opens when the hash is unknown) wins.
    The file appears under its final name only when complete and verified.

    Raises:
        TTT3RError: unknown name.
        DownloadError: every source failed, or ``HF_HUB_OFFLINE`` is set (one
            line: the reasons, the manual download link and where to save the file).
    """
    entry = _entry(checkpoint)
    target = Path(dest).expanduser() if dest is not None else cached_path(entry)
    if target.is_file() and not force:
        return target
    if _offline():
        raise DownloadError(
            f"cannot download {entry.filename} (offline: HF_HUB_OFFLINE is set); {_manual_hint(entry, target)}"
        )
    urls = (url,) if url is not None else entry.urls
    reasons: list[tuple[str, str]] = []
    for u in urls:
        fetch = _fetch_hub if u.startswith(HF_SCHEME) else _fetch
        try:
            sha = fetch(entry, u, target, quiet, timeout, stall_timeout)
        except _Failed as e:
            reasons.append((u, str(e)))
            continue
        except _NETWORK_ERRORS as e:
            if isinstance(e, urllib.error.HTTPError):
                e.close()  # an HTTP error response holds the connection open
            reasons.append((u, _reason(e)))
            continue
        except OSError as e:
            if e.filename is not None:  # a local file problem, not the network
                raise DownloadError(f"{e.filename}: {e.strerror or e}") from e
            reasons.append((u, _reason(e)))
            continue
        if target == cached_path(entry):
            _stamp(entry, target, sha)
        return target
    distinct = {r for _, r in reasons}
    if len(distinct) == 1:
        why = distinct.pop()
    else:  # no ";" inside: the text up to the first ";" is the whole reason
        why = ", ".join(f"{_source_label(u)}: {r}" for u, r in reasons)
    why = " ".join(why.split())
    raise DownloadError(f"cannot download {entry.filename} ({why}); {_manual_hint(entry, target)}")


_download = download  # ``resolve_weights`` has a parameter named ``download``


@dataclass(frozen=True)
class CacheStatus:
    """Where a known checkpoint is cached and whether it is there.

    Attributes:
        checkpoint: The table entry.
        path: Its path in the cache.
        present: A file exists at ``path``.
        cached: It exists and has the expected size (when known).
        size: Bytes on disk if present, else the known size, else None.
    """

    checkpoint: Checkpoint
    path: Path
    present: bool
    cached: bool
    size: int | None

    @property
    def size_text(self) -> str:
        """``size`` for people: ``"2.9 GiB"``, or ``"unknown"``."""
        return _human_bytes(self.size) if self.size is not None else "unknown"


def cache_status() -> list[CacheStatus]:
    """One :class:`CacheStatus` per known checkpoint, in table order."""
    out = []
    for entry in KNOWN_CHECKPOINTS.values():
        path = cached_path(entry)
        present = path.is_file()
        size = path.stat().st_size if present else entry.size
        out.append(CacheStatus(entry, path, present, is_cached(entry), size))
    return out
