"""`Segmenter.stream`: many frames through one model with decoding, inference and
post-processing overlapped.

    for mask in seg.stream(frames, prefetch=4):            # masks in input order
        ...
    with seg.stream(frames, keep_images=True) as stream:   # frame records, errors included
        for result in stream.results():
            ...

Threads: a feeder pulls frames from the source (a video decoder runs there) and hands each
to a worker pool, which decodes it when it is a callable (an image file) and pads and
normalises it; a stager resolves the prepared frames in order (on TensorRT it copies each
into one of two device input buffers on its own CUDA stream, stream_tensorrt.py) and hands
them to the inference worker, which calls the runner back to back; a collector takes the
results in order and the pool crops and argmaxes behind, while the caller consumes (writes)
them. On a CPU, `infer_workers=2` with a one-thread session per run often beats one run on
two threads (BENCHMARKS.md): the runners allow concurrent calls. Every queue is bounded
(`prefetch`, `infer_workers`), so memory is flat on an endless stream. A frame that fails
(a corrupt file, a frame too large) yields a FrameResult with its index and the error, and
the stream goes on; on_error="raise" raises
FrameError at that frame instead. Closing (leaving the `with`, breaking out of the loop,
garbage collection) stops and joins every thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from segdeploy.errors import SegdeployError, UsageError
from segdeploy.runtime import stream_steps as steps

if TYPE_CHECKING:
    from segdeploy.runtime.stream_tensorrt import DeviceStager

OnError = Literal["skip", "raise"]
_END = object()
_POLL_S = 0.05


@dataclass(frozen=True)
class Frame:
    """A stream input with metadata carried to its result (a video frame's pts, a path).

    image: an array, or a zero-argument callable returning one (decoded in a worker)."""

    image: np.ndarray | Callable[[], np.ndarray]
    meta: Any = None


@dataclass
class FrameResult:
    """One frame's outcome: its mask, or the one-line error that stopped it."""

    index: int
    mask: np.ndarray | None
    meta: Any = None
    image: np.ndarray | None = None  # the model-ready image, with keep_images=True
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class FrameError(SegdeployError):
    """A frame of a stream failed and the stream was asked to stop (on_error="raise")."""

    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(f"frame {index} failed: {message}",
                         fix="pass on_error='skip' to report bad frames and keep going")


def describe_error(exc: BaseException) -> str:
    """One line for a frame's failure: the SegdeployError's message, else type and text."""
    if isinstance(exc, SegdeployError):
        return exc.render().splitlines()[0] if exc.render() else str(exc)
    return f"{type(exc).__name__}: {exc}"


class SegmentStream:
    """The running pipeline of `Segmenter.stream` (see the module docstring)."""

    def __init__(self, seg: Any, frames: Iterable[Any], *, prefetch: int = 4,
                 on_error: OnError = "skip", workers: int | None = None,
                 keep_images: bool = False, device_inputs: bool | None = None,
                 infer_workers: int = 1) -> None:
        if on_error not in ("skip", "raise"):
            raise UsageError(f"on_error={on_error!r}", expected="'skip' or 'raise'")
        if prefetch < 1 or infer_workers < 1:
            raise UsageError(f"prefetch={prefetch}, infer_workers={infer_workers}",
                             expected="at least 1 each")
        if infer_workers > 1 and getattr(seg.runner, "name", "") == "openvino":
            raise UsageError("the OpenVINO runner has one infer request, so one inference "
                             "at a time", fix="use infer_workers=1 (OpenVINO threads itself)")
        self.seg = seg
        self.on_error = on_error
        self.keep_images = keep_images
        self.errors: list[FrameResult] = []
        self._stop = threading.Event()
        self._prepared: queue.Queue[Any] = queue.Queue(prefetch)
        self._inflight: queue.Queue[Any] = queue.Queue(infer_workers)
        self._done: queue.Queue[Any] = queue.Queue(prefetch)
        workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="segdeploy-stream")
        self._infer_pool = ThreadPoolExecutor(infer_workers,
                                              thread_name_prefix="segdeploy-stream-infer")
        self._stager = _make_stager(seg, device_inputs, slots=infer_workers + 1)
        self._threads = [threading.Thread(target=fn, name=f"segdeploy-stream-{name}",
                                          daemon=True)
                         for name, fn in (("feed", lambda: self._feed(iter(frames))),
                                          ("stage", self._stage), ("collect", self._collect))]
        for thread in self._threads:
            thread.start()

    # -- consumer side ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        """Masks in input order; failed frames are skipped (and listed in `errors`)."""
        for result in self.results():
            if result.mask is not None:
                yield result.mask

    def results(self) -> Iterator[FrameResult]:
        """Every frame's FrameResult in input order, failures included."""
        try:
            while True:
                item = self._get(self._done)
                if item is _END:
                    return
                result = item.result()
                if not result.ok:
                    self.errors.append(result)
                    if self.on_error == "raise":
                        raise FrameError(result.index, result.error or "")
                yield result
        finally:
            self.close()

    def close(self) -> None:
        """Stop the threads and free the pipeline (idempotent)."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        self._infer_pool.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._stager is not None:
            self._stager.close()

    def __enter__(self) -> SegmentStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queues that give up when the stream stops -------------------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self._stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    # -- the threads ---------------------------------------------------------------------------
    def _feed(self, source: Iterator[Any]) -> None:
        """Pull frames (decoding a video happens here) and queue their preparation."""
        try:
            self._feed_from(source)
        finally:
            close = getattr(source, "close", None)
            if close is not None:  # a generator's cleanup (a video file) runs now
                close()

    def _feed_from(self, source: Iterator[Any]) -> None:
        index = 0
        while not self._stop.is_set():
            try:
                item = next(source)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - a source that fails ends the stream
                self._put(self._prepared, _failed(index, None, exc))
                break
            frame = item if isinstance(item, Frame) else Frame(item)
            if not self._put(self._prepared, self._pool.submit(self._prepare, index, frame)):
                return
            index += 1
        self._put(self._prepared, _END)

    def _prepare(self, index: int, frame: Frame) -> steps.Prepared | FrameResult:
        try:
            raw = frame.image() if callable(frame.image) else frame.image
            return steps.prepare(self.seg, index, raw, frame.meta)
        except Exception as exc:  # noqa: BLE001 - reported for this frame only
            return FrameResult(index, None, frame.meta, error=describe_error(exc))

    def _stage(self) -> None:
        """In input order: wait for each prepared frame, on TensorRT copy it to the GPU, and
        hand it to the inference worker(s)."""
        while (item := self._get(self._prepared)) is not _END:
            try:
                item = item.result()
            except CancelledError:  # close() cancelled the pool's queued work
                return
            if self._stager is not None and isinstance(item, steps.Prepared) \
                    and not item.whole:
                try:
                    item.feed, item.slot = self._stager.stage(item.feed, self._stop)
                except Exception as exc:  # noqa: BLE001 - reported for this frame only
                    item = FrameResult(item.index, None, item.meta, error=describe_error(exc))
            future = (self._infer_pool.submit(self._infer_one, item)
                      if isinstance(item, steps.Prepared) else _done(item))
            if not self._put(self._inflight, future):
                return
        self._put(self._inflight, _END)

    def _infer_one(self, item: steps.Prepared) -> steps.Prepared | FrameResult:
        """The runner call alone, on an inference worker (one by default: back to back)."""
        try:
            return steps.infer(self.seg, item)
        except Exception as exc:  # noqa: BLE001 - reported for this frame only
            return FrameResult(item.index, None, item.meta, error=describe_error(exc))
        finally:
            if item.slot is not None and self._stager is not None:
                self._stager.release(item.slot)

    def _collect(self) -> None:
        """In input order: inferred frames go to the pool for crop and argmax."""
        while (future := self._get(self._inflight)) is not _END:
            try:
                item = future.result()
            except CancelledError:
                return
            done = (self._pool.submit(self._finish, item) if isinstance(item, steps.Prepared)
                    else _done(item))
            if not self._put(self._done, done):
                return
        self._put(self._done, _END)

    def _finish(self, item: steps.Prepared) -> FrameResult:
        image = item.image if self.keep_images else None
        try:
            return FrameResult(item.index, steps.finish(self.seg, item), item.meta, image)
        except Exception as exc:  # noqa: BLE001 - reported for this frame only
            return FrameResult(item.index, None, item.meta, image, describe_error(exc))


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _failed(index: int, meta: Any, exc: BaseException) -> Future[Any]:
    return _done(FrameResult(index, None, meta, error=describe_error(exc)))


def _make_stager(seg: Any, device_inputs: bool | None, slots: int) -> DeviceStager | None:
    """Device input slots for a TensorRT runner (default on there): one more than the
    inference workers, so the next frame's copy overlaps the running ones."""
    is_trt = getattr(seg.runner, "name", "") == "tensorrt"
    if device_inputs and not is_trt:
        raise UsageError("device_inputs=True needs a TensorRT engine",
                         fix="drop device_inputs, or load a .plan")
    if not is_trt or device_inputs is False:
        return None
    from segdeploy.runtime.stream_tensorrt import DeviceStager

    return DeviceStager(slots=slots, device=getattr(seg.runner, "device", 0))


