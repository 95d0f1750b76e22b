"""Frame sources: a folder of images, a video, or a text file listing images.

:func:`open_frames` returns a :class:`FrameSource`, an iterable of :class:`Frame`
(``index``, ``name``, ``image``) where ``image`` is an RGB ``uint8`` array of
shape (H, W, 3). Frames are read lazily, one at a time, so a source of any
length uses constant memory. Frame sizes may differ from frame to frame; each
frame is preprocessed on its own later.

Image conversions (the same for every source):

* EXIF orientation is applied (:func:`PIL.ImageOps.exif_transpose`).
* Grayscale, palette, CMYK, YCbCr, ... are converted to RGB.
* Images with an alpha channel (RGBA, LA, palette with transparency) are
  **composited on a white background** (transparent pixels become white, not
  the arbitrary colour stored under them).
* 16-bit and 32-bit integer images are scaled to 8 bit by their full range
  (``v * 255 / 65535`` for 16 bit); float images in [0, 1] are scaled by 255,
  other float images are treated like 16-bit ones.

Videos are read by :class:`ttt3r.io.video.VideoSource`.

Errors are :class:`ttt3r.errors.InputError` with one line naming the file. With
``skip_bad=True`` a frame that cannot be read (corrupt image, undecodable video
packet, image smaller than 16x16 px) is skipped with a :class:`BadFrameWarning`
naming it; if no frame at all can be read, an error is raised at the end.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import InputError, TTT3RError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MIN_SIZE",
    "VIDEO_EXTENSIONS",
    "BadFrameWarning",
    "Frame",
    "FrameSource",
    "load_image",
    "name_timestamp",
    "name_timestamps",
    "natural_key",
    "open_frames",
]

#: Smallest accepted image side in pixels (one network patch).
MIN_SIZE = 16

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
_BASE_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_HEIF_EXTENSIONS = (".heic", ".heif")
LIST_EXTENSIONS = (".txt",)


def _register_heif() -> bool:
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        return False
    try:
        pillow_heif.register_heif_opener()
    except Exception:  # pragma: no cover - broken install
        return False
    return True


_HAVE_HEIF = _register_heif()

#: Image file extensions read from folders (HEIC/HEIF only when ``pillow_heif`` is installed).
IMAGE_EXTENSIONS: tuple[str, ...] = _BASE_IMAGE_EXTENSIONS + (_HEIF_EXTENSIONS if _HAVE_HEIF else ())


class BadFrameWarning(UserWarning):
    """A frame was skipped because it could not be read (``skip_bad=True``)."""


@dataclass(frozen=True)
class Frame:
    """One input frame.

    Attributes:
        index: 0-based position in the processed sequence (after
            ``frame_interval`` subsampling and after skipped bad frames); this is
            the ``FrameResult.index`` the frame will get.
        name: the file name (folder), the path as written in the list (text
            list), or ``"video.mp4#123"`` (video, decoded frame number 123 of
            the original stream).
        image: (H, W, 3) uint8 RGB.
        source_index: position in the original sequence (file number in the
            sorted folder/list, or decoded frame number in the video).
        timestamp: seconds from the start of the video (presentation time); for
            images, the number the file name spells when every name in the
            sequence is a number (:func:`name_timestamp`: TUM's
            ``1305031102.175304.png`` -> 1305031102.175304 s, ``000123.png`` ->
            123, a frame number), or the timestamp column of a TUM-style list;
            else ``None`` (the writers then use the index).
    """

    index: int
    name: str
    image: np.ndarray
    source_index: int = 0
    timestamp: float | None = None


def natural_key(name: str) -> tuple:
    """Sort key ordering digit runs by value: ``frame2`` before ``frame10``."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), p) if p.isdigit() else (1, p.casefold(), p) for p in parts if p != "")


_NUMBER_NAME = re.compile(r"\d+(?:\.\d+)?")


