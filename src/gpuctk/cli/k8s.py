"""`gpuctk k8s`: plan, manifests, pod-spec, check-gpu."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from gpuctk.errors import GpuctkError


def _dump(obj: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def _add_source(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster facts (default: the live cluster)")
    g.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="read nodes and objects from FILE: a gpuctk snapshot, a `kubectl get nodes,runtimeclasses,"
        "daemonsets,clusterpolicies -A -o yaml` List, or a mapping with those lists",
    )
    g.add_argument(
        "--runtime-version",
        metavar="STR",
        help="plan for one hypothetical GPU node with this containerRuntimeVersion "
        "(e.g. containerd://1.7.12-0ubuntu2~22.04.1), RuntimeClass nvidia assumed installed",
    )
    g.add_argument(
        "--cdi-enabled",
        action="store_true",
        help="treat every node's runtime as having CDI enabled (containerd 1.7 enable_cdi = true)",
    )
    g.add_argument(
        "--node-record",
        metavar="FILE",
        help="the decision record `gpuctk install --cdi auto` wrote on a node "
        "(/run/nvidia/validations/gpuctk-cdi-decision.json): plan that node from it instead of "
        "deciding again; alone, it stands for one GPU node with that engine and version",
    )
    g.add_argument(
        "--kubeconfig",
        default=os.environ.get("GPUCTK_KUBECONFIG"),
        help="kubeconfig file (default: in-cluster, $KUBECONFIG, ~/.kube/config)",
    )
    g.add_argument("--context", default=os.environ.get("GPUCTK_CONTEXT"), help="kubeconfig context")


# A `kubectl get nodes,... -A -o yaml` List of a few thousand nodes stays far below this.
MAX_FROM_BYTES = 64 << 20
MAX_FROM_VALUES = 5_000_000  # values after YAML alias expansion


def load_from_file(path: str) -> Any:
    """The YAML/JSON document of ``--from FILE``: a regular file only (a FIFO without a writer
    or a device is refused without blocking), at most MAX_FROM_BYTES, UTF-8 without NUL bytes,
    nested at most gpuctk.fileio.MAX_DEPTH levels; every failure is one line naming the file."""
    import yaml

    from gpuctk.fileio import MAX_DEPTH, decode_utf8, escape_controls, read_regular

    name = escape_controls(path)
    try:
        data = read_regular(path, MAX_FROM_BYTES)
    except OSError as exc:
        raise GpuctkError(f"{name}: cannot read: {escape_controls(exc.strerror or str(exc))}") from None
    text = decode_utf8(data, name)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = escape_controls(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise GpuctkError(f"{name}: not valid YAML/JSON: {first}") from None
    except RecursionError:
        raise GpuctkError(f"{name}: not valid YAML/JSON: nested too deeply") from None
    except ValueError as exc:  # PyYAML's int(): CPython refuses more than 4300 decimal digits
        if "digits" not in str(exc):
            raise
        raise GpuctkError(f"{name}: not valid YAML/JSON: an integer with too many digits") from None
    _check_values(doc, name, MAX_DEPTH)
    return doc


def _check_values(doc: Any, name: str, depth_limit: int) -> None:
    """One walk over the decoded document, aliases followed: nesting (a recursive alias is
    endless nesting), the number of values after alias expansion ("billion laughs"), and lone
    surrogates (a ``"\\ud800"`` escape: a node name that cannot be printed)."""
    from gpuctk.fileio import escape_controls

    stack: list[tuple[Any, int]] = [(doc, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_FROM_VALUES:
            raise GpuctkError(
                f"{name}: not valid YAML/JSON: more than {MAX_FROM_VALUES} values after alias expansion"
            )
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise GpuctkError(
                        f"{name}: not valid YAML/JSON: string {escape_controls(item)[:60]} is a lone surrogate, not UTF-8"
                    ) from None
            continue
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= depth_limit:
            raise GpuctkError(
                f"{name}: not valid YAML/JSON: nested too deeply (more than {depth_limit} levels)"
            )
        stack.extend((child, depth + 1) for child in children)


def load_facts(args: argparse.Namespace) -> dict[str, Any]:
    from gpuctk.k8s.facts import facts_from_document

    if args.from_file and args.runtime_version:
        raise GpuctkError("--from and --runtime-version are mutually exclusive", exit_code=2)
    record = None
    if getattr(args, "node_record", None):
        from gpuctk.engines import status

        record = status.read(args.node_record)
        if record is None:
            raise GpuctkError(f"--node-record: {args.node_record}: no such file")
        if not args.from_file and args.runtime_version is None:
            engine = {"crio": "cri-o"}.get(str(record.get("engine")), str(record.get("engine")))
            args.runtime_version = f"{engine}://{record.get('engine_version')}"
    if args.from_file:
        doc = load_from_file(args.from_file)
        facts = facts_from_document(doc, args.from_file)
    elif args.runtime_version is not None:
        engine, sep, version = args.runtime_version.partition("://")
        if not sep or not engine or not version:
            raise GpuctkError(
                f"--runtime-version: expected RUNTIME://VERSION like containerd://1.7.12, "
                f"got {args.runtime_version!r}",
                exit_code=2,
            )
        node = {
            "metadata": {"name": "node", "labels": {"nvidia.com/gpu.present": "true"}},
            "status": {"nodeInfo": {"containerRuntimeVersion": args.runtime_version}},
        }
        # Assume the nvidia RuntimeClass that the plan's manifests create is installed.
        rc = {"kind": "RuntimeClass", "metadata": {"name": "nvidia"}, "handler": "nvidia"}
        facts = facts_from_document({"nodes": [node], "runtimeClasses": [rc]}, "--runtime-version")
    else:
        from gpuctk.k8s.client import collect_cluster_objects, connect

        facts = facts_from_document(
            collect_cluster_objects(connect(args.kubeconfig, args.context)), "cluster"
        )
    if args.cdi_enabled:
        for n in facts["nodes"]:
            n["cdi_enabled"] = True
    if record is not None:
        # the record is this node's: every GPU node given is taken to be configured like it
        facts["recorded_decisions"] = {n["name"]: record["decision"] for n in facts["nodes"]}
    return facts


def _plan(args: argparse.Namespace) -> dict[str, Any]:
    from gpuctk.k8s.planner import plan

    return plan(load_facts(args))


def cmd_plan(args: argparse.Namespace) -> int:
    from gpuctk.k8s.planner import render_table

    p = _plan(args)
    sys.stdout.write(render_table(p) if args.output == "table" else _dump(p, args.output))
    return 0


def cmd_manifests(args: argparse.Namespace) -> int:
    from gpuctk.fileio import atomic_write
    from gpuctk.k8s.manifests import build

    only = tuple(x.strip() for item in args.only or [] for x in item.split(",") if x.strip())
    docs = build(
        _plan(args),
        args.group,
        only=only,
        driver_root=args.driver_root,
        hook_path=args.hook_path,
        device_id_strategy=args.device_id_strategy,
        mig_strategy=args.mig_strategy,
    )
    if args.out_dir:
        try:
            os.makedirs(args.out_dir, exist_ok=True)
        except OSError as exc:
            raise GpuctkError(f"{args.out_dir}: cannot create directory: {exc.strerror}") from exc
        rcs = [d["content"] for d in docs if d["type"] == "manifest"]
        files: list[tuple[str, str]] = []  # rendered first, so a bad target stops us before any write
        if rcs:
            import yaml

            files.append(
                (os.path.join(args.out_dir, "runtimeclasses.yaml"), yaml.safe_dump_all(rcs, sort_keys=False))
            )
        for d in docs:
            if d["type"] == "helm-values":
                files.append((os.path.join(args.out_dir, f"{d['name']}.yaml"), _dump(d["content"], "yaml")))
        for path, _ in files:
            if os.path.isdir(path):
                raise GpuctkError(f"{path}: cannot write: is a directory")
        for path, text in files:
            try:
                atomic_write(path, text)
            except OSError as exc:
                raise GpuctkError(f"{path}: cannot write: {exc.strerror or exc}") from None
            print(path)
        return 0
    if args.output == "json":
        sys.stdout.write(json.dumps({d["name"]: d["content"] for d in docs}, indent=2) + "\n")
        return 0
    parts = []
    for d in docs:
        head = (
            f"# {d['name']}: Helm values (not a Kubernetes object)\n"
            if d["type"] == "helm-values"
            else f"# {d['name']}\n"
        )
        parts.append(head + _dump(d["content"], "yaml"))
    sys.stdout.write("---\n".join(parts))
    return 0


def cmd_pod_spec(args: argparse.Namespace) -> int:
    from gpuctk.k8s.podspec import DEFAULT_IMAGE, build_pod
    from gpuctk.k8s.validate import require_valid

    pod = build_pod(
        _plan(args),
        gpus=args.gpus,
        management=args.management,
        image=args.image or DEFAULT_IMAGE,
        name=args.name,
        namespace=args.namespace,
        group=args.group,
        sandbox_runtime_class=args.sandbox_runtime_class,
    )
    require_valid([pod])
    sys.stdout.write(_dump(pod, args.output))
    return 0


def cmd_check_gpu(args: argparse.Namespace) -> int:
    from gpuctk.k8s.planner import plan
    from gpuctk.k8s.podspec import check_gpu

    facts = load_facts(args)
    ok, lines = check_gpu(facts, plan(facts))
    for line in lines:
        print(line, file=sys.stdout if line.startswith("ok") else sys.stderr)
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="how pods get GPUs (or just nvidia-smi) on each group of GPU nodes",
        description="Group GPU nodes by container runtime and version and print, per group: native "
        "CDI usability, device-list strategy and annotation prefix, toolkit settings, "
        "whether GPU pods need runtimeClassName, and management-only access.",
    )
    _add_source(p)
    p.add_argument("--output", "-o", choices=("table", "yaml", "json"), default="table")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "manifests",
        help="RuntimeClasses, device-plugin Helm values and toolkit env for the plan",
        description="Print (or write with --out-dir) the RuntimeClasses, the device plugin's Helm "
        "values and the toolkit's environment for one node group of the plan. Every "
        "Kubernetes object printed is validated against the OpenAPI schema.",
    )
    _add_source(p)
    p.add_argument("--group", type=int, help="node group number from `gpuctk k8s plan` (mixed clusters)")
    p.add_argument(
        "--only",
        action="append",
        metavar="KIND",
        help="runtimeclasses, device-plugin-values, toolkit-env (repeat or comma-separate)",
    )
    p.add_argument(
        "--driver-root", default="/", help="nvidiaDriverRoot (/run/nvidia/driver for a driver container)"
    )
    p.add_argument("--hook-path", default="/usr/bin/nvidia-cdi-hook", help="cdi.nvidiaHookPath (host path)")
    p.add_argument("--device-id-strategy", choices=("uuid", "index"), default="uuid")
    p.add_argument("--mig-strategy", choices=("none", "single", "mixed"), default="none")
    p.add_argument("--output", "-o", choices=("yaml", "json"), default="yaml")
    p.add_argument("--out-dir", metavar="DIR", help="write runtimeclasses.yaml and the values files into DIR")
    p.set_defaults(func=cmd_manifests)

    p = sub.add_parser(
        "pod-spec",
        help="a GPU (or nvidia-smi-only) sandbox pod that follows the plan",
        description="Print a Pod that gets N GPUs (--gpus) or only nvidia-smi/NVML access "
        "(--management) the way the plan says works on the chosen node group: with or "
        "without runtimeClassName, an NRI annotation or NVIDIA_VISIBLE_DEVICES.",
    )
    _add_source(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--gpus", type=int, metavar="N", help="request N GPUs from the device plugin")
    what.add_argument(
        "--management", action="store_true", help="nvidia-smi/NVML access without consuming a GPU"
    )
    p.add_argument("--image", help="container image (default: a CUDA base image)")
    p.add_argument("--name", default="gpu-sandbox")
    p.add_argument("--namespace")
    p.add_argument("--group", type=int, help="node group number from `gpuctk k8s plan` (mixed clusters)")
    p.add_argument(
        "--sandbox-runtime-class",
        metavar="NAME",
        help="run the pod under this RuntimeClass (e.g. gvisor) where injection does not need the "
        "nvidia handler (native CDI / NRI / hook nodes)",
    )
    p.add_argument("--output", "-o", choices=("yaml", "json"), default="yaml")
    p.set_defaults(func=cmd_pod_spec)

    p = sub.add_parser(
        "check-gpu",
        help="can GPU sandboxes be scheduled? (exit 1 with what to do if not)",
        description="Check that GPU sandbox pods can be scheduled and get their GPUs: some node "
        "has allocatable nvidia.com/gpu, and the RuntimeClass each node group's plan "
        "needs exists. Exit 0 when they can, 1 with each problem and its fix when not.",
    )
    _add_source(p)
    p.set_defaults(func=cmd_check_gpu)
