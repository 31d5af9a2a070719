"""Registry of CDI specs loaded from spec directories (the reference's Cache, without
file watching: a Registry is a snapshot; call ``refresh()`` to rescan).

Scanning follows the reference: directories in order (priority = position, later wins),
a missing directory is skipped, a directory that cannot be read stops the scan of the
directories after it; in each directory the regular ``*.json``/``*.yaml`` entries are read
in name order (sub-directories skipped, symlinks followed). Conflicts: a device defined
again at a higher priority replaces the earlier one; defined twice at the same priority,
it is an error on both files and neither definition is usable.

Trust (``trusted_only=True``, the runtime shim's use; only while running as root): a spec
file that is not owned by root, or is writable by group or others, or lies in a directory
(the spec dir or any directory above it, or the directory of a symlink's target) that is
not owned by root or is group/other-writable without the sticky bit, is not used; the
reason is reported in ``errors()`` and ``ignored()``. An unprivileged user who can write
such a file could otherwise make root inject any host path into every GPU container.
"""

from __future__ import annotations

import os

from gpuctk.cdi.apply import apply_canonical, merge_edits
from gpuctk.cdi.errors import CDIError, UnresolvableDevicesError
from gpuctk.cdi.model import Device, Spec, load_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
SPEC_EXTENSIONS = (".json", ".yaml")
IGNORED_PREFIX = "ignored: "


def is_spec_file_name(name: str) -> bool:
    """The reference's rule: only ``*.json`` and ``*.yaml`` entries are specs (not ``.yml``)."""
    dot = name.rfind(".")
    return dot >= 0 and name[dot:] in SPEC_EXTENSIONS


def _untrusted_stat(st: os.stat_result, what: str, *, directory: bool) -> str | None:
    if st.st_uid != 0:
        return f"{what} is owned by uid {st.st_uid}, not root"
    if st.st_mode & 0o022 and not (directory and st.st_mode & 0o1000):
        return f"{what} is writable by group or others (mode {st.st_mode & 0o7777:04o})"
    return None


def _dir_chain_problem(directory: str, seen: dict[str, str | None], top: str = "/") -> str | None:
    """The first untrusted directory of ``directory`` and its ancestors below ``top`` (all of
    them for ``/``), memoised in ``seen``."""
    d = os.path.abspath(directory)
    top = os.path.abspath(top)
    chain: list[str] = []
    while True:
        if d == top and top != "/":
            break  # a host root given to doctor: its own place in this machine's tree does not count
        chain.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for d in reversed(chain):  # from / down: report the outermost culprit
        if d not in seen:
            try:
                st = os.stat(d)
            except OSError as exc:
                seen[d] = f'directory "{d}" cannot be checked: {exc.strerror or exc}'
            else:
                seen[d] = _untrusted_stat(st, f'directory "{d}"', directory=True)
        if seen[d]:
            return seen[d]
    return None


def trust_problem(
    path: str, spec_dir: str | None = None, seen: dict[str, str | None] | None = None, *, top: str = "/"
) -> str | None:
    """Why root must not use the spec file ``path`` (None when it may): see the module doc.
    ``top``: a host root the path lies under (doctor); directories above it are not checked."""
    seen = {} if seen is None else seen
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot be checked: {exc.strerror or exc}"
    problem = _untrusted_stat(st, "the file", directory=False)
    if problem:
        return problem
    dirs = [spec_dir or os.path.dirname(path)]
    if os.path.islink(path):
        dirs.append(os.path.dirname(os.path.realpath(path)))
    for d in dirs:
        problem = _dir_chain_problem(d, seen, top)
        if problem:
            return problem
    return None


def generate_spec_name(vendor: str, cls: str) -> str:
    """``vendor-class``: the reference's file name (without extension) for a vendor's spec."""
    return f"{vendor}-{cls}"


def generate_transient_spec_name(vendor: str, cls: str, transient_id: str) -> str:
    """``vendor-class_<id>`` with ``/`` in the id replaced by ``_`` (per-container specs)."""
    return f"{vendor}-{cls}_{transient_id.replace('/', '_')}"


