"""A minimal CRI (runtime.v1) client over gRPC, for tests.

The message classes come from ``proto/api.proto`` (gpuctk's own subset of the CRI API),
compiled with grpcio-tools on first use into ``tests/cri/_generated/<hash>/`` (git-ignored)
and loaded from there. No service stubs are generated: each call is a plain unary call
on the method's full name, which is all the CRI needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
PROTO = HERE / "proto" / "api.proto"
GENERATED = HERE / "_generated"
_MODULE_NAME = "gpuctk_cri_api_pb2"


def _generate(out_dir: Path) -> None:
    """Compile api.proto into out_dir atomically (concurrent test runs may race here)."""
    from grpc_tools import protoc

    GENERATED.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=GENERATED, prefix=".tmp-")
    try:
        rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={tmp}", str(PROTO)])
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {PROTO} (exit {rc})")
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not (out_dir / "api_pb2.py").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_api() -> ModuleType:
    """The compiled CRI messages (``api_pb2``), generated once per proto/toolchain version."""
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    import google.protobuf
    import grpc_tools

    tools_version = getattr(grpc_tools, "__version__", "")
    key = hashlib.sha256(
        PROTO.read_bytes() + f"|{tools_version}|{google.protobuf.__version__}".encode()
    ).hexdigest()[:16]
    out_dir = GENERATED / key
    if not (out_dir / "api_pb2.py").exists():
        _generate(out_dir)
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, out_dir / "api_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


class CRIError(Exception):
    """A failed CRI call: ``code`` is the gRPC status name, ``details`` containerd's message."""

    def __init__(self, method: str, code: str, details: str) -> None:
        super().__init__(f"{method}: {code}: {details}")
        self.method = method
        self.code = code
        self.details = details


