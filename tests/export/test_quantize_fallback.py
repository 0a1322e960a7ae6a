"""`segdeploy quantize` on the trained brain U-Net: calibration once, the gate at two sizes
against FP32's noise floor, and no INT8 file slower than FP32 (timed by test doubles)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segdeploy.export.int8_speed import NoSpeedupError, SpeedCheck
from segdeploy.export.noise_gate import agreement_limit, with_noise
from segdeploy.export.quantize import (
    QUANT_METADATA_KEY,
    QuantizeOptions,
    fallback_order,
    quantize_model,
)

pytestmark = pytest.mark.slow
onnx = pytest.importorskip("onnx")


def timer_double(speedup: float):
    """A SpeedTimer test double: reports `speedup` without running anything."""
    calls: list[Path] = []

    def fake_timer_double(fp32: Path, int8: Path, feeds, threads) -> SpeedCheck:
        calls.append(int8)
        return SpeedCheck(fp32_ms=100.0, int8_ms=100.0 / speedup, cpu="TimerDouble CPU",
                          shape=next(iter(feeds.values())).shape)

    fake_timer_double.calls = calls  # type: ignore[attr-defined]
    return fake_timer_double


def _opts(out: Path, **kw) -> QuantizeOptions:
    return QuantizeOptions(**{"data": "brain", "output": out, "calibration_images": 4,
                              "val_images": 3, **kw})


def test_strict_gate_calibrates_once_and_reports_both_sizes(brain_onnx, tmp_path,
                                                            monkeypatch) -> None:
    """A gate all-INT8 fails: the fallback runs many trials on ONE calibration."""
    import importlib

    # the module, not the function of the same name the package exports
    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")
    made = []
    real = ort_quantize.create_calibrator

    def counting_calibrator(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort_quantize, "create_calibrator", counting_calibrator)
    fp32, _ = brain_onnx
    out = tmp_path / "strict.int8.onnx"
    timer = timer_double(1.5)
    result = quantize_model(fp32, _opts(out, min_agreement=99.8, max_miou_drop=0.3),
                            timer=timer)
    assert made == [1]  # one calibration for the first gate, sensitivity and every trial
    assert result.first_gate is not None and not result.first_gate.passes(99.8, 0.3)
    assert result.fp32_nodes and all(c.passes for c in result.checks)
    assert [c.size.split(" ")[1] for c in result.checks] == ["(x1)", "(x2)"]
    small, large = (c.result for c in result.checks)
    assert (small.images, large.images) == (3, 2)  # ceil(3 / 2): twice the pixels of x1
    # an explicit --min-agreement is applied as given: the fixed threshold decides
    assert {c.limit for c in result.checks} == {99.8} and result.decided_by == "fixed threshold"
    order = fallback_order(result.sensitivity, result.costs)
    assert result.fp32_nodes == order[:len(result.fp32_nodes)]
    assert 0 < sum(result.costs.values()) <= 100.001 and len(result.costs) == 23
    assert timer.calls and out.is_file()
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    quant = json.loads(props[QUANT_METADATA_KEY])
    assert [c["size"] for c in quant["checks"]] == [c.size for c in result.checks]
    assert quant["speed"]["cpu"] == "TimerDouble CPU"


def test_noise_floor_is_measured_and_can_decide(brain_onnx, tmp_path) -> None:
    fp32, _ = brain_onnx
    result = quantize_model(fp32, _opts(tmp_path / "m.int8.onnx"), timer=timer_double(2.0))
    assert len(result.checks) == 2
    for c in result.checks:
        assert 90.0 < c.noise_floor <= 100.0
        assert c.limit == min(99.0, c.noise_floor)
        assert c.decided_by == ("noise floor" if c.noise_floor < 99.0 else "fixed threshold")
        assert f"noise floor {c.noise_floor:.3f}%" in c.line()
    # the two sizes are judged on different images: their floors are separate measurements
    assert result.checks[0].size != result.checks[1].size


def test_slower_int8_is_not_written(brain_onnx, tmp_path) -> None:
    fp32, _ = brain_onnx
    out = tmp_path / "slow.int8.onnx"
    timer = timer_double(0.8)
    with pytest.raises(NoSpeedupError, match=r"INT8 does not pay off here: 0.80x FP32"):
        quantize_model(fp32, _opts(out), timer=timer)
    assert len(timer.calls) == 1 and not out.exists() and not list(tmp_path.iterdir())
    result = quantize_model(fp32, _opts(out, allow_slower=True), timer=timer)
    assert out.is_file() and any("does not pay off" in n for n in result.notes)
    assert result.speed is not None and result.speed.speedup == pytest.approx(0.8)


def test_noise_is_one_grey_level_and_seeded() -> None:
    image = np.array([[[0], [255], [128]]] * 50, np.uint8)
    a = with_noise(image, np.random.default_rng(0))
    b = with_noise(image, np.random.default_rng(0))
    diff = a.astype(int) - image.astype(int)
    assert np.array_equal(a, b) and a.dtype == np.uint8
    assert set(np.unique(diff)) == {-1, 0, 1}
    assert a[:, 0].min() == 0 and a[:, 1].max() == 255  # clipped, not wrapped


def test_cli_lists_float_layers_and_refuses_a_slower_file(brain_onnx, tmp_path, monkeypatch,
                                                          capsys) -> None:
    from click.testing import CliRunner

    import segdeploy.export.quantize as quantize
    from segdeploy.cli.main import cli, main

    fp32, _ = brain_onnx
    out = tmp_path / "cli.int8.onnx"
    args = ["quantize", str(fp32), "--data", "brain", "-o", str(out), "--calibration-images",
            "4", "--val-images", "3", "--min-agreement", "99.8", "--max-miou-drop", "0.3"]
    monkeypatch.setattr(quantize, "ort_speed", timer_double(1.7))
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert "noise floor" in done.output and "decided by: the fixed threshold" in done.output
    assert "layers kept in float (share of FLOPs" in done.output
    assert "speed: 1.70x ONNX Runtime FP32" in done.output and out.is_file()
    out.unlink()
    monkeypatch.setattr(quantize, "ort_speed", timer_double(0.87))
    with pytest.raises(SystemExit) as exited:
        main(args)  # the entry point: one red line, exit 1
    assert exited.value.code == 1 and not out.exists()
    assert "INT8 does not pay off here: 0.87x FP32" in capsys.readouterr().err


def test_the_lower_limit_decides() -> None:
    assert agreement_limit(99.0, 98.6) == (98.6, "noise floor")  # a noisy model: its floor
    assert agreement_limit(99.0, 99.9) == (99.0, "fixed threshold")
    assert agreement_limit(99.0, 98.6, use_floor=False) == (99.0, "fixed threshold")


def test_symmetric_int8_for_tensorrt_is_not_timed_on_the_cpu(brain_onnx, tmp_path) -> None:
    fp32, _ = brain_onnx
    timer = timer_double(0.5)  # would be refused if it were asked
    out = tmp_path / "trt.int8.onnx"
    result = quantize_model(fp32, _opts(out, symmetric=True, min_agreement=90.0,
                                        max_miou_drop=10.0), timer=timer)
    assert out.is_file() and timer.calls == [] and result.speed is None
    assert any("not timed on this CPU" in n for n in result.notes)


def test_a_larger_gate_size_judges_fewer_images_but_more_pixels() -> None:
    from segdeploy.export.noise_gate import images_at

    assert [images_at(16, s) for s in (0.5, 1.0, 2.0, 3.0)] == [16, 16, 8, 6]
    assert images_at(1, 4.0) == 1
    for n in (1, 3, 16, 28):
        for s in (1.5, 2.0, 3.0):
            assert images_at(n, s) * s * s >= n * s  # never fewer pixels than s times x1


class _PassingFromDouble:
    """A test double of the gate's verdicts: a float set passes once it holds `need` layers
    of the order; it counts the trials the search asked for."""

    scales = (1.0, 2.0)

    def __init__(self, need: int) -> None:
        self.need, self.trials = need, []

    def checks(self, names: list[str]) -> list:
        from types import SimpleNamespace

        self.trials.append(list(names))
        ok = len(names) >= self.need
        return [SimpleNamespace(passes=ok, line=lambda: "")] * (2 if ok else 1)


@pytest.mark.parametrize("need", [1, 2, 5, 11, 12, 99])
def test_the_shortest_passing_prefix_is_found_by_bisection(need: int) -> None:
    from segdeploy.export.int8_fallback import FallbackSearch

    order = [f"conv{i}" for i in range(12)]
    double = _PassingFromDouble(need)
    search = FallbackSearch(None, double, {n: 1 for n in order}, lambda _: None,
                            lambda *_: None)
    search.judge = lambda names, label: double.checks(names)  # type: ignore[method-assign]
    found = search.shortest_prefix([], order, dict.fromkeys(order, 1.0))
    if need > len(order):
        assert found is None and double.trials == [order[:1], order]  # two trials say so
        return
    assert found is not None and found[0] == order[:need]
    assert len(double.trials) <= 2 + len(order).bit_length()  # not one trial per layer
    if need == 1:
        assert double.trials == [order[:1]]  # one layer enough: one trial
    assert len({tuple(t) for t in double.trials}) == len(double.trials)  # none judged twice
