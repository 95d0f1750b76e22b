"""Video input: frames decoded one by one with PyAV, and a video cut short refused at the door.

:class:`VideoSource` is the :class:`~ttt3r.io.frames.FrameSource` that
:func:`~ttt3r.io.frames.open_frames` returns for a video file. Frames carry their
presentation time in seconds (``Frame.timestamp``) and their decoded frame number.

A file cut short (a download or copy that stopped, an mp4 whose index comes first
cut in half) still opens and declares all its frames. When it is opened, the file
is demuxed once without decoding: where its packets end is compared with the end
the container declares (its frame count, else its duration), and a packet the
demuxer flags as cut short is looked for. A truncated file is an
:class:`~ttt3r.errors.InputError` (a :class:`~ttt3r.io.frames.BadFrameWarning`
with ``skip_bad``, which then reads the frames that are there). PyAV's errors are
put in plain words (no ``[Errno 1094995529]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError
from .frames import MIN_SIZE, Frame, FrameSource, _one_line, _warn, _warn_skip

__all__ = ["VideoSource"]


def _reason(e: BaseException) -> str:
    """An error while reading a video, as one line in plain words."""
    reason = _av_reason(e)
    return reason if reason is not None else _one_line(e)


def _av_reason(e: BaseException) -> str | None:
    """A PyAV error (``[Errno 1094995529] Invalid data found when processing input: 'x.mp4'``) in plain
    words, with FFmpeg's last log line when it has one (``moov atom not found``); ``None`` for other errors."""
    from av.error import FFmpegError, InvalidDataError

    if not isinstance(e, FFmpegError):
        return None
    if isinstance(e, InvalidDataError):
        text = "invalid data: a damaged file, or not a video"
    else:
        text = " ".join(str(getattr(e, "strerror", None) or "").split()) or type(e).__name__
        text = text[0].lower() + text[1:]
    log = getattr(e, "log", None)
    detail = " ".join(str(log[-1]).split()) if isinstance(log, tuple) and log and log[-1] else ""
    return f"{text}: {detail}" if detail else text


