"""Run the snapshot agent Job and bring its result back through a ConfigMap (as NVIDIA/aicr ``pkg/cli/snapshot.go`` does).

Order matters: validate flags, pre-flight the RuntimeClass (nothing is created when it
is missing), create namespace + RBAC, replace any old Job, wait with progress, read the
ConfigMap, and clean up (unless ``cleanup=False``) whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gpuctk.errors import GpuctkError
from gpuctk.k8s.agent import AgentOptions, build_job, build_namespace, build_rbac
from gpuctk.k8s.client import KubeAPI, KubeAPIError
from gpuctk.k8s.facts import GPU_PRESENT_LABEL

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def check_runtime_class(api: KubeAPI, name: str) -> dict[str, Any]:
    rc = api.get("RuntimeClass", name)
    if rc is None:
        present = sorted((o.get("metadata") or {}).get("name", "") for o in api.list("RuntimeClass"))
        have = f" (RuntimeClasses present: {', '.join(present)})" if present else " (no RuntimeClasses exist)"
        raise GpuctkError(
            f"RuntimeClass {name!r} not found in the cluster{have}; nothing was created. Install the NVIDIA "
            "toolkit/GPU Operator or apply `gpuctk k8s manifests --only runtimeclasses`, or omit "
            "--runtime-class and use --node-selector nvidia.com/gpu.present=true (add --require-gpu to "
            "consume a GPU)"
        )
    return rc


def _create_or_keep(api: KubeAPI, obj: dict[str, Any]) -> bool:
    """Create ``obj``; an existing one is kept. True when we created it."""
    try:
        api.create(obj)
        return True
    except KubeAPIError as exc:
        if exc.code == 409:
            return False
        raise


def _job_pods(api: KubeAPI, opts: AgentOptions) -> list[dict[str, Any]]:
    return api.list("Pod", namespace=opts.namespace, labels={"job-name": opts.job_name})


def _job_events(api: KubeAPI, opts: AgentOptions) -> list[str]:
    try:
        events = api.list("Event", namespace=opts.namespace)
    except KubeAPIError:
        return []
    return [
        f"{e.get('reason', '')}: {e.get('message', '')}"
        for e in events
        if (e.get("involvedObject") or {}).get("name") == opts.job_name
    ]


def _pod_logs(api: KubeAPI, opts: AgentOptions) -> str:
    out = []
    for pod in _job_pods(api, opts):
        name = pod["metadata"]["name"]
        try:
            out.append(f"--- logs of pod {name} ---\n" + api.logs(name, opts.namespace, tail_lines=200))
        except KubeAPIError as exc:
            out.append(f"--- no logs for pod {name}: {exc}")
    return "\n".join(out)


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def _pod_state(pod: dict[str, Any]) -> str:
    """``name Phase`` plus a container's waiting reason (e.g. ImagePullBackOff) when there is one."""
    status = pod.get("status") or {}
    text = f"{pod['metadata']['name']} {status.get('phase') or 'Pending'}"
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            text += f" ({waiting['reason']}: {waiting.get('message', '')})".replace(": )", ")")
    return text


