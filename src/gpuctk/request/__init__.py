"""What a container asks for: GPUs, capabilities, requirements, privileges (see container.py)."""

from gpuctk.request.container import (
    ALL_DRIVER_CAPABILITIES,
    DEFAULT_DRIVER_CAPABILITIES,
    DEVICE_LIST_AS_VOLUME_MOUNTS_ROOT,
    ContainerRequest,
    is_qualified_cdi_name,
    parse_major_minor_version,
)

__all__ = [
    "ALL_DRIVER_CAPABILITIES",
    "DEFAULT_DRIVER_CAPABILITIES",
    "DEVICE_LIST_AS_VOLUME_MOUNTS_ROOT",
    "ContainerRequest",
    "is_qualified_cdi_name",
    "parse_major_minor_version",
]