class VideoSource(FrameSource):
    """Frames decoded one by one from a video file with PyAV (no temporary files)."""

    kind = "video"

    def __init__(self, path: Path, frame_interval: int, max_frames: int | None, skip_bad: bool) -> None:
        super().__init__(path, frame_interval, max_frames, skip_bad)
        container = self._open()
        try:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else None
            cc = stream.codec_context
            w, h = int(cc.width or 0), int(cc.height or 0)
            if 0 < w < MIN_SIZE or 0 < h < MIN_SIZE:
                raise InputError(f"{path}: video is {w}x{h} px, smaller than the {MIN_SIZE}x{MIN_SIZE} px minimum")
            declared, exact, end_s = self._declared(container, stream)
            ends_s, damaged = self._scan(container, stream)
        finally:
            container.close()
        missing = 0
        if declared is not None and ends_s is not None and self.fps:
            missing = max(0, int(round((end_s - ends_s) * self.fps)))
        in_file = declared - missing if declared is not None else None
        self.expected = self._cap(declared) if declared else None
        self.total = self._cap(in_file) if in_file else self.expected
        slack = 0 if exact else max(2, (declared or 0) // 50)
        short = in_file is not None and missing > slack and self._needs(in_file)
        if short or damaged is not None:
            what = (f"the container declares {declared} frames, the file ends after about {in_file}" if short
                    else f"packet {damaged} is cut short")
            msg = f"{path}: truncated or damaged video: {what}"
            if not skip_bad:
                raise InputError(f"{msg} (use --skip-bad to read the frames that are there)")
            _warn(f"{msg}; reading the frames that are there")

    def _open(self):
        import av

        try:
            size = self.path.stat().st_size
        except OSError as e:
            raise InputError(f"{self.path}: cannot open video ({e.strerror or e})") from e
        if size == 0:
            raise InputError(f"{self.path}: cannot open video (empty file, 0 bytes)")
        try:
            container = av.open(str(self.path), mode="r")
        except Exception as e:
            raise InputError(f"{self.path}: cannot open video ({_reason(e)})") from e
        if not container.streams.video:
            container.close()
            raise InputError(f"{self.path}: no video stream in file")
        return container

    def _declared(self, container, stream) -> tuple[int | None, bool, float | None]:
        """What the container declares about the whole stream: (frames, exact, end time in seconds).

        Frames: the stored frame count (mp4, mov, avi: ``exact``), else the duration
        times the frame rate (mkv, webm: approximate), else ``None``. The end time is
        the start time plus the longer of the stored duration and ``frames / fps``.
        """
        seconds = None
        start = 0.0
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
            start = float((stream.start_time or 0) * stream.time_base)
        elif container.duration is not None:  # microseconds (AV_TIME_BASE), every stream together
            seconds = container.duration / 1e6
            start = (container.start_time or 0) / 1e6
        n = int(stream.frames or 0)
        if n > 0:
            return n, True, start + max(seconds or 0.0, n / self.fps if self.fps else 0.0)
        if seconds and self.fps and seconds > 0:
            return max(1, int(round(seconds * self.fps))), False, start + seconds
        return None, False, None

    def _needs(self, frames: int) -> bool:
        """Whether a stream of ``frames`` frames is shorter than what this source reads."""
        return self.max_frames is None or frames < self.max_frames * self.frame_interval

    def _scan(self, container, stream) -> tuple[float | None, int | None]:
        """Demux (no decoding) to find where the packets end and whether one is cut short.

        Returns (end time in seconds of the last packet, or ``None``; number of the
        first packet the demuxer flags corrupt, or ``None``). Stops once the packets
        ``max_frames`` needs were seen. A file cut short ends early, its last packet
        flagged corrupt; the demux reads the file once, which is fast next to the network.
        """
        import av

        need = None if self.max_frames is None else self.max_frames * self.frame_interval
        n = 0
        end = None
        damaged = None
        tb = stream.time_base
        step = 1.0 / self.fps if self.fps else 0.0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's final flush packet
                    continue
                if packet.is_corrupt and damaged is None:
                    damaged = n
                if packet.pts is not None and tb is not None:
                    t = float(packet.pts * tb) + (float(packet.duration * tb) if packet.duration else step)
                    end = t if end is None else max(end, t)
                n += 1
                if need is not None and n >= need:
                    return None, damaged  # enough for max_frames: the rest of the file does not matter
        except av.error.FFmpegError as e:
            if not self.skip_bad:
                raise InputError(f"{self.path}#{n}: cannot read video ({_reason(e)})") from e
            _warn(f"{self.path}#{n}: cannot read video ({_reason(e)}); reading the {n} frames before")
        return end, damaged

    def source_path(self, frame: Frame) -> Path:
        return self.path

    def __iter__(self) -> Iterator[Frame]:
        import av

        container = self._open()
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        name = self.path.name
        n_dec = 0  # decoded frames (original numbering)
        n_out = 0
        skipped = 0
        self.n_read = self.n_skipped = 0
        resync = False
        start_s = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    if not self.skip_bad:
                        raise InputError(f"{self.path}#{n_dec}: cannot decode video frame ({_reason(e)})") from e
                    skipped += 1
                    self.n_skipped = skipped
                    _warn_skip(f"{self.path}#{n_dec}: cannot decode video packet ({_reason(e)})")
                    n_dec += 1  # at least one frame lost; resynchronised from the next timestamp
                    resync = True
                    continue
                for vf in frames:
                    if resync and vf.time is not None and self.fps:
                        n_dec = max(n_dec, int(round((float(vf.time) - start_s) * self.fps)))
                    resync = False
                    i = n_dec
                    n_dec += 1
                    if i % self.frame_interval:
                        continue
                    if self.max_frames is not None and n_out >= self.max_frames:
                        return
                    try:
                        img = vf.to_ndarray(format="rgb24")
                        rot = int(round((vf.rotation or 0) / 90.0)) % 4
                        if rot:
                            img = np.ascontiguousarray(np.rot90(img, rot))
                    except Exception as e:
                        if not self.skip_bad:
                            raise InputError(f"{self.path}#{i}: cannot convert video frame ({_reason(e)})") from e
                        skipped += 1
                        self.n_skipped = skipped
                        _warn_skip(f"{self.path}#{i}: cannot convert video frame ({_reason(e)})")
                        continue
                    t = float(vf.time) - start_s if vf.time is not None else (i / self.fps if self.fps else None)
                    n_out += 1
                    self.n_read = n_out
                    yield Frame(index=n_out - 1, name=f"{name}#{i}", image=img, source_index=i, timestamp=t)
                    if self.max_frames is not None and n_out >= self.max_frames:
                        return
        except av.error.FFmpegError as e:
            msg = f"{self.path}#{n_dec}: cannot read video ({_reason(e)})"
            if not (self.skip_bad and n_out > 0):
                raise InputError(msg) from e
            _warn_skip(f"{msg}; stopping after {n_out} frames")  # e.g. a truncated file
            return
        finally:
            container.close()
        if n_out == 0:
            extra = f" ({skipped} undecodable packets skipped)" if skipped else ""
            raise InputError(f"{self.path}: no decodable video frames{extra}")
