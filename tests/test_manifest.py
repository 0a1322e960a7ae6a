import json

import pytest

from segdeploy.errors import ArtifactError
from segdeploy.manifest import (
    ONNX_METADATA_KEY,
    ExportInfo,
    ModelCard,
    PlanManifest,
)


def make_card(**kw) -> ModelCard:
    base = dict(arch="unet", num_classes=3, classes=["bg", "grey", "white"], in_channels=1,
                mean=[0.2], std=[0.3], output_stride=16, train_size=[197, 233])
    base.update(kw)
    return ModelCard(**base)


def test_export_info_round_trips_through_metadata_props():
    info = ExportInfo(card=make_card(), precision="fp16", argmax_in_graph=True,
                      output_names=["logits", "mask"], fp32_nodes={"/conv1": "max |x| 900 > 512"})
    props = info.to_metadata_props()
    assert all(isinstance(v, str) for v in props.values())
    assert props["segdeploy.arch"] == "unet"
    assert json.loads(props["segdeploy.classes"]) == ["bg", "grey", "white"]
    back = ExportInfo.from_metadata_props(props)
    assert back.to_dict() == info.to_dict()


def test_plan_manifest_round_trip():
    info = ExportInfo(card=make_card())
    m = PlanManifest(export=info, tensorrt_version="10.3.0", precision="fp16",
                     profiles=[{"input": {"min": [1, 1, 64, 64], "opt": [1, 1, 197, 233],
                                          "max": [4, 1, 512, 512]}}],
                     io=[{"name": "input", "mode": "input", "dtype": "float32",
                          "shape": [-1, 1, -1, -1]}],
                     onnx_sha256="ab" * 32, compute_capability="8.7")
    assert PlanManifest.from_dict(json.loads(json.dumps(m.to_dict()))).to_dict() == m.to_dict()


def test_card_rejects_inconsistent_classes_and_channels():
    with pytest.raises(ArtifactError, match="class names"):
        make_card(classes=["a", "b"])
    with pytest.raises(ArtifactError, match="mean/std"):
        make_card(mean=[0.1, 0.2, 0.3])


def test_missing_and_newer_metadata_are_clear_errors():
    with pytest.raises(ArtifactError, match="no segdeploy metadata"):
        ExportInfo.from_metadata_props({"producer": "someone"})
    d = ExportInfo(card=make_card()).to_dict()
    d["schema_version"] = 999
    with pytest.raises(ArtifactError, match="newer than this segdeploy"):
        ExportInfo.from_metadata_props({ONNX_METADATA_KEY: json.dumps(d)})
    with pytest.raises(ArtifactError, match="unreadable"):
        ExportInfo.from_metadata_props({ONNX_METADATA_KEY: "{not json"})


def test_unknown_fields_from_newer_writers_are_kept_aside():
    d = make_card().to_dict()
    d["future_field"] = 1
    card = ModelCard.from_dict(d)
    assert card.__dict__["_unknown_fields"] == ["future_field"]


def test_typical_size_prefers_the_training_images_single_size():
    card = make_card(train_size=[160, 160], trained_on={"name": "brain",
                                                        "image_sizes": [[197, 233]]})
    assert card.typical_size() == [197, 233]  # not the 160x160 training crop
    mixed = make_card(train_size=[160, 160], trained_on={"image_sizes": [[100, 80], [90, 70]]})
    assert mixed.typical_size() == [160, 160]
    assert make_card(train_size=[64, 96]).typical_size() == [64, 96]
