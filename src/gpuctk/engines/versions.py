"""Container-engine version strings and what each version can do with CDI.

Stdlib only, pure functions. The version parse is lenient on purpose: distro and
vendor builds report strings such as ``1.7.12-0ubuntu2~22.04.1`` or ``1.7.11-k3s2``
that are not valid semver, and a strict parser would misclassify those nodes
(the pitfall of NVIDIA/gpu-operator PR #1285, which parsed the text after ``://`` as strict
semver; see docs/kubernetes.md).
"""

from __future__ import annotations

import re
from typing import Any

Version = tuple[int, int, int]

# node.status.nodeInfo.containerRuntimeVersion prefixes -> gpuctk engine names.
_ENGINE_ALIASES = {
    "containerd": "containerd",
    "cri-o": "crio",
    "crio": "crio",
    "docker": "docker",
    "moby": "docker",
}

# The first dotted number in the text: 1, 1.7, 1.7.12 (with anything after it).
_VERSION_RE = re.compile(r"(?<![0-9.])v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def normalize_engine(name: str) -> str:
    """``cri-o`` -> ``crio``, ``Docker`` -> ``docker``; unknown names are lower-cased."""
    key = name.strip().lower()
    return _ENGINE_ALIASES.get(key, key)


def parse_version(text: str) -> Version | None:
    """The leading ``major.minor.patch`` of ``text`` (missing parts are 0), or None."""
    m = _VERSION_RE.search(text.strip())
    if not m:
        return None
    major, minor, patch = (int(g) if g is not None else 0 for g in m.groups())
    return (major, minor, patch)


def parse_runtime_version(s: str) -> tuple[str, Version | None]:
    """Split ``engine://version`` leniently into ``(engine, (major, minor, patch))``.

    ``containerd://1.7.12-0ubuntu2~22.04.1`` -> ``("containerd", (1, 7, 12))``;
    ``cri-o://1.29.1`` -> ``("crio", (1, 29, 1))``; a bare ``1.7.11-k3s2`` -> ``("containerd",
    (1, 7, 11))`` because k3s/RKE2 builds are containerd; any other bare version gives
    engine ``""``. Output of ``containerd --version`` / ``crio --version`` / ``docker --version``
    is understood as well. The version is None when no number is found.
    """
    text = s.strip()
    engine = ""
    rest = text
    if "://" in text:
        prefix, rest = text.split("://", 1)
        engine = normalize_engine(prefix)
    else:
        low = text.lower()
        # `containerd github.com/containerd/containerd 1.6.20 2806fc1` (containerd --version),
        # `Docker version 24.0.7, build afdd53b`, `crio version 1.29.1`.
        first = low.split()[0] if low.split() else ""
        if first in _ENGINE_ALIASES:
            engine = normalize_engine(first)
            rest = text[len(first) :]
            # skip the module path containerd prints before its version
            rest = re.sub(r"^\s*\S*github\.com/\S+", "", rest)
        elif re.search(r"-k3s\d*|-rke2", low):
            engine = "containerd"
    return engine, parse_version(rest)


def format_version(v: Version | None) -> str:
    return "unknown" if v is None else ".".join(str(n) for n in v)


def cdi_support(engine: str, version: Version | str | None) -> dict[str, Any]:
    """What ``engine`` at ``version`` does with CDI (containerd/containerd PR #6654 and #9621,
    cri-o/cri-o PR #6944, docker/cli ``docs/reference/dockerd.md`` ``features.cdi``; table in docs/engines.md).

    Returns ``native_cdi`` (the engine itself can inject CDI devices), ``needs_enable_cdi``
    (only once its config turns CDI on), ``enabled_by_default``, ``cri_field`` (the CRI
    ``CDIDevices`` field is honoured, not only annotations) and a one-line ``reason``.
    """
    if isinstance(version, str):
        version = parse_version(version)
    engine = normalize_engine(engine)

    def result(native: bool, needs: bool, reason: str, *, cri_field: bool | None = None) -> dict[str, Any]:
        return {
            "native_cdi": native,
            "needs_enable_cdi": needs,
            "enabled_by_default": native and not needs,
            "cri_field": native if cri_field is None else cri_field,
            "reason": reason,
        }

    vs = format_version(version)
    if engine == "containerd":
        if version is None:
            return result(False, False, "containerd version unknown: assuming no native CDI")
        if version < (1, 7, 0):
            return result(False, False, f"containerd {vs} < 1.7 has no native CDI support")
        if version < (1, 7, 2):
            return result(
                True,
                True,
                f"containerd {vs}: CDI only with enable_cdi = true, and the CRI CDIDevices field is "
                "unreliable before 1.7.2 (use cdi.k8s.io/ annotations)",
                cri_field=False,
            )
        if version < (2, 0, 0):
            return result(
                True, True, f"containerd {vs}: CDI supported but off by default (needs enable_cdi = true)"
            )
        return result(True, False, f"containerd {vs} >= 2.0 enables CDI by default")
    if engine == "crio":
        if version is None:
            return result(False, False, "CRI-O version unknown: assuming no native CDI")
        if version < (1, 23, 2):
            return result(False, False, f"CRI-O {vs} < 1.23.2 has no native CDI support")
        return result(
            True, False, f"CRI-O {vs} >= 1.23.2 enables CDI by default", cri_field=version >= (1, 28, 0)
        )
    if engine == "docker":
        if version is None:
            return result(False, False, "Docker version unknown: assuming no native CDI")
        if version < (25, 0, 0):
            return result(False, False, f"Docker {vs} < 25 has no CDI support (use --runtime nvidia)")
        if version < (28, 2, 0):
            return result(
                True, True, f"Docker {vs}: CDI needs features.cdi = true in daemon.json", cri_field=False
            )
        return result(True, False, f"Docker {vs} >= 28.2 enables CDI by default", cri_field=False)
    name = engine or "unknown engine"
    return result(False, False, f"{name}: no known native CDI support")
