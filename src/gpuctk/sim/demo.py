"""`make demo`: a simulated DGX H100, its CDI spec, and a container that sees its GPUs.

1. create a dgx-h100 simulated node in a temp dir;
2. generate its CDI spec;
3. print a short summary (devices, mounts, hooks, spec version, warnings);
4. as root with runc: run a busybox container through ``gpuctk-runtime`` (JIT CDI
   against the node) that prints the simulated ``nvidia-smi -L`` and ``ls -l /dev/nvidia*``;
   if the shim cannot run it, inject the spec with the CDI library and run plain runc;
   otherwise print the injected OCI diff.

Never prints a traceback: every step reports its own failure in one line.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

CMD = "nvidia-smi -L; ls -l /dev/nvidia*"
APPLETS = ["sh", "ls", "cat", "echo"]


def _script(name: str) -> str | None:
    cand = os.path.join(os.path.dirname(sys.executable), name)
    return cand if os.path.exists(cand) else shutil.which(name)


def _hook_works(hook: str | None) -> bool:
    if not hook:
        return False
    try:
        p = subprocess.run([hook, "create-symlinks", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return p.returncode == 0 and "not implemented" not in (p.stdout + p.stderr)


def _busybox() -> str | None:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    return None


def _bundle(base: str, busybox: str) -> tuple[str, dict[str, Any]]:
    root = os.path.join(base, "rootfs")
    for d in ("bin", "dev", "proc", "sys", "etc", "tmp", "usr/bin", "usr/lib"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", a))
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", CMD],
            "env": ["PATH=/usr/bin:/bin", "NVIDIA_VISIBLE_DEVICES=all"],
            "cwd": "/",
            "capabilities": {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "gpuctk-demo",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
        },
    }
    with open(os.path.join(base, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return base, config


def _run(
    runtime: list[str], bundle: str, cid: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    state = tempfile.mkdtemp(prefix="gpuctk-demo-state-")
    runc = shutil.which("runc") or "runc"
    try:
        return subprocess.run(
            [*runtime, "--root", state, "run", "--bundle", bundle, cid],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run([runc, "--root", state, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


def _summary(spec: dict[str, Any], warnings: list[str]) -> None:
    common = spec.get("containerEdits") or {}
    names = [d["name"] for d in spec["devices"]]
    mounts = common.get("mounts", [])

    def count(pred: Any) -> int:
        return sum(1 for m in mounts if pred(m["containerPath"]))

    hooks = [
        h["args"][1] if h["args"][0] not in ("nvidia-ctk", "gpuctk") else h["args"][2]
        for h in common.get("hooks", [])
    ]
    print(f"  spec: kind {spec['kind']}, cdiVersion {spec['cdiVersion']}")
    print(
        f"  devices ({len(names)}): {', '.join(n for n in names if not n.startswith('GPU-'))} "
        f"+ {sum(1 for n in names if n.startswith('GPU-'))} by UUID"
    )
    print(f"  common device nodes: {', '.join(n['path'] for n in common.get('deviceNodes', []))}")
    print(
        f"  mounts ({len(mounts)}): {count(lambda p: '.so' in p)} libraries, {count(lambda p: '/firmware/' in p)} "
        f"firmware, {count(lambda p: p.startswith('/usr/bin/'))} binaries, {count(lambda p: p.endswith('socket'))} IPC "
        f"sockets, {count(lambda p: p.endswith(('.json', '.icd', '.bin')) and '/firmware/' not in p)} configs"
    )
    print(f"  hooks: {', '.join(hooks) or 'none'}")
    print(f"  warnings: {'; '.join(warnings) if warnings else 'none'}")


def _plain_inject(config: dict[str, Any], spec: dict[str, Any], device: str) -> dict[str, Any]:
    """The spec's edits laid onto config.json without stat'ing host nodes (for display)."""
    out = copy.deepcopy(config)
    dev = next(d for d in spec["devices"] if d["name"] == device)
    for edits in (spec.get("containerEdits") or {}, dev["containerEdits"]):
        out["process"]["env"] += edits.get("env", [])
        for n in edits.get("deviceNodes", []):
            out["linux"].setdefault("devices", []).append(
                {k: n[k] for k in ("path", "major", "minor", "fileMode", "gid") if k in n} | {"type": "c"}
            )
            out["linux"]["resources"]["devices"].append(
                {
                    "allow": True,
                    "type": "c",
                    "major": n.get("major"),
                    "minor": n.get("minor"),
                    "access": "rwm",
                }
            )
        for m in edits.get("mounts", []):
            out["mounts"].append(
                {
                    "destination": m["containerPath"],
                    "source": m["hostPath"],
                    "type": "bind",
                    "options": m.get("options", []),
                }
            )
        for h in edits.get("hooks", []):
            out.setdefault("hooks", {}).setdefault(h["hookName"], []).append(
                {k: h[k] for k in ("path", "args", "env") if k in h}
            )
    return out


def _oci_diff(before: dict[str, Any], after: dict[str, Any], limit: int = 40) -> None:
    a = json.dumps(before, indent=1, sort_keys=True).splitlines()
    b = json.dumps(after, indent=1, sort_keys=True).splitlines()
    lines = [
        line
        for line in difflib.unified_diff(a, b, "config.json", "config.json (injected)", n=0, lineterm="")
        if not line.startswith("@@")
    ]
    for line in lines[:limit]:
        print("    " + line)
    if len(lines) > limit:
        print(f"    … {len(lines) - limit} more diff lines")


def main() -> int:
    from gpuctk.errors import GpuctkError

    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="gpuctk-demo-")
    try:
        return _demo(tmp, t0)
    except GpuctkError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the demo must never traceback
        print(f"demo: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _demo(tmp: str, t0: float) -> int:
    from gpuctk.generate import GenerateOptions, generate_spec
    from gpuctk.generate.render import write_spec_file
    from gpuctk.sim import create_node

    print("gpuctk demo: a simulated DGX H100 node, its CDI spec, and a container that uses it")
    node = create_node("dgx-h100", os.path.join(tmp, "node"))
    print(
        f"[1] simulated node: {len(node.gpus)}x {node.gpus[0]['name']}, driver {node.driver_version}, "
        f"device nodes by {node.device_mode}, ld.so.cache by {node.ldcache}"
    )
    print(f"    root: {node.root}")

    hook = _script("gpuctk-hook")
    hooks_ok = _hook_works(hook)
    print("[2] gpuctk cdi generate --driver-root <node root>")
    opts = GenerateOptions(
        driver_root=node.root,
        inventory=node.inventory_path,
        hook_path=hook,
        feature_flags=["no-additional-gids-for-device-nodes"],
    )
    spec, warnings = generate_spec(opts)
    cdi_dir = os.path.join(tmp, "cdi")
    write_spec_file(spec, os.path.join(cdi_dir, "nvidia.yaml"), "yaml")
    print("[3] summary")
    _summary(spec, warnings)
    if not hooks_ok:
        print("    (gpuctk-hook is not functional in this build: the container runs with the hooks left out)")
    # the fallback path (CDI library + plain runc) runs without hooks, so it works whatever their state
    run_spec, _ = generate_spec(
        GenerateOptions(
            driver_root=node.root,
            inventory=node.inventory_path,
            hook_path=hook,
            disabled_hooks=["all"],
            feature_flags=["no-additional-gids-for-device-nodes"],
        )
    )
    write_spec_file(run_spec, os.path.join(cdi_dir, "nvidia.yaml"), "yaml")

    runc, busybox = shutil.which("runc"), _busybox()
    bundle, config = _bundle(os.path.join(tmp, "bundle"), busybox or "/bin/sh")
    injected = copy.deepcopy(config)
    try:
        from gpuctk.cdi import Registry

        Registry(spec_dirs=[cdi_dir]).inject_devices(injected, ["nvidia.com/gpu=all"])
    except Exception as exc:
        # e.g. descriptor "device nodes" (not root): the CDI library stats real nodes
        print(f"    (CDI library injection failed: {exc}; showing the spec's edits directly)")
        injected = _plain_inject(config, run_spec, "all")
    if os.geteuid() != 0 or not runc or not busybox:
        why = "not root" if os.geteuid() != 0 else "runc missing" if not runc else "busybox missing"
        print(f"[4] {why}: no container run; the OCI diff for NVIDIA_VISIBLE_DEVICES=all would be:")
        _oci_diff(config, injected)
        return _done(t0)

    output = _via_shim(node, bundle, hook, hooks_ok)
    if output is None:
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(injected, f)
        r = _run([runc], bundle, f"gpuctk-demo-{os.getpid()}-b")
        if r.returncode == 0:
            print("[4] container run by plain runc on a config.json injected by `gpuctk cdi inject`:")
            output = r.stdout
        else:
            print(
                f"[4] the container did not run ({r.stderr.strip().splitlines()[-1:] or ['?']}); injected OCI diff:"
            )
            _oci_diff(config, injected)
            return _done(t0)
    for line in output.rstrip().splitlines():
        print("    | " + line)
    return _done(t0)


def _via_shim(node: Any, bundle: str, hook: str | None, hooks_ok: bool) -> str | None:
    shim = None if os.environ.get("GPUCTK_DEMO_NO_SHIM") else _script("gpuctk-runtime")
    if not shim:
        return None
    if hooks_ok:
        out = _shim_once(shim, node, bundle, hook, True)
        if out is not None:
            return out
    return _shim_once(shim, node, bundle, hook, False)


def _shim_once(shim: str, node: Any, bundle: str, hook: str | None, hooks_ok: bool) -> str | None:
    conf = os.path.join(os.path.dirname(bundle), "config.toml")
    with open(conf, "w") as f:
        f.write(
            f'[nvidia-container-cli]\nroot = "{node.root}"\n\n[nvidia-container-runtime]\nmode = "jit-cdi"\n'
            f'runtimes = ["runc"]\n\n[nvidia-container-runtime.modes.jit-cdi]\n'
            f'nvcdi-feature-flags = ["no-additional-gids-for-device-nodes"]\n'
            + ('nvcdi-disable-hooks = ["all"]\n' if not hooks_ok else "")
            + f'\n[nvidia-ctk]\npath = "{hook or "gpuctk-hook"}"\n'
        )
    env = dict(
        os.environ,
        NVIDIA_CTK_CONFIG_FILE_PATH=conf,
        GPUCTK_INVENTORY=node.inventory_path,
        GPUCTK_JIT_CACHE_DIR=os.path.join(os.path.dirname(bundle), "jit-cache"),
    )
    r = _run([shim], bundle, f"gpuctk-demo-{os.getpid()}-{'h' if hooks_ok else 'a'}", env)
    if r.returncode == 0 and "GPU 0:" in r.stdout:
        print(
            "[4] container run through gpuctk-runtime (jit-cdi, NVIDIA_VISIBLE_DEVICES=all"
            + (", with gpuctk-hook hooks):" if hooks_ok else ", hooks left out):")
        )
        return r.stdout
    last = (r.stderr.strip().splitlines() or ["no output"])[-1]
    nxt = "retrying without hooks" if hooks_ok else "falling back to `gpuctk cdi inject` + runc"
    print(f"[4] gpuctk-runtime could not run the container ({last}); {nxt}")
    return None


def _done(t0: float) -> int:
    print(f"done in {time.perf_counter() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