def cpu_split(cores: int | None = None) -> tuple[int, int]:
    """(threads per inference, inference workers) for a stream on a CPU backend: two runs in
    flight with the cores split between them. On the 2-core machine of BENCHMARKS.md two
    one-thread runs beat one two-thread run (a run's parallel part leaves cores idle)."""
    cores = cores or os.cpu_count() or 1
    return (max(1, cores // 2), 2) if cores >= 2 else (1, 1)


class WriteBehind:
    """Run writes on worker threads, at most `pending` queued, and surface the first error.

    For the consumer of a stream: the masks of frame i are written while frame i + 1 is
    inferred. `submit` blocks while `pending` writes are outstanding (memory stays flat)."""

    def __init__(self, workers: int = 2, pending: int = 8) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="segdeploy-write")
        self._slots = threading.Semaphore(pending)
        self._futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._raise_first_error()
        self._slots.acquire()
        future = self._pool.submit(fn, *args)
        future.add_done_callback(lambda _f: self._slots.release())
        self._futures.append(future)

    def _raise_first_error(self) -> None:
        pending = []
        for future in self._futures:
            if not future.done():
                pending.append(future)
            elif future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        self._futures = pending

    def close(self) -> None:
        """Wait for every write; raise the first failure."""
        self._pool.shutdown(wait=True)
        self._raise_first_error()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            return
        self.close()
