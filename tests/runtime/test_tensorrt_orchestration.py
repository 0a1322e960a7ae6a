"""TensorRTRunner's own orchestration, driven through test doubles of the TensorRT and
cuda-python APIs (fake_trt_orchestration.py): buffers, profiles, addresses, copies, CUDA
graphs, threads and cleanup. What TensorRT computes is tested on a GPU elsewhere."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from fake_trt_orchestration import (
    COST_MS,
    FakeCudartForOrchestrationTest,
    FakeTrtEngineForOrchestrationTest,
    fake_tensorrt_module,
    write_fake_plan,
)

from segdeploy.errors import ArtifactError, DeviceError, InputError
from segdeploy.runtime import DeviceView, Segmenter, TensorRTRunner
from segdeploy.runtime import cuda_memory as cm


def expected_logits(x: np.ndarray, classes: int = 4) -> np.ndarray:
    return np.stack([x[:, k % x.shape[1]] * (k + 1) for k in range(classes)], axis=1)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A plan + manifest on disk, and the TensorRT / cudart doubles installed."""
    cudart = FakeCudartForOrchestrationTest()
    engine = FakeTrtEngineForOrchestrationTest(cudart)
    monkeypatch.setattr(cm, "cudart", lambda: cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt_module(engine))
    return write_fake_plan(tmp_path), engine, cudart


def test_buffers_profiles_and_results(fake):
    plan, engine, cudart = fake
    x = np.random.default_rng(0).standard_normal((2, 3, 20, 30)).astype(np.float32)
    with TensorRTRunner(plan) as runner:
        spec = runner.input_specs()["input"]
        assert spec.shape == (None, 3, None, None) and len(spec.profiles) == 2
        np.testing.assert_array_equal(runner.infer({"input": x})["logits"], expected_logits(x))
        # device buffers hold the largest profile: 1x3x128x160 input, 1x4x128x160 output
        assert cudart.malloc_sizes == [3 * 128 * 160 * 4, 4 * 128 * 160 * 4]
        big = np.ones((1, 3, 100, 150), np.float32)
        np.testing.assert_array_equal(runner.infer({"input": big})["logits"],
                                      expected_logits(big))
        assert engine.contexts[0].profile == 1
        with pytest.raises(InputError, match="outside the engine's profiles"):
            runner.infer({"input": np.ones((1, 3, 200, 8), np.float32)})
        assert len(cudart.live) == 4  # 2 device + 2 pinned buffers for this one thread
    assert cudart.live == {}  # close freed everything
    runner.close()


def test_zero_copy_and_misaligned_device_inputs(fake):
    plan, engine, cudart = fake
    x = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
    _, ptr = cudart.cudaMalloc(x.nbytes + 4)
    with TensorRTRunner(plan) as runner:
        cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind(1), 0)
        cudart.copies.clear()
        out = runner.infer({"input": DeviceView(ptr, x.shape, x.dtype)})["logits"]
        assert engine.contexts[0].addresses["input"] == ptr  # bound in place, no copy in
        assert cudart.copies == ["cudaMemcpyDeviceToHost"]
        np.testing.assert_array_equal(out, expected_logits(x))
        # a pointer TensorRT would reject (not 256-byte aligned) is staged through our buffer
        cudart.cudaMemcpyAsync(ptr + 4, x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind(1), 0)
        cudart.copies.clear()
        out = runner.infer({"input": DeviceView(ptr + 4, x.shape, x.dtype)})["logits"]
        assert engine.contexts[0].addresses["input"] != ptr + 4
        assert cudart.copies == ["cudaMemcpyDeviceToDevice", "cudaMemcpyDeviceToHost"]
        np.testing.assert_array_equal(out, expected_logits(x))
        with pytest.raises(InputError, match="dtype float16"):
            runner.infer({"input": DeviceView(ptr, x.shape, np.float16)})
    cudart.cudaFree(ptr)


