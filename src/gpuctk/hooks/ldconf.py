"""The container's ld.so.conf tree, read confined: which directories its loader already
searches, so that ``update-ldcache`` adds only the folders still missing (upstream:
NVIDIA/nvidia-container-toolkit ``cmd/nvidia-cdi-hook/update-ldcache/``).

Apart from :mod:`gpuctk.hooks.ldcache` (which writes the conf files and runs ldconfig) because
the no-op check (:mod:`gpuctk.hooks.ldfresh`) needs only this part: a container whose cache is
up to date never loads the ldconfig sandbox's code.
"""

from __future__ import annotations

import os

from gpuctk.errors import GpuctkError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from gpuctk.hooks.confine import Root


def triplet() -> str:
    m = os.uname().machine
    return {
        "x86_64": "x86_64-linux-gnu",
        "aarch64": "aarch64-linux-gnu",
        "ppc64le": "powerpc64le-linux-gnu",
        "s390x": "s390x-linux-gnu",
    }.get(m, f"{m}-linux-gnu")


def system_dirs(debian_like: bool) -> list[str]:
    """Directories the container's loader searches without any conf file."""
    if debian_like:
        t = triplet()
        return [f"/lib/{t}", f"/usr/lib/{t}", "/lib", "/usr/lib"]
    dirs = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
    if os.uname().machine == "x86_64":
        dirs += ["/libx32", "/usr/libx32"]
    return dirs


def wildcard_match(pattern: str, name: str) -> bool:
    """Shell-style ``*`` / ``?`` matching (what ld.so.conf ``include`` lines use); ``fnmatch``
    would import ``re``, milliseconds on every container start."""
    p, n, star, mark = 0, 0, -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] in ("?", name[n]) and pattern[p] != "*":
            p += 1
            n += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, n
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            n = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _ours(name: str) -> bool:
    return (name.startswith("00-nvcr-") or name.startswith("zz-nvcr-")) and name.endswith(".conf")


# The conf tree is image content: bound what one hook run reads from it (real trees are a
# few dozen files of a few hundred bytes). Past the budget the rest is treated as absent,
# which only means a folder may be listed twice in our own conf file.
CONF_MAX_FILES = 256
CONF_FILE_LIMIT = 1 << 20
CONF_MAX_BYTES = 4 << 20
CONF_MAX_INCLUDES = 256  # include patterns in the whole tree
CONF_MAX_PATTERN = 4096  # PATH_MAX: a longer include pattern names nothing
CONF_MAX_ENTRIES = 65_536  # directory entries matched against include patterns, in all


class ConfBudgetError(GpuctkError):
    """The image's ld.so.conf tree is larger than any real one: the hook fails closed."""


def _budget(budget: dict[str, int], what: str, n: int = 1) -> None:
    budget[what] -= n
    if budget[what] < 0:
        limits = {
            "files": f"{CONF_MAX_FILES} files",
            "bytes": f"{CONF_MAX_BYTES} bytes",
            "includes": f"{CONF_MAX_INCLUDES} include patterns",
            "entries": f"{CONF_MAX_ENTRIES} directory entries",
        }
        raise ConfBudgetError(f"/etc/ld.so.conf tree of the image: more than {limits[what]}; refusing")


def _conf_dirs(
    root: Root, conf: str, seen: set[str], depth: int = 0, budget: dict[str, int] | None = None
) -> list[str]:
    """Directories listed by an ld.so.conf, following ``include`` globs (read inside the root).

    Every name below ``/etc/ld.so.conf`` comes from image content, so those lookups never
    cross a mount. Unreadable or non-regular files count as absent; a tree over the budget
    is refused (:class:`ConfBudgetError`)."""
    if budget is None:
        budget = {
            "files": CONF_MAX_FILES,
            "bytes": CONF_MAX_BYTES,
            "includes": CONF_MAX_INCLUDES,
            "entries": CONF_MAX_ENTRIES,
        }
    if depth > 8 or conf in seen:
        return []
    seen.add(conf)
    _budget(budget, "files")
    try:
        data = root.read_bytes(conf, min(CONF_FILE_LIMIT, budget["bytes"] + 1), strict=depth > 0)
    except (OSError, GpuctkError):
        return []
    _budget(budget, "bytes", len(data))
    text = data.decode(errors="replace")
    out: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            for pattern in line.split()[1:]:
                _budget(budget, "includes")
                if len(pattern) > CONF_MAX_PATTERN or "\0" in pattern:
                    continue  # names nothing a lookup could find
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(conf), pattern)
                d, base = os.path.split(pattern)
                if len(base) > 255:
                    continue
                try:
                    names = sorted(root.listdir(d, strict=True))
                except (OSError, GpuctkError):
                    continue
                _budget(budget, "entries", len(names))
                for n in names:
                    if _ours(n):
                        continue  # replaced by this run, so they cover nothing
                    if wildcard_match(base, n):
                        out += _conf_dirs(root, f"{d}/{n}", seen, depth + 1, budget)
        elif line.startswith("hwcap"):
            continue
        else:
            out.append(os.path.normpath(line.split("=", 1)[0].strip()))
    return out


def plan_conf(root: Root, folders: list[str]) -> tuple[list[str], list[str], bool, bool]:
    """(folders still to add, system dirs, debian_like, alpine) for this container."""
    debian_like = root.exists("/etc/debian_version")
    alpine = root.exists("/etc/alpine-release")
    sysdirs = system_dirs(debian_like)
    covered = set(sysdirs) | set(_conf_dirs(root, "/etc/ld.so.conf", set()))
    add = []
    for f in dict.fromkeys(os.path.normpath("/" + f.strip("/")) for f in folders if f.strip()):
        if f not in covered:
            add.append(f)
    return add, sysdirs, debian_like, alpine
