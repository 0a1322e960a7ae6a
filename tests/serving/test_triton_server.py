"""Against a REAL tritonserver: masks == in-process Segmenter.predict, batching, bad requests."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from triton_served import SERVED, need_triton

from segdeploy.runtime import Segmenter
from segdeploy.serving.local_server import LocalTriton


def url(server: LocalTriton, protocol: str, model: str) -> str:
    if protocol == "http":
        return f"triton://{server.http_address}/{model}"
    return f"grpc://{server.grpc_address}/{model}"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", list(SERVED))
def test_masks_equal_in_process_predict(triton_server, local_segmenters, brain_images,
                                        nuclei_images, protocol: str, model: str) -> None:
    local = local_segmenters[model]
    binary = model == "nuclei_binary"  # one logit channel: background / nucleus by threshold
    if binary:
        brain_images = nuclei_images
    with Segmenter.load(url(triton_server, protocol, model)) as remote:
        assert remote.classes == local.classes
        assert remote.num_classes == (2 if binary else 3)
        for image in brain_images:  # one image per request, several sizes
            expected = local.predict(image)
            got = remote.predict(image)
            assert got.dtype == expected.dtype == np.uint8 and got.shape == image.shape[:2]
            np.testing.assert_array_equal(got, expected)
        assert len(np.unique(expected)) >= 2  # the masks are not trivially empty
        listed = remote.predict(brain_images)  # a list of mixed sizes
        for image, mask in zip(brain_images, listed, strict=True):
            np.testing.assert_array_equal(mask, local.predict(image))
        batch = np.stack([brain_images[0]] * 3)  # an N x H x W x C batch
        np.testing.assert_array_equal(remote.predict(batch), local.predict(batch))
        grey = brain_images[1][..., 0]  # HxW is taken as one grey channel, as in-process
        np.testing.assert_array_equal(remote.predict(grey), local.predict(grey))
        wide = brain_images[2].astype(np.uint16) * 257  # 16-bit: the card's intensity mapping
        np.testing.assert_array_equal(remote.predict(wide), local.predict(wide))


def test_batches_larger_than_max_batch_are_split(triton_server, local_segmenters,
                                                 brain_images) -> None:
    batch = np.stack([brain_images[4]] * 11)  # max_batch_size is 8
    with Segmenter.load(url(triton_server, "grpc", "brain")) as remote:
        np.testing.assert_array_equal(remote.predict(batch),
                                      local_segmenters["brain"].predict(batch))


def test_logits_on_request(triton_server, local_segmenters, brain_images) -> None:
    image = brain_images[2]
    with Segmenter.load(url(triton_server, "http", "brain")) as remote:
        logits = remote.image_logits(image)
    expected = local_segmenters["brain"].image_logits(image)
    assert logits.shape == expected.shape == (3, *image.shape[:2])
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5)


def inference_counts(server: LocalTriton, model: str) -> tuple[int, int]:
    import tritonclient.http as http

    with http.InferenceServerClient(server.http_address) as client:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def test_sixteen_concurrent_clients_are_batched_and_right(triton_server, local_segmenters,
                                                          brain_images) -> None:
    local = local_segmenters["brain"]
    expected = [local.predict(im) for im in brain_images]
    inferences0, executions0 = inference_counts(triton_server, "brain")
    start = threading.Barrier(16)

    def client(k: int) -> list[bool]:
        protocol = "http" if k % 2 else "grpc"
        with Segmenter.load(url(triton_server, protocol, "brain")) as remote:
            start.wait(timeout=60)
            results = []
            for j in range(4):
                i = (k + j) % len(brain_images)
                results.append(bool(np.array_equal(remote.predict(brain_images[i]),
                                                   expected[i])))
            return results

    with ThreadPoolExecutor(16) as pool:
        results = [r for rs in pool.map(client, range(16)) for r in rs]
    assert results == [True] * 64
    for _ in range(50):  # statistics are recorded just after the responses are sent
        inferences1, executions1 = inference_counts(triton_server, "brain")
        if inferences1 - inferences0 >= 64:
            break
        time.sleep(0.1)
    inferences, executions = inferences1 - inferences0, executions1 - executions0
    assert inferences == 64
    assert executions < inferences, f"{executions} executions for {inferences} inferences"


def test_a_server_stops_without_leftovers(triton_repo, tmp_path) -> None:
    """Start, serve, stop: no process of its session and no /dev/shm region of its prefix."""
    need_triton()
    server = LocalTriton(triton_repo, tmp_path / "work",
                         shm_prefix=f"segdeploy_stop_{id(tmp_path)}_")
    with server:
        assert server.group_alive()
        with Segmenter.load(url(server, "grpc", "brain")) as remote:
            assert remote.predict(np.zeros((40, 50, 1), np.uint8)).shape == (40, 50)
        assert server.leftover_shm(), "the Python backend's shared memory has this prefix"
    assert server.proc is not None and server.proc.returncode == 0
    assert not server.group_alive()
    assert server.leftover_shm() == []


def test_logits_only_when_named_or_when_no_output_is(triton_server, local_segmenters,
                                                     brain_images) -> None:
    import tritonclient.grpc as grpc

    image = brain_images[4][None]
    client = grpc.InferenceServerClient(triton_server.grpc_address)
    try:
        inp = grpc.InferInput("IMAGE", list(image.shape), "UINT8")
        inp.set_data_from_numpy(image)
        mask_only = client.infer("brain", [inp], outputs=[grpc.InferRequestedOutput("MASK")])
        everything = client.infer("brain", [inp])
    finally:
        client.close()
    assert mask_only.as_numpy("LOGITS") is None
    np.testing.assert_array_equal(mask_only.as_numpy("MASK")[0],
                                  local_segmenters["brain"].predict(brain_images[4]))
    assert everything.as_numpy("LOGITS").shape == (1, 3, *image.shape[1:3])
