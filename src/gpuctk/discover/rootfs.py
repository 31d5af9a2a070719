"""Files of a driver root: symlink resolution inside the root, library lookup (search
directories, then the root's ld.so.cache), driver version, firmware, binaries, IPC
sockets and graphics configs (NVIDIA/nvidia-container-toolkit ``internal/lookup/root/root.go``,
``pkg/lookup/{library,ldcache,file,symlinks}.go``, ``internal/discover/graphics.go``)."""

from __future__ import annotations

import fnmatch
import glob
import os
import re

from gpuctk.discover.ldcache import load_ldcache

LIB_SEARCH_DIRS = (
    "/",
    "/usr/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/nvidia/current",
    "/usr/lib/aarch64-linux-gnu/nvidia/current",
    "/lib64",
    "/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/lib/x86_64-linux-gnu/nvidia/current",
    "/lib/aarch64-linux-gnu/nvidia/current",
)
BIN_SEARCH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
DRIVER_BINARIES = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
    "nvidia-imex",
    "nvidia-imex-ctl",
)
IPC_SOCKETS = ("/nvidia-persistenced/socket", "/nvidia-fabricmanager/socket")
FIRMWARE_DIRS = (
    "/lib/firmware/updates/{kernel}",
    "/lib/firmware/updates",
    "/lib/firmware/{kernel}",
    "/lib/firmware",
)


class DriverRoot:
    """Lookups under one driver root; results are host paths (root prefix included)."""

    def __init__(self, root: str = "/", library_search_paths: list[str] | None = None) -> None:
        self.root = os.path.abspath(root or "/")
        self.library_search_paths = library_search_paths or []
        self._ldcache: list[tuple[str, str]] | None = None

    def host(self, path: str) -> str:
        return path if self.root == "/" else os.path.join(self.root, path.lstrip("/"))

    def container(self, host_path: str) -> str:
        """Host path minus the driver root."""
        if self.root == "/":
            return host_path
        rel = os.path.relpath(host_path, self.root)
        return "/" if rel == "." else "/" + rel

    def resolve(self, host_path: str) -> str | None:
        """Follow symlinks as if chrooted in the root (absolute targets stay inside)."""
        path = self.container(host_path) if self.root != "/" else host_path
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            cur = self.host("/" + "/".join([*done, part]))
            try:
                target = os.readlink(cur)
            except OSError:
                if not os.path.lexists(cur):
                    return None
                done.append(part)
                continue
            hops += 1
            if hops > 40:
                return None
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
        return self.host("/" + "/".join(done))

    def ldcache(self) -> list[tuple[str, str]]:
        if self._ldcache is None:
            self._ldcache = load_ldcache(self.host("/etc/ld.so.cache"))
        return self._ldcache

    def locate_libraries(self, pattern: str) -> list[str]:
        """Resolved host paths of libraries matching the glob ``pattern`` (a file name):
        first the search directories, then the ld.so.cache."""
        out: list[str] = []
        dirs = [*self.library_search_paths, *LIB_SEARCH_DIRS]
        for d in dirs:
            base = d if d in self.library_search_paths else self.host(d)
            for hit in sorted(glob.glob(os.path.join(base, pattern))):
                resolved = self.resolve(hit) if d not in self.library_search_paths else os.path.realpath(hit)
                if resolved and os.path.isfile(resolved) and resolved not in out:
                    out.append(resolved)
        if out:
            return out
        for soname, path in self.ldcache():
            if fnmatch.fnmatchcase(soname, pattern) or fnmatch.fnmatchcase(os.path.basename(path), pattern):
                resolved = self.resolve(self.host(path))
                if resolved and os.path.isfile(resolved) and resolved not in out:
                    out.append(resolved)
        return out

    def driver_version_from_libraries(self) -> str | None:
        """Version suffix of the first located ``libcuda.so.*.*`` or ``libnvidia-ml.so.*.*``."""
        for stem in ("libcuda.so.", "libnvidia-ml.so."):
            for hit in self.locate_libraries(stem + "*.*"):
                version = os.path.basename(hit)[len(stem) :]
                if re.fullmatch(r"\d+(\.\d+)+", version) and version != "1.1":
                    return version
        return None

    def locate_binary(self, name: str) -> str | None:
        for d in BIN_SEARCH_DIRS:
            p = self.host(f"{d}/{name}")
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
        return None

    def locate_file(self, candidates: list[str]) -> str | None:
        for c in candidates:
            p = self.host(c)
            if os.path.exists(p):
                return p
        return None

    def firmware(self, version: str, kernel: str | None = None) -> list[str]:
        kernel = kernel or os.uname().release
        dirs: list[str] = []
        custom = _read(self.host("/sys/module/firmware_class/parameters/path"))
        if custom and custom.strip():
            dirs.append(custom.strip())
        dirs += [d.format(kernel=kernel) for d in FIRMWARE_DIRS]
        out: list[str] = []
        for d in dirs:
            for hit in sorted(glob.glob(self.host(f"{d}/nvidia/{version}/gsp*.bin"))):
                if hit not in out:
                    out.append(hit)
        return out

    def ipc_sockets(self) -> list[str]:
        out = []
        for sock in IPC_SOCKETS:
            hit = self.locate_file(["/run" + sock, "/var/run" + sock])
            if hit:
                out.append(hit)
        mps = self.host("/tmp/nvidia-mps")
        if os.path.exists(mps):
            out.append(mps)
        return out


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read(4096)
    except OSError:
        return None
