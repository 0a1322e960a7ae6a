"""A Triton-served segmentation model with Segmenter's API (no torch; tritonclient lazily).

    seg = Segmenter.load("triton://host:8000/brain")   # HTTP; "grpc://host:8001/brain": gRPC
    mask = seg.predict(image)                         # HxWxC -> HxW, NxHxWxC -> NxHxW, list

Images get the card's intensity mapping and channel handling here (numpy, as in
`Segmenter`), so the server receives exactly the uint8 pixels in-process inference would
feed; its model.py runs `Segmenter.predict` on them, so masks are byte-identical.
Use one client per thread: tritonclient's HTTP client is not thread-safe. Concurrent
requests from many clients are what Triton's dynamic batcher batches.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from segdeploy.errors import InputError, UsageError, require
from segdeploy.imaging import as_hwc_uint8
from segdeploy.manifest import ExportInfo, ModelCard
from segdeploy.serving.errors import ServingError

SCHEMES = {"triton": "http", "grpc": "grpc"}
DEFAULT_PORTS = {"http": 8000, "grpc": 8001}
IMAGE, MASK, LOGITS = "IMAGE", "MASK", "LOGITS"
T = TypeVar("T")


def parse_url(url: str) -> tuple[str, str, str]:
    """"triton://host:8000/NAME" -> ("http", "host:8000", "NAME"); grpc:// -> gRPC."""
    parts = urlsplit(url)
    protocol = SCHEMES.get(parts.scheme)
    name = parts.path.strip("/")
    if protocol is None or not parts.hostname or not name or "/" in name:
        raise UsageError(f"cannot read the Triton address {url!r}",
                         expected="triton://HOST:PORT/MODEL (HTTP) or grpc://HOST:PORT/MODEL")
    port = parts.port or DEFAULT_PORTS[protocol]
    return protocol, f"{parts.hostname}:{port}", name


