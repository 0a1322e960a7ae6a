"""One --mean/--std value means every channel of a TorchScript model (as `segdeploy card`
documents); a real channel mismatch is named as one, never blamed on sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from export_test_models import SIZES, UserNet, save_traced

from segdeploy.errors import UsageError
from segdeploy.export.pipeline import ExportOptions, run_export
from segdeploy.export.sources import SourceFacts, load_source

FAST = dict(fp16=False, check_sizes=SIZES, max_side=0, fp16_images=4)


@pytest.fixture(scope="module")
def rgb_ts(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_traced(tmp_path_factory.mktemp("ts") / "rgb.ts", UserNet(num_classes=2))


def test_one_mean_and_std_value_means_every_channel(rgb_ts, tmp_path):
    facts = SourceFacts(mean=[0.5], std=[0.5], classes=["bg", "fg"])
    card = load_source(rgb_ts, trust_code=True, facts=facts).card
    assert card.in_channels == 3 and card.channel_mode == "rgb"
    assert card.mean == [0.5] * 3 and card.std == [0.5] * 3
    result = run_export(rgb_ts, ExportOptions(output=str(tmp_path / "rgb.onnx"),
                                              trust_code=True, facts=facts, **FAST))
    assert Path(result.onnx_path).is_file()


@pytest.mark.parametrize("facts", [SourceFacts(mean=[0.5], std=[0.5], in_channels=1),
                                   SourceFacts(mean=[0.5, 0.5], std=[0.5, 0.5])])
def test_a_real_channel_mismatch_names_channels_not_sizes(rgb_ts, facts):
    with pytest.raises(UsageError) as exc:
        load_source(rgb_ts, trust_code=True, facts=facts)
    text = str(exc.value)
    assert "takes 3 input channels but was given" in text and "--in-channels 3" in text
    assert "--size-multiple" not in text and "--static-size" not in text


def test_mean_and_std_counts_that_fit_no_channel_count_are_named(rgb_ts):
    facts = SourceFacts(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5], in_channels=3)
    with pytest.raises(UsageError, match="--std has 2 values for a model with 3 input channels"):
        load_source(rgb_ts, trust_code=True, facts=facts)
