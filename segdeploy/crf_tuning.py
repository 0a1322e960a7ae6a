"""Tune the dense CRF for one exported model on a validation split, and store what wins in
the artifact's card (`segdeploy crf-tune`). No torch.

CRF parameters are dataset- and model-dependent: on a coarse FCN-32s map the bilateral
kernel snaps masks to edges; on an already sharp map the same parameters lose points. So
the model runs once per validation image (probabilities cached), then a coordinate search
over the kernels' widths and weights re-runs only the CRF, within a time and trial budget.
The parameters are written (atomically) only when they beat the CRF-free masks on mIoU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy import __version__
from segdeploy.errors import ArtifactError
from segdeploy.metrics import BoundaryF, ConfusionMatrix
from segdeploy.runtime.crf import CRFParams, Engine, dense_crf, have_pydensecrf, probabilities

#: values tried per parameter, in the order the search visits the parameters
SEARCH_SPACE: dict[str, tuple[float, ...]] = {
    "bilateral_srgb": (2, 3, 5, 8, 13, 20, 30, 50, 80),
    "bilateral_sxy": (5, 10, 20, 30, 50, 80, 120, 200),
    "bilateral_w": (1, 2, 3, 4, 5, 6, 8, 10, 15),
    "gaussian_w": (0, 1, 3, 5),
    "iterations": (3, 5, 10),
    "gaussian_sxy": (1, 3, 5),
}


@dataclass
class Sample:
    """One validation image as the CRF sees it: pixels, the model's probabilities, truth."""

    image: np.ndarray  # H x W x C uint8, as the model was fed
    probs: np.ndarray  # K x H x W float32
    target: np.ndarray  # H x W class ids (255: ignore)


@dataclass(frozen=True)
class Scores:
    mean_iou: float
    boundary_f: float
    pixel_accuracy: float

    def better_than(self, other: Scores) -> bool:
        """mIoU decides; boundary F breaks a tie."""
        return (self.mean_iou, self.boundary_f) > (other.mean_iou, other.boundary_f)

    def to_dict(self) -> dict[str, float]:
        return {"mean_iou": round(self.mean_iou, 5), "boundary_f": round(self.boundary_f, 5),
                "pixel_accuracy": round(self.pixel_accuracy, 5)}


@dataclass
class TuneResult:
    without: Scores
    defaults: Scores
    best: Scores
    params: CRFParams
    trials: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "search done"
    seconds: float = 0.0
    #: the tuned CRF on images it was not tuned on (2-fold: each half with the parameters
    #: tuned on the other half), None where the search ran without a hold-out
    held_out: Scores | None = None

    def helps(self, min_gain: float = 0.0) -> bool:
        """Whether the tuned CRF beats the CRF-free masks on mIoU by more than min_gain: on
        the held-out halves where measured (tuning on the scored images flatters it), and
        on the whole split."""
        tuned = self.best.mean_iou > self.without.mean_iou + min_gain
        if self.held_out is None:
            return tuned
        return tuned and self.held_out.mean_iou > self.without.mean_iou + min_gain


def tune_checked(samples: Sequence[Sample], *, engine: Engine = "auto",
                 time_budget: float = 300.0, max_trials: int = 40, holdout: bool = True,
                 on_trial: Callable[[int, CRFParams, Scores], None] | None = None
                 ) -> TuneResult:
    """`tune` on every image, and (holdout, >= 2 images) a 2-fold check: the search run on
    the even images is scored on the odd ones and the other way round; each half-search
    gets a quarter of the time budget and the full trial budget."""
    t0 = time.perf_counter()
    held: Scores | None = None
    budget = time_budget
    if holdout and len(samples) >= 2:
        halves = (list(samples[0::2]), list(samples[1::2]))
        fits = [tune(h, engine=engine, time_budget=time_budget / 4, max_trials=max_trials,
                     on_trial=on_trial).params for h in halves]
        held = score_groups([(halves[0], fits[1]), (halves[1], fits[0])], engine=engine)
        budget = time_budget / 2
    result = tune(samples, engine=engine, time_budget=budget, max_trials=max_trials,
                  on_trial=on_trial)
    result.held_out = held
    result.seconds = time.perf_counter() - t0  # the half-searches included
    return result


def collect(seg: Any, dataset: Any, indices: Sequence[int],
            on_step: Callable[[], None] | None = None) -> list[Sample]:
    """Run the model once per image: (image, probabilities, target) for the search."""
    samples = []
    for i in indices:
        image, mask = dataset[i]
        logits = seg.image_logits(image)
        samples.append(Sample(np.ascontiguousarray(image),
                              probabilities(logits, seg.card.threshold), mask))
        if on_step is not None:
            on_step()
    return samples


