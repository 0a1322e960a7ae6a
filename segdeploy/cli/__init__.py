"""Command line interface; heavy imports (torch, onnx, tensorrt) happen inside commands."""
