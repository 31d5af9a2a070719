"""The OCI state a hook gets on stdin, and the container root it names (upstream:
NVIDIA/nvidia-container-toolkit ``internal/oci/state.go``)."""

from __future__ import annotations

import os

from gpuctk._fastjson import loads
from gpuctk.errors import GpuctkError
from gpuctk.hooks.hostio import CONFIG_JSON_LIMIT, STATE_LIMIT, read_host_file, read_stdin

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up
if TYPE_CHECKING:
    from typing import IO, Any


class ContainerState:
    """(A plain class: dataclasses would import inspect, milliseconds on every hook run.)"""

    def __init__(
        self, bundle: str, root: str, pid: int | None = None, spec: dict[str, Any] | None = None
    ) -> None:
        self.bundle = bundle
        self.root = root  # absolute host path of the container root
        self.pid = pid
        self.spec = spec if spec is not None else {}  # <bundle>/config.json ({} if the state named the root)


def _load_json(data: str | bytes, source: str) -> dict[str, Any]:
    try:
        obj = loads(data or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise GpuctkError(f"{source}: not valid JSON ({exc})") from None
    except RecursionError:  # the C scanner recurses once per nesting level
        raise GpuctkError(f"{source}: not valid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise GpuctkError(f"{source}: expected a JSON object")
    return obj


def _path_field(value: object, source: str, field: str) -> str:
    if not isinstance(value, str):
        raise GpuctkError(f"{source}: field {field}: expected a string")
    if "\0" in value:
        raise GpuctkError(f"{source}: field {field}: NUL byte in path")
    return value


def load_state(stream: IO[bytes] | None = None, container_spec: str | None = None) -> ContainerState:
    """Read the OCI state (stdin, or ``--container-spec FILE``; ``-`` is stdin, as upstream's
    help says) and find the container root: the state's ``root`` (a crun extension), else
    ``root.path`` of ``<bundle>/config.json``; a relative root is joined with the bundle.
    Every read is bounded and refuses non-regular files (a FIFO there would block)."""
    if container_spec and container_spec != "-":
        raw = read_host_file(container_spec, STATE_LIMIT, "--container-spec")
        source = container_spec
    elif stream is not None:
        raw = stream.read(STATE_LIMIT + 1)
        source = "OCI state on stdin"
        if len(raw) > STATE_LIMIT:
            raise GpuctkError(f"{source}: larger than {STATE_LIMIT} bytes")
    else:
        raw = read_stdin()
        source = "OCI state on stdin"
    state = _load_json(raw, source)
    bundle = _path_field(state.get("bundle") or state.get("bundlePath") or "", source, "bundle")
    pid = state.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
    root = state.get("root")
    spec: dict[str, Any] = {}
    if isinstance(root, str) and root:
        root = _path_field(root, source, "root")
    else:
        if not bundle:
            raise GpuctkError(f"{source}: field bundle: missing (and no root given)")
        cfg_path = os.path.join(bundle, "config.json")
        spec = _load_json(read_host_file(cfg_path, CONFIG_JSON_LIMIT, "bundle config"), cfg_path)
        r = spec.get("root")
        root = r.get("path") if isinstance(r, dict) else None
        if not isinstance(root, str) or not root:
            raise GpuctkError(f"{cfg_path}: field root.path: missing")
        root = _path_field(root, cfg_path, "root.path")
    if not os.path.isabs(root):
        root = os.path.join(bundle, root)
    return ContainerState(bundle=bundle, root=os.path.normpath(root), pid=pid, spec=spec)
