"""Schema validation of emitted Kubernetes objects against the OpenAPI schema shipped by
``kubernetes-validate`` (offline; imported lazily)."""

from __future__ import annotations

from typing import Any

from gpuctk.errors import GpuctkError

SCHEMA_VERSION = "1.30.0"


def validate_object(obj: dict[str, Any], version: str = SCHEMA_VERSION) -> list[str]:
    """Problems with ``obj`` (empty = valid). Kinds without a shipped schema are an error."""
    try:
        import kubernetes_validate
    except ImportError as exc:
        raise GpuctkError(
            "schema validation needs kubernetes-validate: pip install kubernetes-validate"
        ) from exc
    name = f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        msg = str(exc.message).splitlines()[0]
        return [f"{name}: {path or '(top)'}: {msg}"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
        return [
            f"{name}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in kubernetes {version} ({type(exc).__name__})"
        ]
    return []


def validate_all(objs: list[dict[str, Any]], version: str = SCHEMA_VERSION) -> list[str]:
    out: list[str] = []
    for o in objs:
        if "apiVersion" in o and "kind" in o:
            out += validate_object(o, version)
    return out


def require_valid(objs: list[dict[str, Any]], version: str = SCHEMA_VERSION) -> None:
    problems = validate_all(objs, version)
    if problems:
        raise GpuctkError("emitted manifest fails schema validation: " + "; ".join(problems))
