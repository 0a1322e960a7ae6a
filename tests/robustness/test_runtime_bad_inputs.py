"""Hostile inputs to the runtime API: a SegdeployError with one line, never numpy's own."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from robust_helpers import Artifacts

from segdeploy.errors import ArtifactError, InputError, SegdeployError, UsageError

U8 = np.uint8


def _seg(art: Artifacts, **kw: Any):
    from segdeploy.runtime import Segmenter

    return Segmenter.load(art.onnx, providers="cpu", **kw)


API_CASES: list[tuple[str, type, Callable[[Any], Any]]] = [
    ("predict-0x0", InputError, lambda s: s.predict(np.zeros((0, 0), U8))),
    ("predict-0xW", InputError, lambda s: s.predict(np.zeros((0, 12, 3), U8))),
    ("predict-0-channels", InputError, lambda s: s.predict(np.zeros((12, 12, 0), U8))),
    ("predict-empty-batch", InputError, lambda s: s.predict(np.zeros((0, 12, 12, 3), U8))),
    # uint16 / int / float images are mapped by the card's intensity mapping (issue 10);
    # pixels that are not numbers are refused
    ("predict-complex", InputError, lambda s: s.predict(np.zeros((12, 12, 3), np.complex64))),
    ("predict-object", InputError, lambda s: s.predict(np.zeros((12, 12, 3), object))),
    ("predict-rank5", InputError, lambda s: s.predict(np.zeros((1, 1, 12, 12, 3), U8))),
    ("predict-rank1", InputError, lambda s: s.predict(np.zeros(12, U8))),
    ("predict-2-channels", InputError, lambda s: s.predict(np.zeros((12, 12, 2), U8))),
    ("predict-string", InputError, lambda s: s.predict("image.png")),
    ("predict-none", InputError, lambda s: s.predict(None)),
    ("predict-list-bad-item", InputError, lambda s: s.predict([np.zeros((12, 12, 3), U8), 3])),
    ("tiled-0x0", InputError, lambda s: s.predict_tiled(np.zeros((0, 0), U8), tile=32)),
    ("tiled-bad-tile", UsageError, lambda s: s.predict_tiled(np.zeros((40, 40, 3), U8),
                                                             tile=(1, 2, 3))),
    ("tiled-no-centre", UsageError, lambda s: s.predict_tiled(np.zeros((40, 40, 3), U8),
                                                              tile=16, overlap=8)),
    ("tiled-negative-overlap", UsageError, lambda s: s.predict_tiled(
        np.zeros((40, 40, 3), U8), tile=32, overlap=-2)),
    ("logits-below-min", InputError, lambda s: s.logits(np.zeros((1, 3, 4, 4), np.float32))),
    ("logits-rank3", InputError, lambda s: s.logits(np.zeros((3, 16, 16), np.float32))),
    ("logits-nan", InputError, lambda s: s.logits(np.full((1, 3, 16, 16), np.nan, np.float32))),
    ("logits-inf", InputError, lambda s: s.logits(np.full((1, 3, 16, 16), np.inf, np.float32))),
    ("logits-float64", InputError, lambda s: s.logits(np.zeros((1, 3, 16, 16)))),
    ("logits-channels", InputError, lambda s: s.logits(np.zeros((1, 4, 16, 16), np.float32))),
    ("infer-below-min", InputError, lambda s: s.runner.infer(
        {"input": np.zeros((1, 3, 7, 30), np.float32)})),
    ("infer-not-dict", InputError, lambda s: s.runner.infer([np.zeros(3)])),
    ("infer-unknown-name", InputError, lambda s: s.runner.infer(
        {"x": np.zeros((1, 3, 16, 16), np.float32)})),
    ("infer-unknown-output", UsageError, lambda s: s.runner.infer(
        {"input": np.zeros((1, 3, 16, 16), np.float32)}, output_names=["nope"])),
    ("infer-list-value", InputError, lambda s: s.runner.infer({"input": "pixels"})),
]


@pytest.mark.parametrize("call", [c[2] for c in API_CASES], ids=[c[0] for c in API_CASES])
@pytest.mark.parametrize("error", [None])
def test_api_bad_input(call, error, art: Artifacts, request) -> None:
    expected = next(c[1] for c in API_CASES if c[0] == request.node.callspec.id.split("-", 1)[1])
    with _seg(art) as seg, pytest.raises(SegdeployError) as info:
        call(seg)
    assert isinstance(info.value, expected), repr(info.value)
    assert "\n" not in str(info.value)
    assert "Expected" in str(info.value) or "Fix:" in str(info.value), str(info.value)


LOAD_CASES = ["garbage.onnx", "truncated.onnx", "empty.onnx", "escape.onnx", "list.plan",
              "broken.plan", "typed.plan", "nocard.plan", "future.plan", "nosidecar.plan",
              "notes.plan", "notes.txt"]


@pytest.mark.parametrize("name", LOAD_CASES)
def test_load_bad_artifact(name: str, art: Artifacts) -> None:
    from segdeploy.runtime import Segmenter

    with pytest.raises(SegdeployError) as info:
        Segmenter.load(art.bad(name))
    text = str(info.value)
    assert "\n" not in text and ("Expected" in text or "Fix:" in text), text
    if name == "escape.onnx":  # item 8: the fix must not blame a corrupt file
        assert "truncated or corrupt" not in text and "external data" in text
    if name == "notes.txt":  # item 8: not told to "rebuild"
        assert "rebuild" not in text


def test_onnx_file_as_plan_is_not_told_to_rebuild(art: Artifacts) -> None:
    """Item 8: an ONNX given to the TensorRT backend says what it is."""
    from segdeploy.runtime import Segmenter

    with pytest.raises(ArtifactError, match="is an ONNX model, not a TensorRT plan") as info:
        Segmenter.load(art.onnx, backend="tensorrt")
    assert "rebuild" not in str(info.value)


def test_plan_manifest_list_and_wrong_types(art: Artifacts) -> None:
    """Item 4: a .plan.json holding a list, or a field of the wrong type, is an ArtifactError
    naming it (a TypeError traceback before)."""
    from segdeploy.runtime.plan_compat import read_plan_manifest

    with pytest.raises(ArtifactError, match="JSON list, not a JSON object"):
        read_plan_manifest(art.bad("list.plan"))
    with pytest.raises(ArtifactError, match="'min_size' is str"):
        read_plan_manifest(art.bad("typed.plan"))
    data = json.loads(art.bad("typed.plan.json").read_text())
    data["export"]["card"]["min_size"] = 16
    data["profiles"] = {"input": 1}
    path = art.root / "profiles.plan"
    path.write_bytes(b"\x00plan")
    (art.root / "profiles.plan.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="'profiles' is dict"):
        read_plan_manifest(path)


def test_zero_size_image_is_input_error(art: Artifacts) -> None:
    """Item 3: numpy's ValueError before."""
    with _seg(art) as seg:
        with pytest.raises(InputError, match="no pixels"):
            seg.predict(np.zeros((0, 0), U8))
        with pytest.raises(InputError, match="no pixels"):
            seg.predict_tiled(np.zeros((0, 0), U8))


