"""Helpers for the hook tests: bundles with a container root, running the hook binaries,
snapshots of decoy host trees, and a tiny ELF writer for CUDA compat notes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import subprocess
from dataclasses import dataclass

from .tools import missing, venv_script


@dataclass
class Bundle:
    bundle: str
    root: str
    state: str  # the OCI state JSON a runtime would pass on stdin

    def path(self, p: str) -> str:
        return os.path.join(self.root, p.lstrip("/"))


def make_hook_bundle(
    base: str, spec: dict | None = None, *, rootfs: str = "rootfs", pid: int | None = None
) -> Bundle:
    """A bundle dir with config.json (root.path relative) and an empty rootfs."""
    bundle = os.path.join(base, "bundle")
    root = os.path.join(bundle, rootfs)
    os.makedirs(root, exist_ok=True)
    cfg = dict(spec or {"ociVersion": "1.0.2", "process": {"args": ["sh"], "env": []}})
    cfg.setdefault("root", {"path": rootfs})
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    state: dict[str, object] = {
        "ociVersion": "1.0.2",
        "id": "hooktest",
        "status": "creating",
        "bundle": bundle,
    }
    if pid:
        state["pid"] = pid
    return Bundle(bundle, root, json.dumps(state))


def hook_cmd() -> list[str]:
    return [venv_script("gpuctk-hook")]


def run_hook(
    b: Bundle,
    *args: str,
    env: dict[str, str] | None = None,
    wrap: list[str] | None = None,
    timeout: float = 60,
    fallback: str | bool = False,
    hook_timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``gpuctk-hook ARGS`` with the bundle's state on stdin (optionally under ``wrap``).

    ``fallback`` ("1"/True) forces the openat2-less resolver and ``hook_timeout`` sets the
    hook's deadline, both through argv (the hook reads no knob from its environment)."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    full_env.update(env or {})
    pre = resolver_flags(fallback)
    if hook_timeout is not None:
        pre.append(f"--timeout={hook_timeout:g}")
    return subprocess.run(
        [*(wrap or []), *hook_cmd(), *pre, *args],
        input=b.state,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def resolver_flags(fallback: str | bool) -> list[str]:
    """The hook's global argv flag forcing the component-walk resolver, or nothing."""
    return ["--resolver=walk"] if fallback in (True, "1") else []


def write(path: str, data: str | bytes = "", mode: int = 0o644) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def snapshot(top: str) -> dict[str, tuple]:
    """Every entry below ``top`` (not following links): type, mode, and content hash / link text."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[p] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[p] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(f.read()).hexdigest())
            else:
                out[p] = ("other", st.st_mode)
    out[top] = ("top", stat.S_IMODE(os.lstat(top).st_mode), os.lstat(top).st_mtime_ns)
    return out


def make_decoy(base: str) -> str:
    """A 'host' directory tree attacks aim at: lib dir, etc dir, a firmware dir, a marker-free zone."""
    d = os.path.join(base, "host-decoy")
    write(os.path.join(d, "etc", "ld.so.cache"), "HOST CACHE")
    write(os.path.join(d, "etc", "ld.so.conf"), "/host/lib\n")
    os.makedirs(os.path.join(d, "etc", "ld.so.conf.d"), exist_ok=True)
    write(os.path.join(d, "lib", "libhost.so.1.0"), "\x7fELF not really")
    write(os.path.join(d, "firmware", "nvidia", "gsp.bin"), "firmware")
    write(os.path.join(d, "params"), "ModifyDeviceFiles: 1\n")
    return d


# ---------------------------------------------------------------- ELF files with a CUDA compat note
def elf_with_sections(
    sections: list[tuple[str, int, bytes]], *, big_endian: bool = False, elf64: bool = True
) -> bytes:
    """A minimal ELF shared object holding ``sections`` (name, sh_type, data) plus .shstrtab."""
    e = ">" if big_endian else "<"
    names = b"\0"
    offsets = []
    for name, _, _ in sections:
        offsets.append(len(names))
        names += name.encode() + b"\0"
    shstr_name = len(names)
    names += b".shstrtab\0"
    ehsize = 64 if elf64 else 52
    body = b""
    placed = []
    pos = ehsize
    for (_name, stype, data), noff in zip(sections, offsets, strict=True):
        placed.append((noff, stype, pos, len(data)))
        body += data + b"\0" * ((-len(data)) % 8)
        pos = ehsize + len(body)
    placed.append((shstr_name, 3, pos, len(names)))
    body += names + b"\0" * ((-len(names)) % 8)
    shoff = ehsize + len(body)
    shentsize = 64 if elf64 else 40
    shnum = len(placed) + 1
    ident = b"\x7fELF" + bytes([2 if elf64 else 1, 2 if big_endian else 1, 1, 0]) + b"\0" * 8
    if elf64:
        hdr = ident + struct.pack(
            e + "HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, ehsize, 0, 0, shentsize, shnum, shnum - 1
        )
    else:
        hdr = ident + struct.pack(
            e + "HHIIIIIHHHHHH", 3, 3, 1, 0, 0, shoff, 0, ehsize, 0, 0, shentsize, shnum, shnum - 1
        )
    shdrs = b"\0" * shentsize
    for noff, stype, off, size in placed:
        if elf64:
            shdrs += struct.pack(e + "IIQQQQIIQQ", noff, stype, 0, 0, off, size, 0, 0, 1, 0)
        else:
            shdrs += struct.pack(e + "IIIIIIIIII", noff, stype, 0, 0, off, size, 0, 0, 1, 0)
    return hdr + body + shdrs


def note_bytes(owner: bytes, desc: bytes, ntype: int = 1, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    owner_z = owner + b"\0"

    def pad(b: bytes) -> bytes:
        return b + b"\0" * ((-len(b)) % 4)

    return struct.pack(e + "III", len(owner_z), len(desc), ntype) + pad(owner_z) + pad(desc)


def cuda_compat_elf(note: dict | None, *, big_endian: bool = False, elf64: bool = True) -> bytes:
    sections = [(".text", 1, b"\x90" * 16)]
    if note is not None:
        desc = json.dumps(note).encode()
        sections.append(
            (
                ".note.cuda.fwd_compatibility",
                7,
                note_bytes(b"NVIDIA Corporation", desc, big_endian=big_endian),
            )
        )
    return elf_with_sections(sections, big_endian=big_endian, elf64=elf64)


_LIB_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/lib64",
)


def host_libz() -> str:
    """The path of the host's ``libz.so.1.*``: a real ELF library for ldconfig to index in fixtures."""
    for cand in _LIB_DIRS:
        if os.path.isdir(cand):
            for n in sorted(os.listdir(cand)):
                if n.startswith("libz.so.1.") and os.path.isfile(os.path.join(cand, n)):
                    return os.path.join(cand, n)
    missing("no host libz to use as an injected library")


