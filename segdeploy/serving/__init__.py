"""Serving segdeploy artifacts on NVIDIA Triton Inference Server.

- `triton_config`: config.pbtxt text (pure functions) and its check against Triton's schema
- `triton_repo`: a versioned model repository from one artifact, published atomically
- `triton_model`: the Python-backend model.py that runs `Segmenter` inside Triton
- `triton_client`: `Segmenter.load("triton://host:8000/NAME")` (HTTP) / `grpc://...`
- `local_server`: a real `tritonserver` from the nvidia-pytriton wheel (tests, benchmarks)

Nothing here is imported by `segdeploy.runtime` except, lazily, the client.
"""