def name_timestamp(name: str) -> float | None:
    """The timestamp a numeric file name spells, or ``None``.

    The name without folder and extension must be a non-negative decimal number:
    ``1305031102.175304.png`` (TUM RGB-D, seconds) -> 1305031102.175304,
    ``000123.png`` -> 123.0 (an integer name is taken as a frame number; its unit is
    whatever the names count). ``frame_01.png`` or ``1e5.png`` -> ``None``.
    """
    stem = Path(name).name
    stem = stem[: -len(Path(stem).suffix)] if Path(stem).suffix else stem
    return float(stem) if _NUMBER_NAME.fullmatch(stem) else None


def name_timestamps(names: list[str]) -> list[float] | None:
    """Each name's :func:`name_timestamp` when every name has one and no two are equal, else ``None``."""
    stamps = [name_timestamp(n) for n in names]
    if not stamps or any(t is None for t in stamps) or len(set(stamps)) != len(stamps):
        return None
    return stamps  # type: ignore[return-value]


def _one_line(e: BaseException) -> str:
    """An exception's message as one line."""
    return " ".join(str(e).split()) or type(e).__name__


def pil_to_rgb8(img: Image.Image) -> np.ndarray:
    """Convert any PIL image to an (H, W, 3) uint8 RGB array (see module doc)."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode in ("I", "F") or mode.startswith("I;16") or mode.startswith("I;32"):
        a = np.asarray(img)
        if a.dtype.kind == "f":
            a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            scale = 255.0 if a.max(initial=0.0) <= 1.0 else 255.0 / 65535.0
        else:
            a = a.astype(np.float64)
            scale = 255.0 / 65535.0 if a.max(initial=0) <= 65535 else 255.0 / 4294967295.0
        g = np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
        if g.ndim == 2:
            g = np.repeat(g[..., None], 3, axis=2)
        return np.ascontiguousarray(g[..., :3])
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8).copy()
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def load_image(path: str | Path) -> np.ndarray:
    """Read one image file as an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    Raises:
        InputError: the file is missing, unreadable or corrupt, or smaller than
            16x16 px (one line naming the file).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: cannot read image (empty file, 0 bytes)")
        with warnings.catch_warnings():  # PIL's warnings (odd EXIF, large images) are not the user's business
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                arr = pil_to_rgb8(im)
    except InputError:
        raise
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise InputError(f"{path}: cannot read image ({_pil_reason(e, path)})") from e
    h, w = arr.shape[:2]
    if h < MIN_SIZE or w < MIN_SIZE:
        raise InputError(f"{path}: image is {w}x{h} px, smaller than the {MIN_SIZE}x{MIN_SIZE} px minimum")
    return arr


def _pil_reason(e: BaseException, path: Path) -> str:
    """A PIL error in plain words, without the file name PIL repeats."""
    if isinstance(e, Image.DecompressionBombError):
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        claimed = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        return f"its header claims {claimed}, more than the {2 * Image.MAX_IMAGE_PIXELS:,}-pixel limit"
    if isinstance(e, Image.UnidentifiedImageError):
        return "not an image, or a damaged one: no known image format recognised"
    if isinstance(e, MemoryError):
        return "too large to decode in memory"
    msg = _one_line(e).replace(f"'{path}'", "").replace(str(path), "").strip(" :")
    if msg.startswith("image file is truncated"):
        return "truncated image file" + msg[len("image file is truncated"):]
    return msg or type(e).__name__


def _warn_skip(message: str) -> None:
    warnings.warn(f"skipping bad frame: {message}", BadFrameWarning, stacklevel=3)


def _warn(message: str) -> None:
    warnings.warn(message, BadFrameWarning, stacklevel=3)


