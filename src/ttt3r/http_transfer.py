"""One file over plain HTTP(S), Google Drive's confirmation pages included.

:func:`fetch` streams a URL into a temporary file beside the destination and
renames it into place only once the caller's ``verify`` has accepted it. On
the way:

* Google Drive's "can't scan this file for viruses" page is answered by
  following its confirmation form (current form, older ``confirm=`` link,
  oldest ``download_warning`` cookie); any other HTML page (quota exceeded,
  access denied) is a failure, never saved.
* A connection that drops mid-file is resumed with a ``Range`` request that
  repeats the request that gave the file (up to :data:`_MAX_RESUMES` times in
  a row without new data); a ``200`` answer (``Range`` ignored) starts the
  file again. A failure or Ctrl-C removes the temporary file, as
  ``huggingface_hub`` does with its own.
* Reads return what has arrived (``read1``), so the stall limit
  (:class:`ttt3r.transfer.StallGuard`) sees a server that trickles; each read
  waits at most ``min(timeout, stall)`` seconds.
"""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import DownloadError
from .io.atomic import atomic_path
from .transfer import StallGuard, TransferFailed, human_bytes

_CHUNK_SIZE = 1 << 20  # bytes per read while streaming
_MAX_HTML_BYTES = 2 << 20  # an HTML page bigger than this is not a confirmation page
_MAX_CONFIRM_HOPS = 3  # confirmation pages followed before giving up
_MAX_RESUMES = 5  # Range requests in a row without new data before giving up
#: Errors of the network (not of local files) that make one URL fail.
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


def drive_view_url(file_id: str) -> str:
    """The Google Drive page a person opens in a browser to download ``file_id``."""
    return f"https://drive.google.com/file/d/{file_id}/view"


def drive_download_urls(file_id: str) -> tuple[str, ...]:
    """Direct download URLs for a public Google Drive file, best first.

    The ``drive.usercontent.google.com`` URL with ``confirm=t`` skips the
    virus-scan page for large files; the classic ``uc`` URL serves that page,
    whose form :func:`fetch` follows.
    """
    q = urllib.parse.quote(file_id, safe="")
    return (
        f"https://drive.usercontent.google.com/download?id={q}&export=download&confirm=t",
        f"https://drive.google.com/uc?export=download&id={q}",
    )


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
    from .progress import progress_bar

    return progress_bar(total, desc, enabled=not quiet, scale_bytes=True)


def describe(exc: BaseException) -> str:
    """A short reason for one of :data:`NETWORK_ERRORS` (or another ``OSError``)."""
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
            raise TransferFailed(f"got an HTML page{what} instead of the checkpoint")
        if next_request.full_url == request.full_url and next_request.data == request.data:
            raise TransferFailed(f"the confirmation page{what} leads back to itself")
        request = next_request
    raise TransferFailed("too many confirmation pages instead of the checkpoint")


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
            raise TransferFailed(f"asked to resume at byte {offset}, the server sent {content_range!r}")
        return response, False
    if response.headers.get_content_type() == "text/html":
        response.close()
        raise TransferFailed("got an HTML page instead of the rest of the checkpoint")
    return response, True


def fetch(
    url: str,
    dest: Path,
    *,
    name: str,
    size: int | None,
    verify: Callable[[Path, str], None],
    quiet: bool,
    timeout: float,
    stall: float,
) -> str:
    """Stream ``url`` into ``dest`` atomically, resuming dropped connections; return its SHA-256.

    Args:
        name: The file's name in the progress bar and messages.
        size: The expected size in bytes, or None (checked before and after).
        verify: Called with the complete temporary file and its SHA-256; it
            raises :class:`TransferFailed` to refuse it.
        timeout: Seconds a single read may wait.
        stall: The stall limit (:class:`StallGuard`), seconds.

    Raises:
        TransferFailed: this URL did not give the file (short reason).
        DownloadError: not enough disk space (no other URL can help).
        NETWORK_ERRORS: see :func:`describe`.
    """
    guard = StallGuard(stall)
    read_timeout = min(timeout, stall)
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    response, first, request = _open_binary(opener, url, cookies, read_timeout, guard)
    length_header = response.headers.get("Content-Length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    expected = size if size is not None else length
    if size is not None and length is not None and length != size:
        response.close()
        raise TransferFailed(f"size mismatch: expected {size} bytes, server announces {length}")
    if expected is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(dest.parent).free
        if free < expected:
            response.close()
            raise DownloadError(
                f"{dest.parent}: {human_bytes(free)} free, {name} needs "
                f"{human_bytes(expected)}; free space or set TTT3R_CACHE to another folder"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Any raise below removes the temporary file; nothing reaches ``dest``.
    with atomic_path(dest) as tmp, open(tmp, "wb") as f, _progress(expected, name, quiet) as bar:
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
                    raise TransferFailed(f"connection closed after {got} of {length} bytes")
                try:
                    response, restart = _resume(opener, request, got, read_timeout)
                except NETWORK_ERRORS as e:
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
            raise TransferFailed(f"got {got} bytes, the server announced {length}")
        sha = digest.hexdigest()
        verify(Path(tmp), sha)
    return sha
