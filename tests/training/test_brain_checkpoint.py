"""The shared `brain_checkpoint` fixture is good enough for parity tests to mean something."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.reference_models.checkpoint import load_checkpoint, load_model


@pytest.mark.slow
def test_brain_checkpoint_segments_brain(brain_checkpoint):
    ckpt = load_checkpoint(brain_checkpoint)
    card = ckpt.card
    assert card.arch == "unet" and card.config["batch_norm"] is True
    assert card.trained_on["name"] == "brain" and card.trained_on["split"] == "train"
    assert card.metrics["mean_iou"] > 0.6, card.metrics
    assert brain_checkpoint.with_name("unet_brain.last.pt").is_file()

    # independent of the training loop's own validation: argmax agrees with the labels
    import torch

    from segdeploy.data import get_dataset
    from segdeploy.imaging import normalize

    model, card = load_model(brain_checkpoint)
    image, mask = get_dataset("brain", split="val")[5]
    x = torch.from_numpy(normalize(image, card.mean, card.std))[None]
    with torch.no_grad():
        pred = model(x).argmax(1)[0].numpy()
    assert pred.shape == mask.shape == (197, 233)
    assert np.mean(pred == mask) > 0.85
    assert set(np.unique(pred)) == {0, 1, 2}
