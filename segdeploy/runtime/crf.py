"""Dense CRF post-processing: snap a model's coarse masks to the image's edges.

The fully connected CRF of Krähenbühl & Koltun (NIPS 2011), as DeepLab v1/v2 put it behind
an FCN: the unary is -log of the model's softmax (a binary head's sigmoid), the pairwise
term a Potts model over two Gaussian kernels, one on position (smoothness) and one on
position and colour (the bilateral "appearance" kernel), solved by mean-field iterations.

Two engines compute it: `pydensecrf2` (C++, the `crf` extra, imported lazily) and, where it
is absent, a numpy re-implementation of the same permutohedral-lattice filter
(runtime/crf_fallback.py; tests check they agree). Both take the same feature matrices.

Grey images: the bilateral kernel compares the one intensity (features x, y, I instead of
x, y, R, G, B), so `bilateral_srgb` is in grey levels of the 0..255 image the model sees;
a grey image stored as RGB (a "grey3" model) is read as one channel too, so its edges weigh
the same as the grey model's (three equal channels would make every difference sqrt(3)
times larger).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from segdeploy.errors import ArtifactError, MissingDependencyError, UsageError

#: which implementation runs the mean field: "auto" = pydensecrf2 where installed
Engine = Literal["auto", "pydensecrf2", "numpy"]

#: probabilities are clipped here before the log (pydensecrf's unary_from_softmax default)
PROB_CLIP = 1e-5


@dataclass(frozen=True)
class CRFParams:
    """Mean-field iterations and the two Potts kernels' weights and widths (in pixels, and
    in 0..255 intensity levels for `bilateral_srgb`). Defaults: DeepLab v2's."""

    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_w: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 5.0
    bilateral_w: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or int(self.iterations) != self.iterations \
                or self.iterations < 1:
            raise UsageError(f"CRF iterations is {self.iterations!r}",
                             expected="an integer >= 1")
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb"):
            if not float(getattr(self, name)) > 0:
                raise UsageError(f"CRF {name} is {getattr(self, name)!r}",
                                 expected="a width > 0")
        for name in ("gaussian_w", "bilateral_w"):
            if not float(getattr(self, name)) >= 0:
                raise UsageError(f"CRF {name} is {getattr(self, name)!r}",
                                 expected="a weight >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CRFParams:
        """Read a card's `crf["params"]`; unknown keys are an error (a typo would otherwise
        silently fall back to a default)."""
        if not isinstance(data, dict):
            raise ArtifactError(f"CRF parameters are a {type(data).__name__}",
                                expected="a JSON object such as "
                                         f"{CRFParams().to_dict()}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ArtifactError(f"CRF parameters have unknown keys {unknown}",
                                expected=", ".join(sorted(names)))
        for k, v in data.items():
            kind = (int,) if k == "iterations" else (int, float)
            if isinstance(v, bool) or not isinstance(v, kind):
                raise ArtifactError(f"CRF parameter {k} is {v!r}",
                                    expected="an integer" if k == "iterations" else "a number")
        try:
            return cls(**data)
        except UsageError as exc:
            raise ArtifactError(f"CRF parameters {data!r} are invalid ({exc})") from exc

    def describe(self) -> str:
        return (f"{self.iterations} iterations, gaussian w={self.gaussian_w:g} "
                f"sxy={self.gaussian_sxy:g}, bilateral w={self.bilateral_w:g} "
                f"sxy={self.bilateral_sxy:g} srgb={self.bilateral_srgb:g}")


def card_params(crf: dict[str, Any] | None) -> CRFParams | None:
    """The tuned parameters a model card stores (`ModelCard.crf["params"]`), or None."""
    if not crf:
        return None
    return CRFParams.from_dict(crf.get("params", {}))


def probabilities(out: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """K x H x W logits -> K x H x W float32 class probabilities (softmax). A binary head
    (1 x H x W, `threshold` from the card) -> 2 x H x W, centred so that the CRF-free
    decision (probability 0.5) is the card's: sigmoid(x - t) on a logit output, and on an
    output already in 0..1 (a sigmoid in the graph) p with odds divided by t's."""
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 3:
        raise UsageError(f"logits of shape {out.shape}", expected="K x H x W")
    if out.shape[0] == 1:
        t = 0.0 if threshold is None else float(threshold)
        if 0.0 < t < 1.0 and float(out.min()) >= 0.0 and float(out.max()) <= 1.0:
            p = np.clip(out[0], PROB_CLIP, 1 - PROB_CLIP)
            z = np.log(p / (1 - p)) - np.log(t / (1 - t))
        else:
            z = out[0] - t
        fg = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1.0 - fg, fg]).astype(np.float32)
    shifted = out - out.max(axis=0, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def features(image: np.ndarray, params: CRFParams, *, grey: bool | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """(gaussian d=2, bilateral d=3 or 5) feature matrices, d x N float32, pixels in row-major
    order: (x, y) / sxy and the intensities / srgb (one channel for grey images)."""
    h, w = image.shape[:2]
    pix = image.reshape(h, w, -1)
    if grey is None:
        grey = pix.shape[2] == 1 or bool(np.all(pix == pix[..., :1]))
    if grey:
        pix = pix[..., :1]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pos = np.stack([xx.ravel(), yy.ravel()])
    gauss = pos / np.float32(params.gaussian_sxy)
    colour = pix.reshape(h * w, -1).T.astype(np.float32) / np.float32(params.bilateral_srgb)
    bilateral = np.concatenate([pos / np.float32(params.bilateral_sxy), colour])
    return np.ascontiguousarray(gauss), np.ascontiguousarray(bilateral)


def have_pydensecrf() -> bool:
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def dense_crf(probs: np.ndarray, image: np.ndarray, params: CRFParams | None = None, *,
              engine: Engine = "auto", grey: bool | None = None) -> np.ndarray:
    """K x H x W probabilities + the H x W x C uint8 image -> K x H x W refined probabilities
    (the mean field's marginals). engine="pydensecrf2" insists on the C++ one (the `crf`
    extra); "numpy" runs the fallback; "auto" takes pydensecrf2 where it is installed."""
    params = params or CRFParams()
    probs = np.asarray(probs, dtype=np.float32)
    k, h, w = probs.shape
    if image.shape[:2] != (h, w):
        raise UsageError(f"CRF image is {image.shape[:2]} but the probabilities {h}x{w}",
                         expected="the image the probabilities were computed on")
    unary = -np.log(np.clip(probs, PROB_CLIP, 1.0)).reshape(k, h * w)
    gauss, bilateral = features(image, params, grey=grey)
    if engine == "numpy" or (engine == "auto" and not have_pydensecrf()):
        from segdeploy.runtime.crf_fallback import mean_field

        q = mean_field(unary, [(gauss, params.gaussian_w), (bilateral, params.bilateral_w)],
                       params.iterations)
    else:
        q = _pydensecrf(unary, gauss, bilateral, params)
    return q.reshape(k, h, w)


def _pydensecrf(unary: np.ndarray, gauss: np.ndarray, bilateral: np.ndarray,
                params: CRFParams) -> np.ndarray:
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:
        raise MissingDependencyError(
            "pydensecrf2", extra="crf", purpose="for the C++ dense CRF",
            fix="pip install 'segdeploy[crf]' (builds pydensecrf2 from source: ~2.5 min, "
                "needs g++ and the Python headers); without it the numpy fallback runs "
                "(engine='numpy')") from exc
    k, n = unary.shape
    d = dcrf.DenseCRF(n, k)
    d.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    d.addPairwiseEnergy(gauss, compat=float(params.gaussian_w))
    d.addPairwiseEnergy(bilateral, compat=float(params.bilateral_w))
    return np.asarray(d.inference(int(params.iterations)), dtype=np.float32)


def refine_mask(logits: np.ndarray, image: np.ndarray, params: CRFParams | None = None, *,
                threshold: float | None = None, engine: Engine = "auto",
                grey: bool | None = None, dtype: Any = np.uint8) -> np.ndarray:
    """K x H x W logits (1 x H x W: a binary head) and their image -> H x W class ids after
    the dense CRF."""
    q = dense_crf(probabilities(logits, threshold), image, params, engine=engine, grey=grey)
    return np.argmax(q, axis=0).astype(dtype, copy=False)
