"""Applying canonical ``containerEdits`` to a raw OCI runtime spec dict.

Order and semantics follow the reference (HEAD, ``internal/ociedit``): env merged by name,
device nodes (+ cgroup rules), net devices, mounts (replace by destination, then a stable
sort of all mounts by depth), hooks, Intel RDT, additional GIDs. Fields of the OCI spec
that CDI does not touch are left alone, and an apply that adds nothing leaves it equal.

Unlike the reference, the only step that can fail (reading device nodes from the host)
runs before anything is changed, so a failed apply never leaves a half-edited spec.
"""

from __future__ import annotations

import os
import posixpath
import stat

from gpuctk.cdi.errors import CDIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def merge_edits(edits_list: list[dict[str, Any]]) -> dict[str, Any]:
    """The reference's ContainerEdits.Append over a list: lists concatenated, last RDT wins."""
    merged: dict[str, Any] = {}
    for e in edits_list:
        for key in ("env", "deviceNodes", "netDevices", "hooks", "mounts", "additionalGids"):
            items = e.get(key)
            if items:
                merged.setdefault(key, []).extend(items)
        if e.get("intelRdt") is not None:
            merged["intelRdt"] = e["intelRdt"]
    return merged


def host_device_info(host_path: str) -> tuple[str, int, int, int]:
    """(type, major, minor, mode bits) of a host device node, without following symlinks."""
    st = os.lstat(host_path)
    mode = st.st_mode
    if stat.S_ISBLK(mode):
        typ = "b"
    elif stat.S_ISCHR(mode):
        typ = "c"
    elif stat.S_ISFIFO(mode):
        typ = "p"
    else:
        raise CDIError("not a device node")
    return typ, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(mode)


