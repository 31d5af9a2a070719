"""systemd path+service pair and udev rule that regenerate the CDI spec when the driver changes.

Modelled on upstream's nvidia-cdi-refresh units (NVIDIA/nvidia-container-toolkit
``deployments/systemd/nvidia-cdi-refresh.service``, ``.path``): refresh
on boot, when the ``nvidia`` module is loaded (udev), when ``modules.dep`` changes (driver
installed/upgraded through DKMS or packages) and when gpuctk itself is reinstalled.
"""

from __future__ import annotations

import os
import shlex

SERVICE = "gpuctk-cdi-refresh.service"
PATH_UNIT = "gpuctk-cdi-refresh.path"
UDEV_RULE = "99-gpuctk-cdi-refresh.rules"
ENV_FILE = "/etc/gpuctk/cdi-refresh.env"
HEADER = "# Written by `gpuctk install`; `gpuctk install --uninstall` removes it.\n"


def service_unit(toolkit_dir: str, spec_path: str, generate_args: tuple[str, ...] = ()) -> str:
    """``generate_args``: the discovery flags install used (driver/dev root), so a refresh
    regenerates the same spec; the hooks always go through the installed nvidia-cdi-hook."""
    gpuctk = shlex.quote(os.path.join(toolkit_dir, "gpuctk"))
    args = " ".join(
        shlex.quote(a)
        for a in (
            f"--output={spec_path}",
            f"--hook-path={os.path.join(toolkit_dir, 'nvidia-cdi-hook')}",
            *generate_args,
        )
    )
    return (
        HEADER
        + f"""[Unit]
Description=Refresh the NVIDIA CDI specification {spec_path} (gpuctk)
After=systemd-modules-load.service
ConditionPathExists=/proc/driver/nvidia/version

[Service]
Type=oneshot
EnvironmentFile=-{ENV_FILE}
ExecStartPre=-{gpuctk} system create-device-nodes --control-devices
ExecStart={gpuctk} cdi generate {args}

[Install]
WantedBy=multi-user.target
"""
    )


def path_unit(toolkit_dir: str) -> str:
    return (
        HEADER
        + f"""[Unit]
Description=Watch for NVIDIA driver and gpuctk changes to refresh the CDI specification

[Path]
PathChanged=/lib/modules/%v/modules.dep
PathChanged={os.path.join(toolkit_dir, "gpuctk")}
Unit={SERVICE}

[Install]
WantedBy=multi-user.target
"""
    )


def udev_rule() -> str:
    return HEADER + (
        "# When the nvidia kernel module is loaded (boot, driver install/upgrade), refresh the CDI spec.\n"
        f'ACTION=="add", SUBSYSTEM=="module", KERNEL=="nvidia", TAG+="systemd", ENV{{SYSTEMD_WANTS}}+="{SERVICE}"\n'
    )
