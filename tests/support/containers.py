"""Real-container helpers shared by the integration tests: a busybox rootfs built
from Debian's busybox-static, runc bundles, podman runs, and a private containerd.

Nothing here pulls from a registry: images are built locally from /bin/busybox.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from .tools import require_root, require_tool

BUSYBOX_APPLETS = [
    "sh",
    "ls",
    "cat",
    "stat",
    "env",
    "test",
    "readlink",
    "echo",
    "grep",
    "sleep",
    "true",
    "id",
    "find",
    "head",
    "wc",
    "mount",
]
PODMAN_IMAGE = "localhost/gpuctk-busybox:latest"
CTR_IMAGE = "localhost/gpuctk-busybox:latest"


def busybox_path() -> str:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    return require_tool("busybox")


def make_busybox_rootfs(root: str) -> str:
    """Create a minimal rootfs with a static busybox and applet symlinks."""
    bb = busybox_path()
    for d in ("bin", "dev", "proc", "sys", "etc", "tmp", "usr/lib", "lib"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(root, "bin", "busybox"))
    for applet in BUSYBOX_APPLETS:
        link = os.path.join(root, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\n")
    return root


def oci_config(args: list[str], env: list[str] | None = None, rootfs: str = "rootfs") -> dict:
    """A small OCI runtime spec (like `runc spec`, terminal off, no network namespace needed)."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env if env is not None else ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
            "cwd": "/",
            "capabilities": {
                k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                for k in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": "gpuctk",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def make_bundle(bundle: str, args: list[str], env: list[str] | None = None) -> str:
    """A runc bundle dir with a busybox rootfs and config.json; returns the bundle path."""
    os.makedirs(bundle, exist_ok=True)
    make_busybox_rootfs(os.path.join(bundle, "rootfs"))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(oci_config(args, env), f, indent=2)
    return bundle


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str


def runc_run(
    bundle: str,
    runtime: str | None = None,
    container_id: str | None = None,
    extra_global: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> RunResult:
    """`<runtime> run` a bundle (runtime defaults to runc) with a private --root; always cleans up."""
    require_root()
    runtime = runtime or require_tool("runc")
    cid = container_id or f"gpuctk-test-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    state_root = tempfile.mkdtemp(prefix="gpuctk-runc-root-")
    cmd = [runtime, "--root", state_root, *(extra_global or []), "run", "--bundle", bundle, cid]
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
        return RunResult(p.returncode, p.stdout, p.stderr)
    finally:
        subprocess.run(
            [require_tool("runc"), "--root", state_root, "delete", "--force", cid], capture_output=True
        )
        shutil.rmtree(state_root, ignore_errors=True)


# ---------------------------------------------------------------- podman
PODMAN_RUN_FLAGS = [
    "--rm",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
]


def podman_global_flags(runtime: str | None = None) -> list[str]:
    return ["--runtime", runtime or "runc", "--cgroup-manager", "cgroupfs"]


def ensure_podman_image() -> str:
    """Import the local busybox image into podman once; returns its name."""
    require_root()
    podman = require_tool("podman")
    if subprocess.run([podman, "image", "exists", PODMAN_IMAGE], capture_output=True).returncode == 0:
        return PODMAN_IMAGE
    with tempfile.TemporaryDirectory() as tmp:
        make_busybox_rootfs(os.path.join(tmp, "rootfs"))
        tarball = os.path.join(tmp, "rootfs.tar")
        with tarfile.open(tarball, "w") as tf:
            tf.add(os.path.join(tmp, "rootfs"), arcname=".")
        subprocess.run(
            [podman, "import", "--change", "CMD=/bin/sh", tarball, PODMAN_IMAGE],
            check=True,
            capture_output=True,
        )
    return PODMAN_IMAGE


PODMAN_CDI_DIR = "/var/run/cdi"


@contextlib.contextmanager
def specs_visible_to_podman(spec_dirs: list[str]) -> Iterator[list[str]]:
    """Make the CDI specs in ``spec_dirs`` visible to podman for the duration of the block.

    Debian's podman 4.3 reads specs only from /etc/cdi and /var/run/cdi: it has no
    `--cdi-spec-dir` and ignores containers.conf `cdi_spec_dirs`. So each spec is copied to
    /var/run/cdi under a name unique to this process, and removed afterwards. Tests must use
    vendor/class names of their own so that the copies never conflict with other specs there.
    """
    os.makedirs(PODMAN_CDI_DIR, exist_ok=True)
    placed: list[str] = []
    try:
        for d in spec_dirs:
            for name in sorted(os.listdir(d)):
                if not name.endswith((".json", ".yaml", ".yml")):
                    continue
                dst = os.path.join(PODMAN_CDI_DIR, f"gpuctk-test-{os.getpid()}-{len(placed)}-{name}")
                shutil.copyfile(os.path.join(d, name), dst + ".tmp")  # not a spec name until complete
                os.replace(dst + ".tmp", dst)
                placed.append(dst)
        yield placed
    finally:
        for p in placed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def podman_run(
    args: list[str],
    runtime: str | None = None,
    cdi_spec_dirs: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> RunResult:
    """`podman run` the local busybox image. ``args`` go between the run flags and the image
    (e.g. ``["--device", "vendor.com/class=dev"]``) and may end with ``"--", cmd...``.
    ``cdi_spec_dirs``: specs made visible to podman for this run (see specs_visible_to_podman)."""
    podman = require_tool("podman")
    image = ensure_podman_image()
    if "--" in args:
        i = args.index("--")
        opts, cmd = args[:i], args[i + 1 :]
    else:
        opts, cmd = args, []
    full = [podman, *podman_global_flags(runtime), "run", *PODMAN_RUN_FLAGS, *opts, image, *cmd]
    with specs_visible_to_podman(cdi_spec_dirs or []):
        p = subprocess.run(
            full, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
    return RunResult(p.returncode, p.stdout, p.stderr)


# ---------------------------------------------------------------- OCI image tarball (for ctr import)
def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 0
    tf.addfile(ti, io.BytesIO(data))


def build_oci_archive(path: str, ref: str = CTR_IMAGE, extra_files: dict[str, bytes] | None = None) -> str:
    """Write an OCI image-layout tarball holding a busybox rootfs (one layer)."""
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = make_busybox_rootfs(os.path.join(tmp, "rootfs"))
        for rel, data in (extra_files or {}).items():
            p = os.path.join(rootfs, rel.lstrip("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, 0o755)
        layer_buf = io.BytesIO()
        with tarfile.open(fileobj=layer_buf, mode="w") as lt:
            lt.add(rootfs, arcname=".")
        layer = layer_buf.getvalue()
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {
                        "org.opencontainers.image.ref.name": ref,
                        "io.containerd.image.name": ref,
                    },
                }
            ],
        }
    ).encode()
    with tarfile.open(path, "w") as tf:
        _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(tf, "index.json", index)
        for digest, blob in ((layer_digest, layer), (config_digest, config), (manifest_digest, manifest)):
            _add_bytes(tf, "blobs/sha256/" + digest.split(":")[1], blob)
    return path


# ---------------------------------------------------------------- private containerd
@dataclass
class Containerd:
    base: str
    socket: str
    config_path: str
    proc: subprocess.Popen
    log_path: str

    def ctr(
        self, *args: str, namespace: str = "default", timeout: float = 120, check: bool = False
    ) -> RunResult:
        cmd = [require_tool("ctr"), "--address", self.socket, "--namespace", namespace, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}\n--- containerd log:\n{self.log()}"
            )
        return RunResult(p.returncode, p.stdout, p.stderr)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-8000:]
        except OSError:
            return ""

    def import_busybox(
        self, namespace: str = "default", ref: str = CTR_IMAGE, extra_files: dict[str, bytes] | None = None
    ) -> str:
        archive = build_oci_archive(os.path.join(self.base, "busybox-oci.tar"), ref, extra_files)
        self.ctr("images", "import", archive, namespace=namespace, check=True)
        return ref