class CRIClient:
    """Blocking CRI calls against one runtime endpoint (a unix socket path)."""

    def __init__(self, socket_path: str, timeout: float = 60.0) -> None:
        import grpc

        self.api = load_api()
        self.timeout = timeout
        self._grpc = grpc
        self._channel = grpc.insecure_channel(f"unix://{socket_path}")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> CRIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, service: str, method: str, request: Any, response_type: str) -> Any:
        rpc = self._channel.unary_unary(
            f"/runtime.v1.{service}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=getattr(self.api, response_type).FromString,
        )
        try:
            return rpc(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            raise CRIError(method, exc.code().name, exc.details() or "") from None

    def _rt(self, method: str, request: Any) -> Any:
        return self.call("RuntimeService", method, request, f"{method}Response")

    # -- runtime service
    def version(self) -> Any:
        return self._rt("Version", self.api.VersionRequest(version="v1"))

    def run_pod_sandbox(self, config: Any, runtime_handler: str = "") -> str:
        req = self.api.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        return str(self._rt("RunPodSandbox", req).pod_sandbox_id)

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._rt("StopPodSandbox", self.api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._rt("RemovePodSandbox", self.api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    def pod_sandbox_status(self, sandbox_id: str) -> Any:
        return self._rt(
            "PodSandboxStatus", self.api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
        ).status

    def create_container(self, sandbox_id: str, config: Any, sandbox_config: Any) -> str:
        req = self.api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
        )
        return str(self._rt("CreateContainer", req).container_id)

    def start_container(self, container_id: str) -> None:
        self._rt("StartContainer", self.api.StartContainerRequest(container_id=container_id))

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        self._rt("StopContainer", self.api.StopContainerRequest(container_id=container_id, timeout=timeout))

    def remove_container(self, container_id: str) -> None:
        self._rt("RemoveContainer", self.api.RemoveContainerRequest(container_id=container_id))

    def container_status(self, container_id: str) -> Any:
        return self._rt("ContainerStatus", self.api.ContainerStatusRequest(container_id=container_id)).status

    def wait_exited(self, container_id: str, timeout: float = 60.0) -> Any:
        """Poll ContainerStatus until the container has exited; returns the status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.container_status(container_id)
            if status.state == self.api.CONTAINER_EXITED:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"container {container_id} still in state {status.state} after {timeout}s")
            time.sleep(0.05)

    # -- image service
    def list_images(self) -> list[Any]:
        resp = self.call("ImageService", "ListImages", self.api.ListImagesRequest(), "ListImagesResponse")
        return list(resp.images)


# ---------------------------------------------------------------- CRI container logs
def parse_cri_log(text: str) -> tuple[str, str]:
    """(stdout, stderr) from a CRI log file: lines ``<rfc3339> <stream> <P|F> <content>``.

    ``P`` marks a partial line that continues in the next record; ``F`` ends it.
    """
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}
    pending: dict[str, str] = {"stdout": "", "stderr": ""}
    for record in text.splitlines():
        parts = record.split(" ", 3)
        if len(parts) < 3 or parts[1] not in out:
            continue
        stream, tag = parts[1], parts[2]
        content = parts[3] if len(parts) == 4 else ""
        if tag == "P":
            pending[stream] += content
            continue
        out[stream].append(pending[stream] + content)
        pending[stream] = ""
    return "\n".join(out["stdout"]), "\n".join(out["stderr"])


# ---------------------------------------------------------------- what a kubelet would send
@dataclass
class PodRequest:
    """One pod with one container, in kubelet terms: the pod's RuntimeClass handler plus
    what the device plugin's Allocate response added to the container (envs, mounts,
    annotations, devices, CDI devices)."""

    name: str
    image: str
    command: list[str]
    runtime_handler: str = ""
    envs: dict[str, str] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # container_path, host_path, readonly
    devices: list[dict[str, str]] = field(default_factory=list)  # container_path, host_path, permissions
    annotations: dict[str, str] = field(default_factory=dict)
    cdi_devices: list[str] = field(default_factory=list)
    privileged: bool = False


@dataclass
class PodResult:
    sandbox_id: str
    container_id: str
    exit_code: int
    stdout: str
    stderr: str
    reason: str
    message: str


def sandbox_config(api: ModuleType, name: str, uid: str, log_directory: str) -> Any:
    """A host-network pod (no CNI needed), as the kubelet builds it for hostNetwork: true."""
    ns = api.NamespaceOption(network=api.NODE, pid=api.CONTAINER, ipc=api.POD)
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, uid=uid, namespace="gpuctk-cri", attempt=0),
        # no hostname: with host networking the pod shares the node's UTS namespace (as the kubelet does)
        log_directory=log_directory,
        labels={"io.kubernetes.pod.name": name},
        linux=api.LinuxPodSandboxConfig(
            security_context=api.LinuxSandboxSecurityContext(namespace_options=ns)
        ),
    )


def container_config(api: ModuleType, req: PodRequest, log_path: str) -> Any:
    ns = api.NamespaceOption(network=api.NODE, pid=api.CONTAINER, ipc=api.POD)
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=req.name, attempt=0),
        image=api.ImageSpec(image=req.image),
        command=req.command,
        envs=[api.KeyValue(key=k, value=v) for k, v in req.envs.items()],
        mounts=[api.Mount(**m) for m in req.mounts],
        devices=[api.Device(**d) for d in req.devices],
        annotations=req.annotations,
        log_path=log_path,
        linux=api.LinuxContainerConfig(
            security_context=api.LinuxContainerSecurityContext(
                privileged=req.privileged, namespace_options=ns
            )
        ),
        CDI_devices=[api.CDIDevice(name=n) for n in req.cdi_devices],
    )


def run_pod(client: CRIClient, req: PodRequest, log_root: str, timeout: float = 60.0) -> PodResult:
    """RunPodSandbox → CreateContainer → StartContainer → wait → read log → clean up.

    CRI errors propagate as CRIError (after removing whatever was created).
    """
    api = client.api
    uid = f"{req.name}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    log_dir = os.path.join(log_root, uid)
    os.makedirs(log_dir, exist_ok=True)
    sb_config = sandbox_config(api, req.name, uid, log_dir)
    sandbox_id = client.run_pod_sandbox(sb_config, req.runtime_handler)
    container_id = ""
    try:
        ctr_config = container_config(api, req, f"{req.name}.log")
        container_id = client.create_container(sandbox_id, ctr_config, sb_config)
        client.start_container(container_id)
        status = client.wait_exited(container_id, timeout)
        with open(os.path.join(log_dir, f"{req.name}.log"), errors="replace") as f:
            stdout, stderr = parse_cri_log(f.read())
        return PodResult(
            sandbox_id,
            container_id,
            int(status.exit_code),
            stdout,
            stderr,
            str(status.reason),
            str(status.message),
        )
    finally:
        if container_id:
            with contextlib.suppress(CRIError):
                client.remove_container(container_id)
        with contextlib.suppress(CRIError):
            client.stop_pod_sandbox(sandbox_id)
        with contextlib.suppress(CRIError):
            client.remove_pod_sandbox(sandbox_id)
        shutil.rmtree(log_dir, ignore_errors=True)