@pytest.mark.parametrize("refuse", [False, True])
def test_cuda_graph_capture_replay_and_fallback(fake, refuse):
    plan, engine, cudart = fake
    engine.refuse_capture = refuse
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    y = x[:, :, :12]
    feeds = (x, x, y, x, x)
    with TensorRTRunner(plan, cuda_graph=True) as runner:
        outs = [runner.infer({"input": v})["logits"] for v in feeds]
        graphs = runner._state().graphs
        ctx = engine.contexts[0]
        assert len(graphs) == 2
        if refuse:  # capture failed: plain execution every call
            assert all(g is None for g in graphs.values())
        else:  # one plain enqueue after every shape change, replays only while it holds
            assert all(g is not None for g in graphs.values())
            assert sorted(g._exec["launches"] for g in graphs.values()) == [0, 2]  # calls 2, 5
        assert ctx.executions == len(feeds)
        # back to x after y: TensorRT's deferred shape work needs an enqueue, not a replay
        assert ctx.stale_replays == 0
    for out, v in zip(outs, feeds, strict=True):
        np.testing.assert_array_equal(out, expected_logits(v))
    assert cudart.live == {}


@pytest.mark.parametrize("graphs", [False, True])
def test_infer_phases_orchestration_matches_infer_with_event_times(fake, graphs):
    """Our orchestration of infer_phases on the doubles (not TensorRT, not real timings): the
    outputs and enqueue / replay decisions of `infer`, and events that bracket exactly the
    work of each phase. The doubles' stream clock advances by COST_MS per queued operation."""
    plan, engine, cudart = fake
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    y = rng.standard_normal((2, 3, 12, 20)).astype(np.float32)
    feeds = (x, x, y, y, x)  # back to x after y: TensorRT's deferred shape work needs an enqueue
    with TensorRTRunner(plan, cuda_graph=graphs) as plain:
        expected = [plain.infer({"input": v})["logits"] for v in feeds]
    with TensorRTRunner(plan, cuda_graph=graphs) as runner:
        timed = [runner.infer_phases({"input": v}) for v in feeds]
        assert len(cudart.events) == 4  # created once for this thread, reused
    plain_ctx, ctx = engine.contexts
    assert (ctx.executions, ctx.stale_replays) == (plain_ctx.executions, 0)
    for (out, times), want, v in zip(timed, expected, feeds, strict=True):
        assert list(out) == ["logits"]
        np.testing.assert_array_equal(out["logits"], want)
        np.testing.assert_array_equal(out["logits"], expected_logits(v))
        assert min(times.h2d_ms, times.compute_ms, times.d2h_ms) >= 0
        assert times.h2d_ms == COST_MS["cudaMemcpyHostToDevice"]  # one input, one copy
        assert times.d2h_ms == COST_MS["cudaMemcpyDeviceToHost"]
    # with graphs: enqueue (and capture) on a shape's first call, replay while it holds, and
    # an enqueue again on the return to x; without: always an enqueue
    replay = COST_MS["graph_launch"] if graphs else COST_MS["enqueue"]
    compute = [t.compute_ms for _, t in timed]
    assert compute == [COST_MS["enqueue"], replay, COST_MS["enqueue"], replay,
                       COST_MS["enqueue"]]
    assert cudart.events == {} and cudart.live == {}  # close destroyed the events too


def test_infer_phases_orchestration_device_input_has_no_copy_in(fake):
    """An aligned device input is bound in place: nothing is queued in the h2d phase."""
    plan, _, cudart = fake
    x = np.ones((1, 3, 8, 8), np.float32)
    _, ptr = cudart.cudaMalloc(x.nbytes)
    cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind(1), 0)
    with TensorRTRunner(plan) as runner:
        out, times = runner.infer_phases({"input": DeviceView(ptr, x.shape, x.dtype)},
                                         output_names=["logits"])
        assert times.h2d_ms == 0.0 and times.compute_ms == COST_MS["enqueue"]
        np.testing.assert_array_equal(out["logits"], expected_logits(x))
        with pytest.raises(InputError, match="dtype float16"):
            runner.infer_phases({"input": DeviceView(ptr, x.shape, np.float16)})
    cudart.cudaFree(ptr)


