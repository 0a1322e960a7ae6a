"""Benchmarks: latency statistics, backends to time, reports (table, JSON, markdown, plot).

    from segdeploy.bench.harness import plan_backends, run_bench
    backends, _ = plan_backends(["fcn8s.onnx"], "fcn8s.pt", None)
    report = run_bench(backends, [(1, 3, 256, 256)], iterations=50)

Modules: `timing` (stats, the measuring loop), `environment` (the machine block),
`backends` (PyTorch, ONNX Runtime, Segmenter), `tensorrt` (TensorRT with CUDA-event phases),
`harness` (orchestration), `results` / `report` (records and their renderings), `flops`
(FLOPs of an ONNX graph, numpy's sgemm peak). Importing this package needs only numpy;
torch, onnxruntime and tensorrt load when a backend opens.
"""
