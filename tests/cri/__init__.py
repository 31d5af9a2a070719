"""CRI-level end-to-end tests: gpuctk driven through containerd's CRI plugin, the way a kubelet does."""
