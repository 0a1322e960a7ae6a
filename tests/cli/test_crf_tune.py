"""`segdeploy crf-tune` writes tuned CRF parameters into the card only when they help;
`predict --crf` uses them (else defaults, with a note); the card field round-trips."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cli_run import cli_fails, run_cli
from crf_fixtures import make_folder, shapes_image, write_model
from PIL import Image

from segdeploy.manifest import ExportInfo, ModelCard, PlanManifest
from segdeploy.onnx_metadata import read_onnx_export_info
from segdeploy.runtime.crf import CRFParams

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("crf") / "shapes")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tune_writes_params_into_a_coarse_models_card(tmp_path, data, capsys) -> None:
    model = write_model(tmp_path / "coarse.onnx", coarse=True)
    report = tmp_path / "tune.json"
    code, _, err = run_cli(["crf-tune", str(model), "--data", str(data), "--max-trials", "8",
                            "--engine", "numpy", "--json", str(report)], capsys)
    assert code == 0, err
    result = json.loads(report.read_text())
    assert result["written"] and result["helps"] and len(result["trials"]) <= 8
    assert result["with"]["mean_iou"] > result["without"]["mean_iou"]
    assert result["with"]["boundary_f"] > result["without"]["boundary_f"]
    assert "without CRF" in err and "CRF, tuned" in err and "wrote the tuned" in err
    card = read_onnx_export_info(model).card
    assert card.crf is not None and card.crf["params"] == result["params"]
    assert card.crf["tuned_on"]["images"] == result["images"] == 2  # the val split
    code, out, _ = run_cli(["info", str(model)], capsys)
    assert code == 0 and "dense CRF" in out and "crf-tune on" in out
    # predict --crf now uses them: no note about defaults
    image, mask = shapes_image(96, 120, 7)
    src = tmp_path / "im.png"
    Image.fromarray(image).save(src)
    code, _, err = run_cli(["predict", "-e", str(model), str(src), "-o",
                            str(tmp_path / "m.png"), "--crf"], capsys)
    assert code == 0 and "no tuned CRF" not in err, err
    code, _, err = run_cli(["predict", "-e", str(model), str(src), "-o",
                            str(tmp_path / "plain.png")], capsys)
    refined = np.asarray(Image.open(tmp_path / "m.png"))
    plain = np.asarray(Image.open(tmp_path / "plain.png"))
    assert (refined == mask).mean() > (plain == mask).mean()


def test_tune_leaves_the_card_alone_where_the_crf_cannot_help(tmp_path, data, capsys) -> None:
    model = write_model(tmp_path / "exact.onnx", coarse=False)  # perfect probabilities
    before = _sha(model)
    report = tmp_path / "tune.json"
    code, _, err = run_cli(["crf-tune", str(model), "--data", str(data), "--max-trials", "4",
                            "--json", str(report)], capsys)
    assert code == 0, err
    assert "does not help" in err and "left unchanged" in err
    assert _sha(model) == before
    result = json.loads(report.read_text())
    assert not result["written"] and result["without"]["mean_iou"] == 1.0
    assert len(result["trials"]) == 4 and "trial budget" in result["stopped_by"]


def test_predict_crf_without_tuning_notes_the_defaults(tmp_path, capsys) -> None:
    model = write_model(tmp_path / "coarse.onnx", coarse=True)
    image, _ = shapes_image(96, 120, 2)
    src = tmp_path / "im.png"
    Image.fromarray(image).save(src)
    code, _, err = run_cli(["predict", "-e", str(model), str(src), "-o",
                            str(tmp_path / "m.png"), "--crf"], capsys)
    assert code == 0, err
    assert "note:" in err and "no tuned CRF parameters" in err and "crf-tune" in err
    assert (tmp_path / "m.png").is_file()
    err = cli_fails(capsys, ["predict", "-e", str(model), str(src), "-o",
                             str(tmp_path / "t.png"), "--crf", "--tile", "64"])
    assert "--crf" in err and not (tmp_path / "t.png").exists()


def test_card_crf_round_trips_and_old_cards_read() -> None:
    crf = {"params": {"iterations": 5, "bilateral_srgb": 13.0}, "tuned_on": {"data": "x"}}
    card = ModelCard(arch="a", num_classes=2, classes=["b", "f"], crf=crf)
    info = ExportInfo.from_metadata_props(ExportInfo(card=card).to_metadata_props())
    assert info.card.crf == crf
    old = ModelCard(arch="a", num_classes=2, classes=["b", "f"]).to_dict()
    del old["crf"]  # a card written before the field existed
    assert ModelCard.from_dict(old).crf is None
    from segdeploy.errors import ArtifactError

    with pytest.raises(ArtifactError, match="crf"):
        ModelCard.from_dict({**old, "crf": ["not", "a", "dict"]})


def test_tuned_params_go_into_a_plans_sidecar(tmp_path) -> None:
    from segdeploy.artifacts import read_plan_manifest, write_plan_manifest
    from segdeploy.crf_tuning import write_card_crf

    plan = tmp_path / "m.plan"
    plan.write_bytes(b"\x00plan bytes")
    card = ModelCard(arch="a", num_classes=2, classes=["b", "f"])
    write_plan_manifest(plan, PlanManifest(ExportInfo(card=card), "10.3", "fp16", [], [],
                                           "0" * 64))
    crf = {"params": {"iterations": 3}}
    write_card_crf(plan, crf)
    assert read_plan_manifest(plan).export.card.crf == crf
    assert plan.read_bytes() == b"\x00plan bytes"  # the plan itself untouched


def test_a_gain_only_on_the_tuning_images_is_not_stored() -> None:
    """The 2-fold hold-out: parameters must help on images they were not tuned on."""
    from segdeploy.crf_tuning import Scores, TuneResult

    without = Scores(0.80, 0.70, 0.90)
    tuned = Scores(0.82, 0.75, 0.91)
    result = TuneResult(without, without, tuned, CRFParams())
    assert result.helps(0.001)  # no hold-out measured: the whole split decides
    result.held_out = Scores(0.795, 0.72, 0.90)
    assert not result.helps(0.001)
    result.held_out = Scores(0.81, 0.72, 0.90)
    assert result.helps(0.001) and not result.helps(0.02)


def test_tune_checked_scores_each_half_with_the_other_halfs_params() -> None:
    from crf_fixtures import coarse_probs, shapes_image

    from segdeploy.crf_tuning import Sample, score, tune_checked

    samples = []
    for seed in range(4):
        image, mask = shapes_image(96, 120, seed)
        samples.append(Sample(image[..., None], coarse_probs(mask, 2, 16), mask))
    result = tune_checked(samples, engine="numpy", max_trials=3)
    assert result.held_out is not None and len(result.trials) == 3
    without = score(samples, None)
    assert result.without == without
    assert result.held_out.boundary_f > without.boundary_f  # coarse maps: it helps unseen
    assert tune_checked(samples, engine="numpy", max_trials=3, holdout=False).held_out is None