def fill_device_node(node: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``node`` completed from the host (the reference's fillMissingInfo)."""
    n = dict(node)
    path = n.get("path", "")
    if not n.get("hostPath"):
        n["hostPath"] = path
    host = n["hostPath"]
    typ = n.get("type", "")
    major = n.get("major", 0)
    minimal = typ != "" and (major != 0 or typ == "p")
    try:
        htype, hmajor, hminor, hmode = host_device_info(host)
    except (OSError, CDIError) as exc:
        if minimal:
            return n
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CDIError(f'failed to stat CDI host device "{host}": {reason}') from None
    if n.get("fileMode") is None:
        n["fileMode"] = hmode
    if minimal:
        return n
    if not typ:
        n["type"] = typ = htype
    elif typ != htype:
        raise CDIError(f'CDI device ("{path}", "{host}"), host type mismatch ({typ}, {htype})')
    if typ == "p":
        return n
    if major == 0:
        n["major"], n["minor"] = hmajor, hminor
    return n


_OCI_SHAPE: tuple[tuple[tuple[str, ...], type], ...] = (
    (("process",), dict),
    (("process", "env"), list),
    (("process", "user"), dict),
    (("process", "user", "additionalGids"), list),
    (("linux",), dict),
    (("linux", "devices"), list),
    (("linux", "resources"), dict),
    (("linux", "resources", "devices"), list),
    (("linux", "netDevices"), dict),
    (("linux", "namespaces"), list),
    (("mounts",), list),
    (("hooks",), dict),
)


def check_oci_shape(oci: object) -> None:
    """CDIError unless the parts of the OCI spec that edits touch have the right JSON types."""
    if not isinstance(oci, dict):
        raise CDIError("invalid OCI spec: not a JSON object")
    for keys, want in _OCI_SHAPE:
        v: Any = oci
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None and not isinstance(v, want):
            kind = "an object" if want is dict else "a list"
            raise CDIError(f"invalid OCI spec: {'.'.join(keys)} must be {kind}")
    hooks = oci.get("hooks") or {}
    for name in _OCI_HOOKS:
        if hooks.get(name) is not None and not isinstance(hooks[name], list):
            raise CDIError(f"invalid OCI spec: hooks.{name} must be a list")


def apply_canonical(oci: dict[str, Any], edits: dict[str, Any]) -> None:
    """Apply validated canonical edits to ``oci`` in place (all-or-nothing)."""
    if not edits:
        return
    check_oci_shape(oci)
    nodes = [fill_device_node(n) for n in edits.get("deviceNodes") or ()]  # may raise: before any change
    hooks = edits.get("hooks") or ()
    for h in hooks:
        if h.get("hookName") not in _OCI_HOOKS:
            raise CDIError(f'unknown hook name "{h.get("hookName")}"')
    if edits.get("env"):
        _apply_env(oci, edits["env"])
    if nodes:
        linux_devices = (oci.get("linux") or {}).get("devices") or []
        paths = _str_counts(linux_devices, "path") if all(type(n.get("path")) is str for n in nodes) else None
        for n in nodes:
            _apply_device_node(oci, n, paths)
    for nd in edits.get("netDevices") or ():
        linux = oci.setdefault("linux", {})
        if linux.get("netDevices") is None:
            linux["netDevices"] = {}
        linux["netDevices"][nd["hostInterfaceName"]] = {"name": nd["name"]}
    if edits.get("mounts"):
        _apply_mounts(oci, edits["mounts"])
    for h in hooks:
        oci_hooks = oci.get("hooks")
        if oci_hooks is None:
            oci_hooks = oci["hooks"] = {}
        entry: dict[str, Any] = {"path": h["path"]}
        for key in ("args", "env"):
            if h.get(key):
                entry[key] = list(h[key])
        if h.get("timeout") is not None:
            entry["timeout"] = h["timeout"]
        if oci_hooks.get(h["hookName"]) is None:
            oci_hooks[h["hookName"]] = []
        oci_hooks[h["hookName"]].append(entry)
    rdt = edits.get("intelRdt")
    if rdt is not None:
        new: dict[str, Any] = {}
        for key in ("closID", "l3CacheSchema", "memBwSchema"):
            if rdt.get(key):
                new[key] = rdt[key]
        if rdt.get("schemata"):
            new["schemata"] = list(rdt["schemata"])
        if rdt.get("enableMonitoring"):
            new["enableMonitoring"] = True
        oci.setdefault("linux", {})["intelRdt"] = new
    gids = edits.get("additionalGids")
    if gids:
        _apply_gids(oci, gids)


_OCI_HOOKS = frozenset(
    ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
)


def _env_name(entry: object) -> str:
    return entry.split("=", 1)[0] if isinstance(entry, str) else ""


def _apply_env(oci: dict[str, Any], entries: list[str]) -> None:
    process: dict[str, Any] | None = oci.get("process")
    if process is None:
        process = oci["process"] = {}
    env: list[Any] | None = process.get("env")
    if env is None:
        env = process["env"] = []
    index = {_env_name(e): i for i, e in enumerate(env)}
    for e in entries:
        name = _env_name(e)
        i = index.get(name)
        if i is None:
            index[name] = len(env)
            env.append(e)
        else:
            env[i] = e


def _str_counts(items: list[Any], key: str) -> dict[str, int] | None:
    """How many dicts of ``items`` hold each string at ``key`` (None when some value is neither
    a string nor missing/null: then only a scan of the list compares like ``==``)."""
    counts: dict[str, int] = {}
    for item in items:
        if isinstance(item, dict):
            v = item.get(key)
            if type(v) is str:
                counts[v] = counts.get(v, 0) + 1
            elif v is not None:
                return None
    return counts


def _count(counts: dict[str, int] | None, value: object, delta: int) -> None:
    if counts is not None and type(value) is str:
        counts[value] = counts.get(value, 0) + delta


def _replace_device(devices: list[Any], dev: dict[str, Any], paths: dict[str, int] | None) -> None:
    """The reference's device replacement: drop the first device with ``dev``'s path, then
    ``dev`` replaces the next one with that path, or is appended."""
    for i, d in enumerate(devices):
        if isinstance(d, dict) and d.get("path") == dev["path"]:
            _count(paths, d.get("path"), -1)
            del devices[i]
            break
    for i, d in enumerate(devices):
        if isinstance(d, dict) and d.get("path") == dev["path"]:
            _count(paths, d.get("path"), -1)
            devices[i] = dev
            break
    else:
        devices.append(dev)
    _count(paths, dev["path"], 1)


def _apply_device_node(oci: dict[str, Any], n: dict[str, Any], paths: dict[str, int] | None = None) -> None:
    """``paths``: :func:`_str_counts` of ``linux.devices`` by path, kept up to date here (a
    string path not in it is known to be new without scanning the list); None: scan."""
    dev: dict[str, Any] = {
        "path": n["path"],
        "type": n.get("type", ""),
        "major": n.get("major", 0),
        "minor": n.get("minor", 0),
    }
    if n.get("fileMode") is not None:
        dev["fileMode"] = n["fileMode"]
    uid, gid = n.get("uid"), n.get("gid")
    process = oci.get("process")
    if process is not None:
        user = process.get("user") or {}
        puid, pgid = user.get("uid"), user.get("gid")
        if uid is None and type(puid) is int and puid > 0:
            uid = puid
        if gid is None and type(pgid) is int and pgid > 0:
            gid = pgid
    if uid is not None:
        dev["uid"] = uid
    if gid is not None:
        dev["gid"] = gid
    linux: dict[str, Any] | None = oci.get("linux")
    if linux is None:
        linux = oci["linux"] = {}
    devices: list[Any] | None = linux.get("devices")
    if devices is None:
        devices = linux["devices"] = []
    if paths is None or paths.get(dev["path"]):
        _replace_device(devices, dev, paths)
    else:  # no device of the spec has this path (the common case): no scan of the list
        devices.append(dev)
        paths[dev["path"]] = 1
    typ = dev["type"]
    if typ in ("b", "c"):
        perms = n.get("permissions", "")
        access = "rwm" if not perms else ("" if perms == "none" else perms)
        rule: dict[str, Any] = {"allow": True, "type": typ, "major": dev["major"], "minor": dev["minor"]}
        if access:
            rule["access"] = access
        resources: dict[str, Any] | None = linux.get("resources")
        if resources is None:
            resources = linux["resources"] = {}
        if resources.get("devices") is None:
            resources["devices"] = []
        resources["devices"].append(rule)


def _clean_depth(dest: object) -> int:
    if not isinstance(dest, str) or not dest:
        return 0
    if dest[0] == "/" and dest[-1] != "/" and "//" not in dest and "/." not in dest:
        return dest.count("/")  # already clean (no empty, "." or ".." part): normpath would keep it
    p = posixpath.normpath(dest)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return p.count("/")


def _apply_mounts(oci: dict[str, Any], mounts: list[dict[str, Any]]) -> None:
    userns = any(
        isinstance(ns, dict) and ns.get("type") == "user"
        for ns in (oci.get("linux") or {}).get("namespaces") or ()
    )
    oci_mounts = oci.get("mounts")
    if oci_mounts is None:
        oci_mounts = oci["mounts"] = []
    # how many mounts have each destination, so that a new destination (nearly all of them) needs
    # no scan of the list; None (a destination that is no string): every mount scans
    dests = _str_counts(oci_mounts, "destination")
    if dests is not None and not all(type(m["containerPath"]) is str for m in mounts):
        dests = None
    for m in mounts:
        dest = m["containerPath"]
        if dests is None or dests.get(dest):
            for i, old in enumerate(oci_mounts):
                if isinstance(old, dict) and old.get("destination") == dest:
                    _count(dests, old.get("destination"), -1)
                    del oci_mounts[i]
                    break
        entry: dict[str, Any] = {"destination": dest}
        if m.get("type"):
            entry["type"] = m["type"]
        entry["source"] = m["hostPath"]
        options = list(m.get("options") or ())
        if userns:
            options = _with_idmap(options, m.get("type", ""))
        if options:
            entry["options"] = options
        oci_mounts.append(entry)
        _count(dests, dest, 1)
    oci_mounts.sort(key=lambda mt: _clean_depth(mt.get("destination") if isinstance(mt, dict) else None))


def _with_idmap(options: list[str], mount_type: str) -> list[str]:
    if "idmap" in options or "ridmap" in options:
        return options
    add = "idmap" if mount_type == "bind" else ""
    for o in options:
        if o == "bind":
            add = "idmap"
        elif o == "rbind":
            add = "ridmap"
    return [*options, add] if add else options


def _apply_gids(oci: dict[str, Any], gids: list[int]) -> None:
    process = oci.get("process")
    user = (process or {}).get("user") or {}
    existing = list(user.get("additionalGids") or ())
    added = False
    for g in gids:
        if g == 0 or g in existing:
            continue
        existing.append(g)
        added = True
    if not added:
        return
    if process is None:
        process = oci["process"] = {}
    if process.get("user") is None:
        process["user"] = {}
    process["user"]["additionalGids"] = existing


def apply_edits(oci_spec: dict, edits: dict) -> None:
    """Apply a raw ``containerEdits`` dict to a raw OCI spec dict in place (validated first)."""
    from gpuctk.cdi.decode import decode_edits
    from gpuctk.cdi.validate import edits_problems

    if oci_spec is None:
        raise CDIError("can't edit nil OCI Spec")
    problems: list[str] = []
    canonical = decode_edits(edits, "containerEdits", problems)
    problems = problems or edits_problems(canonical, "containerEdits")
    if problems:
        raise CDIError(f"invalid container edits: {problems[0]}", problems=problems)
    apply_canonical(oci_spec, canonical)
