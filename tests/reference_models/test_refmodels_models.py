"""One parametrized test over every registered model, plus registry and bilinear-init checks."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from segdeploy.errors import ModelError
from segdeploy.geometry import unet_valid_output_size
from segdeploy.reference_models import get_model, list_models, register_model
from segdeploy.reference_models.bilinear import bilinear_kernel, bilinear_upsampler
from segdeploy.reference_models.registry import BUILTIN_MODELS

EXPECTED = {"fcn32s", "fcn16s", "fcn8s", "fcn_resnet18", "unet", "unet_valid"}
META_KEYS = {"arch", "config", "num_classes", "in_channels", "output_stride", "size_multiple",
             "min_size", "output_mode"}


CASES = [(name, {}) for name in list_models()] + [("fcn8s", {"paper_padding": False})]


@pytest.mark.parametrize("num_classes", [3, 2])
@pytest.mark.parametrize("name,options", CASES, ids=[n + "-".join(["", *o]) for n, o in CASES])
def test_every_model_any_size(name: str, options: dict, num_classes: int) -> None:
    torch.manual_seed(0)
    model = get_model(name, num_classes=num_classes, width=0.125, **options).eval()
    meta = model.meta
    assert META_KEYS <= set(meta)
    assert meta["arch"] == name and meta["num_classes"] == num_classes
    rebuilt = get_model(meta["arch"], **meta["config"])
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    for h, w in [(97, 131), (197, 233)]:
        x = torch.randn(2, 3, h, w)
        if h < meta["min_size"]:
            with pytest.raises(ModelError, match="too small"):
                model(x)
            continue
        with torch.no_grad():
            y = model(x)
            y0 = model(x[:1])
        if meta["output_mode"] == "valid":
            expected = (unet_valid_output_size(h), unet_valid_output_size(w))
        else:
            expected = (h, w)
        assert y.shape == (2, num_classes, *expected)
        assert torch.isfinite(y).all()
        assert y.std() > 0
        assert not torch.equal(y[0], y[1])  # samples differ, so the output depends on x
        torch.testing.assert_close(y0[0], y[0], rtol=1e-4, atol=1e-4)  # batch independent


def test_grey_input_and_backward() -> None:
    model = get_model("fcn8s", num_classes=2, width=0.125, in_channels=1)
    x = torch.randn(2, 1, 45, 37)
    loss = functional.cross_entropy(model(x), torch.randint(0, 2, (2, 45, 37)))
    loss.backward()
    assert model.backbone.features[0].weight.grad.abs().sum() > 0
    assert model.score_pool3.weight.grad.abs().sum() > 0


def test_registry_lists_the_reference_models() -> None:
    names = list_models()
    assert names == sorted(names)
    assert EXPECTED <= set(names)


def test_register_rejects_duplicates() -> None:
    @register_model("_test_dummy_model")
    def _dummy(*, num_classes: int = 2) -> torch.nn.Module:
        return torch.nn.Identity()

    try:
        assert "_test_dummy_model" in list_models()
        with pytest.raises(ModelError, match="already registered"):
            register_model("_test_dummy_model")(_dummy)
        with pytest.raises(ModelError, match="already registered"):
            register_model("unet")(_dummy)
    finally:
        BUILTIN_MODELS.pop("_test_dummy_model", None)


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ModelError) as info:
        get_model("fcn4s")
    for name in EXPECTED:
        assert name in str(info.value)


@pytest.mark.parametrize("cfg,match", [
    ({"num_classes": 0}, "num_classes"),
    ({"width": 0}, "width"),
    ({"in_channels": 0}, "in_channels"),
    ({"colour": True}, "bad options"),
])
def test_bad_options_raise_model_error(cfg: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        get_model("unet", **cfg)


def test_builders_are_keyword_only() -> None:
    from segdeploy.reference_models import fcn, unet

    for builder in (fcn.fcn8s, fcn.fcn_resnet18, unet.unet, unet.unet_valid):
        with pytest.raises(TypeError):
            builder(3)


def test_bilinear_kernel_is_separable_and_normalised() -> None:
    k = bilinear_kernel(4)
    torch.testing.assert_close(k[0], torch.tensor([0.0625, 0.1875, 0.1875, 0.0625]))
    # each output pixel of a stride-f deconv receives weights summing to 1 (partition of unity)
    for f in (2, 8, 32):
        k = bilinear_kernel(2 * f)
        phase_sums = k.reshape(2, f, 2, f).sum(dim=(0, 2))
        torch.testing.assert_close(phase_sums, torch.ones(f, f))


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_bilinear_deconv_matches_interpolate(factor: int) -> None:
    torch.manual_seed(0)
    # smooth input: low-frequency waves on a small grid, 2 channels upsampled independently
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 9), torch.linspace(0, 1, 11), indexing="ij")
    x = torch.stack([torch.sin(3 * yy) + xx, torch.cos(2 * xx) * yy])[None]
    deconv = bilinear_upsampler(2, factor, padding=factor // 2)
    with torch.no_grad():
        out = deconv(x)
    ref = functional.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert out.shape == ref.shape
    b = factor  # the deconv zero-pads at the borders; interpolate clamps
    torch.testing.assert_close(out[..., b:-b, b:-b], ref[..., b:-b, b:-b], rtol=1e-5, atol=1e-5)
    # FCN-VGG's unpadded deconv is the same map shifted by factor/2 (the crops absorb it)
    plain = bilinear_upsampler(2, factor)
    with torch.no_grad():
        shifted = plain(x)[..., factor // 2:, factor // 2:][..., :out.shape[-2], :out.shape[-1]]
    torch.testing.assert_close(shifted[..., b:-b, b:-b], ref[..., b:-b, b:-b], rtol=1e-5,
                               atol=1e-5)


def test_fcn_variants_have_the_paper_layers() -> None:
    m32 = get_model("fcn32s", num_classes=3, width=0.125)
    m16 = get_model("fcn16s", num_classes=3, width=0.125)
    m8 = get_model("fcn8s", num_classes=3, width=0.125)
    assert m32.upscore.kernel_size == (64, 64) and m32.upscore.stride == (32, 32)
    assert m16.upscore16.kernel_size == (32, 32) and m16.upscore16.stride == (16, 16)
    assert m8.upscore8.kernel_size == (16, 16) and m8.upscore8.stride == (8, 8)
    for m in (m32, m16, m8):
        assert m.backbone.features[0].padding == (100, 100)
        assert m.backbone.fc6.kernel_size == (7, 7)
        assert all(d.bias is None for d in m.modules() if isinstance(d, torch.nn.ConvTranspose2d))
    assert not hasattr(m32, "score_pool4") and not hasattr(m16, "score_pool3")
    r = get_model("fcn_resnet18", num_classes=3, width=0.125)
    assert (r.upscore.kernel_size, r.upscore.stride, r.upscore.padding) == ((64, 64), (32, 32),
                                                                           (16, 16))


def test_unet_width_one_channels_follow_the_paper() -> None:
    model = get_model("unet", num_classes=2, batch_norm=False)
    widths = [block[0].out_channels for block in model.down]
    assert widths == [64, 128, 256, 512, 1024]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in model.up)
