"""Time to a running GPU container and back: the whole lifecycle through gpuctk-runtime vs runc.

Setup: a simulated DGX H100 (``gpuctk sim create --profile dgx-h100``: 8 GPUs, real device
nodes), the CDI spec ``gpuctk cdi generate`` writes for it (every default hook, hook path =
the venv's ``gpuctk-hook``), a busybox bundle running ``/bin/true`` that asks for
``NVIDIA_VISIBLE_DEVICES=all``, ``cdi`` mode, real runc.

Cases, run in rotation (round-robin, so load drift on a shared machine hits them alike; the
first round only warms caches):

- **cycle**: ``create`` + ``start`` + ``state`` + ``delete --force`` as four processes, all
  through the installed ``gpuctk-runtime`` (the sh front end: ``create`` starts Python, the
  others exec runc directly), the spec's hooks run by runc;
- **runc alone**: the same four commands with runc on the same bundle, the shim's edits
  pre-applied (the config.json the shim writes) and the hooks removed;
- **runc + hooks**: runc alone with the edits *and* the hooks (what the shim itself adds is the
  difference to **cycle**);
- **state**: ``state`` of one created container through the shim vs runc;
- **each hook alone**: every hook of the spec, as runc starts it (argv, OCI state on stdin) on
  a created container, vs ``/bin/true`` and ``python -I -S -c pass``; both shapes of the hooks:
  the one gpuctk writes for its own ``gpuctk-hook`` (the common steps as ONE ``run-steps``
  process, the ``all`` device's links as one more) and upstream's one hook per step (the same
  generator with ``--hook-path`` not naming this gpuctk's hook, renamed to run the same
  executable). Every round after the first is the hooks' no-op case: all links present.
- **per-step cycle**: the cycle above with the per-step spec, for the difference in place.

Wall time from ``time.perf_counter``; CPU time from ``os.wait4`` (user+sys of the command and
what it waited for; a container's init is not counted). Median (and min) of N rounds
(``--runs``, default 15). Needs root (runc, mknod). No assertions; figures go in
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support.containers import make_bundle  # noqa: E402

BIN = os.path.dirname(sys.executable)
SHIM = os.path.join(BIN, "gpuctk-runtime")
GPUCTK = os.path.join(BIN, "gpuctk")
HOOK = os.path.join(BIN, "gpuctk-hook")


def spawn(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> tuple[float, float, int]:
    """(wall ms, cpu ms, exit code) of one process. Output goes to /dev/null, never a pipe
    (a created container's init keeps inherited pipes open)."""
    rfd = None
    if stdin is not None:
        rfd, wfd = os.pipe()
        os.write(wfd, stdin)
        os.close(wfd)
    t0 = time.perf_counter()
    pid = os.posix_spawn(
        argv[0],
        argv,
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)
            if rfd is None
            else (os.POSIX_SPAWN_DUP2, rfd, 0),
            (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, ERRLOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
        ],
    )
    _, status, ru = os.wait4(pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    if rfd is not None:
        os.close(rfd)
    return wall, (ru.ru_utime + ru.ru_stime) * 1000, os.waitstatus_to_exitcode(status)


ERRLOG = "/dev/null"
PIP_SCRIPT = """#!{python}
import sys
from gpuctk.runtime.main import main
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit(main())
"""


def check(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> tuple[float, float]:
    wall, cpu, rc = spawn(argv, env, stdin)
    if rc != 0:
        with open(ERRLOG, errors="replace") as f:
            tail = f.read()[-2000:]
        raise SystemExit(f"failed ({rc}): {' '.join(argv[:6])}…\n{tail}")
    return wall, cpu


class Bench:
    def __init__(self, base: str, runc: str) -> None:
        self.base = base
        self.runc = runc
        self.state = os.path.join(base, "state")
        self.n = 0

    def cid(self) -> str:
        self.n += 1
        return f"gpuctk-cycle-{os.getpid()}-{self.n}"

    def cycle(self, exe: str, bundle: str, config: bytes, env: dict[str, str]) -> tuple[float, float]:
        """create+start+state+delete of one container through ``exe``; (wall, cpu) ms."""
        with open(os.path.join(bundle, "config.json"), "wb") as f:
            f.write(config)
        cid = self.cid()
        g = ["--root", self.state]
        wall = cpu = 0.0
        for argv in (
            [exe, *g, "create", "--bundle", bundle, cid],
            [exe, *g, "start", cid],
            [exe, *g, "state", cid],
            [exe, *g, "delete", "--force", cid],
        ):
            w, c = check(argv, env)
            wall += w
            cpu += c
        return wall, cpu


def distinct_hooks(
    hooks: dict[str, list[dict]], env: dict[str, str]
) -> dict[tuple[str, int], tuple[list[str], dict[str, str], int]]:
    """createContainer hooks by (subcommand, number of --link): one argv each, and a count."""
    out: dict[tuple[str, int], tuple[list[str], dict[str, str], int]] = {}
    for hook in hooks.get("createContainer", []):
        key = (hook["args"][1], hook["args"].count("--link"))
        if key in out:
            argv, hook_env, count = out[key]
            out[key] = (argv, hook_env, count + 1)
        else:
            hook_env = {**env, **dict(e.split("=", 1) for e in hook.get("env", []))}
            out[key] = ([hook["path"], *hook["args"][1:]], hook_env, 1)
    return out


def rotate(rounds: int, cases: list[tuple[str, object]]) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in cases}
    for i in range(rounds + 1):
        for name, fn in cases:
            r = fn()  # type: ignore[operator]
            if i:
                out[name].append(r)
    return out


def med(samples: list[tuple[float, float]], k: int = 0) -> float:
    return statistics.median(s[k] for s in samples)


def table(title: str, rows: dict[str, list[tuple[float, float]]]) -> None:
    print(f"\n{title}")
    print(f"{'case':58} {'wall med':>9} {'wall min':>9} {'cpu med':>8}")
    for name, s in rows.items():
        print(f"{name:58} {med(s):9.1f} {min(x[0] for x in s):9.1f} {med(s, 1):8.1f}")


def is_sh(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(9) == b"#!/bin/sh"


def strip_hooks(spec: dict) -> dict:
    out = json.loads(json.dumps(spec))
    for edits in [out.get("containerEdits", {})] + [
        d.get("containerEdits", {}) for d in out.get("devices", [])
    ]:
        edits.pop("hooks", None)
    return out


def generate_per_step(node: str) -> dict:
    """The spec of the same node in upstream's one-hook-per-step shape: generated for a hook
    path that is not this gpuctk's (gpuctk.generate.hooks.is_own_hook), then renamed to HOOK."""
    placeholder = "/nonexistent/gpuctk-hook"
    p = subprocess.run(
        [
            GPUCTK,
            "cdi",
            "generate",
            "--driver-root",
            os.path.join(node, "root"),
            "--inventory",
            os.path.join(node, "inventory.json"),
            "--hook-path",
            placeholder,
            "--format",
            "json",
            "--quiet",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(p.stdout.replace(json.dumps(placeholder), json.dumps(HOOK)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_cycle: needs root (runc, mknod); skipped")
        return 0
    runc = shutil.which("runc") or "/usr/sbin/runc"
    source_script = os.path.join(ROOT, "src", "gpuctk", "runtime", "scripts", "gpuctk-runtime")
    if is_sh(SHIM) and os.path.exists(source_script):
        with open(SHIM, "rb") as a, open(source_script, "rb") as b_:
            if a.read() != b_.read():
                print(f"warning: {SHIM} differs from {source_script}: reinstall (pip install -e .)")
    global ERRLOG
    base = tempfile.mkdtemp(prefix="gpuctk-bench-cycle-")
    ERRLOG = os.path.join(base, "stderr.log")
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[:3]
    try:
        node = os.path.join(base, "node")
        spec_dir = os.path.join(base, "cdi")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.pop("GPUCTK_CONFIG_CACHE_DIR", None)
        subprocess.run(
            [GPUCTK, "sim", "create", "--profile", "dgx-h100", node], check=True, capture_output=True
        )
        subprocess.run(
            [
                GPUCTK,
                "cdi",
                "generate",
                "--driver-root",
                os.path.join(node, "root"),
                "--inventory",
                os.path.join(node, "inventory.json"),
                "--hook-path",
                HOOK,
                "--format",
                "json",
                "--quiet",
                "--output",
                os.path.join(spec_dir, "nvidia.json"),
            ],
            check=True,
            capture_output=True,
        )
        with open(os.path.join(spec_dir, "nvidia.json")) as f:
            cdi_spec = json.load(f)
        # upstream's shape, one hook per step, running the same executable
        steps_dir = os.path.join(base, "cdi-per-step")
        os.makedirs(steps_dir)
        steps_spec = generate_per_step(node)
        with open(os.path.join(steps_dir, "nvidia.json"), "w") as f:
            json.dump(steps_spec, f)
        # the same spec without hooks: the shim's own cost, apart from what the hooks cost
        bare_dir = os.path.join(base, "cdi-no-hooks")
        os.makedirs(bare_dir)
        with open(os.path.join(bare_dir, "nvidia.json"), "w") as f:
            json.dump(strip_hooks(cdi_spec), f)
        cfg = os.path.join(base, "config.toml")
        with open(cfg, "w") as f:
            f.write(
                f'[nvidia-container-runtime]\nmode = "cdi"\nruntimes = ["{runc}"]\n'
                f'[nvidia-container-runtime.modes.cdi]\nspec-dirs = ["{spec_dir}"]\n'
            )
        cfg_bare = os.path.join(base, "config-no-hooks.toml")
        with open(cfg, encoding="utf-8") as src, open(cfg_bare, "w", encoding="utf-8") as dst:
            dst.write(src.read().replace(spec_dir, bare_dir))
        env_bare = {**env, "NVIDIA_CTK_CONFIG_FILE_PATH": cfg_bare}
        cfg_steps = os.path.join(base, "config-per-step.toml")
        with open(cfg, encoding="utf-8") as src, open(cfg_steps, "w", encoding="utf-8") as dst:
            dst.write(src.read().replace(spec_dir, steps_dir))
        env_steps = {**env, "NVIDIA_CTK_CONFIG_FILE_PATH": cfg_steps}
        old_enough = time.time_ns() - 60 * 10**9  # a config changed < 2 s ago is not cached
        for p in (cfg, cfg_bare, cfg_steps):
            os.utime(p, ns=(old_enough, old_enough))
        env["NVIDIA_CTK_CONFIG_FILE_PATH"] = cfg
        bundle = make_bundle(
            os.path.join(base, "bundle"),
            ["/bin/true"],
            env=["PATH=/bin:/usr/bin", "NVIDIA_VISIBLE_DEVICES=all"],
        )
        if not os.path.lexists(os.path.join(bundle, "rootfs", "bin", "true")):
            os.symlink("busybox", os.path.join(bundle, "rootfs", "bin", "true"))
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            requested = f.read()

        # the edits the shim makes, captured with /bin/true as the low-level runtime
        cfg_true = os.path.join(base, "config-true.toml")
        with open(cfg, encoding="utf-8") as src, open(cfg_true, "w", encoding="utf-8") as dst:
            dst.write(src.read().replace(f'["{runc}"]', '["/bin/true"]'))
        check(
            [SHIM, "create", "--bundle", bundle, "capture"], {**env, "NVIDIA_CTK_CONFIG_FILE_PATH": cfg_true}
        )
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            edited = json.loads(f.read())
        hooks = edited.pop("hooks", {})
        no_hooks = json.dumps(edited).encode()
        with_hooks = json.dumps({**edited, "hooks": hooks}).encode()
        n_hooks = sum(len(v) for v in hooks.values())
        # the per-step hooks as CDI injects them for `all` (common edits, then the device's), one
        # OCI entry each: what runc runs when no gpuctk shim merges them (a native-CDI engine)
        steps_hooks = {
            "createContainer": [
                {k: h[k] for k in ("path", "args", "env") if k in h}
                for h in steps_spec["containerEdits"].get("hooks", [])
                + next(d for d in steps_spec["devices"] if d["name"] == "all")["containerEdits"].get(
                    "hooks", []
                )
            ]
        }
        with_steps = json.dumps({**edited, "hooks": steps_hooks}).encode()
        n_steps = sum(len(v) for v in steps_hooks.values())

        # "before": the console script pip generated for gpuctk-runtime until the sh front end
        old_shim = os.path.join(base, "pip-script", "gpuctk-runtime")
        os.makedirs(os.path.dirname(old_shim))
        with open(old_shim, "w") as f:
            f.write(PIP_SCRIPT.format(python=sys.executable))
        os.chmod(old_shim, 0o755)

        b = Bench(base, runc)
        cycles = rotate(
            args.runs,
            [
                ("runc alone (edits pre-applied, no hooks)", lambda: b.cycle(runc, bundle, no_hooks, env)),
                (
                    "gpuctk-runtime cycle (spec's hooks run by runc)",
                    lambda: b.cycle(SHIM, bundle, requested, env),
                ),
                (
                    f"runc + the spec's {n_hooks} hooks (edits pre-applied)",
                    lambda: b.cycle(runc, bundle, with_hooks, env),
                ),
                (
                    "gpuctk-runtime cycle, the spec without hooks",
                    lambda: b.cycle(SHIM, bundle, requested, env_bare),
                ),
                (
                    "gpuctk-runtime cycle, per-step spec (the shim merges its hooks)",
                    lambda: b.cycle(SHIM, bundle, requested, env_steps),
                ),
                (
                    f"runc + the per-step spec's {n_steps} hooks (edits pre-applied)",
                    lambda: b.cycle(runc, bundle, with_steps, env),
                ),
                (
                    "before: pip console script, the spec without hooks",
                    lambda: b.cycle(old_shim, bundle, requested, env_bare),
                ),
            ],
        )

        # state, and each hook alone, against one created (not started) container
        with open(os.path.join(bundle, "config.json"), "wb") as f:
            f.write(no_hooks)
        cid = b.cid()
        check([runc, "--root", b.state, "create", "--bundle", bundle, cid], env)
        try:
            g = ["--root", b.state]
            states = rotate(
                args.runs * 2,
                [
                    ("runc state", lambda: check([runc, *g, "state", cid], env)),
                    ("gpuctk-runtime state", lambda: check([SHIM, *g, "state", cid], env)),
                    ("before: pip console script state", lambda: check([old_shim, *g, "state", cid], env)),
                ],
            )
            state_json = subprocess.run([runc, *g, "state", cid], capture_output=True, check=True).stdout
            oci_state = json.loads(state_json)
            oci_state["ociVersion"] = edited.get("ociVersion", "1.0.2")
            stdin = json.dumps(oci_state).encode()
            hook_counts: dict[str, tuple[str, int]] = {}
            hook_cases: list[tuple[str, object]] = [
                ("/bin/true (a no-op process)", lambda: check(["/bin/true"], env)),
                (
                    "python -I -S -c pass (interpreter floor)",
                    lambda: check([sys.executable, "-I", "-S", "-c", "pass"], env),
                ),
            ]
            # hooks of one shape (the 8 per-GPU create-symlinks) are timed once and counted
            for shape, shape_hooks in (("one process", hooks), ("per step", steps_hooks)):
                for (sub, links), (argv, hook_env, count) in distinct_hooks(shape_hooks, env).items():
                    name = (
                        f"{shape}: {sub}"
                        + (f" ({links} links)" if links else "")
                        + (f" x{count}" if count > 1 else "")
                    )
                    hook_counts[name] = (shape, count)
                    hook_cases.append(
                        (name, lambda argv=argv, hook_env=hook_env: check(argv, hook_env, stdin))
                    )
            hook_rows = rotate(args.runs, hook_cases)
        finally:
            subprocess.run([runc, "--root", b.state, "delete", "--force", cid], capture_output=True)
    finally:
        subprocess.run(
            [
                "sh",
                "-c",
                f"for c in $({runc} --root {base}/state list -q 2>/dev/null); do "
                f"{runc} --root {base}/state delete --force $c; done",
            ],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
    with open("/proc/loadavg") as f:
        load_after = f.read().split()[:3]

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"kernel {platform.release()}; load average before {' '.join(load_before)}, "
        f"after {' '.join(load_after)}"
    )
    print(
        f"spec: {len(cdi_spec['devices'])} devices; createContainer hooks for `all`: {n_hooks} as the shim injects them, "
        f"{n_steps} in upstream's per-step shape; shim: {SHIM} "
        f"({'sh front end' if is_sh(SHIM) else 'Python script'})"
    )
    table(f"create+start+state+delete, ms (median of {args.runs} rounds in rotation)", cycles)
    table(f"state of a created container, ms (median of {args.runs * 2})", states)
    table(f"each hook alone (as runc runs it), ms (median of {args.runs})", hook_rows)
    names = list(cycles)
    alone, shim, runc_hooks, shim_bare, shim_steps, runc_steps, old_bare = (med(cycles[n]) for n in names)
    s_runc, s_shim, s_old = (med(states[n]) for n in states)
    true_ms = med(hook_rows["/bin/true (a no-op process)"])
    py_ms = med(hook_rows["python -I -S -c pass (interpreter floor)"])
    sums = {
        shape: sum(
            med(v) * hook_counts[k][1] for k, v in hook_rows.items() if hook_counts.get(k, ("",))[0] == shape
        )
        for shape in ("one process", "per step")
    }
    hooks_sum = sums["one process"]
    print(
        f"\ncycle through gpuctk vs runc alone: {shim:.1f} / {alone:.1f} ms = {shim / alone:.2f}x "
        "(issue 15 item 3: target <= 1.25x)"
    )
    print(f"  of which the hooks (runc + hooks vs runc alone): {runc_hooks - alone:+.1f} ms")
    print(
        f"  the shim itself (cycle vs runc + hooks): {shim - runc_hooks:+.1f} ms ({shim / runc_hooks:.2f}x)"
    )
    print(
        f"cycle through gpuctk, spec without hooks, vs runc alone: {shim_bare:.1f} / {alone:.1f} ms = "
        f"{shim_bare / alone:.2f}x; before (pip console script): {old_bare:.1f} ms = {old_bare / alone:.2f}x"
    )
    print(
        f"  the floor of any create path that starts CPython once, and of the hook process too: "
        f"runc alone + 1 x python -I -S = {(alone + py_ms) / alone:.2f}x, + 2 x = {(alone + 2 * py_ms) / alone:.2f}x"
    )
    print(
        f"state through gpuctk vs runc: {s_shim:.1f} / {s_runc:.1f} ms = {s_shim / s_runc:.2f}x (target <= 1.3x); "
        f"before (pip console script): {s_old:.1f} ms = {s_old / s_runc:.2f}x"
    )
    print(
        f"the container's {n_hooks} hooks (one-process shape) alone, summed: {hooks_sum:.1f} ms = "
        f"{hooks_sum / py_ms:.2f}x one python -I -S -c pass (target <= 2x), {hooks_sum / true_ms:.1f}x /bin/true"
    )
    print(
        f"the per-step spec's {n_steps} hooks alone, summed: {sums['per step']:.1f} ms = "
        f"{sums['per step'] / py_ms:.2f}x one python -I -S -c pass; one-process / per-step: "
        f"{hooks_sum / sums['per step']:.2f}"
    )
    print(
        f"cycle with the per-step spec (merged by the shim): {shim_steps:.1f} ms ({shim_steps / alone:.2f}x runc alone); "
        f"runc + per-step hooks vs runc alone: {runc_steps - alone:+.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
