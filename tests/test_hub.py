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
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from ttt3r import hub
from ttt3r.cli import main as cli_main
from ttt3r.errors import DownloadError, TTT3RError

DATA = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
MANUAL = "https://example.invalid/manual-download"

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

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        octet = "application/octet-stream"
        if url.path == "/file.pth":
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


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server: yields (base URL, list of request paths)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60, srv.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
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

    monkeypatch.setattr(hub, "_CHUNK_SIZE", 64 * 1024)
    monkeypatch.setattr(hub, "_progress", _InterruptingBar)
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
