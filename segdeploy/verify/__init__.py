"""Parity of an engine (.onnx or .plan) with the PyTorch checkpoint it came from.

    from segdeploy.verify.compare import run_verify
    report = run_verify("fcn8s.pt", "fcn8s.plan", sizes=[(97, 131), (197, 233)])
    report["passed"], report["sizes"][0]["agreement"]

Modules: `parity` (numbers per size and thresholds, numpy only), `compare` (data, resizing,
running both sides), `report` (rich tables, JSON), `worst` (the images that agree least, kept
while it runs), `html_page` (`--report`: one HTML page through `segdeploy.reports`).
"""