def _is_refused(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return True
    text = str(exc).lower()
    return "connection refused" in text or "failed to connect" in text


def _is_timeout(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, TimeoutError | socket.timeout) or "timeout" in text or \
        "timed out" in text or "deadline" in text


class TritonSegmenter:
    """`predict`, `classes`, `num_classes`, `close` of a model served by Triton."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self.protocol, self.address, self.model = parse_url(url)
        self.timeout = float(timeout)
        self._module = require(f"tritonclient.{self.protocol}", extra="serving",
                               package="tritonclient", purpose=f"to talk to {url}")
        if self.protocol == "http":
            self._client = self._module.InferenceServerClient(
                self.address, connection_timeout=self.timeout, network_timeout=self.timeout)
        else:
            self._client = self._module.InferenceServerClient(self.address)
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One server call; its failure as one ServingError line."""
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - each kind becomes one clear line below
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: BaseException) -> ServingError:
        where = f"Triton at {self.address} ({self.protocol})"
        if _is_refused(exc):
            return ServingError(f"cannot connect to {where}: connection refused",
                                fix="start tritonserver, or check the host and port "
                                    "(HTTP 8000, gRPC 8001 by default)")
        if _is_timeout(exc):
            return ServingError(f"{where} did not answer {what} within {self.timeout:g} s",
                                fix="check the server is healthy, or pass a larger timeout=")
        text = getattr(exc, "message", None)  # tritonclient's InferenceServerException
        message = text() if callable(text) else str(exc)
        return ServingError(f"{where} refused {what}: {message}")

    def _connect(self) -> None:
        if not self._call("a liveness check", self._client.is_server_live):
            raise ServingError(f"Triton at {self.address} is not live",
                               fix="wait for the server to start, then retry")
        if not self._call("a readiness check", self._client.is_model_ready, self.model):
            raise ServingError(f"model {self.model!r} is not ready on Triton at {self.address}",
                               fix=f"check the server log; curl http://HOST:8000/v2/models/"
                                   f"{self.model}/ready; `segdeploy triton` writes the model")
        config = self._call("its model config", self._client.get_model_config, self.model)
        if self.protocol == "grpc":
            from google.protobuf.json_format import MessageToDict

            config = MessageToDict(config.config, preserving_proto_field_name=True)
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        if "segdeploy.card" not in params:
            raise ServingError(f"model {self.model!r} on {self.address} was not written by "
                               "`segdeploy triton` (no segdeploy.card parameter)",
                               fix="serve it with `segdeploy triton MODEL -o REPO`")
        self.card = ModelCard.from_dict(json.loads(params["segdeploy.card"]))
        self.info = ExportInfo.from_dict(json.loads(params.get("segdeploy.export", "{}"))) \
            if "segdeploy.export" in params else None
        self.channels = int(params.get("channels") or self.card.in_channels)
        self.max_batch = max(int(config.get("max_batch_size", 1) or 1), 1)
        self.intensity = self.card.intensity_mapping()
        self.has_logits = any(o.get("name") == LOGITS for o in config.get("output", []))

    # -- the Segmenter API -----------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)

    @property
    def num_classes(self) -> int:
        return self.card.num_classes

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken connection is not an error
                pass
            self._client = None

    def __enter__(self) -> TritonSegmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TritonSegmenter({self.model!r} at {self.address}, {self.protocol})"

    def predict(self, image: np.ndarray | Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """HxWxC (or HxW) image -> HxW class ids; NxHxWxC -> NxHxW; a list -> a list."""
        if isinstance(image, list | tuple):
            return self._predict_list(image)
        if not isinstance(image, np.ndarray):
            raise InputError(f"image is a {type(image).__name__}",
                             expected="a numpy array (HxWxC, HxW or NxHxWxC) or a list")
        if image.ndim == 4:
            if min(image.shape) < 1:
                raise InputError(f"batch has shape {image.shape} (no pixels or no images)",
                                 expected="N x H x W x C with every dimension >= 1")
            batch = image if (image.dtype == np.uint8 and image.shape[-1] == self.channels) \
                else np.stack([self._as_image(b) for b in image])
            return self._infer(batch, MASK)
        return self._infer(self._as_image(image)[None], MASK)[0]

    def image_logits(self, image: np.ndarray) -> np.ndarray:
        """K x H x W float32 logits of one image (the model's LOGITS output)."""
        if not self.has_logits:
            raise UsageError(f"model {self.model!r} has no {LOGITS} output")
        return self._infer(self._as_image(image)[None], LOGITS)[0]

    def _as_image(self, image: Any) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise InputError(f"image is a {type(image).__name__}", expected="a numpy array")
        if image.ndim == 4:
            raise InputError(f"image has shape {image.shape}",
                             expected="one HxWxC or HxW image (use predict() for batches)")
        return as_hwc_uint8(self.intensity.apply(image), self.channels)

    def _predict_list(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        prepared = [self._as_image(im) for im in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(prepared):
            by_size.setdefault(im.shape[:2], []).append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(prepared)
        for indices in by_size.values():
            masks = self._infer(np.stack([prepared[i] for i in indices]), MASK)
            for i, mask in zip(indices, masks, strict=True):
                out[i] = mask
        return out

    def _infer(self, batch: np.ndarray, output: str) -> np.ndarray:
        """N x H x W x C uint8 -> the output, in requests of at most max_batch images."""
        parts = []
        for start in range(0, len(batch), self.max_batch):
            chunk = np.ascontiguousarray(batch[start:start + self.max_batch])
            inp = self._module.InferInput(IMAGE, list(chunk.shape), "UINT8")
            out = self._module.InferRequestedOutput(output)
            if self.protocol == "http":
                inp.set_data_from_numpy(chunk, binary_data=True)
                out = self._module.InferRequestedOutput(output, binary_data=True)
            else:
                inp.set_data_from_numpy(chunk)
            result = self._call("the inference request", self._client.infer, self.model,
                                [inp], outputs=[out])
            parts.append(result.as_numpy(output))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def connect(url: str, *local_options: str, **options: Any) -> TritonSegmenter:
    """`Segmenter.load(url)` for triton:// and grpc:// addresses (options: timeout=);
    local_options: names of in-process options the caller set, refused here."""
    unknown = [*local_options, *sorted(set(options) - {"timeout"})]
    if unknown:
        raise UsageError(f"option(s) {', '.join(unknown)} do not apply to a Triton server",
                         fix="configure the backend in the server's model repository "
                             "(`segdeploy triton --backend/--threads`)")
    return TritonSegmenter(url, **options)