def containerd_base_config(base: str) -> str:
    """The TOML text (config version 2) of a private containerd rooted in ``base``."""
    return f'''version = 2
root = "{base}/root"
state = "{base}/state"

[grpc]
  address = "{base}/containerd.sock"

[ttrpc]
  address = "{base}/containerd.sock.ttrpc"

[debug]
  level = "debug"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "localhost/pause:latest"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "native"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = false
'''


@contextlib.contextmanager
def private_containerd(
    base: str, config_text: str | None = None, config_path: str | None = None
) -> Iterator[Containerd]:
    """Start containerd with its own root, state and socket under ``base``; stop it afterwards.

    Pass ``config_text`` (written to base/config.toml) or an existing ``config_path``.
    """
    require_root()
    containerd = require_tool("containerd")
    require_tool("ctr")
    os.makedirs(base, exist_ok=True)
    if config_path is None:
        config_path = os.path.join(base, "config.toml")
        with open(config_path, "w") as f:
            f.write(config_text if config_text is not None else containerd_base_config(base))
    socket = os.path.join(base, "containerd.sock")
    log_path = os.path.join(base, "containerd.log")
    logf = open(log_path, "w")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen(
        [
            containerd,
            "--config",
            config_path,
            "--address",
            socket,
            "--root",
            os.path.join(base, "root"),
            "--state",
            os.path.join(base, "state"),
        ],
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    cd = Containerd(base, socket, config_path, proc, log_path)
    try:
        deadline = time.time() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"containerd exited early ({proc.returncode}):\n{cd.log()}")
            if os.path.exists(socket) and cd.ctr("version").returncode == 0:
                break
            if time.time() > deadline:
                raise AssertionError(f"containerd did not come up:\n{cd.log()}")
            time.sleep(0.1)
        yield cd
    finally:
        # kill leftover tasks' shims of this instance, then containerd itself
        for ns in ("default", "k8s.io"):
            r = cd.ctr("tasks", "ls", "-q", namespace=ns) if proc.poll() is None else RunResult(1, "", "")
            for tid in r.stdout.split():
                cd.ctr("tasks", "kill", "-s", "SIGKILL", tid, namespace=ns)
        stop_daemon(proc, logf, base, timeout=15)
        subprocess.run(["pkill", "-f", f"containerd-shim.*{base}"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def mknod_char(path: str, major: int, minor: int, mode: int = 0o666) -> str:
    """Create a real character device node (root only)."""
    require_root()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    os.mknod(path, mode | 0o020000, os.makedev(major, minor))
    os.chmod(path, mode)
    return path


def stop_daemon(proc: subprocess.Popen[Any], logf: IO[Any], base: str, timeout: float) -> None:
    """Stop a privately started daemon (its process group: TERM, then KILL after ``timeout``),
    close its log, and lazily unmount whatever it left mounted below ``base``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    logf.close()
    subprocess.run(
        ["sh", "-c", f"grep -h '{base}' /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l"],
        capture_output=True,
    )
