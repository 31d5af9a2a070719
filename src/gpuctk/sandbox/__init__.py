"""Sandboxed runtimes. ``gpuctk.sandbox.gvisor``: the runsc + nvproxy contract."""