def wait_for_job(
    api: KubeAPI,
    opts: AgentOptions,
    progress: Progress = _quiet,
    poll: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    deadline = clock() + opts.timeout
    last = ""
    while True:
        job = api.get("Job", opts.job_name, opts.namespace)
        if job is None:
            raise GpuctkError(f"Job {opts.namespace}/{opts.job_name} disappeared while waiting")
        status = job.get("status") or {}
        if status.get("succeeded") or _condition(job, "Complete"):
            progress(f"Job {opts.job_name} completed")
            return
        failed = _condition(job, "Failed")
        if status.get("failed") or failed:
            why = (failed or {}).get("message") or "pod failed"
            raise GpuctkError(
                f"agent Job {opts.namespace}/{opts.job_name} failed: {why}\n{_pod_logs(api, opts)}"
            )
        pods = _job_pods(api, opts)
        phase = ", ".join(_pod_state(p) for p in pods)
        state = f"waiting for Job {opts.job_name}: " + (phase or "no pod yet")
        if state != last:
            progress(state)
            last = state
        if clock() >= deadline:
            events = _job_events(api, opts)
            extra = ("\nevents:\n  " + "\n  ".join(events)) if events else ""
            logs = _pod_logs(api, opts)
            raise GpuctkError(
                f"timed out after {opts.timeout:g}s waiting for Job {opts.namespace}/{opts.job_name} "
                f"({phase or 'no pod created'}){extra}" + (f"\n{logs}" if logs else "")
            )
        time.sleep(poll)


def read_result(api: KubeAPI, opts: AgentOptions) -> dict[str, Any]:
    import yaml

    cm = api.get("ConfigMap", opts.configmap, opts.namespace)
    if cm is None:
        raise GpuctkError(
            f"the agent finished but ConfigMap {opts.configmap_uri} is missing\n{_pod_logs(api, opts)}"
        )
    data = cm.get("data") or {}
    text = data.get("snapshot.yaml") or data.get("snapshot.json")
    if not text:
        raise GpuctkError(f"ConfigMap {opts.configmap_uri} has no snapshot.yaml/snapshot.json key")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GpuctkError(
            f"ConfigMap {opts.configmap_uri}: snapshot is not valid YAML/JSON: {str(exc).splitlines()[0]}"
        ) from exc
    except RecursionError:
        raise GpuctkError(
            f"ConfigMap {opts.configmap_uri}: snapshot is not valid YAML/JSON: nested too deeply"
        ) from None
    if not isinstance(doc, dict):
        raise GpuctkError(f"ConfigMap {opts.configmap_uri}: snapshot is not a mapping")
    return doc


def cleanup(api: KubeAPI, opts: AgentOptions, created_namespace: bool, progress: Progress = _quiet) -> None:
    errors = []
    todo: list[tuple[str, str, str | None]] = [("Job", opts.job_name, opts.namespace)]
    todo += [("Pod", p["metadata"]["name"], opts.namespace) for p in _safe_pods(api, opts)]
    todo.append(("ConfigMap", opts.configmap, opts.namespace))
    for obj in reversed(build_rbac(opts)):
        meta = obj["metadata"]
        todo.append((obj["kind"], meta["name"], meta.get("namespace")))
    if created_namespace:
        todo.append(("Namespace", opts.namespace, None))
    for kind, name, ns in todo:
        try:
            api.delete(kind, name, ns)
        except KubeAPIError as exc:
            errors.append(f"{kind} {name}: {exc}")
    progress(
        "cleaned up the agent's Job, ConfigMap and RBAC" + (" and namespace" if created_namespace else "")
    )
    if errors:
        progress("cleanup left some objects behind: " + "; ".join(errors))


def _safe_pods(api: KubeAPI, opts: AgentOptions) -> list[dict[str, Any]]:
    try:
        return _job_pods(api, opts)
    except KubeAPIError:
        return []


def auto_node_selector(api: KubeAPI, opts: AgentOptions, progress: Progress = _quiet) -> None:
    """Without a node selector, aim at a GPU node (aicr PR #1199: agents silently landing on CPU
    nodes return empty GPU data). Fails open: API errors leave the selector empty."""
    if opts.node_selector:
        return
    try:
        labelled = api.list("Node", labels={GPU_PRESENT_LABEL: "true"})
    except KubeAPIError:
        return
    if labelled:
        opts.node_selector = {GPU_PRESENT_LABEL: "true"}
        progress(f"no --node-selector: using {GPU_PRESENT_LABEL}=true ({len(labelled)} GPU node(s))")


def _wait_gone(api: KubeAPI, kind: str, name: str, namespace: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while api.get(kind, name, namespace) is not None:
        if time.monotonic() >= deadline:
            raise GpuctkError(
                f"old {kind} {namespace}/{name} is still being deleted after {limit:g}s; try again"
            )
        time.sleep(0.25)


def run_agent(
    api: KubeAPI, opts: AgentOptions, progress: Progress = _quiet, auto_select: bool = True
) -> dict[str, Any]:
    """Deploy the agent, wait, and return the snapshot it wrote."""
    opts.validate()
    if opts.runtime_class:
        check_runtime_class(api, opts.runtime_class)  # before creating anything
    if auto_select:
        auto_node_selector(api, opts, progress)
    created_ns = False
    if api.get("Namespace", opts.namespace) is None:
        created_ns = _create_or_keep(api, build_namespace(opts))
        progress(f"created namespace {opts.namespace}")
    try:
        for obj in build_rbac(opts):
            _create_or_keep(api, obj)
        # A fresh Job every run: an old one (and its result) would be mistaken for ours.
        if api.delete("Job", opts.job_name, opts.namespace):
            for p in _safe_pods(api, opts):
                api.delete("Pod", p["metadata"]["name"], opts.namespace)
            _wait_gone(api, "Job", opts.job_name, opts.namespace)
        api.delete("ConfigMap", opts.configmap, opts.namespace)
        api.create(build_job(opts))
        progress(
            f"created Job {opts.namespace}/{opts.job_name} (image {opts.image}"
            + (f", runtimeClassName {opts.runtime_class}" if opts.runtime_class else "")
            + (", nvidia.com/gpu: 1" if opts.require_gpu else "")
            + ")"
        )
        wait_for_job(api, opts, progress)
        return read_result(api, opts)
    finally:
        if opts.cleanup:
            cleanup(api, opts, created_ns, progress)
        else:
            progress(f"--no-cleanup: left Job, ConfigMap {opts.configmap_uri} and RBAC in place")
