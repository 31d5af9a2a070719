import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # makes `support` importable from every test dir

from support.sim import SimNodes


@pytest.fixture(scope="session")
def sim_nodes(tmp_path_factory):
    """Simulated GPU nodes built once per session and shared by every test dir."""
    return SimNodes(str(tmp_path_factory.mktemp("gpuctk-sim-nodes")))


@pytest.fixture(autouse=True)
def _stable_env(monkeypatch):
    # Variables that steer discovery and generation: a developer's shell must not change results.
    for var in (
        "XDG_DATA_DIRS",
        "GPUCTK_INVENTORY",
        "NVIDIA_CTK_DRIVER_ROOT",
        "NVIDIA_CTK_DEV_ROOT",
        "NVIDIA_CTK_CDI_OUTPUT_FILE_PATH",
        "NVIDIA_CTK_CDI_HOOK_PATH",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory):
    """The shim's root-only caches go to a per-session dir, not the host's /run/gpuctk.

    Set in os.environ so every gpuctk process the tests start (through runc, podman or
    containerd too) inherits it; tests of the cache itself override it."""
    base = tmp_path_factory.mktemp("gpuctk-caches")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPUCTK_CONFIG_CACHE_DIR", str(base / "run"))
        mp.setenv("GPUCTK_JIT_CACHE_DIR", str(base / "jit"))
        yield
