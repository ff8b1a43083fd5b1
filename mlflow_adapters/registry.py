"""MLflow model registry look-ups: a request's promoted version, and a `models:/name@alias` base model as a local
folder.

Versions are found by tag and alias; stages are deprecated in MLflow 3 and never used.
"""

import json
from pathlib import Path

import mlflow
import yaml
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from erasediff.request.earlier_checks import ConceptCheck, load_concept_check, unmeasurable
from erasediff.util.errors import ErasediffError, ModelLoadError
from erasediff.util.hashing import folder_hash
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.blob_store import materialize

REQUEST_TAG = "request_id"
NOTIFY_TAG = "notify"  # a version's request's notify block (JSON), read by the review commands (pipelines/notify.py)
DIFFUSERS_ARTIFACT = "diffusers"
CHECK_ARTIFACT = "erasure_check"  # a promoted concept request's recorded forget-side check, in its MLflow run
MODELS_SCHEME = "models:/"
HASH_TAG = "storage.folder_sha256"  # the promoted folder's content hash (mlflow_adapters/promotion.py)


def promoted_version(client: MlflowClient, model_name: str, request_id: str) -> ModelVersion | None:
    """The version an earlier run of this request registered, if any (only gated-in models are registered)."""
    try:
        found = client.search_model_versions(f"name = '{model_name}' and tags.{REQUEST_TAG} = '{request_id}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return min(found, key=lambda v: int(v.version)) if found else None


def version_run(version: ModelVersion) -> str:
    """The MLflow run that promoted a version (recorded as a tag; the version's own run_id otherwise)."""
    return version.tags.get("mlflow_run_id") or version.run_id


def earlier_erasures(client: MlflowClient, model_name: str, request_id: str) -> list[dict]:
    """Every other request promoted into `model_name` (its version, and its classes or concept): erasures a new
    version must keep in force."""
    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    found = [v for v in versions if v.tags.get(REQUEST_TAG) and v.tags[REQUEST_TAG] != request_id]
    return [
        {
            "request_id": v.tags[REQUEST_TAG],
            "version": int(v.version),
            "run_id": version_run(v),
            **(
                {"classes": json.loads(v.tags["forgotten_classes"])}
                if "forgotten_classes" in v.tags
                else {"concept": v.tags.get("forgotten_concept")}
            ),
        }
        for v in sorted(found, key=lambda v: int(v.version))
    ]


def earlier_classes(erasures: list[dict]) -> list[int]:
    return sorted({c for e in erasures for c in e.get("classes") or []})


def earlier_concept_checks(
    client: MlflowClient, erasures: list[dict], kind: str, dst: Path
) -> tuple[list[ConceptCheck], list[dict]]:
    """The recorded checks of earlier concept erasures, downloaded under `dst`; an erasure whose check cannot be had
    or run here comes back as a fail-closed re-check row instead."""
    checks, closed = [], []
    for erasure in (e for e in erasures if "concept" in e):
        if kind != "concept":
            closed.append(unmeasurable(erasure, "a concept erasure cannot be re-measured on a class-conditional model"))
            continue
        try:
            folder = client.download_artifacts(erasure["run_id"], CHECK_ARTIFACT, str(dst / erasure["request_id"]))
            checks.append(load_concept_check(Path(folder)))
        except (MlflowException, ErasediffError, OSError) as exc:
            closed.append(
                unmeasurable(
                    erasure,
                    f"version {erasure['version']}'s {CHECK_ARTIFACT} cannot be read: {str(exc).splitlines()[0]}",
                )
            )
    return checks, closed


def registered_model_folder(spec: str, dst: Path | None = None) -> Path:
    """A registered model's complete diffusers folder (`models:/name@alias` or `models:/name/version`), rebuilt from its
    parts."""
    try:
        root = mlflow.artifacts.download_artifacts(artifact_uri=spec, dst_path=str(dst or scratch_dir("base-")))
    except MlflowException as exc:
        raise ModelLoadError(
            f"cannot resolve base model {spec} in the MLflow registry at {mlflow.get_tracking_uri()}: "
            f"{exc.message.splitlines()[0]}"
        ) from exc
    # MLflow stores a pyfunc artifact under its source folder's name; MLmodel maps the key to that path.
    mlmodel = Path(root) / "MLmodel"
    artifacts = (
        yaml.safe_load(mlmodel.read_text()).get("flavors", {}).get("python_function", {}).get("artifacts", {})
        if mlmodel.is_file()
        else {}
    )
    folder = Path(root) / artifacts.get(DIFFUSERS_ARTIFACT, {}).get("path", f"artifacts/{DIFFUSERS_ARTIFACT}")
    if not folder.is_dir():
        raise ModelLoadError(
            f"{spec} holds no '{DIFFUSERS_ARTIFACT}' pyfunc artifact; was it registered by this pipeline?"
        )
    out = materialize(folder)
    recorded = registered_hash(spec)
    if recorded and (actual := folder_hash(out)) != recorded:
        raise ModelLoadError(f"{spec} rebuilds to sha256 {actual}, not its recorded {HASH_TAG} {recorded}")
    return out


def registered_hash(spec: str) -> str | None:
    """The content hash a registered version recorded when it was promoted (`models:/name@alias` or
    `models:/name/version`)."""
    name, _, ref = spec.removeprefix(MODELS_SCHEME).partition("@")
    client = MlflowClient()
    try:
        if ref:
            version = client.get_model_version_by_alias(name, ref)
        else:
            name, _, number = name.rpartition("/")
            version = client.get_model_version(name, number)
    except MlflowException:
        return None
    return version.tags.get(HASH_TAG)
