"""The OCI state a hook gets on stdin, and the container root it names (reference §5)."""

from __future__ import annotations

import os

from gpuctk._fastjson import loads
from gpuctk.errors import GpuctkError

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
    if not isinstance(obj, dict):
        raise GpuctkError(f"{source}: expected a JSON object")
    return obj


def load_state(stream: IO[bytes] | None = None, container_spec: str | None = None) -> ContainerState:
    """Read the OCI state (stdin, or ``--container-spec FILE``) and find the container root:
    the state's ``root`` (a crun extension), else ``root.path`` of ``<bundle>/config.json``;
    a relative root is joined with the bundle."""
    if container_spec:
        try:
            with open(container_spec, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise GpuctkError(f"{container_spec}: {exc.strerror}") from None
        source = container_spec
    else:
        raw = (stream or os.fdopen(0, "rb", closefd=False)).read()
        source = "OCI state on stdin"
    state = _load_json(raw, source)
    bundle = state.get("bundle") or state.get("bundlePath") or ""
    if not isinstance(bundle, str):
        raise GpuctkError(f"{source}: field bundle: expected a string")
    pid = state.get("pid")
    pid = pid if isinstance(pid, int) and pid > 0 else None
    root = state.get("root")
    spec: dict[str, Any] = {}
    if not (isinstance(root, str) and root):
        if not bundle:
            raise GpuctkError(f"{source}: field bundle: missing (and no root given)")
        cfg_path = os.path.join(bundle, "config.json")
        try:
            with open(cfg_path, "rb") as f:
                spec = _load_json(f.read(), cfg_path)
        except OSError as exc:
            raise GpuctkError(f"{cfg_path}: {exc.strerror}") from None
        r = spec.get("root")
        root = r.get("path") if isinstance(r, dict) else None
        if not isinstance(root, str) or not root:
            raise GpuctkError(f"{cfg_path}: field root.path: missing")
    if not os.path.isabs(root):
        root = os.path.join(bundle, root)
    return ContainerState(bundle=bundle, root=os.path.normpath(root), pid=pid, spec=spec)
