"""Bad requests to a real tritonserver: an error naming the problem, and the server keeps
serving correct masks (to the same and to concurrent clients)."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from segdeploy.runtime import Segmenter
from segdeploy.serving.errors import ServingError
from segdeploy.serving.local_server import LocalTriton


def raw_infer(server: LocalTriton, protocol: str, model: str, array: np.ndarray,
              datatype: str | None = None) -> str:
    """Send `array` as IMAGE with tritonclient, bypassing segdeploy's client; the error."""
    from tritonclient.utils import InferenceServerException, np_to_triton_dtype

    if protocol == "http":
        import tritonclient.http as module
        address = server.http_address
    else:
        import tritonclient.grpc as module
        address = server.grpc_address
    client = module.InferenceServerClient(address)
    try:
        inp = module.InferInput("IMAGE", list(array.shape),
                                datatype or np_to_triton_dtype(array.dtype))
        inp.set_data_from_numpy(array)
        with pytest.raises(InferenceServerException) as info:
            client.infer(model, [inp])
    finally:
        client.close()
    return str(info.value)


def still_serving(server: LocalTriton, local: dict, image: np.ndarray) -> None:
    for address in (f"triton://{server.http_address}", f"grpc://{server.grpc_address}"):
        for model in ("brain", "brain_int8"):
            with Segmenter.load(f"{address}/{model}") as remote:
                np.testing.assert_array_equal(remote.predict(image), local[model].predict(image))


BAD = {  # name -> (array, datatype, words the error must contain)
    "wrong dtype": (np.zeros((1, 64, 64, 1), np.float32), None, ["IMAGE", "FP32"]),
    "2-D": (np.zeros((1, 64), np.uint8), None, ["IMAGE", "shape"]),
    # a raw HxW image with H > max_batch_size: Triton reads H as the batch size and says so
    "2-D HxW": (np.zeros((64, 64), np.uint8), None, ["batch-size must be <= 8"]),
    "5-D": (np.zeros((1, 1, 64, 64, 1), np.uint8), None, ["IMAGE", "shape"]),
    "0-size": (np.zeros((1, 0, 64, 1), np.uint8), None, ["IMAGE", "[1, 0, 64, 1]"]),
    "4 channels for a 1-channel model": (np.zeros((1, 64, 64, 4), np.uint8), None,
                                         ["IMAGE", "shape", "4"]),
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_is_named_and_the_server_keeps_serving(triton_server, local_segmenters,
                                                           brain_images, protocol: str,
                                                           case: str) -> None:
    array, datatype, words = BAD[case]
    message = raw_infer(triton_server, protocol, "brain", array, datatype)
    for word in words:
        assert word in message, f"{case}: {message}"
    still_serving(triton_server, local_segmenters, brain_images[1])


def test_a_30000x30000_header_with_16_bytes_is_refused(triton_server, local_segmenters,
                                                       brain_images) -> None:
    header = json.dumps({"inputs": [{"name": "IMAGE", "shape": [1, 30000, 30000, 1],
                                     "datatype": "UINT8",
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    conn = http.client.HTTPConnection(triton_server.http_address, timeout=30)
    try:
        conn.request("POST", "/v2/models/brain/infer", body=header + bytes(16),
                     headers={"Inference-Header-Content-Length": str(len(header)),
                              "Content-Type": "application/octet-stream"})
        reply = conn.getresponse()
        body = reply.read().decode(errors="replace")
    finally:
        conn.close()
    assert reply.status == 400, body
    assert "IMAGE" in body and ("byte size" in body or "900000000" in body), body
    still_serving(triton_server, local_segmenters, brain_images[0])


def test_images_above_max_image_pixels_are_refused_by_the_model(triton_server,
                                                                local_segmenters,
                                                                brain_images) -> None:
    big = np.ascontiguousarray(np.tile(brain_images[0], (2, 2, 1)))  # 394 x 466 > 250 x 250
    with Segmenter.load(f"grpc://{triton_server.grpc_address}/brain_int8") as remote:
        with pytest.raises(ServingError, match="max_image_pixels 62500"):
            remote.predict(big)
        np.testing.assert_array_equal(remote.predict(brain_images[2]),
                                      local_segmenters["brain_int8"].predict(brain_images[2]))


def test_bad_requests_among_concurrent_good_ones(triton_server, local_segmenters,
                                                 brain_images) -> None:
    """0-size requests reach model.py (Triton passes them): in the same executions as good
    ones, only they fail."""
    expected = [local_segmenters["brain"].predict(im) for im in brain_images]

    def work(k: int) -> bool:
        if k % 3 == 0:
            message = raw_infer(triton_server, "http" if k % 2 else "grpc", "brain",
                                np.zeros((1, 0, 64, 1), np.uint8))
            return "no pixels" in message or "[1, 0, 64, 1]" in message
        i = k % len(brain_images)
        with Segmenter.load(f"triton://{triton_server.http_address}/brain") as remote:
            return bool(np.array_equal(remote.predict(brain_images[i]), expected[i]))

    with ThreadPoolExecutor(12) as pool:
        assert list(pool.map(work, range(24))) == [True] * 24
