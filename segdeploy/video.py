"""Video files, cameras and network streams in; mask and overlay videos out (PyAV, lazily).

    with VideoReader("clip.mp4") as video:            # or "0", "/dev/video0", "rtsp://..."
        for mask in seg.stream(video):                # frames decoded ahead, in order
            ...

PyAV's wheels bundle FFmpeg (`pip install 'segdeploy[video]'`). A frame's timing (pts in
the stream's time base) rides along as `FrameInfo` so writers keep the original timing. A
packet that does not decode becomes a frame whose image raises, so the stream reports it by
index and goes on with the next. Written videos: masks as FFV1 (lossless, class ids as grey
levels, every frame a keyframe) in .mkv; overlays as H.264 yuv420p .mp4 that any player
opens (odd sizes padded by one edge pixel). Both go through a temporary file renamed on
success, like every other artifact.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import InputError, UsageError, require
from segdeploy.runtime.stream import Frame

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts",
                  ".wmv", ".flv", ".y4m")
LIVE_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://",
                 "srt://")


def require_av() -> Any:
    return require("av", extra="video", purpose="to read and write videos")


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_live(source: str) -> bool:
    """A camera index ("0"), a device (/dev/video0) or a network URL."""
    return source.isdigit() or source.startswith("/dev/video") or source.startswith(
        LIVE_PREFIXES)


@dataclass(frozen=True)
class FrameInfo:
    """Where a frame sits in its video: its index, pts (stream time base) and seconds."""

    index: int
    pts: int | None
    time: float | None


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None
    frames: int | None  # None when the container does not say (live streams)
    codec: str
    live: bool


def _open(av: Any, source: str) -> Any:
    """av.open with what cameras and network streams need."""
    if source.isdigit():
        source = f"/dev/video{source}"
    try:
        if source.startswith("/dev/video"):
            return av.open(source, format="v4l2")
        if source.startswith(("rtsp://", "rtsps://")):
            return av.open(source, options={"rtsp_transport": "tcp"}, timeout=10)
        return av.open(source)
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"cannot open video {source} ({exc})",
                         expected="a video file FFmpeg reads, a camera or a stream URL",
                         fix="check the path or URL (ffprobe SOURCE shows what FFmpeg sees)"
                         ) from None


class VideoReader:
    """The frames of one video source, decoded in order, as `stream.Frame`s (HxWx3 RGB
    uint8, or HxW grey with channels=1; meta = FrameInfo). Iterate once; close (or `with`)
    when done."""

    def __init__(self, source: str | os.PathLike[str], *, channels: int = 3) -> None:
        self.av = require_av()
        self.format = "gray" if channels == 1 else "rgb24"
        self.source = str(source)
        self.container = _open(self.av, self.source)
        if not self.container.streams.video:
            self.container.close()
            raise InputError(f"{self.source} has no video stream", expected="a video")
        self._stream = self.container.streams.video[0]
        cc = self._stream.codec_context
        self.info = VideoInfo(
            width=int(cc.width), height=int(cc.height),
            time_base=Fraction(self._stream.time_base or Fraction(1, 25)),
            rate=Fraction(self._stream.average_rate) if self._stream.average_rate else None,
            frames=int(self._stream.frames) or None, codec=cc.name, live=is_live(self.source))

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for packet in self.container.demux(self._stream):  # the last one flushes the decoder
            for frame in self._decode(packet, index):
                yield frame
                index += 1

    def _decode(self, packet: Any, index: int) -> list[Frame]:
        try:
            frames = packet.decode()
        except self.av.error.FFmpegError as exc:
            return [Frame(_raiser(index, exc), self._info(index, packet.pts))]
        return [Frame(f.to_ndarray(format=self.format), self._info(index + i, f.pts))
                for i, f in enumerate(frames)]

    def _info(self, index: int, pts: int | None) -> FrameInfo:
        time = float(pts * self.info.time_base) if pts is not None else None
        return FrameInfo(index, None if pts is None else int(pts), time)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raiser(index: int, exc: Exception) -> Callable[[], np.ndarray]:
    def fail() -> np.ndarray:
        raise InputError(f"video frame {index} does not decode ({exc})",
                         expected="an intact frame")
    return fail


class VideoWriter:
    """Frames in order -> a video with the source's timing (time base and pts).

    kind="mask": FFV1 grey8 in .mkv, lossless (class ids as grey levels); kind="overlay":
    H.264 yuv420p (.mp4 / .mkv), for watching."""

    def __init__(self, path: str | os.PathLike[str], *, width: int, height: int,
                 time_base: Fraction, rate: Fraction | None, kind: str = "mask") -> None:
        from segdeploy.atomic import atomic_path

        av = require_av()
        self.path = Path(path)
        self.kind = kind
        suffix = self.path.suffix.lower()
        if kind == "mask" and suffix != ".mkv":
            raise UsageError(f"mask video {self.path} is not .mkv",
                             expected="NAME.mkv (FFV1, lossless) or a folder for PNG masks")
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        fmt = "matroska" if suffix in (".mkv", ".webm") else suffix.lstrip(".") or "mp4"
        self.container = av.open(str(tmp), "w", format=fmt)
        self.size = (height + height % 2, width + width % 2) if kind == "overlay" else (
            height, width)
        codec = "ffv1" if kind == "mask" else (
            "libx264" if "libx264" in av.codecs_available else "mpeg4")  # FFmpeg w/o GPL
        stream = self.container.add_stream(codec, rate=rate or Fraction(25))
        stream.height, stream.width = self.size
        stream.pix_fmt = "gray" if kind == "mask" else "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if kind == "mask":
            stream.codec_context.gop_size = 1  # every frame decodes on its own
        elif codec == "libx264":
            stream.options = {"crf": "20", "preset": "veryfast"}
        self.stream = stream
        self.frames = 0

    def write(self, image: np.ndarray, pts: int | None) -> None:
        """One frame: HxW uint8 class ids (mask) or HxWx3 RGB uint8 (overlay)."""
        av = require_av()
        h, w = self.size
        if image.shape[:2] != (h, w):
            pad = [(0, h - image.shape[0]), (0, w - image.shape[1])] + [(0, 0)] * (
                image.ndim - 2)
            image = np.pad(image, pad, mode="edge")
        fmt = "gray" if image.ndim == 2 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, np.uint8), format=fmt)
        frame.pts = self.frames if pts is None else pts
        frame.time_base = self.stream.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder, close the file and move it into place."""
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
        except BaseException as exc:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._stack.close()

    def abort(self) -> None:
        """Close without publishing: the temporary file is removed."""
        with contextlib.suppress(Exception):
            self.container.close()
        error = RuntimeError("video writing aborted")
        self._stack.__exit__(RuntimeError, error, None)


def read_video_frames(path: str | os.PathLike[str], fmt: str = "rgb24"
                      ) -> list[tuple[int | None, np.ndarray]]:
    """(pts, pixels) of every frame of a small video (tests, checks)."""
    av = require_av()
    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray(format=fmt)) for f in container.decode(video=0)]
