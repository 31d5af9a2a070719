"""Finding executables the way upstream does (NVIDIA/nvidia-container-toolkit
`internal/oci/runtime_path.go`, `pkg/lookup/executable.go`): ``$PATH`` then the standard sbin/bin dirs."""

from __future__ import annotations

import os
import stat

from gpuctk.errors import GpuctkError

DEFAULT_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class RuntimeNotFoundError(GpuctkError):
    pass


def search_dirs(path_env: str | None = None) -> list[str]:
    env_path = os.environ.get("PATH", "") if path_env is None else path_env
    dirs = [d for d in env_path.split(":") if d]
    return dirs + [d for d in DEFAULT_DIRS if d not in dirs]


def is_executable_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def find_executable(name: str, path_env: str | None = None, skip: frozenset[str] = frozenset()) -> str | None:
    """An absolute/relative path with '/' must be an executable file; a bare name is searched.

    ``skip``: real paths never returned (the shim itself, so it cannot exec itself forever).
    """
    if "/" in name:
        if is_executable_file(name) and os.path.realpath(name) not in skip:
            return os.path.abspath(name)
        return None
    for d in search_dirs(path_env):
        cand = os.path.join(d, name)
        if is_executable_file(cand) and os.path.realpath(cand) not in skip:
            return cand
    return None


def find_runtime(
    candidates: list[str], path_env: str | None = None, skip: frozenset[str] = frozenset()
) -> str:
    """The first of ``candidates`` (config ``runtimes``) that exists."""
    if not candidates:
        raise RuntimeNotFoundError(
            "no low-level runtime configured (nvidia-container-runtime.runtimes is empty)"
        )
    for name in candidates:
        found = find_executable(name, path_env, skip)
        if found:
            return found
    raise RuntimeNotFoundError(
        f"no low-level runtime found (looked for {', '.join(candidates)} in PATH and "
        f"{', '.join(DEFAULT_DIRS)})"
    )
