"""gpuctk: NVIDIA GPUs in containers and on Kubernetes nodes."""

__version__ = "0.1.0"
