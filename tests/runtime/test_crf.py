"""Dense CRF: the numpy fallback against pydensecrf2, what it does to coarse and sharp maps,
probabilities of binary heads, grey images, the missing extra, and Segmenter.predict(crf=)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from crf_fixtures import coarse_probs, shapes_image, write_model

from segdeploy.errors import ArtifactError, MissingDependencyError, UsageError
from segdeploy.metrics import BoundaryF, ConfusionMatrix
from segdeploy.runtime.crf import (
    CRFParams,
    dense_crf,
    features,
    have_pydensecrf,
    probabilities,
    refine_mask,
)

needs_pydensecrf = pytest.mark.skipif(
    not have_pydensecrf(), reason="pydensecrf2 (the crf extra) is not installed: "
                                  "pip install 'segdeploy[crf]'")


def scores(pred: np.ndarray, target: np.ndarray, k: int) -> tuple[float, float]:
    m = ConfusionMatrix(k).update(pred, target).compute()["mean_iou"]
    return m, BoundaryF(k).update(pred, target).compute()["mean"]


@pytest.fixture(scope="module")
def brain_slice() -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("nibabel", reason="the brain data needs nibabel (the torch extra)")
    from segdeploy.data import get_dataset

    ds = get_dataset("brain", split="val")
    image, mask = ds[len(ds) // 2]
    return image, mask


@needs_pydensecrf
def test_numpy_fallback_agrees_with_pydensecrf_on_a_brain_slice(brain_slice) -> None:
    image, mask = brain_slice
    probs = coarse_probs(mask, 3, 16)
    for params in (CRFParams(), CRFParams(iterations=5, bilateral_sxy=20, bilateral_srgb=13,
                                          bilateral_w=6, gaussian_w=1)):
        real = dense_crf(probs, image, params, engine="pydensecrf2")
        ours = dense_crf(probs, image, params, engine="numpy")
        agreement = float((real.argmax(0) == ours.argmax(0)).mean())
        assert agreement >= 0.97, (params, agreement)
        assert np.abs(real - ours).max() < 1e-2  # the same filter, not an approximation
        assert (real.argmax(0) != probs.argmax(0)).any()  # the CRF did change the masks


@pytest.mark.parametrize("engine", ["numpy", pytest.param("pydensecrf2",
                                                           marks=needs_pydensecrf)])
def test_crf_snaps_a_coarse_map_to_sharp_edges(engine: str) -> None:
    before_f, after_f, before_m, after_m = [], [], [], []
    for seed in range(3):
        image, mask = shapes_image(96, 120, seed)
        probs = coarse_probs(mask, 2, 16)
        refined = dense_crf(probs, image[..., None], CRFParams(bilateral_sxy=20,
                                                               bilateral_srgb=13),
                            engine=engine).argmax(0)
        m0, f0 = scores(probs.argmax(0), mask, 2)
        m1, f1 = scores(refined, mask, 2)
        before_m.append(m0), before_f.append(f0), after_m.append(m1), after_f.append(f1)
    assert np.mean(after_f) > np.mean(before_f) + 0.1, (before_f, after_f)
    assert np.mean(after_m) > np.mean(before_m), (before_m, after_m)


def test_probabilities_of_multiclass_and_binary_heads() -> None:
    logits = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    p = probabilities(logits)
    assert p.shape == (4, 5, 6) and np.allclose(p.sum(axis=0), 1, atol=1e-5)
    assert (p.argmax(0) == logits.argmax(0)).all()
    # a logit head with threshold 1.5: p(fg) is 0.5 exactly at 1.5
    x = np.array([[[0.0, 1.5, 3.0]]], np.float32)
    fg = probabilities(x, threshold=1.5)[1, 0]
    assert fg[1] == pytest.approx(0.5) and fg[0] < 0.5 < fg[2]
    # a sigmoid head (outputs in 0..1) with threshold 0.5 keeps its probabilities
    s = np.array([[[0.1, 0.5, 0.9]]], np.float32)
    assert np.allclose(probabilities(s, threshold=0.5)[1, 0], [0.1, 0.5, 0.9], atol=1e-4)
    # ... and with threshold 0.3 moves 0.3 to the decision point
    assert probabilities(np.array([[[0.3]]], np.float32), threshold=0.3)[1, 0, 0] == \
        pytest.approx(0.5)


def test_grey_images_use_one_intensity_feature() -> None:
    image, mask = shapes_image(48, 64, 0)
    params = CRFParams()
    _, grey = features(image[..., None], params)
    _, grey3 = features(np.repeat(image[..., None], 3, axis=2), params)
    _, rgb = features(np.stack([image, 255 - image, image // 2], axis=2), params)
    assert grey.shape[0] == 3 and rgb.shape[0] == 5
    assert np.array_equal(grey, grey3)  # a grey image stored as RGB is read as grey
    assert np.allclose(grey[2], image.ravel() / params.bilateral_srgb)
    probs = coarse_probs(mask, 2, 8)
    a = refine_mask(np.log(probs), image[..., None], engine="numpy")
    b = refine_mask(np.log(probs), np.repeat(image[..., None], 3, axis=2), engine="numpy")
    assert np.array_equal(a, b)


def test_missing_extra_names_itself(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "pydensecrf", None)  # import fails as if absent
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    image, mask = shapes_image(48, 64, 1)
    probs = coarse_probs(mask, 2, 8)
    with pytest.raises(MissingDependencyError) as err:
        dense_crf(probs, image[..., None], engine="pydensecrf2")
    assert "segdeploy[crf]" in str(err.value) and "g++" in str(err.value)
    assert not have_pydensecrf()
    out = dense_crf(probs, image[..., None], engine="auto")  # the numpy fallback runs
    assert out.shape == probs.shape and np.allclose(out.sum(axis=0), 1, atol=1e-4)
    from segdeploy.runtime import Segmenter

    with Segmenter.load(write_model(tmp_path / "m.onnx", coarse=True)) as seg, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg.predict(image[..., None], crf=CRFParams())
        seg.predict(image[..., None], crf=CRFParams())
    said = [str(w.message) for w in caught if "pydensecrf2" in str(w.message)]
    assert len(said) == 1 and "segdeploy[crf]" in said[0]  # said once, not per image


def test_params_round_trip_and_bad_values() -> None:
    p = CRFParams(iterations=5, bilateral_srgb=13.0)
    assert CRFParams.from_dict(p.to_dict()) == p
    with pytest.raises(ArtifactError, match="unknown keys"):
        CRFParams.from_dict({"bilateral_sgrb": 3.0})
    with pytest.raises(ArtifactError, match="iterations"):
        CRFParams.from_dict({"iterations": 2.5})
    with pytest.raises(ArtifactError):
        CRFParams.from_dict({"bilateral_sxy": -1})
    with pytest.raises(UsageError):
        CRFParams(iterations=0)


def test_segmenter_predict_crf_notes_defaults_and_sharpens(tmp_path) -> None:
    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.segmenter_crf import CRFNotice

    model = write_model(tmp_path / "coarse.onnx", coarse=True)
    image, mask = shapes_image(96, 120, 4)
    with Segmenter.load(model) as seg:
        plain = seg.predict(image[..., None])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            refined = seg.predict(image[..., None], crf=True)
            again = seg.predict([image[..., None]] * 2, crf=CRFParams(bilateral_sxy=20))
        notes = [w for w in caught if issubclass(w.category, CRFNotice)]
        assert len(notes) == 1 and "crf-tune" in str(notes[0].message)  # once, and only
        # for crf=True without tuned values
        assert refined.dtype == seg.mask_dtype and refined.shape == mask.shape
        assert isinstance(again, list) and len(again) == 2
        assert np.array_equal(again[0], again[1])
    assert scores(refined, mask, 2)[1] > scores(plain, mask, 2)[1] + 0.03


@needs_pydensecrf
def test_fallback_agrees_on_a_trained_models_probabilities(brain_onnx) -> None:
    """The session's brain U-Net: its real softmax on real val slices, both engines."""
    from segdeploy.data import dataset_for_model
    from segdeploy.runtime import Segmenter

    with Segmenter.load(brain_onnx[0]) as seg:
        ds = dataset_for_model(seg.card, "brain", "val")
        for i in (3, 12):
            image, _ = ds[i]
            probs = probabilities(seg.image_logits(image))
            real = dense_crf(probs, image, engine="pydensecrf2").argmax(0)
            ours = dense_crf(probs, image, engine="numpy").argmax(0)
            assert float((real == ours).mean()) >= 0.97
