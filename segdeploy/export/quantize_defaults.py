"""INT8 quantization choices, importable without onnx (the CLI reads them for --help)."""

CALIBRATIONS = ("minmax", "percentile", "entropy")
#: measured best on the trained brain U-Net and FCN-8s (BENCHMARKS.md, "INT8 calibration")
DEFAULT_CALIBRATION = "percentile"
