"""`gpuctk snapshot`: collect node facts locally, or on a node through an agent Job.

Every flag also reads ``GPUCTK_<FLAG>`` (e.g. ``GPUCTK_RUNTIME_CLASS``,
``GPUCTK_REQUIRE_GPU``, ``GPUCTK_NAMESPACE``); the command line wins.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from gpuctk.errors import GpuctkError, UsageError

_TRUE = ("1", "true", "yes", "on")


RUNTIMES = ("containerd", "crio", "docker")
FORMATS = ("yaml", "json")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get("GPUCTK_" + name, default)


def _env_bool(name: str, default: bool = False) -> bool:
    v = os.environ.get("GPUCTK_" + name)
    return default if v is None else v.strip().lower() in _TRUE


def _check_env_choice(value: str | None, flag: str, choices: tuple[str, ...]) -> None:
    """argparse checks ``choices`` only for values given on the command line, not for
    defaults read from ``GPUCTK_*``."""
    if value is not None and value not in choices:
        raise UsageError(
            f"{flag} (or GPUCTK_{flag[2:].upper().replace('-', '_')}): invalid choice {value!r} "
            f"(choose from {', '.join(choices)})"
        )


def _env_list(name: str) -> list[str]:
    v = os.environ.get("GPUCTK_" + name, "")
    return [x for x in (s.strip() for s in v.split(",")) if x]


def parse_duration(text: str) -> float:
    """``300``, ``300s``, ``5m``, ``1h30m`` -> seconds."""
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", t)
    if not t or not m:
        raise UsageError(f"invalid duration {text!r} (e.g. 300, 90s, 5m, 1h)")
    h, mi, s = (int(x) if x else 0 for x in m.groups())
    return float(h * 3600 + mi * 60 + s)


def dump(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, default=str) + "\n"
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def load_document(path: str) -> Any:
    """A YAML/JSON file given with ``--from``; one-line errors for missing or garbage files
    (the bounded reader of ``k8s --from``: no blocking on a FIFO, size, depth and digit caps)."""
    from gpuctk.cli.k8s import load_from_file

    return load_from_file(path)


def add_collect_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("local collection")
    g.add_argument(
        "--host-root",
        default=_env("HOST_ROOT", "/"),
        help="the node's root file system (e.g. /host inside the agent pod)",
    )
    g.add_argument("--nvidia-smi", default=_env("NVIDIA_SMI"), help="nvidia-smi to run (default: from PATH)")
    g.add_argument(
        "--runtime",
        default=_env("RUNTIME"),
        choices=RUNTIMES,
        help="container engine to inspect (default: every engine found)",
    )
    g.add_argument(
        "--status-file",
        default=_env("STATUS_FILE"),
        help="the decision record of `--cdi auto` (default <host-root>/run/nvidia/validations/"
        "gpuctk-cdi-decision.json)",
    )
    g.add_argument(
        "--spec-dir",
        action="append",
        default=None,
        help="CDI spec directory (repeat; default /etc/cdi and /var/run/cdi)",
    )


def collect_options(args: argparse.Namespace, kubernetes: bool | None = None) -> Any:
    from gpuctk.snapshot.collect import SnapshotOptions

    _check_env_choice(args.runtime, "--runtime", RUNTIMES)
    if not os.path.isdir(args.host_root):
        raise UsageError(f"--host-root {args.host_root}: not a directory")
    opts = SnapshotOptions(
        host_root=args.host_root, nvidia_smi=args.nvidia_smi, runtime=args.runtime, kubernetes=kubernetes
    )
    if args.spec_dir:
        opts.spec_dirs = list(args.spec_dir)
    if getattr(args, "status_file", None):
        opts.status_file = os.path.abspath(args.status_file)
    return opts


def _write_output(doc: dict[str, Any], output: str, fmt: str, args: argparse.Namespace) -> None:
    if output.startswith("cm://"):
        import time

        from gpuctk.k8s.agent import parse_configmap_uri, result_configmap
        from gpuctk.k8s.client import KubeAPIError, connect

        ns, name = parse_configmap_uri(output)
        api = connect(getattr(args, "kubeconfig", None), getattr(args, "context", None))
        cm = result_configmap(
            ns, name, dump(doc, fmt), fmt, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        )
        try:
            api.create(cm)
        except KubeAPIError as exc:
            if exc.code != 409:
                raise
            api.replace(cm)
        print(f"snapshot written to ConfigMap {ns}/{name}", file=sys.stderr)
        return
    text = dump(doc, fmt)
    if output in ("", "-"):
        sys.stdout.write(text)
        return
    from gpuctk.fileio import atomic_write

    try:
        atomic_write(output, text)
    except OSError as exc:
        reason = "is a directory" if isinstance(exc, IsADirectoryError) else exc.strerror or str(exc)
        raise GpuctkError(f"{output}: cannot write: {reason}") from None


def _agent_options(args: argparse.Namespace) -> Any:
    from gpuctk.k8s.agent import AgentOptions, parse_node_selector, parse_toleration

    tolerations = [parse_toleration(t) for t in args.toleration] if args.toleration else None
    return AgentOptions(
        namespace=args.namespace,
        job_name=args.job_name,
        service_account=args.service_account,
        configmap=args.configmap,
        image=args.image,
        image_pull_secrets=list(args.image_pull_secret or []),
        node_selector=parse_node_selector(args.node_selector or []),
        tolerations=tolerations,
        runtime_class=args.runtime_class or "",
        require_gpu=args.require_gpu,
        privileged=args.privileged,
        timeout=parse_duration(args.timeout),
        cleanup=not args.no_cleanup,
        output_format=args.format,
    )


def cmd_snapshot(args: argparse.Namespace) -> int:
    from gpuctk.k8s.agent import AGENT_MODE_ENV

    _check_env_choice(args.format, "--format", FORMATS)
    in_agent = os.environ.get(AGENT_MODE_ENV, "").lower() in _TRUE
    if args.agent and not in_agent:
        from gpuctk.k8s.client import connect
        from gpuctk.k8s.deployer import run_agent

        opts = _agent_options(args)
        opts.validate()  # flag errors before touching the cluster

        def progress(msg: str) -> None:
            if not args.quiet:
                print(f"gpuctk: {msg}", file=sys.stderr)

        doc = run_agent(connect(args.kubeconfig, args.context), opts, progress)
        gpu = doc.get("gpu") or {}
        if (opts.runtime_class or opts.require_gpu) and not gpu.get("count"):
            print(f"gpuctk: warning: the agent saw no GPUs ({gpu.get('error', 'count 0')})", file=sys.stderr)
        _write_output(doc, args.output or "-", args.format, args)
        return 0
    if args.runtime_class and args.require_gpu:
        from gpuctk.k8s.agent import MUTUAL_EXCLUSION

        raise UsageError(MUTUAL_EXCLUSION)
    from gpuctk.snapshot.collect import collect_snapshot

    kube = True if in_agent else (False if args.no_kubernetes else None)
    opts = collect_options(args, kubernetes=kube)
    if kube is not False and not in_agent and args.kubeconfig:
        opts.kubernetes = True
    if opts.kubernetes:
        from gpuctk.k8s.client import connect

        try:
            opts.kube_api = connect(args.kubeconfig, args.context)
        except GpuctkError as exc:
            print(f"gpuctk: warning: {exc}", file=sys.stderr)
            opts.kubernetes = False
    doc = collect_snapshot(opts)
    _write_output(doc, args.output or "-", args.format, args)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from gpuctk.k8s.agent import DEFAULT_IMAGE

    p = sub.add_parser(
        "snapshot",
        help="collect node facts (GPUs, engine, CDI) locally or through an agent Job",
        description="Collect GPUs (nvidia-smi -q -x), OS, container engine and CDI status, CDI specs (valid? stale?), "
        "/dev/char links and, in a cluster, Kubernetes node info into one YAML/JSON document. With "
        "--agent, run the same collection as a Job on a node and return it through a ConfigMap. Every "
        "flag also reads GPUCTK_<FLAG> (e.g. GPUCTK_RUNTIME_CLASS, GPUCTK_REQUIRE_GPU).",
    )
    p.add_argument(
        "--output",
        "-o",
        default=_env("OUTPUT"),
        help="file, '-' for stdout (default), or cm://NAMESPACE/NAME to write a ConfigMap",
    )
    p.add_argument("--format", choices=FORMATS, default=_env("FORMAT", "yaml"))
    p.add_argument(
        "--no-kubernetes",
        action="store_true",
        default=_env_bool("NO_KUBERNETES"),
        help="skip the Kubernetes collector even in a cluster",
    )
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG"), help="kubeconfig file")
    p.add_argument("--context", default=_env("CONTEXT"), help="kubeconfig context")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    add_collect_args(p)
    a = p.add_argument_group("agent Job (--agent)")
    a.add_argument(
        "--agent",
        action="store_true",
        default=_env_bool("AGENT"),
        help="run the collection on a node as a Kubernetes Job and read it back from a ConfigMap",
    )
    a.add_argument("--namespace", "-n", default=_env("NAMESPACE", "gpuctk"))
    a.add_argument("--image", default=_env("IMAGE", DEFAULT_IMAGE), help="agent image (must contain gpuctk)")
    a.add_argument("--image-pull-secret", action="append", default=_env_list("IMAGE_PULL_SECRET") or None)
    a.add_argument("--job-name", default=_env("JOB_NAME", "gpuctk-snapshot"))
    a.add_argument("--service-account", default=_env("SERVICE_ACCOUNT", "gpuctk"))
    a.add_argument("--configmap", default=_env("CONFIGMAP", "gpuctk-snapshot"), help="result ConfigMap name")
    a.add_argument(
        "--node-selector",
        action="append",
        default=_env_list("NODE_SELECTOR") or None,
        metavar="KEY=VALUE",
        help="repeat; e.g. nvidia.com/gpu.present=true",
    )
    a.add_argument(
        "--toleration",
        action="append",
        default=_env_list("TOLERATION") or None,
        metavar="KEY[=VALUE][:EFFECT]",
        help="repeat; replaces the default tolerate-all",
    )
    a.add_argument(
        "--runtime-class",
        default=_env("RUNTIME_CLASS"),
        metavar="NAME",
        help="runtimeClassName for the agent pod + NVIDIA_VISIBLE_DEVICES=all: nvidia-smi without "
        "consuming a GPU (checked to exist first)",
    )
    a.add_argument(
        "--require-gpu",
        action="store_true",
        default=_env_bool("REQUIRE_GPU"),
        help="request nvidia.com/gpu: 1 instead (pends when every GPU is allocated)",
    )
    a.add_argument(
        "--timeout", default=_env("TIMEOUT", "5m"), help="how long to wait for the Job (e.g. 300, 5m)"
    )
    a.add_argument(
        "--no-cleanup",
        action="store_true",
        default=_env_bool("NO_CLEANUP"),
        help="leave the Job, ConfigMap and RBAC in place",
    )
    a.add_argument(
        "--privileged",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("PRIVILEGED", True),
        help="privileged agent with the host root mounted read-only at /host (default)",
    )
    p.set_defaults(func=cmd_snapshot)
