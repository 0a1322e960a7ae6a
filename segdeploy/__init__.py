"""segdeploy: semantic segmentation from PyTorch to verified, fast deployments."""

__version__ = "0.1.0"
