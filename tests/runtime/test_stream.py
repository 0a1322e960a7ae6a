"""Segmenter.stream: the pipelined path gives predict()'s masks, in order, with bounded
queues, per-frame errors and clean shutdown. TensorRT's double-buffered inputs are driven
through the test doubles of fake_trt_orchestration.py (orchestration only)."""

from __future__ import annotations

import itertools
import sys
import threading
import time
import types

import numpy as np
import pytest
from fake_trt_orchestration import (
    FakeCudartForOrchestrationTest,
    FakeTrtEngineForOrchestrationTest,
    fake_tensorrt_module,
    write_fake_plan,
)

from segdeploy.errors import DeviceError, UsageError
from segdeploy.runtime import Segmenter
from segdeploy.runtime import cuda_memory as cm
from segdeploy.runtime.stream import Frame, FrameError, SegmentStream, WriteBehind
from segdeploy.runtime.stream_tensorrt import DeviceStager


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    """Mixed sizes (odd, non-square), one 16-bit frame: what a folder of scans holds."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = 20 + 7 * (i % 4), 31 + 5 * (i % 3)
        out.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    out[n // 2] = rng.integers(0, 65535, (33, 29, 3), dtype=np.uint16)
    return out


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("segdeploy-stream")]


@pytest.mark.parametrize("options", [{}, {"uint8": True, "layout": "NHWC", "argmax": True},
                                     {"valid": True}, {"size_multiple": 8}])
def test_stream_masks_equal_predict_in_order(tiny_model, options):
    path, _ = tiny_model(**options)
    frames = images(9)
    with Segmenter.load(path) as seg:
        expected = [seg.predict(im) for im in frames]
        got = list(seg.stream(frames, prefetch=2, workers=2))
        lazy = list(seg.stream([lambda im=im: im for im in frames], prefetch=1))
        concurrent = list(seg.stream(frames, infer_workers=3))
    assert len(got) == len(frames) == len(lazy) == len(concurrent)
    for want, mask, mask_lazy, mask_conc in zip(expected, got, lazy, concurrent, strict=True):
        assert mask.dtype == want.dtype and mask.shape == want.shape
        np.testing.assert_array_equal(mask, want)
        np.testing.assert_array_equal(mask_lazy, want)
        np.testing.assert_array_equal(mask_conc, want)
    assert not stream_threads()


def test_meta_images_and_errors_by_index(tiny_model):
    path, _ = tiny_model()
    frames: list[object] = [Frame(im, meta={"pts": i * 40}) for i, im in enumerate(images(6))]

    def corrupt() -> np.ndarray:
        raise OSError("broken data")

    frames[2] = Frame(corrupt, meta={"pts": 80})
    frames[4] = np.zeros((5,), np.uint8)  # not an image
    with Segmenter.load(path) as seg:
        stream = seg.stream(frames, keep_images=True)
        results = list(stream.results())
    assert [r.index for r in results] == list(range(6))
    assert [r.ok for r in results] == [True, True, False, True, False, True]
    assert "broken data" in results[2].error and results[2].meta == {"pts": 80}
    assert results[2].mask is None and results[4].mask is None
    assert [e.index for e in stream.errors] == [2, 4]
    assert results[5].meta == {"pts": 200} and results[5].image.shape[2] == 3
    with Segmenter.load(path) as seg:
        masks = list(seg.stream(frames))  # iterating masks skips the failed frames
        assert len(masks) == 4
        with pytest.raises(FrameError, match="frame 2 failed") as info:
            list(seg.stream(frames, on_error="raise"))
    assert info.value.index == 2
    assert not stream_threads()


def test_queues_are_bounded_and_an_abandoned_stream_stops(tiny_model):
    path, _ = tiny_model()
    pulled = itertools.count()
    frame = images(1)[0]

    def endless():
        while True:
            next(pulled)
            yield frame

    with Segmenter.load(path) as seg:
        with seg.stream(endless(), prefetch=2, workers=1) as stream:
            it = iter(stream)
            for _ in range(5):
                next(it)
            time.sleep(0.3)  # let the feeder run ahead as far as the queues let it
            ahead = next(pulled) - 5
        # prepared (2) + held by the feeder, stager, inference worker and collector (4)
        # + in flight (1) + done (2)
        assert ahead <= 2 + 4 + 1 + 2, ahead
        assert not stream_threads()


def test_bad_arguments():
    with pytest.raises(UsageError, match="on_error"):
        Segmenter.stream(object(), [], on_error="ignore")  # type: ignore[arg-type]
    openvino = types.SimpleNamespace(runner=types.SimpleNamespace(name="openvino"))
    with pytest.raises(UsageError, match="one infer request"):
        SegmentStream(openvino, [], infer_workers=2)


def test_write_behind_raises_the_first_failure(tmp_path):
    written = []

    def write(i: int) -> None:
        if i == 3:
            raise OSError("disk on fire")
        written.append(i)

    with pytest.raises(OSError, match="disk on fire"), WriteBehind(workers=2, pending=2) as w:
        for i in range(6):
            w.submit(write, i)
    assert 3 not in written


@pytest.fixture
def fake_trt(monkeypatch, tmp_path):
    cudart = FakeCudartForOrchestrationTest()
    engine = FakeTrtEngineForOrchestrationTest(cudart)
    monkeypatch.setattr(cm, "cudart", lambda: cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt_module(engine))
    return write_fake_plan(tmp_path), engine, cudart


def test_tensorrt_stream_double_buffers_inputs_orchestration(fake_trt):
    plan, engine, cudart = fake_trt
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (40 + i, 50 - i, 3), dtype=np.uint8) for i in range(7)]
    with Segmenter.load(plan) as seg:
        expected = [seg.predict(im) for im in frames]
        h2d_before = cudart.copies.count("cudaMemcpyHostToDevice")
        streams_before = set(cudart.stream_ms)
        got = list(seg.stream(frames, prefetch=3))
        h2d = cudart.copies.count("cudaMemcpyHostToDevice") - h2d_before
        new_streams = set(cudart.stream_ms) - streams_before
        two = list(seg.stream(frames, infer_workers=2))  # three slots, two contexts
        streams_two = set(cudart.stream_ms) - streams_before - new_streams
    for want, mask, mask_two in zip(expected, got, two, strict=True):
        np.testing.assert_array_equal(mask, want)
        np.testing.assert_array_equal(mask_two, want)
    # one copy in per frame, all by the stager: the runner bound its slots in place
    assert h2d == len(frames)
    # two new CUDA streams: the stager's (copies in) and the inference thread's (the runner
    # gives each thread its own context and stream: execute and copies out); with two
    # inference workers, a stager's stream and two of the runner's
    assert len(new_streams) == 2 and len(streams_two) == 3
    assert cudart.live == {}  # the stager's buffers and the runner's are all freed


def test_device_stager_has_two_slots_orchestration(fake_trt):
    _, _, cudart = fake_trt
    stager = DeviceStager()
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
    view_a, slot_a = stager.stage(x)
    view_b, slot_b = stager.stage(x + 1)
    assert {slot_a, slot_b} == {0, 1} and view_a.ptr != view_b.ptr
    got = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * 12).from_address(view_b.ptr))
    np.testing.assert_array_equal(got, (x + 1).ravel())
    stop = threading.Event()
    third: list[int] = []
    waiter = threading.Thread(target=lambda: third.append(stager.stage(x, stop)[1]))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not third  # both slots busy: the third frame waits
    stager.release(slot_a)
    waiter.join(5)
    assert third == [slot_a]
    stop.set()
    with pytest.raises(DeviceError, match="stopped"):
        stager.stage(x, stop)
    stager.close()
    assert cudart.live == {}
