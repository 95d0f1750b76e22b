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
    an HTTP(S) URL (:mod:`ttt3r.http_transfer`, which also answers Google
    Drive's confirmation pages and never saves an HTML page). With ``HF_HUB_OFFLINE=1`` nothing is
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
    call with an HTTP ``Range`` request (up to 5 times in a row without new
    data; a server that ignores ``Range`` is read again from the start); a failure or Ctrl-C removes the partial file, so no partial
    file outlives a download (a killed process may leave one ``*.tmp`` /
    ``*.incomplete`` file, which the next download does not reuse and
    ``ttt3r weights remove`` deletes). A download that receives fewer than
    64 KiB within ``stall_timeout`` seconds is abandoned with
    one line, however slowly the server trickles; ``timeout`` is the limit of
    a single read. Any failure is one :class:`~ttt3r.errors.DownloadError`
    line that gives the manual download link and the exact path to save the
    file to.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from . import hf_transfer, http_transfer
from .errors import CheckpointError, DownloadError, TTT3RError
from .hf_transfer import SCHEME as HF_SCHEME
from .hf_transfer import HubFile
from .http_transfer import drive_download_urls, drive_view_url
from .io.atomic import atomic_path, atomic_write_text
from .transfer import StallGuard, TransferFailed, human_bytes

__all__ = [
    "CACHE_ENV",
    "KNOWN_CHECKPOINTS",
    "Checkpoint",
    "CacheStatus",
    "HubFile",
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

_DEFAULT_TIMEOUT = 30.0  # seconds a single read may wait
_DEFAULT_STALL = 120.0  # seconds within which at least 64 KiB must arrive (ttt3r.transfer.StallGuard)
_HASH_BLOCK = 8 << 20  # bytes per read while hashing a file


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
        TransferFailed: the reason, without the path.
    """
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise TransferFailed(f"size mismatch: expected {entry.size} bytes, got {size}")
    if entry.sha256 is not None:
        sha = sha256 or _sha256_file(path)
        if sha != entry.sha256.lower():
            raise TransferFailed(f"SHA-256 mismatch: expected {entry.sha256.lower()}, got {sha}")
        return sha
    from .weights import read_checkpoint

    try:
        read_checkpoint(path)
    except CheckpointError as e:
        raise TransferFailed(str(e).removeprefix(f"{path}: ")) from None
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
    except TransferFailed as e:
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


def _fetch_hub(entry: Checkpoint, uri: str, dest: Path, quiet: bool, timeout: float, stall: float) -> str | None:
    """Download a Hub source through huggingface_hub, verify it and move it to ``dest``.

    The Hub cache (``<root>/huggingface``) only stages the file: once verified
    it is moved out (no second copy of 3 GB); an unverified one is deleted.
    """
    try:
        pointer = hf_transfer.fetch(
            HubFile.parse(uri), cache_root() / "huggingface", guard=StallGuard(stall), timeout=timeout, quiet=quiet
        )
    except TransferFailed:
        raise
    except Exception as e:  # noqa: BLE001 - translated to one line, or re-raised
        why = hf_transfer.describe(e)
        if why is None:
            raise
        raise TransferFailed(why) from None
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
        return hf_transfer.host()
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
        stall_timeout: Seconds within which at least 64 KiB must
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
        try:
            if u.startswith(HF_SCHEME):
                sha = _fetch_hub(entry, u, target, quiet, timeout, stall_timeout)
            else:
                sha = http_transfer.fetch(
                    u, target, name=entry.filename, size=entry.size, quiet=quiet, timeout=timeout,
                    stall=stall_timeout, verify=lambda path, sha: _verify_file(entry, path, sha),
                )
        except TransferFailed as e:
            reasons.append((u, str(e)))
            continue
        except http_transfer.NETWORK_ERRORS as e:
            if isinstance(e, urllib.error.HTTPError):
                e.close()  # an HTTP error response holds the connection open
            reasons.append((u, http_transfer.describe(e)))
            continue
        except OSError as e:
            if e.filename is not None:  # a local file problem, not the network
                raise DownloadError(f"{e.filename}: {e.strerror or e}") from e
            reasons.append((u, http_transfer.describe(e)))
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
        return human_bytes(self.size) if self.size is not None else "unknown"


def cache_status() -> list[CacheStatus]:
    """One :class:`CacheStatus` per known checkpoint, in table order."""
    out = []
    for entry in KNOWN_CHECKPOINTS.values():
        path = cached_path(entry)
        present = path.is_file()
        size = path.stat().st_size if present else entry.size
        out.append(CacheStatus(entry, path, present, is_cached(entry), size))
    return out