def spec_name_for_kind(kind: str, transient_id: str | None = None) -> str:
    from gpuctk.cdi.names import class_error, parse_qualifier, vendor_error

    vendor, cls = parse_qualifier(kind)
    if vendor_error(vendor) or class_error(cls):
        raise CDIError(f'invalid vendor/class "{kind}" in Spec')
    if transient_id is None:
        return generate_spec_name(vendor, cls)
    return generate_transient_spec_name(vendor, cls, transient_id)


class Registry:
    """Devices from ``spec_dirs`` (default ``/etc/cdi``, ``/var/run/cdi``) plus in-memory ``specs``.

    In-memory specs rank above every directory. ``spec_dirs=[]`` scans no directory.
    """

    def __init__(
        self,
        spec_dirs: list[str] | None = None,
        specs: list[Spec] | None = None,
        *,
        cache: bool = False,
        trusted_only: bool = False,
    ) -> None:
        """``cache=True``: reuse the parsed specs of an earlier scan while no spec file changed
        (``gpuctk.cdi.cache``; the runtime shim's create path). Results are the same either way.
        ``trusted_only=True``: when running as root, skip spec files that are not root's own
        (see the module doc); :meth:`ignored` names them with the reason."""
        dirs = DEFAULT_SPEC_DIRS if spec_dirs is None else spec_dirs
        self.spec_dirs = [os.path.normpath(d) for d in dirs]
        self._memory = list(specs or [])
        self._cache = cache
        self._trusted_only = trusted_only and os.geteuid() == 0
        self.refresh()

    def _untrusted(self) -> dict[str, str]:
        """Candidate spec files root must not use, with the reason (empty unless trusted_only)."""
        out: dict[str, str] = {}
        if not self._trusted_only:
            return out
        seen: dict[str, str | None] = {}
        for directory in self.spec_dirs:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                if is_spec_file_name(name):
                    path = os.path.join(directory, name)
                    problem = trust_problem(path, directory, seen)
                    if problem:
                        out[path] = problem
        return out

    # ------------------------------------------------------------------ loading
    def _scan(self) -> tuple[list[Spec], dict[str, list[str]]]:
        """Specs and errors of the spec dirs, from the cache when it is on and still valid."""
        untrusted = self._untrusted()
        self._ignored = untrusted
        if not self._cache or not self.spec_dirs:
            return self._scan_dirs(untrusted)
        from gpuctk.cdi import cache

        if cache.cache_dir() is None:  # not root and no $GPUCTK_CONFIG_CACHE_DIR
            return self._scan_dirs(untrusted)
        fingerprint = cache.scan_fingerprint(self.spec_dirs)
        if fingerprint is None:
            return self._scan_dirs(untrusted)
        # the trust verdicts are part of the key: a chmod of a spec *directory* changes no
        # file's stat, yet must change what gets used
        verdicts = tuple(sorted(untrusted.items())) if self._trusted_only else None
        hit = cache.load(self.spec_dirs, fingerprint, verdicts)
        if hit is not None:
            return [Spec(d, source, prio) for d, source, prio in hit[0]], hit[1]
        specs, errors = self._scan_dirs(untrusted)
        cache.store(
            self.spec_dirs,
            fingerprint,
            [(s.canonical(), s.source, s.priority) for s in specs],
            errors,
            verdicts,
        )
        return specs, errors

    def _scan_dirs(self, untrusted: dict[str, str]) -> tuple[list[Spec], dict[str, list[str]]]:
        errors: dict[str, list[str]] = {}
        specs: list[Spec] = []
        for prio, directory in enumerate(self.spec_dirs):
            try:
                entries = sorted(os.listdir(directory))
            except FileNotFoundError:
                continue
            except OSError as exc:
                errors.setdefault(directory, []).append(
                    f'failed to read CDI spec dir "{directory}": {exc.strerror or exc}'
                )
                for later in self.spec_dirs[prio + 1 :]:
                    errors.setdefault(later, []).append(
                        f'not scanned: the earlier spec dir "{directory}" could not be read'
                    )
                break
            for name in entries:
                if not is_spec_file_name(name):
                    continue
                path = os.path.join(directory, name)
                if path in untrusted:
                    errors.setdefault(path, []).append(IGNORED_PREFIX + untrusted[path])
                    continue
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        continue  # a real sub-directory: skipped like the reference
                    specs.append(load_spec(path, prio))
                except CDIError as exc:
                    errors.setdefault(path, []).append(str(exc))
        return specs, errors

    def refresh(self) -> None:
        """Rescan the spec directories."""
        specs, errors = self._scan()
        mem_prio = len(self.spec_dirs)
        for spec in self._memory:
            spec.priority = mem_prio
            specs.append(spec)
        devices: dict[str, Device] = {}
        conflicts: set[str] = set()
        for spec in specs:
            for dev in spec.devices:
                q = dev.qualified_name
                old = devices.get(q)
                if old is not None:
                    if spec.priority == old.spec.priority:
                        msg = f'conflicting device "{q}" (specs "{spec.source}", "{old.spec.source}")'
                        for p in (spec.source, old.spec.source):
                            errors.setdefault(p, []).append(msg)
                        conflicts.add(q)
                        continue
                    if spec.priority < old.spec.priority:
                        continue
                devices[q] = dev
        for q in conflicts:
            devices.pop(q, None)
        self._specs = specs
        self._devices = devices
        self._errors = errors

    # ------------------------------------------------------------------ queries
    def errors(self) -> dict[str, list[str]]:
        """Problems of the last scan, keyed by spec file or directory path."""
        return {k: list(v) for k, v in self._errors.items()}

    def ignored(self) -> dict[str, str]:
        """Spec files not used because root must not trust them (``trusted_only``), with why."""
        return dict(self._ignored)

    def list_devices(self) -> list[str]:
        return sorted(self._devices)

    def get_device(self, name: str) -> Device | None:
        return self._devices.get(name)

    def specs(self) -> list[Spec]:
        """Every successfully loaded spec, shadowed or not, in scan order."""
        return list(self._specs)

    def list_vendors(self) -> list[str]:
        return sorted({s.vendor for s in self._specs})

    def list_classes(self) -> list[str]:
        return sorted({s.device_class for s in self._specs})

    # ------------------------------------------------------------------ writing
    def _spec_path(self, name: str) -> str:
        if not self.spec_dirs:
            raise CDIError("no Spec directories to write to")
        if not name.endswith((".json", ".yaml")):
            name += ".yaml"
        return os.path.join(self.spec_dirs[-1], name)

    def write_spec(self, spec: Spec | dict[str, Any], name: str) -> str:
        """Validate and write a spec into the highest-priority dir (``.yaml`` unless the name
        ends in ``.json``), then rescan; returns the path. Invalid specs are never written."""
        from gpuctk.cdi.write import write_spec

        path = self._spec_path(name)
        write_spec(spec, path)
        self.refresh()
        return path

    def remove_spec(self, name: str) -> None:
        """Remove a spec written by ``write_spec`` (a missing file is not an error), then rescan."""
        try:
            os.unlink(self._spec_path(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CDIError(f'failed to remove CDI Spec "{name}": {exc.strerror or exc}') from None
        self.refresh()

    # ------------------------------------------------------------------ injection
    def resolve(self, names: list[str]) -> list[Device]:
        """The devices for ``names``; UnresolvableDevicesError lists every unknown name."""
        found: list[Device] = []
        unresolved: list[str] = []
        for name in names:
            dev = self._devices.get(name)
            if dev is None:
                unresolved.append(name)
            else:
                found.append(dev)
        if unresolved:
            raise UnresolvableDevicesError(unresolved)
        return found

    def edits_for(self, names: list[str]) -> dict[str, Any]:
        """Merged canonical edits: each spec's global edits once, before its first device."""
        seen: set[int] = set()
        parts: list[dict[str, Any]] = []
        for dev in self.resolve(names):
            if id(dev.spec) not in seen:
                seen.add(id(dev.spec))
                parts.append(dev.spec.container_edits)
            parts.append(dev.container_edits)
        return merge_edits(parts)

    def inject_devices(self, oci_spec: dict[str, Any], names: list[str]) -> list[str]:
        """Apply the named devices to the raw OCI spec dict in place; all or nothing."""
        if oci_spec is None:
            raise CDIError("can't inject devices, nil OCI Spec")
        edits = self.edits_for(list(names))
        try:
            apply_canonical(oci_spec, edits)
        except CDIError as exc:
            raise CDIError(f"failed to inject devices: {exc}") from None
        return list(names)
