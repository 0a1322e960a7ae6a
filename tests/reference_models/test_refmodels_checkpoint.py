"""Checkpoint round trip and every bad file a user can hand us."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from segdeploy.errors import CheckpointError, ModelError
from segdeploy.manifest import ModelCard
from segdeploy.reference_models import get_model
from segdeploy.reference_models.checkpoint import (
    FORMAT,
    SCHEMA_VERSION,
    card_from_model,
    load_checkpoint,
    load_model,
    save_checkpoint,
)


def _model_and_card() -> tuple[torch.nn.Module, ModelCard]:
    torch.manual_seed(0)
    model = get_model("unet", num_classes=3, width=0.125, in_channels=1)
    card = card_from_model(model, classes=["bg", "grey", "white"], train_size=[197, 233],
                           trained_on={"name": "brain", "images": np.int64(120)},
                           metrics={"mean_iou": np.float32(0.75)})
    return model, card


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module, ModelCard]:
    model, card = _model_and_card()
    # a little training so BN statistics and optimizer state are non-trivial
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    loss = model(torch.randn(2, 1, 32, 40)).logsumexp(1).mean()
    loss.backward()
    opt.step()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, card, extra={"epoch": 3, "optimizer": opt.state_dict()})
    return path, model.eval(), card


def test_round_trip(saved: tuple[Path, torch.nn.Module, ModelCard]) -> None:
    path, model, card = saved
    ckpt = load_checkpoint(path)
    assert ckpt.card == card
    assert ckpt.card.metrics["mean_iou"] == pytest.approx(0.75)
    assert ckpt.card.channel_mode == "grey" and ckpt.card.in_channels == 1
    assert ckpt.extra["epoch"] == 3
    opt = torch.optim.Adam(model.parameters())
    opt.load_state_dict(ckpt.extra["optimizer"])  # resume works
    loaded, card2 = load_model(path)
    assert card2 == card and not loaded.training
    x = torch.randn(2, 1, 45, 51)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["format"] == FORMAT and raw["schema_version"] == SCHEMA_VERSION


def test_card_from_model_copies_meta() -> None:
    model = get_model("fcn8s", num_classes=2, width=0.125)
    card = card_from_model(model)
    assert card.arch == "fcn8s" and card.classes == ["class_0", "class_1"]
    assert card.config == model.meta["config"] and card.output_stride == 32
    assert len(card.mean) == 3 and card.channel_mode == "rgb"
    valid = card_from_model(get_model("unet_valid", num_classes=2, width=0.125))
    assert valid.output_mode == "valid" and valid.min_size == 188


def test_save_is_atomic_and_rejects_objects(tmp_path: Path) -> None:
    model, card = _model_and_card()
    path = tmp_path / "m.pt"
    with pytest.raises(CheckpointError, match="extra\\['bad'\\]"):
        save_checkpoint(path, model, card, extra={"bad": object()})
    assert list(tmp_path.iterdir()) == []
    other = card_from_model(get_model("fcn8s", num_classes=3, width=0.125))
    with pytest.raises(ModelError, match="fcn8s"):
        save_checkpoint(path, model, other)


def _expect(path: Path, match: str) -> CheckpointError:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.pt", "does not exist")
    _expect(tmp_path, "not a file")


def test_truncated_and_corrupt(saved: tuple[Path, torch.nn.Module, ModelCard],
                               tmp_path: Path) -> None:
    path = saved[0]
    data = path.read_bytes()
    for name, content in [("trunc.pt", data[: len(data) // 2]), ("empty.pt", b""),
                          ("garbage.pt", b"not a checkpoint at all\n" * 40)]:
        bad = tmp_path / name
        bad.write_bytes(content)
        _expect(bad, "truncated or corrupt")


def test_foreign_pickle_is_refused(tmp_path: Path) -> None:
    whole = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), whole)
    err = _expect(whole, "not a segdeploy checkpoint")
    assert "never unpickles code" in str(err)
    plain = tmp_path / "pickle.pkl"
    plain.write_bytes(pickle.dumps(Path("x")))
    _expect(plain, "never unpickles code")


def test_plain_state_dict_says_how_to_wrap(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(get_model("unet", num_classes=2, width=0.125).state_dict(), path)
    err = _expect(path, "plain state dict")
    assert "save_checkpoint" in str(err)
    other = tmp_path / "dict.pt"
    torch.save({"epoch": 1}, other)
    _expect(other, "not a segdeploy checkpoint")


def test_newer_schema(saved: tuple[Path, torch.nn.Module, ModelCard], tmp_path: Path) -> None:
    raw = torch.load(saved[0], weights_only=True)
    raw["schema_version"] = SCHEMA_VERSION + 1
    torch.save(raw, tmp_path / "new.pt")
    _expect(tmp_path / "new.pt", "newer")
    raw["schema_version"] = SCHEMA_VERSION
    raw["card"]["schema_version"] = 99
    torch.save(raw, tmp_path / "newcard.pt")
    _expect(tmp_path / "newcard.pt", "newer")


def test_unknown_arch_and_mismatched_weights(saved: tuple[Path, torch.nn.Module, ModelCard],
                                             tmp_path: Path) -> None:
    raw = torch.load(saved[0], weights_only=True)
    raw["card"]["arch"] = "segformer_b9"
    torch.save(raw, tmp_path / "arch.pt")
    load_checkpoint(tmp_path / "arch.pt")  # the card itself is readable
    with pytest.raises(CheckpointError, match="segformer_b9"):
        load_model(tmp_path / "arch.pt")
    raw = torch.load(saved[0], weights_only=True)
    raw["state_dict"]["head.extra"] = raw["state_dict"].pop("head.weight")
    torch.save(raw, tmp_path / "keys.pt")
    with pytest.raises(CheckpointError, match="head.weight"):
        load_model(tmp_path / "keys.pt")
    raw = torch.load(saved[0], weights_only=True)
    raw["card"]["config"]["width"] = 0.25
    torch.save(raw, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_model(tmp_path / "shape.pt")
