"""Reading and rewriting a bundle's ``config.json`` as a raw dict (unknown fields survive).

The rewrite goes through ``gpuctk.fileio.atomic_write`` (temp file in the bundle, fsync,
rename, mode kept), so a failed edit never leaves a half-written spec behind.
"""

from __future__ import annotations

import os

from gpuctk.errors import GpuctkError

# basenames of the prestart hooks upstream's docker --gpus path installs
NVIDIA_HOOK_BASENAMES = ("nvidia-container-runtime-hook", "nvidia-container-toolkit")


class SpecError(GpuctkError):
    """config.json is missing or is not a valid OCI runtime spec."""


def read_spec_bytes(path: str) -> bytes:
    """The bytes of ``config.json`` through ``gpuctk.fileio.read_regular``: a regular file only
    (a FIFO is never opened blocking, a device such as ``/dev/zero`` never read), at most
    ``gpuctk.fileio.MAX_READ_BYTES``."""
    from gpuctk.fileio import MAX_READ_BYTES, FileTooLargeError, NotRegularFileError, read_regular

    try:
        return read_regular(path, MAX_READ_BYTES)
    except FileNotFoundError:
        raise SpecError(f"{path}: OCI spec file not found") from None
    except (IsADirectoryError, NotRegularFileError):
        raise SpecError(f"{path}: cannot read OCI spec: not a regular file") from None
    except FileTooLargeError as exc:
        raise SpecError(f"{path}: cannot read OCI spec: larger than {exc.limit >> 20} MiB") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read OCI spec: {exc.strerror or exc}") from None


def parse_spec_bytes(path: str, raw: bytes) -> dict:
    from gpuctk import _fastjson as fastjson

    try:
        spec = fastjson.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: invalid JSON: {exc}") from None
    except RecursionError:
        raise SpecError(f"{path}: invalid JSON: nested too deeply") from None
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: an OCI spec must be a JSON object")
    check_spec_shape(path, spec)
    return spec


# (dotted field, JSON type, item type) for the parts of a spec gpuctk reads or edits; a value of
# another type would otherwise be skipped, replaced or crash an edit half-way.
_SHAPE: tuple[tuple[str, type, type | None], ...] = (
    ("process", dict, None),
    ("process.env", list, str),
    ("process.user", dict, None),
    ("root", dict, None),
    ("root.path", str, None),
    ("annotations", dict, None),
    ("mounts", list, dict),
    ("hooks", dict, None),
    ("linux", dict, None),
    ("linux.devices", list, dict),
    ("linux.resources", dict, None),
    ("linux.resources.devices", list, dict),
)
_HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_TYPE_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def check_spec_shape(path: str, spec: dict) -> None:
    """SpecError naming the file and the field unless the fields gpuctk touches have their OCI
    types (null counts as absent, as in Go's decoder)."""
    checks = list(_SHAPE) + [(f"hooks.{name}", list, dict) for name in _HOOK_NAMES]
    for field, want, item in checks:
        value: object = spec
        for key in field.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        if not isinstance(value, want):
            raise SpecError(f"{path}: {field}: must be {_TYPE_NAMES[want]}, not {_json_type(value)}")
        if item is not None and isinstance(value, list):
            for i, v in enumerate(value):
                if not isinstance(v, item):
                    raise SpecError(f"{path}: {field}[{i}]: must be {_TYPE_NAMES[item]}, not {_json_type(v)}")
    annotations = spec.get("annotations") or {}
    for key, v in annotations.items():
        if not isinstance(v, str):
            raise SpecError(f"{path}: annotations.{key}: must be a string, not {_json_type(v)}")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _TYPE_NAMES.get(type(value), "null")


def read_spec(path: str) -> tuple[bytes, dict]:
    """The spec's bytes (kept to prove a pass-through leaves them untouched) and its dict."""
    raw = read_spec_bytes(path)
    return raw, parse_spec_bytes(path, raw)


def may_request_devices(raw: bytes, annotation_prefixes: list[str], swarm_resource: str) -> bool:
    """A cheap test on the raw bytes: False proves the spec requests nothing, so a pass-through
    needs no JSON parsing at all. (Escaped strings defeat a byte search: then True.)"""
    if b"\\u" in raw or b"\\/" in raw:  # JSON escapes: a needle may be spelled differently
        return True
    needles = [b"NVIDIA_", b"CUDA_VERSION", b"nvidia-container-devices"]
    needles += [p.encode() for p in annotation_prefixes]
    needles += [n.strip().encode() for n in swarm_resource.split(",") if n.strip()]
    return any(n in raw for n in needles)


