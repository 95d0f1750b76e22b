"""Known checkpoints, the cache and downloads, against a real HTTP server on loopback.

The server runs in a thread for the duration of one test, answers only
127.0.0.1, and shuts itself down after a minute even if a test hangs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from ttt3r import http_transfer, hub, pipeline, transfer
from ttt3r.cli import main as cli_main
from ttt3r.errors import DownloadError, TTT3RError

DATA = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
MANUAL = "https://example.invalid/manual-download"
HUB_REPO, HUB_REV = "test-owner/tiny", "0123456789abcdef0123456789abcdef01234567"
HUB_PATH = f"/{HUB_REPO}/resolve/{HUB_REV}/tiny_test.pth"
HUB_URI = f"hf://{HUB_REPO}@{HUB_REV}/tiny_test.pth"

_DRIVE_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>
<body><p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="{action}" method="get">
<input type="submit" id="uc-download-link" value="Download anyway"/>
<input type="hidden" name="id" value="ABC">
<input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="u-123">
</form></body></html>"""

_OLD_DRIVE_PAGE = """<html><head><title>Google Drive - Virus scan warning</title></head><body>
<a id="uc-download-link" href="/old-uc?export=download&amp;confirm=AbCd&amp;id=ABC">Download anyway</a>
</body></html>"""

