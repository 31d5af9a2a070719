"""Device nodes of simulated nodes laid out without mknod (not root, ``--no-mknod``): small
JSON descriptor files ``{"gpuctk_sim_char_device": {major, minor, mode, gid}}``.

Production code accepts real character devices only
(:func:`gpuctk.discover.devices.default_stat_device`); whoever works on such a node installs
this stat function explicitly (:func:`use_descriptor_devices`, or
``gpuctk cdi generate --simulated-devices``), as upstream's tests override theirs.
"""

from __future__ import annotations

import json
import os
import stat

from gpuctk.discover import devices as D

KEY = "gpuctk_sim_char_device"


def descriptor(major: int, minor: int, mode: int, gid: int) -> str:
    """The text of a descriptor file."""
    return json.dumps({KEY: {"major": major, "minor": minor, "mode": mode, "gid": gid}})


def descriptor_stat_device(path: str) -> D.NodeStat | None:
    """A real character device, or a simulated node's descriptor file; else None."""
    real = D.default_stat_device(path)
    if real is not None:
        return real
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not (stat.S_ISREG(st.st_mode) and 0 < st.st_size < 4096):
        return None
    try:
        with open(path, "rb") as f:
            desc = json.loads(f.read(4096)).get(KEY)
        return D.NodeStat(int(desc["major"]), int(desc["minor"]), int(desc["mode"]), int(desc.get("gid", 0)))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def use_descriptor_devices():
    """Install :func:`descriptor_stat_device`; returns the previous stat function."""
    return D.set_stat_device(descriptor_stat_device)
