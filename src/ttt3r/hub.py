"""Known checkpoints, the user cache, and downloading them.

The CUT3R authors publish two checkpoints on Google Drive (see
https://github.com/CUT3R/CUT3R#download-checkpoints); their README lists no
other mirror. :data:`KNOWN_CHECKPOINTS` describes them; :func:`resolve_weights`
turns a ``--weights`` argument (a path or a known name) into a local file,
downloading a known checkpoint into the cache on first use.

Cache location
    ``platformdirs.user_cache_dir("ttt3r") / "checkpoints"`` (on Linux
    ``~/.cache/ttt3r/checkpoints``). The environment variable ``TTT3R_CACHE``
    replaces the *parent* (the ttt3r cache root): with ``TTT3R_CACHE=/data/ttt3r``
    checkpoints live in ``/data/ttt3r/checkpoints``.

Downloads
    Streamed with :mod:`urllib` into a temporary file beside the final one,
    checked against the known size and SHA-256 (when known), then renamed into
    place with :func:`os.replace`; an interrupted or failed download never
    leaves a file under the final name. Google Drive's "can't scan this file
    for viruses" HTML page is answered by following its confirmation form; an
    HTML page that is not such a form (quota exceeded, access denied) is an
    error, never saved as a checkpoint. Any failure is one
    :class:`~ttt3r.errors.DownloadError` line that gives the manual download
    link and the exact path to save the file to.
"""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import os
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import DownloadError, TTT3RError
from .io.atomic import atomic_open

__all__ = [
    "CACHE_ENV",
    "KNOWN_CHECKPOINTS",
    "Checkpoint",
    "CacheStatus",
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
    "resolve_weights",
]

#: Environment variable replacing the ttt3r cache root: checkpoints go in ``$TTT3R_CACHE/checkpoints``.
CACHE_ENV = "TTT3R_CACHE"

_CHUNK_SIZE = 1 << 20  # bytes per read while streaming
_MAX_HTML_BYTES = 2 << 20  # an HTML page bigger than this is not a confirmation page
_MAX_CONFIRM_HOPS = 3  # confirmation pages followed before giving up
_DEFAULT_TIMEOUT = 30.0  # seconds without data before a download is abandoned
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
        urls: Download URLs, tried in order.
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


# Sizes and hashes are None: the authors publish neither, and no download was
# possible when this table was written. Fill them in only from a verified copy.
_CUT3R_512_ID = "1Asz-ZB3FfpzZYwunhQvNPZEUA8XUNAYD"
_CUT3R_224_ID = "11dAgFkWHpaOHsR6iuitlB_v4NFFBrWjy"

