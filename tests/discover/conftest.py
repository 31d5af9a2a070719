import pytest

from support.sim import SimNodes


@pytest.fixture(scope="session")
def sim_nodes(tmp_path_factory):
    return SimNodes(str(tmp_path_factory.mktemp("gpuctk-sim-nodes")))


@pytest.fixture(autouse=True)
def _stable_env(monkeypatch):
    for var in ("XDG_DATA_DIRS", "GPUCTK_INVENTORY", "NVIDIA_CTK_DRIVER_ROOT", "NVIDIA_CTK_DEV_ROOT",
                "NVIDIA_CTK_CDI_OUTPUT_FILE_PATH", "NVIDIA_CTK_CDI_HOOK_PATH"):
        monkeypatch.delenv(var, raising=False)
