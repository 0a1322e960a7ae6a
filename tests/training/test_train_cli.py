"""`segdeploy train` / `segdeploy eval` end to end on tiny real runs (brain, few images)."""

from __future__ import annotations

import json

import pytest
import torch
from cli_run import cli_fails as _fails

from segdeploy.cli.main import main
from segdeploy.reference_models.checkpoint import load_checkpoint, load_model

TINY = ["--data", "brain", "--width", "0.125", "--image-size", "64", "--batch-size", "4",
        "--limit-train", "8", "--limit-val", "2", "--device", "cpu", "--no-progress"]


def _train(tmp_path, *extra: str, arch: str = "unet", name: str = "tiny.pt"):
    out = tmp_path / name
    main(["train", arch, *TINY, "-o", str(out), *extra])
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two epochs of a tiny U-Net: best and last checkpoints."""
    folder = tmp_path_factory.mktemp("tiny_run")
    out = _train(folder, "--epochs", "2")
    return out, folder / "tiny.last.pt"


def test_train_writes_best_and_last_with_a_complete_card(tiny_run):
    best, last = tiny_run
    ckpt = load_checkpoint(best)
    card = ckpt.card
    assert card.arch == "unet" and card.config["width"] == 0.125
    assert card.classes == ["background", "grey matter", "white matter"]
    assert card.channel_mode == "grey" and card.in_channels == 1
    assert card.train_size == [64, 64]
    assert card.trained_on["name"] == "brain" and card.trained_on["images"] == 8
    assert card.trained_on["images_available"] > 8
    assert 0 < card.mean[0] < 1 and 0 < card.std[0] < 1
    m = card.metrics
    assert m["split"] == "val" and m["images"] == 2 and m["epoch"] in (1, 2)
    assert 0.0 <= m["mean_iou"] <= 1.0 and len(m["iou"]) == 3 and len(m["dice"]) == 3
    assert "optimizer" not in ckpt.extra  # the best checkpoint stays small
    extra = load_checkpoint(last).extra
    assert extra["epoch"] == 2 and "optimizer" in extra and len(extra["history"]) == 2
    assert extra["best_miou"] == pytest.approx(m["mean_iou"])
    model, _ = load_model(best)
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 37, 45)).shape == (1, 3, 37, 45)


def test_resume_continues_from_the_last_epoch(tiny_run, tmp_path, capsys):
    _, last = tiny_run
    out = tmp_path / "resumed.pt"
    main(["train", "unet", *TINY, "--epochs", "3", "--resume", str(last), "-o", str(out)])
    text = capsys.readouterr().out
    assert "resuming after epoch 2" in text and "epoch   3/3" in text and "epoch   1/3" not in text
    assert (tmp_path / "resumed.pt").exists() or "was not written" in text
    extra = load_checkpoint(tmp_path / "resumed.last.pt").extra
    assert extra["epoch"] == 3 and [h["epoch"] for h in extra["history"]] == [1, 2, 3]
    # the learning rate continued the cosine schedule rather than restarting at its peak
    assert extra["history"][2]["lr"] < extra["history"][0]["lr"]


def test_resume_errors(tiny_run, tmp_path, capsys):
    best, last = tiny_run
    err = _fails(capsys, ["train", "unet", *TINY, "--resume", str(best), "-o",
                          str(tmp_path / "a.pt")])
    assert "no optimizer state" in err and ".last.pt" in err
    err = _fails(capsys, ["train", "unet", *TINY, "--epochs", "2", "--resume", str(last), "-o",
                          str(tmp_path / "b.pt")])
    assert "already trained 2 epochs" in err
    err = _fails(capsys, ["train", "fcn8s", *TINY, "--resume", str(last), "-o",
                          str(tmp_path / "c.pt")])
    assert "'unet' model" in err
    assert not list(tmp_path.iterdir())


def test_resume_defaults_its_output_next_to_the_last_checkpoint():
    from segdeploy.training.config import TrainConfig

    cfg = TrainConfig("unet", "brain", resume="runs/brain.last.pt")
    assert str(cfg.output_path) == "runs/brain.pt" and str(cfg.last_path) == "runs/brain.last.pt"
    assert str(TrainConfig("unet", "brain").output_path) == "unet.pt"
    assert str(TrainConfig("unet", "brain", output="a/b.pt").last_path) == "a/b.last.pt"


def test_eval_prints_tables_and_writes_json(tiny_run, tmp_path, capsys):
    best, _ = tiny_run
    report = tmp_path / "metrics.json"
    main(["eval", str(best), "--limit", "2", "--device", "cpu", "--json", str(report)])
    text = capsys.readouterr().out
    for label in ("pixel accuracy", "mean accuracy", "mean IU", "frequency weighted IU",
                  "grey matter", "Dice"):
        assert label in text
    data = json.loads(report.read_text())
    assert data["data"] == "brain" and data["split"] == "val" and data["images"] == 2
    matrix = data["confusion_matrix"]
    assert len(matrix) == 3 and sum(map(sum, matrix)) == data["metrics"]["pixels"] > 0
    # the same images and weights as the last validation of the saved epoch
    assert data["metrics"]["mean_iou"] == pytest.approx(load_checkpoint(best).card.metrics[
        "mean_iou"], abs=1e-6)


@pytest.mark.parametrize("argv,message", [
    (["train", "segformer", "--data", "brain"], "unknown model 'segformer'"),
    (["train", "unet", "--data", "no_such_data"], "unknown dataset 'no_such_data'"),
    (["train", "fcn8s", "--data", "brain", "--batch-norm"], "--batch-norm"),
    (["train", "unet", "--data", "brain", "--backbone-weights", "x.pth"], "--backbone-weights"),
    (["eval", "missing.pt", "--data", "brain"], "does not exist"),
])
def test_bad_input_exits_1_with_a_message(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _fails(capsys, argv + ["--device", "cpu"])
    assert message in err
    assert not list(tmp_path.iterdir())  # nothing written, not even a partial checkpoint


def test_missing_output_folder_fails_before_training(tmp_path, capsys):
    err = _fails(capsys, ["train", "unet", *TINY, "-o", str(tmp_path / "nope" / "m.pt")])
    assert "does not exist" in err and "mkdir" in err
    assert not (tmp_path / "nope").exists()


def test_bad_json_folder_fails_before_evaluating(tiny_run, tmp_path, capsys):
    best, _ = tiny_run
    err = _fails(capsys, ["eval", str(best), "--json", str(tmp_path / "nope" / "m.json")])
    assert "does not exist" in err


def test_valid_unet_trains_on_reflection_padded_crops(tmp_path):
    out = _train(tmp_path, "--epochs", "1", "--limit-train", "4", "--limit-val", "1",
                 arch="unet_valid")
    card = load_checkpoint(out).card
    assert card.output_mode == "valid"
    # the whole 197x233 val image was scored, not a centre crop
    assert card.metrics["pixels"] == 197 * 233


def test_image_size_parsing():
    from segdeploy.errors import UsageError
    from segdeploy.training.config import parse_size

    assert parse_size("192") == (192, 192) and parse_size("160x224") == (160, 224)
    assert parse_size("full") is None and parse_size(96) == (96, 96)
    for bad in ("0", "axb", "1x2x3", "-5"):
        with pytest.raises(UsageError, match="--image-size"):
            parse_size(bad)


def test_eval_crf_prints_both_rows_and_scores_the_refined_masks(tiny_run, tmp_path, capsys):
    import numpy as np

    from segdeploy.data import dataset_for_model
    from segdeploy.metrics import BoundaryF, ConfusionMatrix
    from segdeploy.runtime.crf import CRFParams, refine_mask
    from segdeploy.training.evaluate import Geometry, predict_logits

    best, _ = tiny_run
    report = tmp_path / "metrics.json"
    main(["eval", str(best), "--limit", "2", "--device", "cpu", "--crf", "--json", str(report)])
    text = capsys.readouterr().out
    assert "without CRF" in text and "with CRF" in text and "boundary F" in text
    assert "no tuned CRF parameters" in text  # a checkpoint's card holds none: defaults
    crf = json.loads(report.read_text())["crf"]
    assert crf["params"] == CRFParams().to_dict() and crf["seconds_per_megapixel"] > 0
    # the with-CRF row is what refine_mask makes of the model's logits, image by image
    model, card = load_model(best, map_location="cpu")
    ds = dataset_for_model(card, None, "val")
    cm, bf = ConfusionMatrix(3), BoundaryF(3)
    for i in range(2):
        image, mask = ds[i]
        logits = predict_logits(model, image, card.mean, card.std, Geometry.of(card),
                                torch.device("cpu"))[0].detach().numpy()
        refined = refine_mask(logits, image, CRFParams())
        cm.update(refined, mask)
        bf.update(refined, mask)
    assert crf["with_CRF"]["mean_iou"] == pytest.approx(cm.compute()["mean_iou"])
    assert crf["with_CRF"]["boundary_f"] == pytest.approx(bf.compute()["mean"])
    assert crf["without_CRF"]["mean_iou"] == pytest.approx(
        json.loads(report.read_text())["metrics"]["mean_iou"])
    assert np.isfinite(crf["without_CRF"]["boundary_f"])
