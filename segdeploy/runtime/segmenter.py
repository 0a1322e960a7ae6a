"""`Segmenter`: images in, class-id masks out, on ONNX Runtime or TensorRT.

    seg = Segmenter.load("fcn8s.plan")        # or "fcn8s.onnx" -> ONNX Runtime
    mask = seg.predict(frame)                 # HxWx3 uint8 -> HxW class ids

The model's own metadata (ExportInfo: classes, mean/std, size rules, intensity mapping, what
the graph does in-graph) drives everything: 16-bit / float images are mapped to 0..255 as in
training, images are padded by reflection to a size the model and the engine's profiles
accept (by default a multiple of the model's output stride, so that every image pools on the
grid it was trained on), normalised unless the graph does it, and the mask is cropped back.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, overload

import numpy as np

from segdeploy.errors import ArtifactError, InputError, UsageError
from segdeploy.manifest import ExportInfo
from segdeploy.precision import Precision
from segdeploy.runtime.auto_backend import is_auto, load_auto
from segdeploy.runtime.backends import backend_for
from segdeploy.runtime.card_hint import card_hint
from segdeploy.runtime.image_input import (
    CLIP_NOTICE,
    ClippingNotice,
    as_array,
    as_image,
    check_layout,
    clipped_share,
)
from segdeploy.runtime.memory import (
    DEFAULT_BYTES_PER_PIXEL,
    default_budget,
    parse_bytes,
)
from segdeploy.runtime.preprocess import (
    PadLayout,
    SizeBox,
    argmax_classes,
    as_masks,
    choose_padding,
    crop_offsets,
    reflect_pad,
    size_boxes,
    to_model_input,
)
from segdeploy.runtime.runner import Runner
from segdeploy.runtime.segmenter_tiling import TilingMixin, Want

if TYPE_CHECKING:
    from segdeploy.runtime.crf import CRFParams
    from segdeploy.runtime.stream import OnError, SegmentStream



class Segmenter(TilingMixin):
    """Images in, class-id masks out, with an exported model and no torch.

        >>> seg = Segmenter.load("unet_brain.onnx")          # .plan -> TensorRT
        >>> mask = seg.predict("slice.png")                  # or an HxWxC array, a PIL image
        >>> seg.classes[mask[100, 120]]                      # 'white matter'
        >>> masks = seg.predict([im1, im2])                  # any sizes; a list back

    The model's card (`card`: classes, normalisation, size rules, intensity mapping) says how
    images are fed; padding, normalisation, cropping and the argmax (or a binary head's
    threshold) happen here. Large images are tiled to stay within `memory_budget`.
    Use it as a context manager, or call close(), to release the session or engine.
    """

    def __init__(self, runner: Runner, info: ExportInfo, *,
                 memory_budget: int | str | None = None, pad_to_stride: bool = True) -> None:
        #: untiled predictions estimated above this many bytes are tiled (see memory.py)
        self.memory_budget = default_budget() if memory_budget is None else parse_bytes(
            memory_budget)
        self.bytes_per_pixel = DEFAULT_BYTES_PER_PIXEL
        self._memory_measured = False
        self._radius: int | None = None  # how far the model looks (receptive.py), measured once
        #: where the one auto-tiling notice goes (default: warnings.warn AutoTileNotice)
        self.notify: Callable[[str], None] | None = None
        self._told: set[str] = set()  #: the once-only notices given (see _tell)
        #: agreement with ONNX Runtime of an INT8 file's check run at load (None: not checked)
        self.int8_agreement: float | None = None
        self.runner = runner.activate()
        self.info = info
        #: the model card: arch, classes, mean/std, size rules, intensity mapping, threshold
        self.card = info.card
        #: how 16-bit / float images become the 0..255 the model saw (the card's)
        self.intensity = self.card.intensity_mapping()
        self.pad_to_stride = bool(pad_to_stride)
        specs = runner.input_specs()
        if info.input_name not in specs:
            raise ArtifactError(f"model input {info.input_name!r} named in its metadata is not "
                                f"among the graph inputs {sorted(specs)}",
                                fix="re-export the model with `segdeploy export`")
        spec = specs[info.input_name]
        self._spec = spec
        self._layout = info.input_layout.upper() if spec.dtype == np.uint8 else "NCHW"
        if spec.rank != 4 or self._layout not in ("NCHW", "NHWC"):
            raise ArtifactError(f"model input is {spec.describe()} with layout {self._layout}",
                                expected="a 4-D NCHW (or NHWC uint8) image input")
        c = spec.shape[1 if self._layout == "NCHW" else 3]
        #: channels the model takes (1: grey, 3: RGB); images are converted to it
        self.channels = int(c) if c else self.card.in_channels
        self._boxes = size_boxes(spec, self._layout)
        outputs = runner.output_specs()
        self._logits_name = next((n for n in info.output_names if n != "mask" and n in outputs),
                                 next(iter(outputs)))
        self._mask_name = "mask" if info.argmax_in_graph and "mask" in outputs else None
        self._align = self._min_align = max(self.card.size_multiple, 1)
        self._tile_align = max(self._align, self.card.output_stride, 1)
        self._margin = (0, 0)
        self._base = 0
        if self.pad_to_stride:  # as ModelCard.aligned_size
            self._align = self.card.alignment(stride=True)
        if self.card.output_mode == "valid":
            # Input sizes min_size + k * stride pool evenly, so the output is centred.
            self._align = max(self._align, self.card.output_stride, 1)
            self._base = self.card.min_size
            self._margin = self._measure_margin()

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], *, backend: str | None = None,
             providers: str | Sequence[Any] | None = None, threads: int | None = None,
             memory_budget: int | str | None = None, precision: str | None = None,
             pad_to_stride: bool = True, crosscheck: bool = True,
             notify: Callable[[str], None] | None = None, **options: Any) -> Segmenter:
        """Open an .onnx (ONNX Runtime, or OpenVINO with backend="openvino") or a
        .plan/.engine (TensorRT) file; `runtime/backends.py` lists every backend.

        providers apply to ONNX Runtime, threads to ONNX Runtime and OpenVINO, precision
        ("auto" | "fp32" | "bf16") to OpenVINO (a backend's `accepted_options`; others are a
        UsageError); other keyword options go to the runner
        (session_options=, spinning=, io_binding= for ONNX Runtime; cuda_graph=True,
        device=1 for TensorRT). memory_budget (bytes or '4G'; default half the available
        memory): predict() tiles images whose untiled run would need more.
        pad_to_stride=False pads only as much as the model requires (min_size,
        size_multiple), as segdeploy did before stride-aligned inference. An INT8 file on a
        backend that can mis-run QDQ graphs (OpenVINO) is checked against ONNX Runtime once
        (`int8_agreement`); crosscheck=False skips that. backend="auto" runs an INT8 U8S8
        file on OpenVINO when that check passes, else as without it (runtime/auto_backend.py).
        notify: where notices go (`self.notify`), from the load on.
        "triton://HOST:8000/NAME" (HTTP) or "grpc://HOST:8001/NAME" returns a client of a
        model `segdeploy triton` serves, with the same predict() (segdeploy.serving).
        """
        if isinstance(path, str) and path.startswith(("triton://", "grpc://")):
            from segdeploy.serving.triton_client import connect

            given = [k for k, v in (("backend", backend), ("providers", providers),
                                    ("threads", threads), ("precision", precision),
                                    ("memory_budget", memory_budget)) if v is not None]
            # the client duck-types Segmenter's public API (predict, classes, close, with)
            return cast("Segmenter", connect(path, *given, **options))
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"model file {path} does not exist",
                                fix="check the path; `segdeploy export` writes .onnx files "
                                    "and `segdeploy build` writes .plan files")
        if is_auto(backend):
            return load_auto(cls, path, providers=providers, precision=precision,
                             load=dict(threads=threads, memory_budget=memory_budget,
                                       pad_to_stride=pad_to_stride, notify=notify),
                             runner_options=options)
        spec = backend_for(path, backend)
        runner = spec.runner(path, providers=providers, threads=threads, precision=precision,
                             **options)
        try:
            runner.activate()
            info = ExportInfo.from_metadata_props(runner.metadata(), source=str(path),
                                                  card_hint=card_hint(runner))
            seg = cls(runner, info, memory_budget=memory_budget, pad_to_stride=pad_to_stride)
            seg.notify = notify
            quantized = info.precision is Precision.INT8 or runner.quantized
            if spec.crosscheck_int8 and quantized and crosscheck:
                from segdeploy.runtime.int8_crosscheck import crosscheck as check

                seg.int8_agreement = check(seg, lambda: cls.load(
                    path, backend="onnxruntime", providers="cpu", threads=threads,
                    pad_to_stride=pad_to_stride), spec.label or spec.name)
            return seg
        except BaseException:
            runner.close()
            raise

    def close(self) -> None:
        """Release the session or engine (and its device memory); safe to call twice."""
        self.runner.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Segmenter({self.card.arch}, {self.num_classes} classes, "
                f"backend={self.runner.name}, input={self._spec.describe()})")

    @property
    def classes(self) -> list[str]:
        """Class names; mask value i is classes[i]."""
        return list(self.card.classes)

    @property
    def num_classes(self) -> int:
        """How many classes masks hold (2 for a binary, one-channel head)."""
        return self.card.num_classes

    @property
    def mask_dtype(self) -> np.dtype:
        """dtype of returned masks: uint8 up to 255 classes, else int32."""
        return np.dtype(np.uint8 if self.num_classes < 256 else np.int32)

    @property
    def static_size(self) -> tuple[int, int] | None:
        """(H, W) of a `--static-size` graph (adaptive pooling to fixed bins): images are
        resized to it and logits back. Other fixed-shape graphs keep padding and tiling."""
        return self.card.fixed_size()

    @property
    def max_size(self) -> tuple[int | None, int | None]:
        """(height, width) of the largest input any engine profile accepts, each None when
        unbounded (ONNX Runtime, OpenVINO); larger images go through predict_tiled."""
        def largest(values: list[int | None]) -> int | None:
            return None if None in values else max(v for v in values if v is not None)
        return (largest([b.height[1] for b in self._boxes]),
                largest([b.width[1] for b in self._boxes]))

    # -- public API ------------------------------------------------------------------------
    @overload
    def predict(self, image: np.ndarray | str | os.PathLike[str] | Any, *,
                crf: bool | CRFParams | None = None) -> np.ndarray: ...

    @overload
    def predict(self, image: list[Any] | tuple[Any, ...], *,
                crf: bool | CRFParams | None = None) -> list[np.ndarray]: ...

    def predict(self, image: Any, *, crf: bool | CRFParams | None = None
                ) -> np.ndarray | list[np.ndarray]:
        """HxWxC (or HxW) image -> HxW class ids; NxHxWxC -> NxHxW; a list -> a list.

        An image is an array, a file path or a PIL image. uint8 pixels are fed as they are;
        uint16 / integer / float pixels (16-bit scans, microscopy, MRI slices) are first
        mapped to 0..255 by the card's intensity mapping, exactly as the training images
        were (`self.intensity`). A normalised float N x C x H x W tensor goes to logits().
        crf=True refines the masks with the dense CRF (the card's tuned parameters, else
        defaults), crf=CRFParams(...) with those (runtime/segmenter_crf.py; untiled)."""
        if crf:
            from segdeploy.runtime.segmenter_crf import predict_crf

            return predict_crf(self, image, crf)
        if isinstance(image, list | tuple):
            return self._predict_list(image)
        image = as_array(image, self.channels)
        if image.ndim == 4:
            check_layout(image, self.channels)
            batch = self._as_batch(image)
            if self._needs_tiling(*batch.shape[:3]):
                return np.stack([self._predict_auto_tiled(b) for b in batch])
            return self._run_aligned(batch, "mask")
        img = self._as_image(image)
        if self._needs_tiling(1, *img.shape[:2]):
            return self._predict_auto_tiled(img)
        return self._run_aligned(img[None], "mask")[0]

    def stream(self, frames: Iterable[Any], *, prefetch: int = 4, on_error: OnError = "skip",
               workers: int | None = None, keep_images: bool = False,
               device_inputs: bool | None = None, infer_workers: int = 1) -> SegmentStream:
        """Masks of many frames (arrays, callables returning one, or `stream.Frame`), in
        input order, with decoding and pre-processing ahead in worker threads, inference
        back to back and post-processing behind (runtime/stream.py). Masks equal predict()'s.
        A failed frame is reported by index (`.errors`, `.results()`); on_error="raise"
        stops there. On TensorRT, inputs are double-buffered on the GPU (device_inputs);
        infer_workers > 1 runs that many inferences at once (CPU sessions of one thread)."""
        from segdeploy.runtime.stream import SegmentStream

        return SegmentStream(self, frames, prefetch=prefetch, on_error=on_error,
                             workers=workers, keep_images=keep_images,
                             device_inputs=device_inputs, infer_workers=infer_workers)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw logits of an already normalised float32 N x C x H x W batch (no padding)."""
        if self._spec.dtype == np.uint8:
            raise UsageError("this model normalises in-graph and takes uint8 images",
                             fix="use predict() / image_logits() with uint8 images")
        if not isinstance(batch, np.ndarray) or batch.ndim != 4:
            raise InputError(f"logits() got {getattr(batch, 'shape', type(batch).__name__)}",
                             expected=f"a float32 N x {self.channels} x H x W array")
        return self.runner.infer({self.info.input_name: batch},
                                 output_names=[self._logits_name])[self._logits_name]

    def image_logits(self, image: np.ndarray) -> np.ndarray:
        """K x H x W float32 logits of one image, aligned with its pixels."""
        return self._run_aligned(self._as_image(image)[None], "logits")[0]

    # -- internals -------------------------------------------------------------------------
    def _as_image(self, image: Any) -> np.ndarray:
        pixels = as_array(image, self.channels)
        if "clipping" not in self._told and (share := clipped_share(pixels, self.intensity)) \
                > CLIP_NOTICE:
            low, high = self.intensity.low, self.intensity.high
            self._tell(f"{100 * share:.0f}% of this image's pixels lie outside the intensity "
                       f"window the model was trained with ({low:g}..{high:g}) and are "
                       "clipped: is it the same kind of image (bit depth, modality)?",
                       ClippingNotice, once="clipping")
        return as_image(pixels, self.channels, self.intensity)

    def _tell(self, message: str, category: type[Warning], *, once: str | None = None) -> None:
        """A notice to `notify` (the CLI prints it) or as a warning (Python); with `once`,
        only the first notice of that kind (a key in `_told`) per Segmenter."""
        if once is not None:
            if once in self._told:
                return
            self._told.add(once)
        if self.notify is not None:
            self.notify(message)
        else:
            warnings.warn(message, category, stacklevel=4)

    def _as_batch(self, batch: np.ndarray) -> np.ndarray:
        if min(batch.shape) < 1:
            raise InputError(f"batch has shape {batch.shape} (no pixels or no images)",
                             expected="N x H x W x C with every dimension >= 1")
        if batch.dtype == np.uint8 and batch.shape[-1] == self.channels:
            return batch
        return np.stack([self._as_image(b) for b in batch])

    def _predict_list(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        prepared = [self._as_image(im) for im in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(prepared):
            by_size.setdefault(im.shape[:2], []).append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(prepared)
        for (h, w), indices in by_size.items():
            if self._needs_tiling(len(indices), h, w):
                for i in indices:
                    out[i] = (self._predict_auto_tiled(prepared[i]) if self._needs_tiling(1, h, w)
                              else self._run_aligned(prepared[i][None], "mask")[0])
                continue
            masks = self._run_aligned(np.stack([prepared[i] for i in indices]), "mask")
            for i, mask in zip(indices, masks, strict=True):
                out[i] = mask
        return out

    def _run_aligned(self, batch: np.ndarray, want: Want) -> np.ndarray:
        """Pad, infer and crop an N x H x W x C uint8 batch: masks or logits over its pixels."""
        h, w = batch.shape[1:3]
        fixed = self.static_size
        if fixed is not None and (h, w) != fixed:
            from segdeploy.runtime.resize import resize_images, resize_logits

            logits = resize_logits(self._infer_batch(resize_images(batch, fixed), "logits"),
                                   (h, w))
            if want == "logits":
                return logits
            return argmax_classes(logits, self.mask_dtype, self.card.threshold)
        for _ in range(4):  # a valid-mode model may ask for more context than measured
            layout = self._padding(h, w)
            padded = reflect_pad(batch, layout)
            out = self._infer_batch(padded, want, layout.box)
            start = crop_offsets(layout, padded.shape[1:3], out.shape[-2:], (h, w))
            if start is not None:
                return self._as_wanted(out[..., start[0]:start[0] + h, start[1]:start[1] + w],
                                       want)
            in_h, in_w = padded.shape[1:3]
            self._margin = (max(self._margin[0] + 1, (in_h - out.shape[-2] + 1) // 2),
                            max(self._margin[1] + 1, (in_w - out.shape[-1] + 1) // 2))
        raise ArtifactError(f"the model's output {out.shape[-2:]} does not cover the image "
                            f"{h}x{w} even with {self._margin} pixels of padding",
                            expected="output_mode 'same', or 'valid' with a centred output")

    def _infer_batch(self, batch: np.ndarray, want: Want, box: SizeBox | None = None) -> np.ndarray:
        """Run an N x H x W x C uint8 batch of a valid size in chunks the engine profile
        allows: N x H' x W' masks (the graph's, or per chunk when there are several) or
        N x K x H' x W' logits, made masks after cropping (the argmax skips the padding)."""
        box = box or self._boxes[0]
        lo, hi = box.batch
        step = min(hi or len(batch), len(batch))
        name = self._mask_name if (want == "mask" and self._mask_name) else self._logits_name
        results = []
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            n = len(chunk)
            if n < lo:  # an engine whose profile starts above this batch size
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], lo - n, axis=0)])
            feed = to_model_input(chunk, dtype=self._spec.dtype, layout=self._layout,
                                  mean=self.card.mean, std=self.card.std)
            out = self.runner.infer({self.info.input_name: feed}, output_names=[name],
                                    check=False)[name][:n]
            if want == "mask" and out.ndim == 4 and step < len(batch):
                # hold one chunk's logits at most
                out = argmax_classes(out, self.mask_dtype, self.card.threshold)
            results.append(out)
        return results[0] if len(results) == 1 else np.concatenate(results)

    def _as_wanted(self, out: np.ndarray, want: Want) -> np.ndarray:
        """Cropped `_infer_batch` output -> masks in mask_dtype, or the logits as they are."""
        return as_masks(out, self.mask_dtype, self.card.threshold) if want == "mask" else out

    def _padding(self, h: int, w: int) -> PadLayout:
        """Padding to the aligned size; where an engine profile is too small for the stride
        alignment, the smallest size the model itself accepts."""
        try:
            return choose_padding(h, w, boxes=self._boxes, multiple=self._align,
                                  min_size=self.card.min_size, margin=self._margin,
                                  base=self._base)
        except InputError:
            if self._align == self._min_align or self.card.output_mode != "same":
                raise
            return choose_padding(h, w, boxes=self._boxes, multiple=self._min_align,
                                  min_size=self.card.min_size, margin=self._margin,
                                  base=self._base)
