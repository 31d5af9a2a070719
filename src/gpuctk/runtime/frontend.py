"""The Python half of the ``sh`` front end (``gpuctk/runtime/scripts/gpuctk-runtime``).

The installed ``gpuctk-runtime`` is a POSIX ``sh`` script. Every command but ``create``/``run``
execs the low-level runtime directly, taking its path from a one-entry cache that the shim
writes here (:func:`record`) each time it runs in Python; ``create``/``run``, a missing or stale
cache and the flags only Python handles exec Python, entering at :func:`boot`.

The cache file ``<cache dir>/lowlevel-runtime`` (``gpuctk._cachefile.cache_dir()``: ``/run/gpuctk``
for root) is plain text, one value per line, read by ``sh``'s ``read`` builtin (no fork)::

    gpuctk-frontend-cache 1
    <config path, as the script spells it>
    present | absent
    <$PATH>
    <low-level runtime>
    end

Fresh means: the same config path and ``$PATH`` and, for ``present``, a config file whose mtime
equals the cache file's (the writer stamps the cache with the config's ``st_mtime_ns``, so any
write to the config misses; the script compares with ``test -nt``/``-ot``, builtins; a config
changed in the last 2 s is not cached, for shells that compare whole seconds). Trusted
means: the cache and its directory are ours and no symlinks; the writer writes only into a
directory nobody else can write (``_cachefile.trusted_dir``), mode 0600. A cache is written only
when a pass-through command would log nothing (log level info or above), because the script
logs nothing; runc's ``--debug`` makes the script exec Python.

Stdlib only and cheap: this module is on the create path.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # no `typing` at run time: the shim's create path imports this module
if TYPE_CHECKING:
    from gpuctk.config.types import RuntimeConfig

CACHE_NAME = "lowlevel-runtime"
HEADER = "gpuctk-frontend-cache 1"
ENV_DUMP_MODULES = "GPUCTK_DUMP_MODULES"
# A config modified less than 2 s ago is not cached: some shells' ``test -nt`` compares whole
# seconds (busybox ash), so an edit in the same second as the recorded mtime would look fresh.
# Any edit after a cache is written then lands in a later second than the one it recorded.
_RACY_NS = 2_000_000_000
_QUIET_LEVELS = frozenset({"info", "warning", "warn", "error", "fatal", "panic"})


def config_path_as_sh(environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """``config.toml``'s path spelled as the script spells it (``${XDG_CONFIG_HOME:-/etc}/…``):
    the same file ``gpuctk.config.config_path`` names."""
    env = os.environ if environ is None else environ
    explicit = env.get("NVIDIA_CTK_CONFIG_FILE_PATH")
    if explicit:
        return explicit
    return (env.get("XDG_CONFIG_HOME") or "/etc") + "/nvidia-container-runtime/config.toml"


def config_state() -> tuple[str, int | None]:
    """The config path and its mtime (None: no file). Taken before the config is read, so a
    config changed while the shim runs leaves a cache stamped with the older mtime (a miss)."""
    path = config_path_as_sh()
    try:
        return path, os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return path, None
    except OSError:
        return path, -1  # unreadable: never cached


def render(cfg_path: str, present: bool, path_env: str, runtime: str) -> str | None:
    """The cache text, or None when a value cannot be one line."""
    values = (cfg_path, path_env, runtime)
    if any("\n" in v or "\r" in v for v in values) or not runtime.startswith("/"):
        return None
    return f"{HEADER}\n{cfg_path}\n{'present' if present else 'absent'}\n{path_env}\n{runtime}\nend\n"


def record(state: tuple[str, int | None], runtime: str, rt_cfg: RuntimeConfig) -> None:
    """Record ``runtime`` for the script, unless pass-through would log or nothing changed.
    Never fails: a cache that cannot be written is not used."""
    try:
        _record(state, runtime, rt_cfg)
    except (OSError, ValueError, TypeError, AttributeError):
        pass


def _record(state: tuple[str, int | None], runtime: str, rt_cfg: RuntimeConfig) -> None:
    from gpuctk import _cachefile as cachefile

    cfg_path, mtime = state
    if mtime == -1:
        return
    if mtime is not None and mtime > time.time_ns() - _RACY_NS:
        return  # see _RACY_NS
    directory = cachefile.cache_dir()
    if not directory:
        return
    path = os.path.join(directory, CACHE_NAME)
    level = rt_cfg.get("log-level", "info")
    if not isinstance(level, str) or level.strip().lower() not in _QUIET_LEVELS:
        _remove(path)  # the script would skip the debug lines Python logs for every command
        return
    text = render(cfg_path, mtime is not None, os.environ.get("PATH", ""), runtime)
    if text is None:
        _remove(path)
        return
    try:
        st = os.lstat(path)
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            if f.read() == text and (mtime is None or st.st_mtime_ns == mtime):
                return
    except OSError:
        pass
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not cachefile.trusted_dir(directory):
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
            if mtime is not None:
                f.flush()
                os.utime(f.fileno(), ns=(mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def needs_python(argv: list[str]) -> bool:
    """What the script decides from the arguments alone (tests compare it with the script):
    ``create``/``run`` (they edit the spec), a version flag (the shim prints its own), runc's
    global ``--debug`` (the shim then logs debug lines to runc's ``--log``)."""
    from gpuctk.oci.args import has_version_flag, logging_flags, modifies_spec

    return modifies_spec(argv) or has_version_flag(argv) or logging_flags(argv)[2]


def boot() -> None:
    """Entry from the script: ``sys.argv`` is already ``[argv0, *args]``."""
    if ENV_DUMP_MODULES in os.environ:
        _dump_modules_at_exec(os.environ[ENV_DUMP_MODULES])
    from gpuctk.runtime.main import main

    sys.exit(main())


def _dump_modules_at_exec(target: str) -> None:
    """Test support, off unless ``$GPUCTK_DUMP_MODULES`` names a file (the shim's environment is
    the engine's, never the container's): root only, a new file (O_EXCL, no symlink followed),
    written when the shim execs the low-level runtime with the names in ``sys.modules``."""
    if os.geteuid() != 0 or not target.startswith("/"):
        return

    def hook(event: str, _args: object) -> None:
        if event != "os.exec":
            return
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(sorted(sys.modules)) + "\n")

    sys.addaudithook(hook)
