"""Check Kubernetes manifests offline, before anything reaches a cluster:

* against the object schemas of the `kubernetes` client (every field known and of the right type,
  required fields present), and
* against this project's rules: images pinned (a tag other than `latest`, or a digest), containers
  non-root without privilege escalation, CPU and memory limits set, no secret value written in a file.

    python deploy/check_manifests.py [FILE...]    (default: every Kubernetes YAML under deploy/)
"""

import re
import sys
from pathlib import Path

import yaml
from kubernetes import client

DEPLOY = Path(__file__).parent
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "object": object,
    "datetime": str,
    "date": str,
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", re.IGNORECASE)
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
NOT_OBJECTS = {"Kustomization"}  # kustomize's own file, not a Kubernetes object


def model_name(doc: dict) -> str:
    """`apps/v1` + `Deployment` -> `V1Deployment`, the client's model class."""
    version = str(doc.get("apiVersion", "")).split("/")[-1]
    return version[:1].upper() + version[1:] + str(doc.get("kind", ""))


def schema_errors(value: object, type_name: str, path: str) -> list[str]:
    """Every unknown field and every type mismatch under `value`, typed as the client's `type_name`."""
    if value is None:
        return []
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [e for i, item in enumerate(value) for e in schema_errors(item, m[1], f"{path}[{i}]")]
    if m := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [e for k, item in value.items() for e in schema_errors(item, m[1], f"{path}.{k}")]
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool)
        )
        return [] if ok else [f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"]
    model = getattr(client, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping"]
    fields = {json_key: attr for attr, json_key in model.attribute_map.items()}
    # A null counts as absent (ZenML's pod builder leaves snake_case nulls from V1SecurityContext.to_dict()).
    errors = [
        f"{path}.{key}: not a field of {type_name}"
        for key, item in value.items()
        if key not in fields and item is not None
    ]
    return errors + [
        e
        for key, attr in fields.items()
        for e in schema_errors(value.get(key), model.openapi_types[attr], f"{path}.{key}")
    ]


def pod_specs(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return [spec]
    if doc.get("kind") in WORKLOADS:
        return [spec.get("template", {}).get("spec", {})]
    if doc.get("kind") == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    return []


def policy_errors(doc: dict, where: str) -> list[str]:
    errors = []
    if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
        errors.append(f"{where}: a Secret with values in a file; create it from the environment (deploy/README.md)")
    for spec in pod_specs(doc):
        pod_context = spec.get("securityContext") or {}
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            at = f"{where} container {c.get('name')}"
            image = str(c.get("image", ""))
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if "@sha256:" not in image and tag in ("", "latest"):
                errors.append(f"{at}: image {image!r} is not pinned to a version tag or digest")
            context = {**pod_context, **(c.get("securityContext") or {})}
            if context.get("runAsNonRoot") is not True or context.get("runAsUser") == 0:
                errors.append(f"{at}: must run as non-root (securityContext.runAsNonRoot: true)")
            if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
                errors.append(f"{at}: set securityContext.allowPrivilegeEscalation: false")
            limits = (c.get("resources") or {}).get("limits") or {}
            if not {"cpu", "memory"} <= set(limits):
                errors.append(f"{at}: resources.limits must set cpu and memory")
            errors += [
                f"{at}: env {e['name']} holds a literal value; reference a Secret (valueFrom.secretKeyRef)"
                for e in c.get("env", [])
                if "value" in e and SECRET_NAME.search(e["name"])
            ]
    return errors


def manifest_errors(doc: dict, where: str) -> list[str]:
    """Schema and policy errors of one Kubernetes object (a parsed YAML document)."""
    name = model_name(doc)
    if not hasattr(client, name):
        return [f"{where}: unknown apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')}"]
    errors = [f"{where}: {e}" for e in schema_errors(doc, name, doc.get("kind", "object"))]
    try:  # required fields: the client's models refuse to be built without them
        client.ApiClient()._ApiClient__deserialize(doc, name)
    except (ValueError, TypeError) as exc:
        errors.append(f"{where}: {exc}")
    return errors + policy_errors(doc, where)


def manifest_files(root: Path = DEPLOY) -> list[Path]:
    """Every YAML file under `root` that holds Kubernetes objects."""
    return sorted(
        p for p in root.rglob("*.yaml") if any(d and "kind" in d and d["kind"] not in NOT_OBJECTS for d in load(p))
    )


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def check(paths: list[Path]) -> list[str]:
    errors = []
    for path in paths:
        for i, doc in enumerate(load(path)):
            if doc.get("kind") not in NOT_OBJECTS:
                errors += manifest_errors(
                    doc, f"{path}#{i} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
                )
    return errors


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:]] or manifest_files()
    errors = check(paths)
    print("\n".join(errors) if errors else f"{len(paths)} manifest files valid")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