#: name -> :class:`Checkpoint`, for every checkpoint ``resolve_weights`` can download.
KNOWN_CHECKPOINTS: dict[str, Checkpoint] = {
    c.name: c
    for c in (
        Checkpoint(
            name="cut3r_512_dpt_4_64",
            filename="cut3r_512_dpt_4_64.pth",
            urls=drive_download_urls(_CUT3R_512_ID),
            page_url=drive_view_url(_CUT3R_512_ID),
            image_size=512,
            description="CUT3R final model: 512px (several aspect ratios), DPT head, 4-64 views",
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
            where to put it.
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
        if entry.size is not None and dest.stat().st_size != entry.size:
            raise DownloadError(
                f"{dest}: has {dest.stat().st_size} bytes, expected {entry.size}; "
                f"delete it or run 'ttt3r weights download {entry.name} --force'"
            )
        return dest
    if not download:
        raise DownloadError(f"{entry.filename} is not in the cache; {_manual_hint(entry, dest)}")
    return _download(entry, quiet=quiet)


# -------------------------------------------------------------------- download


class _Failed(Exception):
    """One URL did not give the checkpoint; the message is a short reason."""


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


def _open_binary(
    opener: urllib.request.OpenerDirector,
    url: str,
    cookies: http.cookiejar.CookieJar,
    timeout: float,
) -> tuple[http.client.HTTPResponse, bytes]:
    """Open ``url``, answering confirmation pages, until a binary body starts.

    Returns the response and its first chunk (already read).
    """
    from . import __version__

    request = urllib.request.Request(url)
    for _ in range(_MAX_CONFIRM_HOPS + 1):
        request.add_header("User-Agent", f"ttt3r/{__version__} (python-urllib)")
        response = opener.open(request, timeout=timeout)
        first = response.read(_CHUNK_SIZE)
        if response.headers.get_content_type() != "text/html" and not _looks_like_html(first):
            return response, first
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


def _fetch(entry: Checkpoint, url: str, dest: Path, quiet: bool, timeout: float) -> None:
    """Stream ``url`` into ``dest`` atomically, verifying size and SHA-256 when known."""
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    response, first = _open_binary(opener, url, cookies, timeout)
    with response:
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        expected = entry.size if entry.size is not None else length
        if entry.size is not None and length is not None and length != entry.size:
            raise _Failed(f"size mismatch: expected {entry.size} bytes, server announces {length}")
        if expected is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(dest.parent).free
            if free < expected:
                raise DownloadError(
                    f"{dest.parent}: {_human_bytes(free)} free, {entry.filename} needs "
                    f"{_human_bytes(expected)}; free space or set {CACHE_ENV} to another folder"
                )
        digest = hashlib.sha256()
        got = 0
        with atomic_open(dest, "wb") as f, _progress(expected, entry.filename, quiet) as bar:
            chunk = first
            while chunk:
                f.write(chunk)
                digest.update(chunk)
                got += len(chunk)
                bar.update(len(chunk))
                chunk = response.read(_CHUNK_SIZE)
            # Any raise below removes the temporary file; nothing reaches ``dest``.
            if length is not None and got != length:
                raise _Failed(f"connection closed after {got} of {length} bytes")
            if entry.size is not None and got != entry.size:
                raise _Failed(f"size mismatch: expected {entry.size} bytes, got {got}")
            sha = digest.hexdigest()
            if entry.sha256 is not None and sha != entry.sha256.lower():
                raise _Failed(f"SHA-256 mismatch: expected {entry.sha256.lower()}, got {sha}")


def download(
    checkpoint: str | Checkpoint,
    *,
    force: bool = False,
    quiet: bool = False,
    url: str | None = None,
    dest: str | os.PathLike[str] | None = None,
    timeout: float = _DEFAULT_TIMEOUT,
) -> Path:
    """Download a known checkpoint into the cache and return its path.

    Args:
        checkpoint: A known name (with or without ``.pth``) or a :class:`Checkpoint`
            (tests pass an entry whose ``urls`` point at a local server).
        force: Download again even if the file is already there.
        quiet: No progress bar.
        url: Use this URL instead of the entry's ``urls``.
        dest: Save here instead of :func:`cached_path`.
        timeout: Seconds to wait for the server before giving up.

    The entry's URLs are tried in order; the first that yields a file of the
    right size and hash wins. The file appears under its final name only when
    complete and verified.

    Raises:
        TTT3RError: unknown name.
        DownloadError: every URL failed (one line: the reasons, the manual
            download link and where to save the file).
    """
    entry = _entry(checkpoint)
    target = Path(dest).expanduser() if dest is not None else cached_path(entry)
    if target.is_file() and not force:
        return target
    urls = (url,) if url is not None else entry.urls
    reasons: list[tuple[str, str]] = []
    for u in urls:
        try:
            _fetch(entry, u, target, quiet, timeout)
            return target
        except _Failed as e:
            reasons.append((u, str(e)))
        except _NETWORK_ERRORS as e:
            if isinstance(e, urllib.error.HTTPError):
                e.close()  # an HTTP error response holds the connection open
            reasons.append((u, _reason(e)))
        except OSError as e:
            if e.filename is not None:  # a local file problem, not the network
                raise DownloadError(f"{e.filename}: {e.strerror or e}") from e
            reasons.append((u, _reason(e)))
    distinct = {r for _, r in reasons}
    if len(distinct) == 1:
        why = distinct.pop()
    else:
        why = "; ".join(f"{urllib.parse.urlsplit(u).netloc or u}: {r}" for u, r in reasons)
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