@dataclass
class HostileImage:
    """A bundle whose image attacks the hooks (see :func:`hostile_image`)."""

    host: str  # the decoy host tree the attacks aim at
    bundle: str
    cfg: dict  # its config.json, without hooks yet: the caller adds them and writes it
    libz: str  # the library name the image's ld.so.conf exposes from the host volume
    before: dict  # snapshot(host) before anything ran


def hostile_image(tmp: str) -> HostileImage:
    """An image that sets the old environment knobs (a host params path to a root-only secret,
    the resolver, an unbounded ldconfig timeout), lists a host volume in its ld.so.conf, ships
    ``/etc/ld.so.cache~`` as a hard link to a host file, and links paths a chmod hook would be
    told to change into a volume and to a bind-mounted secret. The container prints its params
    file, the volume's listing and the secret, separated by ``---`` lines."""
    import shutil

    from .containers import make_bundle

    host = make_decoy(tmp)
    write(os.path.join(host, "secret"), "ModifyDeviceFiles: 1\nSECRET=hunter2\n", 0o400)
    src = host_libz()
    libz = os.path.basename(src)
    shutil.copy2(src, os.path.join(host, "lib", libz))
    before = snapshot(host)
    script = "cat /proc/driver/nvidia/params 2>&1; echo ---; ls /data; echo ---; cat /run/secrets/token"
    env = [
        "PATH=/bin",
        f"GPUCTK_HOST_NVIDIA_PARAMS={host}/secret",
        "GPUCTK_CONFINE_FALLBACK=1",
        "GPUCTK_LDCONFIG_TIMEOUT=100000",
    ]
    bundle = make_bundle(os.path.join(tmp, "b"), ["sh", "-c", script], env=env)
    root = os.path.join(bundle, "rootfs")
    write(os.path.join(root, "etc/ld.so.conf"), "/data\ninclude /etc/ld.so.conf.d/*.conf\n")
    os.makedirs(os.path.join(root, "etc/ld.so.conf.d"), exist_ok=True)
    os.link(os.path.join(host, "etc", "ld.so.cache"), os.path.join(root, "etc/ld.so.cache~"))
    os.makedirs(os.path.join(root, "usr/lib"), exist_ok=True)
    os.symlink("/data", os.path.join(root, "usr/lib/nv"))
    os.symlink("/run/secrets/token", os.path.join(root, "usr/lib/token"))
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["mounts"] += [
        {
            "destination": "/data",
            "type": "bind",
            "source": os.path.join(host, "lib"),
            "options": ["rbind", "rw"],
        },
        {
            "destination": "/run/secrets/token",
            "type": "bind",
            "source": os.path.join(host, "secret"),
            "options": ["bind", "ro"],
        },
    ]
    return HostileImage(host, bundle, cfg, libz, before)
