from __future__ import annotations

import pytest
from snapfixtures import DRIVER, fake_nvidia_smi, make_host


@pytest.fixture
def host(tmp_path):
    root = str(tmp_path / "host")
    libs = [
        f"/usr/lib/x86_64-linux-gnu/libcuda.so.{DRIVER}",
        f"/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.{DRIVER}",
    ]
    make_host(root, libs)
    return root, libs


@pytest.fixture
def smi(tmp_path):
    return fake_nvidia_smi(str(tmp_path / "bin"))