def test_logits_and_infer_refuse_below_min_size(art: Artifacts) -> None:
    """Item 6: inputs below the model's min size were accepted and gave wrong values."""
    with _seg(art) as seg:
        with pytest.raises(InputError, match="minimum size 8"):
            seg.logits(np.zeros((1, 3, 6, 20), np.float32))
        with pytest.raises(InputError, match="minimum size 8"):
            seg.runner.infer({"input": np.zeros((1, 3, 20, 6), np.float32)})
        assert seg.logits(np.zeros((1, 3, 8, 8), np.float32)).shape == (1, 3, 8, 8)
        assert seg.predict(np.zeros((5, 5, 3), U8)).shape == (5, 5)  # predict pads


def test_ort_reason_names_the_dimension(art: Artifacts) -> None:
    """Item 8: ONNX Runtime's reason was cut after its first line."""
    from segdeploy.runtime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(art.onnx_static) as runner, pytest.raises(InputError) as info:
        runner.infer({"input": np.zeros((2, 4, 37, 41), np.float32)}, check=False)
    assert "index: 1 Got: 4 Expected: 3" in str(info.value)
    assert "\n" not in str(info.value)


def test_auto_tiling_above_memory_budget(art: Artifacts) -> None:
    """Item 5: above the budget predict tiles (same masks as untiled here: the tiny net's
    receptive field fits the overlap) and says so once."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (300, 260, 3), dtype=U8)
    with _seg(art) as seg:
        untiled = seg.predict(image)
    with _seg(art, memory_budget="4M") as seg:
        said: list[str] = []
        seg.notify = said.append
        assert seg.memory_budget == 4 << 20
        # the bytes per pixel are measured from resident memory, which a process that freed
        # memory before (a test session) may not grow: the budget follows what was measured
        seg._measure_memory()
        seg.memory_budget = min(seg.memory_budget, seg.untiled_bytes(1, 300, 260) // 4)
        assert seg._needs_tiling(1, 300, 260)
        tiled = seg.predict(image)
        again = seg.predict([image, image])
        side = seg._auto_tile()[0]  # from the model's measured bytes per pixel
        assert len(said) == 1 and f"{side}x{side} tiles" in said[0] and "memory budget" in said[0]
        np.testing.assert_array_equal(tiled, seg.predict_tiled(image, tile=side, batch_size=1))
    for mask in (tiled, *again):  # tiles agree with the whole image but at a few borders
        assert (mask == untiled).mean() > 0.99


def test_auto_tiling_default_budget_and_warning(art: Artifacts) -> None:
    from segdeploy.runtime.memory import AutoTileNotice, available_memory, default_budget

    with _seg(art) as seg:
        avail = available_memory()
        assert avail is None or 0 < seg.memory_budget <= avail
        assert seg.memory_budget == pytest.approx(default_budget(), rel=0.5)
        seg._measure_memory()  # as above: the budget follows the measured bytes per pixel
        seg.memory_budget = min(1 << 20, seg.untiled_bytes(1, 200, 200) // 4)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seg.predict(np.zeros((200, 200, 3), U8))
            seg.predict(np.zeros((200, 200, 3), U8))
        assert [w.category for w in caught] == [AutoTileNotice]
    with pytest.raises(UsageError):
        _seg(art, memory_budget="lots")
