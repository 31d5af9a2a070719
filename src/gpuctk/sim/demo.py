"""`make demo`: a simulated DGX H100, its CDI spec, and a container that sees its GPUs.

1. create a dgx-h100 simulated node in a temp dir;
2. generate its CDI spec (gpuctk-hook hooks);
3. print a short summary (devices, mounts, hooks, spec version, warnings);
4. as root with runc and busybox: run a busybox container through ``gpuctk-runtime`` (JIT CDI
   against the node, runc underneath) that prints the simulated ``nvidia-smi -L`` and
   ``ls -l /dev/nvidia*``, and say which path ran (the shim's own log line); without root,
   runc or busybox, say what is missing and print the injected OCI diff instead;
5. time the container's cycle (create + start + state + delete, ``/bin/true``) through the shim
   next to runc alone on the same bundle with the same edits pre-applied and no hooks.

There is no fallback: when the shim cannot run the container the demo says so and exits 1
(`make demo` installs runc and busybox-static first when run as root, as `make test` does).
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
APPLETS = ["sh", "ls", "cat", "echo", "true"]
DEBS = "runc busybox-static"
CYCLES = 3


def _script(name: str) -> str | None:
    cand = os.path.join(os.path.dirname(sys.executable), name)
    return cand if os.path.exists(cand) else shutil.which(name)


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
    _write(os.path.join(base, "config.json"), json.dumps(config, indent=2))
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

    from gpuctk.generate.hooks import expand_hooks

    processes = len(common.get("hooks", []))
    hooks = [
        h["args"][1] if h["args"][0] not in ("nvidia-ctk", "gpuctk") else h["args"][2]
        for h in expand_hooks(common.get("hooks", []))
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
    print(
        f"  hooks: {', '.join(hooks) or 'none'}"
        + (" (one gpuctk-hook process)" if processes == 1 < len(hooks) else "")
    )
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

    runc, busybox, shim = shutil.which("runc"), _busybox(), _script("gpuctk-runtime")
    bundle, config = _bundle(os.path.join(tmp, "bundle"), busybox or "/bin/sh")
    if os.geteuid() != 0 or not runc or not busybox or not shim:
        lacking = [n for n, ok in (("runc", runc), ("busybox-static", busybox)) if not ok]
        if os.geteuid() != 0:
            why = "not root: the container step needs root (runc, device nodes)"
            how = "run `make demo` as root" + (f" (it installs {', '.join(lacking)})" if lacking else "")
        elif lacking:
            why = f"{' and '.join(lacking)} missing"
            how = f"install them (apt-get install {DEBS}; `make demo` does it as root)"
        else:
            why, how = "gpuctk-runtime is not installed", "pip install -e . (make demo does it)"
        print(f"[4] {why}: no container run; to run it, {how}.")
        print("    The OCI diff for NVIDIA_VISIBLE_DEVICES=all would be:")
        _show_diff(config, run_spec=spec, cdi_dir=cdi_dir)
        _done(t0)
        return 0 if os.geteuid() != 0 else 1

    env = _shim_env(node, bundle, hook)
    log_path = env["GPUCTK_DEMO_LOG"]
    r = _run([shim], bundle, f"gpuctk-demo-{os.getpid()}", env)
    shim_lines = _read_lines(log_path)
    if r.returncode != 0 or "GPU 0:" not in r.stdout:
        last = (r.stderr.strip().splitlines() or r.stdout.strip().splitlines() or ["no output"])[-1]
        print(
            f"[4] FAILED: gpuctk-runtime did not run a container that sees the GPUs (rc {r.returncode}: {last})"
        )
        for line in shim_lines[-5:]:
            print("    gpuctk-runtime log: " + line)
        _done(t0)
        return 1
    print("[4] path: gpuctk-runtime (jit-cdi, NVIDIA_VISIBLE_DEVICES=all, hooks by gpuctk-hook) -> runc")
    for line in shim_lines:
        if "Updated OCI spec" in line:
            print("    gpuctk-runtime log: " + line.split('msg="', 1)[-1].rstrip('"'))
    for line in r.stdout.rstrip().splitlines():
        print("    | " + line)
    _cycle_times(shim, runc, bundle, config, env)
    return _done(t0)


def _show_diff(config: dict[str, Any], run_spec: dict[str, Any], cdi_dir: str) -> None:
    injected = copy.deepcopy(config)
    try:
        from gpuctk.cdi import Registry

        Registry(spec_dirs=[cdi_dir]).inject_devices(injected, ["nvidia.com/gpu=all"])
    except Exception as exc:
        # e.g. descriptor "device nodes" (not root): the CDI library stats real nodes
        print(f"    (CDI library injection failed: {exc}; showing the spec's edits directly)")
        injected = _plain_inject(config, run_spec, "all")
    hooks = injected.pop("hooks", None) or {}
    _oci_diff(config, injected)
    if hooks:
        print(f"    (and {sum(len(v) for v in hooks.values())} hooks: {', '.join(sorted(hooks))}; not shown)")


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def _shim_env(node: Any, bundle: str, hook: str | None) -> dict[str, str]:
    base = os.path.dirname(bundle)
    conf = os.path.join(base, "config.toml")
    log = os.path.join(base, "gpuctk-runtime.log")
    _write(
        conf,
        f'[nvidia-container-cli]\nroot = "{node.root}"\n\n[nvidia-container-runtime]\nmode = "jit-cdi"\n'
        f'debug = "{log}"\nruntimes = ["runc"]\n\n[nvidia-container-runtime.modes.jit-cdi]\n'
        f'nvcdi-feature-flags = ["no-additional-gids-for-device-nodes"]\n'
        f'\n[nvidia-ctk]\npath = "{hook or "gpuctk-hook"}"\n',
    )
    return dict(
        os.environ,
        NVIDIA_CTK_CONFIG_FILE_PATH=conf,
        GPUCTK_INVENTORY=node.inventory_path,
        GPUCTK_JIT_CACHE_DIR=os.path.join(base, "jit-cache"),
        GPUCTK_DEMO_LOG=log,
    )


def _write(path: str, text: str) -> None:
    from gpuctk.fileio import atomic_write

    atomic_write(path, text, durable=False)


def _cycle(runtime: str, bundle: str, cid: str, env: dict[str, str]) -> float | None:
    """Seconds for create + start + state + delete of one `/bin/true` container, or None."""
    state = tempfile.mkdtemp(prefix="gpuctk-demo-state-")
    base = [runtime, "--root", state]
    quiet: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "env": env}
    try:
        t = time.perf_counter()
        steps = (
            ["create", "--bundle", bundle, cid],
            ["start", cid],
            ["state", cid],
            ["delete", "--force", cid],
        )
        for step in steps:
            r = subprocess.run([*base, *step], stderr=subprocess.DEVNULL, timeout=60, **quiet)
            if r.returncode != 0:
                return None
        return time.perf_counter() - t
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        subprocess.run(
            [shutil.which("runc") or "runc", "--root", state, "delete", "--force", cid], capture_output=True
        )
        shutil.rmtree(state, ignore_errors=True)


def _cycle_times(shim: str, runc: str, bundle: str, config: dict[str, Any], env: dict[str, str]) -> None:
    """Step 5: the cycle through the shim next to runc alone (same bundle, edits pre-applied, no hooks)."""
    path = os.path.join(bundle, "config.json")
    pristine = copy.deepcopy(config)
    pristine["process"]["args"] = ["true"]
    # the edits the shim made for the container above, laid on the /bin/true config without hooks
    with open(path) as f:
        edited = json.load(f)
    edited["process"]["args"] = ["true"]
    hooks = sum(len(v) for v in (edited.pop("hooks", None) or {}).values())
    shim_t: list[float] = []
    runc_t: list[float] = []
    for i in range(CYCLES):  # in rotation, so load changes hit both alike
        _write(path, json.dumps(pristine))
        t = _cycle(shim, bundle, f"gpuctk-demo-{os.getpid()}-s{i}", env)
        _write(path, json.dumps(edited))
        u = _cycle(runc, bundle, f"gpuctk-demo-{os.getpid()}-r{i}", env)
        if t is None or u is None:
            print("[5] cycle time: a create/start/state/delete step failed; no figures")
            return
        shim_t.append(t)
        runc_t.append(u)
    s, r = sorted(shim_t)[CYCLES // 2], sorted(runc_t)[CYCLES // 2]
    print(f"[5] cycle time (create + start + state + delete, /bin/true, median of {CYCLES}):")
    print(f"    through gpuctk-runtime ({hooks} hook{'' if hooks == 1 else 's'}): {s * 1000:.0f} ms")
    print(f"    runc alone, same edits pre-applied, no hooks: {r * 1000:.0f} ms ({s / r:.1f}x)")


def _done(t0: float) -> int:
    print(f"done in {time.perf_counter() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