def test_one_context_per_thread(fake):
    plan, engine, cudart = fake
    xs = [np.full((1, 3, 8, 8), i, np.float32) for i in range(4)]
    results: dict[int, np.ndarray] = {}
    with TensorRTRunner(plan) as runner:
        def work(i: int) -> None:
            for _ in range(3):
                results[i] = runner.infer({"input": xs[i]})["logits"]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(engine.contexts) == 4
        assert len(cudart.live) == 16
        # plans keep DETAILED profiling for the build's FP16 check; runs turn NVTX down
        assert {c.nvtx_verbosity for c in engine.contexts} == {"LAYER_NAMES_ONLY"}
    for i, out in results.items():
        np.testing.assert_array_equal(out, expected_logits(xs[i]))
    assert cudart.live == {}


def test_trt8_threads_each_claim_a_free_profile(fake):
    """TensorRT < 10 lets a profile serve one context at a time: the second thread takes the
    profile the first left free, and a thread with none left gets a DeviceError."""
    plan, engine, _ = fake
    engine.exclusive_profiles = True
    x = np.ones((1, 3, 64, 64), np.float32)  # inside both profiles
    outcome: dict[int, object] = {}

    def work(i: int) -> None:
        try:
            outcome[i] = runner.infer({"input": x})["logits"]
        except DeviceError as exc:
            outcome[i] = exc

    with TensorRTRunner(plan) as runner:
        for i in range(3):  # one after the other: which thread gets which profile is fixed
            t = threading.Thread(target=work, args=(i,))
            t.start()
            t.join()
        assert sorted(c.profile for c in engine.contexts[:2]) == [0, 1]
    for i in range(2):
        np.testing.assert_array_equal(outcome[i], expected_logits(x))
    assert isinstance(outcome[2], DeviceError) and "one profile per" in str(outcome[2])


def test_output_buffers_grow_past_the_profile_maxima(fake):
    """An output need not be largest at the largest input: one bigger than its buffer gets a
    new buffer (and address) before TensorRT runs, and graphs bound to the old one go."""
    plan, engine, cudart = fake
    x = np.ones((1, 3, 16, 16), np.float32)
    with TensorRTRunner(plan, cuda_graph=True) as runner:
        runner.infer({"input": x})
        state = runner._state()
        assert len(state.graphs) == 1
        state.device["logits"].free()  # stand-in for maxima that underestimate the output
        state.device["logits"] = cm.DeviceBuffer(64)
        y = np.full((1, 3, 20, 24), 2.0, np.float32)
        np.testing.assert_array_equal(runner.infer({"input": y})["logits"], expected_logits(y))
        assert state.device["logits"].nbytes == 4 * 20 * 24 * 4
        assert state.host["logits"].nbytes == 4 * 20 * 24 * 4
        assert engine.contexts[0].addresses["logits"] == state.device["logits"].ptr
        assert len(state.graphs) == 1  # x's graph wrote to the freed buffer: dropped
    assert cudart.live == {}


def test_refusals_before_and_at_deserialisation(fake, monkeypatch):
    plan, engine, cudart = fake
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt_module(engine, "10.4.1"))
    with pytest.raises(ArtifactError, match="built with TensorRT 10.3.0.26") as info:
        TensorRTRunner(plan).activate()
    assert "segdeploy build" in str(info.value)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt_module(engine))
    cudart.capability = (9, 0)
    with pytest.raises(ArtifactError, match="compute capability 8.7"):
        TensorRTRunner(plan).activate()
    cudart.capability = (8, 7)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt_module(None))
    with pytest.raises(ArtifactError, match="serialization assertion failed"):
        TensorRTRunner(plan).activate()


def test_segmenter_drives_the_engine_profiles(fake):
    plan, engine, _ = fake
    image = np.random.default_rng(2).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    with Segmenter.load(plan) as seg:
        assert seg.max_size == (128, 160)
        small = seg.predict(image[:5, :7])  # padded up to the 8x8 profile minimum
        with pytest.raises(InputError, match="predict_tiled"):
            seg.predict(image)
        tiled = seg.predict_tiled(image, tile=64, overlap=8)
    # the fake engine's logits are channel k % 3 of the normalised image scaled by k + 1
    x = ((image / 255.0 - np.float32(seg.card.mean)) / np.float32(seg.card.std))
    x = x.astype(np.float32).transpose(2, 0, 1)[None]
    expected = expected_logits(x).argmax(1)[0]
    assert small.shape == (5, 7) and tiled.shape == (150, 200)
    assert (tiled == expected).mean() > 0.999
    np.testing.assert_array_equal(small, expected[:5, :7])
