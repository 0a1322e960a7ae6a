"""`Segmenter.predict(image, crf=...)`: masks refined by the dense CRF (runtime/crf.py).

The CRF needs every pixel's class probabilities, so the model's logits (not the graph's
argmax) are read, over the whole image at once (no tiling), and turned into probabilities
(softmax; a binary head's sigmoid around the card's threshold). `crf=True` takes the
parameters tuned for this model (`segdeploy crf-tune`, stored in the card), else
DeepLab v2's defaults with a one-time notice; a `CRFParams` is used as given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from segdeploy.errors import UsageError
from segdeploy.runtime.crf import CRFParams, Engine, card_params, have_pydensecrf, refine_mask

#: `seg` below is a runtime.segmenter.Segmenter (typed Any: segmenter.py imports this module)


class CRFNotice(UserWarning):
    """The model card holds no tuned CRF parameters (defaults are used), or the C++ engine
    is missing (the numpy one runs)."""


def card_or_defaults(card: Any, tell: Callable[[str], None]) -> CRFParams:
    """The CRF parameters tuned for this model (its card's), else DeepLab v2's defaults with
    a note to `tell` saying how to tune them (predict's and eval's)."""
    tuned = card_params(card.crf)
    if tuned is not None:
        return tuned
    tell(f"{card.arch} has no tuned CRF parameters in its card: using DeepLab v2's defaults "
         f"({CRFParams().describe()}); `segdeploy crf-tune MODEL --data DATA` (an exported "
         ".onnx or .plan) tunes them for this model")
    return CRFParams()


def resolve(seg: Any, crf: bool | CRFParams | dict[str, Any]) -> CRFParams:
    """The parameters `crf` asks for: given ones, else the card's, else defaults (noticed)."""
    if isinstance(crf, CRFParams):
        return crf
    if isinstance(crf, dict):
        return CRFParams.from_dict(crf)
    if crf is not True:
        raise UsageError(f"crf={crf!r}", expected="True, a CRFParams or a dict of them")
    return card_or_defaults(seg.card, lambda note: seg._tell(note, CRFNotice,
                                                            once="crf defaults"))


def predict_crf(seg: Any, image: Any, crf: bool | CRFParams | dict[str, Any], *,
                engine: Engine = "auto") -> np.ndarray | list[np.ndarray]:
    """predict() with the dense CRF: an image -> H x W class ids, N x H x W x C -> N x H x W,
    a list -> a list."""
    params = resolve(seg, crf)
    if engine == "auto" and not have_pydensecrf():
        seg._tell("pydensecrf2 (the crf extra) is not installed: the numpy CRF runs, with the "
                  "same masks, about 3x slower; pip install 'segdeploy[crf]' (needs g++ and "
                  "the Python headers)", CRFNotice, once="crf engine")
    if isinstance(image, list | tuple):
        return [_one(seg, im, params, engine) for im in image]
    from segdeploy.runtime.image_input import as_array, check_layout

    pixels = as_array(image, seg.channels)
    if pixels.ndim == 4:
        check_layout(pixels, seg.channels)
        return np.stack([_one(seg, im, params, engine) for im in pixels])
    return _one(seg, pixels, params, engine)


def _one(seg: Any, image: Any, params: CRFParams, engine: Engine) -> np.ndarray:
    img = seg._as_image(image)
    logits = seg._run_aligned(img[None], "logits")[0]
    if logits.ndim != 3:
        raise UsageError(f"{seg.card.arch}'s graph outputs class ids only, no logits",
                         expected="a logits output (N x K x H x W) for the CRF's "
                                  "probabilities",
                         fix="export the model with its logits output (the default)")
    return refine_mask(logits, img, params, threshold=seg.card.threshold, engine=engine,
                       dtype=seg.mask_dtype)