_QUOTA_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>
<body>Too many users have viewed or downloaded this file recently.</body></html>"""


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 5  # seconds a connection may stay silent
    requests: list[str]  # set per server

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, body: bytes, ctype: str, status: int = 200, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _send_ranged(self, body: bytes, drop: bool) -> None:
        """``body`` with ``Range`` support; ``drop``: a request without ``Range`` gets a third, then a hang-up."""
        octet = "application/octet-stream"
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            last = len(body) - 1
            self._send(body[start:], octet, 206, {"Content-Range": f"bytes {start}-{last}/{len(body)}"})
        elif drop:
            self.send_response(200)
            self.send_header("Content-Type", octet)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(body, octet)

    def _trickle(self, body: bytes) -> None:
        """Announce ``body``, then send one byte every 20 ms (never silent for long)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.02)
        except OSError:  # the client gave up
            pass
        self.close_connection = True

    def _hub_headers(self) -> dict[str, str]:
        body = self.server.hub_body  # type: ignore[attr-defined]
        sha = hashlib.sha256(body).hexdigest()
        return {
            "X-Repo-Commit": HUB_REV,
            "ETag": f'"{hashlib.sha1(body).hexdigest()}"',
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(body)),
        }

    def do_HEAD(self) -> None:  # noqa: N802 - http.server API
        """The Hub's metadata request: commit, LFS hash and size, no body."""
        self.server.requests.append("HEAD " + self.path)  # type: ignore[attr-defined]
        if self.path != HUB_PATH or self.server.hub_mode == "down":  # type: ignore[attr-defined]
            self.send_error(503 if self.server.hub_mode == "down" else 404)  # type: ignore[attr-defined]
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(self.server.hub_body)))  # type: ignore[attr-defined]
        for k, v in self._hub_headers().items():
            self.send_header(k, v)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.server.ranges.append(self.headers.get("Range"))  # type: ignore[attr-defined]
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        octet = "application/octet-stream"
        mode = self.server.hub_mode  # type: ignore[attr-defined]
        if url.path == HUB_PATH and mode == "trickle":
            self._trickle(self.server.hub_body)  # type: ignore[attr-defined]
        elif url.path == HUB_PATH:
            self._send_ranged(self.server.hub_body, drop=mode == "drop")  # type: ignore[attr-defined]
        elif url.path == "/drop-once":
            self._send_ranged(DATA, drop=True)
        elif url.path == "/trickle":
            self._trickle(DATA)
        elif url.path == "/file.pth":
            self._send(DATA, octet)
        elif url.path == "/nolength":  # body delimited by closing the connection
            self.send_response(200)
            self.send_header("Content-Type", octet)
            self.end_headers()
            self.wfile.write(DATA)
            self.close_connection = True
        elif url.path == "/truncated":  # announces the full size, sends a third, hangs up
            self.send_response(200)
            self.send_header("Content-Type", octet)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA[: len(DATA) // 3])
            self.wfile.flush()
            self.close_connection = True
        elif url.path == "/uc":  # current Google Drive: confirmation form -> usercontent
            self._send(_DRIVE_PAGE.format(action=f"{base}/download").encode(), "text/html; charset=utf-8")
        elif url.path == "/download":
            if q == {"id": "ABC", "export": "download", "confirm": "t", "uuid": "u-123"}:
                self._send(DATA, octet, headers={"Content-Disposition": 'attachment; filename="x.pth"'})
            else:
                self._send(_DRIVE_PAGE.format(action=f"{base}/download").encode(), "text/html")
        elif url.path == "/old-uc":  # older Drive: a link carrying confirm=TOKEN
            if q.get("confirm") == "AbCd" and q.get("id") == "ABC":
                self._send(DATA, octet)
            else:
                self._send(_OLD_DRIVE_PAGE.encode(), "text/html")
        elif url.path == "/cookie-uc":  # oldest Drive: token only in a download_warning cookie
            if q.get("confirm") == "TOK9" and q.get("id") == "ABC":
                self._send(DATA, octet)
            else:
                cookie = "download_warning_13058876669334088843_ABC=TOK9; Path=/"
                self._send(b"<html><body>scan warning</body></html>", "text/html", headers={"Set-Cookie": cookie})
        elif url.path == "/quota":
            self._send(_QUOTA_PAGE.encode(), "text/html; charset=utf-8")
        elif url.path == "/sniff":  # HTML served with a binary content type
            self._send(_QUOTA_PAGE.encode(), octet)
        elif url.path == "/loop":  # a confirmation form that points at itself forever
            self._send(_DRIVE_PAGE.format(action=f"{base}/loop").encode(), "text/html")
        else:
            self.send_error(404, "Not Found")


_SERVERS: dict[str, http.server.ThreadingHTTPServer] = {}


@pytest.fixture(autouse=True)
def _no_real_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test: the Hub endpoint is a loopback port nobody listens on, unless a test sets it."""
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server: yields (base URL, list of request paths)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.requests = []  # type: ignore[attr-defined]
    srv.ranges = []  # type: ignore[attr-defined]  # the Range header of each GET (None: none)
    srv.hub_body = DATA  # type: ignore[attr-defined]
    srv.hub_mode = "ok"  # type: ignore[attr-defined]  # ok | drop | trickle | down
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60, srv.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        _SERVERS[f"http://127.0.0.1:{srv.server_address[1]}"] = srv
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv.requests  # type: ignore[attr-defined]
    finally:
        watchdog.cancel()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache root via TTT3R_CACHE; returns the checkpoints folder inside it."""
    monkeypatch.setenv("TTT3R_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "checkpoints"


def _entry(*urls: str, size: int | None = None, sha256: str | None = SHA) -> hub.Checkpoint:
    return hub.Checkpoint(
        name="tiny_test",
        filename="tiny_test.pth",
        urls=tuple(urls),
        page_url=MANUAL,
        image_size=224,
        description="a test file",
        size=size,
        sha256=sha256,
    )


def _assert_nothing_left(folder: Path) -> None:
    left = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert left == [], f"files left behind: {left}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the table


def test_known_table_pins_the_hub_then_the_authors_google_drive() -> None:
    assert hub.known_names() == ("cut3r_512_dpt_4_64", "cut3r_224_linear_4")
    big, small = hub.get_checkpoint("cut3r_512_dpt_4_64"), hub.get_checkpoint("cut3r_224_linear_4.pth")
    assert big.page_url == "https://drive.google.com/file/d/1Asz-ZB3FfpzZYwunhQvNPZEUA8XUNAYD/view"
    assert small.page_url == "https://drive.google.com/file/d/11dAgFkWHpaOHsR6iuitlB_v4NFFBrWjy/view"
    assert (big.image_size, small.image_size) == (512, 224)
    # The released 512 file: the Hub first, at a pinned commit, with its published size and hash.
    assert hub.HubFile.parse(big.urls[0]) == hub.HubFile(
        "liguang0115/cut3r", "b14faf986da0df405cff1b41e60e2975c4da2745", "cut3r_512_dpt_4_64.pth"
    )
    assert (big.size, big.sha256) == (3_173_761_006, "45f7e98a0a64dbeb54901ae2b878cd8cd125f20a4497316483f0bd6f109f8103")
    assert (small.size, small.sha256) == (None, None)  # unknown: a download of it is opened before it counts
    for entry, drive in ((big, big.urls[1:]), (small, small.urls)):
        assert entry.filename == f"{entry.name}.pth"
        assert drive[0].startswith("https://drive.usercontent.google.com/download?id=")
        assert "confirm=t" in drive[0]
        assert entry.size is None or entry.size > 0
        assert entry.sha256 is None or len(entry.sha256) == 64
        with pytest.raises(dataclasses.FrozenInstanceError):
            entry.size = 1  # type: ignore[misc]


def test_cache_dir_env_override_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.setenv("TTT3R_CACHE", str(tmp_path))
    assert hub.checkpoint_dir() == tmp_path / "checkpoints"
    assert hub.cached_path("cut3r_512_dpt_4_64.pth") == tmp_path / "checkpoints" / "cut3r_512_dpt_4_64.pth"
    monkeypatch.delenv("TTT3R_CACHE")
    assert hub.checkpoint_dir() == Path(platformdirs.user_cache_dir("ttt3r")) / "checkpoints"


# ----------------------------------------------------------------- downloads


def test_download_streams_verifies_and_renames(server, cache: Path) -> None:
    base, requests = server
    entry = _entry(f"{base}/file.pth", size=len(DATA), sha256=SHA)
    path = hub.download(entry, quiet=True)
    assert path == cache / "tiny_test.pth"
    assert path.read_bytes() == DATA
    assert sorted(p.name for p in cache.iterdir()) == ["tiny_test.pth"]  # no temp file left
    # Cached: no second request; --force fetches again.
    assert hub.download(entry, quiet=True) == path
    assert requests == ["/file.pth"]
    hub.download(entry, quiet=True, force=True)
    assert requests == ["/file.pth", "/file.pth"]


def test_progress_bar_on_stderr_unless_quiet(server, cache: Path, capsys: pytest.CaptureFixture) -> None:
    base, _ = server
    hub.download(_entry(f"{base}/file.pth"), quiet=False)
    err = capsys.readouterr().err
    assert "tiny_test.pth" in err and "293k" in err.lower()  # 300000 B in KiB units
    hub.download(_entry(f"{base}/file.pth"), quiet=True, force=True)
    assert capsys.readouterr().err == ""


def test_url_override_and_dest(server, tmp_path: Path, cache: Path) -> None:
    base, _ = server
    dest = tmp_path / "elsewhere" / "x.pth"
    entry = _entry("http://127.0.0.1:9/never-used")
    assert hub.download(entry, url=f"{base}/file.pth", dest=dest, quiet=True) == dest
    assert dest.read_bytes() == DATA
    assert not cache.exists()


def test_sha256_mismatch_is_refused_and_nothing_kept(server, cache: Path) -> None:
    base, _ = server
    wrong = "0" * 64
    with pytest.raises(DownloadError) as exc:
        hub.download(_entry(f"{base}/file.pth", sha256=wrong), quiet=True)
    msg = str(exc.value)
    assert f"expected {wrong}" in msg and f"got {SHA}" in msg
    assert "\n" not in msg
    _assert_nothing_left(cache)


@pytest.mark.parametrize("route", ["file.pth", "nolength"])
def test_size_mismatch_is_refused_and_nothing_kept(server, cache: Path, route: str) -> None:
    base, _ = server
    with pytest.raises(DownloadError) as exc:
        hub.download(_entry(f"{base}/{route}", size=len(DATA) + 1), quiet=True)
    msg = str(exc.value)
    assert f"expected {len(DATA) + 1}" in msg and str(len(DATA)) in msg
    _assert_nothing_left(cache)


def test_close_delimited_body_without_content_length(server, cache: Path) -> None:
    base, _ = server
    path = hub.download(_entry(f"{base}/nolength", size=len(DATA), sha256=SHA), quiet=True)
    assert path.read_bytes() == DATA


def test_http_404_gives_one_line_with_link_and_path(server, cache: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError) as exc:
        hub.download(_entry(f"{base}/missing.pth"), quiet=True)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "HTTP 404" in msg
    assert MANUAL in msg
    assert str(cache / "tiny_test.pth") in msg
    assert "--weights PATH" in msg
    _assert_nothing_left(cache)


def test_connection_refused_gives_one_line_with_link_and_path(cache: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/file.pth"
    with pytest.raises(DownloadError) as exc:
        hub.download(_entry(url), quiet=True, timeout=5)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "refused" in msg.lower()
    assert MANUAL in msg and str(cache / "tiny_test.pth") in msg and "--weights PATH" in msg
    _assert_nothing_left(cache)


def test_falls_back_to_the_next_url(server, cache: Path) -> None:
    base, requests = server
    path = hub.download(_entry(f"{base}/missing.pth", f"{base}/file.pth", sha256=SHA), quiet=True)
    assert path.read_bytes() == DATA
    assert requests == ["/missing.pth", "/file.pth"]


def test_all_urls_failing_lists_each_reason(server, cache: Path) -> None:
    base, _ = server
    refused = f"http://127.0.0.1:{_free_port()}/x"
    with pytest.raises(DownloadError) as exc:
        hub.download(_entry(f"{base}/missing.pth", refused), quiet=True, timeout=5)
    msg = str(exc.value)
    assert "HTTP 404" in msg and "refused" in msg.lower() and "\n" not in msg


@pytest.mark.parametrize(
    ("route", "followed"),
    [
        ("uc?export=download&id=ABC", "/download?id=ABC&export=download&confirm=t&uuid=u-123"),
        ("old-uc?export=download&id=ABC", "/old-uc?export=download&confirm=AbCd&id=ABC"),
        ("cookie-uc?export=download&id=ABC", "/cookie-uc?export=download&id=ABC&confirm=TOK9"),
    ],
    ids=["form", "link", "cookie"],
)
def test_google_drive_confirmation_page_is_followed(server, cache: Path, route: str, followed: str) -> None:
    base, requests = server
    path = hub.download(_entry(f"{base}/{route}", size=len(DATA), sha256=SHA), quiet=True)
    assert path.read_bytes() == DATA
    assert requests == [f"/{route}", followed]
    assert sorted(p.name for p in cache.iterdir()) == ["tiny_test.pth"]


@pytest.mark.parametrize("route", ["quota", "sniff"])
def test_html_instead_of_binary_is_an_error(server, cache: Path, route: str) -> None:
    base, _ = server
    with pytest.raises(DownloadError) as exc:
        hub.download(_entry(f"{base}/{route}"), quiet=True)
    msg = str(exc.value)
    assert "HTML page" in msg and "Quota exceeded" in msg and MANUAL in msg and "\n" not in msg
    _assert_nothing_left(cache)


def test_confirmation_loop_is_bounded(server, cache: Path) -> None:
    base, requests = server
    with pytest.raises(DownloadError, match="confirmation page"):
        hub.download(_entry(f"{base}/loop"), quiet=True)
    assert len(requests) <= 4
    _assert_nothing_left(cache)


def test_connection_dropped_mid_stream_leaves_no_file(server, cache: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError) as exc:
        hub.download(_entry(f"{base}/truncated"), quiet=True)
    assert "\n" not in str(exc.value)
    _assert_nothing_left(cache)


def test_ctrl_c_mid_stream_leaves_no_file(server, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = server
    written: list[int] = []

    class _InterruptingBar:
        def __init__(self, *a: object, **k: object) -> None:
            pass

        def __enter__(self) -> _InterruptingBar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            written.append(n)
            # The partial download exists only as a temporary file beside the final name.
            assert [p.name.endswith(".tmp") for p in cache.iterdir()] == [True]
            raise KeyboardInterrupt

    monkeypatch.setattr(http_transfer, "_CHUNK_SIZE", 64 * 1024)
    monkeypatch.setattr(http_transfer, "_progress", _InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        hub.download(_entry(f"{base}/file.pth"), quiet=True)
    assert written == [64 * 1024]  # it was interrupted mid-file, after the first chunk
    _assert_nothing_left(cache)


# ----------------------------------------------------------- resolve_weights


def test_resolve_existing_paths_as_is(tmp_path: Path, cache: Path) -> None:
    f = tmp_path / "my.pth"
    f.write_bytes(b"x")
    assert hub.resolve_weights(f) == f
    assert hub.resolve_weights(str(f)) == f
    assert hub.resolve_weights(tmp_path) == tmp_path  # a directory (e.g. converted weights)


def test_resolve_known_name_downloads_once(server, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, requests = server
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, "tiny_test", _entry(f"{base}/file.pth", sha256=SHA))
    with pytest.raises(DownloadError) as exc:
        hub.resolve_weights("tiny_test", download=False)
    assert MANUAL in str(exc.value) and str(cache / "tiny_test.pth") in str(exc.value)
    assert requests == []
    path = hub.resolve_weights("tiny_test", quiet=True)
    assert path == cache / "tiny_test.pth" and path.read_bytes() == DATA
    assert hub.resolve_weights("tiny_test.pth", download=False) == path
    assert requests == ["/file.pth"]


def test_resolve_wrong_size_in_cache_is_reported(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, "tiny_test", _entry("http://127.0.0.1:9/x", size=10))
    cache.mkdir(parents=True)
    (cache / "tiny_test.pth").write_bytes(b"short")
    assert not hub.is_cached("tiny_test")
    with pytest.raises(DownloadError, match="--force"):
        hub.resolve_weights("tiny_test")


def test_resolve_unknown_lists_known_names(cache: Path) -> None:
    with pytest.raises(TTT3RError) as exc:
        hub.resolve_weights("no_such_model")
    msg = str(exc.value)
    assert "no_such_model" in msg and "cut3r_512_dpt_4_64" in msg and "cut3r_224_linear_4" in msg
    with pytest.raises(TTT3RError, match="known names"):
        hub.get_checkpoint("nope")


# ---------------------------------------------------------------------- CLI


def test_cli_list_path_download(server, cache: Path, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    base, _ = server
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, "tiny_test", _entry(f"{base}/file.pth", size=len(DATA)))
    dest = cache / "tiny_test.pth"

    assert cli_main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache}" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("tiny_test"))
    assert line.split()[1:4] == ["224", "293.0", "KiB"] and " no " in line and line.endswith(str(dest))
    assert "cut3r_512_dpt_4_64" in out and "cut3r_224_linear_4" in out

    assert cli_main(["weights", "path", "tiny_test.pth"]) == 0
    assert capsys.readouterr().out.strip() == str(dest)

    assert cli_main(["weights", "download", "tiny_test", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"tiny_test: saved to {dest}"
    assert dest.read_bytes() == DATA

    assert cli_main(["weights", "download", "tiny_test", "-q"]) == 0
    assert "already cached" in capsys.readouterr().out
    assert cli_main(["weights", "download", "tiny_test", "-q", "--force"]) == 0
    assert "saved to" in capsys.readouterr().out

    assert cli_main(["weights", "list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tiny_test"))
    assert " yes " in line


def test_cli_errors_are_one_line(server, cache: Path, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    base, _ = server
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, "tiny_test", _entry(f"{base}/missing.pth"))
    assert cli_main(["weights", "download", "tiny_test", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ttt3r weights: error: cannot download tiny_test.pth (HTTP 404")
    assert "\n" not in err and MANUAL in err

    assert cli_main(["weights", "path", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bogus" in err and "cut3r_512_dpt_4_64" in err and "\n" not in err

    assert cli_main(["weights"]) == 2  # no action: argparse usage error
    assert "usage: ttt3r weights" in capsys.readouterr().err


# ------------------------------------------------- the Hub, resume, stalls, verification


def _hub_entry(*drive: str, size: int | None = len(DATA), sha256: str | None = SHA) -> hub.Checkpoint:
    return dataclasses.replace(_entry(HUB_URI, *drive), size=size, sha256=sha256)


@pytest.fixture
def hub_server(server, monkeypatch: pytest.MonkeyPatch):
    """The loopback server as the Hub (``HF_ENDPOINT``): yields (base URL, the server)."""
    base, _ = server
    monkeypatch.setenv("HF_ENDPOINT", base)
    return base, _SERVERS[base]


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _blobs(cache: Path) -> list[str]:
    return [f for f in _files_under(cache.parent / "huggingface") if "/blobs/" in f or "/snapshots/" in f]


def test_hub_download_verified_into_the_cache(hub_server, cache: Path, tmp_path: Path) -> None:
    from huggingface_hub import constants

    base, srv = hub_server
    hf_home = Path(constants.HF_HOME)  # ~/.cache/huggingface unless HF_HOME says otherwise
    before = _files_under(hf_home)
    path = hub.download(_hub_entry(), quiet=True)
    assert _files_under(hf_home) == before  # no token read, no telemetry file, no Hub cache there
    assert path == cache / "tiny_test.pth" and path.read_bytes() == DATA
    assert srv.requests == [f"HEAD {HUB_PATH}", HUB_PATH]
    assert sorted(p.name for p in cache.iterdir()) == ["tiny_test.pth"]
    # The Hub's cache is inside ttt3r's; it only staged the file (moved out, no second copy).
    assert (cache.parent / "huggingface" / "models--test-owner--tiny").is_dir()
    assert _blobs(cache) == []
    # Verified while downloading: resolving it does not hash the file again.
    assert hub.resolve_weights(path) == path


def test_hub_wrong_hash_refused_and_nothing_cached(hub_server, cache: Path) -> None:
    wrong = "f" * 64
    with pytest.raises(DownloadError) as exc:
        hub.download(_hub_entry(sha256=wrong), quiet=True)
    msg = str(exc.value)
    assert f"SHA-256 mismatch: expected {wrong}, got {SHA}" in msg and "\n" not in msg
    assert MANUAL in msg and str(cache / "tiny_test.pth") in msg
    _assert_nothing_left(cache)
    assert _blobs(cache) == []


def test_hub_wrong_size_refused_and_nothing_cached(hub_server, cache: Path) -> None:
    with pytest.raises(DownloadError) as exc:
        hub.download(_hub_entry(size=len(DATA) + 1), quiet=True)
    assert f"size mismatch: expected {len(DATA) + 1} bytes, got {len(DATA)}" in str(exc.value)
    _assert_nothing_left(cache)
    assert _blobs(cache) == []


def test_hub_interrupted_download_is_resumed_with_range(hub_server, cache: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    _, srv = hub_server
    srv.hub_mode = "drop"  # the first GET sends a third of the file, then hangs up
    # huggingface_hub writes whole pieces (10 MiB); 20 kB pieces: the third sent is 5 of them.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 20_000)
    path = hub.download(_hub_entry(), quiet=False)  # with huggingface_hub's own progress bar
    assert path.read_bytes() == DATA
    assert srv.ranges == [None, f"bytes={len(DATA) // 3}-"]


def test_drive_interrupted_download_is_resumed_with_range(server, cache: Path) -> None:
    base, requests = server
    path = hub.download(_entry(f"{base}/drop-once", size=len(DATA)), quiet=True)
    assert path.read_bytes() == DATA
    assert requests == ["/drop-once", "/drop-once"]
    assert _SERVERS[base].ranges == [None, f"bytes={len(DATA) // 3}-"]
    assert sorted(p.name for p in cache.iterdir()) == ["tiny_test.pth"]


@pytest.mark.parametrize("where", ["hub", "drive"])
def test_a_trickling_server_hits_the_stall_limit(hub_server, cache: Path, monkeypatch, where: str) -> None:
    base, srv = hub_server
    srv.hub_mode = "trickle"  # a byte every 20 ms: no read ever times out
    monkeypatch.setattr(transfer, "_STALL_BYTES", 4096)
    entry = _hub_entry() if where == "hub" else _entry(f"{base}/trickle")
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as exc:
        hub.download(entry, quiet=True, timeout=5, stall_timeout=0.5)
    assert time.monotonic() - t0 < 5  # the stall limit, not a read timeout, ended it
    msg = str(exc.value)
    assert "stalled: less than 4.0 KiB received in 0.5 s" in msg and "\n" not in msg
    _assert_nothing_left(cache)
    assert _blobs(cache) == []


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Skip the waits of huggingface_hub's back-off (about 23 s before it calls the Hub down)."""
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


def test_hub_down_falls_back_to_drive(server, cache: Path, no_backoff: list[float]) -> None:
    base, requests = server  # HF_ENDPOINT: the autouse fixture's dead port
    path = hub.download(_hub_entry(f"{base}/file.pth"), quiet=True)
    assert path.read_bytes() == DATA and requests == ["/file.pth"]
    assert len(no_backoff) >= 3  # the Hub was tried, and retried, first


def test_an_unresolvable_hub_is_not_retried(server, cache: Path, no_backoff: list[float], monkeypatch) -> None:
    """Offline (the Hub's name does not resolve): no request and no back-off, straight to Drive."""
    import huggingface_hub

    base, requests = server
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.invalid")
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "hub.example.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    called: list = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: called.append(a))
    path = hub.download(_hub_entry(f"{base}/file.pth"), quiet=True)
    assert path.read_bytes() == DATA and requests == ["/file.pth"]
    assert called == [] and no_backoff == []
    path.unlink()
    with pytest.raises(DownloadError, match=r"hub\.example\.invalid: cannot resolve host \(offline\?\)"):
        hub.download(_hub_entry(f"{base}/missing.pth"), quiet=True)


def test_hub_error_then_drive_error_lists_both(hub_server, cache: Path, no_backoff: list[float]) -> None:
    base, srv = hub_server
    srv.hub_mode = "down"
    with pytest.raises(DownloadError) as exc:
        hub.download(_hub_entry(f"{base}/missing.pth"), quiet=True)
    msg = str(exc.value)
    host = base.removeprefix("http://")
    assert f"({host}: HTTP 503" in msg and f", {host}: HTTP 404" in msg
    assert msg.index(";") > msg.index("HTTP 404")  # the reasons come before the first ";"
    assert MANUAL in msg and "\n" not in msg


def test_hf_hub_offline_downloads_nothing(server, cache: Path, monkeypatch) -> None:
    base, requests = server
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="offline: HF_HUB_OFFLINE is set") as exc:
        hub.download(_hub_entry(f"{base}/file.pth"), quiet=True)
    assert MANUAL in str(exc.value) and requests == []
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, "tiny_test", _hub_entry(f"{base}/file.pth"))
    cache.mkdir(parents=True)
    (cache / "tiny_test.pth").write_bytes(DATA)
    assert hub.resolve_weights("tiny_test") == cache / "tiny_test.pth"  # the cache still answers
    assert requests == []


def _tiny_checkpoint() -> bytes:
    import io

    import torch

    from ttt3r.config import ModelConfig

    buf = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(4)}, "args": {"model": ModelConfig().to_constructor()}}, buf)
    return buf.getvalue()


def test_unknown_hash_a_checkpoint_is_opened_before_it_counts(hub_server, cache: Path) -> None:
    _, srv = hub_server
    srv.hub_body = _tiny_checkpoint()
    path = hub.download(_hub_entry(size=None, sha256=None), quiet=True)
    assert path.read_bytes() == srv.hub_body
    srv.hub_body = DATA  # random bytes: not a checkpoint
    with pytest.raises(DownloadError) as exc:
        hub.download(_hub_entry(size=None, sha256=None), quiet=True, force=True)
    assert "not a readable checkpoint" in str(exc.value)
    assert path.read_bytes() == _tiny_checkpoint()  # the good copy was not replaced
    assert _blobs(cache) == []


def test_cached_corrupt_file_reported_with_remove_command(cache: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, "tiny_test", _entry("http://127.0.0.1:9/x", size=len(DATA)))
    cache.mkdir(parents=True)
    bad = cache / "tiny_test.pth"
    bad.write_bytes(bytes(len(DATA)))  # right size, wrong content
    with pytest.raises(DownloadError) as exc:
        hub.resolve_weights("tiny_test")
    first = str(exc.value).split(";")[0]
    assert f"SHA-256 mismatch: expected {SHA}" in first and str(bad) in first
    assert "'ttt3r weights remove tiny_test'" in first
    assert cli_main(["weights", "download", "tiny_test", "-q"]) == 2  # not "already cached"
    err = capsys.readouterr().err
    assert "fails verification" in err and "'ttt3r weights remove tiny_test'" in err and "\n" not in err.strip()
    assert cli_main(["weights", "remove", "tiny_test"]) == 0
    assert capsys.readouterr().out.strip() == f"tiny_test: removed {bad}"
    assert not bad.exists()
    assert cli_main(["weights", "remove", "tiny_test"]) == 0
    assert "tiny_test: not cached" in capsys.readouterr().out


def test_cached_file_is_hashed_once(cache: Path, monkeypatch) -> None:
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, "tiny_test", _entry("http://127.0.0.1:9/x", size=len(DATA)))
    cache.mkdir(parents=True)
    (cache / "tiny_test.pth").write_bytes(DATA)  # put there by hand
    hashed: list[Path] = []
    real = hub._sha256_file
    monkeypatch.setattr(hub, "_sha256_file", lambda p: hashed.append(p) or real(p))
    assert hub.resolve_weights("tiny_test") == cache / "tiny_test.pth"
    assert hub.resolve_weights("tiny_test") == cache / "tiny_test.pth"
    assert hashed == [cache / "tiny_test.pth"]
    (cache / "tiny_test.pth").write_bytes(bytes(len(DATA)))  # changed since: checked again
    with pytest.raises(DownloadError, match="fails verification"):
        hub.resolve_weights("tiny_test")


def test_default_weights_fall_back_to_bundled_with_the_remove_notice(cache: Path, monkeypatch) -> None:
    name = pipeline.DEFAULT_RELEASED
    small = dataclasses.replace(hub.get_checkpoint(name), urls=("http://127.0.0.1:9/x",), size=len(DATA), sha256=SHA)
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, name, small)
    cache.mkdir(parents=True)
    (cache / f"{name}.pth").write_bytes(DATA[::-1])  # corrupt
    notices: list[str] = []
    assert pipeline.choose_weights(None, quiet=True, notice=notices.append) == str(pipeline.BUNDLED_MODEL)
    assert len(notices) == 1 and "bundled small model" in notices[0]
    assert "fails verification (SHA-256 mismatch" in notices[0] and f"ttt3r weights remove {name}" in notices[0]


def test_hub_ctrl_c_leaves_no_partial_file(hub_server, cache: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 20_000)
    partials: list[list[str]] = []

    def interrupt(self: transfer.StallGuard, n: int) -> None:
        partials.append([f for f in _files_under(cache.parent / "huggingface") if f.endswith(".incomplete")])
        raise KeyboardInterrupt

    monkeypatch.setattr(transfer.StallGuard, "feed", interrupt)
    with pytest.raises(KeyboardInterrupt):
        hub.download(_hub_entry(), quiet=True)
    assert len(partials) == 1 and len(partials[0]) == 1  # interrupted while its partial file existed
    _assert_nothing_left(cache)
    assert [f for f in _files_under(cache.parent / "huggingface") if "/blobs/" in f] == []


def test_remove_deletes_what_a_killed_download_left(cache: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(hub.KNOWN_CHECKPOINTS, "tiny_test", _hub_entry("http://127.0.0.1:9/x"))
    blobs = cache.parent / "huggingface" / "models--test-owner--tiny" / "blobs"
    blobs.mkdir(parents=True)
    cache.mkdir(parents=True)
    left = [cache / ".tiny_test.pth.k1ll3d.tmp", blobs / f"{SHA}.1234abcd.incomplete"]
    for p in left:
        p.write_bytes(DATA[:1000])
    (cache / "other.pth").write_bytes(b"x")  # not this checkpoint's: kept
    assert cli_main(["weights", "remove", "tiny_test"]) == 0
    out = capsys.readouterr().out
    assert all(str(p) in out for p in left) and not any(p.exists() for p in left)
    assert (cache / "other.pth").exists()
