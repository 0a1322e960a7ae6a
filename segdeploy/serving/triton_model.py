"""Triton Python-backend model that runs `segdeploy.runtime.Segmenter` (copied as model.py).

`segdeploy triton` copies this file into REPO/NAME/1/model.py. Inside Triton it loads the
artifact beside it with the backend the config names, so padding, intensity mapping,
normalisation and cropping are exactly `Segmenter.predict`'s: masks equal in-process ones.
Each request carries an N x H x W x C uint8 batch (`allow_ragged_batch`: requests of other
sizes share an execution); images of one size across requests are run as one batch. A bad
request gets an error response naming the problem; the other requests still get masks.
The server's Python environment needs `pip install segdeploy` (numpy, onnxruntime).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

try:  # only inside Triton's Python backend; the checks below are importable anywhere
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover - outside Triton
    pb_utils = None

IMAGE, MASK, LOGITS = "IMAGE", "MASK", "LOGITS"
DEFAULT_MAX_PIXELS = 64 * 2**20


class BadRequest(ValueError):
    """A request this model refuses; its text goes back to the client."""


def check_batch(batch: Any, channels: int, max_pixels: int) -> np.ndarray:
    """The request's N x H x W x C uint8 array, or BadRequest saying what is wrong."""
    if not isinstance(batch, np.ndarray):
        raise BadRequest(f"input {IMAGE} is missing")
    if batch.dtype != np.uint8:
        raise BadRequest(f"input {IMAGE} has dtype {batch.dtype}; expected uint8 pixels")
    if batch.ndim != 4:
        raise BadRequest(f"input {IMAGE} has shape {list(batch.shape)}; expected "
                         f"[N, H, W, {channels}] (a batch of HxWxC images)")
    if min(batch.shape) < 1:
        raise BadRequest(f"input {IMAGE} has shape {list(batch.shape)}: no pixels; expected "
                         "every dimension >= 1")
    if batch.shape[3] != channels:
        raise BadRequest(f"input {IMAGE} has {batch.shape[3]} channels; this model takes "
                         f"{channels}")
    pixels = int(batch.shape[1]) * int(batch.shape[2])
    if pixels > max_pixels:
        raise BadRequest(f"image {batch.shape[1]}x{batch.shape[2]} has {pixels} pixels, above "
                         f"this model's max_image_pixels {max_pixels}")
    return batch


def parameters_of(model_config: dict[str, Any]) -> dict[str, str]:
    return {k: v.get("string_value", "") for k, v in model_config.get("parameters", {}).items()}


class TritonPythonModel:
    """Triton's Python-backend entry points: initialize, execute, finalize."""

    def initialize(self, args: dict[str, str]) -> None:
        from segdeploy.runtime import Segmenter

        config = json.loads(args["model_config"])
        params = parameters_of(config)
        folder = Path(args["model_repository"]) / args["model_version"]
        options: dict[str, Any] = {}
        backend = params.get("backend", "onnxruntime")
        if backend == "tensorrt":
            options["device"] = int(args.get("model_instance_device_id", 0) or 0)
        elif int(params.get("threads", "0") or 0) > 0:
            options["threads"] = int(params["threads"])
        self.segmenter = Segmenter.load(folder / params["artifact"], backend=backend, **options)
        self.channels = int(params.get("channels") or self.segmenter.channels)
        self.max_pixels = int(params.get("max_image_pixels") or DEFAULT_MAX_PIXELS)

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request, in order; bad ones carry an error."""
        batches: dict[int, np.ndarray] = {}
        responses: list[Any] = [None] * len(requests)
        for i, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, IMAGE)
            try:
                batches[i] = check_batch(None if tensor is None else tensor.as_numpy(),
                                         self.channels, self.max_pixels)
            except BadRequest as exc:
                responses[i] = _error(str(exc))
        masks = self._masks(batches)
        for i, request in enumerate(requests):
            if responses[i] is None:
                responses[i] = self._respond(request, batches[i], masks[i])
        return responses

    def _masks(self, batches: dict[int, np.ndarray]) -> dict[int, Any]:
        """Masks per request: every image in one Segmenter.predict call (it batches equal
        sizes); if that fails, request by request so one failure stays that request's."""
        images = [image for batch in batches.values() for image in batch]
        try:
            flat = list(self.segmenter.predict(images)) if images else []
        except Exception:  # noqa: BLE001 - retried per request below, which names the error
            return {i: self._one(batch) for i, batch in batches.items()}
        out: dict[int, Any] = {}
        start = 0
        for i, batch in batches.items():
            out[i] = np.stack(flat[start:start + len(batch)])
            start += len(batch)
        return out

    def _one(self, batch: np.ndarray) -> Any:
        try:
            return self.segmenter.predict(batch)
        except Exception as exc:  # noqa: BLE001 - becomes this request's error response
            return exc

    def _respond(self, request: Any, batch: np.ndarray, masks: Any) -> Any:
        if isinstance(masks, Exception):
            return _error(str(masks))
        outputs = [pb_utils.Tensor(MASK, np.ascontiguousarray(masks))]
        if LOGITS in request.requested_output_names():
            try:
                logits = np.stack([self.segmenter.image_logits(image) for image in batch])
            except Exception as exc:  # noqa: BLE001
                return _error(str(exc))
            outputs.append(pb_utils.Tensor(LOGITS, logits.astype(np.float32, copy=False)))
        return pb_utils.InferenceResponse(output_tensors=outputs)

    def finalize(self) -> None:
        self.segmenter.close()


def _error(message: str) -> Any:
    try:
        error = pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    except (AttributeError, TypeError):  # Python backends before error codes
        error = pb_utils.TritonError(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)