class FrameSource:
    """An iterable of :class:`Frame`; iterate it once or many times.

    Attributes:
        path: the input path.
        kind: ``"images"`` (folder or single image), ``"list"`` (text file) or ``"video"``.
        fps: the video's frame rate (frames per second of the original stream),
            or ``None`` for images.
        frame_interval: keep every ``frame_interval``-th frame.
        max_frames: stop after this many frames (``None``: all).
        skip_bad: skip unreadable frames with a warning instead of raising.
        total: number of frames iteration will yield when known (before any
            bad frame is skipped), else ``None``.
        expected: number of frames the input declares (the files listed, the
            video container's frame count or duration), after ``frame_interval``
            and ``max_frames``; ``None`` when unknown. Less than ``total`` only
            for a truncated video read with ``skip_bad``.
        n_read, n_skipped: frames delivered and frames skipped by the current
            (or last) iteration (see :meth:`counts`).

    ``len(source)`` is ``total``; it raises ``TypeError`` when the total is
    unknown (as for any unsized iterable, so ``tqdm`` shows a plain counter).
    """

    kind: str = ""

    def __init__(self, path: Path, frame_interval: int, max_frames: int | None, skip_bad: bool) -> None:
        self.path = path
        self.frame_interval = frame_interval
        self.max_frames = max_frames
        self.skip_bad = skip_bad
        self.fps: float | None = None
        self.total: int | None = None
        self.expected: int | None = None
        self.n_read = 0
        self.n_skipped = 0

    def counts(self) -> dict[str, int | None]:
        """What ``run.json`` records about reading: frames the input declares (after
        ``frame_interval`` and ``max_frames``; ``None``: unknown), frames read so far
        (delivered by the last iteration) and frames skipped as unreadable."""
        return {"frames_expected": self.expected, "frames_read": self.n_read, "frames_skipped": self.n_skipped}

    @property
    def sequence_fps(self) -> float | None:
        """Frames per second of the processed sequence (``fps / frame_interval``), or ``None``."""
        return None if self.fps is None else self.fps / self.frame_interval

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError(f"{self.path}: number of frames is unknown")
        return self.total

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def source_path(self, frame: Frame) -> Path:
        """The file a yielded ``frame`` was read from (the image, or the video)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, total={self.total}, fps={self.fps})"

    def _cap(self, n: int) -> int:
        n = math.ceil(n / self.frame_interval)
        return n if self.max_frames is None else min(n, self.max_frames)


class ImageFilesSource(FrameSource):
    """Frames read from a list of image files (a folder, a text list, or one image)."""

    def __init__(self, path: Path, files: list[Path], kind: str, frame_interval: int,
                 max_frames: int | None, skip_bad: bool, names: list[str] | None = None,
                 timestamps: list[float] | None = None) -> None:
        super().__init__(path, frame_interval, max_frames, skip_bad)
        self.kind = kind
        self.files = files
        self.names = names if names is not None else [f.name for f in files]
        #: per file: the list's timestamp column, else the numeric names' numbers, else None
        self.timestamps = timestamps if timestamps is not None else name_timestamps(self.names)
        self.total = self.expected = self._cap(len(files))

    def source_path(self, frame: Frame) -> Path:
        return self.files[frame.source_index]

    def __iter__(self) -> Iterator[Frame]:
        n_out = 0
        skipped = 0
        self.n_read = self.n_skipped = 0
        for src_i in range(0, len(self.files), self.frame_interval):
            if self.max_frames is not None and n_out >= self.max_frames:
                return
            f = self.files[src_i]
            try:
                img = load_image(f)
            except InputError as e:
                if not self.skip_bad:
                    raise
                skipped += 1
                self.n_skipped = skipped
                _warn_skip(str(e))
                continue
            n_out += 1
            self.n_read = n_out
            ts = None if self.timestamps is None else self.timestamps[src_i]
            yield Frame(index=n_out - 1, name=self.names[src_i], image=img, source_index=src_i, timestamp=ts)
        if n_out == 0:
            raise InputError(f"{self.path}: no readable images ({skipped} skipped as unreadable)")


def _check_options(frame_interval: int, max_frames: int | None) -> None:
    if not isinstance(frame_interval, int) or frame_interval < 1:
        raise TTT3RError(f"frame_interval must be an integer >= 1, got {frame_interval!r}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise TTT3RError(f"max_frames must be an integer >= 1 or None, got {max_frames!r}")


def _read_list(path: Path, skip_bad: bool) -> tuple[list[Path], list[str], list[float] | None]:
    """Files, names as written, and timestamps of a list file.

    A line is a path, or (TUM's ``rgb.txt``) a timestamp and a path separated by
    white space; the timestamps are used when every line has one.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read list file ({_one_line(e)})") from e
    files: list[Path] = []
    names: list[str] = []
    stamps: list[float | None] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        stamp = None
        head, _, rest = entry.partition(" ") if " " in entry else entry.partition("\t")
        if rest.strip() and _NUMBER_NAME.fullmatch(head) and not _resolve(path, entry).is_file():
            stamp, entry = float(head), rest.strip()
        p = _resolve(path, entry)
        if not p.is_file():
            msg = f"{path}:{lineno}: {p}: no such image file"
            if not skip_bad:
                raise InputError(msg)
            _warn_skip(msg)
            continue
        files.append(p)
        names.append(entry)
        stamps.append(stamp)
    if not files:
        raise InputError(f"{path}: list file names no images")
    listed = None if any(t is None for t in stamps) else [float(t) for t in stamps]  # type: ignore[arg-type]
    return files, names, listed


def _resolve(list_path: Path, entry: str) -> Path:
    """A list entry as a path: ``~`` expanded, relative to the list file's folder."""
    p = Path(entry).expanduser()
    return p if p.is_absolute() else list_path.parent / p


def open_frames(path: str | Path, frame_interval: int = 1, max_frames: int | None = None,
                skip_bad: bool = False) -> FrameSource:
    """Open a folder of images, a video, a ``.txt`` list of images, or a single image.

    Args:
        path: a folder (images with extensions :data:`IMAGE_EXTENSIONS`, sorted
            naturally, or by value when every name is a number, other files
            ignored), a video (:data:`VIDEO_EXTENSIONS`, decoded with PyAV), a
            ``.txt`` file with one image path per line, or a timestamp and a path
            as TUM's ``rgb.txt`` (paths relative to the text file's folder; blank
            lines and ``#`` comments skipped), or one image file.
        frame_interval: keep every ``frame_interval``-th frame (1: all).
        max_frames: stop after this many kept frames (``None``: all).
        skip_bad: skip unreadable frames (and missing files in a list) with a
            :class:`BadFrameWarning` instead of raising.

    Returns:
        A :class:`FrameSource`; frames are read only while iterating.

    Raises:
        InputError: missing path, empty folder, unsupported file type, a video
            that cannot be opened; while iterating: an unreadable frame (unless
            ``skip_bad``) or no readable frame at all.
    """
    _check_options(frame_interval, max_frames)
    if not str(path).strip():  # Path("") is the current folder
        raise InputError("input path is empty (name a video, an image folder, a .txt list or an image)")
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        entries = [c for c in p.iterdir() if not c.name.startswith(".") and c.is_file()]
        files = [c for c in entries if c.suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            heif = [c for c in entries if c.suffix.lower() in _HEIF_EXTENSIONS]
            if heif and not _HAVE_HEIF:
                raise InputError(f"{p}: only HEIC/HEIF images found (e.g. {heif[0].name}); pip install pillow-heif")
            what = "empty folder" if not entries else "no images in folder"
            raise InputError(f"{p}: {what} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        stamps = name_timestamps([c.name for c in files])
        if stamps is not None:  # numeric names in time order (natural order puts 1.2 after 1.175304)
            order = sorted(range(len(files)), key=stamps.__getitem__)
            files = [files[i] for i in order]
        else:
            files.sort(key=lambda c: natural_key(c.name))
        return ImageFilesSource(p, files, "images", frame_interval, max_frames, skip_bad)
    suffix = p.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        from .video import VideoSource

        return VideoSource(p, frame_interval, max_frames, skip_bad)
    if suffix in LIST_EXTENSIONS:
        files, names, stamps = _read_list(p, skip_bad)
        return ImageFilesSource(p, files, "list", frame_interval, max_frames, skip_bad, names, stamps)
    if suffix in IMAGE_EXTENSIONS:
        return ImageFilesSource(p, [p], "images", frame_interval, max_frames, skip_bad)
    if suffix in _HEIF_EXTENSIONS:
        raise InputError(f"{p}: HEIC/HEIF images need pillow-heif (pip install pillow-heif)")
    raise InputError(
        f"{p}: unsupported file type {suffix or '(no extension)'!r} (expected a folder of images, "
        f"a video {'/'.join(VIDEO_EXTENSIONS)}, a .txt list of images, or an image)"
    )