def score(samples: Sequence[Sample], params: CRFParams | None, *, engine: Engine = "auto",
          tolerance: int = 2) -> Scores:
    """mIoU, boundary F and pixel accuracy of the masks (after the CRF unless params=None)."""
    return score_groups([(samples, params)], engine=engine, tolerance=tolerance)


def score_groups(groups: Sequence[tuple[Sequence[Sample], CRFParams | None]], *,
                 engine: Engine = "auto", tolerance: int = 2) -> Scores:
    """One score over several groups of images, each refined with its own parameters (the
    halves of a cross-validation)."""
    k = groups[0][0][0].probs.shape[0]
    cm, bf = ConfusionMatrix(k), BoundaryF(k, tolerance)
    for samples, params in groups:
        for s in samples:
            q = s.probs if params is None else dense_crf(s.probs, s.image, params,
                                                         engine=engine)
            pred = np.argmax(q, axis=0).astype(np.uint8 if k < 256 else np.int32)
            cm.update(pred, s.target)
            bf.update(pred, s.target)
    m, b = cm.compute(), bf.compute()
    return Scores(float(m["mean_iou"] or 0.0), float(b["mean"] or 0.0),
                  float(m["pixel_accuracy"] or 0.0))


def tune(samples: Sequence[Sample], *, engine: Engine = "auto", time_budget: float = 300.0,
         max_trials: int = 40, start: CRFParams | None = None,
         on_trial: Callable[[int, CRFParams, Scores], None] | None = None) -> TuneResult:
    """Coordinate search from `start` (DeepLab v2's defaults): each parameter in turn takes
    the value of SEARCH_SPACE that scores best with the others held, rounds repeat until
    nothing improves, the budget of seconds or trials runs out. The defaults count as the
    first trial."""
    t0 = time.perf_counter()
    without = score(samples, None)
    current = start or CRFParams()
    seen: dict[CRFParams, Scores] = {}
    trials: list[dict[str, Any]] = []

    def run(params: CRFParams) -> Scores:
        if params not in seen:
            seen[params] = score(samples, params, engine=engine)
            trials.append({"params": params.to_dict(), **seen[params].to_dict()})
            if on_trial is not None:
                on_trial(len(trials), params, seen[params])
        return seen[params]

    defaults = best = run(current)
    stopped = "search done"
    improved = True
    while improved and stopped == "search done":
        improved = False
        for name, values in SEARCH_SPACE.items():
            for value in values:
                if len(trials) >= max_trials:
                    stopped = f"trial budget ({max_trials})"
                elif time.perf_counter() - t0 > time_budget:
                    stopped = f"time budget ({time_budget:g} s)"
                if stopped != "search done":
                    break
                change: dict[str, Any] = {name: int(value) if name == "iterations"
                                          else float(value)}
                candidate = replace(current, **change)
                scores = run(candidate)
                if scores.better_than(best):
                    best, current, improved = scores, candidate, True
            if stopped != "search done":
                break
    return TuneResult(without, defaults, best, current, trials, stopped,
                      time.perf_counter() - t0)


def engine_name(engine: Engine) -> str:
    if engine == "auto":
        return "pydensecrf2" if have_pydensecrf() else "numpy"
    return engine


def card_entry(result: TuneResult, *, data: str, split: str, images: int,
               engine: Engine) -> dict[str, Any]:
    """What `ModelCard.crf` holds after a tuning that helped."""
    return {"params": result.params.to_dict(),
            "tuned_on": {"data": data, "split": split, "images": images,
                         "trials": len(result.trials), "engine": engine_name(engine),
                         "boundary_tolerance": 2, "without": result.without.to_dict(),
                         "with": result.best.to_dict(),
                         "held_out": (result.held_out.to_dict()
                                      if result.held_out is not None else None),
                         "segdeploy_version": __version__}}


def write_card_crf(path: str | os.PathLike[str], crf: dict[str, Any] | None) -> Path:
    """Store `crf` in the artifact's card, atomically: an .onnx's metadata_props, or a
    TensorRT plan's .plan.json sidecar (the plan itself is untouched). Returns the file."""
    from segdeploy.artifacts import (
        is_onnx,
        is_plan,
        read_plan_manifest,
        write_plan_manifest,
    )

    path = Path(path)
    if is_plan(path):
        manifest = read_plan_manifest(path)
        manifest.export.card.crf = crf
        return write_plan_manifest(path, manifest)
    if not is_onnx(path):
        raise ArtifactError(f"cannot store CRF parameters in {path.name}",
                            expected="an .onnx file or a TensorRT plan with its .plan.json")
    from segdeploy.onnx_metadata import load_onnx, read_onnx_export_info, save_with_metadata

    info = read_onnx_export_info(path)
    info.card.crf = crf
    model = load_onnx(path, purpose="to write the tuned CRF parameters into the ONNX card")
    return save_with_metadata(model, info.to_metadata_props(), path)
