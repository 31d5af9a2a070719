"""The shim's logger: tiny, stdlib-only, and cheap to set up on every container start.

Messages go to the config's ``nvidia-container-runtime.debug`` file and to runc's ``--log``
file (in runc's ``--log-format``), so that containerd and podman, which read runc's log file
when a runtime fails, show our errors in their own error reports. The stdlib ``logging``
package is not used: it costs more to import than this whole module.
"""

from __future__ import annotations

import os
import sys
import time

LEVELS = {"trace": 0, "debug": 1, "info": 2, "warning": 3, "warn": 3, "error": 4, "fatal": 5, "panic": 6}
_NAMES = {0: "trace", 1: "debug", 2: "info", 3: "warning", 4: "error", 5: "fatal", 6: "panic"}


def _timestamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class Logger:
    """Writes log lines to zero or more files; errors also reach stderr (``report``)."""

    def __init__(self) -> None:
        self.level = LEVELS["info"]
        self.json = False
        self.paths: list[str] = []
        self._files: list = []
        self.warnings: list[str] = []
        self.configured = False

    def configure(
        self,
        debug_path: str = "/dev/null",
        level: str = "info",
        runc_log: str | None = None,
        runc_log_format: str | None = None,
        runc_debug: bool = False,
        open_files: bool = True,
    ) -> None:
        self.configured = True
        lvl = LEVELS.get(level.strip().lower())
        if lvl is None:
            lvl = LEVELS["info"]
            self.warnings.append(f"invalid log-level {level!r}; using info")
        self.level = LEVELS["debug"] if runc_debug and lvl > LEVELS["debug"] else lvl
        self.json = (runc_log_format or "").strip().lower() == "json"
        if not open_files:
            return
        for path in (debug_path, runc_log):
            if not path or path == "/dev/null" or path in self.paths:
                continue
            try:
                parent = os.path.dirname(path)
                if parent:
                    os.makedirs(parent, mode=0o755, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                self.warnings.append(f"cannot open log file {path}: {exc.strerror}")
                continue
            self.paths.append(path)
            self._files.append(fd)
        for w in self.warnings:
            self.log("warning", w)

    def _line(self, level: int, msg: str) -> bytes:
        from gpuctk import _fastjson as fastjson  # json's encoder without importing json (and re)

        if self.json:
            return (
                fastjson.dumps({"level": _NAMES[level], "msg": msg, "time": _timestamp()}) + "\n"
            ).encode()
        return f'time="{_timestamp()}" level={_NAMES[level]} msg={fastjson.dumps(msg)}\n'.encode()

    def log(self, level_name: str, msg: str) -> None:
        level = LEVELS[level_name]
        if level < self.level or not self._files:
            return
        line = self._line(level, msg)
        for fd in self._files:
            try:
                os.write(fd, line)
            except OSError:
                pass

    def enabled(self, level_name: str) -> bool:
        return bool(self._files) and LEVELS[level_name] >= self.level

    def debug(self, msg: str) -> None:
        self.log("debug", msg)

    def info(self, msg: str) -> None:
        self.log("info", msg)

    def warning(self, msg: str) -> None:
        self.log("warning", msg)

    def error(self, msg: str, prog: str = "gpuctk-runtime") -> None:
        """An error: to every log file and, as one line, to stderr."""
        self.log("error", msg)
        try:
            sys.stderr.write(f"{prog}: error: {msg}\n")
            sys.stderr.flush()
        except OSError:
            pass

    def close(self) -> None:
        for fd in self._files:
            try:
                os.close(fd)
            except OSError:
                pass
        self._files = []