def write_spec(path: str, spec: dict) -> None:
    """Rewrite atomically, compact JSON with a trailing newline (like upstream's encoder)."""
    from gpuctk import _fastjson as fastjson
    from gpuctk.fileio import atomic_write

    try:
        data = (fastjson.dumps(spec, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:
        # a lone surrogate the original escaped ("\ud800") cannot be UTF-8: keep it escaped
        data = (fastjson.dumps(spec, separators=(",", ":"), ensure_ascii=True) + "\n").encode()
    try:
        # no fsync: a bundle does not outlive a boot (upstream's NVIDIA/nvidia-container-toolkit
        # internal/oci/spec_file.go does not sync either); the rename keeps it atomic
        atomic_write(path, data, durable=False)
    except OSError as exc:  # ENOSPC, EROFS…: a one-line error, not an "internal error"
        raise SpecError(f"{path}: cannot write OCI spec: {exc.strerror or exc}") from None


def _prestart(spec: dict) -> list:
    hooks = spec.get("hooks")
    if not isinstance(hooks, dict):
        return []
    prestart = hooks.get("prestart")
    return prestart if isinstance(prestart, list) else []


def is_nvidia_hook(hook: object) -> bool:
    return isinstance(hook, dict) and os.path.basename(str(hook.get("path", ""))) in NVIDIA_HOOK_BASENAMES


def remove_nvidia_hooks(spec: dict) -> int:
    """Drop every prestart hook whose basename is an NVIDIA legacy hook; returns how many."""
    prestart = _prestart(spec)
    kept = [h for h in prestart if not is_nvidia_hook(h)]
    removed = len(prestart) - len(kept)
    if removed:
        spec["hooks"]["prestart"] = kept
    return removed


def add_prestart_hook(spec: dict, path: str, extra_basenames: tuple[str, ...] = ()) -> bool:
    """Append ``{path, args: [basename(path), "prestart"]}`` unless an NVIDIA (or same) hook is there.

    Returns whether a hook was added (never duplicated).
    """
    names = set(NVIDIA_HOOK_BASENAMES) | set(extra_basenames) | {os.path.basename(path)}
    for hook in _prestart(spec):
        if isinstance(hook, dict) and os.path.basename(str(hook.get("path", ""))) in names:
            return False
    hooks = spec.get("hooks")
    if not isinstance(hooks, dict):
        hooks = spec["hooks"] = {}
    prestart = hooks.get("prestart")
    if not isinstance(prestart, list):
        prestart = hooks["prestart"] = []
    prestart.append({"path": path, "args": [os.path.basename(path), "prestart"]})
    return True


# Where a hook without an environment of its own looks for programs (upstream's default PATH
# for its hooks' lookups, NVIDIA/nvidia-container-toolkit `pkg/lookup/executable.go`).
DEFAULT_HOOK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def safe_hook_env(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The environment given to every hook that has none: ``PATH`` (the absolute entries of
    the shim's own PATH, which the engine set, never the container's) and the config file the
    shim itself read (``NVIDIA_CTK_CONFIG_FILE_PATH``, when set to an absolute path)."""
    dirs = [d for d in environ.get("PATH", "").split(":") if d.startswith("/")]
    env = [f"PATH={':'.join(dict.fromkeys(dirs)) or DEFAULT_HOOK_PATH}"]
    config = environ.get("NVIDIA_CTK_CONFIG_FILE_PATH", "")
    if config.startswith("/"):
        env.append(f"NVIDIA_CTK_CONFIG_FILE_PATH={config}")
    return env


def give_hooks_an_env(spec: dict, env: list[str]) -> int:
    """Give every hook of every type that has no ``env`` (absent, null or empty) a copy of
    ``env``; returns how many were changed.

    runc runs a hook without an environment of its own with the environment of the process
    that runs it, and for ``createContainer``/``startContainer`` hooks that is the container's
    (``LD_PRELOAD=/proc/self/cwd/x.so`` from the image then runs the image's code as host root:
    CVE-2025-23266). An empty list counts as none: runc drops it (``omitempty``) on its way to
    the process that runs the hook, which then sees nil and inherits."""
    hooks = spec.get("hooks")
    if not isinstance(hooks, dict):
        return 0
    changed = 0
    for name in _HOOK_NAMES:
        entries = hooks.get(name)
        if not isinstance(entries, list):
            continue
        for hook in entries:
            if isinstance(hook, dict) and not hook.get("env"):
                hook["env"] = list(env)
                changed += 1
    return changed
